"""evalbench.aggregate.stats: checked against scipy/statsmodels, hand computations and simulations."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

from evalbench.aggregate import stats as S
from evalbench.errors import InputError

scipy_stats = pytest.importorskip("scipy.stats")


# ---------------------------------------------------------------------------------------------
# seed_summary


def test_seed_summary_hand_computed():
    # values 1..5: mean 3, sample variance 10/4 = 2.5, sem = sqrt(2.5/5) = sqrt(0.5);
    # t_{0.975, 4} = 2.776445 (printed t tables), so the 95 % interval is 3 ± 2.776445 · 0.707107.
    s = S.seed_summary({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0})
    assert s.n == 5 and s.mean == 3.0
    assert s.std == pytest.approx(math.sqrt(2.5))
    assert s.sem == pytest.approx(math.sqrt(0.5))
    assert s.ci_low == pytest.approx(3 - 2.776445 * math.sqrt(0.5), abs=1e-5)
    assert s.ci_high == pytest.approx(3 + 2.776445 * math.sqrt(0.5), abs=1e-5)
    # The bootstrap interval of a mean lies inside [min, max] and around the mean.
    assert 1.0 <= s.boot_low < 3.0 < s.boot_high <= 5.0
    assert s.note is None


def test_seed_summary_matches_scipy_t_interval_and_bootstrap():
    x = np.random.default_rng(3).normal(50.0, 2.0, 12)
    s = S.seed_summary(list(x), conf=0.9, bootstrap_iters=20_000, seed=1)
    lo, hi = scipy_stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi), rel=1e-12)
    ref = scipy_stats.bootstrap((x,), np.mean, confidence_level=0.9, n_resamples=20_000,
                                method="percentile", rng=np.random.default_rng(2)).confidence_interval
    # Different random streams: agree up to Monte Carlo error (a small share of the width).
    width = ref.high - ref.low
    assert abs(s.boot_low - ref.low) < 0.05 * width
    assert abs(s.boot_high - ref.high) < 0.05 * width


def test_seed_summary_single_seed_is_explicit_not_nan():
    s = S.seed_summary([0.42])
    assert s.mean == 0.42 and s.n == 1
    assert s.std is None and s.sem is None
    assert (s.ci_low, s.ci_high, s.boot_low, s.boot_high) == (None, None, None, None)
    assert "one seed" in s.note


def test_seed_summary_constant_values_give_zero_width_intervals():
    s = S.seed_summary([2.0, 2.0, 2.0])
    assert s.std == 0.0
    assert (s.ci_low, s.ci_high, s.boot_low, s.boot_high) == (2.0, 2.0, 2.0, 2.0)


def test_seed_summary_is_seeded():
    # Few resamples of 8 distinct values: the percentile bounds depend visibly on the stream.
    vals = list(np.random.default_rng(0).uniform(size=8))
    s7 = S.seed_summary(vals, bootstrap_iters=200, seed=7)
    assert s7 == S.seed_summary(vals, bootstrap_iters=200, seed=7)
    s8 = S.seed_summary(vals, bootstrap_iters=200, seed=8)
    assert (s7.boot_low, s7.boot_high) != (s8.boot_low, s8.boot_high)
    assert (s7.ci_low, s7.ci_high) == (s8.ci_low, s8.ci_high)  # the t-interval is not random


@pytest.mark.parametrize("bad", [[], [1.0, None], [1.0, float("nan")], {0: 1.0, 1: float("inf")}])
def test_seed_summary_rejects_empty_and_missing(bad):
    with pytest.raises(InputError):
        S.seed_summary(bad)


def test_seed_summary_intervals_cover_at_nominal_rate():
    # 400 simulated experiments with a known mean; a 95 % interval should cover it in ~95 % of them
    # (binomial sd over 400 runs ≈ 1.1 points, so 0.92–0.98 is about ±2.7 sd).
    # t-interval: 5 normal "seeds" (its assumptions hold exactly). Percentile bootstrap: 80 uniform
    # values (it is only asymptotically correct: too narrow for 5 values, ~0.93 for 60 skewed ones).
    rng = np.random.default_rng(2024)
    t_cover = boot_cover = 0
    for i in range(400):
        x = rng.normal(10.0, 3.0, 5)
        s = S.seed_summary(x, bootstrap_iters=200, seed=i)
        t_cover += s.ci_low <= 10.0 <= s.ci_high
        y = rng.uniform(0.0, 4.0, 80)  # mean 2
        s = S.seed_summary(y, bootstrap_iters=1000, seed=i)
        boot_cover += s.boot_low <= 2.0 <= s.boot_high
    assert 0.92 <= t_cover / 400 <= 0.98
    assert 0.92 <= boot_cover / 400 <= 0.98


# ---------------------------------------------------------------------------------------------
# alignment and errors


def test_mismatched_ids_raise_with_counts_and_examples():
    a = {f"q{i}": 1.0 for i in range(10)}
    b = {f"q{i}": 1.0 for i in range(2, 11)}
    with pytest.raises(InputError) as err:
        S.paired_bootstrap(a, b)
    msg = str(err.value)
    assert "a has 10, b has 9" in msg
    assert "2 only in a ('q0', 'q1')" in msg
    assert "1 only in b ('q10')" in msg


def test_alignment_is_by_id_not_by_order():
    a = {"x": 1.0, "y": 5.0, "z": 2.0}
    b = {"z": 2.0, "x": 1.0, "y": 5.0}  # same scores, different insertion order
    r = S.paired_bootstrap(a, b, iters=500)
    assert r.delta == 0.0 and r.p_value == 1.0
    # Reordering the dicts does not change a seeded result.
    c = {"x": 0.0, "y": 1.0, "z": 3.0}
    c_rev = dict(reversed(list(c.items())))
    a_rev = dict(reversed(list(a.items())))
    assert S.paired_bootstrap(a, c, iters=500) == S.paired_bootstrap(a_rev, c_rev, iters=500)


@pytest.mark.parametrize("a, b, needle", [
    ([1.0, 2.0], [1.0], "equal lengths: a has 2, b has 1"),
    ({"x": 1.0}, [1.0], "both as mappings"),
    ([], [], "no paired samples"),
    ({"x": 1.0, "y": None}, {"x": 1.0, "y": 2.0}, "'y'"),
])
def test_paired_input_errors(a, b, needle):
    with pytest.raises(InputError) as err:
        S.paired_bootstrap(a, b)
    assert needle in str(err.value)


# ---------------------------------------------------------------------------------------------
# paired bootstrap


def test_paired_bootstrap_identical_inputs_is_null():
    x = np.random.default_rng(0).normal(size=50)
    r = S.paired_bootstrap(x, x.copy())
    assert r.delta == 0.0 and (r.ci_low, r.ci_high) == (0.0, 0.0)
    assert r.p_value == 1.0 and r.n == 50 and r.method == "bootstrap"


def test_paired_bootstrap_detects_clear_shift():
    rng = np.random.default_rng(1)
    b = rng.normal(size=200)
    a = b + 0.5 + rng.normal(0, 0.5, 200)
    r = S.paired_bootstrap(a, b, iters=10_000, seed=0)
    assert r.p_value < 0.01
    assert r.ci_low > 0 and r.ci_low < r.delta < r.ci_high
    assert r.delta == pytest.approx(float(np.mean(a - b)))
    # The sign convention is mean(a) - mean(b).
    assert S.paired_bootstrap(b, a, iters=1000).delta == pytest.approx(-r.delta)


def test_paired_bootstrap_does_not_flag_a_null():
    rng = np.random.default_rng(5)
    b = rng.normal(size=300)
    a = b + rng.normal(0, 1, 300)  # no shift
    assert S.paired_bootstrap(a, b).p_value > 0.05


def test_paired_bootstrap_interval_matches_scipy_bootstrap():
    rng = np.random.default_rng(11)
    b = rng.uniform(size=150)
    a = np.clip(b + rng.normal(0.05, 0.2, 150), 0, 1)
    r = S.paired_bootstrap(a, b, iters=20_000, seed=3)
    ref = scipy_stats.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True,
                                vectorized=True, n_resamples=20_000, method="percentile",
                                rng=np.random.default_rng(4)).confidence_interval
    width = ref.high - ref.low
    assert abs(r.ci_low - ref.low) < 0.05 * width and abs(r.ci_high - ref.high) < 0.05 * width


def test_paired_bootstrap_p_value_is_consistent_with_its_interval():
    # p < 1 - conf exactly when the percentile interval excludes 0 (up to the +1 correction).
    rng = np.random.default_rng(8)
    for shift in (0.0, 0.1, 0.2, 0.3, 0.5):
        b = rng.normal(size=80)
        a = b + shift + rng.normal(0, 1, 80)
        r = S.paired_bootstrap(a, b, iters=4000, seed=1)
        excludes = r.ci_low > 0 or r.ci_high < 0
        if abs(r.p_value - 0.05) > 0.005:
            assert excludes == (r.p_value < 0.05), (shift, r)


def test_paired_bootstrap_calibrated_under_null_and_covers_known_shift():
    # Under H0 the rate of p < 0.05 should be ~5 %; the CI should cover the true shift ~95 %.
    # 300 runs: binomial sd ≈ 1.3 points, bounds are ≈ ±2.5–3 sd.
    rng = np.random.default_rng(99)
    rejections = covers = 0
    for i in range(300):
        b = rng.normal(size=100)
        a0 = b + rng.normal(0, 1, 100)
        rejections += S.paired_bootstrap(a0, b, iters=1000, seed=i).p_value < 0.05
        a1 = b + 0.3 + rng.normal(0, 1, 100)
        r = S.paired_bootstrap(a1, b, iters=1000, seed=i)
        covers += r.ci_low <= 0.3 <= r.ci_high
    assert 0.015 <= rejections / 300 <= 0.09
    assert 0.91 <= covers / 300 <= 0.985


def test_paired_bootstrap_is_seeded_and_handles_large_iters_in_blocks():
    x = np.random.default_rng(2).normal(size=805)
    y = np.random.default_rng(3).normal(size=805)
    r1 = S.paired_bootstrap(x, y, iters=6000, seed=4)
    assert r1 == S.paired_bootstrap(x, y, iters=6000, seed=4)
    assert r1 != S.paired_bootstrap(x, y, iters=6000, seed=5)
    # 6000 x 805 > one block: every resample is still filled (no zeros from an unfilled block).
    boot = S.bootstrap_means(x, 6000, np.random.default_rng(0))
    assert boot.shape == (6000,) and np.all(boot != 0) and abs(boot.mean() - x.mean()) < 0.01


def test_bootstrap_p_value_definition_hand_computed():
    # 3 of 9 resamples <= 0, 7 >= 0 (one exactly 0 counts on both sides): p = 2 * (3 + 1) / 10.
    boot = np.array([-2.0, -1.0, 0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert S.bootstrap_p_value(boot) == pytest.approx(0.8)
    assert S.bootstrap_p_value(np.ones(99)) == pytest.approx(2 / 100)
    assert S.bootstrap_p_value(np.zeros(10)) == 1.0


# ---------------------------------------------------------------------------------------------
# clustered bootstrap


def _by_seed(mat: np.ndarray) -> dict:
    return {s: {f"p{j}": float(v) for j, v in enumerate(row)} for s, row in enumerate(mat)}


def test_clustered_delta_hand_computed_with_unbalanced_seeds():
    # Prompt p0: a seeds (1, 3) -> 2; b (1) -> 1; diff 1. Prompt p1: a (4) -> 4 (dropped in seed 1);
    # b (0, 2) -> 1; diff 3. Delta = mean(1, 3) = 2 (prompts weigh equally).
    a = {0: {"p0": 1.0, "p1": 4.0}, 1: {"p0": 3.0}}
    b = {0: {"p0": 1.0, "p1": 0.0}, 7: {"p1": 2.0}}
    r = S.clustered_paired_bootstrap(a, b, iters=2000, seed=0)
    assert r.delta == pytest.approx(2.0) and r.n == 2 and r.method == "clustered_bootstrap"
    # Only two clusters with differences 1 and 3: every resampled mean lies in [1, 3].
    assert 1.0 <= r.ci_low <= r.ci_high <= 3.0


def test_clustered_accepts_arrays_and_dicts_alike():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 40)), rng.normal(size=(5, 40))
    ra = S.clustered_paired_bootstrap(a, b, iters=3000, seed=2)
    rd = S.clustered_paired_bootstrap(_by_seed(a), _by_seed(b), iters=3000, seed=2)
    assert ra.delta == pytest.approx(a.mean() - b.mean())
    assert rd.delta == pytest.approx(ra.delta)
    # Prompt ids sort as strings ("p10" < "p2"), so the resampling order differs: equal up to MC error.
    assert rd.ci_low == pytest.approx(ra.ci_low, abs=0.05)
    assert rd.ci_high == pytest.approx(ra.ci_high, abs=0.05)


def test_clustered_prompt_mismatch_raises():
    a = {0: {"p0": 1.0, "p1": 2.0}}
    b = {0: {"p0": 1.0, "p2": 2.0}}
    with pytest.raises(InputError, match=r"prompt ids differ.*1 only in a \('p1'\).*1 only in b \('p2'\)"):
        S.clustered_paired_bootstrap(a, b)


def test_clustering_matters_when_prompts_share_effects():
    # Differences with a strong per-prompt effect (shared by the 5 seeds of a prompt) and a true
    # delta of 0.2. The cluster bootstrap covers ~95 % (200 runs: sd ≈ 1.5 points); resampling the
    # 5 x 100 rows as if independent is far too narrow: a row difference has variance 1 + 0.25 with
    # ICC 0.8, design effect 1 + 4 · 0.8 = 4.2, so it covers about P(|Z| < 1.96 / sqrt(4.2)) ≈ 0.66.
    rng = np.random.default_rng(7)
    cover_cluster = cover_naive = 0
    runs = 200
    for i in range(runs):
        prompt_effect = rng.normal(0, 1.0, 100)
        b = rng.normal(0, 0.5, (5, 100))
        a = b + 0.2 + prompt_effect + rng.normal(0, 0.5, (5, 100))
        r = S.clustered_paired_bootstrap(a, b, iters=500, seed=i)
        cover_cluster += r.ci_low <= 0.2 <= r.ci_high
        naive = S.paired_bootstrap(a.ravel(), b.ravel(), iters=500, seed=i)
        cover_naive += naive.ci_low <= 0.2 <= naive.ci_high
    assert 0.90 <= cover_cluster / runs <= 0.99
    assert cover_naive / runs < 0.8


# ---------------------------------------------------------------------------------------------
# permutation, sign, wilcoxon


def _exact_sign_flip_p(d: np.ndarray) -> float:
    """Reference: enumerate all 2^n sign vectors with itertools (independent of the vectorised code)."""
    obs = abs(d.sum())
    hits = sum(abs(sum(s * x for s, x in zip(signs, d))) >= obs - 1e-12
               for signs in itertools.product((-1, 1), repeat=len(d)))
    return hits / 2 ** len(d)


def test_permutation_matches_exact_enumeration_n10():
    rng = np.random.default_rng(12)
    b = rng.normal(size=10)
    a = b + rng.normal(0.4, 1.0, 10)
    exact = _exact_sign_flip_p(a - b)
    assert 0.01 < exact < 0.9  # a non-trivial case
    assert S.permutation_test(a, b, exact=True).p_value == pytest.approx(exact, abs=1e-12)
    mc = S.permutation_test(a, b, iters=20_000, seed=3, exact=False).p_value
    se = math.sqrt(exact * (1 - exact) / 20_000)
    assert abs(mc - exact) < 4 * se + 1e-4
    # scipy's own paired permutation test is exact for n=10 (1024 < n_resamples).
    ref = scipy_stats.permutation_test((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis),
                                       permutation_type="samples", vectorized=True, n_resamples=9999)
    assert ref.pvalue == pytest.approx(exact, abs=1e-12)


def test_permutation_auto_exact_and_hand_case():
    # d = (1, 1, 1): only the all-+1 and all-−1 flips reach |sum| = 3, so p = 2/8.
    r = S.permutation_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])  # 2^3 <= iters: exact
    assert r.p_value == pytest.approx(0.25) and r.delta == 1.0


def test_permutation_null_and_shift():
    x = np.random.default_rng(0).normal(size=40)
    assert S.permutation_test(x, x).p_value == 1.0
    rng = np.random.default_rng(1)
    b = rng.normal(size=100)
    assert S.permutation_test(b + 1.0 + rng.normal(0, 0.5, 100), b).p_value < 0.01
    with pytest.raises(InputError, match="too many"):
        S.permutation_test(np.zeros(30), np.ones(30), exact=True)


def test_sign_test_hand_computed():
    # 8 positive, 2 negative, 1 zero difference -> Binomial(10, 1/2), two-sided
    # p = 2 · P(X >= 8) = 2 · (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 2 · 56 / 1024.
    d = [1, 2, 1, 3, 1, 1, 2, 5, -1, -2, 0]
    r = S.sign_test(d, [0.0] * len(d))
    assert r.p_value == pytest.approx(112 / 1024)
    assert r.statistic == 8 and r.n == 11 and r.method == "sign"
    assert S.sign_test([1.0, 2.0], [1.0, 2.0]).p_value == 1.0


def test_wilcoxon_hand_computed_and_against_scipy():
    # Five positive differences with distinct ranks: only W = 0 (all positive) or all negative are
    # as extreme, so the exact two-sided p = 2 / 2^5.
    r = S.wilcoxon([1.5, 2.2, 3.3, 4.1, 5.9], [0.0] * 5)
    assert r.p_value == pytest.approx(2 / 32)
    rng = np.random.default_rng(6)
    b = {f"s{i}": float(v) for i, v in enumerate(rng.normal(size=60))}
    a = {k: v + float(rng.normal(0.2, 1.0)) for k, v in b.items()}
    keys = sorted(a)
    ref = scipy_stats.wilcoxon([a[k] for k in keys], [b[k] for k in keys])
    r = S.wilcoxon(a, b)
    assert r.p_value == pytest.approx(ref.pvalue) and r.statistic == pytest.approx(ref.statistic)


def test_wilcoxon_all_zero_differences():
    r = S.wilcoxon([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert r.p_value == 1.0 and r.statistic == 0.0 and r.delta == 0.0


def test_rank_tests_interval_is_paired_t():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=30), rng.normal(size=30)
    ref = scipy_stats.ttest_rel(a, b).confidence_interval(0.9)
    for fn in (S.sign_test, S.wilcoxon):
        r = fn(a, b, conf=0.9)
        assert (r.ci_low, r.ci_high) == pytest.approx((ref.low, ref.high))


# ---------------------------------------------------------------------------------------------
# Welch and effect sizes


def test_welch_hand_computed():
    # a = (1,2,3), b = (4,5,6): delta -3, variances 1 and 1, se = sqrt(1/3 + 1/3) = 0.816497,
    # t = -3 / 0.816497 = -3.674235; Welch–Satterthwaite df = (2/3)^2 / (2 · (1/3)^2 / 2) = 4.
    r = S.welch_t({0: 1.0, 1: 2.0, 2: 3.0}, [4.0, 5.0, 6.0])
    assert r.delta == -3.0 and r.n == 6 and r.method == "welch"
    assert r.statistic == pytest.approx(-3.674235, abs=1e-6)
    assert r.df == pytest.approx(4.0)
    assert r.p_value == pytest.approx(2 * scipy_stats.t.sf(3.674235, 4), rel=1e-5)


def test_welch_interval_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.weightstats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 1.0, 5), rng.normal(0.0, 3.0, 7)
    r = S.welch_t(a, b, conf=0.9)
    cm = sm.CompareMeans(sm.DescrStatsW(a), sm.DescrStatsW(b))
    lo, hi = cm.tconfint_diff(alpha=0.1, usevar="unequal")
    t, p, df = cm.ttest_ind(usevar="unequal")
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
    assert r.p_value == pytest.approx(p) and r.df == pytest.approx(df) and r.statistic == pytest.approx(t)


def test_welch_degenerate_and_errors():
    assert S.welch_t([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    r = S.welch_t([2.0, 2.0], [1.0, 1.0])
    assert r.p_value == 0.0 and (r.ci_low, r.ci_high) == (1.0, 1.0)
    with pytest.raises(InputError, match="at least 2 seeds"):
        S.welch_t([1.0], [1.0, 2.0])


def test_effect_sizes_hand_computed():
    # Pooled sd of (1,2,3) and (4,5,6) is 1, so d = -3. Hedges' J for m = 4:
    # Γ(2) / (sqrt(2) Γ(1.5)) = 1 / (1.414214 · 0.886227) = 0.797885.
    assert S.cohens_d([1, 2, 3], [4, 5, 6]) == pytest.approx(-3.0)
    assert S.hedges_g([1, 2, 3], [4, 5, 6]) == pytest.approx(-3.0 * 0.797885, abs=1e-5)
    # The exact J is close to the common approximation 1 - 3/(4m - 1) for moderate m.
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=25)
    m = 43
    assert S.hedges_g(x, y) == pytest.approx(S.cohens_d(x, y) * (1 - 3 / (4 * m - 1)), rel=1e-3)
    # d_z of differences (1, 2, 3): mean 2, sd 1.
    assert S.cohens_dz([2, 4, 6], [1, 2, 3]) == pytest.approx(2.0)
    assert S.cohens_dz({"a": 1.0, "b": 2.0}, {"a": 0.0, "b": 1.0}) is None  # sd of differences is 0
    assert S.cohens_d([1, 1], [1, 1]) is None


# ---------------------------------------------------------------------------------------------
# multiple comparisons


def test_holm_and_bh_hand_computed():
    # p = (0.01, 0.04, 0.03, 0.005), m = 4. Holm: sorted 0.005·4 = 0.02, 0.01·3 = 0.03,
    # 0.03·2 = 0.06, 0.04·1 = 0.04 -> running max 0.06. BH: 0.005·4/1 = 0.02, 0.01·4/2 = 0.02,
    # 0.03·4/3 = 0.04, 0.04·4/4 = 0.04 -> running min from the top leaves them unchanged.
    p = [0.01, 0.04, 0.03, 0.005]
    assert S.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])


@pytest.mark.parametrize("method, sm_name", [("holm", "holm"), ("bh", "fdr_bh"), ("fdr_bh", "fdr_bh"),
                                             ("bonferroni", "bonferroni")])
def test_adjust_matches_statsmodels(method, sm_name):
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    rng = np.random.default_rng(hash(method) % 2**32)
    for m in (1, 2, 7, 50):
        p = np.concatenate([rng.uniform(0, 0.05, m // 2), rng.uniform(size=m - m // 2)])
        if m > 2:
            p[1] = p[0]  # a tie
        ref = multipletests(p, method=sm_name)[1]
        assert S.adjust(list(p), method) == pytest.approx(list(ref), abs=1e-12)


def test_adjust_mapping_unknown_and_bad_values():
    out = S.adjust({"lc_win_rate": 0.01, "win_rate": 0.04}, "holm")
    assert list(out) == ["lc_win_rate", "win_rate"] and out == pytest.approx({"lc_win_rate": 0.02,
                                                                              "win_rate": 0.04})
    assert S.adjust([], "bh") == []
    assert S.adjust([0.2, 0.3], "none") == [0.2, 0.3]
    with pytest.raises(InputError, match="did you mean 'holm'"):
        S.adjust([0.1], "hlom")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        S.adjust([0.1, 1.5], "holm")


# ---------------------------------------------------------------------------------------------
# registry


def test_tests_registry_uniform_call():
    rng = np.random.default_rng(21)
    b = {f"q{i}": float(v) for i, v in enumerate(rng.normal(size=40))}
    a = {k: v + 0.8 for k, v in b.items()}
    assert S.TESTS.names() == ["bootstrap", "hierarchical", "permutation", "sign", "welch", "wilcoxon"]
    for name in ("bootstrap", "hierarchical", "permutation", "sign", "wilcoxon"):
        test = S.TESTS.get(name)
        assert test.unit == "sample"
        r = test(a, b, conf=0.9, iters=2000, seed=1)
        assert r.delta == pytest.approx(0.8) and r.p_value < 0.01 and r.conf == 0.9, name
    welch = S.TESTS.get("welch")
    assert welch.unit == "seed"
    assert welch([0.50, 0.52, 0.51], [0.40, 0.41, 0.43]).p_value < 0.01
    with pytest.raises(InputError, match="did you mean 'wilcoxon'"):
        S.run_test("wilcoxn", a, b)


def test_tests_registry_clusters_by_prompt_with_several_seeds():
    rng = np.random.default_rng(2)
    b = rng.normal(size=(4, 30))
    a = b + 0.1 + rng.normal(0, 0.1, (4, 30))
    r = S.run_test("bootstrap", _by_seed(a), _by_seed(b), iters=1000)
    assert r.method == "bootstrap" and r.n == 30  # the bootstrap of per-prompt means over units
    for name in ("permutation", "sign", "wilcoxon"):
        r = S.run_test(name, _by_seed(a), _by_seed(b), iters=1000)
        assert r.n == 30 and r.delta == pytest.approx(float((a - b).mean())), name


def test_import_is_light():
    code = ("import sys, evalbench.aggregate.stats; "
            "heavy = ('scipy', 'statsmodels', 'torch', 'vllm', 'lm_eval', 'pandas'); "
            "bad = [m for m in heavy if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# hierarchical tests (issue 12)


def test_hierarchical_one_model_per_side_is_the_paired_t_over_prompts():
    rng = np.random.default_rng(30)
    b = rng.normal(50, 10, 120)
    a = b + rng.normal(0.8, 3.0, 120)
    r = S.hierarchical_test(a[None, :], b[None, :])
    ref = scipy_stats.ttest_rel(a, b)
    assert r.method == "hierarchical" and r.level == "prompt"
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9) and r.df == pytest.approx(119)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert (r.n_models_a, r.n_models_b, r.n_prompts) == (1, 1, 120)
    # one-sided with a margin equals scipy's one-sided paired t on a - margin
    one = S.hierarchical_test(a, b, alternative="less", margin=2.0)
    assert one.p_value == pytest.approx(scipy_stats.ttest_rel(a - 2.0, b, alternative="less").pvalue, rel=1e-9)


def test_hierarchical_averages_generation_seeds_first():
    rng = np.random.default_rng(31)
    a = rng.normal(0, 1, (1, 4, 60))
    b = rng.normal(0, 1, (1, 3, 60))
    r = S.hierarchical_test(a, b)
    ref = scipy_stats.ttest_rel(a[0].mean(0), b[0].mean(0))
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9) and r.n_models_a == 1 and r.n_prompts == 60


def test_hierarchical_seed_dominated_is_close_to_welch_on_model_means():
    rng = np.random.default_rng(32)
    prompts = rng.normal(0, 5, 400)
    a = 50 + prompts + rng.normal(0, 4.0, (5, 1)) + rng.normal(0, 1, (5, 400))
    b = 50 + prompts + rng.normal(0, 4.0, (5, 1)) + rng.normal(0, 1, (5, 400))
    # 5 models per side: the test is Welch on model means (S.MODEL_LEVEL_MIN; calibration benchmark).
    r = S.hierarchical_test(a, b)
    ref = scipy_stats.ttest_ind(a.mean(1), b.mean(1), equal_var=False)
    assert r.level == "model" and (r.n_models_a, r.n_models_b) == (5, 5)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9) and r.df == pytest.approx(ref.df, rel=1e-9)
    lo, hi = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    # 2 models per side: the mixed estimate, which a dominant seed variance makes close to Welch.
    r2 = S.hierarchical_test(a[:2], b[:2])
    ref2 = scipy_stats.ttest_ind(a[:2].mean(1), b[:2].mean(1), equal_var=False)
    assert r2.level == "model+prompt" and r2.p_value == pytest.approx(ref2.pvalue, rel=0.1)


def test_model_level_one_sided_with_margin_matches_welch():
    rng = np.random.default_rng(34)
    a, b = rng.normal(0.5, 1, (4, 30)), rng.normal(0, 1, (3, 30))
    r = S.hierarchical_test(a, b, alternative="greater", margin=0.2)
    ref = scipy_stats.ttest_ind(a.mean(1) - 0.2, b.mean(1), equal_var=False, alternative="greater")
    assert r.level == "model" and r.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_hierarchical_missing_prompts_are_dropped_and_counted():
    rng = np.random.default_rng(33)
    a, b = rng.normal(size=(2, 50)), rng.normal(size=(3, 50))
    a[:, 3] = np.nan
    b[0, 7] = np.nan  # only one model misses it: the prompt stays
    r = S.hierarchical_test(a, b)
    assert r.n_dropped == 1 and r.n_prompts == 49
    with pytest.raises(InputError, match="same prompt columns"):
        S.hierarchical_test(a, b[:, :10])


def test_exact_sign_flip_three_prompts_cannot_go_below_a_quarter():
    r = S.exact_sign_flip([1.0, 2.0, 3.0])
    assert r.p_value == pytest.approx(0.25) and r.min_p == pytest.approx(0.25) and r.method == "exact-sign-flip"
    assert S.exact_sign_flip([1.0, 2.0, 3.0], alternative="greater").p_value == pytest.approx(0.125)
    # hierarchical_test routes one model per side with few prompts to it
    h = S.hierarchical_test(np.array([[2.0, 3.0, 4.0]]), np.array([[1.0, 1.0, 1.0]]))
    assert h.method == "exact-sign-flip" and h.p_value == pytest.approx(0.25)


def test_exact_sign_flip_matches_itertools_enumeration_and_margin():
    rng = np.random.default_rng(34)
    d = rng.normal(0.5, 1.0, 12)
    assert S.exact_sign_flip(d).p_value == pytest.approx(_exact_sign_flip_p(d))
    assert S.exact_sign_flip(d, margin=0.3).p_value == pytest.approx(_exact_sign_flip_p(d - 0.3))
    big = rng.normal(0.0, 1.0, 25)  # Monte Carlo above 16 pairs, close to the exact value
    mc = S.exact_sign_flip(big, iters=20_000, seed=1)
    assert mc.method == "sign-flip" and mc.p_value >= 2 / 2**25


def test_resampled_hierarchical_agrees_with_the_analytic_test_for_plain_means():
    rng = np.random.default_rng(35)
    prompts = rng.normal(0, 3, 300)
    a = prompts + rng.normal(0, 1.0, (3, 1)) + rng.normal(0, 2, (3, 300)) + 0.3
    b = prompts + rng.normal(0, 1.0, (4, 1)) + rng.normal(0, 2, (4, 300))

    def unit(row):
        return lambda w: (w @ row) / w.sum(axis=1)

    ra = S.hierarchical_test_resampled([[unit(r)] for r in a], [[unit(r)] for r in b], 300, iters=3000, seed=2)
    r = S.hierarchical_test(a, b)
    assert ra.method == "hierarchical-resampled" and ra.delta == pytest.approx(r.delta)
    # V_prompt from 3000 resamples is within ~10 % of the analytic one; the seed terms are close too
    se_a = (ra.ci_high - ra.ci_low) / 2 / scipy_stats.t.ppf(0.975, ra.df)
    se = (r.ci_high - r.ci_low) / 2 / scipy_stats.t.ppf(0.975, r.df)
    assert se_a == pytest.approx(se, rel=0.15)


def test_hierarchical_calibrated_under_training_seed_variance():
    # null: same distribution, 3 training seeds a side with seed sd comparable to the prompt-level se
    rng = np.random.default_rng(36)
    flags = 0
    runs = 300
    for _ in range(runs):
        prompts = rng.normal(0, 20, 200)
        a = prompts + rng.normal(0, 2.0, (3, 1)) + rng.normal(0, 30, (3, 200))
        b = prompts + rng.normal(0, 2.0, (3, 1)) + rng.normal(0, 30, (3, 200))
        flags += S.hierarchical_test(a, b).p_value < 0.05
    assert flags / runs <= 0.08  # 0.05 nominal; MC sd ~0.013


def test_variance_components_recover_simulated_components():
    rng = np.random.default_rng(37)
    m, g, j, p = 8, 3, 2, 400
    seed = rng.normal(0, 2.0, (m, 1, 1, 1))
    prompt = rng.normal(0, 3.0, (1, 1, 1, p))
    inter = rng.normal(0, 1.0, (m, 1, 1, p))
    gen = rng.normal(0, 1.5, (m, g, 1, p))
    judge = rng.normal(0, 0.5, (m, g, j, p))
    vc = S.variance_components(seed + prompt + inter + gen + judge)
    assert vc["judge"] == pytest.approx(0.25, rel=0.1)
    assert vc["generation"] == pytest.approx(2.25, rel=0.1)
    assert vc["residual"] == pytest.approx(1.0, rel=0.2)
    assert vc["prompt"] == pytest.approx(9.0, rel=0.2)
    # 8 draws of the seed effect: compare with their own sample variance (true 4, chi-square 7 df)
    assert vc["train_seed"] == pytest.approx(float(np.var(seed, ddof=1)), rel=0.1)
    one = S.variance_components((prompt + gen)[:1, :, :1])
    assert one["train_seed"] is None and one["judge"] is None and one["generation"] == pytest.approx(2.25, rel=0.15)


def test_minimum_detectable_effect_formula():
    assert S.minimum_detectable_effect(1.0, math.inf) == pytest.approx(1.959964 + 0.841621, rel=1e-5)
    assert S.minimum_detectable_effect(2.0, 10) == pytest.approx(
        2 * (scipy_stats.t.ppf(0.975, 10) + scipy_stats.t.ppf(0.8, 10)))


def test_plain_mean_hierarchical_is_fast():
    import time

    rng = np.random.default_rng(38)
    a, b = rng.normal(size=(5, 805)), rng.normal(size=(5, 805))
    S.hierarchical_test(a, b)
    t0 = time.perf_counter()
    for _ in range(10):
        S.hierarchical_test(a, b)
    assert (time.perf_counter() - t0) / 10 < 0.2


def test_named_tests_average_generation_seeds_within_models():
    rng = np.random.default_rng(39)
    a = {f"m{i}": {g: {f"p{k}": float(v) for k, v in enumerate(rng.normal(size=20))} for g in range(3)}
         for i in range(2)}
    b = {f"m{i}": {g: {f"p{k}": float(v) for k, v in enumerate(rng.normal(size=20))} for g in range(2)}
         for i in range(2)}
    for name in ("bootstrap", "permutation", "sign", "wilcoxon", "hierarchical"):
        r = S.run_test(name, a, b, iters=500)
        assert r.n == 20, name
    h = S.run_test("hierarchical", a, b)
    assert (h.n_models_a, h.n_models_b) == (2, 2)
    w = S.run_test("welch", {"m0": [1.0, 2.0], "m1": [3.0, 4.0]}, {"m0": [0.0], "m1": [1.0]})
    assert w.n == 4 and w.delta == pytest.approx(2.5 - 0.5)
