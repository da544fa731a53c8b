"""Judge-output parsers: FastChat's [[rating]] / [[A]] rules, with failures as None + reason."""

from __future__ import annotations

import pytest

from evalbench.judge.parsers import PARSERS, ParseResult, bracket_choice, bracket_rating
from evalbench.registry import UnknownName


@pytest.mark.parametrize("text, expected", [
    ("The answer is helpful. Rating: [[8.5]]", 8.5),
    ("Perfect.\n\nRating: [[10]]", 10.0),
    ("Rating: [[1]]", 1.0),
    ("Rating: [[7.]]", 7.0),  # FastChat's \d+\.?\d* accepts a trailing dot
    ("Backup format only: Rating: [8]", 8.0),  # single brackets are FastChat's backup
])
def test_bracket_rating_accepts(text, expected):
    result = bracket_rating(text)
    assert result == ParseResult(expected, None)
    assert result.ok


def test_bracket_rating_two_ratings_takes_the_first_like_re_search():
    assert bracket_rating("First [[3]], on reflection [[9]]").value == 3.0


def test_bracket_rating_double_brackets_win_over_an_earlier_single_bracket():
    # FastChat searches the whole text for [[N]] before it falls back to [N].
    assert bracket_rating("See [2] in the answer. Rating: [[7]]").value == 7.0


@pytest.mark.parametrize("text", ["no rating here", "Rating: 8/10", "Rating: [[ 8 ]]", "Rating: [[-3]]",
                                  "Rating: [[rating]]", ""])
def test_bracket_rating_none_found_is_a_failure_with_reason(text):
    result = bracket_rating(text)
    assert result.value is None
    assert not result.ok
    assert "no [[rating]]" in result.error


@pytest.mark.parametrize("text, shown", [("Rating: [[0]]", "0"), ("Rating: [[11]]", "11"),
                                         ("Rating: [[15]]", "15"), ("Rating: [10.5]", "10.5")])
def test_bracket_rating_out_of_range_is_a_failure_not_a_number(text, shown):
    result = bracket_rating(text)
    assert result.value is None
    assert result.error == f"rating {shown} is outside 1-10"


def test_bracket_rating_out_of_range_first_match_is_not_skipped():
    # The first [[N]] decides (FastChat parity); an invalid one is not replaced by a later valid one.
    assert bracket_rating("[[15]] oops, I meant [[8]]").value is None


def test_bracket_rating_non_text():
    assert bracket_rating(None).value is None  # type: ignore[arg-type]


@pytest.mark.parametrize("text, expected", [
    ("A is more accurate. [[A]]", "A"),
    ("Assistant B wins: [[B]]", "B"),
    ("Both equally good. [[C]]", "tie"),
])
def test_bracket_choice_verdicts(text, expected):
    assert bracket_choice(text) == ParseResult(expected, None)


@pytest.mark.parametrize("text", ["I prefer A.", "[A]", "[[D]]", "[[a]]", ""])
def test_bracket_choice_none_found_is_a_failure(text):
    result = bracket_choice(text)
    assert result.value is None and "no [[A]], [[B]] or [[C]]" in result.error


def test_bracket_choice_uses_fastchat_precedence_not_position():
    # FastChat tests "[[A]]" in text, then "[[B]]", then "[[C]]": A wins even when B comes first.
    assert bracket_choice("Not [[B]]; final verdict [[A]]").value == "A"
    assert bracket_choice("[[C]] ... [[B]]").value == "B"


def test_registry_lookup_and_did_you_mean():
    assert PARSERS.get("bracket_rating") is bracket_rating
    assert PARSERS.get("bracket_choice") is bracket_choice
    with pytest.raises(UnknownName, match="did you mean 'bracket_rating'"):
        PARSERS.get("bracket_ratings")
