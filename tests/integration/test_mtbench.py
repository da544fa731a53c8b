"""MT-bench on real components: the tiny model answers through vLLM (base "tiny" and adapter
"lora_a"), and the same server's base model judges with constrained output.

The shared server has `max_model_len=2048`, so answers are kept to 32 tokens and the judge to 48
(a constrained judge's explanation then shrinks to fit, see `judging.output_regex`). The question
set keeps every judge prompt inside the context: pairwise multi-turn prompts of reference-guided
questions are longer than 1024 tokens here, so question 104 (reasoning) is graded single only.
"""

from __future__ import annotations

import pytest

from evalbench.api import RecordSink, drive, summarize_records
from evalbench.cache import Cache
from evalbench.generate.backend import CachedBackend
from evalbench.judge.base import ModelJudge
from evalbench.store import ResultsStore
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.mtbench import data as mt
from evalbench.suites.mtbench.suite import MTBench, MTBenchOptions

pytestmark = pytest.mark.integration

PAIR_QIDS = (81, 87, 91, 141, 152, 159)  # writing, writing, roleplay, stem, humanities, humanities
QIDS = PAIR_QIDS + (104, 108)  # + reasoning: reference-guided single grading


def _evaluate(server, tiny_model, lora_adapter, tmp_path, cache):
    """One full pass (generate, grade, pairwise vs the base model, summary) into run "mt"."""
    spec = {"test": "mtbench-integration", "qids": list(QIDS)}
    run = ResultsStore(tmp_path / "results").start(spec, "mtbench-integration", run_id="mt")
    cks = [Checkpoint("tiny", CachedBackend(server.backend("tiny"), cache), str(tiny_model)),
           Checkpoint("lora_a", CachedBackend(server.backend("lora_a"), cache), str(tiny_model),
                      adapter_path=str(lora_adapter))]
    # The Judge over this server's base model, with constrained verdicts (as a local judge gets them).
    judge = ModelJudge(CachedBackend(server.backend("tiny"), cache), name="tiny", constrained=True)
    ctx = SuiteContext(judge=judge)
    single = MTBench(MTBenchOptions(question_ids=QIDS, max_new_tokens=32, judge_max_tokens=48))
    drive(run, [single], cks, [0], ctx)
    pair = MTBench(MTBenchOptions(question_ids=PAIR_QIDS, max_new_tokens=32, judge_max_tokens=48,
                                  pairwise="baseline", baseline="tiny"))
    # Pairwise over the stored records of the single pass; the merged records replace them.
    RecordSink(run).add_samples(pair.finalize(ctx, cks, [0], run.generations(suite="mtbench"),
                                              run.samples(suite="mtbench")))
    final = {("mtbench", ck.name, 0): run.samples(suite="mtbench", checkpoint=ck.name, seed=0) for ck in cks}
    rows = summarize_records([single], cks, [0], final, "tiny")
    run.write_summary({"results": rows, "aggregate": []})
    run.finish("success")
    return run, cks, judge, {r["checkpoint"]: r["metrics"] for r in rows}


def test_tiny_policy_and_constrained_tiny_judge_then_rerun_is_free(vllm_server, tiny_model, lora_adapter,
                                                                     tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    run, cks, judge, metrics = _evaluate(vllm_server, tiny_model, lora_adapter, tmp_path, cache)
    art = run.artifacts / "mtbench"

    # Two turns per question; turn 2 continued the model's own first answer.
    for ck in ("tiny", "lora_a"):
        gens = {(g.sample_id, g.turn): g for g in run.generations(suite="mtbench", checkpoint=ck, seed=0)}
        assert len(gens) == 2 * len(QIDS)
        assert all(g.error is None and g.outputs for g in gens.values())
        for qid in QIDS:
            assert gens[(str(qid), 2)].request["messages"][1]["content"] == gens[(str(qid), 1)].outputs[0]
    answers = {ck: mt.read_model_answers(art / "model_answer" / f"{ck}.jsonl", mt.load_questions())
               for ck in ("tiny", "lora_a")}
    assert set(answers["tiny"]) == set(QIDS)
    assert any(answers["tiny"][q].turns != answers["lora_a"][q].turns for q in QIDS), "adapter had no effect"

    # Constrained judging: every rating parsed, every pairwise verdict too.
    for ck in ("tiny", "lora_a"):
        m = metrics[ck]
        assert m["n_failed"] == 0 and m["n_turn_1"] == m["n_turn_2"] == len(QIDS), m
        assert 1 <= m["score"] <= 10
        for s in run.samples(suite="mtbench", checkpoint=ck, seed=0):
            assert s.error is None
            assert all(s.scores[k] in {float(x) for x in range(1, 11)} for k in ("turn_1", "turn_2"))
    singles = mt.read_single_judgments(art / "model_judgment" / "tiny_single.jsonl")
    assert len(singles) == 2 * 2 * len(QIDS) and all(j.score is not None for j in singles)
    assert {j.prompt_name for j in singles if j.question_id == 104} == {"single-math-v1",
                                                                        "single-math-v1-multi-turn"}
    pairs = mt.read_pair_judgments(art / "model_judgment" / "tiny_pair.jsonl")
    assert len(pairs) == 2 * len(PAIR_QIDS)
    assert all(p.g1_winner is not None and p.g2_winner is not None for p in pairs)
    lora = metrics["lora_a"]
    assert lora["n_pairwise"] == 2 * len(PAIR_QIDS) and lora["n_pairwise_failed"] == 0
    assert 0 <= lora["pairwise_win_rate"] <= 100 and "pairwise_win_rate" not in metrics["tiny"]
    assert (art / "radar.png").stat().st_size > 0
    assert run.summary()["results"]

    # A rerun makes zero model calls: everything comes from the cache, with the same numbers.
    before = [ck.backend.misses for ck in cks] + [judge.misses]
    assert all(n > 0 for n in before)
    run2, cks2, judge2, metrics2 = _evaluate(vllm_server, tiny_model, lora_adapter, tmp_path, cache)
    assert [ck.backend.inner.calls for ck in cks2] + [judge2.backend.inner.calls] == [0, 0, 0]
    assert [ck.backend.misses for ck in cks2] + [judge2.misses] == [0, 0, 0]
    assert metrics2 == metrics
