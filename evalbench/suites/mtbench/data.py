"""MT-bench data and FastChat's llm_judge file formats, read strictly and written faithfully.

Benchmark files come through `evalbench.data.resolve` (a local data dir, else the Hugging Face
hub). On the hub they live in the `lmsys/mt-bench` Space (repo_type="space"), which holds
FastChat's `data/` folder (`data/mt_bench/question.jsonl`, `data/mt_bench/reference_answer/gpt-4.jsonl`,
`data/judge_prompts.jsonl`). That location is taken from the FastChat README; it was not
re-checked from this offline machine, and `--data-dir` / EVALBENCH_DATA_DIR always wins.

FastChat formats (lm-sys/FastChat:fastchat/llm_judge, as written by gen_model_answer.py and
common.py):
  * `model_answer/<model>.jsonl`: question_id, answer_id, model_id, choices[{index, turns}], tstamp.
    The model is named by the *file name*; `model_id` inside may differ (vicuna-13b-v1.3.jsonl
    holds `vicuna-13b-hao-0515`).
  * `model_judgment/<judge>_single.jsonl`: question_id, model, judge [judge_model, prompt_name],
    user_prompt, judgment, score (−1 = no rating parsed), turn, tstamp.
  * `model_judgment/<judge>_pair.jsonl`: question_id, model_1, model_2, g1_winner, g2_winner
    ("model_1" | "model_2" | "tie" | "error"), judge, g1_user_prompt, g1_judgment,
    g2_user_prompt, g2_judgment, turn, tstamp.
Inside evalbench a failed judgment is `None` plus an error string; −1 and "error" exist only in
these FastChat-format files, because FastChat's tools expect them.

Deliberate differences from FastChat's loaders: duplicate answers or judgments, unknown question
ids, missing turns and unknown judge prompt names are errors naming the file and line, where
FastChat silently keeps the last duplicate (`load_model_answers`) or counts every copy
(`show_result`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from evalbench.data import HubFile, resolve
from evalbench.errors import InputError
from evalbench.io import iter_jsonl, write_text_atomic
from evalbench.judge.prompts import JudgePrompt  # one prompt type for every suite; FastChat's lines are style 'fastchat'
from evalbench.registry import did_you_mean

__all__ = [
    "CATEGORIES", "CATEGORY_TEMPERATURE", "DEFAULT_TEMPERATURE", "NEED_REF_CATS", "MAX_NEW_TOKENS",
    "JUDGE_PROMPT_NAMES", "SINGLE_PROMPT_NAMES", "PAIR_PROMPT_NAMES", "REFERENCE_MODEL",
    "QUESTIONS", "REFERENCE_ANSWERS", "JUDGE_PROMPTS",
    "Question", "ModelAnswer", "JudgePrompt", "SingleJudgment", "PairJudgment", "Winner",
    "generation_temperature", "load_questions", "load_reference_answers", "load_judge_prompts",
    "model_name_from_path", "read_model_answers", "load_model_answers", "write_model_answers",
    "judgment_kind", "read_single_judgments", "read_pair_judgments",
    "single_judgment_to_fastchat", "pair_judgment_to_fastchat",
    "write_single_judgments", "write_pair_judgments",
]

# ---------------------------------------------------------------------------------------------
# constants (FastChat llm_judge: common.py temperature_config, gen_judgment.py NEED_REF_CATS)

CATEGORIES: tuple[str, ...] = ("writing", "roleplay", "reasoning", "math", "coding", "extraction",
                               "stem", "humanities")
# Generation temperature per category (MT-bench paper / FastChat temperature_config).
CATEGORY_TEMPERATURE: Mapping[str, float] = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
    "reasoning": 0.0, "stem": 0.1, "humanities": 0.1,
}
# FastChat's gen_model_answer.py falls back to 0.7 for a category it does not know.
DEFAULT_TEMPERATURE = 0.7
MAX_NEW_TOKENS = 1024
# Categories judged against the GPT-4 reference answers (FastChat gen_judgment.py NEED_REF_CATS,
# less "arena-hard-200", which is not an MT-bench category).
NEED_REF_CATS: frozenset[str] = frozenset({"math", "reasoning", "coding"})
REFERENCE_MODEL = "gpt-4"

SINGLE_PROMPT_NAMES: tuple[str, ...] = ("single-v1", "single-math-v1", "single-v1-multi-turn",
                                        "single-math-v1-multi-turn")
PAIR_PROMPT_NAMES: tuple[str, ...] = ("pair-v2", "pair-math-v1", "pair-v2-multi-turn",
                                      "pair-math-v1-multi-turn")
JUDGE_PROMPT_NAMES: tuple[str, ...] = SINGLE_PROMPT_NAMES + PAIR_PROMPT_NAMES

_SPACE = "lmsys/mt-bench"
QUESTIONS = ("mt_bench/question.jsonl",
             HubFile(repo_id=_SPACE, repo_type="space", filename="data/mt_bench/question.jsonl"))
REFERENCE_ANSWERS = ("mt_bench/reference_answer/gpt-4.jsonl",
                     HubFile(repo_id=_SPACE, repo_type="space",
                             filename="data/mt_bench/reference_answer/gpt-4.jsonl"))
JUDGE_PROMPTS = ("mt_bench/judge_prompts.jsonl",
                 HubFile(repo_id=_SPACE, repo_type="space", filename="data/judge_prompts.jsonl"))

Winner = Literal["model_1", "model_2", "tie"]
_WINNERS: tuple[str, ...] = ("model_1", "model_2", "tie")


def generation_temperature(category: str) -> float:
    """Sampling temperature for answering a question of `category` (FastChat's rule)."""
    return CATEGORY_TEMPERATURE.get(category, DEFAULT_TEMPERATURE)


# ---------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str
    turns: tuple[str, ...]
    # FastChat's `reference` field is used only by its browser UI; judging uses REFERENCE_ANSWERS.
    reference: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelAnswer:
    """One line of `model_answer/<model>.jsonl`; `model` is the file's name, `model_id` its field."""

    question_id: int
    model: str
    choices: tuple[tuple[str, ...], ...]
    model_id: str | None = None
    answer_id: str | None = None
    tstamp: float | None = None

    @property
    def turns(self) -> tuple[str, ...]:
        """The turns of choice 0, the only one FastChat judges."""
        return self.choices[0]


@dataclass(frozen=True)
class SingleJudgment:
    """A 1–10 rating of one model's answer to one turn; `score is None` means the judge failed."""

    question_id: int
    model: str
    judge_model: str
    prompt_name: str
    turn: int
    score: float | None
    error: str | None = None
    user_prompt: str = ""
    judgment: str = ""
    tstamp: float | None = None


@dataclass(frozen=True)
class PairJudgment:
    """Both games of a pairwise comparison; game 1 shows model_1 as A, game 2 shows it as B.

    `g1_winner`/`g2_winner` are already mapped back to model slots ("model_1", "model_2",
    "tie"); None means that game's verdict could not be parsed (`g1_error`/`g2_error` say why).
    """

    question_id: int
    model_1: str
    model_2: str
    judge_model: str
    prompt_name: str
    turn: int
    g1_winner: Winner | None
    g2_winner: Winner | None
    g1_error: str | None = None
    g2_error: str | None = None
    g1_user_prompt: str = ""
    g1_judgment: str = ""
    g2_user_prompt: str = ""
    g2_judgment: str = ""
    tstamp: float | None = None


# ---------------------------------------------------------------------------------------------
# field helpers: every complaint names file, line and field


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path, line: int,
         *, what: str = "") -> Any:
    if key not in obj:
        raise InputError(f"missing field '{key}'{what}", path=path, line=line, field=key)
    value = obj[key]
    # bool is an int subclass; a JSON `true` is never a valid id, score or turn.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(t.__name__ for t in _as_tuple(kind))
        raise InputError(f"field '{key}' must be {names}, got {type(value).__name__}", path=path,
                         line=line, field=key)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _str_list(obj: Mapping[str, Any], key: str, path: Path, line: int, *,
              field: str | None = None) -> tuple[str, ...]:
    value = _get(obj, key, list, path, line)
    if not all(isinstance(v, str) for v in value):
        raise InputError(f"field '{key}' must be a list of strings", path=path, line=line,
                         field=field or key)
    return tuple(value)


def _opt_float(obj: Mapping[str, Any], key: str, path: Path, line: int) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"field '{key}' must be a number", path=path, line=line, field=key)
    return float(value)


# ---------------------------------------------------------------------------------------------
# questions, reference answers, judge prompts


def load_questions(path: str | Path | None = None) -> dict[int, Question]:
    """`question.jsonl` as {question_id: Question}, in file order; default: the MT-bench file."""
    path = Path(path) if path is not None else resolve(QUESTIONS[0], hub=QUESTIONS[1])
    out: dict[int, Question] = {}
    for line, obj in iter_jsonl(path):
        qid = _get(obj, "question_id", int, path, line)
        if qid in out:
            raise InputError(f"duplicate question_id {qid}", path=path, line=line, field="question_id")
        category = _get(obj, "category", str, path, line)
        turns = _str_list(obj, "turns", path, line)
        if not turns:
            raise InputError("a question needs at least one turn", path=path, line=line, field="turns")
        reference = _str_list(obj, "reference", path, line) if obj.get("reference") is not None else None
        out[qid] = Question(qid, category, turns, reference)
    if not out:
        raise InputError("no questions in file", path=path)
    return out


def load_reference_answers(path: str | Path | None = None,
                           questions: Mapping[int, Question] | None = None) -> dict[int, ModelAnswer]:
    """GPT-4 reference answers {question_id: ModelAnswer} (FastChat: math, reasoning, coding).

    FastChat looks references up under the judge's own model name, so it only works with a
    gpt-4 judge; evalbench uses these GPT-4 references whatever the judge is.
    """
    path = Path(path) if path is not None else resolve(REFERENCE_ANSWERS[0], hub=REFERENCE_ANSWERS[1])
    return read_model_answers(path, questions, model=REFERENCE_MODEL)


def load_judge_prompts(path: str | Path | None = None) -> dict[str, JudgePrompt]:
    """`judge_prompts.jsonl` as {name: JudgePrompt}; default: FastChat's eight MT-bench prompts."""
    path = Path(path) if path is not None else resolve(JUDGE_PROMPTS[0], hub=JUDGE_PROMPTS[1])
    out: dict[str, JudgePrompt] = {}
    for line, obj in iter_jsonl(path):
        name = _get(obj, "name", str, path, line)
        if name in out:
            raise InputError(f"duplicate judge prompt '{name}'", path=path, line=line, field="name")
        kind = _get(obj, "type", str, path, line)
        if kind not in ("single", "pairwise"):
            raise InputError(f"type must be 'single' or 'pairwise', got {kind!r}", path=path, line=line,
                             field="type")
        out[name] = JudgePrompt(
            name=name, type=kind,  # type: ignore[arg-type]
            system_prompt=_get(obj, "system_prompt", str, path, line),
            template=_get(obj, "prompt_template", str, path, line), style="fastchat", source=str(path),
            output_format=_get(obj, "output_format", str, path, line),
            description=str(obj.get("description", "")), category=str(obj.get("category", "")))
    return out


# ---------------------------------------------------------------------------------------------
# model answers


def model_name_from_path(path: str | Path) -> str:
    """FastChat names a model by its answer file: `model_answer/vicuna-13b-v1.3.jsonl` -> vicuna-13b-v1.3."""
    name = Path(path).name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def read_model_answers(path: str | Path, questions: Mapping[int, Question] | None = None, *,
                       model: str | None = None, require_all: bool = False) -> dict[int, ModelAnswer]:
    """Read a FastChat `model_answer/<model>.jsonl` as {question_id: ModelAnswer}.

    Args:
        path: the answer file; the model is named by the file (see `model_name_from_path`)
            unless `model` is given.
        questions: when given, unknown question ids are errors and each answer must have as
            many turns as its question; without it, two turns (MT-bench) are required.
        require_all: also fail when a question in `questions` has no answer.

    Raises:
        InputError: naming the file and line of an unknown question id, a duplicate answer, a
            missing turn or a malformed field.
    """
    path = Path(path)
    name = model if model is not None else model_name_from_path(path)
    out: dict[int, ModelAnswer] = {}
    first_line: dict[int, int] = {}
    for line, obj in iter_jsonl(path):
        qid = _get(obj, "question_id", int, path, line)
        if questions is not None and qid not in questions:
            raise InputError(f"unknown question_id {qid} (not among the {len(questions)} questions)",
                             path=path, line=line, field="question_id")
        if qid in out:
            raise InputError(f"duplicate answer to question_id {qid} (first at line {first_line[qid]})",
                             path=path, line=line, field="question_id")
        raw_choices = _get(obj, "choices", list, path, line)
        if not raw_choices:
            raise InputError("'choices' is empty", path=path, line=line, field="choices")
        choices = []
        for i, choice in enumerate(raw_choices):
            if not isinstance(choice, dict):
                raise InputError("each choice must be an object with 'turns'", path=path, line=line,
                                 field=f"choices[{i}]")
            choices.append(_str_list(choice, "turns", path, line, field=f"choices[{i}].turns"))
        want = len(questions[qid].turns) if questions is not None else 2
        for i, turns in enumerate(choices):
            if len(turns) < want:
                missing = "second turn" if len(turns) == 1 and want == 2 else f"turn {len(turns) + 1}"
                raise InputError(f"answer to question_id {qid} has {len(turns)} turn(s), "
                                 f"missing the {missing}", path=path, line=line, field=f"choices[{i}].turns")
        model_id = obj.get("model_id")
        answer_id = obj.get("answer_id")
        out[qid] = ModelAnswer(qid, name, tuple(choices),
                               model_id=str(model_id) if model_id is not None else None,
                               answer_id=str(answer_id) if answer_id is not None else None,
                               tstamp=_opt_float(obj, "tstamp", path, line))
        first_line[qid] = line
    if require_all and questions is not None:
        missing_ids = [q for q in questions if q not in out]
        if missing_ids:
            shown = ", ".join(map(str, missing_ids[:10])) + (" ..." if len(missing_ids) > 10 else "")
            raise InputError(f"no answer to {len(missing_ids)} question(s): {shown}", path=path)
    return out


def load_model_answers(directory: str | Path, questions: Mapping[int, Question] | None = None, *,
                       require_all: bool = False) -> dict[str, dict[int, ModelAnswer]]:
    """Every `*.jsonl` in a FastChat `model_answer/` folder: {model (file name): {qid: answer}}."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("answer folder not found", path=directory)
    return {model_name_from_path(f): read_model_answers(f, questions, require_all=require_all)
            for f in sorted(directory.glob("*.jsonl"))}


def write_model_answers(path: str | Path, answers: Iterable[ModelAnswer]) -> None:
    """Write answers in FastChat's format, sorted by question_id (as FastChat's reorg_answer_file).

    `model_id` defaults to the answer's `model`; `answer_id` to a stable id derived from
    model and question (FastChat uses a random shortuuid); `tstamp` to now.
    """
    from evalbench.io import stable_hash

    rows = sorted(answers, key=lambda a: a.question_id)
    seen: set[int] = set()
    lines = []
    for a in rows:
        if a.question_id in seen:
            raise InputError(f"duplicate answer to question_id {a.question_id}", path=path)
        seen.add(a.question_id)
        lines.append(json.dumps({
            "question_id": a.question_id,
            "answer_id": a.answer_id or f"{stable_hash(a.model, a.question_id):016x}",
            "model_id": a.model_id or a.model,
            "choices": [{"index": i, "turns": list(t)} for i, t in enumerate(a.choices)],
            "tstamp": a.tstamp if a.tstamp is not None else time.time(),
        }, ensure_ascii=False))
    write_text_atomic(path, "".join(line + "\n" for line in lines))


# ---------------------------------------------------------------------------------------------
# judgments


def judgment_kind(path: str | Path,
                  default: Literal["single", "pair"] | None = None) -> Literal["single", "pair"]:
    """"single" or "pair", from the fields of the file's first row.

    An empty file is told by its name (`*_single.jsonl` / `*_pair.jsonl`), else `default`.
    """
    path = Path(path)
    for line, obj in iter_jsonl(path):
        if "score" in obj:
            return "single"
        if "g1_winner" in obj:
            return "pair"
        raise InputError("neither a single judgment ('score') nor a pairwise one ('g1_winner')",
                         path=path, line=line)
    stem = model_name_from_path(path)
    if stem.endswith("_single"):
        return "single"
    if stem.endswith("_pair"):
        return "pair"
    if default is not None:
        return default
    raise InputError("empty judgment file; cannot tell single from pair (give --mode)", path=path)


def _judge_field(obj: Mapping[str, Any], path: Path, line: int,
                 prompt_names: Sequence[str] | None) -> tuple[str, str]:
    judge = _get(obj, "judge", list, path, line)
    if len(judge) != 2 or not all(isinstance(j, str) for j in judge):
        raise InputError("field 'judge' must be [judge_model, prompt_name]", path=path, line=line,
                         field="judge")
    judge_model, prompt_name = judge
    if prompt_names is not None and prompt_name not in prompt_names:
        hint = did_you_mean(prompt_name, list(prompt_names))
        raise InputError(f"unknown judge prompt name '{prompt_name}'{hint} "
                         f"(known: {', '.join(prompt_names)})", path=path, line=line, field="judge")
    return judge_model, prompt_name


def _turn(obj: Mapping[str, Any], path: Path, line: int) -> int:
    turn = _get(obj, "turn", int, path, line)
    if turn not in (1, 2):
        raise InputError(f"turn must be 1 or 2, got {turn}", path=path, line=line, field="turn")
    return turn


class _Dedupe:
    """Remembers where each key was first seen so a duplicate names both places."""

    def __init__(self, keep: bool):
        self.keep = keep
        self.seen: dict[tuple, str] = {}

    def check(self, key: tuple, path: Path, line: int, what: str) -> None:
        if self.keep:
            return
        if key in self.seen:
            raise InputError(f"duplicate judgment of {what} (first at {self.seen[key]}); "
                             "FastChat would count both copies (use --keep-duplicates to do the same)",
                             path=path, line=line)
        self.seen[key] = f"{path}:{line}"


def _paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    return [Path(p) for p in paths]


NO_RATING = "no valid rating (score -1 in the FastChat judgment file)"
NO_VERDICT = "no valid verdict ('error' in the FastChat judgment file)"


def read_single_judgments(paths: str | Path | Sequence[str | Path], *,
                          prompt_names: Sequence[str] | None = JUDGE_PROMPT_NAMES,
                          keep_duplicates: bool = False) -> list[SingleJudgment]:
    """Read FastChat `<judge>_single.jsonl` files; score −1 becomes `score=None` plus an error.

    Args:
        paths: one file or several (rows are concatenated, as if one file).
        prompt_names: allowed `judge[1]` values (None: any); default FastChat's eight.
        keep_duplicates: count a repeated (question, model, turn, judge) as FastChat does,
            instead of raising.
    """
    out: list[SingleJudgment] = []
    dedupe = _Dedupe(keep_duplicates)
    for path in _paths(paths):
        for line, obj in iter_jsonl(path):
            qid = _get(obj, "question_id", int, path, line)
            model = _get(obj, "model", str, path, line)
            judge_model, prompt_name = _judge_field(obj, path, line, prompt_names)
            turn = _turn(obj, path, line)
            raw = _get(obj, "score", (int, float), path, line)
            if isinstance(raw, float) and not math.isfinite(raw):
                raise InputError(f"score must be finite, got {raw}", path=path, line=line, field="score")
            # −1 is FastChat's "no rating parsed"; show_result drops exactly these rows.
            score, error = (None, NO_RATING) if raw == -1 else (float(raw), None)
            dedupe.check((qid, model, turn, judge_model), path, line,
                         f"question {qid}, model '{model}', turn {turn} by '{judge_model}'")
            out.append(SingleJudgment(
                question_id=qid, model=model, judge_model=judge_model, prompt_name=prompt_name, turn=turn,
                score=score, error=error, user_prompt=str(obj.get("user_prompt", "")),
                judgment=str(obj.get("judgment", "")), tstamp=_opt_float(obj, "tstamp", path, line)))
    return out


def _winner(obj: Mapping[str, Any], key: str, path: Path, line: int) -> tuple[Winner | None, str | None]:
    value = _get(obj, key, str, path, line)
    if value == "error":
        return None, NO_VERDICT
    if value not in _WINNERS:
        raise InputError(f"{key} must be one of model_1, model_2, tie, error; got {value!r}", path=path,
                         line=line, field=key)
    return value, None  # type: ignore[return-value]


def read_pair_judgments(paths: str | Path | Sequence[str | Path], *,
                        prompt_names: Sequence[str] | None = JUDGE_PROMPT_NAMES,
                        keep_duplicates: bool = False) -> list[PairJudgment]:
    """Read FastChat `<judge>_pair.jsonl` files; "error" winners become None plus an error.

    A repeated (question, model_1, model_2, turn, judge) row is an error unless
    `keep_duplicates`; (m1, m2) and (m2, m1) are different rows, as in FastChat.
    """
    out: list[PairJudgment] = []
    dedupe = _Dedupe(keep_duplicates)
    for path in _paths(paths):
        for line, obj in iter_jsonl(path):
            qid = _get(obj, "question_id", int, path, line)
            m1 = _get(obj, "model_1", str, path, line)
            m2 = _get(obj, "model_2", str, path, line)
            if m1 == m2:
                raise InputError(f"model_1 and model_2 are both '{m1}'", path=path, line=line,
                                 field="model_2")
            judge_model, prompt_name = _judge_field(obj, path, line, prompt_names)
            turn = _turn(obj, path, line)
            g1, e1 = _winner(obj, "g1_winner", path, line)
            g2, e2 = _winner(obj, "g2_winner", path, line)
            dedupe.check((qid, m1, m2, turn, judge_model), path, line,
                         f"question {qid}, '{m1}' vs '{m2}', turn {turn} by '{judge_model}'")
            out.append(PairJudgment(
                question_id=qid, model_1=m1, model_2=m2, judge_model=judge_model, prompt_name=prompt_name,
                turn=turn, g1_winner=g1, g2_winner=g2, g1_error=e1, g2_error=e2,
                g1_user_prompt=str(obj.get("g1_user_prompt", "")),
                g1_judgment=str(obj.get("g1_judgment", "")),
                g2_user_prompt=str(obj.get("g2_user_prompt", "")),
                g2_judgment=str(obj.get("g2_judgment", "")),
                tstamp=_opt_float(obj, "tstamp", path, line)))
    return out


def _fastchat_number(x: float) -> int | float:
    # FastChat parses "[[8]]" with ast.literal_eval, so whole ratings are written as ints.
    return int(x) if float(x).is_integer() else x


def single_judgment_to_fastchat(j: SingleJudgment) -> dict[str, Any]:
    """The FastChat `_single.jsonl` row for `j` (score −1 when the judgment failed)."""
    return {
        "question_id": j.question_id, "model": j.model, "judge": [j.judge_model, j.prompt_name],
        "user_prompt": j.user_prompt, "judgment": j.judgment,
        "score": -1 if j.score is None else _fastchat_number(j.score), "turn": j.turn,
        "tstamp": j.tstamp if j.tstamp is not None else time.time(),
    }


def pair_judgment_to_fastchat(j: PairJudgment) -> dict[str, Any]:
    """The FastChat `_pair.jsonl` row for `j` ("error" for a game without a verdict)."""
    return {
        "question_id": j.question_id, "model_1": j.model_1, "model_2": j.model_2,
        "g1_winner": j.g1_winner if j.g1_winner is not None else "error",
        "g2_winner": j.g2_winner if j.g2_winner is not None else "error",
        "judge": [j.judge_model, j.prompt_name],
        "g1_user_prompt": j.g1_user_prompt, "g1_judgment": j.g1_judgment,
        "g2_user_prompt": j.g2_user_prompt, "g2_judgment": j.g2_judgment,
        "turn": j.turn, "tstamp": j.tstamp if j.tstamp is not None else time.time(),
    }


def _write_rows(path: str | Path, rows: list[dict[str, Any]], append: bool) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if append:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    else:
        write_text_atomic(path, text)


def write_single_judgments(path: str | Path, judgments: Iterable[SingleJudgment], *,
                           append: bool = False) -> None:
    """Write (or append, as FastChat does) single judgments in FastChat's format."""
    _write_rows(path, [single_judgment_to_fastchat(j) for j in judgments], append)


def write_pair_judgments(path: str | Path, judgments: Iterable[PairJudgment], *,
                         append: bool = False) -> None:
    """Write (or append, as FastChat does) pairwise judgments in FastChat's format."""
    _write_rows(path, [pair_judgment_to_fastchat(j) for j in judgments], append)
