"""Verdict formats: how a judge is asked for a verdict (decoding) and how its reply is read (parsing).

A format pairs the decoding a verdict needs with the pure parser of `evalbench.judge.parsers` or
`evalbench.judge.logprob`, so a suite names the format and never builds judge sampling itself:

    bracket_rating  FastChat single grading: `[[N]]`, N in 1-10; temperature 0, up to 2048 tokens.
    bracket_choice  FastChat pairwise: `[[A]]` / `[[B]]` / `[[C]]` (tie); same decoding.
    logprob         AlpacaEval 2's weighted judge: one token, top-5 log-probs, preference
                    `2 - P(m) / (P(m) + P(M))` (see `evalbench.judge.logprob`).

Pairwise formats return a preference in *presented* order, in [1, 2] (1 = the first-shown output
wins, 1.5 = tie); `Judge.compare` maps it to the candidate. With `constrained=True` (local vLLM
judges) the output is restricted with vLLM structured outputs so every verdict parses; the
SamplingSpecs below are part of every judge cache key, so they must not change for a given judge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from evalbench.config import SamplingSpec
from evalbench.judge.logprob import FIRST_LABEL, SECOND_LABEL, parse_logprob_preference
from evalbench.judge.parsers import PARSERS, ParseResult
from evalbench.registry import Registry
from evalbench.types import Generation

__all__ = [
    "JUDGE_TEMPERATURE", "JUDGE_MAX_TOKENS", "JUDGE_TOP_LOGPROBS", "EXPLANATION_MAX_CHARS",
    "RATING_OUTPUT_REGEX", "CHOICE_OUTPUT_REGEX", "VerdictFormat", "VERDICT_FORMATS", "output_regex",
    "text_sampling", "logprob_sampling", "parse_logprob_generation",
]

JUDGE_TEMPERATURE = 0.0
JUDGE_MAX_TOKENS = 2048  # FastChat llm_judge's judge budget
JUDGE_TOP_LOGPROBS = 5   # alpaca_eval's weighted judge reads the top-5 candidates of one token

# Constrained decoding for local judges (vLLM `structured_outputs.regex`): a bracket-free
# explanation, then the verdict, so the output still parses with the FastChat rules and keeps
# the short explanation the prompts ask for. The bound keeps the explanation (about 400
# tokens) well inside JUDGE_MAX_TOKENS, so a constrained judge cannot run out of tokens before
# the verdict. Ratings are whole numbers 1-10, as the prompts' example "[[5]]".
EXPLANATION_MAX_CHARS = 1500
RATING_OUTPUT_REGEX = rf"[^\[\]]{{0,{EXPLANATION_MAX_CHARS}}}\[\[(10|[1-9])\]\]"
CHOICE_OUTPUT_REGEX = rf"[^\[\]]{{0,{EXPLANATION_MAX_CHARS}}}\[\[[ABC]\]\]"

# "[[10]]" is 6 characters: at most 6 tokens with any byte-level tokenizer.
_VERDICT_MAX_TOKENS = 6


def output_regex(kind: Literal["single", "pair"], max_tokens: int = JUDGE_MAX_TOKENS) -> str:
    """The constrained-output regex for a judge allowed `max_tokens` new tokens.

    With the default budget this is RATING_OUTPUT_REGEX / CHOICE_OUTPUT_REGEX. A smaller budget
    (small local judges with a short context) shortens the explanation to `max_tokens - 6`
    characters, so the verdict always fits: a token holds at least one byte, hence at most one
    ASCII character. (Text with multi-byte characters may need more tokens than characters.)
    """
    chars = max(0, min(EXPLANATION_MAX_CHARS, max_tokens - _VERDICT_MAX_TOKENS))
    if chars == EXPLANATION_MAX_CHARS:
        return RATING_OUTPUT_REGEX if kind == "single" else CHOICE_OUTPUT_REGEX
    verdict = r"\[\[(10|[1-9])\]\]" if kind == "single" else r"\[\[[ABC]\]\]"
    return rf"[^\[\]]{{0,{chars}}}" + verdict


def text_sampling(kind: Literal["single", "pair"], *, constrained: bool = False,
                  max_tokens: int = JUDGE_MAX_TOKENS) -> SamplingSpec:
    """FastChat's judge decoding (temperature 0, 2048 tokens), optionally regex-constrained."""
    regex = output_regex(kind, max_tokens) if constrained else None
    return SamplingSpec(temperature=JUDGE_TEMPERATURE, max_tokens=max_tokens, regex=regex)


def logprob_sampling(*, constrained: bool = False) -> SamplingSpec:
    """One verdict token at temperature 0 with the top-5 log-probs; optionally restricted to m / M.

    alpaca_eval samples this token at temperature 1 ("should make no effect" since only the
    log-probs are read); we decode greedily so a cached verdict is also the reproducible one.
    """
    return SamplingSpec(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=JUDGE_TOP_LOGPROBS,
                        choice=(FIRST_LABEL, SECOND_LABEL) if constrained else None)


def parse_logprob_generation(gen: Generation) -> ParseResult:
    """Presented-order preference in [1, 2] from the top log-probs of the reply's first token."""
    choice = gen.choices[0]
    if not choice.logprobs:
        return ParseResult(None, f"the judge returned no log-probs (reply {choice.text[:40]!r}); the endpoint "
                                 f"must support logprobs with top_logprobs={JUDGE_TOP_LOGPROBS}")
    top = choice.logprobs[0].top
    if not top:
        return ParseResult(None, f"the judge returned no top_logprobs for its first token "
                                 f"(reply {choice.text[:40]!r})")
    parsed = parse_logprob_preference(list(top))
    if parsed.preference is None:
        return ParseResult(None, f"unparseable verdict: {parsed.error}")
    return ParseResult(parsed.preference)


_CHOICE_TO_PREFERENCE = {"A": 1.0, "B": 2.0, "tie": 1.5}


def _parse_choice(gen: Generation) -> ParseResult:
    parsed = PARSERS.get("bracket_choice")(gen.text)
    if parsed.value is None:
        return parsed
    return ParseResult(_CHOICE_TO_PREFERENCE[str(parsed.value)])


def _parse_rating(gen: Generation) -> ParseResult:
    return PARSERS.get("bracket_rating")(gen.text)


@dataclass(frozen=True)
class VerdictFormat:
    """How one kind of verdict is asked for (`sampling`) and read (`parse`, on a successful reply).

    `parse` returns a rating for rating formats and a presented-order preference in [1, 2] for
    pairwise formats; a failure is `ParseResult(None, reason)`.
    """

    name: str
    pairwise: bool
    sampling: Callable[[bool, int], SamplingSpec]  # (constrained, max_tokens) -> decoding
    parse: Callable[[Generation], ParseResult]


VERDICT_FORMATS: Registry[VerdictFormat] = Registry("verdict format")
for _fmt in (
    VerdictFormat("bracket_rating", False, lambda c, n: text_sampling("single", constrained=c, max_tokens=n),
                  _parse_rating),
    VerdictFormat("bracket_choice", True, lambda c, n: text_sampling("pair", constrained=c, max_tokens=n),
                  _parse_choice),
    # One token whatever the budget: the verdict is read from its log-probs.
    VerdictFormat("logprob", True, lambda c, n: logprob_sampling(constrained=c), parse_logprob_generation),
):
    VERDICT_FORMATS.add(_fmt.name, _fmt)
