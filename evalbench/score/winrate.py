"""AlpacaEval 2 metrics: win rate, its standard error, and the length-controlled win rate.

Pure functions: arrays in, numbers out, no file or network access. The definitions follow
Dubois et al. 2024 ("Length-Controlled AlpacaEval", arXiv 2404.04475) and the published
AlpacaEval 2 leaderboard (tatsu-lab/alpaca_eval). Preferences use the alpaca_eval encoding:
a float in [1, 2] where 1 = the reference (output_1) wins and 2 = the evaluated model
(output_2) wins; a legacy 0 means a draw (= 1.5); NaN marks a failed judgment.

scikit-learn is imported only inside `length_controlled_winrate`.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "LC_METRICS",
    "LEADERBOARD_METRICS",
    "GamedRows",
    "LengthControlled",
    "clean_preferences",
    "length_controlled_winrate",
    "length_controlled_winrate_resampled",
    "std_delta_len",
    "win_rate_metrics",
]

# Leaderboard column names, in the leaderboard CSV's order (`mode` is a curation flag, not a metric).
LEADERBOARD_METRICS: tuple[str, ...] = (
    "win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total",
    "discrete_win_rate", "avg_length",
)
LC_METRICS: tuple[str, ...] = ("length_controlled_winrate", "lc_standard_error")

# The `length_controlled_v1` GLM's feature names, as the published weights CSV spells them.
LC_FEATURES: tuple[str, ...] = (
    "np.tanh(std_delta_len)", "instruction_difficulty", "not_gamed_baseline.astype(float)")


def clean_preferences(preferences: ArrayLike) -> np.ndarray:
    """Validate preferences and map the legacy draw code 0 to 1.5.

    Returns a float array of the same length in which every value is in [1, 2] or NaN
    (a failed judgment). Raises ValueError naming the first position holding anything else
    (e.g. a -1 sentinel), so bad values are never dropped silently.
    """
    try:
        prefs = np.asarray(preferences, dtype=float).copy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"preferences must be numbers (or NaN for a failed judgment): {exc}") from None
    if prefs.ndim != 1:
        raise ValueError(f"preferences must be one-dimensional, got shape {prefs.shape}")
    prefs[prefs == 0] = 1.5  # alpaca_eval's backward-compatible draw code
    bad = ~np.isnan(prefs) & ((prefs < 1) | (prefs > 2))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"preference at position {i} is {prefs[i]!r}; expected a value in [1, 2], "
                         f"0 (draw) or NaN (failed), {int(bad.sum())} such value(s) in all")
    return prefs


def _sem(x: np.ndarray) -> float:
    """Standard error of the mean with ddof=1 (pandas `Series.sem`); NaN for fewer than 2 values."""
    if len(x) < 2:
        return float("nan")
    return float(np.std(x, ddof=1) / np.sqrt(len(x)))


def win_rate_metrics(preferences: ArrayLike, lengths_model: ArrayLike) -> dict[str, float | int]:
    """The AlpacaEval 2 leaderboard columns for one model against the reference.

    Args:
        preferences: one judgment per instruction in alpaca_eval's encoding (see module doc).
            NaN entries (failed judgments) are left out of every count, as the leaderboard does.
        lengths_model: character lengths of the model's outputs (all of them, failed judgments
            included), for `avg_length`.

    Returns:
        A dict with the leaderboard's names:
        `win_rate` = mean(preference - 1) * 100; `standard_error` = its SEM (ddof=1) * 100;
        `n_wins` / `n_wins_base` = judgments strictly above / below 1.5; `n_draws` = exactly 1.5
        (or 0); `n_total` = valid judgments; `discrete_win_rate` = (n_wins + n_draws / 2) / n_total
        * 100, i.e. each judgment rounded to a win, loss or draw; `avg_length` = the mean output
        length truncated to an integer (the leaderboard's `int(mean)`). `standard_error` is NaN
        when fewer than 2 judgments are valid.

    Raises:
        ValueError: a preference outside [1, 2] ∪ {0, NaN}, or no valid preference at all.
    """
    prefs = clean_preferences(preferences)
    valid = prefs[~np.isnan(prefs)]
    if len(valid) == 0:
        raise ValueError("no valid preference: every judgment failed (NaN) or the input is empty")
    lengths = np.asarray(lengths_model, dtype=float)
    if lengths.ndim != 1 or len(lengths) == 0:
        raise ValueError("lengths_model must be a non-empty 1-D array of output lengths")
    soft = valid - 1.0
    n_wins = int((soft > 0.5).sum())
    n_wins_base = int((soft < 0.5).sum())
    n_draws = int((soft == 0.5).sum())
    n_total = len(valid)
    return {
        "win_rate": float(soft.mean() * 100),
        "standard_error": _sem(soft) * 100,
        "n_wins": n_wins,
        "n_wins_base": n_wins_base,
        "n_draws": n_draws,
        "n_total": n_total,
        "discrete_win_rate": (n_wins + n_draws / 2) / n_total * 100,
        "avg_length": int(lengths.mean()),
    }


def std_delta_len(len_reference: ArrayLike, len_model: ArrayLike) -> np.ndarray:
    """(len(reference) - len(model)) divided by its sample standard deviation (ddof=1).

    Positive when the model is shorter than the reference. A constant difference (std 0)
    raises ValueError: the length feature would be undefined.
    """
    delta = np.asarray(len_reference, dtype=float) - np.asarray(len_model, dtype=float)
    if delta.ndim != 1:
        raise ValueError("lengths must be one-dimensional")
    if len(delta) < 2:
        raise ValueError("need at least 2 rows to standardise the length difference")
    sd = float(np.std(delta, ddof=1))
    if not np.isfinite(sd) or sd == 0:
        raise ValueError("the length difference between reference and model is constant; "
                         "the length-controlled GLM is undefined")
    return delta / sd


class GamedRows(NamedTuple):
    """Training rows of the gamed baselines (gpt4_1106_preview_{verbose,concise}).

    `preference` is already on the [0, 1] scale (1 = the gamed baseline wins); the others are the
    GLM features of those rows. This is the content of the hub's `df_gamed.csv`.
    """

    preference: np.ndarray
    std_delta_len: np.ndarray
    instruction_difficulty: np.ndarray


class LengthControlled(NamedTuple):
    """Result of `length_controlled_winrate`."""

    length_controlled_winrate: float  # mean predicted preference at zero length difference, x100
    lc_standard_error: float          # SEM of those per-instruction predictions, x100 (as the library)
    weights: dict[str, float]         # fitted GLM coefficients, keyed by LC_FEATURES
    C: float                          # inverse L1 strength chosen by cross-validation
    glm_preference: np.ndarray        # per-row predicted win probability at zero length difference


def _l1_logistic(C: float, random_state):
    """An L1 logistic regression without intercept (liblinear), across scikit-learn versions."""
    from sklearn.linear_model import LogisticRegression

    kwargs = dict(C=C, solver="liblinear", fit_intercept=False, random_state=random_state)
    # scikit-learn 1.8 deprecated `penalty` in favour of `l1_ratio`; older versions need `penalty`.
    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":
        kwargs["l1_ratio"] = 1.0
    else:
        kwargs["penalty"] = "l1"
    return LogisticRegression(**kwargs)


def _soft_label_fit(X: np.ndarray, p: np.ndarray, w: np.ndarray, C: float, random_state):
    """Fit a logistic regression to soft labels p in [0, 1] with sample weights w.

    The weighted log loss with soft labels, -sum w (p log q + (1-p) log(1-q)), equals the ordinary
    weighted log loss of a data set holding every row twice: once labelled 1 with weight w*p and
    once labelled 0 with weight w*(1-p). scikit-learn only accepts hard labels, hence the duplication.
    """
    model = _l1_logistic(C, random_state)
    X2 = np.concatenate([X, X])
    y2 = np.concatenate([np.ones(len(X)), np.zeros(len(X))])
    w2 = np.concatenate([w * p, w * (1 - p)])
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # liblinear may stop at max_iter for some C on the grid; the CV score then judges that C
        # as fitted, exactly as LogisticRegressionCV does in the reference implementation.
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        model.fit(X2, y2, sample_weight=w2)
    return model


def _soft_log_loss(q: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """Weighted soft-label log loss averaged over rows (probabilities clipped at 1e-15)."""
    q = np.clip(q, 1e-15, 1 - 1e-15)
    return float(-np.mean(w * (p * np.log(q) + (1 - p) * np.log(1 - q))))


def length_controlled_winrate(
    preferences: ArrayLike,
    len_model: ArrayLike,
    len_reference: ArrayLike,
    instruction_difficulty: ArrayLike,
    gamed: GamedRows | None = None,
    *,
    regularize_lambda: float | None = 0.2,
    n_splits: int = 5,
    Cs: int | Sequence[float] = 10,
    random_state: int = 123,
) -> LengthControlled:
    """AlpacaEval 2's length-controlled win rate (the `length_controlled_v1` GLM).

    Dubois et al. 2024 (arXiv 2404.04475): per model, fit a logistic regression without intercept of the soft
    label y = preference - 1 on three features,
    `tanh(std_delta_len)`, `instruction_difficulty` and `not_gamed_baseline` (1 for the model's
    rows), where std_delta_len = (len(ref) - len(model)) / std(...) in characters. Training rows are
    the model's judged rows (weight 1) plus the gamed baselines' rows (weight lambda/2 each, two
    baselines): they share the `instruction_difficulty` and length terms, which regularises those
    weights towards the gamed baselines'. The L1 strength is chosen by 5-fold cross-validation over
    `Cs` (scikit-learn's grid, logspace(-4, 4, 10) for 10) with the weighted soft-label log loss,
    folds grouped by training row (`GroupKFold`) so that a row's two duplicates (see
    `_soft_label_fit`) stay together, as in the reference implementation. The LC win rate is the
    mean predicted win probability over the model's rows with the length term set to 0, x100.

    Args:
        preferences: the model's judgments (alpaca_eval encoding; NaN rows are left out of the fit
            but still predicted, as in the reference implementation).
        len_model, len_reference: character lengths of the model's and the reference's outputs,
            aligned with `preferences`.
        instruction_difficulty: each row's instruction difficulty (the official table indexes it
            by the row's position in the annotations).
        gamed: the gamed baselines' rows; required when `regularize_lambda` is set.
        regularize_lambda: 0.2 for `length_controlled_v1`; None or 0 fits the model's rows alone
            (`length_controlled_noreg`).
        n_splits, Cs, random_state: cross-validation folds, the C grid and liblinear's seed (123 in
            the reference implementation).

    Returns:
        LengthControlled(length_controlled_winrate, lc_standard_error, weights, C, glm_preference).

    Raises:
        ValueError: mismatched lengths, bad preferences, no valid preference, or missing gamed rows.
    """
    from evalbench.errors import require

    require("sklearn", "eval")
    from sklearn.model_selection import GroupKFold

    prefs = clean_preferences(preferences)
    n = len(prefs)
    difficulty = np.asarray(instruction_difficulty, dtype=float)
    if not (len(np.asarray(len_model)) == len(np.asarray(len_reference)) == len(difficulty) == n):
        raise ValueError("preferences, len_model, len_reference and instruction_difficulty must have the "
                         f"same length (got {n}, {len(np.asarray(len_model))}, "
                         f"{len(np.asarray(len_reference))}, {len(difficulty)})")
    if not np.isfinite(difficulty).all():
        raise ValueError("instruction_difficulty holds NaN or infinite values")
    delta = std_delta_len(len_reference, len_model)

    judged = ~np.isnan(prefs)
    if not judged.any():
        raise ValueError("no valid preference to fit the length-controlled GLM")
    X_model = np.column_stack([np.tanh(delta), difficulty, np.ones(n)])
    X_parts, y_parts, w_parts = [X_model[judged]], [prefs[judged] - 1.0], [np.ones(int(judged.sum()))]
    if regularize_lambda:
        if gamed is None:
            raise ValueError("regularize_lambda is set but no gamed-baseline rows were given")
        g_pref = np.asarray(gamed.preference, dtype=float)
        g_X = np.column_stack([np.tanh(np.asarray(gamed.std_delta_len, dtype=float)),
                               np.asarray(gamed.instruction_difficulty, dtype=float),
                               np.zeros(len(g_pref))])
        keep = ~np.isnan(g_pref)
        if ((g_pref[keep] < 0) | (g_pref[keep] > 1)).any() or not np.isfinite(g_X[keep]).all():
            raise ValueError("gamed rows must have preferences in [0, 1] and finite features")
        # Gamed rows first, as in the reference implementation: the row order fixes the CV folds.
        X_parts.insert(0, g_X[keep])
        y_parts.insert(0, g_pref[keep])
        # lambda/2 because there are two gamed baselines (verbose and concise).
        w_parts.insert(0, np.full(int(keep.sum()), regularize_lambda / 2))
    X, y, w = np.concatenate(X_parts), np.concatenate(y_parts), np.concatenate(w_parts)

    grid = np.logspace(-4, 4, Cs) if isinstance(Cs, int) else np.asarray(Cs, dtype=float)
    # Each training row and its duplicate form one group; duplicates are laid out [all y=1, all y=0].
    groups = np.concatenate([np.arange(len(X)), np.arange(len(X))])
    X2 = np.concatenate([X, X])
    folds = list(GroupKFold(n_splits=n_splits).split(X2, groups=groups))
    scores = np.zeros((len(folds), len(grid)))
    for k, (train2, test2) in enumerate(folds):
        # Map duplicated positions back to rows; both copies of a row are on the same side.
        train = np.unique(train2 % len(X))
        test = np.unique(test2 % len(X))
        # liblinear shuffles its coordinate descent with a seed. LogisticRegressionCV (used by the
        # reference implementation) draws the seeds of one fold's C path from a single
        # RandomState(random_state); the CV curve is nearly flat at large C, so the chosen C can hinge
        # on those ~1e-6 differences and we reproduce the same seed sequence.
        rng = np.random.RandomState(random_state)
        for j, C in enumerate(grid):
            model = _soft_label_fit(X[train], y[train], w[train], C, rng)
            q = model.predict_proba(X[test])[:, 1]
            scores[k, j] = -_soft_log_loss(q, y[test], w[test])
    best = int(np.argmax(scores.sum(axis=0)))  # first best on ties, like LogisticRegressionCV
    final = _soft_label_fit(X, y, w, float(grid[best]), np.random.RandomState(random_state))

    X_zero = X_model.copy()
    X_zero[:, 0] = 0.0  # tanh(0): no length difference
    glm_pref = final.predict_proba(X_zero)[:, 1]
    return LengthControlled(
        length_controlled_winrate=float(glm_pref.mean() * 100),
        lc_standard_error=_sem(glm_pref) * 100,
        weights=dict(zip(LC_FEATURES, (float(c) for c in final.coef_[0]))),
        C=float(grid[best]),
        glm_preference=glm_pref,
    )


# ------------------------------------------------------------------------ resampled LC (bootstrap refits)

# Smoothing of |beta| in the refit: sqrt(beta^2 + eps^2) - eps. Its gradient differs from sign(beta)
# by about eps^2 / (2 beta^2), far below the liblinear fit's own tolerance for any coefficient that is
# not pinned at 0 by the L1 penalty, and a coefficient pinned at 0 moves by O(eps) at most.
_L1_SMOOTHING = 1e-7
_NEWTON_MAX_ITER = 100
_NEWTON_TOL = 1e-6       # a row stops after a Newton step moving no coefficient by more than this
_ARMIJO = 1e-4           # sufficient-decrease constant of the backtracking line search
_MAX_HALVINGS = 40
_RESAMPLE_CHUNK = 1000   # weight rows solved together
_ROUNDING = 1e-10        # relative size of an objective decrease below which it is not measurable


def _weighted_std(delta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Frequency-weighted sample standard deviation (ddof=1 on the weighted count) per row of `w`.

    With integer bootstrap weights this is the ddof=1 std of the resampled data set (each row
    repeated w times), so a row of ones gives `np.std(delta, ddof=1)`.
    """
    total = w.sum(axis=1)
    mean = (w @ delta) / total
    ss = (w * (delta[None, :] - mean[:, None]) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(ss / (total - 1.0))


def _smooth_abs(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sqrt(b^2 + eps^2) - eps summed over coefficients, its gradient and its (diagonal) curvature."""
    root = np.sqrt(beta ** 2 + _L1_SMOOTHING ** 2)
    return (root - _L1_SMOOTHING).sum(axis=-1), beta / root, _L1_SMOOTHING ** 2 / root ** 3


class _GlmData(NamedTuple):
    """Training rows of the LC GLM for B weight rows at once (see `length_controlled_winrate_resampled`).

    Model rows: features (tanh(delta / sd_b), difficulty, 1), soft labels `y`, weights `v` (B, n)
    (0 for unjudged rows). Gamed rows: fixed features `g_X` (m, 3), labels `g_y`, weights `g_v`.
    """

    t: np.ndarray          # (B, n) tanh of the standardised length difference
    difficulty: np.ndarray  # (n,)
    y: np.ndarray          # (n,) soft labels (0 where unjudged; their weight is 0)
    v: np.ndarray          # (B, n) C x resample weight of the judged rows
    g_X: np.ndarray        # (m, 3)
    g_y: np.ndarray        # (m,)
    g_v: np.ndarray        # (m,) C x fixed weight
    g_XX: np.ndarray       # (m, 9) outer products of the gamed features, for the Hessian


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # tanh form: stable at both tails, no overflow warnings.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _glm_evaluate(beta: np.ndarray, d: _GlmData, rows: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed objective, gradient (k, 3) and Hessian (k, 3, 3) at `beta` (k, 3) for weight rows `rows`.

    Objective: |beta|_eps + sum_i C v_i (softplus(z_i) - y_i z_i), z_i = x_i . beta. One pass over the
    rows computes all three, so a Newton iteration with its line-search test costs one evaluation.
    """
    t = d.t[rows]
    diff = d.difficulty[None, :]
    v = d.v[rows]
    z = beta[:, 0:1] * t + beta[:, 1:2] * diff + beta[:, 2:3]
    q = _sigmoid(z)
    f = (v * (_softplus(z) - d.y[None, :] * z)).sum(axis=1)
    r = v * (q - d.y[None, :])                   # d loss / d z
    h = v * q * (1.0 - q)                        # d2 loss / d z2
    grad = np.stack([(r * t).sum(axis=1), r @ d.difficulty, r.sum(axis=1)], axis=1)
    ht, hd = h * t, h * diff
    # Model rows: the 6 distinct entries of sum h x x^T with x = (t, difficulty, 1).
    s_tt, s_td, s_t = (ht * t).sum(axis=1), (ht * diff).sum(axis=1), ht.sum(axis=1)
    s_dd, s_d, s_1 = (hd * diff).sum(axis=1), hd.sum(axis=1), h.sum(axis=1)
    hess = np.stack([s_tt, s_td, s_t, s_td, s_dd, s_d, s_t, s_d, s_1], axis=1).reshape(-1, 3, 3)
    # Gamed rows: fixed features and weights, so every sum is a matrix product (outer products
    # of their features precomputed).
    zg = beta @ d.g_X.T
    qg = _sigmoid(zg)
    f += (_softplus(zg) - d.g_y[None, :] * zg) @ d.g_v
    grad += ((qg - d.g_y[None, :]) * d.g_v[None, :]) @ d.g_X
    hess += (((qg * (1.0 - qg)) * d.g_v[None, :]) @ d.g_XX).reshape(-1, 3, 3)
    l1, l1_grad, l1_curv = _smooth_abs(beta)
    hess[:, [0, 1, 2], [0, 1, 2]] += l1_curv
    return f + l1, grad + l1_grad, hess


def _glm_newton(beta: np.ndarray, d: _GlmData, max_iter: int = _NEWTON_MAX_ITER) -> tuple[np.ndarray, int]:
    """Minimise the smoothed objective for every weight row from `beta` (B, 3): damped Newton.

    Each row takes the full Newton step and has it checked (Armijo) at the next evaluation; a row
    whose step did not decrease the objective enough goes back and tries half the step. Rows stop
    once a step moves no coefficient by more than `_NEWTON_TOL` (that last step is applied: Newton
    converges quadratically, so what is left is of the order of its square). Converged rows drop
    out, so later iterations cost only the stragglers. Returns the solution and the number of rows
    that did not converge within `max_iter` evaluations.
    """
    beta = beta.copy()
    k = len(beta)
    active = np.arange(k)
    prev_beta = beta.copy()           # the accepted iterate a pending step started from
    prev_f = np.full(k, np.inf)       # its objective (inf: nothing pending)
    prev_step = np.zeros_like(beta)
    prev_slope = np.zeros(k)          # directional derivative along the pending step
    alpha = np.ones(k)                # fraction of the pending step taken
    for _ in range(max_iter):
        if not len(active):
            break
        f, grad, hess = _glm_evaluate(beta[active], d, active)
        # Close to the optimum the decrease is below the rounding of the objective and cannot be
        # measured, so such steps are accepted (there Newton converges quadratically).
        measurable = -prev_slope[active] > _ROUNDING * (1.0 + np.abs(f))
        rejected = measurable & (f > prev_f[active] + _ARMIJO * alpha[active] * prev_slope[active])
        back = active[rejected]
        alpha[back] *= 0.5
        beta[back] = prev_beta[back] + alpha[back, None] * prev_step[back]
        gave_up = back[alpha[back] < 0.5 ** _MAX_HALVINGS]
        beta[gave_up] = prev_beta[gave_up]  # no decrease along the Newton direction: at the optimum
        ok = ~rejected
        rows = active[ok]
        step = -np.linalg.solve(hess[ok], grad[ok][:, :, None])[:, :, 0]
        prev_beta[rows] = beta[rows]
        prev_f[rows] = f[ok]
        prev_step[rows] = step
        prev_slope[rows] = (grad[ok] * step).sum(axis=1)
        alpha[rows] = 1.0
        beta[rows] += step
        done = np.zeros(k, dtype=bool)
        done[rows[np.abs(step).max(axis=1) <= _NEWTON_TOL]] = True
        done[gave_up] = True
        active = active[~done[active]]
    return beta, len(active)


def length_controlled_winrate_resampled(
    preferences: ArrayLike,
    len_model: ArrayLike,
    len_reference: ArrayLike,
    instruction_difficulty: ArrayLike,
    gamed: GamedRows | None,
    *,
    C: float,
    weights: ArrayLike,
    regularize_lambda: float | None = 0.2,
    init: ArrayLike | None = None,
) -> np.ndarray:
    """The LC win rate refitted under B row-weightings at once (bootstrap / jackknife resamples).

    Solves, for every row `w_b` of `weights`, the objective of `length_controlled_winrate`'s final fit,
    i.e. the weighted soft-label L1 logistic regression without intercept

        |beta|_1 + C * sum_i v_i * (softplus(x_i.beta) - y_i x_i.beta),

    where the model's rows get `v_i = w_b,i` and the gamed baselines' rows keep their fixed weight
    `lambda / 2`. The L1 strength `C` is the one cross-validation chose on the full data: the refit
    conditions on the tuning, as is standard for bootstrapping penalised fits (re-running the 5-fold
    CV per resample would cost 50 fits each and changes the penalty by a grid step at most). Every
    other step of the estimator is redone per resample: the length difference is standardised by
    the weighted (ddof=1) standard deviation of the resampled rows, and the LC win rate is the
    w-weighted mean over the model's rows of the predicted preference at zero length difference, x100.

    Solver: Newton iterations with a per-row backtracking line search on a smoothed L1 penalty
    (sqrt(beta^2 + eps^2), eps = 1e-7), all B problems at once (3 parameters each, vectorised over
    B), warm-started at the full-data solution (itself solved the same way from `init` or zero).
    With `weights` all ones the result is the liblinear fit's LC up to liblinear's tolerance.

    Args:
        preferences, len_model, len_reference, instruction_difficulty, gamed, regularize_lambda: as
            for `length_controlled_winrate` (NaN preferences are left out of the fit but predicted).
        C: the inverse L1 strength chosen on the full data (`LengthControlled.C`).
        weights: (B, n) non-negative weights of the model's rows, e.g. bootstrap counts; a 1-D
            array is one row.
        init: optional (3,) starting coefficients for the full-data solve (e.g. liblinear's).

    Returns:
        (B,) LC win rates in points; NaN for a row whose weights leave fewer than 2 rows with
        positive weight, no judged row, or a constant length difference.
    """
    prefs = clean_preferences(preferences)
    n = len(prefs)
    difficulty = np.asarray(instruction_difficulty, dtype=float)
    delta = np.asarray(len_reference, dtype=float) - np.asarray(len_model, dtype=float)
    if not (delta.shape == difficulty.shape == (n,)):
        raise ValueError("preferences, len_model, len_reference and instruction_difficulty must be 1-D with "
                         f"the same length (got {n}, {delta.shape}, {difficulty.shape})")
    if not np.isfinite(difficulty).all() or not np.isfinite(delta).all():
        raise ValueError("instruction_difficulty or the lengths hold NaN or infinite values")
    if not (np.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive number, got {C!r}")
    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must have shape (B, {n}), got {np.asarray(weights).shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")

    judged = ~np.isnan(prefs)
    if regularize_lambda:
        if gamed is None:
            raise ValueError("regularize_lambda is set but no gamed-baseline rows were given")
        g_pref = np.asarray(gamed.preference, dtype=float)
        keep = ~np.isnan(g_pref)
        g_X = np.column_stack([np.tanh(np.asarray(gamed.std_delta_len, dtype=float)),
                               np.asarray(gamed.instruction_difficulty, dtype=float),
                               np.zeros(len(g_pref))])[keep]
        g_y, g_w = g_pref[keep], np.full(int(keep.sum()), regularize_lambda / 2)
    else:
        g_X, g_y, g_w = np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    y = np.where(judged, prefs - 1.0, 0.0)

    def data_for(wts: np.ndarray) -> tuple[_GlmData, np.ndarray]:
        """The GLM rows for each weight row, and which weight rows define a fit at all."""
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = _weighted_std(delta, wts)
        usable = (np.isfinite(sd) & (sd > 0) & ((wts > 0).sum(axis=1) >= 2)
                  & ((wts * judged).sum(axis=1) > 0))
        wts = wts[usable]
        return _GlmData(t=np.tanh(delta[None, :] / sd[usable, None]), difficulty=difficulty, y=y,
                        v=C * wts * judged, g_X=g_X, g_y=g_y, g_v=C * g_w,
                        g_XX=np.einsum("mi,mj->mij", g_X, g_X).reshape(-1, 9)), usable

    full, ok = data_for(np.ones((1, n)))
    if not ok[0]:
        raise ValueError("the length-controlled GLM is undefined on the full data (fewer than 2 rows, no "
                         "judged row, or a constant length difference)")
    start = np.zeros((1, 3)) if init is None else np.asarray(init, dtype=float).reshape(1, 3)
    beta_full, stuck = _glm_newton(start, full, max_iter=10 * _NEWTON_MAX_ITER)
    if stuck:
        warnings.warn("the full-data length-controlled GLM refit did not converge", RuntimeWarning, stacklevel=2)

    lc = np.full(len(w), np.nan)
    stuck = 0
    # Chunks of weight rows bound the memory (a few (chunk, n) arrays) for any B.
    for start_row in range(0, len(w), _RESAMPLE_CHUNK):
        chunk = w[start_row:start_row + _RESAMPLE_CHUNK]
        data, usable = data_for(chunk)
        beta, n_stuck = _glm_newton(np.repeat(beta_full, int(usable.sum()), axis=0), data)
        stuck += n_stuck
        # Prediction at zero length difference: the features (0, difficulty, 1).
        q = _sigmoid(beta[:, 1:2] * difficulty[None, :] + beta[:, 2:3])
        lc[start_row:start_row + len(chunk)][usable] = (100.0 * (chunk[usable] * q).sum(axis=1)
                                                        / chunk[usable].sum(axis=1))
    if stuck:
        warnings.warn(f"{stuck} of {len(w)} resampled length-controlled GLM refits did not converge in "
                      f"{_NEWTON_MAX_ITER} Newton iterations; their last iterate is used", RuntimeWarning,
                      stacklevel=2)
    return lc
