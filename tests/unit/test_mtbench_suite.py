"""The MT-bench suite end to end against a local OpenAI-compatible stub (policy and judge).

The stub plays the policies ("pol_a", "pol_b") and the judge with scripted answers, so every
expected number below is a hand computation from that script (explained where it is used).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from evalbench.api import drive
from evalbench.cache import Cache
from evalbench.errors import InputError
from evalbench.generate.backend import CachedBackend
from evalbench.generate.client import OpenAICompatibleBackend
from evalbench.generate.fake import FakeModels
from evalbench.io import read_jsonl, stable_hash
from evalbench.serve.stub import StubServer, StubState
from evalbench.store import ResultsStore, SampleRecord
from evalbench.suites.base import SUITES, Checkpoint, SuiteContext
from evalbench.suites.mtbench import data as mt
from evalbench.suites.mtbench.rescore import rescore
from evalbench.suites.mtbench.suite import (MTBench, MTBenchOptions, answers_from_generations, category_means,
                                            fastchat_model_name, select_questions)

# writing, writing, reasoning (reference-guided), math (reference-guided)
QIDS = (81, 82, 101, 111)
HAWAII = "Hawaii"  # in question 81's first turn


def _policy_text(body) -> str:
    msgs = body["messages"]
    turn = (len(msgs) + 1) // 2  # [q1] -> turn 1; [q1, a1, q2] -> turn 2
    return f"<{body['model']}> turn{turn} reply to: {msgs[-1]['content'][:30]}"


def single_judge(body) -> str:
    """pol_a: turn 1 -> 8, turn 2 -> 6, except no rating for question 81 turn 2; pol_b: 4 / 2."""
    user = body["messages"][-1]["content"]
    turn2 = "### User:" in user
    if "<pol_a>" in user:
        if turn2 and HAWAII in user:
            return "I cannot decide on a rating."
        return "Fine. Rating: [[6]]" if turn2 else "Good. Rating: [[8]]"
    return "Weak. Rating: [[2]]" if turn2 else "Meh. Rating: [[4]]"


def prefers_pol_a(body) -> str:
    user = body["messages"][-1]["content"]
    return "[[A]]" if user.index("<pol_a>") < user.index("<pol_b>") else "[[B]]"


def always_a(body) -> str:
    return "Assistant A is better. [[A]]"


class Script:
    """Routes stub requests: policies answer, the judge uses `single` or `pair` by prompt type."""

    def __init__(self, single=single_judge, pair=always_a):
        self.single, self.pair = single, pair

    def __call__(self, body) -> str:
        if body["model"] != "judge":
            return _policy_text(body)
        system = body["messages"][0]["content"]
        # FastChat's pairwise system prompts compare "two AI assistants"; single ones rate one.
        return self.pair(body) if "two AI assistants" in system else self.single(body)


def _requests(models) -> list:
    return models.requests if isinstance(models, FakeModels) else models.state.requests


def _backend(models, model, cache):
    """`model` on the in-process fakes (FakeModels) or, where HTTP is under test, on the stub server."""
    if isinstance(models, FakeModels):
        return CachedBackend(models.backend(model), cache)
    return CachedBackend(OpenAICompatibleBackend(models.base_url, model, api_key="x", max_concurrency=4), cache)


def _pipeline(tmp_path, stub, cache, *, seeds=(0,), constrained=False, run_id="r1", **options):
    options.setdefault("question_ids", QIDS)
    options.setdefault("max_new_tokens", 32)
    suite = MTBench(MTBenchOptions(**options))
    run = ResultsStore(tmp_path / "results").start({"test": options, "seeds": list(seeds)}, "h" + run_id,
                                                   run_id=run_id)
    cks = [Checkpoint(m, _backend(stub, m, cache), base_model="stub") for m in ("pol_a", "pol_b")]
    ctx = SuiteContext(judge=_backend(stub, "judge", cache), judge_name="judge", constrained_judge=constrained)
    final = drive(run, [suite], cks, seeds, ctx)
    metrics = {(ck.name, s): suite.summarize(run.samples(suite="mtbench", checkpoint=ck.name, seed=s))
               for ck in cks for s in seeds}
    # summarize is pure: the driver's final records and the store's give the same metrics.
    assert metrics == {(ck.name, s): suite.summarize(final[("mtbench", ck.name, s)]) for ck in cks for s in seeds}
    return run, ctx, cks, metrics


@pytest.fixture()
def stub():
    """The policies and the judge as in-process scripted models (no HTTP: it is not what these test)."""
    return FakeModels(("pol_a", "pol_b", "judge"), responder=Script())


@pytest.fixture()
def http_stub():
    with StubServer(models=("pol_a", "pol_b", "judge"), state=StubState(responder=Script())) as server:
        yield server


def test_registered_under_its_cli_name():
    assert SUITES.get("mtbench") is MTBench and MTBench.needs_judge


def test_two_turn_generation_temperatures_seeds_and_fastchat_answers(tmp_path, stub):
    cache = Cache(tmp_path / "c.sqlite")
    run, ctx, _, _ = _pipeline(tmp_path, stub, cache)
    gens = run.generations(suite="mtbench", checkpoint="pol_a", seed=0)
    assert sorted((int(g.sample_id), g.turn) for g in gens) == sorted((q, t) for q in QIDS for t in (1, 2))
    by = {(int(g.sample_id), g.turn): g for g in gens}
    questions = mt.load_questions()
    for qid in QIDS:
        g1, g2 = by[(qid, 1)], by[(qid, 2)]
        q = questions[qid]
        # The second turn sees the model's own first answer.
        assert g2.request["messages"] == [{"role": "user", "content": q.turns[0]},
                                          {"role": "assistant", "content": g1.outputs[0]},
                                          {"role": "user", "content": q.turns[1]}]
        assert g1.outputs[0].startswith("<pol_a> turn1") and g2.outputs[0].startswith("<pol_a> turn2")
        assert g1.sampling["max_tokens"] == 32
    # FastChat temperature_config: writing 0.7 (sampled, seeded), reasoning / math 0 (greedy, no seed).
    assert by[(81, 1)].sampling["temperature"] == 0.7
    assert by[(81, 1)].sampling["seed"] == stable_hash(0, 81, 1) % 2 ** 31
    assert by[(81, 2)].sampling["seed"] == stable_hash(0, 81, 2) % 2 ** 31
    assert "temperature" not in by[(111, 1)].sampling and "seed" not in by[(111, 1)].sampling
    # What the server received matches what was recorded.
    sent = [b for b in _requests(stub) if b["model"] == "pol_a" and HAWAII in b["messages"][0]["content"]]
    assert sorted(b.get("seed") for b in sent) == sorted([stable_hash(0, 81, 1) % 2 ** 31,
                                                          stable_hash(0, 81, 2) % 2 ** 31])
    # FastChat model_answer file, strict read-back: every question, two turns, named by the file.
    path = run.artifacts / "mtbench" / "model_answer" / "pol_a.jsonl"
    answers = mt.read_model_answers(path, {q: questions[q] for q in QIDS}, require_all=True)
    assert answers[81].turns == (by[(81, 1)].outputs[0], by[(81, 2)].outputs[0])
    assert answers[81].model == "pol_a"


def test_num_choices_each_choice_continues_its_own_first_turn(tmp_path, stub):
    cache = Cache(tmp_path / "c.sqlite")
    run, _, _, _ = _pipeline(tmp_path, stub, cache, num_choices=2, question_ids=(81,), single=False,
                             pairwise="all")
    gens = {g.turn: g for g in run.generations(suite="mtbench", checkpoint="pol_a", seed=0)}
    assert len(gens[1].outputs) == 2 and len(gens[2].outputs) == 2
    t1 = [b for b in _requests(stub) if b["model"] == "pol_a" and len(b["messages"]) == 1]
    t2 = [b for b in _requests(stub) if b["model"] == "pol_a" and len(b["messages"]) == 3]
    assert [b["n"] for b in t1] == [2] and len(t2) == 2 and all(b["n"] == 1 for b in t2)
    # Choice 1 of turn 2 gets its own seed (vLLM would otherwise derive it from choice 0's).
    assert sorted(b["seed"] for b in t2) == sorted([stable_hash(0, 81, 2) % 2 ** 31,
                                                    stable_hash(0, 81, 2, 1) % 2 ** 31])
    answer = mt.read_model_answers(run.artifacts / "mtbench" / "model_answer" / "pol_a.jsonl")[81]
    assert len(answer.choices) == 2


def test_single_grading_fastchat_rules_failures_and_files(tmp_path, stub):
    cache = Cache(tmp_path / "c.sqlite")
    run, ctx, _, metrics = _pipeline(tmp_path, stub, cache)
    m = metrics[("pol_a", 0)]
    # pol_a: turn 1 rated 8 on all 4 questions; turn 2 rated 6 on 3 questions (81 has no rating).
    # FastChat pools the 7 valid ratings: (4*8 + 3*6) / 7 = 50/7, not the mean of the turn means (7).
    assert m["turn_1"] == 8 and m["turn_2"] == 6
    assert m["score"] == pytest.approx(50 / 7)
    assert m["n_failed"] == 1 and m["n_samples"] == 4
    # writing: 81 (8), 82 (8, 6) -> 22/3; reasoning 101 (8, 6) -> 7; math 111 -> 7.
    assert m["category/writing"] == pytest.approx(22 / 3)
    assert m["category/reasoning"] == 7 and m["category/math"] == 7
    assert metrics[("pol_b", 0)]["score"] == 3 and metrics[("pol_b", 0)]["n_failed"] == 0
    samples = {s.sample_id: s for s in run.samples(suite="mtbench", checkpoint="pol_a", seed=0)}
    s81 = samples["81"]
    assert s81.scores == {"score": 8.0, "turn_1": 8.0, "turn_2": None}
    assert "turn 2" in s81.error and "no [[rating]]" in s81.error
    assert samples["82"].scores == {"score": 7.0, "turn_1": 8.0, "turn_2": 6.0}
    assert samples["82"].error is None
    # FastChat single judgment file: -1 for the failure, model named as in FastChat.
    path = run.artifacts / "mtbench" / "model_judgment" / "judge_single.jsonl"
    rows = read_jsonl(path)
    assert len(rows) == 2 * 2 * len(QIDS)
    bad = [r for r in rows if r["score"] == -1]
    assert [(r["model"], r["question_id"], r["turn"]) for r in bad] == [("pol_a", 81, 2)]
    assert {tuple(r["judge"]) for r in rows if r["question_id"] == 111} == {
        ("judge", "single-math-v1"), ("judge", "single-math-v1-multi-turn")}
    # The re-scoring tool (FastChat show_result rules over the file) agrees with the summary.
    by_model = {s.model: s for s in rescore([path]).scores}
    assert by_model["pol_a"].average == pytest.approx(m["score"]) and by_model["pol_a"].n_failed == 1
    # Reference-guided grading: the GPT-4 reference answer of question 111 reached the judge.
    ref = mt.load_reference_answers()[111].turns[0]
    assert any(ref in b["messages"][-1]["content"] for b in _requests(stub) if b["model"] == "judge")
    judge_bodies = [b for b in _requests(stub) if b["model"] == "judge"]
    assert all(b["temperature"] == 0 and b["max_tokens"] == 2048 for b in judge_bodies)
    assert all("structured_outputs" not in b for b in judge_bodies)
    assert (run.artifacts / "mtbench" / "radar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_makes_zero_model_and_judge_calls(tmp_path, stub):
    cache = Cache(tmp_path / "c.sqlite")
    _, _, _, first = _pipeline(tmp_path, stub, cache, pairwise="baseline", baseline="pol_b")
    sent = stub.request_count
    run, ctx, cks, again = _pipeline(tmp_path, stub, cache, pairwise="baseline", baseline="pol_b")
    assert stub.request_count == sent
    assert ctx.judge.misses == 0 and all(ck.backend.misses == 0 for ck in cks)
    assert again == first
    # Rerunning into the same run neither duplicates FastChat rows nor samples.
    run2, _, _, _ = _pipeline(tmp_path, stub, cache, pairwise="baseline", baseline="pol_b")
    rows = read_jsonl(run2.artifacts / "mtbench" / "model_judgment" / "judge_pair.jsonl")
    assert len(rows) == len(QIDS) * 2


def test_constrained_judge_sends_the_rating_regex(tmp_path, stub):
    cache = Cache(tmp_path / "c.sqlite")
    _pipeline(tmp_path, stub, cache, constrained=True, question_ids=(82,), judge_max_tokens=64,
              pairwise="all")
    judge = [b for b in _requests(stub) if b["model"] == "judge"]
    single = [b for b in judge if "two AI assistants" not in b["messages"][0]["content"]]
    pair = [b for b in judge if "two AI assistants" in b["messages"][0]["content"]]
    assert single and pair and all(b["max_tokens"] == 64 for b in judge)
    # 64 tokens leave 58 characters of explanation before the verdict (see judging.output_regex).
    assert {b["structured_outputs"]["regex"] for b in single} == {r"[^\[\]]{0,58}\[\[(10|[1-9])\]\]"}
    assert {b["structured_outputs"]["regex"] for b in pair} == {r"[^\[\]]{0,58}\[\[[ABC]\]\]"}
    assert re.fullmatch(single[0]["structured_outputs"]["regex"], "ok [[10]]")


def test_pairwise_inconsistent_verdicts_are_ties(tmp_path, stub):
    # The judge always says "[[A]]": game 1 picks model_1, game 2 picks model_2 -> every row a tie.
    cache = Cache(tmp_path / "c.sqlite")
    run, _, _, metrics = _pipeline(tmp_path, stub, cache, pairwise="baseline", baseline="pol_b")
    m = metrics[("pol_a", 0)]
    n = len(QIDS) * 2  # questions x turns
    assert (m["n_pairwise"], m["n_pairwise_ties"], m["n_pairwise_inconsistent"]) == (n, n, n)
    assert m["pairwise_win_rate"] == 50.0 and m["pairwise_win_rate_strict"] == 0  # percent (suite v2)
    assert "pairwise_win_rate" not in metrics[("pol_b", 0)]  # the baseline is left out, as in FastChat
    # Pairwise scores are merged into the same per-question records, single scores kept.
    samples = {s.sample_id: s for s in run.samples(suite="mtbench", checkpoint="pol_a", seed=0)}
    assert samples["82"].scores == {"score": 7.0, "turn_1": 8.0, "turn_2": 6.0, "pairwise_win_rate": 50.0}
    assert samples["82"].data["pairwise"]["inconsistent"] == 2
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "judge_pair.jsonl")
    assert {(r["model_1"], r["model_2"], r["g1_winner"], r["g2_winner"]) for r in rows} == {
        ("pol_a", "pol_b", "model_1", "model_2")}
    # Both orders were sent: each game shows the other model first.
    pair_bodies = [b["messages"][-1]["content"] for b in _requests(stub)
                   if b["model"] == "judge" and "two AI assistants" in b["messages"][0]["content"]]
    firsts = [u.index("<pol_a>") < u.index("<pol_b>") for u in pair_bodies]
    assert firsts.count(True) == firsts.count(False) == n


def test_pairwise_all_pairs_consistent_winner(tmp_path):
    state = StubState(responder=Script(pair=prefers_pol_a))
    with StubServer(models=("pol_a", "pol_b", "judge"), state=state) as stub:
        run, _, _, metrics = _pipeline(tmp_path, stub, Cache(tmp_path / "c.sqlite"), pairwise="all")
    a, b = metrics[("pol_a", 0)], metrics[("pol_b", 0)]
    assert (a["pairwise_win_rate"], a["n_pairwise_wins"], a["n_pairwise_inconsistent"]) == (100.0, 8, 0)
    assert (b["pairwise_win_rate"], b["n_pairwise_losses"]) == (0.0, 8)
    per_q = [s.scores["pairwise_win_rate"] for s in run.samples(suite="mtbench", checkpoint="pol_b", seed=0)]
    assert per_q == [0.0] * len(QIDS)  # mean of per-question scores = the win rate


def test_pairwise_unparsable_game_fails_the_row(tmp_path):
    def flaky(body):
        user = body["messages"][-1]["content"]
        return "no verdict" if HAWAII in user else prefers_pol_a(body)

    state = StubState(responder=Script(pair=flaky))
    with StubServer(models=("pol_a", "pol_b", "judge"), state=state) as stub:
        run, _, _, metrics = _pipeline(tmp_path, stub, Cache(tmp_path / "c.sqlite"), single=False,
                                       pairwise="baseline", baseline="pol_b")
    a = metrics[("pol_a", 0)]
    # Question 81 (both turns mention Hawaii) fails; 3 questions x 2 turns are clean wins.
    assert (a["n_pairwise_failed"], a["n_pairwise"], a["pairwise_win_rate"]) == (2, 6, 100.0)
    s81 = next(s for s in run.samples(suite="mtbench", checkpoint="pol_a", seed=0) if s.sample_id == "81")
    assert s81.scores == {"pairwise_win_rate": None} and "no valid verdict" in s81.error
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "judge_pair.jsonl")
    assert sum(r["g1_winner"] == "error" for r in rows) == 2
    assert not (run.artifacts / "mtbench" / "radar.png").exists()  # no single grading, no category scores


def test_judge_http_errors_are_counted_failures(tmp_path, http_stub):
    stub = http_stub
    cache = Cache(tmp_path / "c.sqlite")
    suite = MTBench(MTBenchOptions(question_ids=(82,), max_new_tokens=8))
    run = ResultsStore(tmp_path / "res").start({"t": 1}, "h", run_id="r")
    ck = Checkpoint("pol_a", _backend(stub, "pol_a", cache), base_model="stub")
    ctx = SuiteContext(judge=_backend(stub, "no-such-judge", cache), judge_name="gpt-4", artifacts_dir=run.artifacts)
    records = suite.score(ctx, ck, 0, suite.generate(ctx, ck, 0))
    assert records[0].scores == {"score": None, "turn_1": None, "turn_2": None}
    assert "judge call failed: HTTP 404" in records[0].error
    m = suite.summarize(records)
    assert m["n_failed"] == 2 and m["score"] is None
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "gpt-4_single.jsonl")
    assert [r["score"] for r in rows] == [-1, -1]


def test_generation_failure_is_a_failed_sample(tmp_path, http_stub):
    stub = http_stub
    cache = Cache(tmp_path / "c.sqlite")
    suite = MTBench(MTBenchOptions(question_ids=(82, 81), max_new_tokens=8))
    run = ResultsStore(tmp_path / "res").start({"t": 1}, "h", run_id="r")
    ck = Checkpoint("missing", _backend(stub, "missing", cache), base_model="stub")
    ctx = SuiteContext(judge=_backend(stub, "judge", cache), judge_name="judge", artifacts_dir=run.artifacts)
    gens = suite.generate(ctx, ck, 0)
    assert [g.turn for g in gens] == [1, 1] and all("404" in g.error for g in gens)
    records = suite.score(ctx, ck, 0, gens)
    assert {r.sample_id for r in records} == {"81", "82"}
    assert all(r.scores["score"] is None and "turn 1 generation failed" in r.error for r in records)
    assert suite.summarize(records)["n_failed"] == 4  # 2 questions x 2 turns without a rating
    assert not [b for b in _requests(stub) if b["model"] == "judge"]


def test_summarize_is_pure_and_hand_checked():
    def rec(qid, cat, t1, t2, pairwise=None):
        data = {"category": cat}
        scores = {"turn_1": t1, "turn_2": t2}
        if pairwise:
            data["pairwise"] = pairwise
        return SampleRecord(suite="mtbench", checkpoint="c", seed=0, sample_id=str(qid), scores=scores,
                            data=data)

    samples = [rec(81, "writing", 9.0, None, {"win": 1, "loss": 0, "tie": 1, "failed": 0, "inconsistent": 1}),
               rec(91, "roleplay", 3.0, 5.0, {"win": 0, "loss": 1, "tie": 0, "failed": 1, "inconsistent": 0})]
    m = MTBench().summarize(samples)
    # ratings 9, 3, 5 -> score 17/3; turn 1 (9 + 3)/2 = 6; turn 2 = 5; one missing rating.
    assert m["score"] == pytest.approx(17 / 3) and (m["turn_1"], m["turn_2"], m["n_failed"]) == (6, 5, 1)
    assert list(k for k in m if k.startswith("category/")) == ["category/writing", "category/roleplay"]
    assert m["category/roleplay"] == 4
    # pairwise: 1 win, 1 loss, 1 tie -> 100 (1 + 0.5) / 3 = 50 %; strict 100/3 %.
    assert m["pairwise_win_rate"] == 50.0 and m["pairwise_win_rate_strict"] == pytest.approx(100 / 3)
    assert (m["n_pairwise_failed"], m["n_pairwise_inconsistent"]) == (1, 1)
    assert MTBench.summarize_samples(samples) == m
    assert category_means(samples) == {"c": {"writing": 9.0, "roleplay": 4.0}}


def test_seeds_share_greedy_answers_and_name_fastchat_files(tmp_path, stub):
    cache = Cache(tmp_path / "c.sqlite")
    run, *_ = _pipeline(tmp_path, stub, cache, seeds=(0, 1), question_ids=(81, 111))
    # 111 (math) is greedy: seed 1 reuses seed 0's cached answers; 81 (writing) is resampled.
    t1_111 = [b for b in _requests(stub) if b["model"] == "pol_a" and len(b["messages"]) == 1
              and "triangle" in b["messages"][0]["content"]]
    assert len(t1_111) == 1
    names = sorted(p.name for p in (run.artifacts / "mtbench" / "model_answer").iterdir())
    assert names == ["pol_a-seed1.jsonl", "pol_a.jsonl", "pol_b-seed1.jsonl", "pol_b.jsonl"]
    assert fastchat_model_name("pol_a", 1) == "pol_a-seed1"


def test_answers_from_generations_flags_incomplete_questions(tmp_path, stub):
    cache = Cache(tmp_path / "c.sqlite")
    run, *_ = _pipeline(tmp_path, stub, cache, question_ids=(82,))
    gens = [g for g in run.generations(suite="mtbench", checkpoint="pol_a", seed=0) if g.turn == 1]
    answers, failures = answers_from_generations(gens, checkpoint="pol_a", seed=0)
    assert answers == {} and failures == {82: "no turn 2 generation"}


# -- options and bad input ----------------------------------------------------------------------


def test_option_errors_are_clear():
    from evalbench.config import validate_spec

    with pytest.raises(InputError, match="needs baseline"):
        validate_spec(MTBenchOptions, {"pairwise": "baseline"})
    with pytest.raises(InputError, match="apply only to pairwise"):
        validate_spec(MTBenchOptions, {"baseline": "x"})
    with pytest.raises(InputError, match="num_choice.*did you mean 'num_choices'"):
        validate_spec(MTBenchOptions, {"num_choice": 2})
    questions = mt.load_questions()
    with pytest.raises(InputError, match=r"unknown question id\(s\) \[7\]"):
        select_questions(questions, question_ids=[81, 7])
    with pytest.raises(InputError, match="did you mean 'writing'"):
        select_questions(questions, categories=["writting"])
    math2 = [q.question_id for q in select_questions(questions, categories=["math"], limit=2)]
    assert len(math2) == 2 and all(111 <= q <= 120 for q in math2) and math2 == sorted(math2)


def test_limit_draws_one_question_per_category(data_dir):
    # The first 8 questions of the file are all 'writing'; --limit 8 must cover all 8 categories.
    questions = mt.load_questions()
    eight = select_questions(questions, limit=8)
    assert len({q.category for q in eight}) == 8
    assert {q.question_id for q in eight} <= {q.question_id for q in select_questions(questions, limit=20)}


def test_subset_question_file_with_the_full_reference_file(tmp_path, data_dir):
    # FastChat's reference file answers questions 101-130; a question file with only some of them
    # must still load its references (it failed: "unknown question_id 101 (not among the 2 questions)").
    rows = [r for r in read_jsonl(data_dir / "mt_bench" / "question.jsonl") if r["question_id"] in (81, 111)]
    path = tmp_path / "question.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = MTBench(MTBenchOptions(questions_file=str(path)))
    refs = suite.references(suite.selected())
    assert refs[111].turns[0] == mt.load_reference_answers()[111].turns[0]


def test_judge_prompt_file_without_a_needed_prompt_names_the_file(tmp_path, data_dir):
    rows = [r for r in read_jsonl(data_dir / "mt_bench" / "judge_prompts.jsonl")
            if r["name"] != "single-math-v1"]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = MTBench(MTBenchOptions(judge_prompts_file=str(path)))
    with pytest.raises(InputError, match=r"prompts\.jsonl.*judge prompt 'single-math-v1' is missing"):
        suite.prompts(("single",))
    suite.prompts(("pair",))  # the pairwise prompts are all there


def test_baseline_not_in_the_run_is_an_error(tmp_path, stub):
    with pytest.raises(InputError, match="baseline 'pol_c' is not a checkpoint.*did you mean"):
        _pipeline(tmp_path, stub, Cache(tmp_path / "c.sqlite"), question_ids=(82,), pairwise="baseline",
                  baseline="pol_c")


def test_baseline_from_a_published_answer_file(tmp_path, stub, data_dir):
    published = data_dir / "mt_bench" / "model_answer" / "gpt-3.5-turbo.jsonl"
    run, _, _, metrics = _pipeline(tmp_path, stub, Cache(tmp_path / "c.sqlite"), question_ids=(82, 91),
                                   single=False, pairwise="baseline", baseline_answers=str(published))
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "judge_pair.jsonl")
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("pol_a", "gpt-3.5-turbo"),
                                                            ("pol_b", "gpt-3.5-turbo")}
    gpt35 = mt.read_model_answers(published)[82].turns[0]
    assert any(gpt35 in b["messages"][-1]["content"] for b in _requests(stub) if b["model"] == "judge")
    assert metrics[("pol_a", 0)]["n_pairwise"] == 4


# -- evalbench mtbench judge ---------------------------------------------------------------------


def _hash_judge(body) -> str:
    """A deterministic rating from the prompt text, so published answers get varied scores."""
    user = body["messages"][-1]["content"]
    return f"Rating: [[{1 + stable_hash(user) % 10}]]"


@pytest.fixture()
def judge_stub():
    state = StubState(responder=Script(single=_hash_judge, pair=always_a))
    with StubServer(models=("judge",), state=state) as server:
        yield server


def _cli(*argv):
    from evalbench.cli import main

    return main(["-q", *map(str, argv)])


def test_cli_judges_published_answers_named_by_file(tmp_path, judge_stub, data_dir, capsys):
    answers = [data_dir / "mt_bench" / "model_answer" / f"{m}.jsonl"
               for m in ("alpaca-13b", "vicuna-13b-v1.3")]
    args = ["mtbench", "judge", "--answers", *answers, "--judge", f"url={judge_stub.base_url},model=judge",
            "--out", tmp_path / "res", "--question-ids", 81, 101,
            "--cache", tmp_path / "c.sqlite", "--run-id", "pub"]
    assert _cli(*args) == 0
    out = capsys.readouterr().out
    assert "judge calls: 8 made, 0 from cache" in out
    run = ResultsStore(tmp_path / "res").open("pub")
    path = run.artifacts / "mtbench" / "model_judgment" / "judge_single.jsonl"
    rows = read_jsonl(path)
    # FastChat names a model by its file: vicuna-13b-v1.3, although its model_id is vicuna-13b-hao-0515.
    assert {r["model"] for r in rows} == {"alpaca-13b", "vicuna-13b-v1.3"} and len(rows) == 8
    summary = run.summary()
    assert run.header()["status"] == "success"
    by_model = {r["checkpoint"]: r["metrics"] for r in summary["results"]}
    # Independent check: FastChat's averaging rules applied to the written file agree.
    for s in rescore([path]).scores:
        assert by_model[s.model]["score"] == pytest.approx(s.average)
        # And the ratings are the ones the scripted judge gave for those exact prompts.
    expected = [1 + stable_hash(b["messages"][-1]["content"]) % 10 for b in judge_stub.state.requests]
    assert sorted(r["score"] for r in rows) == sorted(expected)
    # Two categories (questions 81 and 101): no radar, rather than an empty two-axis one.
    assert not (run.artifacts / "mtbench" / "radar.png").exists()
    # Rerunning the same command resumes the run and makes zero judge calls.
    sent = judge_stub.request_count
    assert _cli(*args) == 0
    assert judge_stub.request_count == sent and "judge calls: 0 made, 8 from cache" in capsys.readouterr().out


def test_cli_pair_mode_with_baseline(tmp_path, judge_stub, data_dir, capsys):
    answers = [data_dir / "mt_bench" / "model_answer" / f"{m}.jsonl"
               for m in ("alpaca-13b", "gpt-4", "tulu-30b")]
    assert _cli("mtbench", "judge", "--answers", *answers, "--judge", f"url={judge_stub.base_url},model=judge",
                "--mode", "pair", "--baseline", "gpt-4", "--out", tmp_path / "res",
                "--limit", 2, "--cache", tmp_path / "c.sqlite", "--run-id", "p", "--constrained-judge") == 0
    run = ResultsStore(tmp_path / "res").open("p")
    rows = read_jsonl(run.artifacts / "mtbench" / "model_judgment" / "judge_pair.jsonl")
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("alpaca-13b", "gpt-4"), ("tulu-30b", "gpt-4")}
    assert len(rows) == 2 * 2 * 2  # models x questions x turns
    results = {r["checkpoint"]: r["metrics"] for r in run.summary()["results"]}
    assert set(results) == {"alpaca-13b", "tulu-30b"}
    assert all(m["pairwise_win_rate"] == 50.0 and m["n_pairwise_inconsistent"] == 4 for m in results.values())
    assert all("structured_outputs" in b for b in judge_stub.state.requests)
    assert "pairwise_win_rate" in capsys.readouterr().out


def _bad_file(tmp_path, data_dir, edit, name="bad-model.jsonl"):
    rows = read_jsonl(data_dir / "mt_bench" / "model_answer" / "alpaca-13b.jsonl")[:3]
    edit(rows)
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[1].update(question_id=7),
     r"bad-model\.jsonl:2 \[question_id\]: unknown question_id 7"),
    (lambda rows: rows[2]["choices"][0].update(turns=rows[2]["choices"][0]["turns"][:1]),
     r"bad-model\.jsonl:3 \[choices\[0\]\.turns\].*missing the second turn"),
    (lambda rows: rows.append(dict(rows[0])), r"bad-model\.jsonl:4 \[question_id\]: duplicate answer"),
])
def test_cli_bad_answer_files_name_file_line_and_field(tmp_path, data_dir, judge_stub, capsys, edit, message):
    path = _bad_file(tmp_path, data_dir, edit)
    code = _cli("mtbench", "judge", "--answers", path, "--judge", f"url={judge_stub.base_url},model=judge",
                "--out", tmp_path / "res", "--cache", tmp_path / "c.sqlite")
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert judge_stub.request_count == 0


def test_cli_usage_errors(tmp_path, data_dir, judge_stub, capsys):
    good = data_dir / "mt_bench" / "model_answer" / "alpaca-13b.jsonl"
    other = data_dir / "mt_bench" / "model_answer" / "gpt-4.jsonl"
    base = ["--judge", f"url={judge_stub.base_url},model=judge", "--out", tmp_path / "r",
            "--cache", tmp_path / "c.sqlite"]
    assert _cli("mtbench", "judge", "--answers", good, other, "--mode", "pair", "--baseline", "gpt4",
                *base) == 2
    assert "did you mean 'gpt-4'" in capsys.readouterr().err
    assert _cli("mtbench", "judge", "--answers", good, "--baseline", "gpt-4", *base) == 2
    assert "--baseline applies only to --mode pair" in capsys.readouterr().err
    assert _cli("mtbench", "judge", "--answers", good, "--mode", "pair", *base) == 2
    assert "at least two answer files" in capsys.readouterr().err
    copy = tmp_path / "x" / "alpaca-13b.jsonl"
    copy.parent.mkdir()
    shutil.copy(good, copy)
    assert _cli("mtbench", "judge", "--answers", good, copy, *base) == 2
    assert "model 'alpaca-13b' is already named by" in capsys.readouterr().err
    assert _cli("mtbench", "judge", "--answers", good, "--question-ids", 5, *base) == 2
    assert "unknown question id(s) [5]" in capsys.readouterr().err
    assert judge_stub.request_count == 0


# -- radar plot -----------------------------------------------------------------------------------


def test_radar_plot_png_and_category_order(tmp_path):
    from matplotlib.image import imread

    from evalbench.suites.mtbench.plots import category_order, radar_plot

    scores = {"a": {"math": 3.0, "writing": 8.0, "custom": 5.0}, "b": {"writing": 6.0, "math": None}}
    assert category_order(scores) == ["writing", "math", "custom"]
    path = radar_plot(scores, tmp_path / "sub" / "radar.png", title="t")
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    # The picture depends on the scores (a drawing that ignored them would not).
    other = radar_plot({"a": {"math": 9.0, "writing": 1.0, "custom": 5.0}, "b": {"writing": 6.0}},
                       tmp_path / "other.png", title="t")
    assert path.read_bytes() != other.read_bytes()
    with pytest.raises(InputError, match="no models"):
        radar_plot({}, tmp_path / "x.png")
    # One or two categories (a small --limit): no chart at all rather than an empty one-axis one.
    assert radar_plot({"a": {"writing": 8.0}}, tmp_path / "one.png") is None
    assert not (tmp_path / "one.png").exists()
