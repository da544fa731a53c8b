"""An OpenAI-compatible fault proxy for tests: sits in front of the stub or a real vLLM server.

    with StubServer(models=("judge",)) as stub, FaultProxy(stub.base_url, FaultPlan(rate=0.3)) as proxy:
        backend = OpenAICompatibleBackend(proxy.base_url, "judge", ...)

Every POST (chat and completions alike) either passes through unchanged or, with probability
`rate` (or as `script` says, request by request), is answered by the proxy itself with one fault:

    429           HTTP 429 with Retry-After
    500           HTTP 500
    drop          the connection is closed without an answer
    timeout       nothing is sent for `stall_s` (set it above the client's timeout), then the close
    bad_json      HTTP 200, JSON content type, a body cut in the middle
    empty_choices HTTP 200, a well-formed completion with `choices: []`
    no_logprobs   HTTP 200, a choice without log-probs (only for requests that ask for log-probs;
                  others get empty_choices, so an injected answer is never a usable one)
    truncated     HTTP 200 whose body is shorter than its Content-Length (a cut stream)

A faulted request never reaches the upstream server, so `upstream_posts` counts exactly what a
real server would have been paid for. Binds 127.0.0.1 only; connections, body size and stall
time are bounded. Standard library only (asyncio + urllib in a thread for the upstream call).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

FAULT_KINDS: tuple[str, ...] = ("429", "500", "drop", "timeout", "bad_json", "empty_choices", "no_logprobs",
                                "truncated")
MAX_BODY = 16 << 20
MAX_CONNECTIONS = 256
MAX_STALL_S = 30.0


@dataclass
class FaultPlan:
    """Which requests fail and how. `script[i]` (a kind or None) decides POST number i (0-based);
    after the script, each POST fails with probability `rate`, the kind drawn from `kinds`."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    script: Sequence[str | None] = ()
    seed: int = 0
    retry_after_s: float = 0.05
    stall_s: float = 2.0

    def __post_init__(self) -> None:
        unknown = (set(self.kinds) | {k for k in self.script if k}) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if not 0 <= self.rate <= 1:
            raise ValueError("rate must be in [0, 1]")
        self.stall_s = min(self.stall_s, MAX_STALL_S)


@dataclass
class ProxyStats:
    posts: int = 0
    upstream_posts: int = 0
    faults: Counter = field(default_factory=Counter)


class FaultProxy:
    """A background-thread asyncio server; use as a context manager."""

    def __init__(self, upstream_base_url: str, plan: FaultPlan | None = None):
        self.upstream = upstream_base_url.rstrip("/").removesuffix("/v1")
        self.plan = plan or FaultPlan()
        self.stats = ProxyStats()
        self._rng = random.Random(self.plan.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fault-proxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        # Upstream calls run in threads; the default pool (cores + 4) would cap the concurrency.
        loop.set_default_executor(ThreadPoolExecutor(64, thread_name_prefix="fault-proxy-upstream"))
        sem = asyncio.Semaphore(MAX_CONNECTIONS)

        async def handle(reader, writer):
            async with sem:
                try:
                    await self._connection(reader, writer)
                except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                        asyncio.CancelledError):  # cancelled: the proxy is shutting down
                    pass
                finally:
                    writer.close()

        self._server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        self._port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    # -- decisions ------------------------------------------------------------------------------

    def _decide(self, wants_logprobs: bool) -> str | None:
        with self._lock:
            number = self.stats.posts
            self.stats.posts += 1
            if number < len(self.plan.script):
                kind = self.plan.script[number]
            elif self.plan.rate and self._rng.random() < self.plan.rate:
                kind = self._rng.choice(self.plan.kinds)
            else:
                kind = None
            if kind == "no_logprobs" and not wants_logprobs:
                kind = "empty_choices"
            if kind is None:
                self.stats.upstream_posts += 1
            else:
                self.stats.faults[kind] += 1
            return kind

    # -- HTTP -----------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # HTTP/1.1 keep-alive: one request after another on the same connection
            request_line = await reader.readline()
            if not request_line:
                return
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length > MAX_BODY:
                await self._respond(writer, 413, b'{"error": {"message": "body too large"}}')
                return
            body = await reader.readexactly(length) if length else b""
            if method == "POST":
                try:
                    wants_logprobs = bool(json.loads(body or b"{}").get("logprobs"))
                except ValueError:
                    wants_logprobs = False
                kind = self._decide(wants_logprobs)
                if kind is not None:
                    if not await self._fault(kind, path, writer):
                        return
                    continue
            status, resp_headers, resp_body = await asyncio.to_thread(self._forward, method, path, headers, body)
            await self._respond(writer, status, resp_body, resp_headers)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes
                 ) -> tuple[int, dict[str, str], bytes]:
        keep = {k: v for k, v in headers.items() if k in ("content-type", "authorization", "accept")}
        req = urllib.request.Request(self.upstream + path, data=body if method == "POST" else None,
                                     headers=keep, method=method)
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                return resp.status, {"content-type": resp.headers.get("content-type", "application/json")}, \
                    resp.read()
        except urllib.error.HTTPError as exc:
            extra = {"content-type": exc.headers.get("content-type", "application/json")}
            if exc.headers.get("retry-after"):
                extra["retry-after"] = exc.headers["retry-after"]
            return exc.code, extra, exc.read()
        except OSError as exc:
            return 502, {"content-type": "application/json"}, json.dumps(
                {"error": {"message": f"fault proxy: upstream unreachable: {exc}"}}).encode()

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                       headers: dict[str, str] | None = None, *, declared_length: int | None = None) -> None:
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {declared_length or len(body)}"]
        merged = {"content-type": "application/json", **(headers or {})}
        head += [f"{k}: {v}" for k, v in merged.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def _fault(self, kind: str, path: str, writer: asyncio.StreamWriter) -> bool:
        """Send fault `kind`; True when the connection stays usable."""
        chat = path.endswith("/chat/completions")
        if kind == "429":
            await self._respond(writer, 429, b'{"error": {"message": "injected 429"}}',
                                {"retry-after": str(self.plan.retry_after_s)})
            return True
        if kind == "500":
            await self._respond(writer, 500, b'{"error": {"message": "injected 500"}}')
            return True
        if kind == "drop":
            return False
        if kind == "timeout":
            await asyncio.sleep(self.plan.stall_s)
            return False
        if kind == "bad_json":
            await self._respond(writer, 200, b'{"id": "fault", "object": "chat.completion", "choices": [{"ind')
            return True
        if kind == "truncated":
            body = json.dumps(_completion(chat, [_choice(chat, "never seen", None)])).encode()
            await self._respond(writer, 200, body[: len(body) // 2], declared_length=len(body))
            return False
        if kind == "empty_choices":
            await self._respond(writer, 200, json.dumps(_completion(chat, [])).encode())
            return True
        if kind == "no_logprobs":
            await self._respond(writer, 200, json.dumps(_completion(chat, [_choice(chat, "M", None)])).encode())
            return True
        raise AssertionError(kind)


def _choice(chat: bool, text: str, logprobs) -> dict:
    choice = {"index": 0, "finish_reason": "stop", "logprobs": logprobs}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return choice


def _completion(chat: bool, choices: list[dict]) -> dict:
    return {"id": "fault", "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
            "model": "fault", "choices": choices,
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
