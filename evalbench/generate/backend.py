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


def openai_request_body(model: str, req: GenRequest) -> dict[str, Any]:
    """The JSON body of `req` for /chat/completions or /completions (vLLM extras at top level): what
    the HTTP client sends and what a scripted fake's responder is shown."""
    s = req.sampling
    body: dict[str, Any] = {"model": model, "temperature": s.temperature, "top_p": s.top_p,
                            "max_tokens": s.max_tokens, "n": s.n}
    if s.seed is not None:
        body["seed"] = s.seed
    if s.stop:
        body["stop"] = list(s.stop)
    min_tokens = getattr(s, "min_tokens", 0)
    if min_tokens:
        body["min_tokens"] = min_tokens  # vLLM extra parameter (decode-bound benchmarks)
    structured = s.structured_outputs()
    if structured is not None:
        body["structured_outputs"] = structured
    if req.messages is not None:
        body["messages"] = [dict(m) for m in req.messages]
        if s.logprobs:
            body["logprobs"] = True
            if s.top_logprobs is not None:
                body["top_logprobs"] = s.top_logprobs
    else:
        body["prompt"] = req.prompt
        if s.logprobs or req.echo:
            body["logprobs"] = max(1, s.top_logprobs or 1)
        if req.echo:
            body["echo"] = True
    return body


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


# Requests being generated right now, per cache: (id(cache), key) -> (owner thread, done event).
# Units run in threads (every checkpoint x seed of a suite at once), and a greedy request of seed 0
# and seed 1 has one key: the second thread waits for the first instead of paying again.
_INFLIGHT: dict[tuple[int, str], tuple[int, threading.Event]] = {}
_INFLIGHT_LOCK = threading.Lock()


class CachedBackend:
    """Serves cached generations and sends only the misses to the inner backend.

    Each successful result is written to the cache as soon as it arrives, so an interrupted
    batch keeps everything it finished. Failures are returned but not cached (retried next run).
    A miss that another thread is already generating (same cache, same key) is not sent again:
    this call waits for it and reads the answer from the cache (or sends it, if that one failed).
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
        todo, waiting = self._claim(keys, todo)
        try:
            self._generate_misses(requests, keys, todo, results, desc=desc)
        finally:
            self._release(keys, todo)
        late = self._collect(keys, waiting, results)  # answered by another thread, or failed there
        if late:
            self._generate_misses(requests, keys, late, results, desc=desc)
        with self._count_lock:
            self.hits += len(requests) - len(todo) - len(late)
            self.misses += len(todo) + len(late)
        missing = sum(r is None for r in results)
        if missing:
            raise RuntimeError(f"backend returned {missing} fewer results than requests")
        return results  # type: ignore[return-value]

    def _claim(self, keys: list[str], todo: list[int]) -> tuple[list[int], list[tuple[int, threading.Event]]]:
        """Split the misses into the ones this thread sends and the ones another thread is sending."""
        if self.cache is None or not todo:
            return todo, []
        me, mine, waiting = threading.get_ident(), [], []
        with _INFLIGHT_LOCK:
            for i in todo:
                slot = (id(self.cache), keys[i])
                owner = _INFLIGHT.get(slot)
                if owner is None:
                    _INFLIGHT[slot] = (me, threading.Event())
                    mine.append(i)
                elif owner[0] == me:  # a repeat within this call: sent again, as always
                    mine.append(i)
                else:
                    waiting.append((i, owner[1]))
        return mine, waiting

    def _release(self, keys: list[str], mine: list[int]) -> None:
        if self.cache is None:
            return
        me = threading.get_ident()
        with _INFLIGHT_LOCK:
            for i in mine:
                owner = _INFLIGHT.get((id(self.cache), keys[i]))
                if owner is not None and owner[0] == me:
                    del _INFLIGHT[(id(self.cache), keys[i])]
                    owner[1].set()

    def _collect(self, keys: list[str], waiting: list[tuple[int, threading.Event]],
                 results: list[Generation | None]) -> list[int]:
        """Wait for the other threads' answers; the indices whose answer did not reach the cache."""
        late = []
        for i, done in waiting:
            done.wait()
            cached = self.cache.get(keys[i]) if self.cache is not None else None
            if cached is not None:
                results[i] = Generation.from_json(cached, cached=True)
            else:
                late.append(i)
        return late

    def _generate_misses(self, requests: Sequence[GenRequest], keys: list[str], todo: list[int],
                         results: list[Generation | None], *, desc: str | None) -> None:
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
