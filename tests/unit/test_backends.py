"""The backend registry, the fake and replay backends, and `api.run` over them (no HTTP, no vLLM)."""

from __future__ import annotations

import json

import pytest

from evalbench.api import run
from evalbench.backends import BACKENDS, policy_backend_name
from evalbench.cache import Cache
from evalbench.config import SamplingSpec, validate_spec
from evalbench.errors import InputError
from evalbench.generate.backend import CachedBackend
from evalbench.generate.fake import FakeBackend, FakeModels
from evalbench.generate.replay import ReplayBackend
from evalbench.generate.stage import Item, generate_items
from evalbench.registry import UnknownName
from evalbench.runspec import ModelSpec, RunSpec
from evalbench.types import GenRequest


def _chat(text: str, **sampling) -> GenRequest:
    return GenRequest(messages=({"role": "user", "content": text},), sampling=SamplingSpec(**sampling))


def test_registry_names_every_backend_and_suggests_the_closest():
    assert BACKENDS.names() == ["endpoint", "fake", "replay", "vllm-inprocess", "vllm-server"]
    with pytest.raises(UnknownName, match="unknown backend 'vllm-sever'; did you mean 'vllm-server'"):
        BACKENDS.get("vllm-sever")
    with pytest.raises(InputError, match="unknown backend 'fak'; did you mean 'fake'"):
        validate_spec(ModelSpec, {"base": "m", "backend": "fak"})


def test_policy_backend_defaults_follow_endpoint_and_engine():
    assert policy_backend_name(ModelSpec(base="m")) == "vllm-server"
    assert policy_backend_name(ModelSpec(base="m", engine="inprocess")) == "vllm-inprocess"
    endpoint = {"base_url": "http://127.0.0.1:1/v1", "model": "m"}
    assert policy_backend_name(ModelSpec.model_validate({"base": "m", "endpoint": endpoint})) == "endpoint"
    assert policy_backend_name(ModelSpec(base="m", backend="fake")) == "fake"


def test_lm_eval_engines_use_the_backend_registry_names():
    from evalbench.suites.openllm.runner import LM_EVAL_ENGINES, OpenLLMOptions, lm_eval_backend

    assert set(LM_EVAL_ENGINES.names()) <= set(BACKENDS.names())
    assert lm_eval_backend(OpenLLMOptions()) == "vllm-inprocess"
    assert lm_eval_backend(OpenLLMOptions(backend="server")) == "vllm-server"
    assert lm_eval_backend(OpenLLMOptions(backend="server", base_url="http://127.0.0.1:1/v1")) == "endpoint"


def test_fake_backend_scripts_choices_logprobs_and_failures(tmp_path):
    fake = FakeBackend("m", responder=lambda body: ["a b", "c"], top_logprobs=lambda body: [("a", -0.1), ("c", -2.5)],
                       fail=lambda body: "boom" if body["messages"][-1]["content"] == "bad" else None)
    backend = CachedBackend(fake, Cache(tmp_path / "c.sqlite"))
    ok, bad = backend.generate([_chat("hi", n=3, logprobs=True, top_logprobs=2), _chat("bad")])
    assert [c.text for c in ok.choices] == ["a b", "c", "a b"]
    first = ok.choices[0].logprobs
    assert first[0].top == (("a", -0.1), ("c", -2.5)) and ok.choices[0].sum_logprob() == pytest.approx(-0.6)
    assert bad.error == "boom" and not bad.ok
    assert fake.requests[0]["n"] == 3 and fake.requests[0]["top_logprobs"] == 2 and "seed" not in fake.requests[0]
    # The echo default, and the cache in front of it: a repeat makes no call (the failure is retried).
    assert FakeBackend().generate_uncached([_chat("x")])[0].text == "echo: x"
    backend.generate([_chat("hi", n=3, logprobs=True, top_logprobs=2), _chat("bad")])
    assert fake.calls == 3


def test_fake_models_share_one_log_and_refuse_unknown_models():
    models = FakeModels(("a", "b"))
    models.backend("a").generate_uncached([_chat("1")])
    models.backend("b").generate_uncached([_chat("2")])
    assert models.request_count == 2 and [r["model"] for r in models.requests] == ["a", "b"]
    assert "not served" in models.backend("zzz").generate_uncached([_chat("3")])[0].error


def test_replay_serves_saved_turns_by_sample_id_and_matches_later_turns_to_their_choice(tmp_path):
    saved = {"81": [("q81 answer A", "follow-up A"), ("q81 answer B", "follow-up B")]}
    replay = ReplayBackend("model", tmp_path / "f.jsonl", {"mtbench": lambda path: saved})
    (tmp_path / "f.jsonl").write_text("x")
    items = [Item("81", _chat("q1", n=2)), Item("99", _chat("q1"))]
    first, missing = generate_items(CachedBackend(replay, None), items, suite="mtbench", checkpoint="m", seed=0)
    assert [c.text for c in first.choices] == ["q81 answer A", "q81 answer B"]
    assert "no saved output for sample 99" in missing.error
    turn2 = GenRequest(messages=({"role": "user", "content": "q1"}, {"role": "assistant", "content": "q81 answer B"},
                                 {"role": "user", "content": "q2"}))
    (second,) = generate_items(CachedBackend(replay, None), [Item("81", turn2, turn=2)], suite="mtbench",
                               checkpoint="m", seed=0)
    assert second.text == "follow-up B"
    with pytest.raises(InputError, match="suite 'alpaca' cannot replay"):
        replay.generate_uncached([GenRequest(messages=({"role": "user", "content": "x"},), origin=("alpaca", "1", 1))])
    # The origin tag is not part of a request's identity (cache keys, equality).
    assert GenRequest(prompt="p", origin=("s", "1", 1)) == GenRequest(prompt="p")


def test_mtbench_run_over_fake_policy_and_fake_same_judge_resumes_with_zero_calls(tmp_path):
    spec = RunSpec.model_validate({
        "suites": ["mtbench"], "seeds": [0], "results_dir": str(tmp_path / "results"),
        "cache_path": str(tmp_path / "cache.sqlite"),
        "suite_options": {"mtbench": {"question_ids": [81, 82], "max_new_tokens": 8}},
        "model": {"base": "fake-judge", "backend": "fake", "served_models": ["fake-judge", "pol"]},
        "judge": {"kind": "same"}})
    handle = run(spec)
    rows = {r["checkpoint"]: r for r in handle.summary()["results"]}
    # The echo judge gives no [[rating]]: every turn is a counted failure, nothing is averaged.
    assert set(rows) == {"fake-judge", "pol"} and rows["pol"]["metrics"]["n_failed"] == 4
    assert rows["pol"]["n_samples"] == 2 and rows["pol"]["n_failed"] == 2
    lines = (handle.path / "samples.jsonl").read_text().splitlines()
    again = run(spec)
    assert again.header()["model_calls"][-1]["generate"] == 0 and again.header()["model_calls"][-1]["judge"] == 0
    # A resumed run appends nothing that is already stored.
    assert (again.path / "samples.jsonl").read_text().splitlines() == lines
    assert json.loads(lines[0])["suite"] == "mtbench"


def test_judge_commands_write_standard_runs_that_compare_and_export_read(tmp_path, data_dir):
    """`mtbench judge` and `alpaca judge` are runs over the replay backend: the run ids derive from the
    spec, and the aggregate readers (load_runs, compare, export) take them like any `evalbench run`."""
    from evalbench.aggregate.compare import compare_runs
    from evalbench.aggregate.summarize import load_runs
    from evalbench.cli import main
    from evalbench.report.export import export_leaderboard
    from evalbench.suites.alpaca.data import load_eval_set

    answers = [data_dir / "mt_bench" / "model_answer" / f"{m}.jsonl" for m in ("alpaca-13b", "vicuna-13b-v1.3")]
    assert main(["-q", "mtbench", "judge", "--answers", *map(str, answers), "--judge", "fake",
                 "--question-ids", "81", "82", "--out", str(tmp_path / "mt"),
                 "--cache", str(tmp_path / "c.sqlite")]) == 0
    rows = [{"instruction": r.instruction, "output": f"answer {i}", "generator": "mine", "dataset": r.dataset}
            for i, r in enumerate(load_eval_set()[:5])]
    outputs = tmp_path / "model_outputs.json"
    outputs.write_text(json.dumps(rows))
    assert main(["-q", "alpaca", "judge", "--outputs", str(outputs), "--judge", "fake", "--results",
                 str(tmp_path / "al"), "--cache", str(tmp_path / "c.sqlite")]) == 0
    (mt_run,) = (tmp_path / "mt" / "runs").iterdir()
    (al_run,) = (tmp_path / "al" / "runs").iterdir()
    for run_dir, suite, models in ((mt_run, "mtbench", {"alpaca-13b", "vicuna-13b-v1.3"}), (al_run, "alpaca", {"mine"})):
        header = json.loads((run_dir / "run.json").read_text())
        assert run_dir.name.startswith("run-") and header["kind"] == "run"
        assert header["spec"]["model"]["backend"] == "replay"
        runs = load_runs([run_dir], with_samples=True)
        assert {r["checkpoint"] for r in json.loads((run_dir / "summary.json").read_text())["results"]} == models
        compare_runs(runs)
        export_leaderboard(runs, tmp_path / f"{suite}.csv")
        assert (tmp_path / f"{suite}.csv").read_text().count("\n") >= 2


def test_mtbench_judge_and_run_over_replay_are_the_same_spec(tmp_path, data_dir):
    """The same evaluation gets the same run id whichever command starts it."""
    from evalbench.api import default_run_id
    from evalbench.cli import build_parser
    from evalbench.cli.run import spec_from_args
    from evalbench.cli.mtbench import answer_files_spec

    answer = (data_dir / "mt_bench" / "model_answer" / "alpaca-13b.jsonl").resolve()
    via_judge = answer_files_spec([answer], judge={"kind": "fake"}, options={"question_ids": [81, 82]},
                                  results=tmp_path)
    via_run = spec_from_args(build_parser().parse_args([
        "run", "--suite", "mtbench", "--model", "replay", "--backend", "replay", "--replay", f"alpaca-13b={answer}",
        "--judge", "fake", "--set", "suite_options.mtbench.question_ids=[81,82]", "--results", str(tmp_path)]))
    assert via_judge == via_run and default_run_id(via_judge) == default_run_id(via_run)
