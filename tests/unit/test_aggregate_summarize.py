"""Across-seed aggregation and run loading on synthetic runs written through ResultsStore."""

from __future__ import annotations

import json
import math

import pytest

from evalbench.aggregate.summarize import (
    AGGREGATE_FIELDS,
    ResultSet,
    aggregate_results,
    aggregate_run,
    load_runs,
)
from evalbench.errors import InputError
from evalbench.store import ResultsStore
from tests.unit.synth_runs import Unit, make_run

# Student t quantile t_{0.975, 2} from printed tables (e.g. Abramowitz & Stegun, table 26.10): 4.303.
T_975_DF2 = 4.302652729911275


def _row(checkpoint, seed, value, group=None, train_seed=None, suite="alpaca", **metrics):
    return {"suite": suite, "checkpoint": checkpoint, "group": group, "train_seed": train_seed, "seed": seed,
            "metrics": {"win_rate": value, **metrics}}


def test_mean_std_and_t_interval_by_hand():
    rows = [_row("dpo-s1", 0, 1.0, "dpo", 1), _row("dpo-s2", 0, 2.0, "dpo", 2), _row("dpo-s3", 0, 3.0, "dpo", 3)]
    (agg,) = aggregate_results(rows, bootstrap_iters=500)
    # mean 2, sample std 1 (deviations -1, 0, 1; sum of squares 2 over n-1 = 2), sem 1/sqrt(3).
    assert list(agg) == list(AGGREGATE_FIELDS)
    assert agg["group"] == "dpo" and agg["n"] == 3
    assert agg["mean"] == pytest.approx(2.0) and agg["std"] == pytest.approx(1.0)
    half = T_975_DF2 / math.sqrt(3)
    assert agg["ci_low"] == pytest.approx(2.0 - half, rel=1e-9)
    assert agg["ci_high"] == pytest.approx(2.0 + half, rel=1e-9)
    # the bootstrap interval of 3 values lies within their range
    assert 1.0 <= agg["boot_low"] <= 2.0 <= agg["boot_high"] <= 3.0
    assert agg["train_seeds"] == [1, 2, 3] and agg["seeds"] == [0]


def test_generation_seeds_are_averaged_within_models_and_both_recorded():
    rows = [_row("dpo-s1", 0, 1.0, "dpo", 1), _row("dpo-s1", 1, 3.0, "dpo", 1),
            _row("dpo-s2", 0, 5.0, "dpo", 2), _row("dpo-s2", 1, 7.0, "dpo", 2)]
    (agg,) = aggregate_results(rows, bootstrap_iters=200)
    # Two models (checkpoints) with two generation seeds each: model means 2 and 6. The interval is
    # over the 2 models; generation seeds are replicates within a model, not independent models.
    assert agg["n"] == 2 and agg["n_models"] == 2 and agg["n_gen_seeds"] == 2
    assert agg["mean"] == pytest.approx(4.0) and agg["std"] == pytest.approx(math.sqrt(8.0))
    assert agg["train_seeds"] == [1, 2] and agg["seeds"] == [0, 1]
    assert "averaged within each of 2 models" in agg["note"]


def test_one_model_with_generation_seeds_says_the_spread_is_sampling_noise():
    rows = [_row("base", s, v) for s, v in enumerate([1.0, 2.0, 3.0])]
    (agg,) = aggregate_results(rows, bootstrap_iters=100)
    assert agg["n"] == 3 and agg["n_models"] == 1 and agg["std"] == pytest.approx(1.0)
    assert "one trained model" in agg["note"]


def test_one_seed_gives_none_spread_and_a_note_and_missing_values_are_counted():
    rows = [_row("base", 0, 10.0, lc=None), _row("base", 1, None, lc=None)]
    aggs = {a["metric"]: a for a in aggregate_results(rows, bootstrap_iters=100)}
    wr = aggs["win_rate"]
    assert wr["n"] == 1 and wr["mean"] == 10.0
    assert wr["std"] is None and wr["ci_low"] is None and wr["boot_high"] is None
    assert "one seed" in wr["note"] and "1 of 2" in wr["note"] and wr["n_missing"] == 1
    assert aggs["lc"]["mean"] is None and aggs["lc"]["n"] == 0 and "no valid value" in aggs["lc"]["note"]


def test_strings_are_not_metrics_and_groups_default_to_checkpoint():
    rows = [_row("a", 0, 1.0, judge_name="gpt"), _row("a", 1, 2.0, judge_name="gpt"), _row("b", 0, 4.0, suite="x")]
    aggs = aggregate_results(rows, bootstrap_iters=100)
    assert {(a["suite"], a["group"], a["metric"]) for a in aggs} == {("alpaca", "a", "win_rate"),
                                                                      ("x", "b", "win_rate")}


def test_aggregate_run_reads_and_writes_summary(tmp_path):
    path = make_run(tmp_path, "r", [Unit("base", [0.0, 100.0], seed=0), Unit("base", [100.0, 100.0], seed=1)])
    rows = aggregate_run(path, bootstrap_iters=100, write=True)
    assert rows[0]["mean"] == pytest.approx(75.0)  # seed means 50 and 100
    summary = json.loads((path / "summary.json").read_text())
    assert summary["aggregate"] == json.loads(json.dumps(rows))
    assert len(summary["results"]) == 2  # kept


def test_missing_summary_is_named_and_scanned_runs_without_one_are_skipped(tmp_path, caplog):
    make_run(tmp_path, "done", [Unit("base", [1.0, 2.0])])
    unfinished = ResultsStore(tmp_path).start({"x": 1}, "h", run_id="unfinished")
    with pytest.raises(InputError, match=r"unfinished[/\\]summary.json"):
        load_runs([unfinished.path])
    runs = load_runs([tmp_path])
    assert [r.run_id for r in runs] == ["done"]
    assert "unfinished" in caplog.text


def test_bad_summary_rows_name_file_and_field(tmp_path):
    path = make_run(tmp_path, "r", [Unit("base", [1.0, 2.0])])
    data = json.loads((path / "summary.json").read_text())
    del data["results"][0]["metrics"]
    (path / "summary.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"summary.json \[results\[0\]\.metrics\]"):
        load_runs([path])
    (path / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="summary.json:1: invalid JSON"):
        load_runs([path])


def test_unknown_run_argument_is_an_error(tmp_path):
    with pytest.raises(InputError, match="not a run directory"):
        load_runs(["nope"], results_root=tmp_path)


def test_merging_runs_counts_identical_units_once_and_renames_conflicts(tmp_path):
    a = make_run(tmp_path / "a", "ra", [Unit("base", [1.0, 2.0]), Unit("dpo", [3.0, 4.0])])
    b = make_run(tmp_path / "b", "rb", [Unit("base", [1.0, 2.0]), Unit("ipo", [5.0, 6.0])])
    c = make_run(tmp_path / "c", "rc", [Unit("base", [9.0, 9.0])])
    rs = ResultSet(load_runs([a, b]))
    assert rs.groups() == ["base", "dpo", "ipo"]
    assert rs.group("alpaca", "base").n_units == 1  # same seed, same numbers: one unit
    rs = ResultSet(load_runs([a, c]))
    assert rs.groups() == ["base", "dpo", "base@rc"]
    # more seeds of the same group in another run are merged
    d = make_run(tmp_path / "d", "rd", [Unit("base", [2.0, 2.0], seed=1)])
    rs = ResultSet(load_runs([a, d]))
    assert rs.group("alpaca", "base").n_units == 2


def test_metric_selectors(tmp_path):
    path = make_run(tmp_path, "r", [Unit("base", [1.0, 2.0], metrics={"n_total": 2, "category/writing": 5.0,
                                                                       "avg_length": 10})])
    rs = ResultSet(load_runs([path]))
    assert rs.metric_columns() == [("alpaca", "win_rate"), ("alpaca", "avg_length")]
    assert rs.metric_columns(["alpaca:category/*"]) == [("alpaca", "category/writing")]
    with pytest.raises(InputError, match="did you mean 'win_rate'"):
        rs.metric_columns(["win_rat"])


def test_score_array_models_gen_seeds_prompts_and_judge_repeats(tmp_path):
    from evalbench.aggregate.summarize import RunData
    from evalbench.store import SampleRecord
    from tests.unit.synth_runs import Unit

    units = [Unit("dpo-s0", [1.0, 2.0, 3.0], seed=0, group="dpo", train_seed=0),
             Unit("dpo-s0", [3.0, 4.0, None], seed=1, group="dpo", train_seed=0),
             Unit("dpo-s1", [5.0, 6.0, 7.0], seed=0, group="dpo", train_seed=1)]
    run = load_runs([make_run(tmp_path, "r", units)])[0]
    # a second judging of dpo-s1 / seed 0 / sample "0" (the store keeps one record per key, so add it
    # to the loaded records the way a suite with judge repeats would provide them)
    extra = SampleRecord(suite="alpaca", checkpoint="dpo-s1", seed=0, sample_id="0", scores={"win_rate": 9.0},
                         data={"judge_repeat": 1})
    run = RunData(run.path, run.header, run.summary, _samples=[*run.samples(), extra])
    g = ResultSet([run]).group("alpaca", "dpo")
    arr = g.score_array("win_rate")
    assert arr.models == ["dpo-s0", "dpo-s1"] and arr.prompt_ids == ["0", "1", "2"]
    assert arr.values.shape == (2, 2, 3) and arr.n_gen_seeds == 2
    assert arr.values[0, 1, 2] != arr.values[0, 1, 2]  # the failed judgment is NaN
    assert arr.values[1, 0, 0] == pytest.approx(7.0)  # judge repeats 5 and 9 averaged
    assert math.isnan(arr.values[1, 1, 0])  # dpo-s1 has one generation seed: padded
    assert g.models() == ["dpo-s0", "dpo-s1"] and g.model_values("win_rate")["dpo-s0"] == [2.0, 3.5]
    values, level = g.top_level_values("win_rate")
    assert level == "model" and values == {"dpo-s0": pytest.approx(2.75), "dpo-s1": pytest.approx(6.0)}
    assert g.score_array("nope") is None


def test_score_array_keeps_judge_repeats_on_their_own_axis_when_asked(tmp_path):
    from evalbench.aggregate.summarize import RunData
    from evalbench.store import SampleRecord
    from tests.unit.synth_runs import Unit

    run = load_runs([make_run(tmp_path, "r", [Unit("m", [1.0, 2.0])])])[0]
    extra = [SampleRecord(suite="alpaca", checkpoint="m", seed=0, sample_id=sid, scores={"win_rate": v},
                          data={"judge_repeat": 1}) for sid, v in (("0", 3.0), ("1", 6.0))]
    run = RunData(run.path, run.header, run.summary, _samples=[*run.samples(), *extra])
    arr = ResultSet([run]).group("alpaca", "m").score_array("win_rate", judge_repeats=True)
    assert arr.values.shape == (1, 1, 2, 2)
    assert arr.values[0, 0, :, 0].tolist() == [1.0, 3.0] and arr.values[0, 0, :, 1].tolist() == [2.0, 6.0]


def test_scan_skips_unfinished_runs_with_a_note_and_keeps_named_ones(tmp_path, caplog):
    # A run that failed after writing results neither fails nor pollutes `export` over a results root.
    import json as _json

    from evalbench.aggregate.summarize import load_runs
    from tests.unit.synth_runs import Unit, make_run, scores

    ok = make_run(tmp_path / "results", "ok", [Unit("a", scores(10, 50, 5, 1))])
    bad = make_run(tmp_path / "results", "bad", [Unit("a", scores(10, 50, 5, 2))])
    header = _json.loads((bad / "run.json").read_text())
    (bad / "run.json").write_text(_json.dumps({**header, "status": "error", "error": "judge died"}))
    runs = load_runs([tmp_path / "results"])
    assert [r.run_id for r in runs] == ["ok"]
    assert "skipping 1 run(s) that did not finish: bad (error)" in caplog.text
    assert [r.run_id for r in load_runs([bad])] == ["bad"]  # named explicitly: loaded, with a warning
    assert ok.exists()
