"""`evalbench score alpaca` and the AlpacaEval 2 file readers (evalbench.suites.alpaca)."""

from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pytest

from evalbench.cli import main
from evalbench.errors import InputError
from evalbench.suites.alpaca.data import (ModelOutput, load_eval_set, read_annotations, read_gamed_rows,
                                          read_instruction_difficulty, read_model_outputs,
                                          write_model_outputs)
from evalbench.suites.alpaca.rescore import RESULT_KEYS, rescore_annotations

CLAUDE = "alpaca_eval/results/claude-2/weighted_alpaca_eval_gpt4_turbo/annotations.json.gz"
LEADERBOARD = "alpaca_eval/leaderboards/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"


@pytest.fixture(scope="module")
def claude_rows(data_dir) -> list[dict]:
    with gzip.open(data_dir / CLAUDE, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def published(data_dir) -> dict[str, str]:
    with open(data_dir / LEADERBOARD, encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = {row[0]: dict(zip(header[1:], row[1:])) for row in reader}
    return rows["claude-2"]


def _write(tmp_path, rows, name="annotations.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_cli_json_on_published_file(data_dir, capsys, published):
    code = main(["score", "alpaca", "--annotations", str(data_dir / CLAUDE), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 1 and list(rows[0]) == list(RESULT_KEYS)
    row = rows[0]
    assert row["model"] == "claude-2"
    assert row["win_rate"] == pytest.approx(float(published["win_rate"]), abs=1e-6)
    assert row["n_total"] == 805
    assert row["length_controlled_winrate"] == pytest.approx(float(published["length_controlled_winrate"]),
                                                             abs=0.35)


def test_cli_table(data_dir, capsys, published):
    code = main(["score", "alpaca", "--annotations", str(data_dir / CLAUDE)])
    out = capsys.readouterr().out
    assert code == 0
    assert "claude-2" in out
    assert f"{float(published['win_rate']):.2f}" in out  # 17.19
    assert "LC win rate" in out


def test_cli_two_files_keep_their_order(tmp_path, data_dir, capsys, claude_rows):
    other = [dict(r, generator_2="claude-2-copy", preference=3 - r["preference"]) for r in claude_rows]
    path = _write(tmp_path, other)
    assert main(["score", "alpaca", "--annotations", str(data_dir / CLAUDE), str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["claude-2", "claude-2-copy"]
    # Mirrored preferences mirror the win rate around 50.
    assert rows[0]["win_rate"] + rows[1]["win_rate"] == pytest.approx(100.0)


def test_fewer_rows_are_allowed_with_a_warning(tmp_path, capsys, claude_rows):
    path = _write(tmp_path, claude_rows[:200])
    assert main(["score", "alpaca", "--annotations", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)[0]
    assert row["n_total"] == 200
    expected = np.mean([r["preference"] - 1 for r in claude_rows[:200]]) * 100
    assert row["win_rate"] == pytest.approx(expected)
    assert "200 of 805" in captured.err


def test_mismatched_instructions_are_listed(tmp_path, capsys, claude_rows):
    rows = [dict(r) for r in claude_rows[:50]]
    rows[3]["instruction"] = "Write a haiku about version control."
    rows[7]["instruction"] = rows[7]["instruction"] + " Please."
    path = _write(tmp_path, rows)
    assert main(["score", "alpaca", "--annotations", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "2 of 50 instruction(s) are not in the AlpacaEval 2 eval set" in err
    assert "row 3: 'Write a haiku about version control.'" in err and "row 7" in err


def test_repeated_instruction_is_an_error(tmp_path, claude_rows):
    rows = claude_rows[:20] + [claude_rows[5]]
    with pytest.raises(InputError, match="row 20 repeats row 5"):
        rescore_annotations([_write(tmp_path, rows)])


@pytest.mark.parametrize("mutate, fragment", [
    (lambda r: r.__setitem__("preference", -1), "row 4.preference"),
    (lambda r: r.__setitem__("preference", "2"), "row 4.preference"),
    (lambda r: r.pop("output_2"), "row 4.output_2"),
    (lambda r: r.__setitem__("generator_2", "someone-else"), "one model per file"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, capsys, claude_rows, mutate, fragment):
    rows = [dict(r) for r in claude_rows[:10]]
    mutate(rows[4])
    path = _write(tmp_path, rows)
    assert main(["score", "alpaca", "--annotations", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and fragment in err


def test_null_preferences_are_left_out(tmp_path, claude_rows):
    rows = [dict(r) for r in claude_rows[:100]]
    for r in rows[:10]:
        r["preference"] = None
    ann = read_annotations(_write(tmp_path, rows))
    assert ann.n_failed == 10
    result = rescore_annotations([_write(tmp_path, rows, "a.json")])[0]
    assert result["n_total"] == 90
    assert result["win_rate"] == pytest.approx(np.mean([r["preference"] - 1 for r in rows[10:]]) * 100)


def test_not_a_list_and_missing_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"instruction": "a"}', encoding="utf-8")
    with pytest.raises(InputError, match="expected a JSON list"):
        read_annotations(path)
    with pytest.raises(InputError, match="file not found"):
        read_annotations(tmp_path / "missing.json")


def test_model_outputs_round_trip(tmp_path):
    rows = [ModelOutput("Say hi", "Hi!", "m1", "selfinstruct"), ModelOutput("Count", "1 2 3", "m1")]
    path = tmp_path / "out" / "model_outputs.json"
    write_model_outputs(path, rows)
    assert read_model_outputs(path) == rows
    assert "dataset" not in json.loads(path.read_text(encoding="utf-8"))[1]
    with pytest.raises(ValueError, match="output"):
        write_model_outputs(path, [{"instruction": "a", "generator": "g"}])


def test_eval_set_from_data_dir():
    rows = load_eval_set()
    assert len(rows) == 805
    assert {r.generator for r in rows} == {"gpt4_1106_preview"}
    assert len({r.instruction for r in rows}) == 805


def test_lc_input_readers(tmp_path, data_dir):
    diff = read_instruction_difficulty(data_dir / "alpaca_eval/lc/instruction_difficulty.csv")
    assert diff.shape == (805,) and np.isfinite(diff).all()
    gamed = read_gamed_rows(data_dir / "alpaca_eval/lc/df_gamed_surrogate.csv")
    assert gamed.preference.shape == (1610,)
    assert ((gamed.preference >= 0) & (gamed.preference <= 1)).all()
    # Published mean win rates of the gamed baselines (data README): 64.26 / 22.96 on the surrogate.
    assert gamed.preference[:805].mean() * 100 == pytest.approx(64.26, abs=0.01)

    bad = tmp_path / "d.csv"
    bad.write_text("index,instruction_difficulty\n0,0.1\n2,0.3\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing \\[1\\]"):
        read_instruction_difficulty(bad)
    bad.write_text("index,instruction_difficulty\n0,abc\n", encoding="utf-8")
    with pytest.raises(InputError, match=":2"):
        read_instruction_difficulty(bad)
    g = tmp_path / "g.csv"
    g.write_text("model,preference,index,std_delta_len,instruction_difficulty,not_gamed_baseline\n"
                 "v,1.5,0,0.1,0.2,False\n", encoding="utf-8")
    with pytest.raises(InputError, match="outside \\[0, 1\\]"):
        read_gamed_rows(g)


def test_without_data_dir_the_hub_is_named(tmp_path, monkeypatch, capsys, claude_rows):
    # conftest sets HF_HUB_OFFLINE=1, so the hub fallback fails fast; the error must say what to do.
    path = _write(tmp_path, claude_rows[:5])
    monkeypatch.delenv("EVALBENCH_DATA_DIR")
    assert main(["score", "alpaca", "--annotations", str(path)]) == 2
    err = capsys.readouterr().err
    assert "tatsu-lab/alpaca_eval/alpaca_eval_gpt4_baseline.json" in err and "EVALBENCH_DATA_DIR" in err


def test_imports_stay_light():
    import subprocess
    import sys

    code = ("import sys, evalbench.score.winrate, evalbench.judge.logprob, evalbench.suites.alpaca.rescore\n"
            "heavy = [m for m in ('torch', 'vllm', 'lm_eval', 'sklearn', 'pandas', 'alpaca_eval') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
