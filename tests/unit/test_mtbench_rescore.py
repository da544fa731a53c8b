"""`evalbench score mtbench`: re-scoring hand-made FastChat judgment files equals hand computation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import evalbench.cli
from evalbench.cli import main
from evalbench.errors import InputError
from evalbench.suites.mtbench.rescore import format_table, rescore, result_to_json


@pytest.fixture(autouse=True)
def only_score_command(monkeypatch):
    # Build the CLI with just `score`, so these tests do not depend on other sub-commands.
    monkeypatch.setattr(evalbench.cli, "COMMANDS", {"score": "evalbench.cli.score:add_command"})


def _single(qid, model, turn, score, prompt="single-v1"):
    return {"question_id": qid, "model": model, "judge": ["gpt-4", prompt], "user_prompt": "...",
            "judgment": f"Rating: [[{score}]]" if score != -1 else "no rating", "score": score,
            "turn": turn, "tstamp": 1687000000.0}


def _pair(qid, m1, m2, g1, g2, turn=1):
    return {"question_id": qid, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2,
            "judge": ["gpt-4", "pair-v2" if turn == 1 else "pair-v2-multi-turn"], "g1_user_prompt": "...",
            "g1_judgment": "...", "g2_user_prompt": "...", "g2_judgment": "...", "turn": turn,
            "tstamp": 1687000000.0}


def _write(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def single_file(tmp_path):
    # q81 is writing, q111 is math (MT-bench ids: 81-90 writing, 111-120 math).
    return _write(tmp_path / "gpt-4_single.jsonl", [
        _single(81, "vicuna", 1, 9), _single(81, "vicuna", 2, 7, "single-v1-multi-turn"),
        _single(111, "vicuna", 1, 3, "single-math-v1"),
        _single(111, "vicuna", 2, -1, "single-math-v1-multi-turn"),
        _single(81, "alpaca", 1, 5), _single(81, "alpaca", 2, 4, "single-v1-multi-turn"),
        _single(111, "alpaca", 1, 2, "single-math-v1"),
        _single(111, "alpaca", 2, 1, "single-math-v1-multi-turn"),
    ])


@pytest.fixture
def pair_file(tmp_path):
    return _write(tmp_path / "gpt-4_pair.jsonl", [
        _pair(81, "vicuna", "gpt-3.5-turbo", "model_1", "model_1"),   # 1 vicuna wins
        _pair(82, "vicuna", "gpt-3.5-turbo", "model_2", "model_1"),   # 2 inconsistent -> tie
        _pair(83, "vicuna", "gpt-3.5-turbo", "error", "model_2", 2),  # 3 dropped
        _pair(81, "alpaca", "gpt-3.5-turbo", "model_2", "model_2"),   # 4 alpaca loses
        _pair(82, "alpaca", "gpt-3.5-turbo", "tie", "tie"),           # 5 tie
        _pair(81, "alpaca", "vicuna", "model_2", "model_2"),          # 6 vicuna wins
    ])


# Hand computation for single_file (FastChat: drop score -1, mean per turn, pooled average):
#   vicuna: turn 1 (9 + 3)/2 = 6; turn 2 7; average (9 + 7 + 3)/3 = 19/3; writing (9 + 7)/2 = 8; math 3
#   alpaca: turn 1 (5 + 2)/2 = 3.5; turn 2 (4 + 1)/2 = 2.5; average 12/4 = 3; writing 4.5; math 1.5
def test_rescore_single_equals_hand_computation(single_file):
    result = rescore([single_file], categories={81: "writing", 111: "math"})
    assert result.mode == "single" and result.judges == ("gpt-4",) and result.n_rows == 8
    vicuna, alpaca = result.scores
    assert vicuna.model == "vicuna" and vicuna.turn_1 == 6.0 and vicuna.turn_2 == 7.0
    assert vicuna.average == pytest.approx(19 / 3) and (vicuna.n, vicuna.n_failed) == (3, 1)
    assert vicuna.categories == {"math": 3.0, "writing": 8.0}
    assert (alpaca.turn_1, alpaca.turn_2, alpaca.average, alpaca.n_failed) == (3.5, 2.5, 3.0, 0)
    assert alpaca.categories == {"math": 1.5, "writing": 4.5}


# Hand computation for pair_file, win_rate = (win + tie/2) / n:
#   vs gpt-3.5-turbo: vicuna rows 1 W, 2 T (3 dropped) -> 1.5/2 = 0.75; alpaca rows 4 L, 5 T -> 0.5/2 = 0.25
#   all pairs: vicuna 1 W, 2 T, 6 W -> 2.5/3; gpt-3.5-turbo 1 L, 2 T, 4 W, 5 T -> 2/4;
#              alpaca 4 L, 5 T, 6 L -> 0.5/3
def test_rescore_pair_vs_baseline_equals_hand_computation(pair_file):
    result = rescore([pair_file], baseline="gpt-3.5-turbo")
    got = {s.model: (s.win, s.loss, s.tie, s.n, s.n_failed, s.win_rate) for s in result.scores}
    assert got == {"vicuna": (1, 0, 1, 2, 1, 0.75), "alpaca": (0, 1, 1, 2, 0, 0.25)}


def test_rescore_pair_all_pairs_equals_hand_computation(pair_file):
    result = rescore([pair_file])
    got = {s.model: (s.win, s.loss, s.tie, s.n) for s in result.scores}
    assert got == {"vicuna": (2, 0, 1, 3), "gpt-3.5-turbo": (1, 1, 2, 4), "alpaca": (0, 2, 1, 3)}
    rates = [s.win_rate for s in result.scores]
    assert rates == pytest.approx([2.5 / 3, 0.5, 0.5 / 3])  # sorted best first


def test_cli_single_json(single_file, capsys):
    assert main(["score", "mtbench", "--judgments", single_file, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "single" and out["n_rows"] == 8
    models = {m["model"]: m for m in out["models"]}
    assert models["vicuna"]["average"] == pytest.approx(19 / 3)
    assert models["alpaca"]["turn_2"] == 2.5
    # Categories come from the MT-bench questions in the data dir.
    assert models["vicuna"]["categories"] == {"math": 3.0, "writing": 8.0}


def test_cli_questions_file_and_foreign_question_ids(single_file, tmp_path, capsys):
    questions = _write(tmp_path / "q.jsonl", [{"question_id": 81, "category": "poetry", "turns": ["a", "b"]},
                                              {"question_id": 111, "category": "sums", "turns": ["a", "b"]}])
    assert main(["score", "mtbench", "--judgments", single_file, "--questions", questions, "--json"]) == 0
    models = {m["model"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert models["alpaca"]["categories"] == {"poetry": 4.5, "sums": 1.5}
    # Ids outside MT-bench (e.g. another question set): scores still, without categories.
    foreign = _write(tmp_path / "x_single.jsonl", [_single(5001, "m", 1, 6)])
    assert main(["score", "mtbench", "--judgments", foreign, "--json"]) == 0
    (m,) = json.loads(capsys.readouterr().out)["models"]
    assert (m["average"], m["categories"]) == (6.0, {})


def test_cli_single_table(single_file, capsys):
    assert main(["score", "mtbench", "--judgments", single_file]) == 0
    out = capsys.readouterr().out
    vicuna = next(line for line in out.splitlines() if line.startswith("vicuna") and "6.333333" in line)
    assert vicuna.split() == ["vicuna", "6.000000", "7.000000", "6.333333", "3", "1"]
    assert "writing" in out


def test_cli_pair_baseline_json_and_table(pair_file, capsys):
    assert main(["score", "mtbench", "--judgments", pair_file, "--baseline", "gpt-3.5-turbo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "pair" and out["baseline"] == "gpt-3.5-turbo"
    # FastChat's names (issue 18): win_rate_adjusted = (win + tie/2) / n, win_rate = win / n
    assert [(m["model"], m["win_rate_adjusted"]) for m in out["models"]] == [("vicuna", 0.75), ("alpaca", 0.25)]
    assert [(m["win_rate"], m["loss_rate"]) for m in out["models"]] == [(0.5, 0.0), (0.0, 0.5)]
    assert list(out["models"][0])[:7] == ["model", "win", "loss", "tie", "win_rate", "loss_rate",
                                          "win_rate_adjusted"]
    assert main(["score", "mtbench", "--judgments", pair_file, "--mode", "pair"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[2].split()[:6] == ["vicuna", "2", "0", "1", "3", "0.833333"]
    assert table.splitlines()[1].split()[4:8] == ["n", "win_rate_adjusted", "win_rate", "loss_rate"]
    assert table.splitlines()[2].split()[6:8] == ["0.666667", "0.000000"]  # FastChat's win_rate = 2/3


def test_cli_errors_exit_2_and_name_the_file(single_file, pair_file, tmp_path, capsys):
    assert main(["score", "mtbench", "--judgments", single_file, "--mode", "pair"]) == 2
    assert single_file in capsys.readouterr().err
    assert main(["score", "mtbench", "--judgments", single_file, pair_file]) == 2
    assert pair_file in capsys.readouterr().err
    assert main(["score", "mtbench", "--judgments", single_file, "--baseline", "x"]) == 2
    assert "--baseline" in capsys.readouterr().err
    bad = _write(tmp_path / "bad_single.jsonl", [_single(81, "m", 1, 5), _single(82, "m", 1, 5, "single-v3")])
    assert main(["score", "mtbench", "--judgments", bad]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "unknown judge prompt name 'single-v3'" in err


def test_cli_duplicates_fail_unless_kept(single_file, capsys):
    assert main(["score", "mtbench", "--judgments", single_file, single_file, "--json"]) == 2
    assert "duplicate judgment" in capsys.readouterr().err
    args = ["score", "mtbench", "--judgments", single_file, single_file, "--keep-duplicates", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    # Every row counted twice, as FastChat would: means unchanged, counts doubled.
    vicuna = next(m for m in out["models"] if m["model"] == "vicuna")
    assert (vicuna["n"], vicuna["n_failed"]) == (6, 2) and vicuna["average"] == pytest.approx(19 / 3)


def test_table_and_json_helpers(pair_file):
    result = rescore([pair_file])
    assert "win_rate_adjusted" in format_table(result)
    assert result_to_json(result)["models"][0]["model"] == "vicuna"
    with pytest.raises(InputError, match="no judgment files"):
        rescore([])
