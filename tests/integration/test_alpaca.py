"""AlpacaEval 2 end to end on a real vLLM server (CPU build): the tiny model's LoRA adapter answers
20 instructions, the tiny base model on the same server judges them with log-probs (verdict token
constrained to m / M), and a rerun makes zero model calls.

The tiny judge has a 1024-token context (the shared server's --max-model-len) and the official
prompt alone is ~690 of its tokens, so the outputs shown to it are cut to 200 characters
(`judge_max_output_chars`); the numbers are meaningless, the pipeline is what is tested.
"""

from __future__ import annotations

import math

import pytest

from evalbench.cache import Cache
from evalbench.generate.backend import CachedBackend
from evalbench.judge.base import ModelJudge
from evalbench.io import read_json
from evalbench.store import ResultsStore
from evalbench.suites.alpaca.data import load_eval_set, read_annotations
from evalbench.suites.alpaca.suite import SUMMARY_KEYS, AlpacaEval2, AlpacaOptions
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.api import drive

pytestmark = pytest.mark.integration

LIMIT = 20


def _run_once(server, tiny_model, lora_adapter, store, cache, options, run_id):
    run = store.start({"suite": "alpaca", "options": options.model_dump(mode="json")}, options.spec_hash(),
                      run_id=run_id)
    policy = server.backend("lora_a")
    judge = server.backend("tiny")
    ctx = SuiteContext(judge=ModelJudge(CachedBackend(judge, cache), name="tiny", constrained=True),
                       limit=LIMIT)
    ckpt = Checkpoint(name="lora_a", backend=CachedBackend(policy, cache), base_model=str(tiny_model),
                      adapter_path=str(lora_adapter))
    suite = AlpacaEval2(options)
    samples = drive(run, [suite], [ckpt], [0], ctx)[("alpaca", "lora_a", 0)]
    metrics = suite.summarize(samples)
    run.write_summary({"results": [{"suite": "alpaca", "checkpoint": "lora_a", "seed": 0, "metrics": metrics,
                                    "n_samples": len(samples), "n_failed": metrics["n_failed"]}]})
    run.finish("success")
    return run, policy, judge, samples, metrics


def test_tiny_policy_and_tiny_logprob_judge_end_to_end(vllm_server, tiny_model, lora_adapter, tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    store = ResultsStore(tmp_path / "results")
    options = AlpacaOptions(max_new_tokens=48, judge_max_output_chars=200)
    run, policy, judge, samples, metrics = _run_once(vllm_server, tiny_model, lora_adapter, store, cache, options,
                                                     "first")
    assert policy.calls == LIMIT and judge.calls == LIMIT

    # Every constrained verdict parsed into a preference in [1, 2].
    assert [s.error for s in samples] == [None] * LIMIT
    prefs = [s.scores["preference"] for s in samples]
    assert all(1.0 <= p <= 2.0 for p in prefs)
    assert set(metrics) == set(SUMMARY_KEYS)
    assert metrics["n_total"] == LIMIT and metrics["n_failed"] == 0
    assert metrics["win_rate"] == pytest.approx(sum(p - 1 for p in prefs) / LIMIT * 100)
    assert 0.0 <= metrics["length_controlled_winrate"] <= 100.0 and math.isfinite(metrics["lc_standard_error"])

    # Generations, annotations and the summary are written.
    art = run.artifacts / "alpaca" / "lora_a" / "seed0"
    outputs = read_json(art / "model_outputs.json")
    eval_set = load_eval_set()
    eval_rows = [eval_set[r.index] for r in AlpacaEval2(options).rows(LIMIT)]  # the stratified --limit subset
    assert [o["instruction"] for o in outputs] == [r.instruction for r in eval_rows]
    assert {o["generator"] for o in outputs} == {"lora_a"}
    ann = read_annotations(art / "annotations.json")
    assert len(ann) == LIMIT and list(ann.preference) == pytest.approx(prefs)
    raw = read_json(art / "annotations.json")[0]["raw_completion"]
    assert raw["text"] in ("m", "M")
    top = {t["token"] for t in raw["logprobs"]["content"][0]["top_logprobs"]}
    assert {"m", "M"} <= top  # the constrained judge's top log-probs hold both labels
    assert len(run.generations(suite="alpaca")) == LIMIT and len(run.samples(suite="alpaca")) == LIMIT
    assert run.summary()["results"][0]["metrics"]["n_total"] == LIMIT

    # Re-running the same work is served entirely from the cache.
    _, policy2, judge2, samples2, metrics2 = _run_once(vllm_server, tiny_model, lora_adapter, store, cache,
                                                       options, "second")
    assert policy2.calls == 0 and judge2.calls == 0
    assert [s.scores for s in samples2] == [s.scores for s in samples] and metrics2 == metrics
