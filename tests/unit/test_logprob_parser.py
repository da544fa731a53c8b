"""The weighted judge's log-prob parser (evalbench.judge.logprob)."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from evalbench.judge.logprob import (LogprobPreference, parse_completion_logprobs, parse_logprob_preference,
                                     to_candidate_preference)


def _top(**logprobs):
    return [{"token": t, "logprob": lp} for t, lp in logprobs.items()]


def test_weighted_preference_hand_computed():
    # P(m) = .3, P(M) = .1 -> P(m) / (P(m) + P(M)) = .75 -> preference 2 - .75 = 1.25.
    top = [{"token": "m", "logprob": math.log(0.3)}, {"token": "M", "logprob": math.log(0.1)},
           {"token": "The", "logprob": math.log(0.05)}]
    r = parse_logprob_preference(top)
    assert r.preference == pytest.approx(1.25) and r.error is None and r.ok


@pytest.mark.parametrize("top, expected", [
    (_top(m=-0.01, The=-5.0), 1.0),           # only the first label: it has all the mass
    (_top(M=-3.0, Both=-1.0), 2.0),           # only the second label
    (_top(m=-0.6931, M=-0.6931), 1.5),         # equal
    (_top(m=-math.inf, M=-1.0), 2.0),          # -inf is probability 0
    (_top(m=-1000.0, M=0.0), 2.0),             # extreme gap: no overflow
])
def test_weighted_preference_edges(top, expected):
    assert parse_logprob_preference(top).preference == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("top", [[], _top(The=-0.1, Based=-2.0), _top(**{" m": -0.1, "MM": -1.0, "A": -2.0})])
def test_no_label_is_a_failure_with_reason(top):
    r = parse_logprob_preference(top)
    assert r.preference is None and not r.ok
    assert "neither 'm' nor 'M'" in r.error


def test_labels_are_case_sensitive_and_exact():
    # ' M' (leading space) and 'm ' are other tokens; only the exact 'm' counts -> preference 1.
    r = parse_logprob_preference(_top(**{" M": -0.01, "m": -4.0, "M ": -0.5}))
    assert r.preference == pytest.approx(1.0)


def test_both_labels_with_zero_probability_fail():
    r = parse_logprob_preference(_top(m=-math.inf, M=-math.inf, The=-0.1))
    assert r.preference is None and "probability 0" in r.error


@pytest.mark.parametrize("top, fragment", [
    ([{"token": "m"}], "lacks"),
    ([{"token": "m", "logprob": float("nan")}], "not a finite number"),
    ([{"token": "m", "logprob": "x"}], "not a finite number"),
    ([{"token": 3, "logprob": -1.0}], "not a string"),
    ("m", "must be a list"),
    (None, "must be a list"),
    ([42], "neither a {token, logprob} object"),
])
def test_malformed_input_is_a_failure_not_an_exception(top, fragment):
    r = parse_logprob_preference(top)
    assert r.preference is None and fragment in r.error


def test_accepted_shapes_agree():
    lp_m, lp_M = math.log(0.2), math.log(0.6)
    expected = 2 - 0.2 / 0.8
    assert parse_logprob_preference(_top(m=lp_m, M=lp_M)).preference == pytest.approx(expected)
    assert parse_logprob_preference([("M", lp_M), ("m", lp_m)]).preference == pytest.approx(expected)
    assert parse_logprob_preference({"m": lp_m, "M": lp_M, "x": -9.0}).preference == pytest.approx(expected)


def test_duplicate_labels_add_their_probabilities():
    # Two candidates decode to 'm' (P .2 each) and 'M' has .4: P(m) share = .4 / .8 -> 1.5.
    top = [("m", math.log(0.2)), ("m", math.log(0.2)), ("M", math.log(0.4))]
    assert parse_logprob_preference(top).preference == pytest.approx(1.5)


def test_binarize_follows_alpaca_eval():
    assert parse_logprob_preference(_top(m=-0.1, M=-2.0), binarize=True).preference == 1.0
    assert parse_logprob_preference(_top(m=-2.0, M=-0.1), binarize=True).preference == 2.0
    # alpaca_eval: the first label must be strictly more likely, so a tie goes to the second.
    assert parse_logprob_preference(_top(m=-1.0, M=-1.0), binarize=True).preference == 2.0


def test_custom_labels():
    r = parse_logprob_preference(_top(A=math.log(0.9), B=math.log(0.1)), first_label="A", second_label="B")
    assert r.preference == pytest.approx(1.1)


def test_parse_completion_structure():
    first = {"token": "M", "logprob": -0.1, "top_logprobs": _top(M=-0.1, m=-2.4)}
    completion = {"logprobs": {"content": [first]}}
    assert parse_completion_logprobs(completion).preference == pytest.approx(
        2 - math.exp(-2.4) / (math.exp(-2.4) + math.exp(-0.1)))
    for broken in ({}, {"logprobs": None}, {"logprobs": {"content": []}},
                   {"logprobs": {"content": [{"token": "M", "top_logprobs": None}]}}):
        r = parse_completion_logprobs(broken)
        assert r.preference is None and "no top_logprobs" in r.error


def test_to_candidate_preference():
    assert to_candidate_preference(1.2, candidate_first=False) == pytest.approx(1.2)
    assert to_candidate_preference(1.2, candidate_first=True) == pytest.approx(1.8)
    assert to_candidate_preference(None, candidate_first=True) is None
    failed = LogprobPreference(None, "neither")
    assert to_candidate_preference(failed, candidate_first=True) is failed
    swapped = to_candidate_preference(LogprobPreference(1.0), candidate_first=True)
    assert isinstance(swapped, LogprobPreference) and swapped.preference == 2.0
    with pytest.raises(ValueError):
        to_candidate_preference(0.5, candidate_first=True)


def test_matches_alpaca_eval_logprob_parser_on_random_inputs():
    parsers = pytest.importorskip("alpaca_eval.completion_parsers")
    rng = np.random.default_rng(0)
    for _ in range(200):
        tokens = list(rng.choice(["m", "M", "The", "Based", "\n", "A"], size=5, replace=False))
        lps = sorted(rng.uniform(-20, 0, size=5), reverse=True)
        top = [{"token": t, "logprob": float(lp)} for t, lp in zip(tokens, lps)]
        ours = parse_logprob_preference(top)
        theirs = parsers.logprob_parser({"logprobs": {"content": [{"top_logprobs": top}]}},
                                        numerator_token="m", denominator_tokens=["m", "M"],
                                        is_binarize=False)[0]
        if math.isnan(theirs):
            assert ours.preference is None
        else:
            assert ours.preference == pytest.approx(theirs, abs=1e-12)


def test_published_annotations_are_reproduced_up_to_order(data_dir):
    """Every published judgment with a stored raw completion parses to its preference, either as is
    or switched (3 - p): alpaca_eval randomises the presentation order per instruction and stores the
    completion in presented order but the preference in (reference, model) order."""
    path = data_dir / "alpaca_eval/results/claude-2/weighted_alpaca_eval_gpt4_turbo/annotations.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = json.load(fh)
    checked = switched = 0
    for row in rows:
        if not isinstance(row.get("raw_completion"), dict):
            continue
        parsed = parse_completion_logprobs(row["raw_completion"])
        assert parsed.ok, parsed.error
        p = row["preference"]
        as_is = to_candidate_preference(parsed.preference, candidate_first=False)
        flipped = to_candidate_preference(parsed.preference, candidate_first=True)
        assert p == pytest.approx(as_is, abs=1e-8) or p == pytest.approx(flipped, abs=1e-8)
        checked += 1
        switched += abs(p - flipped) < abs(p - as_is)
    assert checked > 700
    assert 0.3 < switched / checked < 0.7  # the order is randomised, roughly half switched
