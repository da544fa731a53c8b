"""Failed items are data, and never silent: counted per suite x checkpoint, and a run with more
failures than the user allows ends with exit code 3 (docs/reliability.md).

A failed item is a sample whose generation or judgment failed after the client's retries (its
`error` is set, its scores are None). Summaries leave it out of every mean and count it in
`n_failed`; nothing failed is cached, so rerunning the same command retries exactly those items.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evalbench.errors import EvalbenchError, InputError

EXIT_FAILED_ITEMS = 3


class TooManyFailures(EvalbenchError):
    """More items failed than `--max-failed` allows; the results are written all the same."""

    exit_code = EXIT_FAILED_ITEMS


@dataclass(frozen=True)
class FailureCount:
    suite: str
    checkpoint: str
    n_items: int
    n_failed: int

    @property
    def fraction(self) -> float:
        return self.n_failed / self.n_items if self.n_items else 0.0


def count_failures(rows: Iterable[Mapping[str, Any]]) -> list[FailureCount]:
    """Per suite x checkpoint totals (over seeds) from summary result rows (`n_samples`, `n_failed`)."""
    totals: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        key = (str(row.get("suite")), str(row.get("checkpoint")))
        acc = totals.setdefault(key, [0, 0])
        acc[0] += int(row.get("n_samples") or 0)
        acc[1] += int(row.get("n_failed") or 0)
    return [FailureCount(suite, ck, n, failed) for (suite, ck), (n, failed) in totals.items()]


def over_limit(counts: Iterable[FailureCount], max_failed: float = 0.0) -> list[FailureCount]:
    """The suite x checkpoint cells whose failed fraction exceeds `max_failed`."""
    return [c for c in counts if c.n_failed and c.fraction > max_failed]


def failure_lines(counts: Iterable[FailureCount]) -> list[str]:
    """One line per cell that has failures, for the end-of-run report."""
    return [f"  {c.suite:<10} {c.checkpoint:<16} {c.n_failed} of {c.n_items} items failed ({c.fraction:.1%})"
            for c in counts if c.n_failed]


def enforce_failure_policy(rows: Iterable[Mapping[str, Any]], max_failed: float = 0.0) -> list[FailureCount]:
    """Raise `TooManyFailures` (exit code 3) when a suite x checkpoint has too many failed items.

    Returns the counts when the run passes, so the caller can still report them.
    """
    counts = count_failures(rows)
    bad = over_limit(counts, max_failed)
    if bad:
        worst = max(bad, key=lambda c: c.fraction)
        raise TooManyFailures(
            f"{sum(c.n_failed for c in bad)} item(s) failed in {len(bad)} suite x checkpoint cell(s) (worst: "
            f"{worst.suite} {worst.checkpoint}, {worst.n_failed} of {worst.n_items}) above --max-failed "
            f"{max_failed:g}; results are written; rerun the same command to retry exactly the failed items")
    return counts


def parse_fraction(text: str) -> float:
    """`--max-failed` values: a fraction in [0, 1] ("0.01") or a percentage ("1%")."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InputError(f"expected a fraction in [0, 1] or a percentage like 1%, got {text!r}",
                         field="--max-failed") from None
    if not 0.0 <= value <= 1.0:
        raise InputError(f"expected a fraction in [0, 1] or a percentage like 1%, got {text!r}",
                         field="--max-failed")
    return value
