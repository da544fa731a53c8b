"""lm-eval sample logs -> SampleRecords -> summaries (pure; lm-eval's own aggregations as the check)."""

from __future__ import annotations

import math

import pytest

from evalbench.store import SampleRecord
from evalbench.suites.openllm.metrics import (
    metric_key,
    normalise,
    records_from_samples,
    summarize_tasks,
    summarize_v2,
    weighted_mean,
)


def mc_row(doc_id: int, lls: list[float], gold: int, *, acc_norm: float | None = None) -> dict:
    """A multiple-choice row in lm-eval's sample-log shape (arguments, resps, filtered_resps, metrics)."""
    acc = float(max(range(len(lls)), key=lambda i: lls[i]) == gold)
    row = {"doc_id": doc_id, "doc": {"q": doc_id}, "target": gold,
           "arguments": [[f"ctx {doc_id}", f" choice {i}"] for i in range(len(lls))],
           "resps": [[[ll, False]] for ll in lls], "filtered_resps": [[ll, False] for ll in lls],
           "filter": "none", "metrics": ["acc", "acc_norm"], "doc_hash": f"d{doc_id}", "prompt_hash": "p",
           "target_hash": "t", "acc": acc, "acc_norm": acc if acc_norm is None else acc_norm}
    return row


def gen_rows(doc_id: int, text: str, strict: float, flexible: float) -> list[dict]:
    base = {"doc_id": doc_id, "doc": {}, "target": "#### 3", "arguments": [["Q", {"until": ["Question:"]}]],
            "resps": [[text]], "metrics": ["exact_match"], "doc_hash": "h", "prompt_hash": "p", "target_hash": "t"}
    return [{**base, "filter": "strict-match", "filtered_resps": ["[invalid]"], "exact_match": strict},
            {**base, "filter": "flexible-extract", "filtered_resps": ["3"], "exact_match": flexible}]


def test_metric_key_plain_for_none_and_headline_filter():
    assert metric_key("acc", "none") == "acc"
    assert metric_key("exact_match", "strict-match", "exact_match,strict-match") == "exact_match"
    assert metric_key("exact_match", "flexible-extract", "exact_match,strict-match") == "exact_match,flexible-extract"


def test_multiple_choice_records_carry_scores_and_loglikelihoods():
    rows = [mc_row(0, [-3.0, -1.0, -2.0, -4.0], gold=1), mc_row(1, [-1.0, -2.0], gold=1, acc_norm=1.0)]
    recs = records_from_samples(rows, suite="openllm", checkpoint="base", seed=0, task="arc_challenge",
                                leaf="arc_challenge", headline="acc_norm")
    assert [r.sample_id for r in recs] == ["arc_challenge/0", "arc_challenge/1"]
    assert recs[0].scores == {"arc_challenge/acc": 1.0, "arc_challenge/acc_norm": 1.0}
    assert recs[1].scores == {"arc_challenge/acc": 0.0, "arc_challenge/acc_norm": 1.0}
    assert recs[0].data["loglikelihoods"] == [-3.0, -1.0, -2.0, -4.0]
    assert recs[0].data["n_choices"] == 4 and recs[1].data["n_choices"] == 2
    assert recs[0].data["headline"] == "acc_norm" and recs[0].error is None


def test_generation_rows_of_two_filters_make_one_record():
    rows = gen_rows(0, " so 3", 0.0, 1.0) + gen_rows(1, " #### 3", 1.0, 1.0)
    recs = records_from_samples(rows, suite="openllm", checkpoint="c", seed=2, task="gsm8k", leaf="gsm8k",
                                headline="exact_match,strict-match")
    assert len(recs) == 2 and recs[0].seed == 2
    assert recs[0].scores == {"gsm8k/exact_match": 0.0, "gsm8k/exact_match,flexible-extract": 1.0}
    assert recs[1].scores == {"gsm8k/exact_match": 1.0, "gsm8k/exact_match,flexible-extract": 1.0}
    assert recs[0].data["response"] == " so 3"


def test_group_member_records_carry_group_key_and_mean_is_lm_eval_weighted_aggregate():
    from lm_eval.api.metrics import aggregate_subtask_metrics, mean

    # Two subjects of different sizes: lm-eval's group score is the size-weighted mean of their means.
    a = [mc_row(i, [-1.0, -2.0], gold=int(i % 3 == 0)) for i in range(5)]
    b = [mc_row(i, [-1.0, -2.0], gold=0 if i < 2 else 1) for i in range(3)]
    recs = (records_from_samples(a, suite="s", checkpoint="c", seed=0, task="mmlu", leaf="mmlu_anatomy", headline="acc")
            + records_from_samples(b, suite="s", checkpoint="c", seed=0, task="mmlu", leaf="mmlu_virology",
                                   headline="acc"))
    assert recs[0].scores.keys() == {"mmlu/acc", "mmlu/acc_norm", "mmlu_anatomy/acc", "mmlu_anatomy/acc_norm"}
    expected = aggregate_subtask_metrics([mean([r["acc"] for r in a]), mean([r["acc"] for r in b])], [5, 3])
    summary = summarize_tasks(recs, ["mmlu"])
    assert summary["mmlu/acc"] == pytest.approx(expected)
    assert "mmlu_anatomy/acc" not in summary  # members only with report_subtasks
    assert summarize_tasks(recs, ["mmlu"], report_subtasks=True)["mmlu_anatomy/acc"] == pytest.approx(3 / 5)  # argmax is choice 0; gold 0 for i = 1, 2, 4
    assert summary["average"] == pytest.approx(expected)


def test_stderr_is_lm_eval_mean_stderr():
    from lm_eval.api.metrics import mean_stderr

    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    recs = [SampleRecord(suite="s", checkpoint="c", seed=0, sample_id=f"t/{i}", scores={"t/acc": v},
                         data={"task": "t", "leaf": "t", "headline": "acc"}) for i, v in enumerate(values)]
    out = summarize_tasks(recs, ["t"])
    assert out["t/acc"] == pytest.approx(sum(values) / len(values))
    assert out["t/acc_stderr"] == pytest.approx(mean_stderr(values))


def test_list_valued_metrics_are_pooled_like_ifeval_and_non_numbers_are_unscored():
    rows = [{"doc_id": 0, "filter": "none", "metrics": ["inst_level_strict_acc", "prompt_level_strict_acc", "f1"],
             "inst_level_strict_acc": [True, False, True], "prompt_level_strict_acc": False, "f1": ["a", "b"],
             "resps": [["x"]], "filtered_resps": ["x"]},
            {"doc_id": 1, "filter": "none", "metrics": ["inst_level_strict_acc", "prompt_level_strict_acc", "f1"],
             "inst_level_strict_acc": [True], "prompt_level_strict_acc": True, "f1": ["a", "a"],
             "resps": [["y"]], "filtered_resps": ["y"]}]
    recs = records_from_samples(rows, suite="s", checkpoint="c", seed=0, task="ifeval", leaf="ifeval")
    assert recs[0].scores["ifeval/inst_level_strict_acc"] == pytest.approx(2 / 3)
    assert recs[0].data["weights"] == {"ifeval/inst_level_strict_acc": 3}
    assert recs[0].data["unscored"] == ["f1"] and "ifeval/f1" not in recs[0].scores
    mean, se, n = weighted_mean(recs, "ifeval/inst_level_strict_acc")
    # lm-eval's agg_inst_level_acc flattens the lists: 3 of 4 instructions followed.
    assert (mean, se, n) == (pytest.approx(3 / 4), None, 2)


def test_average_is_none_when_a_task_has_no_score():
    recs = [SampleRecord(suite="s", checkpoint="c", seed=0, sample_id="a/0", scores={"a/acc": 1.0},
                         data={"task": "a", "headline": "acc"})]
    assert summarize_tasks(recs, ["a", "b"])["average"] is None
    assert summarize_tasks(recs, ["a"])["average"] == 1.0


def test_normalise_matches_the_leaderboard_gpqa_example():
    # huggingface.co/docs/leaderboards/open_llm_leaderboard/normalization: GPQA raw 0.6 -> 46.67
    assert normalise(0.6, 0.25) == pytest.approx(46.6667, abs=1e-4)
    assert normalise(0.2, 0.25) == 0.0  # below the random baseline
    assert normalise(0.5, 0.0) == 50.0


def _v2_records(leaf: str, n: int, correct: int, n_choices: int | None, metric: str = "acc_norm") -> list[SampleRecord]:
    out = []
    for i in range(n):
        data = {"task": "leaderboard", "leaf": leaf}
        if n_choices:
            data["n_choices"] = n_choices
        out.append(SampleRecord(suite="openllm_v2", checkpoint="c", seed=0, sample_id=f"{leaf}/{i}",
                                scores={f"{leaf}/{metric}": float(i < correct)}, data=data))
    return out


def test_v2_normalisation_reproduces_the_leaderboard_musr_example_and_average():
    # The leaderboard docs' MuSR example: raw 0.7 / 0.4 / 0.6 with 2 / 5 / 3 choices normalise to
    # 40.0 / 25.0 / 40.0 and average 35.0.
    recs = (_v2_records("leaderboard_musr_murder_mysteries", 10, 7, 2)
            + _v2_records("leaderboard_musr_object_placements", 10, 4, 5)
            + _v2_records("leaderboard_musr_team_allocation", 10, 6, 3)
            + _v2_records("leaderboard_bbh_navigate", 4, 3, 2)           # 0.75 over 1/2 -> 50
            + _v2_records("leaderboard_gpqa_main", 5, 3, 4)              # 0.6 over 0.25 -> 46.67
            + _v2_records("leaderboard_mmlu_pro", 10, 1, 10, "acc")      # 0.1 over 0.1 -> 0
            + _v2_records("leaderboard_math_algebra_hard", 4, 1, None, "exact_match")   # 25
            + _v2_records("leaderboard_ifeval", 2, 1, None, "prompt_level_strict_acc")
            + _v2_records("leaderboard_ifeval", 2, 2, None, "inst_level_strict_acc"))
    # ifeval: the two metrics sit on the same two documents
    by_id: dict[str, SampleRecord] = {}
    for r in recs:
        if r.sample_id in by_id:
            merged = {**by_id[r.sample_id].scores, **r.scores}
            by_id[r.sample_id] = by_id[r.sample_id].model_copy(update={"scores": merged})
        else:
            by_id[r.sample_id] = r
    out = summarize_v2(list(by_id.values()))
    assert out["leaderboard_musr/normalized"] == pytest.approx(35.0, abs=1e-3)
    assert out["leaderboard_bbh/normalized"] == pytest.approx(50.0)
    assert out["leaderboard_gpqa/normalized"] == pytest.approx(46.6667, abs=1e-4)
    assert out["leaderboard_mmlu_pro/normalized"] == pytest.approx(0.0)
    assert out["leaderboard_math_hard/normalized"] == pytest.approx(25.0)
    assert out["leaderboard_ifeval/normalized"] == pytest.approx(75.0)  # (0.5 + 1.0) / 2
    assert out["average"] == pytest.approx((35 + 50 + 46.6667 + 0 + 25 + 75) / 6, abs=1e-3)
    assert out["leaderboard_musr_team_allocation/acc_norm"] == pytest.approx(0.6)


def test_v2_average_is_none_when_a_benchmark_is_missing():
    out = summarize_v2(_v2_records("leaderboard_gpqa_main", 4, 2, 4))
    assert out["leaderboard_gpqa/normalized"] == pytest.approx(100 * (0.5 - 0.25) / 0.75)
    assert out["leaderboard_bbh/normalized"] is None and out["average"] is None
    assert not math.isnan(out["leaderboard_gpqa/normalized"])
