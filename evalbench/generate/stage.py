"""The generation stage: requests of one suite x checkpoint x seed -> cached answers -> records."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evalbench.generate.backend import CachedBackend
from evalbench.store import GenerationRecord
from evalbench.types import GenRequest, Generation


@dataclass(frozen=True)
class Item:
    sample_id: str
    request: GenRequest
    turn: int = 1


def to_record(suite: str, checkpoint: str, seed: int, item: Item, gen: Generation, key: str) -> GenerationRecord:
    req = item.request
    return GenerationRecord(
        suite=suite, checkpoint=checkpoint, seed=seed, sample_id=item.sample_id, turn=item.turn,
        request={"messages": list(req.messages)} if req.messages is not None else {"prompt": req.prompt},
        sampling=req.sampling.model_dump(mode="json", exclude_defaults=True),
        outputs=[c.text for c in gen.choices],
        finish_reasons=[c.finish_reason for c in gen.choices],
        logprob_sums=[c.sum_logprob() for c in gen.choices] if any(c.logprobs for c in gen.choices) else None,
        token_counts=[len(c.logprobs) if c.logprobs else None for c in gen.choices]
        if any(c.logprobs for c in gen.choices) else None,
        error=gen.error, cache_key=key)


def _with_origin(item: Item, suite: str) -> GenRequest:
    return dataclasses.replace(item.request, origin=(suite, item.sample_id, item.turn))


def generate_items(backend: CachedBackend, items: Sequence[Item], *, suite: str, checkpoint: str, seed: int,
                   desc: str | None = None) -> list[Generation]:
    """Generate (or fetch from the cache) every item; each request carries its (suite, sample, turn)."""
    requests = [_with_origin(it, suite) for it in items]
    return backend.generate(requests, desc=desc or f"{suite} [{checkpoint} seed {seed}]")


def generate_chained_items(backend: CachedBackend, items: Sequence[Item],
                           follow: Callable[[int, Generation], Sequence[Item]], *, suite: str,
                           desc: str | None = None, follow_desc: str | None = None
                           ) -> tuple[list[Generation], list[list[tuple[Item, Generation]]]]:
    """`generate_items` of `items`, then of the items `follow(i, answer_i)` that continue item i.

    Through `CachedBackend.generate_chained`: on an HTTP server a follow-up is sent as soon as its
    item is answered. Returns the answers of `items` and, per item, its follow-up items with answers.
    """
    followers: list[list[Item]] = [[] for _ in items]

    def follow_requests(i: int, gen: Generation) -> list[GenRequest]:
        followers[i] = list(follow(i, gen))
        return [_with_origin(it, suite) for it in followers[i]]

    gens, answers = backend.generate_chained([_with_origin(it, suite) for it in items], follow_requests,
                                             desc=desc, follow_desc=follow_desc)
    return gens, [list(zip(followers[i], answers[i])) for i in range(len(items))]


def generate_records(backend: CachedBackend, items: Sequence[Item], *, suite: str, checkpoint: str, seed: int,
                     desc: str | None = None) -> list[GenerationRecord]:
    """`generate_items`, returned as the records the driver stores."""
    gens = generate_items(backend, items, suite=suite, checkpoint=checkpoint, seed=seed, desc=desc)
    return [to_record(suite, checkpoint, seed, it, g, backend.key(it.request)) for it, g in zip(items, gens)]
