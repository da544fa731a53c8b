"""`evalbench.api.run` wiring with a small suite, an OpenAI-compatible stub as policy and judge."""

from __future__ import annotations

from typing import ClassVar

import pytest

from evalbench.api import run
from evalbench.config import SamplingSpec, Spec
from evalbench.generate.stage import Item, generate_records
from evalbench.judge.base import RateItem
from evalbench.runspec import RunSpec, checkpoint_meta, parse_judge_arg
from evalbench.serve.stub import StubServer, StubState
from evalbench.store import SampleRecord
from evalbench.suites.base import SUITES, Suite
from evalbench.types import GenRequest


class EchoOptions(Spec):
    limit: int | None = None


class EchoSuite(Suite):
    """Answers 4 prompts; the judge rates each 10 ('yes') or 1 ('no') through `Judge.rate`; score = 1 for yes."""

    name = "echo_test"
    needs_judge = True
    Options = EchoOptions

    def generate(self, ctx, checkpoint, seed):
        n = self.options.limit or 4
        items = [Item(str(i), GenRequest(messages=({"role": "user", "content": f"prompt {i}"},),
                                         sampling=SamplingSpec(seed=seed, max_tokens=8))) for i in range(n)]
        return generate_records(checkpoint.backend, items, suite=self.name, checkpoint=checkpoint.name, seed=seed)

    def score(self, ctx, checkpoint, seed, generations):
        items = [RateItem(({"role": "user", "content": f"judge: {g.outputs[0]}"},)) for g in generations]
        ratings = ctx.judge.rate(items)
        return [SampleRecord(suite=self.name, checkpoint=checkpoint.name, seed=seed, sample_id=str(i),
                             scores={"yes": 1.0 if r.score == 10 else 0.0}) for i, r in enumerate(ratings)]

    def summarize(self, samples):
        return {"yes": sum(s.scores["yes"] for s in samples) / len(samples), "n": len(samples)}


@pytest.fixture
def echo_suite():
    SUITES.add("echo_test", EchoSuite)
    yield
    SUITES._items.pop("echo_test")


def _responder(body):
    content = body["messages"][-1]["content"]
    if content.startswith("judge:"):
        return "yes: [[10]]" if "1" in content or "3" in content else "no: [[1]]"
    return content.replace("prompt", "answer")


def _stub_spec(stub, tmp_path, suite: str, seeds, **extra) -> RunSpec:
    """A run of `suite` with the stub as policy (model `pol`) and judge (model `judge`)."""
    return RunSpec.model_validate({
        "suites": [suite], "seeds": list(seeds), "results_dir": str(tmp_path / "results"),
        "cache_path": str(tmp_path / "cache.sqlite"),
        "model": {"base": "pol", "endpoint": {"base_url": stub.base_url, "model": "pol", "api_key_env": None}},
        "judge": parse_judge_arg(f"url={stub.base_url},model=judge"), **extra})


def test_run_twice_resumes_with_zero_calls(echo_suite, tmp_path):
    with StubServer(models=("pol", "judge"), state=StubState(responder=_responder)) as stub:
        spec = _stub_spec(stub, tmp_path, "echo_test", [0, 1])
        handle = run(spec)
        first = stub.request_count
        # Policy: 2 seeds x 4 prompts. Judge: the stub answers alike for both seeds, so the 4 judge
        # prompts of seed 1 equal those of seed 0 and come from the cache.
        assert first == 2 * 4 + 4
        summary = handle.summary()
        row = summary["results"][0]
        assert row["metrics"]["yes"] == 0.5 and row["judge"] == "judge" and row["n_samples"] == 4
        again = run(spec)
        assert again.path == handle.path and stub.request_count == first
        assert again.header()["model_calls"][-1] == {"generate": 0, "judge": 0, "cached": 16}
        assert again.summary()["results"] == summary["results"]


def test_limit_flows_into_suite_options(echo_suite, tmp_path):
    with StubServer(models=("pol",), state=StubState(responder=_responder)) as stub:
        spec = RunSpec.model_validate({
            "suites": ["echo_test"], "limit": 2, "results_dir": str(tmp_path), "cache_path": str(tmp_path / "c"),
            "model": {"base": "pol", "endpoint": {"base_url": stub.base_url, "model": "pol", "api_key_env": None}},
            "judge": parse_judge_arg(f"url={stub.base_url},model=pol")})
        assert run(spec).summary()["results"][0]["n_samples"] == 2


def test_unknown_suite_is_named():
    from evalbench.config import validate_spec
    from evalbench.errors import InputError

    with pytest.raises(InputError, match="unknown suite 'alpacca'; did you mean 'alpaca'"):
        validate_spec(RunSpec, {"suites": ["alpacca"], "model": {"base": "m"}})


def test_checkpoint_meta_from_names():
    assert checkpoint_meta("dpo-seed3", None)["group"] == "dpo"
    assert checkpoint_meta("dpo-seed3", None)["train_seed"] == 3
    assert checkpoint_meta("tiny", None) == {"group": "tiny", "train_seed": None, "method": None, "train_meta": {}}


def test_cli_run_prints_comparison_and_writes_leaderboards(echo_suite, tmp_path, capsys):
    from evalbench.cli import main

    with StubServer(models=("pol_a", "pol_b", "judge"), state=StubState(responder=_responder)) as stub:
        code = main(["-q", "run", "--suite", "echo_test", "--model", "pol", "--model-url", stub.base_url,
                     "--served-model", "pol_a", "--served-model", "pol_b", "--baseline", "pol_a",
                     "--judge", f"url={stub.base_url},model=judge", "--seeds", "0,1",
                     "--results", str(tmp_path / "results"), "--set", f"cache_path={tmp_path / 'c.sqlite'}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "pol_b" in out and "baseline 'pol_a'" in out
    (run_dir,) = list((tmp_path / "results" / "runs").iterdir())
    assert (run_dir / "comparison.md").read_text().count("pol_b") >= 1
    assert (run_dir / "comparison.csv").exists()
    header = (tmp_path / "results" / "leaderboard.csv").read_text().splitlines()[0]
    assert header.startswith("group,model,adapter")


class OverlapProbeSuite(EchoSuite):
    """The last seed's generation waits (a while) until some unit has been judged: it can only see
    one when judging overlaps generation."""

    name = "overlap_probe"
    judged_first: ClassVar = None  # threading.Event, set per test
    saw_judging: ClassVar[dict[int, bool]] = {}

    def generate(self, ctx, checkpoint, seed):
        if seed == 2:
            type(self).saw_judging[seed] = type(self).judged_first.wait(self.options.limit or 4)
        return super().generate(ctx, checkpoint, seed)

    def score(self, ctx, checkpoint, seed, generations):
        records = super().score(ctx, checkpoint, seed, generations)
        type(self).judged_first.set()
        return records


@pytest.mark.parametrize("overlap", [True, False])
def test_units_are_judged_while_others_still_generate(tmp_path, overlap):
    import threading

    SUITES.add("overlap_probe", OverlapProbeSuite)
    OverlapProbeSuite.judged_first, OverlapProbeSuite.saw_judging = threading.Event(), {}
    try:
        with StubServer(models=("pol", "judge"), state=StubState(responder=_responder)) as stub:
            # limit = the probe's wait in seconds, too (without overlap it waits in vain)
            spec = _stub_spec(stub, tmp_path, "overlap_probe", [0, 1, 2], overlap_judging=overlap,
                              suite_options={"overlap_probe": {"limit": 4 if overlap else 1}})
            handle = run(spec)
    finally:
        SUITES._items.pop("overlap_probe")
    assert OverlapProbeSuite.saw_judging == {2: overlap}
    rows = handle.summary()["results"]
    assert [r["seed"] for r in rows] == [0, 1, 2] and all(r["n_samples"] == (4 if overlap else 1) for r in rows)
    samples = handle.samples()
    assert sorted((s.seed, s.sample_id) for s in samples) == sorted(
        (seed, str(i)) for seed in (0, 1, 2) for i in range(4 if overlap else 1))


def test_overlapped_judging_keeps_judged_units_when_generation_fails(echo_suite, tmp_path):
    """A unit that was judged before another unit's generation failed keeps its samples."""
    import threading

    judged = threading.Event()

    class FailingLast(EchoSuite):
        name = "echo_test"

        def generate(self, ctx, checkpoint, seed):
            if seed == 1:
                judged.wait(10)
                raise RuntimeError("engine lost")
            return super().generate(ctx, checkpoint, seed)

        def score(self, ctx, checkpoint, seed, generations):
            out = super().score(ctx, checkpoint, seed, generations)
            judged.set()
            return out

    SUITES._items["echo_test"] = FailingLast
    with StubServer(models=("pol", "judge"), state=StubState(responder=_responder)) as stub:
        spec = _stub_spec(stub, tmp_path, "echo_test", [0, 1])
        with pytest.raises(RuntimeError, match="engine lost"):
            run(spec)
    from evalbench.store import ResultsStore

    (handle,) = list(ResultsStore(tmp_path / "results").runs())
    assert sorted((s.seed, s.sample_id) for s in handle.samples()) == [(0, str(i)) for i in range(4)]


@pytest.mark.parametrize("kind,plan,managed,cpu,expected", [
    ("endpoint", "coexist", True, True, True),     # a remote judge: always
    ("same", "coexist", True, False, True),        # the policy's own engine batches both
    ("fake", "coexist", False, True, True),
    ("vllm", "split", True, False, True),          # GPUs split explicitly between the engines
    ("vllm", "stop_policy", True, False, False),   # the policy engine must stop first
    ("vllm", "coexist", True, True, False),        # two local engines on the same CPU cores
    ("vllm", "coexist", False, True, True),        # a remote policy, the judge the only local engine
    ("vllm", "coexist", False, False, True),
])
def test_when_judging_may_overlap_generation(kind, plan, managed, cpu, expected):
    from evalbench.serve.sharing import overlap_allowed

    assert overlap_allowed(plan, judge_kind=kind, policy_managed=managed, cpu_build=cpu) is expected
