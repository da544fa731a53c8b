"""Reduced calibration benchmark (issue 12): the hierarchical tests stay near 5 % on null data.

Runs the null scenarios of `benchmarks/calibration.py` with 200 replicates each (AID with fewer
prompts and resamples, LC as a one-replicate smoke test: its refits are too slow for a unit test) and
asserts a false-positive rate <= 0.10. With a true rate of 0.05, 200 replicates exceed 0.10 with
probability < 0.1 %, so a failure here means a miscalibrated test, not bad luck (seeds are fixed).
The full benchmark (1000 replicates, MC intervals, power) is `benchmarks/calibration.py`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "calibration.py"
_spec = importlib.util.spec_from_file_location("evalbench_calibration_benchmark", _PATH)
cal = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cal  # dataclasses resolve the module by name
_spec.loader.exec_module(cal)

REPS = 200
MAX_FPR = 0.10
SEED = 7


def _fpr(rows, test_prefix: str) -> float:
    row = next(r for r in rows if r.test.startswith(test_prefix))
    return row.rate.value


@pytest.mark.parametrize("scenario", cal.SCORE_SCENARIOS, ids=lambda s: s.key)
def test_hierarchical_test_null_rate(scenario):
    rows = cal.run_score_null(scenario, REPS, SEED, old=False)
    assert rows[0].rate.n == REPS
    assert _fpr(rows, "hierarchical_test") <= MAX_FPR, rows[0]


@pytest.mark.parametrize("scenario", [s for s in cal.SCORE_SCENARIOS if s.gate], ids=lambda s: s.key)
def test_gate_one_sided_at_margin_boundary(scenario):
    rows = cal.run_gate_null(scenario, REPS, SEED)
    assert _fpr(rows, "hierarchical_test") <= MAX_FPR, rows[0]


@pytest.mark.parametrize("scenario", cal.AID_SCENARIOS, ids=lambda s: s.key)
def test_aid_resampled_null_rate(scenario):
    small = dataclasses.replace(scenario, n_prompts=40)
    rows = cal.run_aid_null(small, REPS, SEED, iters=300)
    assert _fpr(rows, "hierarchical_test_resampled") <= MAX_FPR, rows[0]


def test_old_ways_are_documented_as_miscalibrated():
    """The benchmark's reference rows reproduce issue 12's failures (otherwise it proves nothing)."""
    three = next(s for s in cal.SCORE_SCENARIOS if s.key == "S6")
    old = _fpr(cal.run_score_null(three, REPS, SEED), "old")
    aid = _fpr(cal.run_aid_null(dataclasses.replace(cal.AID_SCENARIOS[0], n_prompts=40), 100, SEED, iters=100),
               "old")
    assert old > 0.10 and aid > 0.10


def test_weighted_u_statistic_matches_plain_aid_and_duplicates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    s = x @ x.T
    np.fill_diagonal(s, 0.0)
    plain = s.sum() / (6 * 5)
    assert cal.weighted_u_statistic(s, np.ones((1, 6)))[0] == pytest.approx(plain)
    # Weight 2 on prompt 0 equals the data set with prompt 0 duplicated (no self-pair counted).
    w = np.array([[2, 1, 1, 1, 1, 1]], dtype=float)
    x7 = np.vstack([x[:1], x])
    s7 = x7 @ x7.T
    off = ~np.eye(7, dtype=bool)
    off[0, 1] = off[1, 0] = False  # the duplicate with itself is a self-pair
    assert cal.weighted_u_statistic(s, w)[0] == pytest.approx(s7[off].mean())
    # A resample with a single distinct prompt has no pair: undefined.
    assert np.isnan(cal.weighted_u_statistic(s, np.array([[6.0, 0, 0, 0, 0, 0]]))[0])


def test_wilson_interval():
    lo, hi = cal.wilson(50, 1000)
    assert lo == pytest.approx(0.0381, abs=1e-3) and hi == pytest.approx(0.0653, abs=1e-3)
    assert cal.wilson(0, 200)[0] == pytest.approx(0.0, abs=1e-12)


def test_shift_is_in_win_rate_points():
    s1 = cal.SCORE_SCENARIOS[0]
    assert cal.true_delta_points(s1, 1.0) == pytest.approx(1.0, abs=0.05)
    a, b = cal.simulate_scores(s1, np.random.default_rng(0), 300, shift=2.0)
    assert 100 * (np.nanmean(a) - np.nanmean(b)) == pytest.approx(2.0, abs=0.5)


def test_lc_scenario_smoke():
    """One small LC replicate through the resampled test (refits per resample) and the old way."""
    winrate = pytest.importorskip("evalbench.score.winrate")
    pytest.importorskip("sklearn")
    if not hasattr(winrate, "length_controlled_winrate_resampled"):
        pytest.skip("length_controlled_winrate_resampled not available")
    sc = dataclasses.replace(cal.LcScenario(), n_models=2, n_prompts=120)
    rep = cal.simulate_lc(sc, np.random.default_rng(SEED))
    C = cal.lc_fixed_C(sc.n_prompts)
    p = cal.lc_new_p(rep, C, iters=50)
    assert 0.0 <= p <= 1.0
    assert 0.0 <= cal.lc_old_p(rep, C) <= 1.0
