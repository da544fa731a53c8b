"""`evalbench export`: leaderboard CSV schema and values, AlpacaEval-compatible leaderboard."""

from __future__ import annotations

import csv

import pytest

from evalbench.aggregate.summarize import load_runs
from evalbench.cli import main
from evalbench.errors import InputError
from evalbench.report.export import (
    ALPACA_LEADERBOARD_COLUMNS,
    LEADERBOARD_COLUMNS,
    METRIC_FIELDS,
    export_alpaca_leaderboard,
    export_leaderboard,
)
from tests.unit.synth_runs import Unit, make_run, scores

# The fixed column order, spelled out: changing it breaks downstream readers, so it must be a decision.
EXPECTED_FIXED = ["group", "model", "adapter", "adapter_sha256", "method", "n_seeds", "train_seeds", "seeds",
                  "judge", "self_judged", "suites", "avg_length", "baseline", "run_ids", "spec_hash", "evalbench_version",
                  "n_samples", "n_failed"]
EXPECTED_FIELDS = ["mean", "std", "ci_low", "ci_high", "n", "delta", "p_value", "p_adjusted", "significant",
                   "test", "delta_ci_low", "delta_ci_high", "mde", "n_models", "n_prompts"]


def _alpaca_metrics(wr, lc, length, n_wins):
    return {"win_rate": wr, "standard_error": 1.5, "n_wins": n_wins, "n_wins_base": 100 - n_wins, "n_draws": 0,
            "n_total": 100, "discrete_win_rate": float(n_wins), "avg_length": length,
            "length_controlled_winrate": lc, "lc_standard_error": None}


def _runs(tmp_path):
    units = []
    for s in range(2):
        units.append(Unit("base", None, seed=s, metrics=_alpaca_metrics(50.0 + s, 50.0, 1000.6 + s, 50)))
        units.append(Unit(f"dpo-s{s}", None, group="dpo", train_seed=s, method="dpo", adapter=f"/ckpt/dpo-s{s}",
                          metrics=_alpaca_metrics(60.0 + 2 * s, 55.0 + s, 1400.0, 60 + s)))
        units.append(Unit(f"dpo-s{s}", scores(30, 7, 1, s), group="dpo", train_seed=s, method="dpo",
                          adapter=f"/ckpt/dpo-s{s}", suite="mtbench", metrics={}))
    return make_run(tmp_path, "r1", units, metric="score")


def test_leaderboard_columns_and_values(tmp_path):
    out = tmp_path / "leaderboard.csv"
    export_leaderboard(load_runs([_runs(tmp_path)]), out, baseline="base", iters=500)
    assert list(LEADERBOARD_COLUMNS) == EXPECTED_FIXED and list(METRIC_FIELDS) == EXPECTED_FIELDS
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        rows = {r["group"]: r for r in reader}
    assert header[:len(EXPECTED_FIXED)] == EXPECTED_FIXED
    metric_cols = header[len(EXPECTED_FIXED):]
    # default metrics: quality metrics in order of appearance; counts and standard errors left out
    expected_metrics = [("alpaca", "win_rate"), ("alpaca", "discrete_win_rate"), ("alpaca", "avg_length"),
                        ("alpaca", "length_controlled_winrate"), ("mtbench", "score")]
    assert metric_cols == [f"{s}.{m}.{f}" for s, m in expected_metrics for f in EXPECTED_FIELDS]
    dpo, base = rows["dpo"], rows["base"]
    assert dpo["method"] == "dpo" and dpo["adapter"] == "/ckpt/dpo-s0;/ckpt/dpo-s1"
    assert dpo["train_seeds"] == "0;1" and dpo["n_seeds"] == "2" and dpo["suites"] == "alpaca;mtbench"
    assert dpo["spec_hash"] == "hash-r1" and dpo["run_ids"] == "r1" and dpo["evalbench_version"]
    assert dpo["baseline"] == "base" and dpo["model"] == "tiny" and dpo["judge"] == "stub-judge"
    assert dpo["n_samples"] == "60" and dpo["n_failed"] == "0" and base["n_samples"] == "0"  # 2 x 30 mtbench
    # win rate 60 and 62: mean 61, std sqrt(2); difference to base (50, 51): 10.5
    assert float(dpo["alpaca.win_rate.mean"]) == pytest.approx(61.0)
    assert float(dpo["alpaca.win_rate.std"]) == pytest.approx(2 ** 0.5)
    assert float(dpo["alpaca.win_rate.delta"]) == pytest.approx(10.5)
    assert float(dpo["avg_length"]) == pytest.approx(1400.0)
    assert base["alpaca.win_rate.delta"] == "" and base["alpaca.win_rate.p_value"] == ""
    # the baseline has no mtbench results: no comparison there
    assert base["mtbench.score.mean"] == "" and dpo["mtbench.score.p_value"] == ""


def test_without_baseline_significance_columns_are_empty(tmp_path):
    out = tmp_path / "lb.csv"
    export_leaderboard(load_runs([_runs(tmp_path)]), out, iters=200)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["baseline"] == "" and r["alpaca.win_rate.p_value"] == "" for r in rows)


def test_alpaca_leaderboard_has_the_published_columns(tmp_path, data_dir):
    import pandas as pd

    published = data_dir / "alpaca_eval" / "leaderboards" / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
    with open(published, newline="") as fh:
        assert tuple(next(csv.reader(fh))) == ALPACA_LEADERBOARD_COLUMNS
    out = tmp_path / "ae.csv"
    export_alpaca_leaderboard(load_runs([_runs(tmp_path)]), out)
    ours = pd.read_csv(out, index_col=0)
    ref = pd.read_csv(published, index_col=0)
    assert list(ours.columns) == list(ref.columns)
    assert list(ours.index) == ["dpo", "base"]  # sorted by LC win rate, like alpaca_eval's leaderboard.csv
    assert ours.loc["dpo", "win_rate"] == pytest.approx(61.0)
    assert ours.loc["dpo", "n_wins"] == 60  # mean of 60 and 61 = 60.5, rounded half to even
    assert ours.loc["base", "avg_length"] == 1001  # mean 1001.1, truncated like the leaderboard
    assert ours.loc["base", "mode"] == "community" and pd.isna(ours.loc["base", "lc_standard_error"])
    # merged into the published leaderboard: every published row kept, ours inserted by LC
    merged = tmp_path / "merged.csv"
    export_alpaca_leaderboard(load_runs([_runs(tmp_path / "again")]), merged, merge=published)
    m = pd.read_csv(merged, index_col=0)
    assert len(m) == len(ref) + 2 and list(m.columns) == list(ref.columns)
    lc = m["length_controlled_winrate"].dropna().to_numpy()
    assert (lc[:-1] >= lc[1:]).all()
    assert m.loc["gpt4_1106_preview", "win_rate"] == ref.loc["gpt4_1106_preview", "win_rate"]


def test_alpaca_export_needs_alpaca_results(tmp_path):
    run = make_run(tmp_path, "r", [Unit("base", [1.0, 2.0], suite="mtbench")])
    with pytest.raises(InputError, match="no 'alpaca' results"):
        export_alpaca_leaderboard(load_runs([run]), tmp_path / "x.csv")


def test_cli_export(tmp_path, capsys):
    results = tmp_path / "results"
    _runs(results)
    out, ae = tmp_path / "lb.csv", tmp_path / "ae.csv"
    assert main(["-q", "export", "--runs", str(results), "--out", str(out), "--baseline", "base",
                 "--iters", "300", "--alpaca-out", str(ae)]) == 0
    assert out.exists() and ae.exists()
    assert main(["-q", "export", "--results", str(results), "--out", str(tmp_path / "lb2.csv")]) == 0
    assert (tmp_path / "lb2.csv").read_text().splitlines()[0].startswith(",".join(EXPECTED_FIXED))


def test_self_judged_rows_are_marked_in_the_leaderboard_and_the_comparison(tmp_path):
    # issue 14: numbers judged by the policy's own base model never pass as independently judged.
    import json as _json

    from evalbench.aggregate.compare import compare_runs
    from evalbench.aggregate.summarize import load_runs
    from evalbench.report.export import leaderboard_rows
    from tests.unit.synth_runs import Unit, make_run, scores

    run = make_run(tmp_path / "results", "r", [Unit("base", scores(20, 50, 5, 1)), Unit("dpo", scores(20, 55, 5, 2))])
    summary = _json.loads((run / "summary.json").read_text())
    for row in summary["results"]:
        row["self_judged"] = True
    (run / "summary.json").write_text(_json.dumps(summary))
    runs = load_runs([run])
    _, rows = leaderboard_rows(runs, baseline="base", iters=200)
    assert all(r["self_judged"] is True for r in rows)
    comp = compare_runs(runs, baseline="base", iters=200)
    assert any(n.startswith("self-judged: alpaca") for n in comp.notes)
