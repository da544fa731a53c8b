"""Reward-model analyses against small hand-computed cases."""

from __future__ import annotations

import json
import math

import pytest

from evalbench.cli import main
from evalbench.errors import InputError
from evalbench.report.reward_analysis import (
    RewardRow,
    analyze_rewards,
    count_syllables,
    flesch_kincaid_grade,
    length_bias,
    load_reward_scores,
    tfidf_keywords,
    welch_pairs,
    word_count,
)


def _w(n: int) -> str:
    return " ".join(["word"] * n)


def test_syllable_heuristic_on_common_words():
    for word, n in [("cat", 1), ("the", 1), ("make", 1), ("makes", 1), ("table", 2), ("water", 2),
                    ("yellow", 2), ("cheese", 1), ("three", 1), ("banana", 3), ("reading", 2)]:
        assert count_syllables(word) == n, word
    assert count_syllables("beautiful") == 3  # "eau" is one vowel group
    # documented limitations: vowel groups that span syllables ("i-de-a", "cre-ate")
    assert count_syllables("idea") == 2 and count_syllables("create") == 1


def test_flesch_kincaid_by_hand():
    # 6 one-syllable words, 1 sentence: 0.39*6 + 11.8*1 - 15.59
    assert flesch_kincaid_grade("The cat sat on the mat.") == pytest.approx(0.39 * 6 + 11.8 - 15.59)
    # 9 words in 2 sentences, 10 syllables ("table" has 2): 0.39*4.5 + 11.8*10/9 - 15.59
    assert flesch_kincaid_grade("The cat sat. The dog ran to the table.") == pytest.approx(
        0.39 * 4.5 + 11.8 * 10 / 9 - 15.59)
    assert flesch_kincaid_grade("   ") is None
    assert word_count("  a b\n c ") == 3


def test_welch_pairs_by_hand():
    from scipy.stats import t as t_dist

    rows = [RewardRow("a", f"p{i}", "x", v) for i, v in enumerate([1.0, 2.0, 3.0])]
    rows += [RewardRow("b", f"p{i}", "x", v) for i, v in enumerate([4.0, 5.0, 6.0])]
    (w,) = welch_pairs(rows)
    # means 2 and 5, variances 1 and 1: t = -3 / sqrt(1/3 + 1/3); equal n and variances -> df = 2(n-1) = 4
    t = -3 / math.sqrt(2 / 3)
    assert w["delta"] == pytest.approx(-3.0) and w["t"] == pytest.approx(t) and w["df"] == pytest.approx(4.0)
    assert w["p_value"] == pytest.approx(2 * t_dist.sf(abs(t), 4))
    assert w["p_holm"] == pytest.approx(w["p_value"])  # one comparison: nothing to adjust


def test_length_bias_by_hand():
    rows = [RewardRow("A", "p1", _w(10), 1.0), RewardRow("B", "p1", _w(5), 0.5),   # A preferred, longer
            RewardRow("A", "p2", _w(3), 0.2), RewardRow("B", "p2", _w(8), 0.9),    # B preferred, longer
            RewardRow("A", "p3", _w(4), 0.7), RewardRow("B", "p3", _w(6), 0.1),    # A preferred, shorter
            RewardRow("A", "p4", _w(2), 0.5), RewardRow("B", "p4", _w(9), 0.5),    # tie: skipped
            RewardRow("A", "p5", _w(1), 0.3)]                                      # only A: no pair
    lb = length_bias(rows)
    (pair,) = lb["pairs"]
    assert pair["n_common_prompts"] == 4 and pair["n_reward_ties"] == 1 and pair["n_pairs"] == 3
    assert pair["preferred_words_mean"] == pytest.approx((10 + 8 + 4) / 3)
    assert pair["dispreferred_words_mean"] == pytest.approx((5 + 3 + 6) / 3)
    assert (pair["n_preferred_longer"], pair["n_preferred_shorter"], pair["n_equal_length"]) == (2, 1, 0)
    assert pair["preferred_longer_rate"] == pytest.approx(2 / 3)
    assert pair["a_preferred_rate"] == pytest.approx(2 / 3)
    # sign test, 2 of 3: P(X <= 1 or X >= 2) under Binomial(3, 1/2) = 1
    assert pair["sign_test_p"] == pytest.approx(1.0)
    assert lb["pooled"]["n_pairs"] == 3


def test_repeated_answers_are_averaged_per_prompt():
    rows = [RewardRow("A", "p", _w(2), 1.0), RewardRow("A", "p", _w(4), 3.0), RewardRow("B", "p", _w(9), 1.5)]
    (pair,) = length_bias(rows)["pairs"]
    # A: mean reward 2.0 > 1.5, mean words 3 -> preferred 3 words vs dispreferred 9
    assert pair["preferred_words_mean"] == pytest.approx(3.0) and pair["dispreferred_words_mean"] == 9.0


def test_reward_length_correlation():
    rows = [RewardRow("A", f"p{i}", _w(n), 2.0 * n) for i, n in enumerate([1, 2, 3, 5])]
    c = length_bias(rows)["correlation"]
    assert c["pearson_r"] == pytest.approx(1.0) and c["spearman_rho"] == pytest.approx(1.0) and c["n"] == 4
    flat = [RewardRow("A", f"p{i}", _w(3), float(i)) for i in range(4)]
    c = length_bias(flat)["correlation"]
    assert c["pearson_r"] is None and "constant" in c["note"]


def test_tfidf_keywords_by_hand():
    kw = tfidf_keywords({"A": ["apple apple banana"], "B": ["banana cherry"]}, top_k=2)
    # smooth idf = ln((1 + 2) / (1 + df)) + 1: apple/cherry ln(1.5) + 1, banana 1; rows l2-normalised
    idf = math.log(1.5) + 1
    a_norm = math.hypot(2 * idf, 1.0)
    b_norm = math.hypot(idf, 1.0)
    assert [t for t, _ in kw["A"]] == ["apple", "banana"]
    assert kw["A"][0][1] == pytest.approx(2 * idf / a_norm) and kw["A"][1][1] == pytest.approx(1 / a_norm)
    assert [t for t, _ in kw["B"]] == ["cherry", "banana"] and kw["B"][0][1] == pytest.approx(idf / b_norm)
    assert tfidf_keywords({"A": ["the and of"]}) == {"A": []}  # only stop words


def test_analyze_rewards_summary():
    rows = [RewardRow("A", "p1", "Short answer.", 1.0), RewardRow("A", "p2", "Another short one.", 3.0),
            RewardRow("B", "p1", "A much longer answer with many words.", 2.0)]
    res = analyze_rewards(rows)
    a = res["checkpoints"][0]
    assert a["checkpoint"] == "A" and a["n"] == 2 and a["reward_mean"] == 2.0 and a["reward_std"] == pytest.approx(
        math.sqrt(2.0))
    assert a["words_mean"] == pytest.approx(2.5) and a["n_graded"] == 2
    # B has a single reward: no Welch test, and the row says why
    assert res["welch"][0]["p_value"] is None and "at least 2" in res["welch"][0]["note"]
    json.dumps(res)  # JSON-serialisable


def test_loader_names_file_line_and_field(tmp_path):
    path = tmp_path / "scores.jsonl"
    path.write_text(json.dumps({"checkpoint": "a", "prompt": "p", "response": "r", "reward": 1}) + "\n"
                    + json.dumps({"checkpoint": "a", "prompt": "p", "response": "r"}) + "\n")
    with pytest.raises(InputError, match=r"scores.jsonl:2 \[reward\]: missing field"):
        load_reward_scores(path)
    path.write_text(json.dumps({"checkpoint": "a", "prompt": "p", "response": 3, "reward": 1}) + "\n")
    with pytest.raises(InputError, match=r"scores.jsonl:1 \[response\]: expected a string"):
        load_reward_scores(path)
    path.write_text(json.dumps({"checkpoint": "a", "prompt": "p", "response": "r", "reward": "high"}) + "\n")
    with pytest.raises(InputError, match=r"\[reward\]: reward must be a finite number"):
        load_reward_scores(path)


def test_cli_analyze_rewards(tmp_path, capsys):
    path = tmp_path / "scores.jsonl"
    lines = []
    for i in range(12):
        lines.append({"checkpoint": "dpo", "prompt": f"p{i}", "response": _w(10 + i) + ". The model answers well.",
                      "reward": 1.0 + 0.1 * i})
        lines.append({"checkpoint": "base", "prompt": f"p{i}", "response": "A short reply.", "reward": 0.2 * (i % 3)})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["-q", "analyze", "rewards", "--scores", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["checkpoint"] for c in data["checkpoints"]] == ["dpo", "base"]
    assert data["length_bias"]["pooled"]["preferred_longer_rate"] == 1.0
    out = tmp_path / "analysis"
    assert main(["-q", "analyze", "rewards", "--scores", str(path), "--out", str(out)]) == 0
    assert "# Reward-model analysis" in capsys.readouterr().out
    for name in ("rewards_analysis.json", "rewards_analysis.md", "reward_distributions.png", "reward_vs_words.png"):
        assert (out / name).exists(), name
    assert (out / "reward_distributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["-q", "analyze", "rewards", "--scores", str(tmp_path / "missing.jsonl")]) == 2


def test_pairs_from_reward_score_pairs_get_accuracy_and_a_paired_test(tmp_path, capsys):
    # issue 16: `analyze rewards` on `reward score --pairs` output: pairwise accuracy and a paired test.
    import json

    import numpy as np
    from scipy import stats as scipy_stats

    from evalbench.cli import main

    rng = np.random.default_rng(5)
    chosen = rng.normal(0.5, 1.0, 40)
    rejected = chosen - rng.normal(0.4, 0.5, 40)
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"p{i}", "chosen": "a", "rejected": "b", "reward_chosen": float(c),
             "reward_rejected": float(r), "reward_margin": float(c - r)} for i, (c, r) in enumerate(zip(chosen, rejected))]
    rows.append({"prompt": "x", "chosen": "a", "rejected": "b", "reward_chosen": None, "reward_rejected": None,
                 "reward_margin": None})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["analyze", "rewards", "--scores", str(path), "--json", "--out", str(tmp_path / "out")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_pairs"] == 40 and result["n_unscored"] == 1
    assert result["pairwise_accuracy"] == pytest.approx(float(np.mean(chosen > rejected)))
    ref = scipy_stats.ttest_rel(chosen, rejected)
    assert result["paired_t"]["p_value"] == pytest.approx(ref.pvalue) and result["wilcoxon"]["p_value"] < 0.05
    assert (tmp_path / "out" / "pairs_analysis.md").read_text().startswith("# Reward model on preference pairs")
    assert (tmp_path / "out" / "chosen_vs_rejected.png").exists()
