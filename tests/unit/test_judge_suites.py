"""Suites and commands with the in-package FakeJudge: no HTTP, no model; verdicts scripted by hand.

The policy is `evalbench.generate.fake.FakeBackend` (echo answers); the judge is a FakeJudge, so
every expected number is set by the script. Also: `--judge same` is marked self-judged and warned
about, and a judged suite without `--judge` is refused before a run directory exists.
"""

from __future__ import annotations

import json
import logging

from evalbench.api import drive
from evalbench.generate.backend import CachedBackend
from evalbench.generate.fake import FakeBackend
from evalbench.io import read_json, read_jsonl
from evalbench.judge.fake import FAILED, FakeJudge
from evalbench.store import ResultsStore
from evalbench.suites.alpaca.data import load_eval_set
from evalbench.suites.alpaca.suite import AlpacaEval2, AlpacaOptions
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.mtbench.suite import MTBench, MTBenchOptions

QIDS = (81, 82, 101, 111)  # writing x2, reasoning and math (reference-guided)


def _checkpoints(*names):
    return [Checkpoint(n, CachedBackend(FakeBackend(n), None), base_model="fake") for n in names]


def _drive(tmp_path, suite, checkpoints, judge, limit=None):
    run = ResultsStore(tmp_path / "results").start({"test": suite.name}, "h", run_id="r")
    final = drive(run, [suite], checkpoints, [0], SuiteContext(judge=judge, limit=limit))
    return run, final


# ------------------------------------------------------------------------------------ AlpacaEval

def test_alpaca_with_a_scripted_fake_judge(tmp_path):
    # The candidate wins every comparison but the second, which the judge fails.
    judge = FakeJudge(preferences=[2.0, None, 2.0, 2.0, 2.0, 2.0], name="scripted")
    suite = AlpacaEval2(AlpacaOptions(instructions=tuple(range(6)), max_new_tokens=16))
    run, final = _drive(tmp_path, suite, _checkpoints("pol"), judge)
    samples = final[("alpaca", "pol", 0)]
    metrics = suite.summarize(samples)
    assert metrics["win_rate"] == 100.0 and metrics["n_total"] == 5 and metrics["n_failed"] == 1
    assert samples[1].error == f"judge: {FAILED}" and samples[1].scores["preference"] is None
    # One logprob comparison per instruction, in the seeded order the suite chose.
    assert [i.format for i in judge.compared] == ["logprob"] * 6
    assert [s.data["is_switched_outputs"] for s in samples] == [i.candidate_first for i in judge.compared]
    rows = read_json(run.artifacts / "alpaca" / "pol" / "seed0" / "annotations.json")
    assert {r["annotator"] for r in rows} == {"weighted_alpaca_eval_gpt4_turbo:scripted"}
    eval_set = load_eval_set()
    assert all(eval_set[i].instruction in judge.compared[i].messages[-1]["content"] for i in range(6))


# ---------------------------------------------------------------------------------------- MT-bench

def test_mtbench_single_grading_with_a_fake_judge(tmp_path):
    judge = FakeJudge(ratings=lambda item: None if "Hawaii" in item.messages[-1]["content"] else 7.0)
    suite = MTBench(MTBenchOptions(question_ids=QIDS, max_new_tokens=16))
    run, final = _drive(tmp_path, suite, _checkpoints("pol"), judge)
    metrics = suite.summarize(final[("mtbench", "pol", 0)])
    # Question 81 mentions Hawaii in both turns: 2 failed ratings; the other 6 are 7.
    assert (metrics["score"], metrics["n_failed"]) == (7.0, 2)
    assert len(judge.rated) == 2 * len(QIDS) and {i.format for i in judge.rated} == {"bracket_rating"}
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "fake_single.jsonl")
    assert sorted(r["score"] for r in rows) == [-1, -1] + [7] * 6  # FastChat's file keeps its -1


def test_mtbench_pairwise_with_a_fake_judge(tmp_path):
    # The judge prefers model_1 ("candidate") in both games: consistent wins for pol_a vs pol_b.
    judge = FakeJudge(preferences=[2.0])
    suite = MTBench(MTBenchOptions(question_ids=QIDS, max_new_tokens=16, single=False, pairwise="baseline",
                                   baseline="pol_b"))
    run, final = _drive(tmp_path, suite, _checkpoints("pol_a", "pol_b"), judge)
    m = suite.summarize(final[("mtbench", "pol_a", 0)])
    assert (m["pairwise_win_rate"], m["n_pairwise_wins"], m["n_pairwise_inconsistent"]) == (100.0, 8, 0)
    # Both orders were asked: game 1 shows the candidate (model_1) first, game 2 second.
    assert [i.candidate_first for i in judge.compared] == [True, False] * 8
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "fake_pair.jsonl")
    assert {(r["g1_winner"], r["g2_winner"]) for r in rows} == {("model_1", "model_1")}


# ------------------------------------------------------------------------- commands, self-judging

def _cli(*argv):
    from evalbench.cli import main

    return main(["-q", *map(str, argv)])


def test_alpaca_judge_and_mtbench_judge_take_judge_spec(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    rows = [{"instruction": r.instruction, "output": f"answer {i}", "generator": "mine"}
            for i, r in enumerate(load_eval_set()[:4])]
    outputs = tmp_path / "model_outputs.json"
    outputs.write_text(json.dumps(rows))
    assert _cli("alpaca", "judge", "--outputs", outputs, "--judge", "fake", "--out", tmp_path / "a", "--json") == 0
    assert json.loads(capsys.readouterr().out)["n_total"] == 4
    metrics = read_json(tmp_path / "a" / "metrics.json")
    assert metrics["judge"]["model"] == "fake" and metrics["judge"]["kind"] == "fake"
    answers = data_dir / "mt_bench" / "model_answer" / "alpaca-13b.jsonl"
    assert _cli("mtbench", "judge", "--answers", answers, "--judge", "fake", "--question-ids", 81, 82,
                "--out", tmp_path / "m", "--run-id", "m") == 0
    assert "judge: fake" in capsys.readouterr().out
    run = ResultsStore(tmp_path / "m").open("m")
    assert run.header()["judge"]["kind"] == "fake"
    assert [r["self_judged"] for r in run.summary()["results"]] == [False]


def test_no_judge_is_refused_before_a_run_exists(tmp_path, capsys):
    assert _cli("run", "--suite", "alpaca,mtbench", "--model", "pol", "--set", "model.backend=fake",
                "--results", tmp_path / "res") == 2
    err = capsys.readouterr().err
    assert "alpaca, mtbench need a judge and none was given" in err and "same" in err
    assert not (tmp_path / "res" / "runs").exists()
    assert _cli("alpaca", "judge", "--outputs", tmp_path / "x.json") == 2
    assert "alpaca judge needs a judge" in capsys.readouterr().err


def test_same_judge_is_warned_and_marked_self_judged(tmp_path, caplog, monkeypatch):
    from evalbench.api import run
    from evalbench.config import validate_spec
    from evalbench.runspec import RunSpec

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    spec = validate_spec(RunSpec, {
        "suites": ["mtbench"], "model": {"base": "pol", "backend": "fake"}, "judge": {"kind": "same"},
        "suite_options": {"mtbench": {"question_ids": [81], "max_new_tokens": 8}},
        "results_dir": str(tmp_path / "res")})
    with caplog.at_level(logging.WARNING):
        handle = run(spec, run_id="s")
    assert "SELF-JUDGED" in caplog.text
    assert handle.header()["judge"]["self_judged"] is True and handle.header()["judge"]["kind"] == "same"
    assert handle.header()["judge"]["constrained"] is True  # evalbench serves it: constrained by default
    assert [r["self_judged"] for r in handle.summary()["results"]] == [True]
