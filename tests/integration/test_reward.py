"""The reward suite end to end on a real vLLM server (CPU build): base "tiny" vs adapter "lora_a".

8 IMDB review openings as raw completions x K = 4 samples (24 tokens, token log-probs) scored by
VADER, and 4 chat prompts; then the run's summary, `compare`, `evalbench show` and the report's
reward-vs-diversity frontier. The tiny model's numbers mean nothing; what is checked is the wiring
(completion requests with n = K, per-sample rewards of the same samples the diversity comes from,
the cache serving a rerun) and the invariants.
"""

from __future__ import annotations

import numpy as np
import pytest

from evalbench.aggregate.summarize import aggregate_results, load_runs
from evalbench.api import drive, summarize_records
from evalbench.cache import Cache
from evalbench.generate.backend import CachedBackend
from evalbench.score.rewards import RewardItem, build_scorer
from evalbench.store import ResultsStore
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.reward import RewardOptions, RewardSuite

pytestmark = pytest.mark.integration
pytest.importorskip("vaderSentiment")

K = 4
CHECKPOINTS = ("tiny", "lora_a")


def _checkpoints(server, cache, adapter_path):
    return [Checkpoint(name=n, backend=CachedBackend(server.backend(n), cache), base_model="tiny",
                       adapter_path=str(adapter_path) if n == "lora_a" else None) for n in CHECKPOINTS]


def test_reward_suite_on_vllm_completions_and_chat(vllm_server, lora_adapter, tmp_path, capsys):
    imdb = RewardSuite(RewardOptions(prompts="imdb", n_prompts=8, k=K, max_tokens=24))
    chat = RewardSuite(RewardOptions(prompts="movie_chat", n_prompts=4, k=K, max_tokens=24))
    store = ResultsStore(tmp_path / "results")
    run = store.start({"suite": "reward"}, "r" * 64, run_id="rw", data_files=imdb.data_files())
    cache = Cache(tmp_path / "cache.sqlite")
    cks = _checkpoints(vllm_server, cache, lora_adapter)
    # Two suites named "reward" cannot share a run; the chat prompts go to a second run below.
    final = drive(run, [imdb], cks, [0], SuiteContext())
    assert all(ck.backend.inner.calls == 8 for ck in cks), "one request per prompt (n = K)"

    vader = build_scorer("vader")
    prompts = {p.id: p.text for p in imdb.prompts()}
    for ck in CHECKPOINTS:
        gens = [g for g in run.generations() if g.checkpoint == ck]
        samples = final[("reward", ck, 0)]
        assert [g.sample_id for g in gens] == [s.sample_id for s in samples] == list(prompts)
        for g, s in zip(gens, samples):
            assert g.request == {"prompt": prompts[g.sample_id]}  # a raw completion, no chat template
            assert g.error is None and len(g.outputs) == K and g.sampling["n"] == K
            assert all(lp is not None and lp <= 0 for lp in g.logprob_sums)
            # rewards of the very samples stored, read on opening + continuation
            opening = prompts[g.sample_id]
            assert s.data["rewards"] == vader.score(
                [RewardItem(({"role": "user", "content": opening},), o, opening + o) for o in g.outputs]).values
            assert s.scores["vader_compound"] == pytest.approx(np.mean(s.data["rewards"]))
            kept = [i for i, o in enumerate(g.outputs) if o.strip()]
            if kept:
                assert s.scores["entropy"] == pytest.approx(np.mean([-g.logprob_sums[i] for i in kept]))
        summary = imdb.summarize(samples)
        assert -1.0 <= summary["vader_compound"] <= 1.0 and summary["n_outputs"] == 8 * K

    rows = summarize_records([imdb], cks, [0], final, None)
    run.write_results(rows, aggregate=aggregate_results(rows))
    run.finish("success")

    # A rerun is served by the cache: zero model calls.
    again = _checkpoints(vllm_server, cache, lora_adapter)
    run2 = store.start({"suite": "reward", "again": True}, "s" * 64, run_id="rw2")
    final2 = drive(run2, [RewardSuite(imdb.options)], again, [0], SuiteContext())
    assert all(ck.backend.inner.calls == 0 for ck in again)
    assert final2[("reward", "lora_a", 0)] == final[("reward", "lora_a", 0)]

    # Chat prompts go through the chat template.
    run3 = store.start({"suite": "reward", "chat": True}, "t" * 64, run_id="rw3")
    chat_final = drive(run3, [chat], _checkpoints(vllm_server, cache, lora_adapter), [0], SuiteContext())
    chat_gens = run3.generations()
    assert all("messages" in g.request and len(g.outputs) == K for g in chat_gens)
    assert len(chat_final[("reward", "tiny", 0)]) == 4

    # Read back like any run: compare, show, report with the frontier.
    from evalbench.aggregate.compare import compare_runs
    from evalbench.cli import main
    from evalbench.report.report import build_report

    comp = compare_runs(load_runs([run.path], with_samples=True), baseline="tiny")
    assert comp.outcomes[("lora_a", "reward", "vader_compound")].p_value is not None
    assert main(["show", str(run.path), "--prompts", "3", "--disagree", "-q"]) == 0
    assert "cells show vader_compound" in capsys.readouterr().out
    files = build_report(load_runs([run.path], with_samples=True), tmp_path / "report", iters=200)
    assert any(p.name.startswith("frontier_vader_compound_entropy") for p in files.images)
