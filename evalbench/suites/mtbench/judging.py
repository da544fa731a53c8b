"""MT-bench judge requests and verdict logic (pure: no model calls, no I/O).

Re-implements FastChat llm_judge's judging rules (lm-sys/FastChat:fastchat/llm_judge,
`gen_judgment.py` make_judge_single / make_judge_pairwise, `common.py` run_judge_single /
run_judge_pair / play_a_match_pair):

* Prompt choice: turn 1 uses `single-v1` / `pair-v2`, turn 2 the `*-multi-turn` variants; the
  categories in NEED_REF_CATS (math, reasoning, coding) use `single-math-v1*` / `pair-math-v1*`
  and get the GPT-4 reference answer(s).
* Template fields, filled with `str.format` as FastChat does: single turn 1 `question, answer`;
  single turn 2 `question_1, question_2, answer_1, answer_2`; pairwise turn 1
  `question, answer_a, answer_b`; pairwise turn 2 `question_1, question_2, answer_a_1, answer_a_2,
  answer_b_1, answer_b_2`; plus `ref_answer_1` (and `ref_answer_2` on turn 2) with references.
* Messages: the prompt's `system_prompt` as the system message, the filled template as the user
  message (FastChat's OpenAI path). Decoding: temperature 0, at most 2048 new tokens.
* Pairwise: game 1 shows model_1 as A and model_2 as B, game 2 swaps them. Verdicts are mapped
  back to model slots; consistent verdicts count, any disagreement (or a tie in game 1) is a tie,
  and a game without a verdict fails the whole pair (FastChat show_result drops the row).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

from evalbench.config import SamplingSpec
from evalbench.errors import InputError
from evalbench.judge.base import Judge, PairItem, Preference, RateItem, Rating
from evalbench.judge.formats import (
    CHOICE_OUTPUT_REGEX,
    EXPLANATION_MAX_CHARS,
    JUDGE_MAX_TOKENS,
    JUDGE_TEMPERATURE,
    RATING_OUTPUT_REGEX,
    output_regex,
    text_sampling,
)
from evalbench.judge.parsers import PARSERS
from evalbench.registry import did_you_mean
from evalbench.suites.mtbench.data import (
    NEED_REF_CATS,
    JudgePrompt,
    ModelAnswer,
    PairJudgment,
    Question,
    SingleJudgment,
    Winner,
)

__all__ = [
    "JUDGE_TEMPERATURE", "JUDGE_MAX_TOKENS", "EXPLANATION_MAX_CHARS", "RATING_OUTPUT_REGEX",
    "CHOICE_OUTPUT_REGEX", "SINGLE_PARSER", "PAIR_PARSER", "JudgeRequest", "PairOutcome",
    "judge_sampling", "output_regex", "needs_reference", "single_prompt_name", "pair_prompt_name",
    "get_prompt", "build_single_request", "build_pair_request", "build_pair_games", "game_winner",
    "combine_games", "winner_name", "single_judgment", "pair_judgment", "rate_requests", "compare_games",
    "single_judgment_from_rating", "pair_judgment_from_preferences", "slot_winner",
]

# The decoding and the constrained-output regexes are the judge's (evalbench.judge.formats:
# verdict formats `bracket_rating` / `bracket_choice`); they are re-exported here for FastChat
# readers and kept byte-identical, because the sampling is part of every judge cache key.
SINGLE_PARSER = "bracket_rating"
PAIR_PARSER = "bracket_choice"

Turns = Sequence[str] | ModelAnswer


def judge_sampling(kind: Literal["single", "pair"], *, constrained: bool = False,
                   max_tokens: int = JUDGE_MAX_TOKENS) -> SamplingSpec:
    """FastChat's judge decoding (temperature 0, 2048 tokens), optionally regex-constrained.

    What `Judge.rate` / `Judge.compare` send for the `bracket_rating` / `bracket_choice` formats;
    a constrained judge's explanation is shortened to fit `max_tokens` (see `output_regex`).
    """
    return text_sampling(kind, constrained=constrained, max_tokens=max_tokens)


class JudgeRequest(NamedTuple):
    """What to send to the judge: chat messages plus the names needed to record the judgment."""

    prompt_name: str
    messages: tuple[dict[str, str], ...]
    user_prompt: str


class PairOutcome(NamedTuple):
    """The combined verdict of both games of one pairwise comparison.

    `winner` is "model_1", "model_2" or "tie", or None when a game had no verdict (`error`).
    `consistent` is False when the games disagreed (and the result was turned into a tie).
    """

    winner: Winner | None
    consistent: bool | None
    error: str | None = None


def needs_reference(category: str) -> bool:
    return category in NEED_REF_CATS


def _check_turn(turn: int) -> None:
    if turn not in (1, 2):
        raise InputError(f"MT-bench has turns 1 and 2, got {turn}", field="turn")


def single_prompt_name(category: str, turn: int) -> str:
    """`single-v1`, `single-v1-multi-turn`, `single-math-v1` or `single-math-v1-multi-turn`."""
    _check_turn(turn)
    base = "single-math-v1" if needs_reference(category) else "single-v1"
    return base + ("-multi-turn" if turn == 2 else "")


def pair_prompt_name(category: str, turn: int) -> str:
    """`pair-v2`, `pair-v2-multi-turn`, `pair-math-v1` or `pair-math-v1-multi-turn`."""
    _check_turn(turn)
    base = "pair-math-v1" if needs_reference(category) else "pair-v2"
    return base + ("-multi-turn" if turn == 2 else "")


def get_prompt(prompts: Mapping[str, JudgePrompt], name: str,
               kind: Literal["single", "pairwise"] | None = None) -> JudgePrompt:
    """Look up a judge prompt by name; an unknown name suggests the closest one."""
    prompt = prompts.get(name)
    if prompt is None:
        raise InputError(f"unknown judge prompt '{name}'{did_you_mean(name, list(prompts))}"
                         f" (known: {', '.join(sorted(prompts))})", field="judge prompt")
    if kind is not None and prompt.type != kind:
        raise InputError(f"judge prompt '{name}' is of type '{prompt.type}', expected '{kind}'",
                         field="judge prompt")
    return prompt


def _turns(x: Turns, what: str, need: int) -> Sequence[str]:
    turns = x.turns if isinstance(x, ModelAnswer) else x
    if isinstance(turns, str) or len(turns) < need:
        raise InputError(f"{what} needs {need} turn(s), got {0 if isinstance(turns, str) else len(turns)}",
                         field=what)
    return turns


def _reference_fields(question: Question, reference: Turns | None, turn: int) -> dict[str, str]:
    if not needs_reference(question.category):
        return {}  # FastChat passes references only to the *-math-* prompts
    if reference is None:
        raise InputError(f"question {question.question_id} ({question.category}) is judged against a "
                         "reference answer, but none was given", field="reference")
    ref = _turns(reference, "reference answer", turn)
    fields = {"ref_answer_1": ref[0]}
    if turn == 2:
        fields["ref_answer_2"] = ref[1]
    return fields


def _render(prompt: JudgePrompt, fields: Mapping[str, str]) -> JudgeRequest:
    try:
        messages, user_prompt = prompt.render(fields)
    except InputError:
        raise InputError(f"judge prompt '{prompt.name}' uses a field that MT-bench does not fill",
                         field="prompt_template") from None
    return JudgeRequest(prompt.name, messages, user_prompt)


def build_single_request(question: Question, answer: Turns, prompts: Mapping[str, JudgePrompt], *,
                         turn: int, reference: Turns | None = None) -> JudgeRequest:
    """Messages asking the judge to rate `answer` to `question` on `turn` (1 or 2).

    Args:
        question: the MT-bench question (its category picks the prompt).
        answer: the model's turns (or its ModelAnswer); turn 2 needs both.
        prompts: judge prompts by name (`load_judge_prompts()`).
        reference: the GPT-4 reference answer; required for math, reasoning and coding.
    """
    name = single_prompt_name(question.category, turn)
    prompt = get_prompt(prompts, name, "single")
    q = _turns(question.turns, "question", turn)
    a = _turns(answer, "answer", turn)
    fields = _reference_fields(question, reference, turn)
    if turn == 1:
        fields.update(question=q[0], answer=a[0])
    else:
        fields.update(question_1=q[0], question_2=q[1], answer_1=a[0], answer_2=a[1])
    return _render(prompt, fields)


def build_pair_request(question: Question, answer_a: Turns, answer_b: Turns,
                       prompts: Mapping[str, JudgePrompt], *, turn: int,
                       reference: Turns | None = None) -> JudgeRequest:
    """Messages asking the judge to compare assistant A's and B's answers on `turn`."""
    name = pair_prompt_name(question.category, turn)
    prompt = get_prompt(prompts, name, "pairwise")
    q = _turns(question.turns, "question", turn)
    a = _turns(answer_a, "answer_a", turn)
    b = _turns(answer_b, "answer_b", turn)
    fields = _reference_fields(question, reference, turn)
    if turn == 1:
        fields.update(question=q[0], answer_a=a[0], answer_b=b[0])
    else:
        fields.update(question_1=q[0], question_2=q[1], answer_a_1=a[0], answer_b_1=b[0],
                      answer_a_2=a[1], answer_b_2=b[1])
    return _render(prompt, fields)


def build_pair_games(question: Question, answer_1: Turns, answer_2: Turns,
                     prompts: Mapping[str, JudgePrompt], *, turn: int,
                     reference: Turns | None = None) -> tuple[JudgeRequest, JudgeRequest]:
    """Both orders: game 1 (A = model_1, B = model_2) and game 2 (A = model_2, B = model_1)."""
    return (build_pair_request(question, answer_1, answer_2, prompts, turn=turn, reference=reference),
            build_pair_request(question, answer_2, answer_1, prompts, turn=turn, reference=reference))


# Which model slot a position verdict refers to, per game (FastChat play_a_match_pair g1_map/g2_map).
_GAME_MAP: Mapping[int, Mapping[str, Winner]] = {
    1: {"A": "model_1", "B": "model_2", "tie": "tie"},
    2: {"A": "model_2", "B": "model_1", "tie": "tie"},
}


def game_winner(verdict: str | None, game: Literal[1, 2]) -> Winner | None:
    """Map a position verdict ("A", "B", "tie"; None = unparsed) of game 1 or 2 to a model slot."""
    if verdict is None:
        return None
    try:
        return _GAME_MAP[game][verdict]
    except KeyError:
        raise ValueError(f"game must be 1 or 2 and verdict A, B or tie; got game={game!r}, "
                         f"verdict={verdict!r}") from None


def combine_games(g1: Winner | None, g2: Winner | None) -> PairOutcome:
    """Combine the slot verdicts of both games, exactly as FastChat's show_result counts a row.

    * either game without a verdict -> the pair fails (`winner=None`);
    * game 1 says tie, or the games disagree -> tie (`consistent` False only on disagreement);
    * otherwise both games name the same model -> that model wins.
    """
    if g1 is None or g2 is None:
        which = " and ".join(n for n, g in (("game 1", g1), ("game 2", g2)) if g is None)
        return PairOutcome(None, None, f"no verdict in {which}")
    if g1 != g2:
        return PairOutcome("tie", False)
    return PairOutcome(g1, True)


def winner_name(winner: Winner, model_1: str, model_2: str) -> str:
    """The winning model's name, or "tie"."""
    return {"model_1": model_1, "model_2": model_2, "tie": "tie"}[winner]


def single_judgment(question_id: int, model: str, judge_model: str, request: JudgeRequest, output: str,
                    *, turn: int, parser: str = SINGLE_PARSER, tstamp: float | None = None) -> SingleJudgment:
    """Parse one judge output into a SingleJudgment (score None plus error when unparsable)."""
    parsed = PARSERS.get(parser)(output)
    score = float(parsed.value) if parsed.value is not None else None  # type: ignore[arg-type]
    return SingleJudgment(question_id=question_id, model=model, judge_model=judge_model,
                          prompt_name=request.prompt_name, turn=turn, score=score, error=parsed.error,
                          user_prompt=request.user_prompt, judgment=output,
                          tstamp=tstamp if tstamp is not None else time.time())


def pair_judgment(question_id: int, model_1: str, model_2: str, judge_model: str,
                  games: tuple[JudgeRequest, JudgeRequest], outputs: tuple[str, str], *, turn: int,
                  parser: str = PAIR_PARSER, tstamp: float | None = None) -> PairJudgment:
    """Parse both games' outputs into a PairJudgment with verdicts mapped to model slots."""
    p1, p2 = (PARSERS.get(parser)(o) for o in outputs)
    return PairJudgment(
        question_id=question_id, model_1=model_1, model_2=model_2, judge_model=judge_model,
        prompt_name=games[0].prompt_name, turn=turn,
        g1_winner=game_winner(p1.value, 1), g2_winner=game_winner(p2.value, 2),  # type: ignore[arg-type]
        g1_error=p1.error, g2_error=p2.error,
        g1_user_prompt=games[0].user_prompt, g1_judgment=outputs[0],
        g2_user_prompt=games[1].user_prompt, g2_judgment=outputs[1],
        tstamp=tstamp if tstamp is not None else time.time())


# ------------------------------------------------------------------------ through a Judge

def rate_requests(judge: Judge, requests: Sequence[JudgeRequest], *, max_tokens: int = JUDGE_MAX_TOKENS,
                  desc: str | None = None, seed: int | None = None,
                  temperature: float | None = None) -> list[Rating]:
    """Single grading of each request by `judge` (FastChat's `[[N]]` verdict), in order.

    `seed` / `temperature` replace the judge's decoding for a judge repeat; None keeps FastChat's
    (temperature 0, no seed), so the requests and their cache keys are the ordinary ones.
    """
    if not requests:
        return []
    return judge.rate([RateItem(r.messages, format="bracket_rating", seed=seed, temperature=temperature)
                       for r in requests], max_tokens=max_tokens, desc=desc)


def compare_games(judge: Judge, games: Sequence[tuple[JudgeRequest, JudgeRequest]], *,
                  max_tokens: int = JUDGE_MAX_TOKENS, desc: str | None = None
                  ) -> list[tuple[Preference, Preference]]:
    """Both games of each comparison by `judge`; the candidate is model_1 (A in game 1, B in game 2).

    Sent as one batch in the order game 1, game 2 of each comparison (FastChat's order).
    """
    items = [PairItem(g.messages, candidate_first=first, format="bracket_choice")
             for pair in games for g, first in zip(pair, (True, False))]
    prefs = judge.compare(items, max_tokens=max_tokens, desc=desc) if items else []
    return [(prefs[2 * i], prefs[2 * i + 1]) for i in range(len(games))]


def slot_winner(pref: Preference) -> Winner | None:
    """The model slot a verdict about model_1 names: 2 -> model_1, 1 -> model_2, 1.5 -> tie."""
    if pref.preference is None:
        return None
    if pref.preference == 1.5:
        return "tie"
    return "model_1" if pref.preference > 1.5 else "model_2"


def single_judgment_from_rating(question_id: int, model: str, judge_model: str, request: JudgeRequest,
                                rating: Rating, *, turn: int, tstamp: float | None = None) -> SingleJudgment:
    """A SingleJudgment (FastChat's row) from a Judge rating; a failed rating keeps its reason."""
    return SingleJudgment(question_id=question_id, model=model, judge_model=judge_model,
                          prompt_name=request.prompt_name, turn=turn, score=rating.score, error=rating.error,
                          user_prompt=request.user_prompt, judgment=rating.raw,
                          tstamp=tstamp if tstamp is not None else time.time())


def pair_judgment_from_preferences(question_id: int, model_1: str, model_2: str, judge_model: str,
                                   games: tuple[JudgeRequest, JudgeRequest], prefs: tuple[Preference, Preference],
                                   *, turn: int, tstamp: float | None = None) -> PairJudgment:
    """A PairJudgment (FastChat's row) from both games' verdicts about model_1."""
    p1, p2 = prefs
    return PairJudgment(
        question_id=question_id, model_1=model_1, model_2=model_2, judge_model=judge_model,
        prompt_name=games[0].prompt_name, turn=turn, g1_winner=slot_winner(p1), g2_winner=slot_winner(p2),
        g1_error=p1.error, g2_error=p2.error,
        g1_user_prompt=games[0].user_prompt, g1_judgment=p1.raw,
        g2_user_prompt=games[1].user_prompt, g2_judgment=p2.raw,
        tstamp=tstamp if tstamp is not None else time.time())
