"""Backends: the only things that touch an inference engine. Synchronous and batch-first.

A backend has an identity `who` (engine, version, base model identity, adapter identity) that
goes into every cache key, and `generate_uncached(requests)`. `CachedBackend` wraps any backend
with the persistent cache, so a re-run makes zero model calls.

Dependent requests (MT-bench's turn 2 continues turn 1's answer) go through
`CachedBackend.generate_chained`. A backend with `chains_follow_ups = True` (the HTTP client) takes
`generate_uncached(..., then=...)` and sends a request's follow-ups as soon as its answer is back,
in the same batch; any other backend gets the two phases one after the other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from evalbench.cache import Cache, cache_key
from evalbench.types import Generation, GenRequest

log = logging.getLogger(__name__)

# A request sent after another one's answer, with the callback that takes its own answer.
FollowUp = tuple[GenRequest, Callable[[Generation], None]]
# then(i, gen): the follow-ups to send as soon as request i of a batch is answered with `gen`.
Then = Callable[[int, Generation], Sequence[FollowUp]]
# follow(i, gen): the requests that continue request i, given its answer (none, say, when it failed).
Follow = Callable[[int, Generation], Sequence[GenRequest]]


def chains_follow_ups(backend: Any) -> bool:
    """Whether `backend.generate_uncached` takes `then=` (follow-ups sent within the batch)."""
    return bool(getattr(backend, "chains_follow_ups", False))


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
        keys = self._keys(requests)
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

    def generate_chained(self, requests: Sequence[GenRequest], follow: Follow, *, desc: str | None = None,
                         follow_desc: str | None = None) -> tuple[list[Generation], list[list[Generation]]]:
        """`generate(requests)`, then `generate` of every `follow(i, answer_i)`: same answers, keys, counts.

        On a backend that chains follow-ups (the HTTP client) request i's follow-ups are sent as soon
        as its answer is back, in the same batch, so the engine is not left with a few slow first
        answers while every follow-up waits for them (FastChat sends MT-bench's turn 2 per question).
        Each follow-up is looked up in the cache first and stored when it arrives. Follow-ups that
        another thread is generating right now, and those of first requests another thread was
        generating, are left to one `generate` call after the batch (it waits for them). Other
        backends run the two phases one after the other.

        Returns:
            (the answers of `requests`, per request the answers of its follow-ups in their order).
        """
        if not chains_follow_ups(self.inner):
            return self._two_phases(requests, follow, desc=desc, follow_desc=follow_desc)
        return _Chain(self, requests, follow, desc=desc, follow_desc=follow_desc).run()

    def _two_phases(self, requests: Sequence[GenRequest], follow: Follow, *, desc: str | None,
                    follow_desc: str | None) -> tuple[list[Generation], list[list[Generation]]]:
        firsts = self.generate(requests, desc=desc)
        planned = [list(follow(i, gen)) for i, gen in enumerate(firsts)]
        flat = [req for reqs in planned for req in reqs]
        answers = iter(self.generate(flat, desc=follow_desc or desc) if flat else [])
        return firsts, [[next(answers) for _ in reqs] for reqs in planned]

    def _keys(self, requests: Sequence[GenRequest]) -> list[str]:
        # Keys cost a canonical-JSON hash per request: only worth it with a cache to look into.
        return [self.key(r) for r in requests] if self.cache is not None else [""] * len(requests)

    def _cached(self, key: str) -> Generation | None:
        cached = self.cache.get(key) if self.cache is not None else None
        return Generation.from_json(cached, cached=True) if cached is not None else None

    def _store(self, key: str, gen: Generation) -> None:
        if self.cache is not None and gen.ok:
            self.cache.put(key, gen.to_json(), who=self.who)

    def _count(self, hits: int, misses: int) -> None:
        with self._count_lock:
            self.hits += hits
            self.misses += misses

    def _claim(self, keys: list[str], todo: list[int], me: int | None = None
               ) -> tuple[list[int], list[tuple[int, threading.Event]]]:
        """Split the misses into the ones this thread sends and the ones another thread is sending.

        `me` names the owner when the claim is made outside the owner's thread (an event loop's).
        """
        if self.cache is None or not todo:
            return todo, []
        me = threading.get_ident() if me is None else me
        mine, waiting = [], []
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

    def _release(self, keys: list[str], mine: list[int], me: int | None = None) -> None:
        if self.cache is None:
            return
        me = threading.get_ident() if me is None else me
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


class _Chain:
    """One `CachedBackend.generate_chained` call on a backend that chains follow-ups.

    Callbacks run on the client's event loop, one at a time; keys are claimed in the name of the
    calling thread (`me`), which releases them when the batch ends, however it ends.
    """

    def __init__(self, cached: CachedBackend, requests: Sequence[GenRequest], follow: Follow, *,
                 desc: str | None, follow_desc: str | None):
        self.cached = cached
        self.requests = list(requests)
        self.follow = follow
        self.desc, self.follow_desc = desc, follow_desc
        self.me = threading.get_ident()
        self.firsts: list[Generation | None] = [None] * len(self.requests)
        self.follow_ups: list[list[Generation | None]] = [[] for _ in self.requests]
        self.claimed: list[str] = []  # follow-up keys claimed by this call
        # (first, position, request) of follow-ups left to one `generate` call after the batch
        self.deferred: list[tuple[int, int, GenRequest]] = []
        self.hits = self.misses = 0  # of follow-ups decided within the batch

    def run(self) -> tuple[list[Generation], list[list[Generation]]]:
        cached = self.cached
        keys = cached._keys(self.requests)
        for i, key in enumerate(keys):
            self.firsts[i] = cached._cached(key)
        todo, waiting = cached._claim(keys, [i for i, g in enumerate(self.firsts) if g is None], self.me)
        try:
            self._send(keys, todo)
        finally:
            cached._release(keys, todo, self.me)
            cached._release(self.claimed, list(range(len(self.claimed))), self.me)
        late = cached._collect(keys, waiting, self.firsts)  # another thread's first answers
        if late:
            cached._generate_misses(self.requests, keys, late, self.firsts, desc=self.desc)
        for i, _ in waiting:
            self._defer_all(i)
        self._generate_deferred()
        firsts_paid = len(todo) + len(late)
        cached._count(len(self.requests) - firsts_paid + self.hits, firsts_paid + self.misses)
        return self._complete()

    def _send(self, keys: list[str], todo: list[int]) -> None:
        """One batch: the first misses (chaining their follow-ups) and the follow-ups of first hits."""
        ready = [fu for i, gen in enumerate(self.firsts) if gen is not None
                 for fu in self._follow_ups(i, gen)]
        if not todo and not ready:
            return

        def on_result(j: int, gen: Generation) -> None:
            if j >= len(todo):
                ready[j - len(todo)][1](gen)
                return
            self.firsts[todo[j]] = gen
            self.cached._store(keys[todo[j]], gen)

        def then(j: int, gen: Generation) -> Sequence[FollowUp]:
            return self._follow_ups(todo[j], gen) if j < len(todo) else ()

        batch = [self.requests[i] for i in todo] + [req for req, _ in ready]
        desc = f"{self.desc or 'generate'} + follow-ups"  # the progress total grows as follow-ups are sent
        log.debug("%s: %d cached, %d to generate", desc, len(self.requests) - len(todo), len(todo))
        self.cached.inner.generate_uncached(batch, on_result=on_result, desc=desc, then=then)

    def _follow_ups(self, i: int, gen: Generation) -> list[FollowUp]:
        """Request i's follow-ups: cache hits filled in, claimed misses returned to send, others deferred."""
        requests = list(self.follow(i, gen))
        self.follow_ups[i] = [None] * len(requests)
        send: list[FollowUp] = []
        for k, req in enumerate(requests):
            key = self.cached.key(req) if self.cached.cache is not None else ""
            hit = self.cached._cached(key)
            if hit is not None:
                self.follow_ups[i][k] = hit
                self.hits += 1
            elif self.cached._claim([key], [0], self.me)[0]:
                self.claimed.append(key)
                self.misses += 1
                send.append((req, self._receiver(i, k, key)))
            else:  # another thread is generating it: wait for it after the batch, never inside the loop
                self.deferred.append((i, k, req))
        return send

    def _receiver(self, i: int, k: int, key: str) -> Callable[[Generation], None]:
        def receive(gen: Generation) -> None:
            self.follow_ups[i][k] = gen
            self.cached._store(key, gen)
        return receive

    def _defer_all(self, i: int) -> None:
        first = self.firsts[i]
        requests = list(self.follow(i, first)) if first is not None else []
        self.follow_ups[i] = [None] * len(requests)
        self.deferred += [(i, k, req) for k, req in enumerate(requests)]

    def _generate_deferred(self) -> None:
        # `generate` waits for other threads' answers and counts its own hits and misses.
        if not self.deferred:
            return
        requests = [req for _, _, req in self.deferred]
        answers = self.cached.generate(requests, desc=self.follow_desc or self.desc)
        for (i, k, _), gen in zip(self.deferred, answers):
            self.follow_ups[i][k] = gen

    def _complete(self) -> tuple[list[Generation], list[list[Generation]]]:
        missing = sum(g is None for gens in [self.firsts, *self.follow_ups] for g in gens)
        if missing:
            raise RuntimeError(f"backend returned {missing} fewer results than requests")
        return self.firsts, self.follow_ups  # type: ignore[return-value]
