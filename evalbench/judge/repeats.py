"""Judge repeats: judging the same outputs k times, so the judge's own noise can be measured.

    seed = repeat_seed(r)                            # None for r = 0: the reference judgment
    scores, data = merge_repeats([{"score": 7.0}, {"score": 8.0}])
    # scores == {"score": 7.5}; data == {"judge_repeats": {"score": [7.0, 8.0]}}

Repeat 0 is the suite's ordinary judgment, byte-identical (request, cache key, record) to a run
without repeats. Repeat r >= 1 is a genuinely different judgment with its own cache key: a judge
seed (`repeat_seed`), plus what the suite varies (AlpacaEval: the presentation order; MT-bench
single grading: a sampling temperature, since a greedy judge repeats itself exactly).

The record of a sample keeps the mean over repeats as its score (so every summary and test sees
one value per sample, with the judge noise averaged down) and the individual values in
`data["judge_repeats"]`, which `GroupData.score_array(..., judge_repeats=True)` expands into the
judge-repeat axis of `stats.variance_components`. Judge repeats are the lowest level of the
design: the tests average them per (model, generation seed, prompt), never count them as samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from evalbench.io import stable_hash

__all__ = ["REPEAT_TEMPERATURE", "merge_repeats", "repeat_seed"]

# MT-bench repeats r >= 1 sample the judge at this temperature (a greedy judge gives the same
# verdict every time, which would measure nothing); repeat 0 stays FastChat's temperature 0.
REPEAT_TEMPERATURE = 0.7

# Seeds stay below 2**31: some OpenAI-compatible servers take only 32-bit seeds.
_SEED_MOD = 2 ** 31


def repeat_seed(repeat: int) -> int | None:
    """The judge's sampling seed of repeat `repeat`: None for repeat 0 (the reference judgment's
    decoding is left as it was), a fixed derived seed for every later repeat."""
    if repeat < 0:
        raise ValueError(f"a judge repeat is >= 0, got {repeat}")
    return None if repeat == 0 else stable_hash("judge-repeat", repeat) % _SEED_MOD


def _mean(values: Sequence[float | None]) -> float | None:
    valid = [v for v in values if v is not None]
    return sum(valid) / len(valid) if valid else None


def merge_repeats(per_repeat: Sequence[Mapping[str, float | None]]
                  ) -> tuple[dict[str, float | None], dict[str, Any]]:
    """One sample's scores over its judge repeats: (mean per key over the valid repeats, data).

    `per_repeat[r]` holds the judged score keys of repeat r. With one repeat the scores are
    returned as they are and `data` is empty (a run without repeats writes what it always did).
    Otherwise `data = {"judge_repeats": {key: [value of repeat 0, 1, ...]}}`, None where that
    repeat failed; a key is None only when every repeat failed.
    """
    if not per_repeat:
        raise ValueError("merge_repeats needs at least one repeat")
    if len(per_repeat) == 1:
        return dict(per_repeat[0]), {}
    keys = list(dict.fromkeys(k for scores in per_repeat for k in scores))
    values = {k: [scores.get(k) for scores in per_repeat] for k in keys}
    return {k: _mean(v) for k, v in values.items()}, {"judge_repeats": values}
