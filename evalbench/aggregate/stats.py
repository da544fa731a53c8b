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

Many comparisons at once are corrected with `adjust(pvalues, "holm" | "bh" | ...)`.
`TESTS` maps YAML names ("bootstrap", "permutation", "sign", "wilcoxon", "welch") to tests that all
take `(a, b, *, conf, iters, seed)` and return a `PairedTest`.

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
        method: "bootstrap", "clustered_bootstrap", "permutation", "sign", "wilcoxon" or "welch".
        statistic: the test's own statistic (mean difference, number of positive differences,
            Wilcoxon W, Welch t), None where there is none.
        df: degrees of freedom (Welch only).
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
        with several seeds, `{seed: {sample_id: score}}` / (n_seeds, n_prompts) arrays, in which case
        prompts are the units: the bootstrap becomes `clustered_paired_bootstrap` and the other tests
        run on the per-prompt seed-averaged scores (prompts, not seed × prompt rows, are independent).
      * "seed": one metric value per seed for each run (Welch).
    Options a test does not use (e.g. `iters` for the sign test) are ignored.
    """

    name: str
    unit: Literal["sample", "seed"]
    fn: Callable[..., PairedTest]
    description: str

    def __call__(self, a: Any, b: Any, *, conf: float = 0.95, iters: int = 10_000,
                 seed: int = 0) -> PairedTest:
        return self.fn(a, b, conf=conf, iters=iters, seed=seed)


def _per_prompt(a: Any, b: Any) -> tuple[Any, Any]:
    """Seed-averaged per-prompt scores when given several seeds; the inputs unchanged otherwise."""
    if _is_by_seed(a) or _is_by_seed(b):
        pair = align_clustered(a, b)
        return pair.a, pair.b
    return a, b


def _run_bootstrap(a, b, *, conf, iters, seed):
    if _is_by_seed(a) or _is_by_seed(b):
        return clustered_paired_bootstrap(a, b, iters=iters, seed=seed, conf=conf)
    return paired_bootstrap(a, b, iters=iters, seed=seed, conf=conf)


def _run_permutation(a, b, *, conf, iters, seed):
    a, b = _per_prompt(a, b)
    return permutation_test(a, b, iters=iters, seed=seed, conf=conf)


def _run_sign(a, b, *, conf, iters, seed):
    a, b = _per_prompt(a, b)
    return sign_test(a, b, conf=conf)


def _run_wilcoxon(a, b, *, conf, iters, seed):
    a, b = _per_prompt(a, b)
    return wilcoxon(a, b, conf=conf)


def _run_welch(a, b, *, conf, iters, seed):
    return welch_t(a, b, conf=conf)


TESTS: Registry[StatTest] = Registry("statistical test")
for _t in (
    StatTest("bootstrap", "sample", _run_bootstrap, "paired percentile bootstrap of the mean difference "
             "(clustered by prompt when several seeds are given)"),
    StatTest("permutation", "sample", _run_permutation, "paired sign-flip permutation test"),
    StatTest("sign", "sample", _run_sign, "sign test on non-zero differences (binomial)"),
    StatTest("wilcoxon", "sample", _run_wilcoxon, "Wilcoxon signed-rank test"),
    StatTest("welch", "seed", _run_welch, "Welch's t-test on per-seed values"),
):
    TESTS.add(_t.name, _t)
del _t


def run_test(name: str, a: Any, b: Any, *, conf: float = 0.95, iters: int = 10_000,
             seed: int = 0) -> PairedTest:
    """Run the test registered as `name` in `TESTS`; an unknown name is an InputError with a suggestion."""
    try:
        test = TESTS.get(name)
    except UnknownName as exc:
        raise InputError(str(exc), field="test") from None
    return test(a, b, conf=conf, iters=iters, seed=seed)


__all__ = [
    "ADJUSTMENTS", "Aligned", "PairedTest", "SeedSummary", "StatTest", "TESTS", "adjust", "align_clustered",
    "align_paired", "benjamini_hochberg", "bonferroni", "bootstrap_means", "bootstrap_p_value",
    "clustered_paired_bootstrap", "cohens_d", "cohens_dz", "hedges_g", "holm", "paired_bootstrap",
    "permutation_test", "run_test", "seed_summary", "sign_test", "welch_t", "wilcoxon",
]
