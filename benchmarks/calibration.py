"""Calibration benchmark for the significance tests behind `compare` and `gate` (issue 12, "the proof").

Simulates null scenarios (two groups drawn from the same distribution, so a correct 5 % test flags
about 5 % of them) and power scenarios (group A shifted by a true effect), and prints, for every test,
its false-positive rate with a 95 % Wilson Monte-Carlo interval and its power next to Welch's t-test
on seed means. Not a test: run it by hand,

    .venv/bin/python benchmarks/calibration.py                 # 1000 replicates per scenario
    .venv/bin/python benchmarks/calibration.py --quick         # ~200 replicates, a few minutes
    .venv/bin/python benchmarks/calibration.py --only S1,S7 --reps 500

and it writes the Markdown report to results/calibration.md (`--out`). Targets (issue 12):
false-positive rate <= 0.05 with the upper end of its Monte-Carlo interval <= 0.065 in every null
scenario; power >= Welch's everywhere and >= 1.3 x Welch's where prompt pairing carries information;
the default test on 805 prompts x 5 seeds x 2 groups in < 1 s, an LC comparison with refits in < 10 s.

The data generators are plain functions of a numpy Generator, vectorised over replicates, so
`tests/unit/test_calibration.py` imports this file (by path: benchmarks/ is not a package) and runs a
reduced version of the same scenarios.

Data model (win-rate scenarios). Judge preferences of each output against a fixed reference follow
a logit model with the three levels of a real seed experiment:

    eta[m, p] = BASE + prompt[p] + seed[m] + seed_x_prompt[m, p] (+ shift for group A)

`prompt` (difficulty, shared by both groups: they answer the same prompts), `seed` (each training
seed is a slightly different model; its sd is set so that the seed-level sd of the expected win
rate is the scenario's number of win-rate points) and `seed_x_prompt` (a seed is better on some
prompts, worse on others). Each generation seed then draws the judgment from eta: a binary win, a
soft preference (the judge's probability with judge noise) or a win/tie/loss verdict (1/0.5/0).
Shifts are given in win-rate points and converted to the logit scale with the average slope of the
expected score, so "+1 point" moves the expected win rate by about one point.
"""

from __future__ import annotations

import argparse
import functools
import math
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# Run standalone from a checkout without installing the package.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ALPHA = 0.05
FPR_TARGET = 0.05
FPR_MC_UPPER = 0.065
POWER_RATIO_TARGET = 1.3
SHIFTS_POINTS = (0.5, 1.0, 2.0)
GATE_MARGIN_POINTS = 1.0  # the gate's max_drop in the non-inferiority rows
MC_Z = 1.959963984540054  # 95 % Monte-Carlo intervals

# Win-rate logit model (AlpacaEval-like: a fine-tuned model wins ~30 % against a strong reference).
BASE_LOGIT = -0.8
PROMPT_SD = 1.5          # prompt difficulty on the logit scale
SEED_X_PROMPT_SD = 0.5   # training seed x prompt interaction
SOFT_JUDGE_SD = 1.0      # judge noise of a soft (probability) preference, logit scale
TIE_BAND = 0.7           # |latent| below this is a tie (logistic judge noise)

# MT-bench-like 1-10 scores: 80 questions x 2 turns; turns of one question share question effects.
MT_QUESTIONS = 80
MT_BASE = 6.0
MT_QUESTION_SD = 1.5
MT_ITEM_SD = 0.7
MT_SEED_SD = 0.1         # training-seed sd of the latent score (score points)
MT_SEED_X_QUESTION_SD = 0.4
MT_SEED_X_ITEM_SD = 0.4
MT_JUDGE_SD = 1.0

# Per-unit iterations of the resampling tests, and of the old bootstrap (kept small: only its
# false-positive rate is documented and it is far from 0.05).
RESAMPLED_ITERS = 2_000
LC_ITERS = 1_000  # the LC null rows: each resample refits 3 x 2 GLMs; 1000 keeps 200 replicates ~15 CPU-min
OLD_BOOT_ITERS = 2_000


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()  # expectation over N(0, 1)


def expected_score(family: str, eta: np.ndarray) -> np.ndarray:
    """Expected judgment score given the latent logit, for each preference family."""
    if family == "binary":
        return _sigmoid(eta)
    if family == "soft":
        return np.tensordot(_sigmoid(eta[..., None] + SOFT_JUDGE_SD * _GH_X), _GH_W, axes=1)
    if family == "ties":  # P(win) + P(tie)/2 with logistic judge noise
        return 0.5 * (_sigmoid(eta - TIE_BAND) + _sigmoid(eta + TIE_BAND))
    raise ValueError(f"unknown family {family!r}")


def draw_scores(family: str, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One judgment per element of `eta`."""
    if family == "binary":
        return (rng.random(eta.shape) < _sigmoid(eta)).astype(float)
    if family == "soft":
        return _sigmoid(eta + rng.normal(0.0, SOFT_JUDGE_SD, eta.shape))
    if family == "ties":
        latent = eta + rng.logistic(size=eta.shape)
        return np.where(latent > TIE_BAND, 1.0, np.where(latent < -TIE_BAND, 0.0, 0.5))
    raise ValueError(f"unknown family {family!r}")


@functools.cache
def logit_per_point(family: str) -> float:
    """Logit shift that moves the expected win rate by one point (1/100), averaged over prompts.

    A large fixed sample of prompt and interaction effects stands for the prompt population; the
    slope is d E[score] / d eta by central differences.
    """
    rng = np.random.default_rng(12345)
    eta = BASE_LOGIT + rng.normal(0, PROMPT_SD, 200_000) + rng.normal(0, SEED_X_PROMPT_SD, 200_000)
    h = 1e-3
    slope = float(np.mean(expected_score(family, eta + h) - expected_score(family, eta - h)) / (2 * h))
    return 0.01 / slope


# ---------------------------------------------------------------------------------------------
# scenarios


@dataclass(frozen=True)
class ScoreScenario:
    """A scenario whose per-item scores are plain means (win rate, MT-bench score, ...).

    Arrays are (replicates, models, generation seeds, prompts) per group; `seed_sd` is the
    training-seed sd in win-rate points (score points for MT-bench).
    """

    key: str
    title: str
    n_models: int
    n_gen: int = 1
    n_prompts: int = 805
    family: str = "binary"      # binary | soft | ties | mtbench
    seed_sd: float = 1.2
    seed_x_prompt_sd: float = SEED_X_PROMPT_SD
    missing: tuple[float, float] | None = None  # fraction of NaN judgments drawn in this range
    old_test: str | None = None  # the pre-issue-12 test whose false-positive rate is documented
    pairing_informative: bool = False  # power must reach 1.3 x Welch here
    power: bool = False
    gate: bool = False

    @property
    def shape(self) -> str:
        gen = f" x {self.n_gen} gen seeds" if self.n_gen > 1 else ""
        return f"{self.n_models} model(s){gen} x {self.n_prompts} prompts per group"


def simulate_scores(sc: ScoreScenario, rng: np.random.Generator, reps: int,
                    shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two groups' scores, each (reps, models, gen seeds, prompts); group A is shifted by `shift`
    (win-rate points; score points for MT-bench). NaN marks a missing judgment."""
    if sc.family == "mtbench":
        a, b = _simulate_mtbench(sc, rng, reps, shift)
    else:
        a, b = _simulate_preferences(sc, rng, reps, shift)
    if sc.missing is not None:
        for x in (a, b):
            frac = rng.uniform(*sc.missing, size=(reps, 1, 1, 1))
            x[rng.random(x.shape) < frac] = np.nan
    return a, b


def _simulate_preferences(sc: ScoreScenario, rng: np.random.Generator, reps: int, shift: float):
    per_point = logit_per_point(sc.family)
    m, g, p = sc.n_models, sc.n_gen, sc.n_prompts
    prompt = rng.normal(0.0, PROMPT_SD, (reps, 1, 1, p))  # shared: both groups answer the same prompts

    def group(delta_logit: float) -> np.ndarray:
        seed = rng.normal(0.0, sc.seed_sd * per_point, (reps, m, 1, 1))
        inter = rng.normal(0.0, sc.seed_x_prompt_sd, (reps, m, 1, p))
        eta = BASE_LOGIT + prompt + seed + inter + delta_logit
        return draw_scores(sc.family, np.broadcast_to(eta, (reps, m, g, p)), rng)

    return group(shift * per_point), group(0.0)


def _simulate_mtbench(sc: ScoreScenario, rng: np.random.Generator, reps: int, shift: float):
    m, g, p = sc.n_models, sc.n_gen, sc.n_prompts
    turns = p // MT_QUESTIONS
    question = np.repeat(rng.normal(0.0, MT_QUESTION_SD, (reps, 1, 1, MT_QUESTIONS)), turns, axis=-1)
    item = question + rng.normal(0.0, MT_ITEM_SD, (reps, 1, 1, p))

    def group(delta: float) -> np.ndarray:
        seed = rng.normal(0.0, sc.seed_sd, (reps, m, 1, 1))
        # Turn 2 builds on the model's own turn-1 answer: a seed's strength on a question is shared.
        inter = (np.repeat(rng.normal(0.0, MT_SEED_X_QUESTION_SD, (reps, m, 1, MT_QUESTIONS)), turns, axis=-1)
                 + rng.normal(0.0, MT_SEED_X_ITEM_SD, (reps, m, 1, p)))
        latent = MT_BASE + item + seed + inter + delta + rng.normal(0.0, MT_JUDGE_SD, (reps, m, g, p))
        return np.clip(np.rint(latent), 1.0, 10.0)

    return group(shift), group(0.0)


SCORE_SCENARIOS: tuple[ScoreScenario, ...] = (
    ScoreScenario("S1", "5 training seeds per group, seed sd 1.2 pts, binary preferences", 5,
                  old_test="clustered_bootstrap", power=True, gate=True),
    ScoreScenario("S1z", "5 training seeds per group, no seed-level effect (seeds differ only per prompt)", 5,
                  seed_sd=0.0, old_test="clustered_bootstrap", pairing_informative=True, power=True),
    ScoreScenario("S1s", "as S1 with soft (probability) preferences", 5, family="soft",
                  old_test="clustered_bootstrap", power=True),
    ScoreScenario("S2", "5 training seeds per group, seed sd 2 pts", 5, seed_sd=2.0,
                  old_test="clustered_bootstrap", power=True),
    ScoreScenario("S3a", "2 training seeds per group, seed sd 1.2 pts", 2, old_test="clustered_bootstrap",
                  power=True),
    ScoreScenario("S3b", "3 training seeds per group, seed sd 1.2 pts", 3, old_test="clustered_bootstrap",
                  power=True, gate=True),
    ScoreScenario("S6", "3 prompts, one model per side (soft preferences)", 1, n_prompts=3, family="soft",
                  seed_sd=0.0, old_test="bootstrap"),
    ScoreScenario("S6b", "20 prompts, one model per side (Monte-Carlo sign flip)", 1, n_prompts=20,
                  family="soft", seed_sd=0.0, old_test="bootstrap"),
    ScoreScenario("S6c", "40 prompts, one model per side, binary preferences (t branch)", 1, n_prompts=40,
                  seed_sd=0.0, old_test="bootstrap"),
    ScoreScenario("S7", "generation seeds only: 1 model x 5 gen seeds per side, no seed-level effect", 1,
                  n_gen=5, seed_sd=0.0, seed_x_prompt_sd=0.0, old_test="clustered_bootstrap",
                  pairing_informative=True, power=True, gate=True),
    ScoreScenario("S8", "MT-bench 1-10 scores, 80 questions x 2 turns, 3 training seeds", 3,
                  n_prompts=2 * MT_QUESTIONS, family="mtbench", seed_sd=MT_SEED_SD,
                  old_test="clustered_bootstrap"),
    ScoreScenario("S9", "pairwise verdicts with ties (1/0.5/0), 5 training seeds", 5, family="ties",
                  old_test="clustered_bootstrap", power=True),
    ScoreScenario("S10", "as S1 with 5-10 % of judgments missing (NaN)", 5, missing=(0.05, 0.10),
                  old_test="clustered_bootstrap", power=True),
)


# ---------------------------------------------------------------------------------------------
# tests applied to one replicate


def _stats():
    from evalbench.aggregate import stats

    return stats


def _squeeze_gen(x: np.ndarray) -> np.ndarray:
    """(models, gen, prompts) -> (models, prompts) when there is one generation seed."""
    return x[:, 0, :] if x.shape[1] == 1 else x


def hierarchical_p(a: np.ndarray, b: np.ndarray, **kw: Any) -> float:
    return float(_stats().hierarchical_test(_squeeze_gen(a), _squeeze_gen(b), **kw).p_value)


def hierarchical_p_delta(a: np.ndarray, b: np.ndarray, **kw: Any) -> tuple[float, float]:
    res = _stats().hierarchical_test(_squeeze_gen(a), _squeeze_gen(b), **kw)
    return float(res.p_value), float(res.delta)


def oracle_p_values(deltas: np.ndarray) -> np.ndarray:
    """Two-sided z-test with the true sd of the estimate (its sd over the replicates): the power
    ceiling of any test of this design at this effect, for judging the power targets."""
    from scipy import stats as sps

    d = np.asarray(deltas, dtype=float)
    return 2.0 * sps.norm.sf(np.abs(d) / d.std(ddof=1))


def welch_p_values(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Welch's t-test for every replicate at once: on training-seed means when a group has at least
    2 trained models, else on generation-seed means (what the old code did); None if neither.

    Vectorised `scipy.stats.ttest_ind(equal_var=False)`, the same computation as `stats.welch_t`.
    """
    from scipy import stats as sps

    if a.shape[1] >= 2 and b.shape[1] >= 2:
        ma, mb, level = np.nanmean(a, axis=(2, 3)), np.nanmean(b, axis=(2, 3)), "training-seed means"
    elif a.shape[2] >= 2 and b.shape[2] >= 2:
        ma, mb, level = np.nanmean(a, axis=(1, 3)), np.nanmean(b, axis=(1, 3)), "generation-seed means"
    else:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # Identical seed means (tiny designs) make scipy warn about precision; p is then NaN -> 1.
        warnings.simplefilter("ignore", RuntimeWarning)
        p = sps.ttest_ind(ma, mb, axis=1, equal_var=False).pvalue
    return np.nan_to_num(p, nan=1.0), level


def welch_one_sided_p(a: np.ndarray, b: np.ndarray, margin: float) -> np.ndarray | None:
    """Welch's one-sided test of H1: mean(a) - mean(b) < margin, per replicate (seed means)."""
    from scipy import stats as sps

    axes = (2, 3) if a.shape[1] >= 2 else (1, 3)
    if a.shape[axes[0] - 1] < 2:
        return None
    ma, mb = np.nanmean(a, axis=axes), np.nanmean(b, axis=axes)
    return sps.ttest_ind(ma - margin, mb, axis=1, equal_var=False, alternative="less").pvalue


def old_test_p(a: np.ndarray, b: np.ndarray, kind: str, seed: int) -> float:
    """The pre-issue-12 paired test: per-prompt means over every (model, generation seed) row, then a
    paired percentile bootstrap over prompts (`clustered_paired_bootstrap` with every row taken as a
    'seed'; `paired_bootstrap` for one row per side). Prompts missing on either side are dropped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a prompt missing in every row: dropped below
        da = np.nanmean(a.reshape(-1, a.shape[-1]), axis=0)
        db = np.nanmean(b.reshape(-1, b.shape[-1]), axis=0)
    keep = np.isfinite(da) & np.isfinite(db)
    return float(_stats().paired_bootstrap(da[keep], db[keep], iters=OLD_BOOT_ITERS, seed=seed).p_value)


# ---------------------------------------------------------------------------------------------
# Monte-Carlo bookkeeping


def wilson(k: int, n: int, z: float = MC_Z) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (Wilson 1927)."""
    if n == 0:
        return 0.0, 1.0
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class Rate(NamedTuple):
    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.k, self.n)


def rate(p_values: Sequence[float] | np.ndarray, alpha: float = ALPHA) -> Rate:
    p = np.asarray(p_values, dtype=float)
    return Rate(int(np.sum(p < alpha)), int(p.size))


class NullRow(NamedTuple):
    key: str
    title: str
    shape: str
    test: str
    rate: Rate
    checked: bool  # the new default test: the target applies

    @property
    def verdict(self) -> str:
        if not self.checked:
            return "(documents the old way)" if self.test.startswith("old") else "(reference)"
        _, hi = self.rate.interval
        return "PASS" if self.rate.value <= FPR_TARGET and hi <= FPR_MC_UPPER else "FAIL"


class PowerRow(NamedTuple):
    key: str
    shift: float
    new: Rate
    welch: Rate | None
    welch_level: str
    pairing_informative: bool
    both: int = 0   # replicates where both tests reject (for the Monte-Carlo noise of the difference)
    oracle: Rate | None = None  # z-test with the true sd: no test of this design can do much better

    @property
    def ratio(self) -> float | None:
        if self.welch is None or self.welch.k == 0:
            return None
        return self.new.value / self.welch.value

    @property
    def verdict(self) -> str:
        if self.welch is None:
            return "(no Welch: 1 vs 1)"
        need = POWER_RATIO_TARGET if self.pairing_informative else 1.0
        ok = self.new.value >= need * self.welch.value
        if ok:
            return "PASS"
        # Paired difference of two rejection rates on the same replicates (McNemar-style se).
        n = self.new.n
        only_new, only_welch = self.new.k - self.both, self.welch.k - self.both
        se = math.sqrt(max(only_new + only_welch, 1)) / n
        gap = need * self.welch.value - self.new.value
        return "FAIL (within MC noise)" if gap <= 2 * se else "FAIL"


# ---------------------------------------------------------------------------------------------
# running the score scenarios


def _chunks(reps: int, size: int = 100):
    while reps > 0:
        yield min(size, reps)
        reps -= size


def run_score_null(sc: ScoreScenario, reps: int, seed: int, old: bool = True) -> list[NullRow]:
    rng = np.random.default_rng([seed, _key_int(sc.key)])
    p_new, p_welch, p_old, level = [], [], [], ""
    for n in _chunks(reps):
        a, b = simulate_scores(sc, rng, n)
        p_new += [hierarchical_p(a[r], b[r]) for r in range(n)]
        welch = welch_p_values(a, b)
        if welch is not None:
            p_welch += list(welch[0])
            level = welch[1]
        if old and sc.old_test:
            p_old += [old_test_p(a[r], b[r], sc.old_test, seed=r) for r in range(n)]
    rows = [NullRow(sc.key, sc.title, sc.shape, "hierarchical_test", rate(p_new), True)]
    if p_welch:
        rows.append(NullRow(sc.key, sc.title, sc.shape, f"Welch on {level}", rate(p_welch), False))
    if p_old:
        rows.append(NullRow(sc.key, sc.title, sc.shape, f"old: {sc.old_test}", rate(p_old), False))
    return rows


def run_score_power(sc: ScoreScenario, reps: int, seed: int) -> list[PowerRow]:
    rows = []
    for shift in SHIFTS_POINTS:
        rng = np.random.default_rng([seed, _key_int(sc.key), int(shift * 100)])
        p_new, deltas, p_welch, level = [], [], [], ""
        for n in _chunks(reps):
            a, b = simulate_scores(sc, rng, n, shift=shift)
            for r in range(n):
                p, d = hierarchical_p_delta(a[r], b[r])
                p_new.append(p)
                deltas.append(d)
            welch = welch_p_values(a, b)
            if welch is not None:
                p_welch += list(welch[0])
                level = welch[1]
        welch_rate = rate(p_welch) if p_welch else None
        both = int(np.sum((np.asarray(p_new) < ALPHA) & (np.asarray(p_welch) < ALPHA))) if p_welch else 0
        rows.append(PowerRow(sc.key, shift, rate(p_new), welch_rate, level, sc.pairing_informative, both,
                             rate(oracle_p_values(np.asarray(deltas)))))
    return rows


def run_gate_null(sc: ScoreScenario, reps: int, seed: int) -> list[NullRow]:
    """The gate's one-sided non-inferiority test at the null boundary.

    Group A is worse than B by the allowed drop: the simulated shift is -GATE_MARGIN_POINTS and the
    margin is the exact population difference it produces (`true_delta_points`), so H0 holds with
    equality. The gate asks "did A drop by more than the margin?", i.e. H1: delta < margin (margin
    < 0) with `alternative="less"`; it must fire <= 5 %.
    """
    rng = np.random.default_rng([seed, _key_int(sc.key), 999])
    margin = true_delta_points(sc, -GATE_MARGIN_POINTS)
    p_new, p_welch = [], []
    shape = f"{sc.shape}; true delta = margin = {margin:.3f} pts"
    for n in _chunks(reps):
        a, b = simulate_scores(sc, rng, n, shift=-GATE_MARGIN_POINTS)
        a, b = a * 100.0, b * 100.0  # the gate works in win-rate points
        p_new += [hierarchical_p(a[r], b[r], alternative="less", margin=margin) for r in range(n)]
        w = welch_one_sided_p(a, b, margin)
        if w is not None:
            p_welch += list(w)
    rows = [NullRow(f"G-{sc.key}", "gate (one-sided, margin)", shape, "hierarchical_test", rate(p_new), True)]
    if p_welch:
        rows.append(NullRow(f"G-{sc.key}", "gate (one-sided, margin)", shape, "Welch one-sided",
                            rate(p_welch), False))
    return rows


def _key_int(key: str) -> int:
    return int.from_bytes(key.encode(), "little") % (2**31)


def true_delta_points(sc: ScoreScenario, shift: float, n: int = 400_000) -> float:
    """The population difference in expected score (points) that a `shift` produces.

    `shift` is converted to the logit scale with the average slope, so the realised difference is
    only close to `shift`; the gate rows need the exact boundary, computed here on a large sample of
    prompt, seed and interaction effects.
    """
    if sc.family == "mtbench":
        return shift
    rng = np.random.default_rng(54321)
    per_point = logit_per_point(sc.family)
    eta = (BASE_LOGIT + rng.normal(0, PROMPT_SD, n) + rng.normal(0, sc.seed_sd * per_point, n)
           + rng.normal(0, sc.seed_x_prompt_sd, n))
    return 100.0 * float(np.mean(expected_score(sc.family, eta + shift * per_point)
                                 - expected_score(sc.family, eta)))


# ---------------------------------------------------------------------------------------------
# derived metrics: length-controlled win rate (GLM refit per resample) and AID (a U-statistic)

LC_LEN_COEF = 0.6        # judge's length bias: logit += LC_LEN_COEF * tanh((len_model - len_ref) / sd)
LC_LOG_LEN_SD = 0.4      # per-output spread of log(len_model / len_ref)
LC_GROUP_LOG_LEN = 0.3   # both groups write ~35 % longer than the reference
LC_SEED_LOG_LEN_SD = 0.1  # a training seed's own length habit


@dataclass(frozen=True)
class LcScenario:
    key: str = "S4"
    title: str = "AlpacaEval LC win rate (GLM refit per resample), 3 training seeds, seed sd 1.2 pts"
    n_models: int = 3
    n_prompts: int = 805
    seed_sd: float = 1.2

    @property
    def shape(self) -> str:
        return f"{self.n_models} models x {self.n_prompts} prompts per group"


class LcUnit(NamedTuple):
    preferences: np.ndarray  # alpaca_eval encoding, 1 = reference wins, 2 = model wins
    len_model: np.ndarray


class LcReplicate(NamedTuple):
    a: list[LcUnit]
    b: list[LcUnit]
    len_reference: np.ndarray
    difficulty: np.ndarray


@functools.cache
def lc_gamed_rows(n_prompts: int):
    """Synthetic gamed-baseline rows (a verbose and a concise copy of the reference), fixed like the
    published table: preferences in [0, 1], longer outputs preferred by the same judge bias."""
    from evalbench.score.winrate import GamedRows

    rng = np.random.default_rng(777)
    difficulty = rng.normal(0, PROMPT_SD, n_prompts)
    sdl = np.concatenate([rng.normal(-1.0, 0.5, n_prompts), rng.normal(1.0, 0.5, n_prompts)])
    diff2 = np.concatenate([difficulty, difficulty])
    pref = _sigmoid(-LC_LEN_COEF * np.tanh(sdl) - 0.3 * diff2 + rng.normal(0, 0.5, 2 * n_prompts))
    return GamedRows(preference=pref, std_delta_len=sdl, instruction_difficulty=diff2)


def simulate_lc(sc: LcScenario, rng: np.random.Generator, shift: float = 0.0) -> LcReplicate:
    """One replicate: shared reference lengths and difficulty, per-model lengths and preferences."""
    p = sc.n_prompts
    per_point = logit_per_point("binary")
    prompt = rng.normal(0.0, PROMPT_SD, p)
    len_ref = np.exp(rng.normal(math.log(1800.0), 0.5, p))
    difficulty = -prompt + rng.normal(0.0, 0.3, p)  # the published table: a noisy difficulty estimate

    def unit(delta_logit: float) -> LcUnit:
        log_ratio = (LC_GROUP_LOG_LEN + rng.normal(0.0, LC_SEED_LOG_LEN_SD)
                     + rng.normal(0.0, LC_LOG_LEN_SD, p))
        len_model = len_ref * np.exp(log_ratio)
        diff = len_model - len_ref
        eta = (BASE_LOGIT + prompt + rng.normal(0.0, sc.seed_sd * per_point)
               + rng.normal(0.0, SEED_X_PROMPT_SD, p) + delta_logit
               + LC_LEN_COEF * np.tanh(diff / diff.std(ddof=1)))
        return LcUnit(1.0 + draw_scores("binary", eta, rng), len_model)

    return LcReplicate([unit(shift * per_point) for _ in range(sc.n_models)],
                       [unit(0.0) for _ in range(sc.n_models)], len_ref, difficulty)


@functools.cache
def lc_fixed_C(n_prompts: int) -> float:
    """The L1 strength used by every refit: chosen once by the full cross-validated fit on a pilot
    replicate (per-resample cross-validation would be the cost the resampler exists to avoid)."""
    from evalbench.score.winrate import length_controlled_winrate

    rep = simulate_lc(LcScenario(n_prompts=n_prompts), np.random.default_rng(4242))
    u = rep.a[0]
    return length_controlled_winrate(u.preferences, u.len_model, rep.len_reference, rep.difficulty,
                                     lc_gamed_rows(n_prompts)).C


def _lc_resampler(unit: LcUnit, rep: LcReplicate, C: float) -> Callable[[np.ndarray], np.ndarray]:
    from evalbench.score.winrate import length_controlled_winrate_resampled

    gamed = lc_gamed_rows(len(rep.len_reference))

    def fn(weights: np.ndarray) -> np.ndarray:
        return length_controlled_winrate_resampled(unit.preferences, unit.len_model, rep.len_reference,
                                                   rep.difficulty, gamed, C=C, weights=weights)
    return fn


def lc_units(rep: LcReplicate, C: float) -> tuple[list, list]:
    """Per side: a list over trained models of [one resampler] (one generation seed each)."""
    return ([[_lc_resampler(u, rep, C)] for u in rep.a], [[_lc_resampler(u, rep, C)] for u in rep.b])


def lc_new_p(rep: LcReplicate, C: float, iters: int = RESAMPLED_ITERS, seed: int = 0, **kw: Any) -> float:
    a_units, b_units = lc_units(rep, C)
    return float(_stats().hierarchical_test_resampled(a_units, b_units, len(rep.len_reference),
                                                      iters=iters, seed=seed, **kw).p_value)


def lc_old_p(rep: LcReplicate, C: float, seed: int = 0) -> float:
    """The old way: each model's per-instruction GLM predictions taken as per-sample scores
    (averaged over seeds per prompt) and tested by the paired bootstrap over prompts."""
    from evalbench.score.winrate import length_controlled_winrate

    gamed = lc_gamed_rows(len(rep.len_reference))

    def preds(units: list[LcUnit]) -> np.ndarray:
        return np.mean([length_controlled_winrate(u.preferences, u.len_model, rep.len_reference,
                                                  rep.difficulty, gamed, Cs=[C]).glm_preference
                        for u in units], axis=0)

    return float(_stats().paired_bootstrap(preds(rep.a), preds(rep.b), iters=OLD_BOOT_ITERS,
                                           seed=seed).p_value)


def lc_welch_p(rep: LcReplicate, C: float) -> float:
    """Welch's t on the models' LC win rates (one fit each: the row of ones)."""
    ones = np.ones((1, len(rep.len_reference)))
    va = [f[0](ones)[0] for f in lc_units(rep, C)[0]]
    vb = [f[0](ones)[0] for f in lc_units(rep, C)[1]]
    return float(_stats().welch_t(va, vb).p_value)


def run_lc_null(sc: LcScenario, reps: int, seed: int, old_reps: int) -> list[NullRow]:
    rng = np.random.default_rng([seed, _key_int(sc.key)])
    C = lc_fixed_C(sc.n_prompts)
    p_new, p_welch, p_old = [], [], []
    for r in range(reps):
        rep = simulate_lc(sc, rng)
        p_new.append(lc_new_p(rep, C, iters=LC_ITERS, seed=r))
        p_welch.append(lc_welch_p(rep, C))
        if r < old_reps:
            p_old.append(lc_old_p(rep, C, seed=r))
    test = f"hierarchical_test_resampled (iters={LC_ITERS})"
    rows = [NullRow(sc.key, sc.title, sc.shape, test, rate(p_new), True),
            NullRow(sc.key, sc.title, sc.shape, "Welch on training-seed LC", rate(p_welch), False)]
    if p_old:
        rows.append(NullRow(sc.key, sc.title, sc.shape, "old: GLM predictions as per-sample scores",
                            rate(p_old), False))
    return rows


# AID: outputs' embeddings from latent per-prompt vectors; similarity = cosine.
AID_DIM = 16
AID_NOISE_SD = 1.0   # output-specific variation
AID_STYLE = 0.8      # norm of the house-style vector shared by every output of every model


@dataclass(frozen=True)
class AidScenario:
    key: str
    title: str
    n_models: int
    n_prompts: int = 100
    seed_sd: float = 0.0  # per-coordinate sd of a training seed's own style vector

    @property
    def shape(self) -> str:
        return f"{self.n_models} model(s) x {self.n_prompts} prompts per group"


AID_SCENARIOS: tuple[AidScenario, ...] = (
    AidScenario("S5a", "AID (mean off-diagonal similarity), 1 model per side, no seed effect", 1),
    AidScenario("S5b", "AID, 3 training seeds per side with a seed-level style effect", 3, seed_sd=0.15),
)


def simulate_aid(sc: AidScenario, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One replicate: per side, one (P, P) cosine-similarity matrix per model, diagonal zeroed."""
    p, k = sc.n_prompts, AID_DIM
    content = rng.normal(0.0, 1.0, (p, k))  # what each prompt asks for, shared by both groups
    style = np.zeros(k)
    style[0] = AID_STYLE

    def unit() -> np.ndarray:
        x = content + style + rng.normal(0.0, sc.seed_sd, k) + rng.normal(0.0, AID_NOISE_SD, (p, k))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        s = x @ x.T
        np.fill_diagonal(s, 0.0)
        return s

    return [unit() for _ in range(sc.n_models)], [unit() for _ in range(sc.n_models)]


def weighted_u_statistic(s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AID under prompt-resampling weights: sum_{i!=j} w_i w_j s_ij / sum_{i!=j} w_i w_j, exactly.

    `s` has a zero diagonal; a prompt drawn k times contributes k(k-1) copies of nothing with itself
    (no self-similarity), as a bootstrap of a U-statistic should. A row of ones gives the plain AID.
    """
    w = np.asarray(weights, dtype=float)
    num = np.einsum("bi,bi->b", w @ s, w)
    den = w.sum(axis=1) ** 2 - (w * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def aid_units(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[list, list]:
    def unit(s: np.ndarray):
        return [functools.partial(weighted_u_statistic, s)]
    return [unit(s) for s in a], [unit(s) for s in b]


def aid_old_p(a: list[np.ndarray], b: list[np.ndarray], seed: int = 0) -> float:
    """The old way: per-prompt row means (averaged over models) as independent paired scores."""
    p = a[0].shape[0]
    ra = np.mean([s.sum(axis=1) / (p - 1) for s in a], axis=0)
    rb = np.mean([s.sum(axis=1) / (p - 1) for s in b], axis=0)
    return float(_stats().paired_bootstrap(ra, rb, iters=OLD_BOOT_ITERS, seed=seed).p_value)


def run_aid_null(sc: AidScenario, reps: int, seed: int, iters: int = RESAMPLED_ITERS) -> list[NullRow]:
    rng = np.random.default_rng([seed, _key_int(sc.key)])
    p_new, p_welch, p_old = [], [], []
    ones = np.ones((1, sc.n_prompts))
    for r in range(reps):
        a, b = simulate_aid(sc, rng)
        a_units, b_units = aid_units(a, b)
        p_new.append(float(_stats().hierarchical_test_resampled(a_units, b_units, sc.n_prompts,
                                                                iters=iters, seed=r).p_value))
        if sc.n_models >= 2:
            p_welch.append(float(_stats().welch_t([weighted_u_statistic(s, ones)[0] for s in a],
                                                  [weighted_u_statistic(s, ones)[0] for s in b]).p_value))
        p_old.append(aid_old_p(a, b, seed=r))
    rows = [NullRow(sc.key, sc.title, sc.shape, "hierarchical_test_resampled", rate(p_new), True)]
    if p_welch:
        rows.append(NullRow(sc.key, sc.title, sc.shape, "Welch on training-seed AID", rate(p_welch), False))
    rows.append(NullRow(sc.key, sc.title, sc.shape, "old: row means as paired scores", rate(p_old), False))
    return rows


# ---------------------------------------------------------------------------------------------
# speed


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best wall time and best CPU time (this process) of `repeat` calls."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


class SpeedRow(NamedTuple):
    what: str
    times: tuple[float, float]  # wall, CPU seconds
    target: float

    @property
    def verdict(self) -> str:
        return "PASS" if self.times[1] < self.target else "FAIL"


def run_speed(seed: int, repeat: int = 2, lc: bool = True) -> list[SpeedRow]:
    sc = SCORE_SCENARIOS[0]
    a, b = simulate_scores(sc, np.random.default_rng(seed), 1)
    a2, b2 = a[0, :, 0, :], b[0, :, 0, :]
    g7 = next(x for x in SCORE_SCENARIOS if x.key == "S7")
    a3, b3 = (x[0] for x in simulate_scores(g7, np.random.default_rng(seed), 1))
    st = _stats()
    rows = [SpeedRow("hierarchical_test, 805 prompts x 5 seeds x 2 groups, default arguments",
                     best_of(lambda: st.hierarchical_test(a2, b2), repeat), 1.0),
            SpeedRow("hierarchical_test, same data, iters=10_000",
                     best_of(lambda: st.hierarchical_test(a2, b2, iters=10_000), repeat), 1.0),
            SpeedRow("hierarchical_test, 5 gen seeds x 805 prompts, 1 model per side (3-D input)",
                     best_of(lambda: st.hierarchical_test(a3, b3), repeat), 1.0)]
    if lc:
        lsc = LcScenario()
        rep = simulate_lc(lsc, np.random.default_rng(seed))
        C = lc_fixed_C(lsc.n_prompts)
        rows.append(SpeedRow(f"LC comparison with refits, {lsc.n_models} vs {lsc.n_models} models x "
                             f"{lsc.n_prompts} prompts, iters={RESAMPLED_ITERS}",
                             best_of(lambda: lc_new_p(rep, C), repeat), 10.0))
        one = LcReplicate(rep.a[:1], rep.b[:1], rep.len_reference, rep.difficulty)
        rows.append(SpeedRow(f"LC comparison with refits, 1 vs 1 model, iters={RESAMPLED_ITERS}",
                             best_of(lambda: lc_new_p(one, C), repeat), 10.0))
    return rows


# ---------------------------------------------------------------------------------------------
# report


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _interval(r: Rate) -> str:
    lo, hi = r.interval
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def null_table(rows: Sequence[NullRow]) -> list[str]:
    out = ["| scenario | design | test | reps | flagged | FPR | 95 % MC interval | target |",
           "|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        out.append(f"| {r.key} {r.title} | {r.shape} | {r.test} | {r.rate.n} | {r.rate.k} | "
                   f"{_pct(r.rate.value)} | {_interval(r.rate)} | {r.verdict} |")
    return out


def summary_table(rows: Sequence[NullRow]) -> list[str]:
    """One line per null scenario: the new test with its MC interval and verdict, then the others."""
    out = ["| scenario | new test FPR [95 % MC] | target | Welch | old way |", "|---|---|---|---|---|"]
    keys = list(dict.fromkeys(r.key for r in rows))
    for key in keys:
        mine = [r for r in rows if r.key == key]
        new = next(r for r in mine if r.checked)
        welch = next((r for r in mine if r.test.startswith("Welch")), None)
        old = next((r for r in mine if r.test.startswith("old")), None)
        out.append(f"| {key} {new.title} ({new.shape}) | {_pct(new.rate.value)} {_interval(new.rate)} | "
                   f"{new.verdict} | {_pct(welch.rate.value) if welch else '-'} | "
                   f"{_pct(old.rate.value) if old else '-'} |")
    return out


def power_table(rows: Sequence[PowerRow]) -> list[str]:
    out = [("| scenario | true shift (pts) | hierarchical power | Welch power (level) | ratio | needed | target "
            "| oracle z power (ceiling) |"),
           "|---|---:|---:|---|---:|---:|---|---:|"]
    for r in rows:
        welch = f"{_pct(r.welch.value)} ({r.welch_level})" if r.welch else "n/a"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ("inf" if r.welch and r.new.k else "n/a")
        need = f">= {POWER_RATIO_TARGET:g}x" if r.pairing_informative else ">= 1x"
        out.append(f"| {r.key} | {r.shift:g} | {_pct(r.new.value)} {_interval(r.new)} | {welch} | "
                   f"{ratio} | {need} | {r.verdict} | {_pct(r.oracle.value) if r.oracle else 'n/a'} |")
    return out


def speed_table(rows: Sequence[SpeedRow]) -> list[str]:
    out = ["| what | wall s | CPU s | target (CPU) | |", "|---|---:|---:|---:|---|"]
    out += [f"| {r.what} | {r.times[0]:.4f} | {r.times[1]:.4f} | < {r.target:g} s | {r.verdict} |" for r in rows]
    return out


def code_version() -> str:
    """HEAD and the sha256 of the files under test, as they were when the run started (the tree is
    shared and may change during a long run; a dirty file is marked)."""
    import hashlib

    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "unknown"
    parts = [f"HEAD {head}"]
    for rel in ("evalbench/aggregate/stats.py", "evalbench/score/winrate.py"):
        path = REPO / rel
        if not path.exists():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        try:
            dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", rel],
                                   check=False).returncode != 0
        except OSError:
            dirty = False
        parts.append(f"{rel} sha256 {digest}{' (uncommitted changes)' if dirty else ''}")
    return "; ".join(parts)


PARTIAL_NOTE = ("**Partial report: the run is still going (or was stopped); sections not yet run are "
                "missing.**")


def report(null_rows, gate_rows, power_rows, speed_rows, *, reps: int, lc_reps: int, seed: int,
           elapsed: float, timings: dict[str, float], version: str = "", complete: bool = True) -> str:
    checked = [r for r in null_rows + gate_rows if r.checked]
    failed = [r for r in checked if r.verdict != "PASS"]
    pfailed = [r for r in power_rows if r.verdict.startswith("FAIL")]
    lines = [
        "# Calibration of evalbench's significance tests (measured)",
        "",
        (f"Generated by `benchmarks/calibration.py --reps {reps} --lc-reps {lc_reps} --seed {seed}` on "
         f"{version or code_version()}; {elapsed / 60:.1f} min on one core. alpha = {ALPHA}; a test 'flags' a "
         f"replicate when p < alpha. MC interval: 95 % Wilson interval of the rate."),
        *([] if complete else ["", PARTIAL_NOTE]),
        "",
        (f"Targets: null FPR <= {FPR_TARGET} with MC upper bound <= {FPR_MC_UPPER} (rows marked PASS/FAIL;"
         " reference and old-way rows are printed for comparison, without a target); power >= Welch's on "
         f"seed means, >= {POWER_RATIO_TARGET}x where prompt pairing carries information."),
        "",
        (f"Summary: {len(checked) - len(failed)}/{len(checked)} null rows PASS; "
         f"{len(power_rows) - len(pfailed)}/{len(power_rows)} power rows PASS."),
        "",
        ("Data model: judge scores from a logit model with prompt difficulty (shared by both groups), a "
         "training-seed effect (its sd, in win-rate points, is the scenario's 'seed sd'; the observed "
         "sd of seed win rates is larger because judging noise adds to it) and a seed x prompt "
         "interaction; each generation seed draws its own judgments. MT-bench: integer 1-10 scores with "
         "question effects shared by the two turns. LC: lengths with a judge length bias, the LC GLM "
         "refitted per resample with C fixed at its full-data CV value. AID: cosine similarities of "
         "latent output vectors (prompt content + shared style + seed style + noise), AID = mean "
         "off-diagonal similarity, resampled as an exact weighted U-statistic. See the module docstring."),
        "",
        "## Summary of the null scenarios",
        "",
        *summary_table(null_rows + gate_rows),
        "",
        "## Null scenarios (no true difference)",
        "",
        *null_table(null_rows),
        "",
        "## Gate: one-sided non-inferiority at the boundary",
        "",
        (f"Group A is worse than B by exactly the allowed drop (margin = {GATE_MARGIN_POINTS:g} win-rate "
         "point, computed as the population difference of the simulated design); the gate's test "
         "(`alternative='less'`, `margin`) must fire on <= 5 %."),
        "",
        *null_table(gate_rows),
        "",
        "## Power (true shift of group A, win-rate points)",
        "",
        ("'FAIL (within MC noise)': the shortfall is within 2 Monte-Carlo standard errors of the paired "
         "difference of the two rejection rates. 'oracle z power': a z-test that knows the true sd of the "
         "estimated difference (its sd over the replicates), the ceiling for any test of that design."),
        "",
        *power_table(power_rows),
        "",
        "## Speed (one core)",
        "",
        ("Best of 2 runs; the target applies to CPU time of this process (the box may be shared, so wall "
         "time can be larger)."),
        "",
        *speed_table(speed_rows),
        "",
        "## Wall time per section",
        "",
        "| section | seconds |", "|---|---:|",
        *[f"| {k} | {v:.0f} |" for k, v in timings.items()],
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# command line


def _selected(key: str, only: set[str] | None) -> bool:
    return only is None or key in only or key.rstrip("ab s") in only


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="replicates per scenario (default 1000)")
    parser.add_argument("--quick", action="store_true", help="200 replicates (LC: 50)")
    parser.add_argument("--lc-reps", type=int, default=None,
                        help="replicates of the LC scenario (refits are expensive; default 200)")
    parser.add_argument("--power-reps", type=int, default=None, help="replicates per power row (default --reps)")
    parser.add_argument("--only", default=None, help="comma-separated scenario keys (S1,S4,S5,G,...)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--no-old", action="store_true", help="skip the old-way reference tests")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "calibration.md")
    args = parser.parse_args(argv)
    reps = 200 if args.quick else args.reps
    lc_reps = args.lc_reps if args.lc_reps is not None else (50 if args.quick else 200)
    power_reps = args.power_reps or reps
    only = set(args.only.split(",")) if args.only else None

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    null_rows: list[NullRow] = []
    gate_rows: list[NullRow] = []
    power_rows: list[PowerRow] = []

    def timed(name: str, fn: Callable[..., list], *fn_args: Any) -> list:
        t0 = time.perf_counter()
        out = fn(*fn_args)
        timings[name] = time.perf_counter() - t0
        print(f"[{timings[name]:6.0f} s] {name}", file=sys.stderr, flush=True)
        return out

    version = code_version()
    speed_rows: list[SpeedRow] = []

    def emit(complete: bool = False) -> str:
        """Write the report so far: a long run leaves a usable partial report at every step."""
        text = report(sorted(null_rows, key=lambda r: _order(r.key)), gate_rows, power_rows, speed_rows,
                      reps=reps, lc_reps=lc_reps, seed=args.seed, elapsed=time.perf_counter() - t_start,
                      timings=timings, version=version, complete=complete)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        return text

    # Cheap sections first, the LC refits (most of the wall time) last.
    for sc in SCORE_SCENARIOS:
        if _selected(sc.key, only):
            null_rows += timed(f"null {sc.key}", run_score_null, sc, reps, args.seed, not args.no_old)
    emit()
    for asc in AID_SCENARIOS:
        if _selected(asc.key, only):
            null_rows += timed(f"null {asc.key} (AID)", run_aid_null, asc, reps, args.seed)
    for sc in SCORE_SCENARIOS:
        if sc.gate and (_selected(sc.key, only) or (only and "G" in only)):
            gate_rows += timed(f"gate {sc.key}", run_gate_null, sc, reps, args.seed)
    for sc in SCORE_SCENARIOS:
        if sc.power and (_selected(sc.key, only) or (only and "P" in only)):
            power_rows += timed(f"power {sc.key}", run_score_power, sc, power_reps, args.seed)
    emit()
    if not args.no_speed:
        speed_rows += timed("speed", run_speed, args.seed, 2, lc_reps > 0)
    emit()
    lsc = LcScenario()
    if _selected(lsc.key, only) and lc_reps > 0:
        null_rows += timed("null S4 (LC)", run_lc_null, lsc, lc_reps, args.seed,
                           0 if args.no_old else min(lc_reps, 100))
    print(emit(complete=True))
    return 0


def _order(key: str) -> tuple[int, str]:
    digits = "".join(ch for ch in key if ch.isdigit())
    return (int(digits) if digits else 99, key)


if __name__ == "__main__":
    raise SystemExit(main())
