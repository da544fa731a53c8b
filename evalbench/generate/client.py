"""Async OpenAI-compatible client (the `openai` SDK) behind a synchronous batch interface.

Bounded concurrency; retries with exponential backoff and full jitter on 429 / 408 / 5xx /
timeouts / connection errors, honouring `Retry-After`; per-request timeouts; chat and
completions; `n`, `logprobs` / `top_logprobs`; vLLM `structured_outputs` (regex / choice / JSON
schema) through `extra_body` (vLLM silently ignores the old `guided_*` keys, so we never send them).
Transport failures that survive the retries abort the batch with `ServerError`; everything that
finished before is already in the cache. A request the server rejects (4xx) becomes a failed
`Generation` with the server's message, never a sentinel value.

An answer that arrives but is unusable (HTTP 200 with a body that is not JSON or not the OpenAI
shape, no `choices`, fewer choices than `n`, no log-probs when they were asked for) is a transient
fault too: real servers produce it under load (a proxy cutting a body, an overloaded worker). It is
retried with the same backoff and budget, and when the budget is spent it becomes a failed
`Generation` carrying the reason, so the rest of the batch is kept (docs/reliability.md).

`generate_uncached(..., then=...)` chains follow-ups: when request i is answered, `then(i, answer)`
names requests to send next in the same batch (MT-bench's turn 2 of that question), under the same
concurrency bound and engine limit (`CachedBackend.generate_chained`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from evalbench.errors import EvalbenchError, ServerError
from evalbench.generate.backend import FollowUp, Then, openai_request_body
from evalbench.types import Choice, Generation, GenRequest, TokenLogprob

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class MalformedResponse(Exception):
    """The server answered (usually HTTP 200) but the body cannot be used; retried as transient."""


# After this many requests of a batch spent their whole budget on unusable answers while none
# succeeded, the fault is the endpoint's (say, a model without log-probs), not the network's:
# the rest fail at their first unusable answer instead of paying for every retry.
SYSTEMATIC_AFTER = 3


@dataclass
class _BatchHealth:
    ok: int = 0
    exhausted_malformed: int = 0

    @property
    def systematic(self) -> bool:
        return self.ok == 0 and self.exhausted_malformed >= SYSTEMATIC_AFTER


# httpx's connection pool (httpcore) scans its connections for every queued request each time a
# request starts or ends, so its CPU per request grows with the requests in flight in one pool: at
# 128 in flight over keep-alive connections (vLLM's server, OpenAI) the client took 5-6 ms of CPU
# per request in one pool and ~2 ms in pools of 16 (results/benchmarks.md). Requests are spread
# over pools of at most POOL_SHARD, which keeps that scan short.
POOL_SHARD = 16


def pool_shards(max_concurrency: int) -> int:
    return max(1, -(-max_concurrency // POOL_SHARD))


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): full jitter, or the server's Retry-After."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap * 4)
    return (rng or random).uniform(0, min(cap, base * (2 ** attempt)))


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


class OpenAICompatibleBackend:
    """Generation through any OpenAI-compatible endpoint (OpenAI, vLLM server, a stub).

    `who` is the identity used in cache keys; a managed server passes the model's content
    identity, an external endpoint its URL + model name. The API key is read from the named
    environment variable when the backend is built and is never logged or written.
    """

    chains_follow_ups: ClassVar[bool] = True  # generate_uncached takes then= (evalbench.generate.backend)

    def __init__(self, base_url: str, model: str, *, who: dict[str, Any] | None = None,
                 api_key_env: str | None = None, api_key: str | None = None, max_concurrency: int = 8,
                 timeout_s: float = 120.0, max_retries: int = 6, backoff_base_s: float = 0.5,
                 liveness: Callable[[], None] | None = None, limit: Any = None):
        check_client_options(max_concurrency=max_concurrency, timeout_s=timeout_s, max_retries=max_retries,
                             backoff_base_s=backoff_base_s)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._who = who or {"engine": "openai-http", "base_url": self.base_url, "model": model}
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env)
            if api_key is None and "api.openai.com" in self.base_url:
                raise EvalbenchError(f"the API key variable {api_key_env} is not set")
        self._api_key = api_key or "EMPTY"
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.liveness = liveness
        # An `InFlightLimit` (evalbench.generate.limits) shared by every client of one engine: the
        # engine's own bound on requests in flight, over all checkpoints and seeds generating at once.
        self.limit = limit
        self.calls = 0  # HTTP requests sent (retries included)
        self._lock = threading.Lock()

    @property
    def who(self) -> dict[str, Any]:
        return self._who

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatibleBackend({self.base_url!r}, model={self.model!r})"

    # -- sync facade --------------------------------------------------------------------------

    def generate_uncached(self, requests: Sequence[GenRequest], *,
                          on_result: Callable[[int, Generation], None] | None = None,
                          desc: str | None = None, then: Then | None = None) -> list[Generation]:
        """Answers of `requests` in order; each also goes to `on_result(i, gen)` as it arrives.

        With `then`, the follow-ups `then(i, gen)` returns are sent in this batch once request i is
        answered (after `on_result`); their answers go only to their own callbacks.
        """
        import httpx  # noqa: F401  (imported before the progress clock starts: its rate is the requests')
        import openai  # noqa: F401

        from evalbench.generate.limits import UNIT_RANK
        from evalbench.progress import track

        rank = UNIT_RANK.get()  # read here: the event loop may run in a thread of its own
        with track(desc or f"generate [{self.model}]", total=len(requests)) as task:
            def done(i: int, gen: Generation) -> Sequence[FollowUp]:
                task.advance()
                if on_result is not None:
                    on_result(i, gen)
                follow_ups = then(i, gen) if then is not None else ()
                if follow_ups:
                    task.set_total((task.total or 0) + len(follow_ups))
                return [(req, _advancing(task, receive)) for req, receive in follow_ups]

            return _run_sync(self._generate_all(list(requests), done, rank))

    # -- async core ---------------------------------------------------------------------------

    async def _generate_all(self, requests: list[GenRequest],
                            done: Callable[[int, Generation], Sequence[FollowUp] | None],
                            rank: int = 0) -> list[Generation]:
        """Every request as a task; `done(i, gen)` may return follow-ups, which become tasks too."""
        clients = [self._client(2 * POOL_SHARD) for _ in range(pool_shards(self.max_concurrency))]
        in_shard = [0] * len(clients)
        sem = asyncio.Semaphore(self.max_concurrency)
        results: list[Generation | None] = [None] * len(requests)
        health = _BatchHealth()

        async def send(req: GenRequest) -> Generation:
            # The least busy connection pool; with the semaphore, none holds more than POOL_SHARD.
            k = min(range(len(clients)), key=in_shard.__getitem__)
            in_shard[k] += 1
            try:
                return await self._with_retries(clients[k], req, health)
            finally:
                in_shard[k] -= 1

        async def answer(req: GenRequest) -> Generation:
            async with sem:
                if self.limit is None:
                    return await send(req)
                await self.limit.acquire(rank)
                try:
                    return await send(req)
                finally:
                    self.limit.release()

        async def one(i: int) -> None:
            gen = await answer(requests[i])
            results[i] = gen
            for req, receive in done(i, gen) or ():
                tasks.append(asyncio.create_task(follow_up(req, receive)))

        async def follow_up(req: GenRequest, receive: Callable[[Generation], None]) -> None:
            receive(await answer(req))

        tasks: list[asyncio.Task] = []
        try:
            tasks += [asyncio.create_task(one(i)) for i in range(len(requests))]
            try:
                await _until_all_done(tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            for client in clients:
                await client.close()
        return [r for r in results if r is not None]

    def _client(self, connections: int):
        import httpx
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0, timeout=self.timeout_s,
                           http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=connections),
                                                         timeout=self.timeout_s))

    async def _with_retries(self, client, req: GenRequest, health: _BatchHealth | None = None) -> Generation:
        import openai

        health = health if health is not None else _BatchHealth()
        body = self.request_body(req)  # built once, sent as often as the retries need
        attempt = 0
        while True:
            try:
                with self._lock:
                    self.calls += 1
                gen = await self._send(client, req, body)
                health.ok += 1
                return gen
            except MalformedResponse as exc:
                if health.systematic:
                    return Generation(error=f"malformed response (the endpoint gave {SYSTEMATIC_AFTER} requests "
                                            f"nothing usable in {self.max_retries + 1} attempts each; not "
                                            f"retried): {exc}")
                if attempt >= self.max_retries:
                    health.exhausted_malformed += 1
                    log.debug("%s: unusable answer after %d attempts (%s); recorded as a failed item",
                              self.model, attempt + 1, exc)
                    return Generation(error=f"malformed response after {attempt + 1} attempts: {exc}")
                delay = backoff_delay(attempt, base=self.backoff_base_s)
            except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                    openai.InternalServerError, openai.APIStatusError) as exc:
                status = getattr(exc, "status_code", None)
                transport = isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError))
                if not transport and status not in RETRY_STATUS:
                    return Generation(error=f"HTTP {status}: {_message(exc)}")
                if transport and self.liveness is not None:
                    self.liveness()  # raises ServerError with the server's last log lines if it died
                if attempt >= self.max_retries:
                    what = f"HTTP {status}" if status else type(exc).__name__
                    raise ServerError(f"{self.base_url} failed after {attempt + 1} attempts ({what}: "
                                      f"{_message(exc)}); finished requests are cached, rerun to resume") \
                        from None
                delay = backoff_delay(attempt, base=self.backoff_base_s, retry_after=_retry_after(exc))
            log.debug("retry %d for %s in %.2fs", attempt + 1, self.model, delay)
            attempt += 1
            await asyncio.sleep(delay)

    def request_body(self, req: GenRequest) -> dict[str, Any]:
        """The JSON body of `req` for /chat/completions or /completions (vLLM extras at top level)."""
        return openai_request_body(self.model, req)

    async def _send(self, client, req: GenRequest, body: dict[str, Any] | None = None) -> Generation:
        import httpx
        import openai

        s = req.sampling
        chat = req.kind == "chat"
        body = body if body is not None else self.request_body(req)
        try:
            # The body is ours and already valid: `client.post` skips the SDK's per-call parameter
            # transformation and response-model building (~13 ms of CPU per judge request, issue 17)
            # but keeps its transport: headers, timeouts, and HTTP errors as openai exceptions.
            resp = await client.post("/chat/completions" if chat else "/completions", body=body,
                                     cast_to=httpx.Response)
            data = resp.json()
            # A body of the wrong shape surfaces below as a missing attribute, a None where a list
            # belongs, and so on.
            return parse_response(_view(data), chat=chat, n=s.n, logprobs=bool(s.logprobs or (req.echo and not chat)))
        except MalformedResponse:
            raise
        except (ValueError, TypeError, AttributeError, KeyError, IndexError,
                openai.APIResponseValidationError) as exc:  # JSONDecodeError is a ValueError
            raise MalformedResponse(f"{type(exc).__name__}: {str(exc)[:200]}") from None


async def _until_all_done(tasks: list[asyncio.Task]) -> None:
    """Await `tasks`, which may grow while it waits (follow-ups); the first failure is raised at once."""
    while True:
        pending = [t for t in tasks if not t.done()]
        if not pending:
            break
        finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for t in finished:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    await asyncio.gather(*tasks)  # a task cancelled from outside raises here


def _advancing(task: Any, receive: Callable[[Generation], None]) -> Callable[[Generation], None]:
    def receive_and_count(gen: Generation) -> None:
        task.advance()
        receive(gen)
    return receive_and_count


class _Fields:
    """Attribute access to a JSON object, as the SDK's response objects give it (a missing key is None)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return _view(self._data.get(name))

    def items(self):  # completions' top_logprobs are {token: logprob} maps
        return self._data.items()


def _view(value: Any) -> Any:
    if isinstance(value, dict):
        return _Fields(value)
    if isinstance(value, list):
        return [_view(v) for v in value]
    return value


def parse_response(resp: Any, *, chat: bool, n: int, logprobs: bool) -> Generation:
    """A `Generation` from an SDK response object, or `MalformedResponse` saying what is missing."""
    if isinstance(resp, (str, bytes)) or resp is None:
        raise MalformedResponse(f"the body is not a JSON object: {str(resp)[:80]!r}")
    raw_choices = resp.choices
    if not raw_choices:
        raise MalformedResponse("the answer has no choices")
    if len(raw_choices) < n:
        raise MalformedResponse(f"the answer has {len(raw_choices)} choices, {n} were asked for")
    choices = []
    for c in raw_choices:
        if chat:
            message = c.message
            if message is None:
                raise MalformedResponse("a choice has no message")
            text = message.content or ""
            lps = _chat_logprobs(c.logprobs) if logprobs else None
        else:
            if not isinstance(c.text, str):
                raise MalformedResponse("a choice has no text")
            text = c.text
            lps = _completion_logprobs(c.logprobs) if logprobs else None
        if logprobs and lps is None:
            raise MalformedResponse("log-probs were asked for but the answer has none")
        choices.append(Choice(text=text, finish_reason=c.finish_reason, logprobs=lps))
    usage = None
    if getattr(resp, "usage", None) is not None:
        usage = {"prompt_tokens": resp.usage.prompt_tokens, "completion_tokens": resp.usage.completion_tokens}
    return Generation(choices=tuple(choices), usage=usage)


def check_client_options(*, max_concurrency: int, timeout_s: float, max_retries: int,
                         backoff_base_s: float = 0.5) -> None:
    """One-line errors for option values that would hang (concurrency 0) or crash the client."""
    from evalbench.errors import InputError

    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise InputError(f"concurrency must be an integer >= 1, got {max_concurrency!r}", field="concurrency")
    if not timeout_s > 0:
        raise InputError(f"timeout must be > 0 seconds, got {timeout_s!r}", field="timeout_s")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise InputError(f"retries must be an integer >= 0, got {max_retries!r}", field="max_retries")
    if not backoff_base_s >= 0:
        raise InputError(f"backoff must be >= 0 seconds, got {backoff_base_s!r}", field="backoff_base_s")


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        msg = err.get("message") if isinstance(err, dict) else body.get("message")
        if msg:
            return str(msg)[:300]
    return str(exc)[:300]


def _chat_logprobs(lp) -> tuple[TokenLogprob, ...] | None:
    if lp is None or lp.content is None:
        return None
    # vLLM lists the sampled token first when it is not among the top k; we promise best first.
    return tuple(TokenLogprob(t.token, t.logprob, tuple(sorted(((x.token, x.logprob) for x in (t.top_logprobs or ())),
                                                             key=lambda kv: -kv[1])))
                 for t in lp.content)


def _completion_logprobs(lp) -> tuple[TokenLogprob, ...] | None:
    if lp is None or lp.tokens is None:
        return None
    tops = lp.top_logprobs or [None] * len(lp.tokens)
    out = []
    for tok, val, top in zip(lp.tokens, lp.token_logprobs, tops):
        ranked = tuple(sorted(((k, v) for k, v in (top or {}).items()), key=lambda kv: -kv[1]))
        out.append(TokenLogprob(tok, val, ranked))
    return tuple(out)


def _run_sync(coro):
    """Run a coroutine from sync code, also when an event loop is already running (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=runner)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
