"""One unit convention (issue 18, item 4): rates of judged comparisons in percent everywhere,
lm-eval accuracies as lm-eval's fractions, the unit named in tables and documented; FastChat's own
names and fractions wherever FastChat-compatible output is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalbench.aggregate.compare import compare_runs, to_plain
from evalbench.aggregate.summarize import load_runs
from evalbench.errors import InputError
from evalbench.units import unit_of, unit_suffix
from evalbench.store import SCHEMA_VERSION, SampleRecord, check_schema
from evalbench.suites.mtbench.scoring import PairScore
from evalbench.suites.mtbench.suite import MTBench
from tests.unit.synth_runs import Unit, make_run

DOCS = Path(__file__).resolve().parents[2] / "docs" / "results-format.md"


def _pair_record(qid: int, win: int, loss: int, tie: int) -> SampleRecord:
    pairwise = {"win": win, "loss": loss, "tie": tie, "failed": 0, "inconsistent": 0}
    n = win + loss + tie
    return SampleRecord(suite="mtbench", checkpoint="dpo", seed=0, sample_id=str(qid),
                        scores={"pairwise_win_rate": 100.0 * (win + tie / 2) / n},
                        data={"question_id": qid, "pairwise": pairwise})


def test_mtbench_pairwise_rates_are_percent_and_match_fastchat_fractions_x100():
    # 3 wins, 1 loss, 2 ties over two questions
    recs = [_pair_record(81, 2, 0, 0), _pair_record(82, 1, 1, 2)]
    m = MTBench.summarize_samples(recs)
    fastchat = PairScore("dpo", win=3, loss=1, tie=2, n=6, n_failed=0, n_inconsistent=0,
                         win_rate=(3 + 1) / 6, win_rate_strict=3 / 6, loss_rate=1 / 6).fastchat()
    assert m["pairwise_win_rate"] == pytest.approx(100 * fastchat["win_rate_adjusted"])
    assert m["pairwise_win_rate_strict"] == pytest.approx(100 * fastchat["win_rate"])
    assert m["pairwise_loss_rate"] == pytest.approx(100 * fastchat["loss_rate"])
    assert list(fastchat) == ["model", "win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted"]
    # the per-question scores are percent too, so their mean is the summary's rate when n is equal
    assert all(0 <= r.scores["pairwise_win_rate"] <= 100 for r in recs)


def test_mtbench_version_bumped_so_compare_refuses_mixing_scales(tmp_path):
    assert MTBench.version == "2"
    old = Unit("base", None, suite="mtbench", suite_version="1", metrics={"pairwise_win_rate": 0.48})
    new = Unit("dpo", None, suite="mtbench", suite_version="2", metrics={"pairwise_win_rate": 52.0})
    runs = load_runs([make_run(tmp_path, "r", [old, new])])
    with pytest.raises(InputError, match="suite versions differ"):
        compare_runs(runs, baseline="base")


def test_schema_minor_bump_reads_every_1x_and_refuses_2x(tmp_path):
    assert SCHEMA_VERSION == "1.1"
    for version in ("1.0", "1.1", "1.9"):
        check_schema({"schema_version": version}, tmp_path / "summary.json")
    with pytest.raises(InputError, match="schema 2.0"):
        check_schema({"schema_version": "2.0"}, tmp_path / "summary.json")


@pytest.mark.parametrize("metric", ["win_rate", "length_controlled_winrate", "discrete_win_rate",
                                    "pairwise_win_rate", "pairwise_win_rate_strict", "pairwise_loss_rate"])
def test_every_rate_is_percent(metric):
    unit = unit_of(metric)
    assert unit_suffix(metric) == "%" and (unit.low, unit.high) == (0.0, 100.0)


@pytest.mark.parametrize("metric", ["arc_challenge/acc_norm", "mmlu/acc", "gsm8k/exact_match",
                                    "gsm8k/exact_match,flexible-extract", "winogrande/acc"])
def test_lm_eval_accuracies_are_fractions_and_say_so(metric):
    unit = unit_of(metric)
    assert unit_suffix(metric) == "0-1" and (unit.low, unit.high) == (0.0, 1.0)
    assert unit_suffix("leaderboard_bbh/normalized") == ""  # 0-100, in its label
    assert unit_of("leaderboard_bbh/normalized").high == 100.0


def test_tables_name_the_unit(tmp_path):
    units = [Unit(f"{g}-{s}", None, seed=s, group=g, suite=suite, metrics=metrics)
             for g in ("base", "dpo") for s in range(2)
             for suite, metrics in (("mtbench", {"pairwise_win_rate": 50.0 + s, "score": 6.0 + s}),
                                    ("openllm", {"arc_challenge/acc_norm": 0.41 + s / 100}))]
    text = to_plain(compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=200))
    lines = text.splitlines()
    assert any(line.startswith("pairwise_win_rate (%) ") for line in lines)
    assert any(line.startswith("arc_challenge/acc_norm (0-1) ") for line in lines)
    assert any(line.startswith("score ") for line in lines)  # grades need no unit in the name


def test_docs_state_the_convention_and_the_changelog():
    text = DOCS.read_text(encoding="utf-8")
    assert f"# Results format (schema {SCHEMA_VERSION})" in text
    assert "## Units" in text and "## Changelog" in text and "- **1.1**" in text
    for name in ("win_rate_adjusted", "pairwise_win_rate_strict", "percent", "fraction"):
        assert name in text
