"""FakeBackend: deterministic scripted or echo answers, in process, for tests and dry runs.

    backend = FakeBackend("pol_a", responder=lambda body: "Rating: [[7]]")
    CachedBackend(backend, cache).generate(requests)

A responder gets the request as an OpenAI-style body (`model`, `messages` or `prompt`, `n`,
`temperature`, `max_tokens`, `seed`, `logprobs`), the same shape the HTTP stub
(`evalbench.serve.stub`) hands its responders, so one script serves both. It returns one text for
every choice or a list of texts (one per choice, cycled). `top_logprobs(body)` gives the first
token's alternatives when log-probs are asked for; `token_logprob` scores every other token.
Every request is recorded in `requests`, so a test can count what reached the "model".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from evalbench.generate.backend import answer_in_order, openai_request_body
from evalbench.types import Choice, Generation, GenRequest, TokenLogprob

Responder = Callable[[dict[str, Any]], "str | Sequence[str]"]


def echo(body: dict[str, Any]) -> str:
    """The default answer: `echo: ` + the last message (or the prompt), cut to 200 characters."""
    if "messages" in body:
        return "echo: " + str(body["messages"][-1].get("content", ""))[:200]
    return "echo: " + str(body.get("prompt", ""))[:200]


def request_body(model: str, req: GenRequest) -> dict[str, Any]:
    """The OpenAI-style body of `req` as the HTTP client would send it, as a scripted responder sees it."""
    return openai_request_body(model, req)


class FakeBackend:
    """A backend answering from a script; `who` names it so its answers never mix with a model's."""

    def __init__(self, model: str = "fake", *, responder: Responder = echo,
                 top_logprobs: Callable[[dict[str, Any]], list[tuple[str, float]]] | None = None,
                 token_logprob: float = -0.5, fail: Callable[[dict[str, Any]], str | None] | None = None,
                 log: list[dict[str, Any]] | None = None):
        self.model = model
        self.responder = responder
        self.top_logprobs = top_logprobs
        self.token_logprob = token_logprob
        # fail(body) -> an error message makes that request a failed Generation (None: answer it).
        self.fail = fail
        # Every request body, in order; several backends may share one log (`FakeModels`).
        self.requests: list[dict[str, Any]] = log if log is not None else []
        self._lock = threading.Lock()

    @property
    def who(self) -> dict[str, Any]:
        return {"engine": "fake", "model": self.model}

    @property
    def calls(self) -> int:
        return len(self.requests)

    def generate_uncached(self, requests: Sequence[GenRequest], *,
                          on_result: Callable[[int, Generation], None] | None = None,
                          desc: str | None = None) -> list[Generation]:
        return answer_in_order(requests, self._answer, on_result)

    def _answer(self, req: GenRequest) -> Generation:
        body = request_body(self.model, req)
        with self._lock:
            self.requests.append(body)
        error = self.fail(body) if self.fail is not None else None
        if error:
            return Generation(error=error)
        answer = self.responder(body)
        n = req.sampling.n
        texts = [answer] * n if isinstance(answer, str) else [answer[i % len(answer)] for i in range(n)]
        want_logprobs = bool(req.sampling.logprobs or req.echo)
        choices = tuple(Choice(text=t, finish_reason="stop",
                               logprobs=self._logprobs(body, t) if want_logprobs else None) for t in texts)
        return Generation(choices=choices, usage={"prompt_tokens": 1, "completion_tokens": len(texts[0].split())})

    def _logprobs(self, body: dict[str, Any], text: str) -> tuple[TokenLogprob, ...]:
        # Whitespace tokens: enough for sums, counts and entropy estimates in tests.
        tokens = text.split() or [text]
        top = tuple(self.top_logprobs(body)) if self.top_logprobs is not None else ()
        first_lp = top[0][1] if top else self.token_logprob
        first = TokenLogprob(top[0][0] if top else tokens[0], first_lp, top)
        return (first, *(TokenLogprob(t, self.token_logprob) for t in tokens[1:]))


class FakeModels:
    """Several scripted models with one responder and one request log: the in-process counterpart of
    `evalbench.serve.stub.StubServer` (same responder signature, `requests`, `request_count`).

        models = FakeModels(("pol_a", "judge"), responder=script)
        CachedBackend(models.backend("pol_a"), cache)

    A model that is not in `models` fails every request, as a server that does not serve it would.
    """

    def __init__(self, models: Sequence[str] = ("fake",), *, responder: Responder = echo,
                 top_logprobs: Callable[[dict[str, Any]], list[tuple[str, float]]] | None = None):
        self.models = tuple(models)
        self.responder = responder
        self.top_logprobs = top_logprobs
        self.requests: list[dict[str, Any]] = []

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def backend(self, model: str) -> FakeBackend:
        def unknown(body: dict[str, Any]) -> str | None:
            return None if model in self.models else f"model {model!r} is not served (serving: {', '.join(self.models)})"

        return FakeBackend(model, responder=self.responder, top_logprobs=self.top_logprobs, fail=unknown,
                           log=self.requests)
