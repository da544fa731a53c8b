"""Statistics across seeds and checkpoints: pure functions, arrays or id-keyed mappings in, small tuples out.

Three questions, three families:

* *How good is one checkpoint, and how sure are we?* `seed_summary` over the per-seed values of a
  metric: mean, sample std (ddof=1), a t-interval and a percentile-bootstrap interval.
* *Is checkpoint A better than checkpoint B on the same prompts?* Paired tests on per-sample scores
  keyed by sample id: `paired_bootstrap`, `permutation_test` (sign flips), `sign_test`, `wilcoxon`;
  with several seeds repeating the same prompts, `clustered_paired_bootstrap` resamples prompts
  (clusters) so that the seeds of one prompt are never treated as independent evidence.
* *Do the per-seed values of two runs differ?* `welch_t`, plus effect sizes (`cohens_d`, `hedges_g`,
  `cohens_dz`).
* *Is group A (several trained models, generation seeds, prompts) better than group B?*
  `hierarchical_test` (analytic mixed-model t over training seeds and prompts; an exact sign flip
  for one model per side and few prompts), `hierarchical_test_resampled` for metrics recomputed per
  prompt resample (LC win rate, AID), `variance_components`, `minimum_detectable_effect`. This is
  what `compare` and `gate` use (`TESTS["hierarchical"]`); docs/statistics.md has the why.

Many comparisons at once are corrected with `adjust(pvalues, "holm" | "bh" | ...)`.
`TESTS` maps YAML names ("hierarchical", "bootstrap", "permutation", "sign", "wilcoxon", "welch") to
tests that all take `(a, b, *, conf, iters, seed, alternative, margin)` and return a `PairedTest`.

Conventions:
  * `delta` is always `mean(a) - mean(b)` (scipy's sign convention for `ttest_rel(a, b)`): pass the
    candidate as `a` and the baseline as `b`; for a higher-is-better metric, delta < 0 is a drop.
  * Inputs are either two mappings `sample_id -> score` (aligned by id, order-free) or two aligned
    1-D arrays. Missing or non-finite scores raise: drop failed samples from *both* sides first, so
    that the number of pairs is a decision the caller makes and reports (`n_failed`).
  * Randomised procedures take an explicit `seed` and are reproducible; given the same inputs they
    return the same numbers whatever the dict order.

scipy is imported inside the functions that need it (it lives in the `eval` extra); importing this
module costs only numpy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from evalbench.errors import InputError, require
from evalbench.registry import Registry, UnknownName

# Bootstrap / permutation work is done in blocks of at most this many resampled elements, so
# 10 000 x 805 draws never materialise as one 64 MB index matrix, while each block stays large
# enough for numpy to run at full speed.
_BLOCK_ELEMS = 1 << 21

# Above this many pairs full enumeration of the 2^n sign flips is refused (2^24 x 24 elements).
_MAX_EXACT_N = 24

Scores = Mapping[Any, float] | Sequence[float] | np.ndarray  # per sample: {sample_id: score} or aligned
SeedValues = Mapping[Any, float] | Sequence[float] | np.ndarray  # one metric value per seed


def _stats():
    return require("scipy.stats", "eval")


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with `df` degrees of freedom."""
    return float(_stats().t.ppf(q, df))


# ---------------------------------------------------------------------------------------------
# result types


class SeedSummary(NamedTuple):
    """Mean and uncertainty of one metric over seeds.

    `std` is the sample standard deviation (ddof=1), `sem = std / sqrt(n)`; `ci_*` is the Student-t
    interval `mean ± t_{(1+conf)/2, n-1} · sem`; `boot_*` the percentile-bootstrap interval of the
    mean. With one seed there is no spread: `std`, `sem` and every interval are None (never NaN) and
    `note` says why.
    """

    mean: float
    std: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    boot_low: float | None
    boot_high: float | None
    sem: float | None = None
    conf: float = 0.95
    note: str | None = None


class PairedTest(NamedTuple):
    """The result of a two-sample comparison (also used by `welch_t`, which is not paired).

    Attributes:
        delta: `mean(a) - mean(b)`; for the clustered bootstrap, the mean over prompts of the
            per-prompt seed-averaged difference.
        ci_low, ci_high: a `conf` interval for `delta`; how it was made is in `ci_method`
            ("percentile_bootstrap" or "t").
        p_value: two-sided p-value of the test named in `method`.
        n: the number of independent units: pairs (or prompts when clustered); `n_a + n_b` for Welch.
        method: "hierarchical", "hierarchical-resampled", "exact-sign-flip", "sign-flip",
            "bootstrap", "clustered_bootstrap", "permutation", "sign", "wilcoxon" or "welch".
        statistic: the test's own statistic (mean difference, number of positive differences,
            Wilcoxon W, Welch or hierarchical t, sum of d - margin for sign flips), None where there
            is none.
        df: degrees of freedom (Welch, the hierarchical test's Satterthwaite df, n - 1 for sign flips).
        mde: minimum detectable effect at 80 % power and alpha = 1 - conf (two-sided), in the
            metric's units, for the data at hand (Card et al. 2020); None where undefined.
        n_models_a, n_models_b: trained models (checkpoints) per side, for the hierarchical tests.
        n_prompts: prompts used (valid on both sides).
        level: what the test treats as random: "prompt" (the models are fixed), "model+prompt"
            (training seeds and prompts), "model" (model means only, Welch), "generation"
            (generation seeds of one fixed model per side, Welch).
        min_p: the smallest p-value the design can give (exact sign flips), else None.
        n_dropped: prompts left out because one side had no valid score.
    """

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    method: str
    statistic: float | None = None
    df: float | None = None
    conf: float = 0.95
    ci_method: str = "t"
    mde: float | None = None
    n_models_a: int | None = None
    n_models_b: int | None = None
    n_prompts: int | None = None
    level: str | None = None
    min_p: float | None = None
    n_dropped: int = 0


class Aligned(NamedTuple):
    """Two score vectors aligned pair by pair; `ids` is None when the inputs were plain arrays."""

    ids: tuple | None
    a: np.ndarray
    b: np.ndarray


# ---------------------------------------------------------------------------------------------
# input handling


def _id_order(ids) -> list:
    # Sort ids so that results never depend on the order samples were written (concurrent writers);
    # the type name first keeps mixed int/str ids sortable.
    return sorted(ids, key=lambda k: (type(k).__name__, k))


def _examples(items, k: int = 3) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:k])
    return shown + (", ..." if len(items) > k else "")


def _check_conf(conf: float) -> None:
    if not 0.0 < conf < 1.0:
        raise InputError(f"conf must be in (0, 1), got {conf!r}", field="conf")


def _check_iters(iters: int) -> None:
    if int(iters) != iters or iters < 1:
        raise InputError(f"iters must be a positive integer, got {iters!r}", field="iters")


def _finite_vector(values: Sequence[float] | np.ndarray, name: str,
                   ids: Sequence | None = None) -> np.ndarray:
    """1-D float array; None/NaN/inf raise naming the first offending ids (or positions)."""
    try:
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            arr = values.astype(float)  # no per-element Python work for large numeric arrays
        else:
            arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: scores must be numbers ({exc})") from None
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D list of scores, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        where = [ids[i] for i in bad] if ids is not None else [int(i) for i in bad]
        label = "sample ids" if ids is not None else "positions"
        raise InputError(
            f"{name}: {bad.size} missing or non-finite score(s) at {label} {_examples(where)}; "
            "drop failed samples from both sides before comparing")
    return arr


def _values(x: Scores, name: str) -> tuple[list | None, np.ndarray]:
    """(ids, values) of a mapping, or (None, values) of a sequence."""
    if isinstance(x, Mapping):
        ids = _id_order(x)
        return ids, _finite_vector([x[k] for k in ids], name, ids)
    if isinstance(x, (str, bytes)):
        raise InputError(f"{name}: expected scores, got a string")
    return None, _finite_vector(x if isinstance(x, np.ndarray) else list(x), name)


def _mismatch(ids_a, ids_b, what: str = "sample ids") -> InputError:
    only_a = _id_order(set(ids_a) - set(ids_b))
    only_b = _id_order(set(ids_b) - set(ids_a))
    parts = [f"{what} differ: a has {len(set(ids_a))}, b has {len(set(ids_b))}"]
    if only_a:
        parts.append(f"{len(only_a)} only in a ({_examples(only_a)})")
    if only_b:
        parts.append(f"{len(only_b)} only in b ({_examples(only_b)})")
    return InputError("; ".join(parts))


def align_paired(a: Scores, b: Scores) -> Aligned:
    """Align two per-sample score sets for a paired test.

    Args:
        a, b: both mappings `sample_id -> score` (matched by id; the id sets must be equal), or both
            1-D sequences of equal length (matched by position).

    Raises:
        InputError: on mismatched id sets (naming the counts and a few ids missing on each side),
            unequal lengths, a mapping mixed with a sequence, no samples, or missing/non-finite scores.
    """
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise InputError("give a and b both as mappings keyed by sample id, or both as aligned arrays")
    if isinstance(a, Mapping):
        if set(a) != set(b):
            raise _mismatch(a.keys(), b.keys())
        ids = _id_order(a)
        va = _finite_vector([a[k] for k in ids], "a", ids)
        vb = _finite_vector([b[k] for k in ids], "b", ids)
        out = Aligned(tuple(ids), va, vb)
    else:
        _, va = _values(a, "a")
        _, vb = _values(b, "b")
        if va.shape != vb.shape:
            raise InputError(f"paired scores must have equal lengths: a has {va.size}, b has {vb.size}")
        out = Aligned(None, va, vb)
    if out.a.size == 0:
        raise InputError("no paired samples to compare")
    return out


def _is_by_seed(x: Any) -> bool:
    if isinstance(x, Mapping):
        return bool(x) and all(isinstance(v, Mapping) for v in x.values())
    if isinstance(x, np.ndarray):
        return x.ndim == 2
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        return bool(x) and all(isinstance(v, (Mapping, np.ndarray, Sequence)) and not isinstance(v, str)
                               for v in x)
    return False


def _cluster_means(by_seed: Any, name: str) -> tuple[list | None, np.ndarray, int]:
    """Per-prompt mean over seeds: (ids or None, means, number of seeds).

    `by_seed` is `{seed: {sample_id: score}}` (or a list of such mappings), or a 2-D array of shape
    (n_seeds, n_prompts). A prompt missing from some seeds (a failed sample the caller dropped) is
    averaged over the seeds that have it, so each prompt keeps weight 1.
    """
    seeds = list(by_seed.values()) if isinstance(by_seed, Mapping) else list(by_seed)
    seed_names = list(by_seed.keys()) if isinstance(by_seed, Mapping) else list(range(len(seeds)))
    if not seeds:
        raise InputError(f"{name}: no seeds given")
    if all(isinstance(s, Mapping) for s in seeds):
        sums: dict[Any, float] = {}
        counts: dict[Any, int] = {}
        for seed_name, scores in zip(seed_names, seeds):
            ids = _id_order(scores)
            vals = _finite_vector([scores[k] for k in ids], f"{name} (seed {seed_name!r})", ids)
            for k, v in zip(ids, vals):
                sums[k] = sums.get(k, 0.0) + float(v)
                counts[k] = counts.get(k, 0) + 1
        ids = _id_order(sums)
        return ids, np.array([sums[k] / counts[k] for k in ids]), len(seeds)
    if any(isinstance(s, Mapping) for s in seeds):
        raise InputError(f"{name}: mix of mappings and arrays across seeds")
    try:
        mat = np.asarray(seeds, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name}: every seed must score the same number of prompts") from None
    if mat.ndim != 2:
        raise InputError(f"{name}: expected shape (n_seeds, n_prompts), got {mat.shape}")
    if not np.all(np.isfinite(mat)):
        s, p = np.argwhere(~np.isfinite(mat))[0]
        raise InputError(f"{name}: non-finite score at seed {seed_names[s]!r}, prompt position {p}")
    return None, mat.mean(axis=0), mat.shape[0]


def align_clustered(a_by_seed: Any, b_by_seed: Any) -> Aligned:
    """Collapse several seeds per prompt into one seed-averaged score per prompt, aligned by prompt.

    The two sides may have different numbers of seeds; pairing is by prompt, not by seed.

    Raises:
        InputError: when the prompt sets differ (counts and examples), or on bad scores.
    """
    ids_a, ma, _ = _cluster_means(a_by_seed, "a")
    ids_b, mb, _ = _cluster_means(b_by_seed, "b")
    if (ids_a is None) != (ids_b is None):
        raise InputError("give a and b both keyed by sample id, or both as (n_seeds, n_prompts) arrays")
    if ids_a is not None:
        if ids_a != ids_b:
            raise _mismatch(ids_a, ids_b, "prompt ids")
        out = Aligned(tuple(ids_a), ma, mb)
    else:
        if ma.shape != mb.shape:
            raise InputError(f"a scores {ma.size} prompts per seed, b scores {mb.size}")
        out = Aligned(None, ma, mb)
    if out.a.size == 0:
        raise InputError("no prompts to compare")
    return out


# ---------------------------------------------------------------------------------------------
# building blocks


def _t_interval(x: np.ndarray, conf: float) -> tuple[float, float]:
    """Student-t interval of the mean of `x` (n >= 2); a zero spread gives a zero-width interval."""
    n = x.size
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    if sem == 0.0:
        return mean, mean
    half = float(_stats().t.ppf(0.5 + conf / 2.0, n - 1)) * sem
    return mean - half, mean + half


def _paired_t_ci(d: np.ndarray, conf: float) -> tuple[float, float]:
    if d.size < 2:
        raise InputError(f"need at least 2 pairs for an interval, got {d.size}")
    return _t_interval(d, conf)


def bootstrap_means(x: np.ndarray, iters: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `iters` resamples (with replacement) of the 1-D array `x`, vectorised in blocks.

    Each block draws an index matrix of shape (rows, n) and averages the gathered values along
    the rows: the whole bootstrap is a handful of numpy calls instead of `iters` Python iterations.
    """
    x = np.ascontiguousarray(x, dtype=float)
    n = x.size
    out = np.empty(iters)
    rows = max(1, _BLOCK_ELEMS // n)
    for start in range(0, iters, rows):
        stop = min(iters, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32 if n < 2**31 else np.int64)
        out[start:stop] = x[idx].mean(axis=1)
    return out


def _percentile_interval(boot: np.ndarray, conf: float) -> tuple[float, float]:
    lo, hi = np.quantile(boot, [0.5 - conf / 2.0, 0.5 + conf / 2.0])
    return float(lo), float(hi)


def bootstrap_p_value(boot: np.ndarray) -> float:
    """Two-sided bootstrap p-value for "the mean difference is 0", by inverting the percentile CI.

    `p = min(1, 2 · min(#{δ* <= 0} + 1, #{δ* >= 0} + 1) / (B + 1))`: the smallest α at which the
    equal-tailed (1-α) percentile interval excludes 0 (Efron & Tibshirani 1993, ch. 15-16 on
    achieved significance levels; the +1 keeps a finite resample count from reporting p = 0, as in
    Davison & Hinkley 1997, ch. 4). Hence `p < 1 - conf` iff the reported percentile CI excludes
    0, up to the +1 and quantile interpolation. Resamples exactly at 0 count on both sides, so
    identical inputs give p = 1.
    """
    b = boot.size
    below = int(np.count_nonzero(boot <= 0.0))
    above = int(np.count_nonzero(boot >= 0.0))
    return min(1.0, 2.0 * (min(below, above) + 1) / (b + 1))


# ---------------------------------------------------------------------------------------------
# across seeds


def seed_summary(values: SeedValues, conf: float = 0.95,
                 bootstrap_iters: int = 10_000, seed: int = 0) -> SeedSummary:
    """Mean, std (ddof=1), t-interval and percentile-bootstrap interval of a metric over seeds.

    Args:
        values: one value per seed, as `{seed: value}` or a sequence.
        conf: coverage of both intervals.
        bootstrap_iters: resamples for the percentile interval.
        seed: seed of the bootstrap's random generator.

    Returns:
        SeedSummary. With n = 1, `std`, `sem` and all interval bounds are None and `note` explains.
        The t-interval assumes roughly normal per-seed values; the percentile bootstrap makes no such
        assumption but is too narrow for a handful of seeds (it ignores the t correction), so prefer
        `ci_*` for the usual 3-5 seeds.

    Raises:
        InputError: no values, or a missing/non-finite value.
    """
    _check_conf(conf)
    _check_iters(bootstrap_iters)
    _, x = _values(values, "values")
    n = int(x.size)
    if n == 0:
        raise InputError("seed_summary needs at least one value")
    mean = float(x.mean())
    if n == 1:
        return SeedSummary(mean, None, 1, None, None, None, None, None, conf,
                           "one seed: no spread or interval; run at least 2 seeds")
    std = float(x.std(ddof=1))
    lo, hi = _t_interval(x, conf)
    boot = bootstrap_means(x, bootstrap_iters, np.random.default_rng(seed))
    blo, bhi = _percentile_interval(boot, conf)
    note = "2 seeds: intervals are very wide (t with 1 df)" if n == 2 else None
    return SeedSummary(mean, std, n, lo, hi, blo, bhi, std / math.sqrt(n), conf, note)


# ---------------------------------------------------------------------------------------------
# paired tests (per-sample scores of two checkpoints on the same prompts)


def _bootstrap_test(pair: Aligned, iters: int, seed: int, conf: float, method: str) -> PairedTest:
    d = pair.a - pair.b
    boot = bootstrap_means(d, iters, np.random.default_rng(seed))
    lo, hi = _percentile_interval(boot, conf)
    delta = float(d.mean())
    return PairedTest(delta, lo, hi, bootstrap_p_value(boot), int(d.size), method, delta, None, conf,
                      "percentile_bootstrap")


def paired_bootstrap(a: Scores, b: Scores, iters: int = 10_000, seed: int = 0,
                     conf: float = 0.95) -> PairedTest:
    """Paired percentile bootstrap of the mean difference `mean(a - b)`.

    Pairs (samples) are resampled with replacement `iters` times, vectorised (see
    `bootstrap_means`). The interval is the percentile interval; the two-sided p-value inverts it
    (see `bootstrap_p_value`): identical inputs give delta 0, CI (0, 0), p = 1.

    Args:
        a, b: per-sample scores, both `{sample_id: score}` or both aligned 1-D arrays.
        iters: number of bootstrap resamples.
        seed: seed of the random generator.
        conf: interval coverage.

    Raises:
        InputError: mismatched ids or lengths, missing/non-finite scores, bad conf/iters.
    """
    _check_conf(conf)
    _check_iters(iters)
    return _bootstrap_test(align_paired(a, b), iters, seed, conf, "bootstrap")


def clustered_paired_bootstrap(a_by_seed: Any, b_by_seed: Any, iters: int = 10_000, seed: int = 0,
                               conf: float = 0.95) -> PairedTest:
    """Paired bootstrap with prompts as clusters, for several seeds that repeat the same prompts.

    Each resample draws prompts with replacement and, inside each drawn prompt, averages the scores
    over seeds (per checkpoint) before differencing; the statistic is the mean over drawn prompts.
    This is the cluster bootstrap (Davison & Hinkley 1997, on hierarchical data; Field & Welsh 2007,
    "randomize clusters"): seeds of one prompt share the prompt's difficulty, so treating the
    n_seeds × n_prompts scores as independent would make the interval too narrow. Because the
    statistic only depends on a drawn prompt through its seed-averaged difference, resampling the
    per-prompt averages is exactly the cluster bootstrap; the prompts are resampled, never the seeds.

    Args:
        a_by_seed, b_by_seed: `{seed: {sample_id: score}}` (or a list of per-seed mappings), or 2-D
            arrays of shape (n_seeds, n_prompts) aligned by column. The sides may have different
            seeds; a prompt missing from some seeds is averaged over the seeds that have it.
        iters, seed, conf: as in `paired_bootstrap`.

    Returns:
        PairedTest with `method="clustered_bootstrap"` and `n` = number of prompts; `delta` is the
        mean over prompts of the seed-averaged difference (equal to the grand mean difference when
        every seed scores every prompt).
    """
    _check_conf(conf)
    _check_iters(iters)
    return _bootstrap_test(align_clustered(a_by_seed, b_by_seed), iters, seed, conf, "clustered_bootstrap")


def _sign_matrix(codes: np.ndarray, n: int) -> np.ndarray:
    """Rows of ±1 from the bits of integer `codes` (bit j of a code = sign of pair j)."""
    bits = (codes[:, None] >> np.arange(n, dtype=np.int64)) & 1
    return (bits * 2 - 1).astype(float)


def permutation_test(a: Scores, b: Scores, iters: int = 10_000, seed: int = 0, conf: float = 0.95,
                     exact: bool | None = None) -> PairedTest:
    """Paired permutation (sign-flip) test of `mean(a - b) = 0`, two-sided.

    Under the null that a and b are exchangeable within each pair, every difference is as likely
    to have either sign (Fisher 1935; Good 2005). The statistic is `|Σ s_i d_i|` over sign
    vectors s; the p-value is the share of sign vectors at least as extreme as the observed one.

    * exact (all 2^n sign vectors): `p = #{|T*| >= |T|} / 2^n` (includes the identity, so p >= 2^-n).
    * Monte Carlo (`iters` random sign vectors): `p = (#{|T*| >= |T|} + 1) / (iters + 1)`, the
      valid Monte Carlo p-value (Phipson & Smyth 2010).

    Ties are judged with a relative tolerance of 1e-10 of `Σ|d_i|`, so rounding in the flipped sums
    cannot turn an equally extreme arrangement into a less extreme one.

    Args:
        a, b: per-sample scores (see `paired_bootstrap`).
        iters: Monte Carlo sign vectors.
        seed: seed of the random generator.
        conf: coverage of the reported interval, which is the paired t-interval of the mean
            difference (a permutation test has no interval of its own).
        exact: enumerate all 2^n sign vectors; None = when `2**n <= iters`. At most n = 24.
    """
    _check_conf(conf)
    _check_iters(iters)
    pair = align_paired(a, b)
    d = pair.a - pair.b
    n = int(d.size)
    lo, hi = _paired_t_ci(d, conf)
    observed = abs(float(d.sum()))
    tol = 1e-10 * float(np.abs(d).sum())
    if exact is None:
        exact = n <= _MAX_EXACT_N and 2**n <= iters
    extreme = 0
    rows = max(1, _BLOCK_ELEMS // n)
    if exact:
        if n > _MAX_EXACT_N:
            raise InputError(f"exact permutation test enumerates 2^n sign flips; n={n} is too many "
                             f"(max {_MAX_EXACT_N}); use exact=False")
        total = 2**n
        for start in range(0, total, rows):
            codes = np.arange(start, min(total, start + rows), dtype=np.int64)
            extreme += int(np.count_nonzero(np.abs(_sign_matrix(codes, n) @ d) >= observed - tol))
        p = extreme / total
    else:
        rng = np.random.default_rng(seed)
        for start in range(0, iters, rows):
            m = min(iters, start + rows) - start
            signs = rng.integers(0, 2, size=(m, n), dtype=np.int8) * 2 - 1
            extreme += int(np.count_nonzero(np.abs(signs @ d) >= observed - tol))
        p = (extreme + 1) / (iters + 1)
    delta = float(d.mean())
    return PairedTest(delta, lo, hi, min(1.0, p), n, "permutation", delta, None, conf, "t")


def sign_test(a: Scores, b: Scores, conf: float = 0.95) -> PairedTest:
    """Two-sided sign test: among non-zero differences, is `a > b` as likely as `a < b`?

    Zero differences carry no sign and are dropped (Dixon & Mood 1946); with no non-zero
    difference p = 1. The p-value is `scipy.stats.binomtest(k, n_nonzero, 0.5)`; `statistic` is k,
    the number of pairs with a > b. The interval is the paired t-interval of the mean difference.
    """
    _check_conf(conf)
    pair = align_paired(a, b)
    d = pair.a - pair.b
    lo, hi = _paired_t_ci(d, conf)
    k = int(np.count_nonzero(d > 0))
    nonzero = int(np.count_nonzero(d != 0))
    p = 1.0 if nonzero == 0 else float(_stats().binomtest(k, nonzero, 0.5, alternative="two-sided").pvalue)
    return PairedTest(float(d.mean()), lo, hi, min(1.0, p), int(d.size), "sign", float(k), None, conf, "t")


def wilcoxon(a: Scores, b: Scores, conf: float = 0.95,
             zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox") -> PairedTest:
    """Wilcoxon signed-rank test (two-sided) via `scipy.stats.wilcoxon`.

    scipy chooses the exact null distribution for small n without ties/zeros and the normal
    approximation otherwise. When every difference is zero there is nothing to rank (scipy would
    warn and return NaN); we return p = 1 and statistic 0. `zero_method="wilcox"` drops zero
    differences (Wilcoxon 1945). The interval is the paired t-interval of the mean difference.
    """
    _check_conf(conf)
    pair = align_paired(a, b)
    d = pair.a - pair.b
    lo, hi = _paired_t_ci(d, conf)
    if not np.any(d != 0):
        stat, p = 0.0, 1.0
    else:
        res = _stats().wilcoxon(d, zero_method=zero_method, alternative="two-sided")
        stat, p = float(res.statistic), float(res.pvalue)
    return PairedTest(float(d.mean()), lo, hi, min(1.0, p), int(d.size), "wilcoxon", stat, None, conf, "t")


# ---------------------------------------------------------------------------------------------
# across seeds: independent samples


def welch_t(a_seeds: SeedValues, b_seeds: SeedValues, conf: float = 0.95) -> PairedTest:
    """Welch's unequal-variance t-test on per-seed values of two runs (Welch 1947).

    `scipy.stats.ttest_ind(a, b, equal_var=False)` gives t, the Welch–Satterthwaite df, p and the
    interval of `mean(a) - mean(b)`. Seeds are not paired (seed 0 of run A has nothing in common
    with seed 0 of run B unless the caller made it so). When both sides have zero spread the t
    statistic is undefined: equal means give p = 1, different means p = 0 (the limit as the spread
    goes to 0), with a zero-width interval.

    Returns:
        PairedTest with `method="welch"`, `n = n_a + n_b`, `statistic` = t, `df`.

    Raises:
        InputError: fewer than 2 values on either side, or missing/non-finite values.
    """
    _check_conf(conf)
    _, x = _values(a_seeds, "a")
    _, y = _values(b_seeds, "b")
    if x.size < 2 or y.size < 2:
        raise InputError(f"Welch's t-test needs at least 2 seeds per side, got {x.size} and {y.size}")
    delta = float(x.mean() - y.mean())
    n = int(x.size + y.size)
    if x.std() == 0.0 and y.std() == 0.0:
        p = 1.0 if delta == 0.0 else 0.0
        return PairedTest(delta, delta, delta, p, n, "welch", None, None, conf, "t")
    res = _stats().ttest_ind(x, y, equal_var=False)
    ci = res.confidence_interval(confidence_level=conf)
    return PairedTest(delta, float(ci.low), float(ci.high), float(res.pvalue), n, "welch",
                      float(res.statistic), float(res.df), conf, "t")


def cohens_d(a: SeedValues, b: SeedValues) -> float | None:
    """Cohen's d for independent samples: `(mean(a) - mean(b)) / s_pooled` (Cohen 1988, ch. 2).

    `s_pooled = sqrt(((n_a-1) s_a² + (n_b-1) s_b²) / (n_a + n_b - 2))` with ddof=1 variances.
    None when undefined (s_pooled = 0, or fewer than 3 values in all).
    """
    _, x = _values(a, "a")
    _, y = _values(b, "b")
    dof = x.size + y.size - 2
    if x.size < 1 or y.size < 1 or dof < 1:
        return None
    # (n - 1) * var(ddof=1) is the sum of squared deviations, also for n = 1 (where it is 0).
    ss = float(((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum())
    s = math.sqrt(ss / dof)
    return None if s == 0.0 else float((x.mean() - y.mean()) / s)


def hedges_g(a: SeedValues, b: SeedValues) -> float | None:
    """Hedges' g: Cohen's d times the exact small-sample bias correction (Hedges 1981).

    `J(m) = Γ(m/2) / (sqrt(m/2) Γ((m-1)/2))` with `m = n_a + n_b - 2`; ≈ `1 - 3/(4m - 1)`.
    None when d is undefined.
    """
    d = cohens_d(a, b)
    if d is None:
        return None
    m = len(a) + len(b) - 2
    if m < 2:  # Γ((m-1)/2) has a pole at m = 1
        return None
    gammaln = require("scipy.special", "eval").gammaln
    j = math.exp(gammaln(m / 2.0) - gammaln((m - 1) / 2.0)) / math.sqrt(m / 2.0)
    return float(d * j)


def cohens_dz(a: Scores, b: Scores) -> float | None:
    """Paired effect size `d_z = mean(d) / sd(d)`, `d = a - b` per pair, ddof=1 (Cohen 1988).

    Inputs are aligned like the paired tests. None when undefined (fewer than 2 pairs or sd = 0).
    """
    pair = align_paired(a, b)
    d = pair.a - pair.b
    if d.size < 2:
        return None
    sd = float(d.std(ddof=1))
    return None if sd == 0.0 else float(d.mean() / sd)


# ---------------------------------------------------------------------------------------------
# hierarchical tests: training seeds (models) x generation seeds x prompts
#
# The design and its references are in docs/statistics.md. In short: generation seeds and judge
# repeats are lower-level replicates and are averaged per (model, prompt) first; the variance of
# the difference of the two group means is a method-of-moments mixed-model estimate with crossed
# prompts and models nested in groups:
#
#     V = V_prompt + seed_a + seed_b,   V_prompt = var_p(d_p) / P,
#     seed_g = max(0, S²_g - MSres_g / P) / M_g   (groups with M_g >= 2; 0 for a single model),
#
# with Satterthwaite degrees of freedom. One model per side reduces it to the paired t over
# prompts; a dominant seed variance makes it Welch on model means.
#
# With at least MODEL_LEVEL_MIN models on both sides the test is Welch's t on model means. Every
# model answers the same prompts, so the prompt effects already cancel inside the model means: the
# prompt level adds no information there, and the mixed estimate, which must stay valid when the
# seed variance is small but unknown, measured 5-47 % less power than Welch at 3-5 models per side
# (benchmarks/calibration.py, results/calibration.md). Below that, where Welch has 1-2 degrees of
# freedom or cannot run at all, the mixed estimate gains 1.3-1.9x (2 vs 2) and is the only test
# with one model on a side. The choice depends on the design only (models per side), never on the
# data, so it keeps every test's calibration.

Alternative = Literal["two-sided", "greater", "less"]
_ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")

# Below this many prompts with one model per side, the test is an exact sign flip (issue 12:
# "small samples are exact"); enumerated up to _ENUMERATE_MAX_N prompts, Monte Carlo above.
SMALL_SAMPLE_PROMPTS = 30
_ENUMERATE_MAX_N = 16
# From this many trained models on BOTH sides, the test is Welch's t on model means (see above).
MODEL_LEVEL_MIN = 3


def _check_alternative(alternative: str) -> None:
    if alternative not in _ALTERNATIVES:
        raise InputError(f"alternative must be one of {', '.join(_ALTERNATIVES)}, got {alternative!r}",
                         field="alternative")


def _t_p_value(t: float, df: float, alternative: str) -> float:
    dist = _stats().t
    if alternative == "two-sided":
        return float(min(1.0, 2.0 * dist.sf(abs(t), df)))
    return float(dist.sf(t, df) if alternative == "greater" else dist.cdf(t, df))


def _degenerate_p(excess: float, alternative: str) -> float:
    """p-value when the estimated variance is 0: the limit as the spread goes to 0."""
    if alternative == "two-sided":
        return 1.0 if excess == 0.0 else 0.0
    if alternative == "greater":
        return 0.0 if excess > 0 else 1.0
    return 0.0 if excess < 0 else 1.0


def minimum_detectable_effect(se: float, df: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true difference a two-sided level-`alpha` t-test detects with probability `power`.

    `MDE = (t_{df, 1-alpha/2} + t_{df, power}) · se` (the usual normal-approximation formula with t
    quantiles; Card et al. 2020, "With Little Power Comes Great Responsibility"; Miller 2024 §5).
    """
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise InputError(f"alpha and power must lie in (0, 1), got {alpha!r}, {power!r}")
    if not math.isfinite(se) or se < 0:
        raise InputError(f"se must be a finite non-negative number, got {se!r}")
    dist = _stats().t
    return float((dist.ppf(1.0 - alpha / 2.0, df) + dist.ppf(power, df)) * se)


def _model_by_prompt(y: Any, name: str) -> np.ndarray:
    """(models, prompts) scores: generation seeds (axis 1 of a 3-D input) averaged per model and prompt."""
    try:
        arr = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a numeric array (models, prompts) or (models, gen_seeds, prompts)") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim == 3:
        arr = mean_ignoring_missing(arr, axis=1)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InputError(f"{name}: expected shape (models, prompts) or (models, gen_seeds, prompts), "
                         f"got {np.shape(y)}")
    if np.isinf(arr).any():
        raise InputError(f"{name}: infinite score; use NaN for a missing one")
    return arr


def mean_ignoring_missing(x: np.ndarray, axis) -> np.ndarray:
    """nanmean without the all-NaN warning (an all-missing slice is simply missing)."""
    count = np.sum(np.isfinite(x), axis=axis)
    total = np.nansum(x, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _residual_mean_square(y: np.ndarray) -> float | None:
    """Two-way (model x prompt) residual mean square over the prompts every model scored; None if < 2."""
    y = y[:, np.all(np.isfinite(y), axis=0)]
    m, p = y.shape
    if m < 2 or p < 2:
        return None
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    return float((resid ** 2).sum() / ((m - 1) * (p - 1)))


class _Side(NamedTuple):
    """One group's contribution to the variance: spread of model means and its noise floor."""

    n_models: int
    s2: float | None  # var(model means), ddof=1; None for one model
    floor: float  # the part of s2 due to prompt-level noise (MSres / P), 0 when unknown


def _seed_side(y: np.ndarray) -> _Side:
    m, p = y.shape
    if m < 2:
        return _Side(m, None, 0.0)
    s2 = float(np.var(mean_ignoring_missing(y, axis=1), ddof=1))
    ms = _residual_mean_square(y)
    # Unknown floor -> 0: the seed term is then var(model means) / M, which is the conservative choice.
    return _Side(m, s2, 0.0 if ms is None else ms / p)


def _assemble(delta: float, v_prompt: float, n_prompts: int, sides: Sequence[_Side], *, conf: float,
              alternative: str, margin: float, method: str, n_dropped: int = 0) -> PairedTest:
    """Combine the variance components into t, df, p, CI and MDE (see the section comment)."""
    var = v_prompt
    df_den = v_prompt ** 2 / (n_prompts - 1)
    for side in sides:
        if side.s2 is None:
            continue
        var += max(0.0, side.s2 - side.floor) / side.n_models
        # Satterthwaite for seed = (S² - floor) / M: S² has M - 1 df, the floor (M-1)(P-1). Both are
        # counted even when the estimate was truncated at 0: a seed variance estimated from M - 1
        # df is not known to be 0, and dropping its df whenever the estimate happens to fall below
        # the floor made the test liberal (equal seed sds, a side with 2 models: 0.050-0.069 in our
        # simulation; 0.040-0.057 with this rule; docs/statistics.md, "Calibration").
        df_den += (side.s2 / side.n_models) ** 2 / (side.n_models - 1)
        df_den += (side.floor / side.n_models) ** 2 / ((side.n_models - 1) * (n_prompts - 1))
    ma, mb = sides[0].n_models, sides[1].n_models
    level = "model+prompt" if (ma > 1 or mb > 1) else "prompt"
    df = var ** 2 / df_den if df_den > 0 else float(n_prompts - 1)
    se = math.sqrt(var)
    excess = delta - margin
    if se == 0.0:
        p, lo, hi = _degenerate_p(excess, alternative), delta, delta
        t_stat = None
    else:
        t_stat = excess / se
        p = _t_p_value(t_stat, df, alternative)
        half = float(_stats().t.ppf(0.5 + conf / 2.0, df)) * se
        lo, hi = delta - half, delta + half
    mde = minimum_detectable_effect(se, df, alpha=1.0 - conf)
    return PairedTest(float(delta), float(lo), float(hi), float(p), int(n_prompts), method, t_stat, float(df),
                      conf, "t", mde, ma, mb, int(n_prompts), level, None, int(n_dropped))


def _model_level(fa: np.ndarray, fb: np.ndarray, n_prompts: int, *, conf: float, alternative: str, margin: float,
                 method: str, n_dropped: int = 0) -> PairedTest:
    """Welch's t on model values (each model's mean, or metric, over the shared prompts)."""
    ma, mb = int(fa.size), int(fb.size)
    delta = float(fa.mean() - fb.mean())
    va, vb = float(np.var(fa, ddof=1)) / ma, float(np.var(fb, ddof=1)) / mb
    var = va + vb
    excess = delta - margin
    if var == 0.0:  # every model of both groups identical: the limit as the spread goes to 0
        return PairedTest(delta, delta, delta, _degenerate_p(excess, alternative), n_prompts, method, None,
                          None, conf, "t", None, ma, mb, n_prompts, "model", None, int(n_dropped))
    df = var ** 2 / (va ** 2 / (ma - 1) + vb ** 2 / (mb - 1))
    se = math.sqrt(var)
    t_stat = excess / se
    half = t_quantile(0.5 + conf / 2.0, df) * se
    return PairedTest(delta, delta - half, delta + half, _t_p_value(t_stat, df, alternative), n_prompts, method,
                      t_stat, float(df), conf, "t", minimum_detectable_effect(se, df, alpha=1.0 - conf), ma, mb,
                      n_prompts, "model", None, int(n_dropped))


def exact_sign_flip(d: Sequence[float] | np.ndarray, *, alternative: Alternative = "two-sided",
                    margin: float = 0.0, conf: float = 0.95, iters: int = 20_000, seed: int = 0) -> PairedTest:
    """Sign-flip permutation test of `mean(d) = margin` for few paired differences (Fisher 1935).

    Under the null each `d_i - margin` is symmetric about 0. All 2^n sign patterns are enumerated
    for n <= 16 (`p = #{T* at least as extreme} / 2^n`); above, `iters` random patterns give
    `p = (1 + #) / (1 + iters)` (Phipson & Smyth 2010). The p-value is never below the smallest
    attainable for the design, `2 / 2^n` two-sided (`1 / 2^n` one-sided), reported as `min_p`:
    3 prompts can never give p < 0.25. The interval and MDE are the paired t ones.

    Raises:
        InputError: fewer than 2 differences, or missing/non-finite values.
    """
    _check_conf(conf)
    _check_iters(iters)
    _check_alternative(alternative)
    d = _finite_vector(np.asarray(d, dtype=float) if not isinstance(d, np.ndarray) else d, "d")
    n = int(d.size)
    if n < 2:
        raise InputError(f"a sign-flip test needs at least 2 paired differences, got {n}")
    x = d - margin
    observed = float(x.sum())
    tol = 1e-10 * max(float(np.abs(x).sum()), 1e-300)

    def extreme(sums: np.ndarray) -> int:
        if alternative == "two-sided":
            return int(np.count_nonzero(np.abs(sums) >= abs(observed) - tol))
        if alternative == "greater":
            return int(np.count_nonzero(sums >= observed - tol))
        return int(np.count_nonzero(sums <= observed + tol))

    rows = max(1, _BLOCK_ELEMS // n)
    hits = 0
    if n <= _ENUMERATE_MAX_N:
        total = 2 ** n
        for start in range(0, total, rows):
            codes = np.arange(start, min(total, start + rows), dtype=np.int64)
            hits += extreme(_sign_matrix(codes, n) @ x)
        p = hits / total
        method = "exact-sign-flip"
    else:
        rng = np.random.default_rng(seed)
        for start in range(0, iters, rows):
            m = min(iters, start + rows) - start
            hits += extreme((rng.integers(0, 2, size=(m, n), dtype=np.int8) * 2 - 1) @ x)
        p = (hits + 1) / (iters + 1)
        method = "sign-flip"
    min_p = min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2 ** n)
    p = min(1.0, max(p, min_p))
    lo, hi = _paired_t_ci(d, conf)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    mde = minimum_detectable_effect(se, n - 1, alpha=1.0 - conf)
    return PairedTest(float(d.mean()), lo, hi, float(p), n, method, observed, float(n - 1), conf, "t", mde,
                      1, 1, n, "prompt", min_p)


def hierarchical_test(a: Any, b: Any, *, conf: float = 0.95, alternative: Alternative = "two-sided",
                      margin: float = 0.0, seed: int = 0, iters: int = 20_000) -> PairedTest:
    """Test `mean(a) - mean(b) = margin` for two groups of trained models scored on the same prompts.

    Args:
        a, b: float arrays (models, prompts) or (models, gen_seeds, prompts), NaN = missing, the
            same prompt columns on both sides. Generation seeds are averaged per model and prompt.
            A 1-D array is one model.
        conf: interval coverage; the MDE uses alpha = 1 - conf.
        alternative: "two-sided", "greater" (H1: delta > margin) or "less" (H1: delta < margin).
        margin: the null value of delta (non-inferiority margins in `gate`).
        seed, iters: for the Monte Carlo sign flip (one model per side, 17-29 prompts).

    Returns:
        PairedTest, method "hierarchical": level "model" (Welch on model means) with at least
        `MODEL_LEVEL_MIN` models on both sides, else a Satterthwaite t of the mixed estimate (level
        "prompt" with one model per side, else "model+prompt"); "exact-sign-flip"/"sign-flip" when
        each side has one model and fewer than 30 prompts. `n_dropped` counts prompts without a
        valid score on one side.

    Raises:
        InputError: different prompt counts, fewer than 2 prompts valid on both sides, bad options.
    """
    _check_conf(conf)
    _check_alternative(alternative)
    ya, yb = _model_by_prompt(a, "a"), _model_by_prompt(b, "b")
    if ya.shape[1] != yb.shape[1]:
        raise InputError(f"a scores {ya.shape[1]} prompts, b scores {yb.shape[1]}; give the same prompt columns")
    valid = np.isfinite(ya).any(axis=0) & np.isfinite(yb).any(axis=0)
    n_dropped = int(valid.size - valid.sum())
    ya, yb = ya[:, valid], yb[:, valid]
    n_prompts = int(valid.sum())
    if n_prompts < 2:
        raise InputError(f"fewer than 2 prompts with valid scores on both sides ({n_prompts})")
    ya = ya[np.isfinite(ya).any(axis=1)]  # a model with no valid prompt left contributes nothing
    yb = yb[np.isfinite(yb).any(axis=1)]
    d = mean_ignoring_missing(ya, axis=0) - mean_ignoring_missing(yb, axis=0)
    if ya.shape[0] >= MODEL_LEVEL_MIN and yb.shape[0] >= MODEL_LEVEL_MIN:
        return _model_level(mean_ignoring_missing(ya, axis=1), mean_ignoring_missing(yb, axis=1), n_prompts,
                            conf=conf, alternative=alternative, margin=margin, method="hierarchical",
                            n_dropped=n_dropped)
    if ya.shape[0] == 1 and yb.shape[0] == 1 and n_prompts < SMALL_SAMPLE_PROMPTS:
        return exact_sign_flip(d, alternative=alternative, margin=margin, conf=conf, iters=iters,
                               seed=seed)._replace(n_dropped=n_dropped)
    v_prompt = float(np.var(d, ddof=1)) / n_prompts
    return _assemble(float(d.mean()), v_prompt, n_prompts, (_seed_side(ya), _seed_side(yb)), conf=conf,
                     alternative=alternative, margin=margin, method="hierarchical", n_dropped=n_dropped)


UnitResampler = Callable[[np.ndarray], np.ndarray]  # weights (B, P) -> values (B,)


def _model_values(units: Sequence[Sequence[UnitResampler]], weights: np.ndarray, name: str) -> np.ndarray:
    """(models, B): each model's value per weight row, the mean over its generation seeds."""
    out = []
    for i, gens in enumerate(units):
        if not gens:
            raise InputError(f"{name}: model {i} has no generation seed")
        vals = np.array([np.asarray(f(weights), dtype=float).reshape(-1) for f in gens])
        if vals.shape[1] != weights.shape[0]:
            raise InputError(f"{name}: a resampler returned {vals.shape[1]} values for {weights.shape[0]} weight rows")
        out.append(mean_ignoring_missing(vals, axis=0))
    return np.array(out)


def hierarchical_test_resampled(a_units: Sequence[Sequence[UnitResampler]], b_units: Sequence[Sequence[UnitResampler]],
                                n_prompts: int, *, conf: float = 0.95, alternative: Alternative = "two-sided",
                                margin: float = 0.0, seed: int = 0, iters: int = 2_000) -> PairedTest:
    """The hierarchical test for a metric that is not a plain mean (LC win rate, AID): recompute it per resample.

    B = `iters` multinomial prompt-weight rows W (B x P, seeded) are shared by every unit of both
    groups, so the prompt pairing is kept (the pigeonhole idea of Owen 2007 for crossed designs,
    here with the model level handled analytically). Each unit's value θ*(W) comes from its
    resampler; a model's value is the mean over its generation seeds; Δ* = mean_m θ*_a - mean_m θ*_b.
    Then `V_prompt = var(Δ*)`, `floor_g = M_g/(M_g-1) · mean_m var_B(θ*_gm - mean_m θ*_gm)` (the
    prompt-level noise in the spread of model values), `S²_g` = var of full-data model values, and
    V, df, t as in `hierarchical_test`.

    Args:
        a_units, b_units: per model, per generation seed, a callable `weights (B, P) -> values (B,)`
            (NaN where undefined); a row of ones must give the unit's metric.
        n_prompts: P, the number of weight columns.

    Returns:
        PairedTest with method "hierarchical-resampled" and ci_method "t".
    """
    _check_conf(conf)
    _check_iters(iters)
    _check_alternative(alternative)
    if not a_units or not b_units:
        raise InputError("each side needs at least one model")
    if n_prompts < 2:
        raise InputError(f"need at least 2 prompts, got {n_prompts}")
    full = np.ones((1, n_prompts))
    fa, fb = _model_values(a_units, full, "a")[:, 0], _model_values(b_units, full, "b")[:, 0]
    if not (np.isfinite(fa).all() and np.isfinite(fb).all()):
        raise InputError("the metric is undefined on the full data for some model")
    if fa.size >= MODEL_LEVEL_MIN and fb.size >= MODEL_LEVEL_MIN:  # no resampling needed (see the section note)
        return _model_level(fa, fb, n_prompts, conf=conf, alternative=alternative, margin=margin,
                            method="hierarchical-resampled")
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_prompts, np.full(n_prompts, 1.0 / n_prompts), size=iters).astype(float)
    ba, bb = _model_values(a_units, weights, "a"), _model_values(b_units, weights, "b")
    ok = np.isfinite(ba).all(axis=0) & np.isfinite(bb).all(axis=0)
    if ok.sum() < 2:
        raise InputError("the metric is undefined in almost every resample")
    ba, bb = ba[:, ok], bb[:, ok]
    v_prompt = float(np.var(ba.mean(axis=0) - bb.mean(axis=0), ddof=1))

    def side(full_vals: np.ndarray, boot: np.ndarray) -> _Side:
        m = full_vals.size
        if m < 2:
            return _Side(m, None, 0.0)
        centred = boot - boot.mean(axis=0, keepdims=True)
        floor = m / (m - 1) * float(np.var(centred, axis=1, ddof=1).mean())
        return _Side(m, float(np.var(full_vals, ddof=1)), floor)

    delta = float(fa.mean() - fb.mean())
    return _assemble(delta, v_prompt, n_prompts, (side(fa, ba), side(fb, bb)), conf=conf, alternative=alternative,
                     margin=margin, method="hierarchical-resampled")


def variance_components(y: Any) -> dict[str, Any]:
    """ANOVA (method-of-moments) estimates of the variance components of a balanced-ish design.

    Args:
        y: array (models, gen_seeds, judge_repeats, prompts), NaN = missing. Models are trained
            checkpoints (training seeds), crossed with prompts; generation seeds are nested in models,
            judge repeats in (model, generation seed, prompt).

    Returns:
        `{"train_seed", "generation", "judge", "prompt", "residual"}`: variances (truncated at 0), None
        where the level does not exist in the data (one model: no training-seed component and
        the prompt component absorbs the model x prompt interaction; one generation seed: generation
        noise is part of the residual; one judge repeat: no judge component). `residual` is the
        model x prompt interaction. Also `n_models`, `n_gen_seeds`, `n_judge_repeats`, `n_prompts`.

    The estimators (Searle, Casella & McCulloch 1992, ch. 4): judge = mean within-cell variance over
    repeats; generation = mean variance over generation seeds of the judge-averaged scores minus
    judge/J; on the (model x prompt) table of means, E[MS_model] = σ²_r + P σ²_seed,
    E[MS_prompt] = σ²_r + M σ²_prompt, E[MS_res] = σ²_r, σ²_r = σ²_mp + (σ²_gen + σ²_judge/J)/G.
    """
    arr = np.asarray(y, dtype=float)
    if arr.ndim != 4:
        raise InputError(f"expected shape (models, gen_seeds, judge_repeats, prompts), got {arr.shape}")
    m, g, j, p = arr.shape
    out: dict[str, Any] = {"n_models": m, "n_gen_seeds": g, "n_judge_repeats": j, "n_prompts": p,
                           "train_seed": None, "generation": None, "judge": None, "prompt": None, "residual": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        judge = None
        if j >= 2:
            judge = float(np.nanmean(np.nanvar(arr, axis=2, ddof=1)))
            out["judge"] = max(0.0, judge)
        cells = mean_ignoring_missing(arr, axis=2)  # (m, g, p)
        within_gen = None
        if g >= 2:
            within_gen = float(np.nanmean(np.nanvar(cells, axis=1, ddof=1)))
            out["generation"] = max(0.0, within_gen - (judge or 0.0) / j)
        table = mean_ignoring_missing(cells, axis=1)  # (m, p)
    lower = (within_gen / g) if within_gen is not None else (judge / j if judge is not None else 0.0)
    if m >= 2:
        complete = table[:, np.all(np.isfinite(table), axis=0)]
        pc = complete.shape[1]
        if pc >= 2:
            row, col, grand = complete.mean(axis=1), complete.mean(axis=0), complete.mean()
            ms_model = pc * float(((row - grand) ** 2).sum()) / (m - 1)
            ms_prompt = m * float(((col - grand) ** 2).sum()) / (pc - 1)
            ms_res = float(((complete - row[:, None] - col[None, :] + grand) ** 2).sum()) / ((m - 1) * (pc - 1))
            out["train_seed"] = max(0.0, (ms_model - ms_res) / pc)
            out["prompt"] = max(0.0, (ms_prompt - ms_res) / m)
            out["residual"] = max(0.0, ms_res - lower)
    else:
        col = table[0][np.isfinite(table[0])]
        if col.size >= 2:
            out["prompt"] = max(0.0, float(np.var(col, ddof=1)) - lower)
    return out


# ---------------------------------------------------------------------------------------------
# multiple comparisons


def _pvalue_array(pvalues: Sequence[float]) -> np.ndarray:
    p = _finite_vector(list(pvalues), "pvalues")
    if np.any((p < 0) | (p > 1)):
        raise InputError(f"p-values must lie in [0, 1], got {_examples(p[(p < 0) | (p > 1)].tolist())}")
    return p


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), controlling the family-wise error rate.

    With ascending `p_(1) <= ... <= p_(m)`: `adj_(i) = max_{j<=i} min(1, (m - j + 1) p_(j))`,
    returned in the input order.
    """
    p = _pvalue_array(pvalues)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(scaled)
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (Benjamini & Hochberg 1995), controlling the FDR.

    With ascending `p_(1) <= ... <= p_(m)`: `adj_(i) = min_{j>=i} min(1, m p_(j) / j)`, returned in
    the input order. Rejecting `adj <= q` is the BH step-up procedure at level q.
    """
    p = _pvalue_array(pvalues)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * m / np.arange(1, m + 1))
    out = np.empty(m)
    out[order] = np.minimum.accumulate(scaled[::-1])[::-1]
    return out


def bonferroni(pvalues: Sequence[float]) -> np.ndarray:
    """Bonferroni adjusted p-values: `min(1, m p)`."""
    p = _pvalue_array(pvalues)
    return np.minimum(1.0, p * p.size)


def no_adjustment(pvalues: Sequence[float]) -> np.ndarray:
    """The p-values unchanged (validated), for configs that compare a single metric."""
    return _pvalue_array(pvalues).copy()


ADJUSTMENTS: Registry[Callable[[Sequence[float]], np.ndarray]] = Registry("p-value adjustment")
ADJUSTMENTS.add("holm", holm)
ADJUSTMENTS.add("bh", benjamini_hochberg)
ADJUSTMENTS.add("fdr_bh", benjamini_hochberg)  # statsmodels' name, accepted for familiarity
ADJUSTMENTS.add("bonferroni", bonferroni)
ADJUSTMENTS.add("none", no_adjustment)


def adjust(pvalues: Sequence[float] | Mapping[Any, float],
           method: str = "holm") -> list[float] | dict[Any, float]:
    """Adjust p-values for multiple comparisons with the method named in `ADJUSTMENTS`.

    Args:
        pvalues: a sequence, or a mapping `name -> p` (e.g. one entry per metric).
        method: "holm", "bh" (alias "fdr_bh"), "bonferroni" or "none".

    Returns:
        Adjusted p-values in the same shape: a list, or a dict with the same keys and order.

    Raises:
        InputError: unknown method (with a did-you-mean) or p-values outside [0, 1].
    """
    try:
        fn = ADJUSTMENTS.get(method)
    except UnknownName as exc:
        raise InputError(str(exc), field="method") from None
    if isinstance(pvalues, Mapping):
        keys = list(pvalues)
        return dict(zip(keys, (float(v) for v in fn([pvalues[k] for k in keys]))))
    return [float(v) for v in fn(list(pvalues))]


# ---------------------------------------------------------------------------------------------
# the test registry: select a test by name from YAML


@dataclass(frozen=True)
class StatTest:
    """A named test with the uniform call `test(a, b, *, conf=0.95, iters=10_000, seed=0)`.

    `unit` says what `a` and `b` hold:
      * "sample": per-sample scores of two checkpoints, `{sample_id: score}` or aligned arrays; or,
        with several units, `{unit: {sample_id: score}}` / (n_units, n_prompts) arrays, or three
        levels `{model: {gen_seed: {sample_id: score}}}`. Generation seeds are always averaged per
        prompt within their model first (they are replicates of one model, never independent
        models). "hierarchical" treats the outer units as trained models (training seeds) and
        accounts for their spread; the other sample tests run on per-prompt means over models,
        i.e. they condition on the trained models and test the prompt level only.
      * "seed": one metric value per model for each run (Welch); `{model: [per-gen-seed values]}`
        is averaged per model first.
    Options a test does not use (e.g. `iters` for the sign test) are ignored. `alternative` and
    `margin` are native to "hierarchical" and "welch"; the other tests are run on `a - margin` and
    a one-sided p is half the two-sided one in the direction of the observed effect (1 - p/2
    against it), which is exact for symmetric null distributions.
    """

    name: str
    unit: Literal["sample", "seed"]
    fn: Callable[..., PairedTest]
    description: str

    def __call__(self, a: Any, b: Any, *, conf: float = 0.95, iters: int = 10_000, seed: int = 0,
                 alternative: str = "two-sided", margin: float = 0.0) -> PairedTest:
        _check_alternative(alternative)
        return self.fn(a, b, conf=conf, iters=iters, seed=seed, alternative=alternative, margin=margin)


def _is_three_level(x: Any) -> bool:
    return (isinstance(x, Mapping) and bool(x) and all(isinstance(v, Mapping) for v in x.values())
            and all(isinstance(w, Mapping) for v in x.values() for w in v.values()))


def _average_generations(x: Any) -> Any:
    """`{model: {gen: {sid: score}}}` -> `{model: {sid: mean over gens}}`; anything else unchanged."""
    if not _is_three_level(x):
        return x
    out = {}
    for model, gens in x.items():
        _, means, _ = _cluster_means(gens, f"model {model!r}")
        ids = _id_order(set().union(*(set(g) for g in gens.values())))
        out[model] = dict(zip(ids, means))
    return out


def _per_prompt(a: Any, b: Any) -> tuple[Any, Any]:
    """Per-prompt means over units (generation seeds averaged within models first); else unchanged."""
    a, b = _average_generations(a), _average_generations(b)
    if _is_by_seed(a) or _is_by_seed(b):
        pair = align_clustered(a, b)
        return pair.a, pair.b
    return a, b


def _shift(a: Any, margin: float) -> Any:
    if margin == 0.0:
        return a
    if isinstance(a, Mapping):
        return {k: v - margin for k, v in a.items()}
    return np.asarray(a, dtype=float) - margin


def _one_sided(res: PairedTest, alternative: str, margin: float) -> PairedTest:
    """Convert a two-sided result on `a - margin` into the requested alternative (see StatTest)."""
    if alternative == "two-sided":
        return res
    excess = res.delta - margin
    toward = excess > 0 if alternative == "greater" else excess < 0
    p = res.p_value / 2.0 if toward else 1.0 - res.p_value / 2.0
    return res._replace(p_value=float(min(1.0, p)))


def _unshift(res: PairedTest, margin: float) -> PairedTest:
    if margin == 0.0:
        return res
    return res._replace(delta=res.delta + margin, ci_low=res.ci_low + margin, ci_high=res.ci_high + margin)


def _sample_runner(run: Callable[..., PairedTest]) -> Callable[..., PairedTest]:
    def runner(a, b, *, conf, iters, seed, alternative="two-sided", margin=0.0):
        a, b = _per_prompt(a, b)
        res = _unshift(run(_shift(a, margin), b, conf=conf, iters=iters, seed=seed), margin)
        return _one_sided(res, alternative, margin)
    return runner


def _run_bootstrap(a, b, *, conf, iters, seed):
    return paired_bootstrap(a, b, iters=iters, seed=seed, conf=conf)


def _run_permutation(a, b, *, conf, iters, seed):
    return permutation_test(a, b, iters=iters, seed=seed, conf=conf)


def _run_sign(a, b, *, conf, iters, seed):
    return sign_test(a, b, conf=conf)


def _run_wilcoxon(a, b, *, conf, iters, seed):
    return wilcoxon(a, b, conf=conf)


def _model_means(x: Any) -> Any:
    """`{model: [values per generation seed]}` -> `{model: mean}`; other inputs unchanged."""
    if isinstance(x, Mapping) and x and all(isinstance(v, (Sequence, np.ndarray, Mapping)) and not isinstance(v, str)
                                            for v in x.values()):
        out = {}
        for k, v in x.items():
            _, vals = _values(v, f"model {k!r}")
            out[k] = float(vals.mean())
        return out
    return x


def _run_welch(a, b, *, conf, iters, seed, alternative="two-sided", margin=0.0):
    a, b = _model_means(a), _model_means(b)
    res = welch_t(_shift(a, margin), b, conf=conf)
    res = _unshift(res, margin)
    if alternative != "two-sided" and res.df is not None and res.statistic is not None:
        return res._replace(p_value=_t_p_value(res.statistic, res.df, alternative), level="model")
    if alternative != "two-sided":
        return res._replace(p_value=_degenerate_p(res.delta - margin, alternative), level="model")
    return res._replace(level="model")


def _model_array(x: Any, ids: list | None) -> np.ndarray:
    """(models, [gens,] prompts) array from an array or (nested) mapping, columns in `ids` order."""
    if ids is None:
        return np.asarray(x, dtype=float)
    if _is_three_level(x):
        models = list(x.values())
        n_gen = max(len(g) for g in models)
        out = np.full((len(models), n_gen, len(ids)), np.nan)
        for i, gens in enumerate(models):
            for j, scores in enumerate(gens.values()):
                out[i, j] = [np.nan if (v := scores.get(k)) is None else v for k in ids]
        return out
    units = list(x.values()) if _is_by_seed(x) else [x]
    return np.array([[np.nan if (v := u.get(k)) is None else v for k in ids] for u in units], dtype=float)


def _prompt_ids(x: Any) -> set:
    if _is_three_level(x):
        return set().union(*(set(s) for g in x.values() for s in g.values()))
    if _is_by_seed(x):
        return set().union(*(set(s) for s in x.values()))
    return set(x)


def _run_hierarchical(a, b, *, conf, iters, seed, alternative="two-sided", margin=0.0):
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise InputError("give a and b both as mappings keyed by sample id, or both as arrays")
    ids = None
    if isinstance(a, Mapping):
        ia, ib = _prompt_ids(a), _prompt_ids(b)
        if ia != ib:
            raise _mismatch(ia, ib, "prompt ids")
        ids = _id_order(ia)
    return hierarchical_test(_model_array(a, ids), _model_array(b, ids), conf=conf, alternative=alternative,
                             margin=margin, seed=seed, iters=max(iters, 1))


TESTS: Registry[StatTest] = Registry("statistical test")
for _t in (
    StatTest("hierarchical", "sample", _run_hierarchical,
             "mixed-model t-test over training seeds and prompts (exact sign flip for one model per side "
             "and fewer than 30 prompts); see docs/statistics.md"),
    StatTest("bootstrap", "sample", _sample_runner(_run_bootstrap), "paired percentile bootstrap of the mean "
             "difference of per-prompt means (conditions on the trained models)"),
    StatTest("permutation", "sample", _sample_runner(_run_permutation), "paired sign-flip permutation test"),
    StatTest("sign", "sample", _sample_runner(_run_sign), "sign test on non-zero differences (binomial)"),
    StatTest("wilcoxon", "sample", _sample_runner(_run_wilcoxon), "Wilcoxon signed-rank test"),
    StatTest("welch", "seed", _run_welch, "Welch's t-test on per-model values"),
):
    TESTS.add(_t.name, _t)
del _t


def run_test(name: str, a: Any, b: Any, *, conf: float = 0.95, iters: int = 10_000,
             seed: int = 0, alternative: str = "two-sided", margin: float = 0.0) -> PairedTest:
    """Run the test registered as `name` in `TESTS`; an unknown name is an InputError with a suggestion."""
    try:
        test = TESTS.get(name)
    except UnknownName as exc:
        raise InputError(str(exc), field="test") from None
    return test(a, b, conf=conf, iters=iters, seed=seed, alternative=alternative, margin=margin)


__all__ = [
    "ADJUSTMENTS",
    "SMALL_SAMPLE_PROMPTS",
    "TESTS",
    "Aligned",
    "PairedTest",
    "SeedSummary",
    "StatTest",
    "adjust",
    "align_clustered",
    "align_paired",
    "benjamini_hochberg",
    "bonferroni",
    "bootstrap_means",
    "bootstrap_p_value",
    "clustered_paired_bootstrap",
    "cohens_d",
    "cohens_dz",
    "exact_sign_flip",
    "hedges_g",
    "hierarchical_test",
    "hierarchical_test_resampled",
    "holm",
    "minimum_detectable_effect",
    "paired_bootstrap",
    "permutation_test",
    "run_test",
    "seed_summary",
    "sign_test",
    "variance_components",
    "welch_t",
    "wilcoxon",
]
