"""The diversity suite end to end on a real vLLM server (CPU build): base "tiny" vs adapter "lora_a".

10 AlpacaEval prompts (the seeded draw) x K = 4 samples, 32 tokens, with token log-probs; the real
bundled all-MiniLM-L6-v2 embedder (offline); a rerun on the same cache makes zero model calls.
The tiny model's numbers mean nothing; what is checked is the wiring and the invariants.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from evalbench.aggregate.stats import paired_bootstrap
from evalbench.cache import Cache
from evalbench.generate.backend import CachedBackend
from evalbench.store import ResultsStore
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.diversity import Diversity, DiversityOptions
from evalbench.api import RecordSink

pytestmark = pytest.mark.integration

K = 4
CHECKPOINTS = ("tiny", "lora_a")


def _evaluate(suite, server, cache, run, adapter_path):
    ctx = SuiteContext()
    sink = RecordSink(run)  # what the driver does with the records the stages return
    out = {}
    for name in CHECKPOINTS:
        ckpt = Checkpoint(name=name, backend=CachedBackend(server.backend(name), cache), base_model="tiny",
                          adapter_path=str(adapter_path) if name == "lora_a" else None)
        gens = suite.generate(ctx, ckpt, seed=0)
        sink.add_generations(gens)
        samples = suite.score(ctx, ckpt, 0, gens)
        sink.add_samples(samples)
        out[name] = (ckpt, gens, samples, suite.summarize(samples))
    return out


def test_base_vs_adapter_diversity_and_rerun_makes_zero_calls(vllm_server, lora_adapter, tmp_path):
    opts = DiversityOptions(n_prompts=10, k=K, max_tokens=32)
    suite = Diversity(opts)
    store = ResultsStore(tmp_path / "results")
    run = store.start({"suite": "diversity", "options": opts.model_dump(mode="json")}, opts.spec_hash(),
                      run_id="div", data_files=suite.data_files())
    cache = Cache(tmp_path / "cache.sqlite")
    first = _evaluate(suite, vllm_server, cache, run, lora_adapter)

    want_ids = [str(i) for i in sorted(random.Random(42).sample(range(805), 10))]
    for name, (ckpt, gens, samples, summary) in first.items():
        assert ckpt.backend.inner.calls == 10, "one request per prompt (n = K), not K requests"
        assert [g.sample_id for g in gens] == want_ids == [s.sample_id for s in samples]
        for g in gens:
            assert g.error is None and len(g.outputs) == K
            assert g.sampling["n"] == K and g.sampling["logprobs"] is True
            assert len(g.logprob_sums) == K and all(s is not None and s <= 0 for s in g.logprob_sums)
            assert all(c is not None and 1 <= c <= 32 for c in g.token_counts)
        # K samples at temperature 1 differ from each other for most prompts
        assert sum(len(set(g.outputs)) > 1 for g in gens) >= 8

        # Entropy recomputed independently from the generation records: mean over the non-empty
        # samples of -log p(y|x), and their total -log p over their total tokens.
        for g, s in zip(gens, samples):
            kept = [i for i, t in enumerate(g.outputs) if t.strip()]
            if not kept:
                assert s.error is not None and s.scores["entropy"] is None
                continue
            nll = [-g.logprob_sums[i] for i in kept]
            assert s.scores["entropy"] == pytest.approx(np.mean(nll))
            tokens = sum(g.token_counts[i] for i in kept)
            assert s.scores["entropy_per_token"] == pytest.approx(sum(nll) / tokens)

        assert summary["n_prompts"] == 10 and summary["n_outputs"] == 10 * K
        for key in ("pid_similarity", "aid_similarity"):
            assert -1.0 <= summary[key] <= 1.0
            assert summary[key.replace("similarity", "diversity")] == pytest.approx(1 - summary[key])
        assert 0 < summary["distinct_1"] <= 1 and 0 < summary["distinct_2"] <= 1
        assert 0 <= summary["self_bleu"] <= 100
        assert summary["entropy"] > 0 and summary["entropy_per_token"] > 0
        assert all(s.data["embedder"] == "all-MiniLM-L6-v2" for s in samples)

    # The adapter changes what is sampled, hence the numbers.
    base_out = [g.outputs for g in first["tiny"][1]]
    lora_out = [g.outputs for g in first["lora_a"][1]]
    assert base_out != lora_out
    assert first["tiny"][3] != first["lora_a"][3]

    # Paired test over prompts on a per-prompt score: its delta is the difference of the summaries.
    key = "pid_similarity"
    per = {name: {s.sample_id: s.scores[key] for s in first[name][2] if s.scores[key] is not None}
           for name in CHECKPOINTS}
    common = sorted(set(per["tiny"]) & set(per["lora_a"]))
    assert len(common) >= 8
    test = paired_bootstrap({i: per["lora_a"][i] for i in common}, {i: per["tiny"][i] for i in common},
                            iters=2000)
    if len(common) == len(per["tiny"]) == len(per["lora_a"]):
        assert test.delta == pytest.approx(first["lora_a"][3][key] - first["tiny"][3][key])
    assert 0 <= test.p_value <= 1

    # The run holds every record; run.json hashes the prompt file and the embedder files.
    assert len(run.generations()) == len(run.samples()) == 2 * 10
    files = run.header()["data_files"]
    assert any(p.endswith("model_outputs.json") for p in files)
    assert any(p.endswith("model.safetensors") for p in files)

    # Rerun (a fresh suite instance, fresh clients, the same cache): zero model calls, same numbers.
    again = _evaluate(Diversity(opts), vllm_server, cache, run, lora_adapter)
    for name in CHECKPOINTS:
        ckpt, gens, _, summary = again[name]
        assert ckpt.backend.inner.calls == 0 and ckpt.backend.misses == 0
        assert [g.outputs for g in gens] == [g.outputs for g in first[name][1]]
        assert summary == pytest.approx(first[name][3])
