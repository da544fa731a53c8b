"""Backends: the only things that touch an inference engine. Synchronous and batch-first.

A backend has an identity `who` (engine, version, base model identity, adapter identity) that
goes into every cache key, and `generate_uncached(requests)`. `CachedBackend` wraps any backend
with the persistent cache, so a re-run makes zero model calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from evalbench.cache import Cache, cache_key
from evalbench.types import Generation, GenRequest

log = logging.getLogger(__name__)


class Backend(Protocol):
    @property
    def who(self) -> dict[str, Any]: ...

    def generate_uncached(self, requests: Sequence[GenRequest], *,
                          on_result: Callable[[int, Generation], None] | None = None,
                          desc: str | None = None) -> list[Generation]: ...


def answer_in_order(requests: Sequence[GenRequest], answer: Callable[[GenRequest], Generation],
                    on_result: Callable[[int, Generation], None] | None = None) -> list[Generation]:
    """`answer` each request in turn, reporting each result as it comes (in-process backends)."""
    out = []
    for i, req in enumerate(requests):
        gen = answer(req)
        if on_result is not None:
            on_result(i, gen)
        out.append(gen)
    return out


def request_key(who: dict[str, Any], req: GenRequest) -> str:
    return cache_key(who, req.what(), req.sampling.model_dump(mode="json"))


class CachedBackend:
    """Serves cached generations and sends only the misses to the inner backend.

    Each successful result is written to the cache as soon as it arrives, so an interrupted
    batch keeps everything it finished. Failures are returned but not cached (retried next run).
    """

    def __init__(self, inner: Backend, cache: Cache | None):
        self.inner = inner
        self.cache = cache
        self.hits = 0
        self.misses = 0
        # Several driver threads may share one checkpoint (evalbench.executors.ray): exact counts.
        self._count_lock = threading.Lock()

    @property
    def who(self) -> dict[str, Any]:
        return self.inner.who

    def key(self, req: GenRequest) -> str:
        return request_key(self.who, req)

    def generate(self, requests: Sequence[GenRequest], *, desc: str | None = None) -> list[Generation]:
        results: list[Generation | None] = [None] * len(requests)
        # Keys cost a canonical-JSON hash per request: only worth it with a cache to look into.
        keys = [self.key(r) for r in requests] if self.cache is not None else [""] * len(requests)
        todo: list[int] = []
        for i, key in enumerate(keys):
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                results[i] = Generation.from_json(cached, cached=True)
            else:
                todo.append(i)
        with self._count_lock:
            self.hits += len(requests) - len(todo)
            self.misses += len(todo)
        if todo:
            log.debug("%s: %d cached, %d to generate", desc or "generate", len(requests) - len(todo), len(todo))

            def store(j: int, gen: Generation) -> None:
                i = todo[j]
                results[i] = gen
                if self.cache is not None and gen.ok:
                    self.cache.put(keys[i], gen.to_json(), who=self.who)

            fresh = self.inner.generate_uncached([requests[i] for i in todo], on_result=store, desc=desc)
            for j, gen in enumerate(fresh):
                if results[todo[j]] is None:
                    store(j, gen)
        missing = sum(r is None for r in results)
        if missing:
            raise RuntimeError(f"backend returned {missing} fewer results than requests")
        return results  # type: ignore[return-value]
