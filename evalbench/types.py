"""Records that flow between stages. Frozen, JSON-serialisable, no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evalbench.config import SamplingSpec

Message = dict[str, str]  # {"role": ..., "content": ...}


@dataclass(frozen=True)
class GenRequest:
    """One generation request: chat `messages` or a raw completion `prompt`, with its sampling."""

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    # Completions only: return prompt-token log-probs (`echo=True`), for log-likelihood work.
    echo: bool = False
    # (suite, sample_id, turn) the request belongs to; not part of its identity (cache keys,
    # equality). Set by `generate_items`; a replay backend serves saved outputs by it.
    origin: tuple[str, str, int] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("GenRequest needs exactly one of messages or prompt")
        if self.messages is not None and not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))

    @property
    def kind(self) -> str:
        return "chat" if self.messages is not None else "completion"

    def what(self) -> dict[str, Any]:
        """The content part of the cache key."""
        if self.messages is not None:
            return {"kind": "chat", "messages": [dict(m) for m in self.messages]}
        return {"kind": "completion", "prompt": self.prompt, "echo": self.echo}


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()  # (token, logprob), best first


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None

    def sum_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        vals = [t.logprob for t in self.logprobs if t.logprob is not None]
        return float(sum(vals)) if vals else None


@dataclass(frozen=True)
class Generation:
    """The answer to one GenRequest. A failure is `choices == ()` plus `error`, never a sentinel."""

    choices: tuple[Choice, ...] = ()
    error: str | None = None
    cached: bool = False
    usage: dict[str, int] | None = None

    @property
    def text(self) -> str:
        if not self.choices:
            raise ValueError(f"generation failed: {self.error}")
        return self.choices[0].text

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.choices)

    def to_json(self) -> dict[str, Any]:
        return {
            "choices": [
                {"text": c.text, "finish_reason": c.finish_reason,
                 "logprobs": None if c.logprobs is None else
                 [[t.token, t.logprob, [list(x) for x in t.top]] for t in c.logprobs]}
                for c in self.choices
            ],
            "error": self.error,
            "usage": self.usage,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, cached: bool = False) -> Generation:
        choices = []
        for c in data["choices"]:
            lps = c.get("logprobs")
            choices.append(Choice(
                text=c["text"], finish_reason=c.get("finish_reason"),
                logprobs=None if lps is None else tuple(
                    TokenLogprob(tok, lp, tuple((str(a), float(b)) for a, b in top)) for tok, lp, top in lps)))
        return cls(choices=tuple(choices), error=data.get("error"), cached=cached, usage=data.get("usage"))
