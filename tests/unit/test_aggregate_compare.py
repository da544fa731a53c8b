"""compare_runs / `evalbench compare` on synthetic runs: tests chosen, corrections, marks, refusals."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from evalbench.aggregate.compare import COMPARE_COLUMNS, compare_runs, to_csv, to_markdown, to_text
from evalbench.aggregate.summarize import load_runs
from evalbench.cli import main
from evalbench.errors import InputError
from tests.unit.synth_runs import Unit, make_run, scores

ITERS = 2000


def _three_groups(tmp_path, n=150):
    """base: 3 generation seeds; dpo (clearly better) and ipo (same as base): 3 training seeds each."""
    units = []
    for s in range(3):
        units.append(Unit("base", scores(n, 50, 20, s), seed=s))
        units.append(Unit(f"dpo-s{s}", scores(n, 60, 20, 10 + s), group="dpo", train_seed=s, method="dpo"))
        units.append(Unit(f"ipo-s{s}", scores(n, 50, 20, 20 + s), group="ipo", train_seed=s, method="ipo"))
    return make_run(tmp_path, "r1", units)


def test_hierarchical_test_marks_the_real_difference_only(tmp_path):
    comp = compare_runs(load_runs([_three_groups(tmp_path)]), baseline="base", iters=ITERS)
    dpo = comp.outcomes[("dpo", "alpaca", "win_rate")]
    ipo = comp.outcomes[("ipo", "alpaca", "win_rate")]
    # auto = the hierarchical test (was the clustered bootstrap, which ignored training-seed variance)
    assert dpo.test == "hierarchical" and dpo.unit == "sample" and dpo.n_pairs == 150
    assert dpo.level == "model+prompt" and (dpo.n_models, dpo.n_models_baseline) == (3, 1)
    assert (dpo.n_gen_seeds, dpo.n_gen_seeds_baseline, dpo.n_prompts) == (1, 3, 150)
    assert dpo.mde is not None and dpo.mde > 0 and dpo.df is not None
    assert dpo.significant is True and ipo.significant is False
    # With every seed scoring every prompt, the clustered delta is the difference of the grand means.
    cells = comp.cells
    assert dpo.delta == pytest.approx(cells[("dpo", "alpaca", "win_rate")].mean
                                      - cells[("base", "alpaca", "win_rate")].mean)
    assert dpo.delta_ci_low < dpo.delta < dpo.delta_ci_high
    # Holm adjusts upwards, BH never above Holm; both reported with the raw p.
    for o in (dpo, ipo):
        assert o.p_value <= o.p_bh <= o.p_holm <= 1.0
        assert set(o.p_by_test) == {"hierarchical", "bootstrap", "permutation", "sign", "wilcoxon", "welch"}
    assert dpo.effect_size_kind == "cohens_dz" and dpo.effect_size > 0


def test_markdown_underlines_significant_cells_and_csv_keeps_column_order(tmp_path):
    comp = compare_runs(load_runs([_three_groups(tmp_path)]), baseline="base", iters=ITERS)
    md = to_markdown(comp)
    dpo_line = next(line for line in md.splitlines() if line.startswith("| dpo"))
    ipo_line = next(line for line in md.splitlines() if line.startswith("| ipo"))
    assert "<u>" in dpo_line and "<u>" not in ipo_line
    assert "base (baseline)" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(comp))))
    assert tuple(rows[0]) == COMPARE_COLUMNS
    assert [r["group"] for r in rows] == ["base", "dpo", "ipo"]
    # Terminal/plain text: metrics are rows and groups columns (issue 18); dpo's cell is marked, ipo's not.
    text = to_text(comp).splitlines()
    header = next(line for line in text if line.startswith("metric"))
    row = next(line for line in text if line.startswith("win_rate"))
    dpo_cell = row[header.index("base (baseline)") + len("base (baseline)"):header.index("dpo") + len("dpo")]
    ipo_cell = row[header.index("dpo") + len("dpo"):]
    assert "*" in dpo_cell and "*" not in ipo_cell


def test_welch_without_per_sample_scores_matches_scipy(tmp_path):
    from scipy import stats

    a = [50.0, 52.0, 51.0, 53.0]
    b = [55.0, 58.0, 56.0, 57.5]
    units = [Unit("base", None, seed=i, metrics={"lc": v}) for i, v in enumerate(a)]
    units += [Unit(f"dpo-{i}", None, group="dpo", train_seed=i, metrics={"lc": v}) for i, v in enumerate(b)]
    comp = compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)
    o = comp.outcomes[("dpo", "alpaca", "lc")]
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert o.test == "welch" and o.unit == "seed"
    assert o.p_value == pytest.approx(ref.pvalue) and o.delta == pytest.approx(np.mean(b) - np.mean(a))
    assert o.effect_size_kind == "hedges_g"


def test_one_seed_falls_back_to_per_sample_tests_and_says_so(tmp_path):
    units = [Unit("base", scores(80, 50, 10, 0)), Unit("dpo", scores(80, 55, 10, 1))]
    runs = load_runs([make_run(tmp_path, "r", units)])
    o = compare_runs(runs, baseline="base", test="welch", iters=ITERS).outcomes[("dpo", "alpaca", "win_rate")]
    # the fallback is the default (hierarchical) test; with one model per side it is the paired t
    assert o.test == "hierarchical" and "needs 2 seeds" in o.note and "fell back" in o.note
    assert "welch" not in o.p_by_test


def test_untestable_metric_is_reported_not_marked(tmp_path):
    units = [Unit("base", None, metrics={"lc": 1.0}), Unit("dpo", None, metrics={"lc": 2.0})]
    comp = compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)
    o = comp.outcomes[("dpo", "alpaca", "lc")]
    assert o.p_value is None and o.significant is None and o.delta == pytest.approx(1.0)
    assert "not testable" in o.note


def test_failed_samples_are_dropped_from_both_sides(tmp_path):
    a = [10.0, 20.0, None, 40.0, 50.0]
    b = [12.0, 22.0, 33.0, None, 52.0]
    units = [Unit("base", a), Unit("dpo", b)]
    comp = compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)
    o = comp.outcomes[("dpo", "alpaca", "win_rate")]
    # prompts 0, 1, 4 remain: differences 2, 2, 2
    assert o.n_pairs == 3 and o.n_dropped == 2 and o.delta == pytest.approx(2.0)
    # 3 prompts: an exact sign flip, which can never reach 0.05
    assert o.test == "exact-sign-flip" and o.p_value == pytest.approx(0.25)
    assert "the smallest attainable p is 0.25 > alpha 0.05" in o.note


def test_different_prompt_sets_are_refused_naming_the_ids(tmp_path):
    units = [Unit("base", [1.0, 2.0, 3.0], ids=["a", "b", "c"]), Unit("dpo", [1.0, 2.0, 3.0], ids=["a", "b", "z"])]
    with pytest.raises(InputError, match=r"prompt sets differ.*1 only in 'dpo' \('z'\)"):
        compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)


def test_different_suite_versions_are_refused(tmp_path):
    units = [Unit("base", [1.0, 2.0]), Unit("dpo", [1.0, 2.0], suite_version="2")]
    with pytest.raises(InputError, match=r"suite versions differ"):
        compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)


def test_groups_without_a_common_suite_are_refused(tmp_path):
    units = [Unit("base", [1.0, 2.0]), Unit("dpo", [1.0, 2.0], suite="mtbench")]
    with pytest.raises(InputError, match="shares no suite"):
        compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)


def test_unknown_baseline_suggests(tmp_path):
    runs = load_runs([_three_groups(tmp_path, n=20)])
    with pytest.raises(InputError, match="did you mean 'dpo'"):
        compare_runs(runs, baseline="dpp", iters=ITERS)
    # a checkpoint name resolves to its group
    assert compare_runs(runs, baseline="dpo-s1", iters=ITERS, run_tests=False).baseline == "dpo"


def test_cli_compare_formats(tmp_path, capsys):
    run = _three_groups(tmp_path, n=40)
    out = tmp_path / "table.csv"
    assert main(["-q", "compare", str(run), "--baseline", "base", "--iters", str(ITERS), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == ",".join(COMPARE_COLUMNS)
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["-q", "compare", str(run), "--format", "json", "--iters", str(ITERS),
                 "--metrics", "alpaca:win_*"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["baseline"] == "base" and data["columns"] == ["alpaca/win_rate"]
    assert main(["-q", "compare", str(run), "--baseline", "nope"]) == 2
    assert "no checkpoint group 'nope'" in capsys.readouterr().err


def test_constant_values_over_seeds_are_not_called_significant(tmp_path):
    # deterministic decoding and judging give the same value for every seed: no spread to test against
    units = [Unit("base", None, seed=s, metrics={"lc": 50.0}) for s in range(2)]
    units += [Unit("dpo", None, seed=s, metrics={"lc": 49.0}) for s in range(2)]
    o = compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS).outcomes[
        ("dpo", "alpaca", "lc")]
    assert o.p_value is None and o.significant is None and "zero spread" in o.note
    assert o.delta == pytest.approx(-1.0)


def test_family_is_every_default_cell_even_when_metrics_are_narrowed(tmp_path):
    units = []
    for s in range(3):
        units.append(Unit(f"base-s{s}", scores(60, 50, 20, s), group="base", train_seed=s,
                          metrics={"lc": 40.0 + s}))
        units.append(Unit(f"dpo-s{s}", scores(60, 52, 20, 10 + s), group="dpo", train_seed=s,
                          metrics={"lc": 41.0 + 0.5 * s}))
        units.append(Unit(f"ipo-s{s}", scores(60, 50, 20, 20 + s), group="ipo", train_seed=s,
                          metrics={"lc": 39.0 + s}))
    runs = load_runs([make_run(tmp_path, "r", units)])
    full = compare_runs(runs, baseline="base", iters=ITERS)
    narrow = compare_runs(runs, baseline="base", iters=ITERS, metrics=["win_rate"])
    assert full.family_size == narrow.family_size == 4
    assert narrow.family_label.startswith("holm over 4 tests: 2 groups x 2 metrics")
    assert "1 of the 2 metrics shown" in narrow.family_label
    key = ("dpo", "alpaca", "win_rate")
    assert narrow.outcomes[key].p_holm == pytest.approx(full.outcomes[key].p_holm)
    assert list(narrow.outcomes) == [key, ("ipo", "alpaca", "win_rate")]
    md = to_markdown(narrow)
    assert "Family: holm over 4 tests" in md and "hierarchical (model)" in md  # 3 vs 3 models: model level
    lc = full.outcomes[("dpo", "alpaca", "lc")]
    assert lc.test == "welch" and lc.level == "model" and "seed level only" in lc.note


def test_derived_metric_with_a_resampler_is_recomputed_per_resample(tmp_path, monkeypatch):
    from evalbench.aggregate.derived import DERIVED

    def weighted_mean_of_wins(records, prompt_ids, weights):
        # A stand-in derived metric: the weighted mean of the per-sample win_rate under the weights.
        by_id = {r.sample_id: r.scores.get("win_rate") for r in records}
        vals = np.array([by_id.get(i) if by_id.get(i) is not None else np.nan for i in prompt_ids], float)
        ok = np.isfinite(vals)
        return (weights[:, ok] @ vals[ok]) / weights[:, ok].sum(axis=1)

    monkeypatch.setitem(DERIVED._items, "alpaca:derived_wr", weighted_mean_of_wins)
    units = []
    for s in range(2):  # 2 models per side: the resampled mixed estimate (3+ per side: Welch on model values)
        a, b = scores(80, 50, 20, s), scores(80, 50, 20, 40 + s)
        units.append(Unit(f"base-s{s}", a, group="base", train_seed=s, metrics={"derived_wr": float(np.mean(a))}))
        units.append(Unit(f"dpo-s{s}", b, group="dpo", train_seed=s, metrics={"derived_wr": float(np.mean(b))}))
    comp = compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)
    o = comp.outcomes[("dpo", "alpaca", "derived_wr")]
    plain = comp.outcomes[("dpo", "alpaca", "win_rate")]
    assert o.test == "hierarchical-resampled" and o.level == "model+prompt" and o.n_prompts == 80
    assert o.delta == pytest.approx(plain.delta)
    # the resampled variance matches the analytic one of the same plain mean up to Monte Carlo error
    assert (o.delta_ci_high - o.delta_ci_low) == pytest.approx(plain.delta_ci_high - plain.delta_ci_low, rel=0.25)


def test_a_registered_resampler_wins_over_a_leftover_per_sample_key(tmp_path, monkeypatch):
    # Old runs carried per-sample pseudo-values under the derived metric's name; with a resampler
    # registered they must not be tested as independent samples.
    from evalbench.aggregate.derived import DERIVED

    def mean_wr(records, prompt_ids, weights):
        by_id = {r.sample_id: r.scores.get("win_rate") for r in records}
        vals = np.array([by_id[i] for i in prompt_ids], float)
        return (weights @ vals) / weights.sum(axis=1)

    monkeypatch.setitem(DERIVED._items, "alpaca:win_rate", mean_wr)
    units = [Unit(f"base-s{s}", scores(50, 50, 20, s), group="base", train_seed=s) for s in range(2)]
    units += [Unit(f"dpo-s{s}", scores(50, 50, 20, 9 + s), group="dpo", train_seed=s) for s in range(2)]
    comp = compare_runs(load_runs([make_run(tmp_path, "r", units)]), baseline="base", iters=ITERS)
    o = comp.outcomes[("dpo", "alpaca", "win_rate")]
    assert o.test == "hierarchical-resampled" and "bootstrap" not in o.p_by_test


def test_cells_carry_variance_components_of_the_levels_present(tmp_path):
    comp = compare_runs(load_runs([_three_groups(tmp_path)]), baseline="base", iters=ITERS)
    dpo, base = comp.cells[("dpo", "alpaca", "win_rate")], comp.cells[("base", "alpaca", "win_rate")]
    # dpo: 3 models, 1 generation seed each; base: 1 model with 3 generation seeds; no judge repeats
    assert dpo.var_train_seed is not None and dpo.var_generation is None and dpo.var_judge is None
    assert base.var_train_seed is None and base.var_generation == pytest.approx(400, rel=0.2)  # sd 20
    row = next(r for r in comp.rows() if r["group"] == "base")
    assert row["var_generation"] == base.var_generation
