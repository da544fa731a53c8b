"""MT-bench judge requests (prompt choice, template fields) and both-order pairwise verdicts."""

from __future__ import annotations

import re

import pytest

from evalbench.errors import InputError
from evalbench.judge.parsers import bracket_choice, bracket_rating
from evalbench.suites.mtbench import data as mt
from evalbench.suites.mtbench import judging as jg


@pytest.fixture(scope="module")
def prompts():
    return mt.load_judge_prompts()


def _q(category: str, qid: int = 1) -> mt.Question:
    return mt.Question(qid, category, ("Q1", "Q2"))


@pytest.mark.parametrize("category", mt.CATEGORIES)
def test_prompt_choice_per_category_and_turn(category):
    math = category in ("math", "reasoning", "coding")
    assert jg.single_prompt_name(category, 1) == ("single-math-v1" if math else "single-v1")
    assert jg.single_prompt_name(category, 2) == (
        "single-math-v1-multi-turn" if math else "single-v1-multi-turn")
    assert jg.pair_prompt_name(category, 1) == ("pair-math-v1" if math else "pair-v2")
    assert jg.pair_prompt_name(category, 2) == ("pair-math-v1-multi-turn" if math else "pair-v2-multi-turn")


def test_single_turn_1_fills_question_and_answer(prompts):
    req = jg.build_single_request(_q("writing"), ("A1", "A2"), prompts, turn=1)
    assert req.prompt_name == "single-v1"
    assert req.messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert req.messages[1] == {"role": "user", "content": req.user_prompt}
    # The tail of FastChat's single-v1 template, written out by hand.
    assert req.user_prompt.endswith("[Question]\nQ1\n\n[The Start of Assistant's Answer]\nA1\n"
                                    "[The End of Assistant's Answer]")
    assert "A2" not in req.user_prompt and "{" not in req.user_prompt


def test_single_turn_2_shows_the_whole_conversation(prompts):
    req = jg.build_single_request(_q("roleplay"), ("A1", "A2"), prompts, turn=2)
    assert req.prompt_name == "single-v1-multi-turn"
    assert req.user_prompt == (
        "<|The Start of Assistant A's Conversation with User|>\n\n### User:\nQ1\n\n### Assistant A:\nA1\n\n"
        "### User:\nQ2\n\n### Assistant A:\nA2\n\n<|The End of Assistant A's Conversation with User|>")
    assert req.messages[0]["content"] == prompts["single-v1-multi-turn"].system_prompt


def test_single_math_uses_the_reference(prompts):
    ref = ("R1", "R2")
    t1 = jg.build_single_request(_q("math"), ("A1", "A2"), prompts, turn=1, reference=ref)
    assert t1.prompt_name == "single-math-v1"
    assert t1.user_prompt.endswith("[Question]\nQ1\n\n[The Start of Reference Answer]\nR1\n"
                                   "[The End of Reference Answer]\n\n[The Start of Assistant's Answer]\nA1\n"
                                   "[The End of Assistant's Answer]")
    t2 = jg.build_single_request(_q("coding"), ("A1", "A2"), prompts, turn=2, reference=ref)
    assert t2.user_prompt.startswith("<|The Start of Reference Answer|>\n\n### User:\nQ1\n\n"
                                     "### Reference answer:\nR1\n\n### User:\nQ2\n\n"
                                     "### Reference answer:\nR2\n\n")
    with pytest.raises(InputError, match="reference answer"):
        jg.build_single_request(_q("reasoning"), ("A1", "A2"), prompts, turn=1)


def test_reference_is_not_shown_for_other_categories(prompts):
    req = jg.build_single_request(_q("stem"), ("A1", "A2"), prompts, turn=1, reference=("R1", "R2"))
    assert "R1" not in req.user_prompt


def test_answers_with_braces_are_inserted_verbatim(prompts):
    code = "def f():\n    return {'a': 1}  # {answer}"
    req = jg.build_single_request(_q("writing"), (code, "x"), prompts, turn=1)
    assert code in req.user_prompt


def test_pair_games_swap_positions(prompts):
    g1, g2 = jg.build_pair_games(_q("writing"), ("M1-t1", "M1-t2"), ("M2-t1", "M2-t2"), prompts, turn=1)
    assert g1.prompt_name == g2.prompt_name == "pair-v2"
    assert g1.user_prompt == ("[User Question]\nQ1\n\n[The Start of Assistant A's Answer]\nM1-t1\n"
                              "[The End of Assistant A's Answer]\n\n"
                              "[The Start of Assistant B's Answer]\nM2-t1\n[The End of Assistant B's Answer]")
    swapped = g1.user_prompt.replace("M1-t1", "@").replace("M2-t1", "M1-t1").replace("@", "M2-t1")
    assert g2.user_prompt == swapped
    assert g1.messages[0]["content"] == prompts["pair-v2"].system_prompt


def test_pair_multi_turn_math_fields(prompts):
    g1, _ = jg.build_pair_games(_q("math"), ("a1", "a2"), ("b1", "b2"), prompts, turn=2,
                                reference=("r1", "r2"))
    assert g1.prompt_name == "pair-math-v1-multi-turn"
    text = g1.user_prompt
    for piece in ("### Reference answer:\nr1", "### Reference answer:\nr2", "### Assistant A:\na1",
                  "### Assistant A:\na2", "### Assistant B:\nb1", "### Assistant B:\nb2"):
        assert piece in text
    assert text.index("a2") < text.index("b1")


def test_prompt_lookup_errors(prompts):
    with pytest.raises(InputError, match="did you mean 'pair-v2'"):
        jg.get_prompt(prompts, "pair-v1")
    with pytest.raises(InputError, match="type 'pairwise', expected 'single'"):
        jg.get_prompt(prompts, "pair-v2", "single")
    with pytest.raises(InputError, match="turns 1 and 2"):
        jg.single_prompt_name("writing", 3)
    with pytest.raises(InputError, match="answer needs 2 turn"):
        jg.build_single_request(_q("writing"), ("only",), prompts, turn=2)


def test_judge_decoding_is_greedy_2048():
    s = jg.judge_sampling("single")
    assert (s.temperature, s.max_tokens, s.regex) == (0.0, 2048, None)
    constrained = jg.judge_sampling("pair", constrained=True)
    assert constrained.structured_outputs() == {"regex": jg.CHOICE_OUTPUT_REGEX}


@pytest.mark.parametrize("text, ok", [
    ("Helpful and correct. Rating: [[7]]", True), ("[[10]]", True), ("Short.\nRating: [[1]]", True),
    ("Rating: [[11]]", False), ("Rating: [[0]]", False), ("[[7]] trailing", False), ("no rating", False),
    ("x" * (jg.EXPLANATION_MAX_CHARS + 1) + "[[5]]", False),
])
def test_rating_regex_outputs_always_parse(text, ok):
    matched = re.fullmatch(jg.RATING_OUTPUT_REGEX, text) is not None
    assert matched is ok
    if matched:
        assert bracket_rating(text).ok


@pytest.mark.parametrize("text, verdict", [("A is better. [[A]]", "A"), ("[[B]]", "B"),
                                           ("Equal. [[C]]", "tie"), ("[[D]]", None), ("[[A]][[B]]", None)])
def test_choice_regex_outputs_always_parse(text, verdict):
    matched = re.fullmatch(jg.CHOICE_OUTPUT_REGEX, text) is not None
    assert matched is (verdict is not None)
    if matched:
        assert bracket_choice(text).value == verdict


@pytest.mark.parametrize("g1, g2, winner, consistent", [
    ("model_1", "model_1", "model_1", True),
    ("model_2", "model_2", "model_2", True),
    ("tie", "tie", "tie", True),
    ("model_1", "model_2", "tie", False),   # the orders disagree -> tie
    ("tie", "model_1", "tie", False),       # FastChat: g1 tie -> tie
    ("model_2", "tie", "tie", False),       # FastChat: g1 != g2 -> tie
])
def test_combine_games(g1, g2, winner, consistent):
    assert jg.combine_games(g1, g2) == jg.PairOutcome(winner, consistent, None)


@pytest.mark.parametrize("g1, g2", [(None, "model_1"), ("tie", None), (None, None)])
def test_combine_games_failure_is_none_not_tie(g1, g2):
    out = jg.combine_games(g1, g2)
    assert out.winner is None and out.consistent is None and "no verdict" in out.error


def test_both_orders_map_back_to_model_names(prompts):
    games = jg.build_pair_games(_q("writing"), ("x1", "x2"), ("y1", "y2"), prompts, turn=1)
    cases = {
        # (game 1 output, game 2 output): (g1 slot, g2 slot, combined winner's name)
        ("[[A]]", "[[B]]"): ("model_1", "model_1", "alice"),   # A=alice, then B=alice: consistent
        ("[[B]]", "[[A]]"): ("model_2", "model_2", "bob"),
        ("[[A]]", "[[A]]"): ("model_1", "model_2", "tie"),     # position bias: inconsistent -> tie
        ("[[C]]", "[[B]]"): ("tie", "model_1", "tie"),
    }
    for outputs, (s1, s2, name) in cases.items():
        pj = jg.pair_judgment(81, "alice", "bob", "judge", games, outputs, turn=1, tstamp=0.0)
        assert (pj.g1_winner, pj.g2_winner) == (s1, s2)
        outcome = jg.combine_games(pj.g1_winner, pj.g2_winner)
        assert jg.winner_name(outcome.winner, pj.model_1, pj.model_2) == name
        assert pj.g1_user_prompt == games[0].user_prompt and pj.g2_judgment == outputs[1]
    failed = jg.pair_judgment(81, "alice", "bob", "judge", games, ("[[A]]", "no idea"), turn=1)
    assert failed.g1_winner == "model_1" and failed.g2_winner is None and failed.g2_error
    with pytest.raises(ValueError):
        jg.game_winner("A", 3)  # type: ignore[arg-type]


def test_single_judgment_from_output(prompts):
    req = jg.build_single_request(_q("writing"), ("a", "b"), prompts, turn=1)
    ok = jg.single_judgment(81, "m", "judge", req, "Fine. Rating: [[6]]", turn=1)
    assert (ok.score, ok.error, ok.prompt_name) == (6.0, None, "single-v1")
    assert ok.judgment == "Fine. Rating: [[6]]"
    bad = jg.single_judgment(81, "m", "judge", req, "Rating: [[12]]", turn=1)
    assert bad.score is None and "outside" in bad.error
