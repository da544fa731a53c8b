"""Failure policy (exit code 3, --max-failed) and option checks at the edge."""

from __future__ import annotations

import argparse

import pytest

from evalbench.cli.argtypes import fraction, positive_float, positive_int
from evalbench.errors import InputError
from evalbench.failures import (
    EXIT_FAILED_ITEMS,
    TooManyFailures,
    count_failures,
    enforce_failure_policy,
    failure_lines,
    parse_fraction,
)


def _row(suite, ck, seed, n, failed):
    return {"suite": suite, "checkpoint": ck, "seed": seed, "n_samples": n, "n_failed": failed}


ROWS = [_row("alpaca", "base", 0, 100, 0), _row("alpaca", "dpo", 0, 100, 1), _row("alpaca", "dpo", 1, 100, 3)]


def test_failures_are_counted_per_suite_and_checkpoint_over_seeds():
    counts = {(c.suite, c.checkpoint): (c.n_items, c.n_failed) for c in count_failures(ROWS)}
    assert counts == {("alpaca", "base"): (100, 0), ("alpaca", "dpo"): (200, 4)}
    assert failure_lines(count_failures(ROWS)) == ["  alpaca     dpo              4 of 200 items failed (2.0%)"]


def test_any_failure_exits_3_unless_the_fraction_is_allowed():
    with pytest.raises(TooManyFailures, match=r"4 item\(s\) failed .*dpo, 4 of 200.*rerun the same command") as err:
        enforce_failure_policy(ROWS)
    assert err.value.exit_code == EXIT_FAILED_ITEMS == 3
    with pytest.raises(TooManyFailures):
        enforce_failure_policy(ROWS, max_failed=0.01)
    assert len(enforce_failure_policy(ROWS, max_failed=0.02)) == 2
    assert enforce_failure_policy([_row("alpaca", "base", 0, 0, 0)]) is not None  # empty cell: nothing failed


def test_fraction_parsing():
    assert parse_fraction("0.01") == 0.01 and parse_fraction("5%") == 0.05 and parse_fraction("1") == 1.0
    for bad in ("-0.1", "1.5", "abc", "200%"):
        with pytest.raises(InputError, match="--max-failed"):
            parse_fraction(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="fraction"):
        fraction("2")


@pytest.mark.parametrize("func, bad", [(positive_int, "0"), (positive_int, "-3"), (positive_int, "x"),
                                       (positive_float, "0"), (positive_float, "-1"), (positive_float, "inf"),
                                       (positive_float, "nan")])
def test_option_values_are_checked_at_the_edge(func, bad):
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        func(bad)
    assert positive_int("3") == 3 and positive_float("0.5") == 0.5


def test_bad_option_values_stop_the_client_with_one_line():
    from evalbench.generate.client import OpenAICompatibleBackend

    for kwargs, field in (({"max_concurrency": 0}, "concurrency"), ({"max_concurrency": -3}, "concurrency"),
                          ({"timeout_s": 0}, "timeout"), ({"max_retries": -1}, "retries")):
        with pytest.raises(InputError, match=field):
            OpenAICompatibleBackend("http://127.0.0.1:1/v1", "m", api_key="x", **kwargs)
