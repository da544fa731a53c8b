"""argparse `type=` functions that check option values at the edge, with one-line errors.

`--concurrency 0` used to hang and `--concurrency -3` to crash deep in asyncio (issue 15); a bad
value now stops argparse with `argument --concurrency: expected an integer >= 1, got '0'`.
"""

from __future__ import annotations

import argparse


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1  # reported below, like an out-of-range value
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (concurrency, limits, counts)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (retries)."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (timeouts in seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A fraction in [0, 1] or a percentage ("1%"), e.g. `--max-failed`."""
    from evalbench.errors import InputError
    from evalbench.failures import parse_fraction

    try:
        return parse_fraction(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1] or a percentage like 1%, "
                                         f"got {text!r}") from None
