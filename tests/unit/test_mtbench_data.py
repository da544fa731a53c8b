"""MT-bench data files and FastChat answer/judgment formats: published files load, bad input is located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalbench.errors import InputError
from evalbench.suites.mtbench import data as mt

PUBLISHED_MODELS = [
    "alpaca-13b", "baize-v2-13b", "chatglm-6b", "claude-instant-v1", "falcon-40b-instruct", "fastchat-t5-3b",
    "gpt-3.5-turbo", "gpt-4", "gpt4all-13b-snoozy", "guanaco-65b", "mpt-30b-chat", "mpt-7b-chat",
    "nous-hermes-13b", "oasst-sft-7-llama-30b", "palm-2-chat-bison-001", "rwkv-4-raven-14b",
    "stablelm-tuned-alpha-7b", "tulu-30b", "vicuna-13b-v1.3", "vicuna-7b-v1.3", "wizardlm-30b",
]


@pytest.fixture(scope="module")
def questions():
    return mt.load_questions()  # through evalbench.data.resolve and EVALBENCH_DATA_DIR


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _answer(qid: int, turns=("t1", "t2")) -> dict:
    return {"question_id": qid, "answer_id": f"a{qid}", "model_id": "x", "tstamp": 1.0,
            "choices": [{"index": 0, "turns": list(turns)}]}


def test_questions_match_the_published_set(questions):
    # README: 80 questions, ids 81-160, 10 per category, two turns each.
    assert sorted(questions) == list(range(81, 161))
    by_cat = {}
    for q in questions.values():
        by_cat[q.category] = by_cat.get(q.category, 0) + 1
        assert len(q.turns) == 2
    assert by_cat == dict.fromkeys(mt.CATEGORIES, 10)


def test_category_temperatures_and_reference_categories():
    assert {c: mt.generation_temperature(c) for c in mt.CATEGORIES} == {
        "writing": 0.7, "roleplay": 0.7, "reasoning": 0.0, "math": 0.0, "coding": 0.0, "extraction": 0.0,
        "stem": 0.1, "humanities": 0.1}
    assert mt.generation_temperature("arena-hard-200") == 0.7  # FastChat's fallback for unknown categories
    assert mt.NEED_REF_CATS == {"math", "reasoning", "coding"}


def test_reference_answers_cover_exactly_the_reference_categories(questions):
    refs = mt.load_reference_answers(questions=questions)
    need = {qid for qid, q in questions.items() if q.category in mt.NEED_REF_CATS}
    assert set(refs) == need and len(need) == 30  # README: ids 101-130
    assert all(r.model == "gpt-4" and len(r.turns) == 2 for r in refs.values())


def test_judge_prompts_are_the_eight_fastchat_prompts():
    prompts = mt.load_judge_prompts()
    assert sorted(prompts) == sorted(mt.JUDGE_PROMPT_NAMES)
    assert {prompts[n].type for n in mt.SINGLE_PROMPT_NAMES} == {"single"}
    assert {prompts[n].type for n in mt.PAIR_PROMPT_NAMES} == {"pairwise"}
    assert {prompts[n].output_format for n in mt.SINGLE_PROMPT_NAMES} == {"[[rating]]"}
    assert {prompts[n].output_format for n in mt.PAIR_PROMPT_NAMES} == {"[[A]]"}


def test_all_21_published_answer_files_import(data_dir, questions):
    answers = mt.load_model_answers(data_dir / "mt_bench" / "model_answer", questions, require_all=True)
    assert sorted(answers) == PUBLISHED_MODELS
    for model, by_qid in answers.items():
        assert sorted(by_qid) == list(range(81, 161)), model
        assert all(a.model == model and len(a.turns) == 2 for a in by_qid.values())
    # The model is named by the file, not by the model_id inside it (README quirk).
    assert answers["vicuna-13b-v1.3"][81].model_id == "vicuna-13b-hao-0515"
    assert answers["rwkv-4-raven-14b"][81].model_id == "RWKV-4-Raven-14B"


def test_model_answers_round_trip(tmp_path, data_dir, questions):
    src = mt.read_model_answers(data_dir / "mt_bench" / "model_answer" / "gpt-4.jsonl", questions)
    out = tmp_path / "model_answer" / "gpt-4.jsonl"
    mt.write_model_answers(out, reversed(list(src.values())))
    back = mt.read_model_answers(out, questions)
    assert back == src
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == sorted(src)  # written sorted, as FastChat reorganises
    assert set(rows[0]) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}


def test_write_model_answers_defaults_model_id_to_the_model(tmp_path):
    out = tmp_path / "mine.jsonl"
    mt.write_model_answers(out, [mt.ModelAnswer(81, "mine", (("a", "b"),))])
    row = json.loads(out.read_text())
    assert row["model_id"] == "mine" and row["choices"] == [{"index": 0, "turns": ["a", "b"]}]
    assert isinstance(row["answer_id"], str) and isinstance(row["tstamp"], float)


def _located(exc: InputError, path: Path, line: int) -> None:
    assert exc.path == str(path) and exc.line == line
    assert f"{path}:{line}" in str(exc)


def test_unknown_question_id_names_file_and_line(tmp_path, questions):
    path = _write(tmp_path / "m.jsonl", [_answer(81), _answer(82), _answer(999)])
    with pytest.raises(InputError, match="unknown question_id 999") as err:
        mt.read_model_answers(path, questions)
    _located(err.value, path, 3)


def test_missing_second_turn_names_file_and_line(tmp_path, questions):
    path = _write(tmp_path / "m.jsonl", [_answer(81), _answer(82, turns=("only one",))])
    with pytest.raises(InputError, match="missing the second turn") as err:
        mt.read_model_answers(path, questions)
    _located(err.value, path, 2)
    # Without the question set, MT-bench's two turns are still required.
    with pytest.raises(InputError, match="missing the second turn"):
        mt.read_model_answers(path)


def test_duplicate_answer_names_file_and_both_lines(tmp_path, questions):
    path = _write(tmp_path / "m.jsonl", [_answer(81), "", _answer(82), _answer(81)])
    with pytest.raises(InputError, match=r"duplicate answer to question_id 81 \(first at line 1\)") as err:
        mt.read_model_answers(path, questions)
    _located(err.value, path, 4)  # blank line 2 still counts


def test_require_all_lists_missing_questions(tmp_path, questions):
    path = _write(tmp_path / "m.jsonl", [_answer(81)])
    assert set(mt.read_model_answers(path, questions)) == {81}
    with pytest.raises(InputError, match="no answer to 79 question"):
        mt.read_model_answers(path, questions, require_all=True)


def test_malformed_answer_fields_are_located(tmp_path):
    path = _write(tmp_path / "m.jsonl", [_answer(81), {"question_id": "82", "choices": []}])
    with pytest.raises(InputError, match="question_id' must be int") as err:
        mt.read_model_answers(path)
    _located(err.value, path, 2)
    path = _write(tmp_path / "n.jsonl", ['{"question_id": 81, '])
    with pytest.raises(InputError, match="invalid JSON") as err:
        mt.read_model_answers(path)
    _located(err.value, path, 1)


def _single_row(**kw) -> dict:
    row = {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "user_prompt": "u",
           "judgment": "Rating: [[8]]", "score": 8, "turn": 1, "tstamp": 1.0}
    row.update(kw)
    return row


def _pair_row(**kw) -> dict:
    row = {"question_id": 81, "model_1": "a", "model_2": "b", "g1_winner": "model_1", "g2_winner": "model_1",
           "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "u1", "g1_judgment": "[[A]]",
           "g2_user_prompt": "u2", "g2_judgment": "[[B]]", "turn": 1, "tstamp": 1.0}
    row.update(kw)
    return row


def test_unknown_judge_prompt_name_names_file_and_line(tmp_path):
    path = _write(tmp_path / "gpt-4_single.jsonl", [_single_row(), _single_row(judge=["gpt-4", "single-v2"])])
    with pytest.raises(InputError,
                       match="unknown judge prompt name 'single-v2'; did you mean 'single-v1'") as err:
        mt.read_single_judgments(path)
    _located(err.value, path, 2)
    pair = _write(tmp_path / "gpt-4_pair.jsonl", [_pair_row(judge=["gpt-4", "pair-v3"])])
    with pytest.raises(InputError, match="unknown judge prompt name 'pair-v3'") as err:
        mt.read_pair_judgments(pair)
    _located(err.value, pair, 1)
    assert mt.read_pair_judgments(pair, prompt_names=None)[0].prompt_name == "pair-v3"


def test_single_judgments_minus_one_becomes_none(tmp_path):
    path = _write(tmp_path / "j_single.jsonl", [
        _single_row(), _single_row(question_id=82, score=-1, judgment="?"),
        _single_row(question_id=83, score=8.5, turn=2)])
    rows = mt.read_single_judgments(path)
    assert [(r.score, r.error) for r in rows] == [(8.0, None), (None, mt.NO_RATING), (8.5, None)]
    assert rows[0].judge_model == "gpt-4" and rows[0].prompt_name == "single-v1" and rows[2].turn == 2


def test_single_judgments_round_trip_in_fastchat_format(tmp_path):
    rows = [mt.SingleJudgment(81, "m", "judge-x", "single-v1", 1, 7.0, user_prompt="u", judgment="[[7]]",
                              tstamp=2.0),
            mt.SingleJudgment(82, "m", "judge-x", "single-v1-multi-turn", 2, None, error="no [[rating]]",
                              judgment="meh", tstamp=3.0),
            mt.SingleJudgment(101, "m", "judge-x", "single-math-v1", 1, 6.5, tstamp=4.0)]
    path = tmp_path / "judge-x_single.jsonl"
    mt.write_single_judgments(path, rows[:2])
    mt.write_single_judgments(path, rows[2:], append=True)
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(raw[0]) == ["question_id", "model", "judge", "user_prompt", "judgment", "score", "turn",
                            "tstamp"]
    assert [r["score"] for r in raw] == [7, -1, 6.5]  # −1 only in the FastChat file
    assert isinstance(raw[0]["score"], int) and raw[0]["judge"] == ["judge-x", "single-v1"]
    back = mt.read_single_judgments(path)
    assert [(b.question_id, b.score, b.turn, b.prompt_name) for b in back] == \
        [(r.question_id, r.score, r.turn, r.prompt_name) for r in rows]
    assert back[1].error == mt.NO_RATING


def test_pair_judgments_round_trip_in_fastchat_format(tmp_path):
    rows = [mt.PairJudgment(81, "a", "b", "j", "pair-v2", 1, "model_1", "tie", tstamp=1.0),
            mt.PairJudgment(82, "a", "b", "j", "pair-v2", 1, None, "model_2", g1_error="no verdict",
                            tstamp=1.0)]
    path = tmp_path / "j_pair.jsonl"
    mt.write_pair_judgments(path, rows)
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(raw[0]) == ["question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge",
                            "g1_user_prompt", "g1_judgment", "g2_user_prompt", "g2_judgment", "turn",
                            "tstamp"]
    assert (raw[1]["g1_winner"], raw[1]["g2_winner"]) == ("error", "model_2")
    back = mt.read_pair_judgments(path)
    assert [(b.g1_winner, b.g2_winner) for b in back] == [("model_1", "tie"), (None, "model_2")]
    assert back[1].g1_error == mt.NO_VERDICT and back[1].g2_error is None


def test_bad_judgment_values_are_located(tmp_path):
    path = _write(tmp_path / "p.jsonl", [_pair_row(), _pair_row(question_id=82, g2_winner="A")])
    with pytest.raises(InputError, match="g2_winner must be one of") as err:
        mt.read_pair_judgments(path)
    _located(err.value, path, 2)
    path = _write(tmp_path / "s.jsonl", [_single_row(turn=3)])
    with pytest.raises(InputError, match="turn must be 1 or 2"):
        mt.read_single_judgments(path)
    path = _write(tmp_path / "s2.jsonl", [{k: v for k, v in _single_row().items() if k != "score"}])
    with pytest.raises(InputError, match="missing field 'score'"):
        mt.read_single_judgments(path)


def test_duplicate_judgments_error_across_files_unless_kept(tmp_path):
    first = _write(tmp_path / "a_single.jsonl", [_single_row(), _single_row(turn=2)])
    second = _write(tmp_path / "b_single.jsonl", [_single_row(question_id=82), _single_row(turn=2, score=3)])
    with pytest.raises(InputError, match=rf"first at {first}:2") as err:
        mt.read_single_judgments([first, second])
    _located(err.value, second, 2)
    assert len(mt.read_single_judgments([first, second], keep_duplicates=True)) == 4
    # Same models in the other slot order are a different comparison, as in FastChat.
    pair = _write(tmp_path / "p_pair.jsonl", [_pair_row(), _pair_row(model_1="b", model_2="a")])
    assert len(mt.read_pair_judgments(pair)) == 2
    pair = _write(tmp_path / "q_pair.jsonl", [_pair_row(), _pair_row()])
    with pytest.raises(InputError, match="duplicate judgment"):
        mt.read_pair_judgments(pair)


def test_judgment_kind(tmp_path):
    assert mt.judgment_kind(_write(tmp_path / "x.jsonl", [_single_row()])) == "single"
    assert mt.judgment_kind(_write(tmp_path / "y.jsonl", [_pair_row()])) == "pair"
    assert mt.judgment_kind(_write(tmp_path / "gpt-4_pair.jsonl", [])) == "pair"
    assert mt.judgment_kind(_write(tmp_path / "empty.jsonl", []), default="single") == "single"
    with pytest.raises(InputError, match="give --mode"):
        mt.judgment_kind(tmp_path / "empty.jsonl")
    with pytest.raises(InputError, match="neither"):
        mt.judgment_kind(_write(tmp_path / "z.jsonl", [{"question_id": 1}]))
