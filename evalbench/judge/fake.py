"""FakeJudge: deterministic, scripted verdicts without a model, for users' tests and ours.

    judge = FakeJudge(ratings=[7, None, 9])         # cycled in call order; None = a failed verdict
    judge = FakeJudge(preferences=lambda item: 2.0 if "CAND" in item.messages[-1]["content"] else 1.0)
    judge = FakeJudge()                              # a stable pseudo-random verdict per prompt

Scripts give a rating (1-10) per `RateItem` and a preference *about the candidate* (in [1, 2],
2 = the candidate wins, 1.5 = tie) per `PairItem`: a sequence is consumed in call order and
cycled; a callable gets the item. `None` becomes a failed verdict with `error` set, so suites'
failure paths can be tested too. Without a script the verdict is a stable hash of the prompt,
the same in every process. Every item is recorded in `rated` / `compared`; `misses` counts them
(a fake has no cache, so nothing is ever a hit).

`--judge fake` selects it on the command line (dry runs of the whole pipeline).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence

from evalbench.io import stable_hash
from evalbench.judge.base import Judge, JudgeId, PairItem, Preference, RateItem, Rating
from evalbench.judge.formats import JUDGE_MAX_TOKENS

__all__ = ["FakeJudge", "FAILED"]

FAILED = "fake judge: scripted failure"

Script = Sequence[float | None] | Callable[[RateItem], float | None] | Callable[[PairItem], float | None] | None


def _repeat(item: RateItem | PairItem) -> list:
    # A judge repeat's seed / temperature make the fake's verdict differ between repeats, as a
    # sampled judge's would; a plain item (both None) hashes exactly as before repeats existed.
    return [] if item.seed is None and item.temperature is None else [item.seed, item.temperature]


def _hash_rating(item: RateItem) -> float:
    return float(1 + stable_hash("fake-judge/rating", [dict(m) for m in item.messages], *_repeat(item)) % 10)


def _hash_preference(item: PairItem) -> float:
    # 1.0, 1.1, ..., 2.0 about the candidate, whatever order the pair was shown in.
    return 1.0 + (stable_hash("fake-judge/preference", [dict(m) for m in item.messages], *_repeat(item)) % 11) / 10


class FakeJudge(Judge):
    """A Judge whose verdicts come from a script (see the module docstring)."""

    def __init__(self, *, ratings: Script = None, preferences: Script = None, name: str = "fake",
                 self_judged: bool = False):
        super().__init__(JudgeId(name=name, kind="fake", model=name, backend={"engine": "fake-judge"},
                                 constrained=False, self_judged=self_judged))
        self._ratings = self._source(ratings, _hash_rating)
        self._preferences = self._source(preferences, _hash_preference)
        self._lock = threading.Lock()
        self.rated: list[RateItem] = []
        self.compared: list[PairItem] = []

    @staticmethod
    def _source(script: Script, default: Callable) -> Callable:
        if script is None:
            return default
        if callable(script):
            return script
        values = list(script)
        if not values:
            raise ValueError("a scripted verdict list must not be empty")
        cycle: Iterator[float | None] = itertools.cycle(values)
        return lambda _item: next(cycle)

    @property
    def misses(self) -> int:
        return len(self.rated) + len(self.compared)

    def rate(self, items: Sequence[RateItem], *, max_tokens: int = JUDGE_MAX_TOKENS,
             desc: str | None = None) -> list[Rating]:
        out = []
        with self._lock:
            for item in items:
                self.rated.append(item)
                score = self._ratings(item)
                if score is None:
                    out.append(Rating(None, "", FAILED))
                else:
                    out.append(Rating(float(score), f"Rating: [[{float(score):g}]]"))
        return out

    def compare(self, items: Sequence[PairItem], *, max_tokens: int = JUDGE_MAX_TOKENS,
                desc: str | None = None) -> list[Preference]:
        out = []
        with self._lock:
            for item in items:
                self.compared.append(item)
                pref = self._preferences(item)
                if pref is None:
                    out.append(Preference(None, item.candidate_first, "", FAILED))
                    continue
                if not 1.0 <= float(pref) <= 2.0:
                    raise ValueError(f"a scripted preference must be in [1, 2], got {pref!r}")
                out.append(Preference(float(pref), item.candidate_first, _verdict_text(float(pref),
                                                                                       item.candidate_first)))
        return out


def _verdict_text(pref: float, candidate_first: bool) -> str:
    """A FastChat-style verdict for the presented order, so text-reading code sees a plausible reply."""
    presented = 3.0 - pref if candidate_first else pref
    return "[[A]]" if presented < 1.5 else "[[B]]" if presented > 1.5 else "[[C]]"
