"""Foundation integration: a real vLLM OpenAI-compatible server on CPU with the tiny model + LoRA."""

from __future__ import annotations

import re
import threading

import pytest

from evalbench.cache import Cache
from evalbench.config import SamplingSpec, ServerSpec
from evalbench.errors import ServerError
from evalbench.generate.backend import CachedBackend
from evalbench.types import GenRequest

pytestmark = pytest.mark.integration

PROMPTS = ["Write a short sentence about the sea.", "Name three colours.", "What is a good breakfast?"]


def _chat(prompts, **sampling):
    return [GenRequest(messages=({"role": "user", "content": p},), sampling=SamplingSpec(**sampling))
            for p in prompts]


def test_base_and_adapter_chat_with_logprobs_and_n(vllm_server, tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    reqs = _chat(PROMPTS, max_tokens=24, n=4, temperature=1.0, seed=3, logprobs=True, top_logprobs=5)
    base = CachedBackend(vllm_server.backend("tiny"), cache).generate(reqs)
    lora = CachedBackend(vllm_server.backend("lora_a"), cache).generate(reqs)
    for gen in base + lora:
        assert gen.ok and len(gen.choices) == 4
        first = gen.choices[0].logprobs[0]
        assert first.logprob is not None and len(first.top) == 5
        assert first.top[0][1] >= first.top[-1][1]
    greedy = _chat(PROMPTS, max_tokens=24, temperature=0.0)
    base_text = [g.text for g in CachedBackend(vllm_server.backend("tiny"), cache).generate(greedy)]
    lora_text = [g.text for g in CachedBackend(vllm_server.backend("lora_a"), cache).generate(greedy)]
    assert base_text != lora_text, "the LoRA adapter did not change the output"


def test_constrained_regex_always_matches(vllm_server):
    pattern = r"\[\[(10|[1-9])\]\]"
    reqs = _chat(PROMPTS * 3, max_tokens=8, temperature=1.0, seed=11, regex=pattern)
    gens = CachedBackend(vllm_server.backend("lora_a"), None).generate(reqs)
    assert all(re.fullmatch(pattern, g.text) for g in gens), [g.text for g in gens]


def test_rerun_makes_zero_server_calls(vllm_server, tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    reqs = _chat(PROMPTS, max_tokens=16, temperature=0.7, seed=5)
    first_backend = vllm_server.backend("tiny")
    first = CachedBackend(first_backend, cache).generate(reqs)
    assert first_backend.calls == len(PROMPTS)
    second_backend = vllm_server.backend("tiny")
    second = CachedBackend(second_backend, cache).generate(reqs)
    assert second_backend.calls == 0
    assert [g.text for g in second] == [g.text for g in first] and all(g.cached for g in second)


def test_killing_the_server_mid_run_is_a_clear_error_and_cache_stays_consistent(tiny_model, tmp_path):
    from evalbench.serve.vllm_server import VLLMServer

    spec = ServerSpec(model=str(tiny_model), served_name="tiny", dtype="float32", max_model_len=512,
                      startup_timeout_s=300)
    cache = Cache(tmp_path / "c.sqlite")
    with VLLMServer(spec, log_dir=tmp_path / "logs") as server:
        backend = server.backend(max_concurrency=2, max_retries=2)
        CachedBackend(backend, cache).generate(_chat(["warm up"], max_tokens=4))
        reqs = _chat([f"Tell me about number {i}." for i in range(200)], max_tokens=64, temperature=0.0)
        killer = threading.Timer(1.0, lambda: server.proc and server.proc.kill())
        killer.start()
        with pytest.raises(ServerError, match="exited|failed after"):
            CachedBackend(backend, cache).generate(reqs)
        killer.cancel()
        group = server.proc.pid if server.proc else None
    # Leaving the block stopped what was left of the server: its engine core too.
    from evalbench.serve.procs import live_members

    assert group is not None and live_members(group) == []
    done = len(cache)
    assert 1 <= done < 201
    # Every cached entry is intact and readable.
    keys = [CachedBackend(backend, cache).key(r) for r in reqs]
    assert sum(cache.get(k) is not None for k in keys) == done - 1
