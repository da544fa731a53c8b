"""Preference from a pairwise judge's first-token log-probs (AlpacaEval 2's weighted judge).

The `weighted_alpaca_eval_gpt4_turbo` judge is shown two outputs labelled `m` (presented first)
and `M` (presented second) and answers with one token; temperature and sampling do not matter
because the verdict is read from the top-5 log-probs of that token (Dubois et al. 2024;
alpaca_eval's `logprob_parser` with numerator `m` and denominator `[m, M]`, `is_binarize: false`):

    preference = 2 - P(m) / (P(m) + P(M))

so 1 means the first-presented output wins and 2 the second; a label absent from the top
log-probs has probability 0. A verdict holding neither label is a failure, returned as
`preference=None` with the reason, never a sentinel (alpaca_eval returns NaN there).

Orders: alpaca_eval presents (reference, candidate) unless it "switched" the outputs for that
instruction; `to_candidate_preference` maps a presented-order preference back to
"candidate vs reference" (2 = the candidate wins) from that stored flag.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "FIRST_LABEL",
    "SECOND_LABEL",
    "LogprobPreference",
    "parse_logprob_preference",
    "parse_completion_logprobs",
    "to_candidate_preference",
]

FIRST_LABEL = "m"   # names the output presented first
SECOND_LABEL = "M"  # names the output presented second


class LogprobPreference(NamedTuple):
    """A parsed verdict: `preference` in [1, 2] (presented order), or None with an `error`."""

    preference: float | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.preference is not None


def _entries(top_logprobs: Any) -> list[tuple[str, float]] | str:
    """Normalise the accepted shapes to (token, logprob) pairs, or return an error message.

    Accepted: OpenAI chat `[{"token": ..., "logprob": ...}, ...]`, `[(token, logprob), ...]`
    (evalbench.types.TokenLogprob.top) and `{token: logprob}` (OpenAI/vLLM completions).
    """
    if isinstance(top_logprobs, Mapping):
        items = list(top_logprobs.items())
    elif isinstance(top_logprobs, Sequence) and not isinstance(top_logprobs, (str, bytes)):
        items = []
        for i, entry in enumerate(top_logprobs):
            if isinstance(entry, Mapping):
                if "token" not in entry or "logprob" not in entry:
                    return f"top_logprobs[{i}] lacks 'token' or 'logprob'"
                items.append((entry["token"], entry["logprob"]))
            elif isinstance(entry, Sequence) and not isinstance(entry, (str, bytes)) and len(entry) == 2:
                items.append((entry[0], entry[1]))
            else:
                return f"top_logprobs[{i}] is neither a {{token, logprob}} object nor a (token, logprob) pair"
    else:
        return f"top_logprobs must be a list or a mapping, got {type(top_logprobs).__name__}"
    out: list[tuple[str, float]] = []
    for token, logprob in items:
        if not isinstance(token, str):
            return f"token {token!r} is not a string"
        if isinstance(logprob, bool) or not isinstance(logprob, (int, float)) or math.isnan(logprob) \
                or logprob == math.inf:
            return f"logprob of {token!r} is not a finite number or -inf: {logprob!r}"
        out.append((token, float(logprob)))
    return out


def _logsumexp(values: list[float]) -> float:
    finite = [v for v in values if v != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log(sum(math.exp(v - top) for v in finite))


def parse_logprob_preference(top_logprobs: Any, *, first_label: str = FIRST_LABEL,
                             second_label: str = SECOND_LABEL, binarize: bool = False) -> LogprobPreference:
    """Preference in [1, 2] from the top log-probs of the judge's first output token.

    Args:
        top_logprobs: the candidates for token 1 (see `_entries` for the accepted shapes).
        first_label, second_label: tokens naming the first- and second-presented output. Tokens
            are matched exactly (case-sensitive, no whitespace stripping), as alpaca_eval does.
        binarize: return 1.0 when the first label is strictly more likely than the second, else
            2.0 (alpaca_eval's `is_binarize=True`); by default the weighted preference.

    Returns:
        LogprobPreference(2 - P(first) / (P(first) + P(second)), None); the probability of an
        absent label is 0. If neither label is among the candidates, or the input is malformed,
        LogprobPreference(None, reason). When several candidates decode to the same label (possible
        with byte-level vocabularies), their probabilities are added; alpaca_eval keeps the last.
    """
    entries = _entries(top_logprobs)
    if isinstance(entries, str):
        return LogprobPreference(None, entries)
    first = [lp for tok, lp in entries if tok == first_label]
    second = [lp for tok, lp in entries if tok == second_label]
    if not first and not second:
        seen = ", ".join(repr(tok) for tok, _ in entries[:10]) or "nothing"
        return LogprobPreference(
            None, f"neither {first_label!r} nor {second_label!r} among the top log-probs (got {seen})")
    lp_first, lp_second = _logsumexp(first), _logsumexp(second)
    if lp_first == -math.inf and lp_second == -math.inf:
        return LogprobPreference(None, f"both {first_label!r} and {second_label!r} have probability 0")
    if binarize:
        return LogprobPreference(1.0 if lp_first > lp_second else 2.0)
    # P(first) / (P(first) + P(second)) computed in log space: exact for very unequal log-probs.
    p_first = math.exp(lp_first - _logsumexp([lp_first, lp_second]))
    return LogprobPreference(2.0 - p_first)


def parse_completion_logprobs(completion: Mapping[str, Any], *, position: int = 0,
                              **kwargs: Any) -> LogprobPreference:
    """Parse an OpenAI chat-completion choice (`{"logprobs": {"content": [...]}}`), as stored in
    alpaca_eval's `raw_completion`, reading the top log-probs of output token `position`."""
    try:
        content = completion["logprobs"]["content"]
        top = content[position]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        return LogprobPreference(None, f"no top_logprobs for output token {position} in the completion")
    if top is None:
        return LogprobPreference(None, f"no top_logprobs for output token {position} in the completion")
    return parse_logprob_preference(top, **kwargs)


def to_candidate_preference(preference: float | LogprobPreference | None, *, candidate_first: bool
                            ) -> float | LogprobPreference | None:
    """Map a presented-order preference to "candidate vs reference" (2 = the candidate wins).

    Args:
        preference: a preference in [1, 2] in presented order (1 = the first-presented output wins),
            or a LogprobPreference, or None (a failure passes through unchanged).
        candidate_first: whether the candidate was presented first; this is alpaca_eval's
            `is_switched_outputs` when output_1 is the reference.

    Returns:
        3 - preference when the candidate was presented first, else the preference unchanged; the
        same type as given.
    """
    if isinstance(preference, LogprobPreference):
        if preference.preference is None:
            return preference
        return preference._replace(
            preference=to_candidate_preference(preference.preference, candidate_first=candidate_first))
    if preference is None:
        return None
    if not 1.0 <= preference <= 2.0:
        raise ValueError(f"preference must be in [1, 2], got {preference!r}")
    return 3.0 - preference if candidate_first else float(preference)
