"""The length-controlled win rate under prompt resampling (the derived metric `alpaca:length_controlled_winrate`).

The LC win rate is a GLM fitted to every judged instruction of a checkpoint x seed at once (Dubois et
al. 2024), so its per-instruction predictions are not independent samples and a paired test on them
is badly anti-conservative. A significance test instead recomputes the whole estimate under each
prompt resample: `lc_resampler` refits the GLM for every weight row at once with
`evalbench.score.winrate.length_controlled_winrate_resampled` (same objective, the C that
cross-validation chose on the full data, vectorised Newton warm-started at the full-data solution).

Inputs come from the unit's SampleRecords as read back from samples.jsonl: `scores["preference"]`,
`scores["length"]` and `data["len_reference"]`, `data["instruction_difficulty"]`, `data["lc_C"]`
(see `evalbench.suites.alpaca.suite`); the gamed baselines' rows are reloaded through the loader the
suite used (`load_gamed_rows`, data dir or hub). Records written before `lc_C` was stored are
handled by re-running the cross-validated fit once to recover C.

The unit's reported LC comes from liblinear, which stops at its default tolerance; the refits solve
the same problem to convergence, which moves the full-data value by up to ~0.01 points. The
resampled values are shifted by that gap, so a row of ones returns the reported value exactly (the
spread, which is what the test uses, is unaffected). A gap above `MAX_FULL_DATA_GAP` means the
inputs differ from those of the original fit (e.g. another gamed-rows file) and is logged.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

import numpy as np

from evalbench.store import SampleRecord

log = logging.getLogger(__name__)

__all__ = ["MAX_FULL_DATA_GAP", "lc_inputs", "lc_resampler"]

# Liblinear's default tolerance leaves the reported LC within ~0.01 points of the exact optimum on
# the published AlpacaEval 2 models; a larger gap points at different inputs.
MAX_FULL_DATA_GAP = 0.05


@functools.lru_cache(maxsize=1)
def _gamed_rows():
    from evalbench.suites.alpaca.data import load_gamed_rows

    return load_gamed_rows()


class _LcInputs:
    """The judged rows of one unit, aligned: the GLM's inputs plus the reported LC."""

    def __init__(self, ids: list[str], prefs: np.ndarray, len_model: np.ndarray, len_reference: np.ndarray,
                 difficulty: np.ndarray, C: float | None, coef: list[float] | None, reported: float):
        self.ids, self.prefs, self.len_model, self.len_reference = ids, prefs, len_model, len_reference
        self.difficulty, self.C, self.coef, self.reported = difficulty, C, coef, reported


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def lc_inputs(records: Sequence[SampleRecord]) -> _LcInputs | None:
    """The GLM inputs of the records that entered the unit's LC fit, or None when it had no LC.

    A record entered the fit when it has a preference and an LC prediction (`data["lc_glm_preference"]`
    or, in records of the earlier layout, the score `length_controlled_winrate`).
    """
    from evalbench.suites.alpaca.suite import lc_values

    rows = []
    for r in records:
        pref = _number(r.scores.get("preference"))
        pred = lc_values([r])
        if pref is None or not len(pred):
            continue
        length, len_ref = _number(r.scores.get("length")), _number(r.data.get("len_reference"))
        difficulty = _number(r.data.get("instruction_difficulty"))
        if length is None or len_ref is None or difficulty is None:
            continue
        rows.append((r.sample_id, pref, length, len_ref, difficulty, float(pred[0]), r.data.get("lc_C"),
                     r.data.get("lc_coef")))
    if len(rows) < 2:
        return None
    ids, prefs, lm, lr, diff, preds, Cs, coefs = zip(*rows)
    C = next((float(c) for c in Cs if c is not None), None)
    coef = next((list(c) for c in coefs if c is not None), None)
    return _LcInputs(list(ids), np.asarray(prefs), np.asarray(lm), np.asarray(lr), np.asarray(diff), C, coef,
                     float(np.mean(preds)))


def lc_resampler(records: Sequence[SampleRecord], prompt_ids: Sequence[str], weights: np.ndarray) -> np.ndarray:
    """The unit's LC win rate under each row of prompt weights (the `evalbench.aggregate.derived` contract).

    Args:
        records: one checkpoint x seed's alpaca SampleRecords (failed ones included; they are not in
            the fit, as in the suite).
        prompt_ids: the sample ids indexing the columns of `weights`. Judged rows whose id is not
            listed get weight 0.
        weights: (B, P) prompt weights; a row of ones gives the unit's reported LC win rate.

    Returns:
        (B,) LC win rates in points; all NaN when the unit has no LC (no instruction difficulty,
        fewer than 2 judged rows), NaN for a resample that leaves the GLM undefined.
    """
    from evalbench.score.winrate import length_controlled_winrate, length_controlled_winrate_resampled

    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != len(prompt_ids):
        raise ValueError(f"weights must have shape (B, {len(prompt_ids)}), got {w.shape}")
    inputs = lc_inputs(records)
    if inputs is None:
        return np.full(len(w), np.nan)
    column = {pid: j for j, pid in enumerate(prompt_ids)}
    cols = np.asarray([column.get(i, -1) for i in inputs.ids])
    row_weights = np.where(cols >= 0, w[:, np.maximum(cols, 0)], 0.0)
    gamed = _gamed_rows()
    C = inputs.C
    if C is None:  # records of the earlier layout: recover the cross-validated C by refitting once
        C = length_controlled_winrate(inputs.prefs, inputs.len_model, inputs.len_reference, inputs.difficulty,
                                      gamed).C
    args = (inputs.prefs, inputs.len_model, inputs.len_reference, inputs.difficulty, gamed)
    full = length_controlled_winrate_resampled(*args, C=C, weights=np.ones(len(inputs.ids)), init=inputs.coef)[0]
    gap = inputs.reported - full
    if abs(gap) > MAX_FULL_DATA_GAP:
        log.warning("alpaca LC resampling: the refit on the full data gives %.3f, the run reported %.3f; the "
                    "GLM inputs (e.g. the gamed-baseline rows) probably differ from the original fit's",
                    full, inputs.reported)
    return length_controlled_winrate_resampled(*args, C=C, weights=row_weights, init=inputs.coef) + gap
