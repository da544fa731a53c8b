"""Pure judge-output parsers: judge text in, `ParseResult(value | None, error | None)` out.

A parse failure is data (`value=None` plus a reason), never a sentinel such as FastChat's −1 or
`"error"` (FastChat #2074). Parsers are looked up by name in `PARSERS`:

    >>> PARSERS.get("bracket_rating")("Good answer. Rating: [[8]]")
    ParseResult(value=8.0, error=None)

Behaviour follows FastChat's llm_judge (`fastchat/llm_judge/common.py`, `run_judge_single` and
`run_judge_pair`), re-implemented here; the deliberate differences are listed on each parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from evalbench.registry import Registry

__all__ = ["ParseResult", "Parser", "PARSERS", "bracket_rating", "bracket_choice",
           "RATING_MIN", "RATING_MAX", "CHOICES"]


class ParseResult(NamedTuple):
    """What a parser found: `value` (None on failure) and `error` (None on success)."""

    value: float | str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


Parser = Callable[[str], ParseResult]

PARSERS: Registry[Parser] = Registry("judge parser")

RATING_MIN = 1.0
RATING_MAX = 10.0

# FastChat's one_score_pattern / one_score_pattern_backup: an unsigned integer or decimal in
# double brackets, else in single brackets. Written from its documented behaviour, not copied.
_DOUBLE_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_SINGLE_RATING = re.compile(r"\[(\d+\.?\d*)\]")


@PARSERS.register("bracket_rating")
def bracket_rating(text: str) -> ParseResult:
    """A 1–10 rating written as `[[N]]` (backup `[N]`), e.g. `Rating: [[8.5]]`.

    Contract, matching FastChat's `run_judge_single`:
      * the first `[[N]]` in the text wins (FastChat uses `re.search`), so with two ratings,
        `"[[3]] ... [[9]]"` gives 3; only when no `[[N]]` exists is the first `[N]` used;
      * N is an unsigned integer or decimal (`8`, `8.5`, `8.`); `[[ 8 ]]`, `[[8/10]]` or `[[-1]]`
        do not match.
    Difference from FastChat: a rating outside 1–10 (e.g. `[[0]]`, `[[15]]`) is a failure with
    a reason, where FastChat would store and average it.

    Returns:
        `ParseResult(float_rating, None)` or `ParseResult(None, reason)`.
    """
    if not isinstance(text, str):
        return ParseResult(None, f"judge output is {type(text).__name__}, not text")
    match = _DOUBLE_RATING.search(text) or _SINGLE_RATING.search(text)
    if match is None:
        return ParseResult(None, "no [[rating]] (or backup [rating]) found in the judge output")
    raw = match.group(1)
    rating = float(raw)
    if not RATING_MIN <= rating <= RATING_MAX:
        return ParseResult(None, f"rating {raw} is outside {RATING_MIN:g}-{RATING_MAX:g}")
    return ParseResult(rating)


# Verdict tokens of FastChat's pair-v2 / pair-math-v1 prompts, in the order FastChat checks them.
CHOICES: tuple[tuple[str, str], ...] = (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie"))


@PARSERS.register("bracket_choice")
def bracket_choice(text: str) -> ParseResult:
    """A pairwise verdict `[[A]]` (A better), `[[B]]` (B better) or `[[C]]` (tie).

    Contract, matching FastChat's `run_judge_pair` for `output_format == "[[A]]"`: the text is
    tested for the substring `[[A]]`, then `[[B]]`, then `[[C]]`, and the first one present
    decides, wherever it sits in the text. So a judgment containing both `[[B]]` and `[[A]]`
    gives "A" (a precedence, not the first occurrence), kept for parity with FastChat's
    published numbers. No verdict at all is a failure (FastChat's "error").

    Returns:
        `ParseResult("A" | "B" | "tie", None)` or `ParseResult(None, reason)`.
    """
    if not isinstance(text, str):
        return ParseResult(None, f"judge output is {type(text).__name__}, not text")
    for token, verdict in CHOICES:
        if token in text:
            return ParseResult(verdict)
    return ParseResult(None, "no [[A]], [[B]] or [[C]] verdict found in the judge output")
