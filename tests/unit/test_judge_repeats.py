"""Judge repeats (issue 12 item 5): re-judging the same outputs k times, and the judge variance component.

* repeat 0 is the ordinary judgment (same request, same cache key); repeats r >= 1 have their own keys;
* AlpacaEval: k = 2 shows each pair in both orders and the record's score is the mean;
* MT-bench single grading: repeats r >= 1 sample the judge (seed + temperature), repeat 0 stays greedy;
* `variance_components` through `GroupData.score_array` recovers a simulated judge component, and the
  tests keep one value per (model, generation seed, prompt);
* `evalbench run --judge-repeats 2` on fakes, then `evalbench compare`: a non-null judge component.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evalbench.api import drive
from evalbench.generate.backend import CachedBackend, request_key
from evalbench.generate.fake import FakeBackend
from evalbench.io import read_json, read_jsonl
from evalbench.judge.base import ModelJudge, RateItem
from evalbench.judge.fake import FakeJudge
from evalbench.judge.formats import text_sampling
from evalbench.judge.repeats import REPEAT_TEMPERATURE, merge_repeats, repeat_seed
from evalbench.store import ResultsStore, SampleRecord
from evalbench.suites.alpaca.judge import Pair, build_item, build_request, candidate_first, resolve_prompt
from evalbench.suites.alpaca.suite import AlpacaEval2, AlpacaOptions
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.mtbench.suite import MTBench, MTBenchOptions

QIDS = (81, 101)  # writing and reasoning (reference-guided)


class _Recorder:
    """A judge backend that remembers every request it was sent (to compute their cache keys)."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    @property
    def who(self):
        return self.inner.who

    def generate(self, requests, *, desc=None):
        self.seen += list(requests)
        return self.inner.generate(requests, desc=desc)


def _position_biased_judge():
    """A logprob judge that prefers whatever is shown first (`m`), P = 0.8, whatever the outputs."""
    backend = FakeBackend("judge", top_logprobs=lambda body: [("m", math.log(0.8)), ("M", math.log(0.2))])
    return _Recorder(CachedBackend(backend, None))


def _drive(tmp_path, suite, judge, seeds=(0,)):
    run = ResultsStore(tmp_path / "results").start({"test": suite.name}, "h", run_id="r")
    ckpt = Checkpoint("pol", CachedBackend(FakeBackend("pol"), None), base_model="fake")
    return run, drive(run, [suite], [ckpt], list(seeds), SuiteContext(judge=judge))


# ------------------------------------------------------------------------------ repeats and keys

def test_merge_repeats_one_repeat_is_unchanged_and_k_repeats_average_the_valid_ones():
    assert merge_repeats([{"score": 7.0}]) == ({"score": 7.0}, {})
    scores, data = merge_repeats([{"score": 7.0, "turn_1": None}, {"score": 8.0, "turn_1": None},
                                  {"score": None, "turn_1": None}])
    assert scores == {"score": 7.5, "turn_1": None}
    assert data == {"judge_repeats": {"score": [7.0, 8.0, None], "turn_1": [None, None, None]}}
    assert repeat_seed(0) is None and repeat_seed(1) != repeat_seed(2) and 0 <= repeat_seed(1) < 2 ** 31


def test_a_repeat_changes_the_cache_key_only_from_repeat_1_on(data_dir):
    prompt = resolve_prompt()
    pair = Pair("Name a colour.", "Blue.", "Red, probably.")
    assert build_item(pair, prompt, repeat=0) == build_item(pair, prompt)
    recorder = _position_biased_judge()
    ModelJudge(recorder).compare([build_item(pair, prompt, repeat=r) for r in range(3)])
    keys = [request_key(recorder.who, req) for req in recorder.seen]
    # repeat 0 is exactly the request (and cache entry) of a run without repeats
    assert keys[0] == request_key(recorder.who, build_request(pair, prompt)[0])
    assert len(set(keys)) == 3  # repeat 2 has repeat 0's order but its own judge seed
    assert recorder.seen[0].sampling.seed is None and recorder.seen[1].sampling.seed == repeat_seed(1)
    # MT-bench rating items: no seed / temperature = FastChat's decoding, unchanged
    rec = _Recorder(CachedBackend(FakeBackend("judge", responder=lambda body: "[[7]]"), None))
    msgs = ({"role": "user", "content": "rate"},)
    ModelJudge(rec).rate([RateItem(msgs), RateItem(msgs, seed=repeat_seed(1), temperature=REPEAT_TEMPERATURE)])
    assert rec.seen[0].sampling == text_sampling("single")
    assert (rec.seen[1].sampling.temperature, rec.seen[1].sampling.seed) == (REPEAT_TEMPERATURE, repeat_seed(1))


# ------------------------------------------------------------------------------------ AlpacaEval

def test_alpaca_two_repeats_judge_both_orders_and_score_the_mean(tmp_path):
    recorder = _position_biased_judge()
    suite = AlpacaEval2(AlpacaOptions(instructions=tuple(range(4)), max_new_tokens=16, judge_repeats=2))
    run, final = _drive(tmp_path, suite, ModelJudge(recorder, name="biased"))
    samples = final[("alpaca", "pol", 0)]
    assert len(recorder.seen) == 2 * 4  # every instruction judged twice
    for s in samples:
        first, second = s.data["judge_repeat_switched"]
        assert first == candidate_first(load_instruction(s)) and second is (not first)
        # the candidate gets 1.8 when shown first (position bias) and 1.2 when second: the mean is a draw
        assert s.data["judge_repeats"]["preference"] == pytest.approx([1.8 if first else 1.2, 1.2 if first else 1.8])
        assert s.scores["preference"] == pytest.approx(1.5) and s.scores["win_rate"] == pytest.approx(50.0)
    assert suite.summarize(samples)["win_rate"] == pytest.approx(50.0)
    # annotations.json stays one alpaca_eval row per instruction: repeat 0's judgments
    rows = read_json(run.artifacts / "alpaca" / "pol" / "seed0" / "annotations.json")
    assert [r["is_switched_outputs"] for r in rows] == [s.data["judge_repeat_switched"][0] for s in samples]


def load_instruction(sample: SampleRecord) -> str:
    from evalbench.suites.alpaca.data import load_eval_set

    return load_eval_set()[int(sample.sample_id)].instruction


def test_alpaca_fake_judge_repeats_and_one_repeat_writes_what_it_always_did(tmp_path):
    judge = FakeJudge()
    suite = AlpacaEval2(AlpacaOptions(instructions=tuple(range(3)), max_new_tokens=16, judge_repeats=2))
    _, final = _drive(tmp_path / "k2", suite, judge)
    assert [i.candidate_first for i in judge.compared[3:]] == [not i.candidate_first for i in judge.compared[:3]]
    for s in final[("alpaca", "pol", 0)]:
        values = s.data["judge_repeats"]["preference"]
        assert len(values) == 2 and s.scores["preference"] == pytest.approx(sum(values) / 2)
    plain = AlpacaEval2(AlpacaOptions(instructions=tuple(range(3)), max_new_tokens=16))
    one = AlpacaEval2(AlpacaOptions(instructions=tuple(range(3)), max_new_tokens=16, judge_repeats=1))
    _, a = _drive(tmp_path / "plain", plain, FakeJudge())
    _, b = _drive(tmp_path / "one", one, FakeJudge())
    assert [s.model_dump() for s in a[("alpaca", "pol", 0)]] == [s.model_dump() for s in b[("alpaca", "pol", 0)]]
    assert all("judge_repeats" not in s.data for s in a[("alpaca", "pol", 0)])


# ---------------------------------------------------------------------------------------- MT-bench

def test_mtbench_repeats_sample_the_judge_from_repeat_1_on(tmp_path):
    judge = FakeJudge()  # its verdict hashes the repeat's seed and temperature too
    suite = MTBench(MTBenchOptions(question_ids=QIDS, max_new_tokens=16, judge_repeats=3))
    run, final = _drive(tmp_path, suite, judge)
    n = 2 * len(QIDS)  # two turns per question
    assert len(judge.rated) == 3 * n
    assert {(i.seed, i.temperature) for i in judge.rated[:n]} == {(None, None)}  # FastChat's greedy rating
    assert {(i.seed, i.temperature) for i in judge.rated[n:]} == {(repeat_seed(1), REPEAT_TEMPERATURE),
                                                                 (repeat_seed(2), REPEAT_TEMPERATURE)}
    samples = final[("mtbench", "pol", 0)]
    for s in samples:
        reps = s.data["judge_repeats"]
        assert len(reps["turn_1"]) == 3 and s.scores["turn_1"] == pytest.approx(np.mean(reps["turn_1"]))
        assert s.scores["score"] == pytest.approx(np.mean(reps["score"]))
    assert any(len(set(s.data["judge_repeats"]["turn_1"])) > 1 for s in samples)
    # FastChat's judgment file holds the reference (repeat 0) rating of each turn, once
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "fake_single.jsonl")
    assert len(rows) == n


def test_mtbench_one_repeat_writes_what_it_always_did(tmp_path):
    plain = MTBench(MTBenchOptions(question_ids=QIDS, max_new_tokens=16))
    one = MTBench(MTBenchOptions(question_ids=QIDS, max_new_tokens=16, judge_repeats=1))
    ja, jb = FakeJudge(), FakeJudge()
    _, a = _drive(tmp_path / "plain", plain, ja)
    _, b = _drive(tmp_path / "one", one, jb)
    assert [s.model_dump() for s in a[("mtbench", "pol", 0)]] == [s.model_dump() for s in b[("mtbench", "pol", 0)]]
    assert ja.rated == jb.rated and {(i.seed, i.temperature) for i in ja.rated} == {(None, None)}


def test_mtbench_repeats_apply_to_single_grading_only():
    with pytest.raises(ValueError, match="judge_repeats re-judges single grading"):
        MTBenchOptions(single=False, pairwise="all", judge_repeats=2)
    assert MTBenchOptions(pairwise="all", judge_repeats=2).judge_repeats == 2


# ------------------------------------------------------------------------------ variance components

def _simulated_run(root, *, sd_seed=0.5, sd_gen=0.8, sd_judge=1.2, sd_prompt=1.0, sd_mp=0.5,
                   models=4, gens=2, repeats=3, prompts=300, rng_seed=0):
    """Records with k judge repeats held in data["judge_repeats"], the score their mean."""
    rng = np.random.default_rng(rng_seed)
    prompt = rng.normal(0, sd_prompt, prompts)
    store = ResultsStore(root)
    run = store.start({"synthetic": "repeats"}, "hash-rep", run_id="rep")
    rows = []
    for group in ("a", "b"):
        for m in range(models):
            ckpt = f"{group}-s{m}"
            base = rng.normal(0, sd_seed) + prompt + rng.normal(0, sd_mp, prompts)
            for g in range(gens):
                cell = base + rng.normal(0, sd_gen, prompts)
                y = cell[None, :] + rng.normal(0, sd_judge, (repeats, prompts))  # (repeats, prompts)
                run.append_samples(SampleRecord(
                    suite="alpaca", checkpoint=ckpt, seed=g, sample_id=str(p), scores={"win_rate": float(y[:, p].mean())},
                    data={"judge_repeats": {"win_rate": [float(v) for v in y[:, p]]}}) for p in range(prompts))
                rows.append({"suite": "alpaca", "suite_version": "1", "checkpoint": ckpt, "group": group,
                             "train_seed": m, "seed": g, "base_model": "tiny", "judge": "j",
                             "metrics": {"win_rate": float(y.mean())}, "n_samples": prompts, "n_failed": 0})
    run.write_summary({"results": rows})
    run.finish("success")
    return run.path


def test_variance_components_recover_a_simulated_judge_component(tmp_path):
    from evalbench.aggregate.compare import compare_runs
    from evalbench.aggregate.summarize import ResultSet, load_runs

    rs = ResultSet(load_runs([_simulated_run(tmp_path)]))
    gd = rs.group("alpaca", "a")
    comp = compare_runs(rs, baseline="a", metrics=["alpaca:win_rate"], iters=200)
    cell = comp.cells[("a", "alpaca", "win_rate")]
    assert cell.var_judge == pytest.approx(1.2 ** 2, rel=0.1)
    assert cell.var_generation == pytest.approx(0.8 ** 2, rel=0.2)
    assert cell.var_prompt == pytest.approx(1.0, rel=0.35)
    row = next(r for r in comp.rows() if r["group"] == "b")
    assert row["var_judge"] == pytest.approx(1.44, rel=0.1)
    arr = gd.score_array("win_rate", judge_repeats=True)
    assert arr.values.shape == (4, 2, 3, 300)
    # without the repeat axis: one value per (model, generation seed, prompt), the record's mean
    assert np.allclose(gd.score_array("win_rate").values, arr.values.mean(axis=2))


def test_judge_repeats_are_averaged_in_the_tests_never_counted_as_samples(tmp_path):
    from evalbench.aggregate.compare import compare_runs
    from evalbench.aggregate.summarize import ResultSet, load_runs

    path = _simulated_run(tmp_path, models=3, prompts=60, rng_seed=3)
    rs = ResultSet(load_runs([path]))
    comp = compare_runs(rs, baseline="a", metrics=["alpaca:win_rate"], iters=200)
    o = comp.outcomes[("b", "alpaca", "win_rate")]
    assert o.test == "hierarchical" and o.n_prompts == 60 and o.n_models == 3
    # the same records without their repeats: the test sees the same one value per sample
    plain = ResultsStore(tmp_path / "plain").start({"synthetic": "plain"}, "hash-plain", run_id="plain")
    src = next(iter(rs.runs.values()))
    plain.append_samples(s.model_copy(update={"data": {}}) for s in src.samples())
    plain.write_summary(read_json(path / "summary.json"))
    plain.finish("success")
    comp2 = compare_runs(ResultSet(load_runs([plain.path])), baseline="a", metrics=["alpaca:win_rate"], iters=200)
    o2 = comp2.outcomes[("b", "alpaca", "win_rate")]
    assert (o.p_value, o.delta, o.df) == pytest.approx((o2.p_value, o2.delta, o2.df))
    assert comp2.cells[("a", "alpaca", "win_rate")].var_judge is None


def test_report_has_a_compact_variance_components_table(tmp_path):
    from evalbench.aggregate.compare import compare_runs
    from evalbench.aggregate.summarize import ResultSet, load_runs
    from evalbench.report.report import VARIANCE_COMPONENTS, _variance_section, variance_tables

    rs = ResultSet(load_runs([_simulated_run(tmp_path, models=2, gens=2, repeats=2, prompts=40)]))
    comp = compare_runs(rs, baseline="a", metrics=["alpaca:win_rate"], iters=200)
    (suite, metric, rows), = variance_tables(comp)
    assert (suite, metric) == ("alpaca", "win_rate") and [g for g, _ in rows] == ["a", "b"]
    assert all(len(values) == len(VARIANCE_COMPONENTS) and values[2] is not None for _, values in rows)
    sec = _variance_section(comp)
    assert "| group | training seed | generation | judge | prompt | residual |" in sec.md
    assert "<th>judge</th>" in sec.html
# ----------------------------------------------------------------------------------- end to end

def test_run_with_judge_repeats_then_compare_shows_a_judge_component(tmp_path, capsys, monkeypatch):
    from evalbench.cli import main

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    res = tmp_path / "res"
    assert main(["-q", "run", "--suite", "alpaca", "--model", "pol", "--set", "model.backend=fake",
                 "--judge", "fake", "--judge-repeats", "2", "--seeds", "0,1", "--limit", "12",
                 "--run-id", "rep", "--results", str(res)]) == 0
    records = [json.loads(line) for line in (res / "runs" / "rep" / "samples.jsonl").read_text().splitlines()]
    assert records and all(len(r["data"]["judge_repeats"]["win_rate"]) == 2 for r in records if not r["error"])
    capsys.readouterr()
    assert main(["-q", "compare", str(res / "runs" / "rep"), "--format", "json", "--iters", "200"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = [r for r in out["rows"] if r["metric"] == "win_rate"]
    assert rows and all(r["var_judge"] is not None and r["var_judge"] > 0 for r in rows)


def test_alpaca_judge_and_mtbench_judge_take_judge_repeats(tmp_path, data_dir, capsys, monkeypatch):
    from evalbench.cli import main
    from evalbench.suites.alpaca.data import load_eval_set

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    rows = [{"instruction": r.instruction, "output": f"answer {i}", "generator": "mine"}
            for i, r in enumerate(load_eval_set()[:3])]
    outputs = tmp_path / "model_outputs.json"
    outputs.write_text(json.dumps(rows))
    assert main(["-q", "alpaca", "judge", "--outputs", str(outputs), "--judge", "fake", "--judge-repeats", "2",
                 "--out", str(tmp_path / "a"), "--run-id", "a", "--json"]) == 0
    run = ResultsStore(tmp_path / "a").open("a")
    assert all(len(s.data["judge_repeats"]["preference"]) == 2 for s in run.samples(suite="alpaca"))
    answers = data_dir / "mt_bench" / "model_answer" / "alpaca-13b.jsonl"
    assert main(["-q", "mtbench", "judge", "--answers", str(answers), "--judge", "fake", "--question-ids", "81",
                 "--judge-repeats", "3", "--out", str(tmp_path / "m"), "--run-id", "m"]) == 0
    run = ResultsStore(tmp_path / "m").open("m")
    assert [len(s.data["judge_repeats"]["score"]) for s in run.samples(suite="mtbench")] == [3]
    # a run without a judging suite refuses the option
    assert main(["-q", "run", "--suite", "diversity", "--model", "pol", "--set", "model.backend=fake",
                 "--judge-repeats", "2", "--results", str(tmp_path / "res")]) == 2
    assert "--judge-repeats applies to suites that judge" in capsys.readouterr().err
