"""A local OpenAI-compatible stub server, for what cannot run here (GPT-4, a slow remote judge).

Deterministic answers from a `responder(request_json) -> text` function (or a list of texts, one
per choice), optional top-logprobs,
injected latency and faults (HTTP 429 with Retry-After, 500, dropped connections) on a schedule.
Binds to 127.0.0.1 only. Used by tests and `--judge stub` dry runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def echo_responder(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "echo: " + str(body["messages"][-1].get("content", ""))[:200]
    return "echo: " + str(body.get("prompt", ""))[:200]


@dataclass
class Fault:
    """Answer request number `at` (1-based, counting every request) with `status` (0 = drop)."""

    at: int
    status: int = 500
    retry_after: float | None = None


@dataclass
class StubState:
    responder: Callable[[dict[str, Any]], str] = echo_responder
    # token -> logprob for the first generated token; None: no logprobs in the answer.
    top_logprobs: Callable[[dict[str, Any]], list[tuple[str, float]]] | None = None
    latency_s: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Keep-alive, as vLLM's and OpenAI's servers do: under HTTP/1.0 every request would pay a new
    # TCP connection and a new server thread, and a client benchmark would measure that instead.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK stall between them

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in self.server.models]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with state.lock:
            state.requests.append(body)
            number = len(state.requests)
            fault = next((f for f in state.faults if f.at == number), None)
        if state.latency_s:
            time.sleep(state.latency_s)
        if fault is not None:
            if fault.status == 0:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._send(fault.status, {"error": {"message": f"injected fault {fault.status}"}}, headers)
            return
        if body.get("model") not in self.server.models:
            self._send(404, {"error": {"message": f"model {body.get('model')!r} does not exist"}})
            return
        n = int(body.get("n") or 1)
        answer = state.responder(body)
        # A responder may script one text per choice (a list, cycled); a string answers every choice.
        texts = [answer] * n if isinstance(answer, str) else [answer[i % len(answer)] for i in range(n)]
        chat = self.path.endswith("/chat/completions")
        choices = []
        for i in range(n):
            text = texts[i]
            choice: dict[str, Any] = {"index": i, "finish_reason": "stop"}
            logprobs = None
            if state.top_logprobs is not None and (body.get("logprobs") or body.get("top_logprobs")):
                top = state.top_logprobs(body)
                first = top[0] if top else (text[:1], 0.0)
                if chat:
                    logprobs = {"content": [{"token": first[0], "logprob": first[1], "bytes": None,
                                             "top_logprobs": [{"token": t, "logprob": lp, "bytes": None}
                                                              for t, lp in top]}]}
                else:
                    logprobs = {"tokens": [first[0]], "token_logprobs": [first[1]],
                                "top_logprobs": [dict(top)], "text_offset": [0]}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choice["logprobs"] = logprobs
            choices.append(choice)
        self._send(200, {"id": f"stub-{number}", "object": "chat.completion" if chat else "text_completion",
                         "created": int(time.time()), "model": body.get("model"), "choices": choices,
                         "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()),
                                   "total_tokens": 1 + len(text.split())}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: at 32+ concurrent clients the kernel drops connection
    # attempts and each one waits a ~1 s SYN retransmit, so the stub, not the client, set the pace.
    request_queue_size = 1024

    def __init__(self, addr, state: StubState, models: tuple[str, ...]):
        super().__init__(addr, _Handler)
        self.state = state
        self.models = models


class StubServer:
    """`with StubServer(models=("judge",)) as stub: stub.base_url` ... `stub.state.requests`."""

    def __init__(self, models: tuple[str, ...] = ("stub",), state: StubState | None = None):
        self.state = state or StubState()
        self._server = _Server(("127.0.0.1", 0), self.state, tuple(models))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.state.requests)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
