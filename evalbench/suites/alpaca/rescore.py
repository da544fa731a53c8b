"""AlpacaEval 2 leaderboard metrics from saved annotations, no judge call (`evalbench score alpaca`).

    evalbench score alpaca --annotations results/m1/annotations.json.gz results/m2/annotations.json [--json]

Each file holds one model's judgments against the reference (alpaca_eval's annotations format).
The rows are checked against the eval set by instruction content; the leaderboard columns are
recomputed (`win_rate` ... `avg_length`) and the length-controlled win rate is refitted with the
`length_controlled_v1` GLM.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.errors import InputError
from evalbench.score.winrate import (LC_METRICS, LEADERBOARD_METRICS, GamedRows, length_controlled_winrate,
                                     win_rate_metrics)
from evalbench.suites.alpaca.data import (REFERENCE_GENERATOR, Annotations, ModelOutput, load_eval_set,
                                          load_gamed_rows, load_instruction_difficulty, match_instructions,
                                          read_annotations)

log = logging.getLogger(__name__)

__all__ = ["RESULT_KEYS", "check_against_eval_set", "score_annotations", "rescore_annotations"]

# Keys of each result row, in output order.
RESULT_KEYS: tuple[str, ...] = ("model", *LEADERBOARD_METRICS, *LC_METRICS)


def check_against_eval_set(ann: Annotations, eval_set: Sequence[ModelOutput]) -> np.ndarray:
    """Position in the eval set of each annotated instruction, matched by content.

    Raises InputError (naming the file) listing the first rows whose instruction is not in the eval
    set, or that repeat an earlier row. Fewer rows than the eval set is allowed (logged).
    """
    return match_instructions(ann.instruction, list(eval_set), path=ann.path)


def score_annotations(ann: Annotations, instruction_difficulty: np.ndarray, gamed: GamedRows | None,
                      *, regularize_lambda: float | None = 0.2) -> dict[str, Any]:
    """Leaderboard metrics plus the LC win rate of one (already validated) annotation set.

    The GLM's `instruction_difficulty` is looked up by row position, exactly as the official code
    does (`index` = position in the annotations file), so files that follow the eval set's order
    reproduce the leaderboard; `rescore_annotations` warns when rows are not at their eval-set
    position.
    """
    len_2 = np.asarray([len(o) for o in ann.output_2], dtype=float)
    len_1 = np.asarray([len(o) for o in ann.output_1], dtype=float)
    if len(ann) > len(instruction_difficulty):
        raise InputError(f"{len(ann)} rows but only {len(instruction_difficulty)} instruction difficulties",
                         path=ann.path)
    try:
        metrics = win_rate_metrics(ann.preference, len_2)
        lc = length_controlled_winrate(ann.preference, len_2, len_1, instruction_difficulty[: len(ann)],
                                       gamed, regularize_lambda=regularize_lambda)
    except ValueError as exc:  # e.g. every judgment failed, or identical lengths throughout
        raise InputError(str(exc), path=ann.path) from None
    return {"model": ann.model, **metrics,
            "length_controlled_winrate": lc.length_controlled_winrate,
            "lc_standard_error": lc.lc_standard_error}


def rescore_annotations(paths: Sequence[str | Path], *, eval_set: Sequence[ModelOutput] | None = None,
                        instruction_difficulty: np.ndarray | None = None,
                        gamed: GamedRows | None = None) -> list[dict[str, Any]]:
    """Re-score alpaca_eval annotation files (one model each), in the order given.

    The eval set, instruction difficulties and gamed-baseline rows default to the benchmark files
    (data dir or hub, see `evalbench.suites.alpaca.data`).

    Returns:
        One dict per file with RESULT_KEYS: `model` (generator_2), the leaderboard columns and
        `length_controlled_winrate`, `lc_standard_error`.

    Raises:
        InputError: unreadable or invalid files, instructions outside the eval set, or a file whose
            metrics cannot be computed.
    """
    if not paths:
        raise InputError("no annotation file given", field="--annotations")
    annotations = [read_annotations(p) for p in paths]  # validate every file before any fit
    eval_set = load_eval_set() if eval_set is None else eval_set
    positions = [check_against_eval_set(ann, eval_set) for ann in annotations]
    if instruction_difficulty is None:
        instruction_difficulty = load_instruction_difficulty()
    if gamed is None:
        gamed = load_gamed_rows()
    results = []
    for ann, pos in zip(annotations, positions):
        if ann.reference != REFERENCE_GENERATOR:
            log.warning("%s: the reference is '%s', not '%s'; the LC GLM's gamed baselines assume the "
                        "latter", ann.path, ann.reference, REFERENCE_GENERATOR)
        off = int((pos != np.arange(len(pos))).sum())
        if off:
            log.warning("%s: %d row(s) are not at their eval-set position; the LC GLM takes instruction "
                        "difficulty by row position, as the official code does", ann.path, off)
        if ann.n_failed:
            log.warning("%s: %d row(s) have no preference (failed judgments) and are left out of the win "
                        "rate", ann.path, ann.n_failed)
        results.append(score_annotations(ann, instruction_difficulty, gamed))
    return results
