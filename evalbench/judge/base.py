"""The Judge abstraction: `rate` and `compare` return typed verdicts, never sentinels.

    judge = ModelJudge(CachedBackend(backend, cache), name="gpt-4", constrained=False)
    ratings = judge.rate([RateItem(messages)])                        # Rating(score | None, raw, error)
    prefs = judge.compare([PairItem(messages, candidate_first=True)])  # Preference(preference | None, ...)

* A suite renders the prompt (it knows its benchmark's templates and fields) and names the verdict
  format (`evalbench.judge.formats`); the judge decides the decoding (one place: the format plus
  the judge's `constrained` setting), calls the model through the cache, and parses.
* A failed call or an unparseable reply is a verdict with `None` and the reason in `error`
  (FastChat writes -1 or "error", alpaca_eval NaN); suites count it and leave it out of means.
* `Preference.preference` is about the candidate, never a position: in [1, 2], 2 = the candidate
  wins, 1.5 = tie. `compare` maps the presented-order verdict back using `candidate_first`.
* The judge's identity (`JudgeId`: name, kind, model, backend identity, constrained decoding,
  self-judging) is computed once when the judge is built and travels with it; the cache keys of
  judge calls are the backend's (who + request + sampling), unchanged by this wrapper.

`FakeJudge` (evalbench.judge.fake) implements the same interface without a model, for tests.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalbench.judge.formats import JUDGE_MAX_TOKENS, VERDICT_FORMATS
from evalbench.types import Generation, GenRequest, Message

log = logging.getLogger(__name__)

__all__ = ["RateItem", "PairItem", "Rating", "Preference", "JudgeId", "Judge", "ModelJudge", "as_judge",
           "SELF_JUDGED_WARNING"]

SELF_JUDGED_WARNING = (
    "SELF-JUDGED: the policy's own base model ({model}) is the judge. Its verdicts favour its own "
    "style, so these numbers are not comparable with any other judge's; the summary rows are marked "
    "self_judged. Give --judge vllm:MODEL, openai:MODEL or url=URL,model=NAME for real numbers.")


# ------------------------------------------------------------------------------------- items

@dataclass(frozen=True)
class RateItem:
    """Rate one answer: the rendered judge prompt and the verdict format to read."""

    messages: tuple[Message, ...]
    format: str = "bracket_rating"
    # A judge repeat's own decoding (evalbench.judge.repeats): None keeps the format's, so a
    # single judgment's request and cache key are exactly what they were before repeats existed.
    seed: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class PairItem:
    """Compare two outputs shown in one order: the rendered prompt and which one is the candidate."""

    messages: tuple[Message, ...]
    candidate_first: bool  # the candidate is the output shown first (A, or `m`)
    format: str = "bracket_choice"
    seed: int | None = None  # a judge repeat's decoding, as RateItem
    temperature: float | None = None


# ---------------------------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class Rating:
    """A rating, or `score=None` with the reason in `error`.

    `raw` is the judge's text; `reply` the whole reply (log-probs included) when a model was asked.
    """

    score: float | None
    raw: str = ""
    error: str | None = None
    cached: bool = False
    reply: Generation | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.score is not None


@dataclass(frozen=True)
class Preference:
    """A pairwise verdict about the candidate: `preference` in [1, 2] (2 = the candidate wins,
    1.5 = tie), or None with the reason in `error`. `candidate_first` is the order used."""

    preference: float | None
    candidate_first: bool
    raw: str = ""
    error: str | None = None
    cached: bool = False
    reply: Generation | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.preference is not None

    @property
    def presented(self) -> float | None:
        """The same verdict in presented order (1 = the first-shown output wins)."""
        if self.preference is None:
            return None
        return 3.0 - self.preference if self.candidate_first else self.preference


def candidate_preference(presented: float, candidate_first: bool) -> float:
    """Map a presented-order preference in [1, 2] to the candidate (2 = the candidate wins)."""
    return 3.0 - presented if candidate_first else float(presented)


@dataclass(frozen=True)
class JudgeId:
    """Who judges, computed once: written into summaries, annotator names and FastChat files.

    `backend` is the backend's identity (`who`), the part of every judge cache key that names
    the model; the rest of a key is the request and its decoding.
    """

    name: str
    kind: str = "backend"  # same | vllm | endpoint | fake | backend (built from a backend directly)
    model: str | None = None
    backend: Mapping[str, Any] = field(default_factory=dict)
    constrained: bool = False
    self_judged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "model": self.model, "backend": dict(self.backend),
                "constrained": self.constrained, "self_judged": self.self_judged}


# ------------------------------------------------------------------------------------- judges

class Judge(ABC):
    """Rates answers and compares pairs; see the module docstring for the contract."""

    def __init__(self, id: JudgeId):
        self.id = id
        if id.self_judged:
            log.warning(SELF_JUDGED_WARNING.format(model=id.model or id.name))

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def constrained(self) -> bool:
        return self.id.constrained

    @property
    def self_judged(self) -> bool:
        return self.id.self_judged

    # Model calls made and answered from the cache (the driver reports them per run).
    @property
    def misses(self) -> int:
        return 0

    @property
    def hits(self) -> int:
        return 0

    @abstractmethod
    def rate(self, items: Sequence[RateItem], *, max_tokens: int = JUDGE_MAX_TOKENS,
             desc: str | None = None) -> list[Rating]:
        """One Rating per item, in order. `max_tokens` bounds text verdicts (small local judges)."""

    @abstractmethod
    def compare(self, items: Sequence[PairItem], *, max_tokens: int = JUDGE_MAX_TOKENS,
                desc: str | None = None) -> list[Preference]:
        """One Preference (about the candidate) per item, in order."""


class ModelJudge(Judge):
    """A judge model behind a (cached) backend: the format decides decoding and parsing.

    Transport failures that survive the client's retries propagate (ServerError); verdicts
    received before are cached. A request that came back failed is a verdict with an error.
    """

    def __init__(self, backend: Any, *, name: str | None = None, kind: str = "backend",
                 constrained: bool = False, self_judged: bool = False):
        who = dict(getattr(backend, "who", {}) or {})
        model = who.get("model") if isinstance(who.get("model"), str) else None
        super().__init__(JudgeId(name=name or model or "judge", kind=kind, model=model, backend=who,
                                 constrained=constrained, self_judged=self_judged))
        self.backend = backend

    @property
    def misses(self) -> int:
        return int(getattr(self.backend, "misses", 0))

    @property
    def hits(self) -> int:
        return int(getattr(self.backend, "hits", 0))

    def _ask(self, items: Sequence[RateItem | PairItem], max_tokens: int, desc: str | None):
        formats = {name: VERDICT_FORMATS.get(name) for name in {it.format for it in items}}
        sampling = {name: f.sampling(self.constrained, max_tokens) for name, f in formats.items()}
        requests = [GenRequest(messages=it.messages, sampling=_with_repeat(sampling[it.format], it)) for it in items]
        gens = self.backend.generate(requests, desc=desc) if requests else []
        return formats, gens

    def rate(self, items: Sequence[RateItem], *, max_tokens: int = JUDGE_MAX_TOKENS,
             desc: str | None = None) -> list[Rating]:
        formats, gens = self._ask(items, max_tokens, desc)
        out = []
        for it, gen in zip(items, gens):
            if not gen.ok:
                out.append(Rating(None, "", f"judge call failed: {gen.error or 'no choices'}", gen.cached, gen))
                continue
            parsed = formats[it.format].parse(gen)
            score = None if parsed.value is None else float(parsed.value)  # type: ignore[arg-type]
            out.append(Rating(score, gen.text, parsed.error, gen.cached, gen))
        return out

    def compare(self, items: Sequence[PairItem], *, max_tokens: int = JUDGE_MAX_TOKENS,
                desc: str | None = None) -> list[Preference]:
        formats, gens = self._ask(items, max_tokens, desc)
        out = []
        for it, gen in zip(items, gens):
            if not gen.ok:
                out.append(Preference(None, it.candidate_first, "",
                                      f"judge call failed: {gen.error or 'no choices'}", gen.cached, gen))
                continue
            parsed = formats[it.format].parse(gen)
            pref = None if parsed.value is None else candidate_preference(float(parsed.value),  # type: ignore[arg-type]
                                                                          it.candidate_first)
            out.append(Preference(pref, it.candidate_first, gen.text, parsed.error, gen.cached, gen))
        return out


def _with_repeat(sampling: Any, item: RateItem | PairItem) -> Any:
    """The format's decoding with a judge repeat's seed / temperature; unchanged when neither is set."""
    update = {k: v for k, v in (("seed", item.seed), ("temperature", item.temperature)) if v is not None}
    return sampling.model_copy(update=update) if update else sampling


def as_judge(judge: Any, *, name: str | None = None, constrained: bool = False,
             self_judged: bool = False) -> Judge | None:
    """`judge` if it is a Judge; a (cached) backend wrapped in a ModelJudge; None stays None.

    Lets callers that still hand suites a raw backend (plus a name and a constrained flag) keep
    working while the driver moves to building the Judge once.
    """
    if judge is None or isinstance(judge, Judge):
        return judge
    return ModelJudge(judge, name=name, constrained=constrained, self_judged=self_judged)
