"""Offline OpenLLM task definitions: lm-eval's own configs fed from the shared files; name checks.

The generated YAMLs are loaded by lm-eval itself (its YAML loader and TaskManager, on the generated
directory only, so no 20 s registry index), and compared with lm-eval's registry configs.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest

from evalbench.errors import InputError
from evalbench.suites.openllm import tasks as T

V1 = [t for t, _, _ in T.V1_TASKS]
# Published sizes: ARC-Challenge test 1172, WinoGrande 1.1 dev 1267, TruthfulQA 817, GSM8K test 1319,
# MMLU anatomy test 135; HellaSwag here is the README's 1000-row sample.
SIZES = {"arc_challenge": 1172, "winogrande": 1267, "truthfulqa_mc2": 817, "hellaswag": 1000, "gsm8k": 1319,
         "mmlu_anatomy": 135}


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory, data_dir) -> T.TaskDir:
    return T.write_task_dir(V1, tmp_path_factory.mktemp("openllm_tasks"))


@pytest.fixture(scope="module")
def loaded(task_dir):
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_dir.path), include_defaults=False)
    return tm.load(list(SIZES))["tasks"]


def test_task_dir_has_every_leaf_and_no_placeholder(task_dir, data_dir):
    assert len(task_dir.leaves) == 5 + 57
    for leaf in task_dir.leaves:
        text = (task_dir.path / f"{leaf}.yaml").read_text()
        assert "@@" not in text
    assert (task_dir.path / T.DATA_MODULE).exists()
    assert set(task_dir.data_files) == {
        "openllm/arc_challenge/arc_challenge_test.llmfoundry.jsonl", "openllm/hellaswag/hellaswag_val_sample1000.jsonl",
        "openllm/winogrande/winogrande_dev.llmfoundry.jsonl", "openllm/truthfulqa/v0/mc_task.json",
        "openllm/gsm8k/test.jsonl", "openllm/mmlu/mmlu_test.jsonl.gz", "openllm/mmlu/mmlu_dev.jsonl"}
    assert all(Path(p).is_relative_to(data_dir) for p in task_dir.data_files.values())


def test_rewriting_is_idempotent(task_dir):
    before = (task_dir.path / "gsm8k.yaml").stat().st_mtime_ns
    again = T.write_task_dir(V1, task_dir.path)
    assert again.digest == task_dir.digest
    assert (task_dir.path / "gsm8k.yaml").stat().st_mtime_ns == before


# Everything that shapes prompts, few-shot examples and scores must be lm-eval's own.
PROMPT_KEYS = ("task", "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "description", "process_docs",
               "process_results", "target_delimiter", "fewshot_delimiter", "fewshot_config", "num_fewshot",
               "metric_list", "generation_kwargs", "filter_list", "repeats", "metadata")


@pytest.mark.parametrize("leaf, registry_file, overridden", [
    ("arc_challenge", "arc/arc_challenge.yaml", ()),
    ("hellaswag", "hellaswag/hellaswag.yaml", ()),
    ("truthfulqa_mc2", "truthfulqa/truthfulqa_mc2.yaml", ()),
    ("gsm8k", "gsm8k/gsm8k.yaml", ()),
    ("mmlu_anatomy", "mmlu/default/mmlu_anatomy.yaml", ()),
    # The converted WinoGrande file has no `sentence`: the same strings come from its fields.
    ("winogrande", "winogrande/default.yaml", ("doc_to_text", "doc_to_target", "doc_to_choice")),
])
def test_generated_config_is_lm_evals_registry_config(task_dir, leaf, registry_file, overridden):
    from lm_eval.tasks._yaml_loader import load_yaml

    ours = load_yaml(task_dir.path / f"{leaf}.yaml", resolve_func=False)
    theirs = load_yaml(T.lm_eval_tasks_dir() / registry_file, resolve_func=False)
    for key in PROMPT_KEYS:
        if key in overridden:
            assert ours.get(key) != theirs.get(key)
        else:
            assert ours.get(key) == theirs.get(key), key
    assert ours["custom_dataset"].endswith("openllm_data.load_" + leaf.split("_")[0])


def test_offline_tasks_load_in_lm_eval_with_published_sizes(loaded):
    for name, size in SIZES.items():
        assert len(loaded[name].eval_docs) == size, name


def _requests(task, n_docs: int, shots: int):
    task.set_config(key="num_fewshot", value=shots)
    task.set_fewshot_seed(1234)
    task.build_all_requests(limit=n_docs, rank=0, world_size=1)
    return task.instances


def test_arc_prompt_is_lm_evals_question_answer_format(loaded, data_dir):
    first = json.loads((data_dir / "openllm/arc_challenge/arc_challenge_test.llmfoundry.jsonl").open().readline())
    inst = _requests(loaded["arc_challenge"], 1, 0)
    assert [i.args for i in inst] == [(first["query"] + "\nAnswer:", " " + c) for c in first["choices"]]
    assert inst[0].doc["answerKey"] == "ABCD"[first["gold"]]


def test_winogrande_requests_equal_lm_evals_functions_on_the_original_sentence(loaded):
    # WinoGrande 1.1 dev, first item (winogrande_xl validation[0]) in its original fields.
    original = {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
                "option1": "Sarah", "option2": "Maria", "answer": "2"}
    wg = importlib.import_module("lm_eval.tasks.winogrande.preprocess_winogrande")
    inst = _requests(loaded["winogrande"], 1, 0)
    contexts = wg.doc_to_choice(original)
    assert [i.args for i in inst] == [(ctx, " " + wg.doc_to_target(original)) for ctx in contexts]
    assert inst[0].doc["gold"] == wg.doc_to_text(original)


def test_fewshot_context_never_contains_the_evaluated_document(loaded):
    # Offline the few-shot pool is the evaluated split; lm-eval drops the document from its own context.
    inst = _requests(loaded["arc_challenge"], 12, 25)
    for i in inst:
        question = i.doc["question"]
        assert i.args[0].count("Question: " + question + "\n") == 1, question
        assert i.args[0].endswith("Question: " + question + "\nAnswer:")
        assert i.args[0].count("\n\nQuestion: ") == 25


def test_truthfulqa_and_mmlu_loaders(task_dir, data_dir):
    mod = _module(task_dir)
    tqa = mod.load_truthfulqa(str(data_dir / "openllm/truthfulqa/v0/mc_task.json"))["validation"]
    assert len(tqa) == 817
    assert tqa[0]["question"].startswith("What is the smallest country in the world")
    assert tqa[0]["mc1_targets"]["labels"] == [1, 0, 0, 0]
    assert sum(tqa[0]["mc2_targets"]["labels"]) >= 1
    mmlu = mod.load_mmlu(str(data_dir / "openllm/mmlu/mmlu_test.jsonl.gz"), str(data_dir / "openllm/mmlu/mmlu_dev.jsonl"),
                         "abstract_algebra")
    assert (len(mmlu["test"]), len(mmlu["dev"])) == (100, 5)
    assert set(mmlu["test"]["subject"]) == {"abstract_algebra"}


def _module(task_dir: T.TaskDir):
    spec = importlib.util.spec_from_file_location("openllm_data_under_test", task_dir.path / T.DATA_MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bad_row_names_file_line_and_field(task_dir, tmp_path):
    bad = tmp_path / "arc.jsonl"
    bad.write_text('{"query": "Question: a?", "choices": ["x", "y"], "gold": 1}\n{"query": "Question: b?", "choices": ["x"]}\n')
    with pytest.raises(ValueError, match=r"arc\.jsonl:2 \[gold\]: missing field"):
        _module(task_dir).load_arc(str(bad))


def test_missing_offline_file_is_named(tmp_path, monkeypatch, data_dir):
    partial = tmp_path / "data"
    shutil.copytree(data_dir / "openllm" / "arc_challenge", partial / "openllm" / "arc_challenge")
    monkeypatch.setenv("EVALBENCH_DATA_DIR", str(partial))
    assert T.resolve_data_files(["arc_challenge"])  # present
    with pytest.raises(InputError) as err:
        T.resolve_data_files(["arc_challenge", "gsm8k"])
    assert str(partial / "openllm" / "gsm8k" / "test.jsonl") in str(err.value)
    assert "gsm8k" in str(err.value)


def test_template_values_are_yaml_escaped(tmp_path):
    text = 'path: "@@data:x.jsonl@@"\n'
    import yaml

    out = T.render_template(text, lm_eval_dir=tmp_path, files={"x.jsonl": Path('/we"ird\\dir/x.jsonl')})
    assert yaml.safe_load(out) == {"path": '/we"ird\\dir/x.jsonl'}


# ---------------------------------------------------------------------------------------------
# names

KNOWN = {"arc_challenge", "arc_easy", "piqa", "leaderboard", "leaderboard_bbh", "gsm8k", "hellaswag"}


def test_unknown_name_suggests_the_closest():
    with pytest.raises(InputError, match=r"unknown lm-eval task 'arc_chalenge'; did you mean 'arc_challenge'\?"):
        T.resolve_names(["arc_chalenge"], mode="auto", offline_available=True, known=KNOWN)


def test_auto_mode_is_offline_where_defined_and_online_elsewhere():
    got = T.resolve_names(["gsm8k", "piqa", "mmlu_anatomy"], mode="auto", offline_available=True, known=KNOWN)
    assert [(r.name, r.source) for r in got] == [("gsm8k", "offline"), ("piqa", "online"), ("mmlu_anatomy", "offline")]
    got = T.resolve_names(["gsm8k"], mode="auto", offline_available=False, known=KNOWN)
    assert got[0].source == "online"
    got = T.resolve_names(["gsm8k"], mode="online", offline_available=True, known=KNOWN)
    assert got[0].source == "online"


def test_offline_leaderboard_names_its_missing_datasets():
    with pytest.raises(InputError) as err:
        T.resolve_names(["leaderboard"], mode="offline", offline_available=True, known=KNOWN)
    for dataset in ("TIGER-Lab/MMLU-Pro", "Idavidrein/gpqa", "TAUR-Lab/MuSR", "SaylorTwift/bbh"):
        assert dataset in str(err.value)
    with pytest.raises(InputError, match="HF_HUB_OFFLINE"):
        T.resolve_names(["leaderboard"], mode="auto", offline_available=True, known=KNOWN, hub=False)
    with pytest.raises(InputError, match="'piqa' has no offline definition"):
        T.resolve_names(["piqa"], mode="offline", offline_available=True, known=KNOWN)


def test_user_include_names_pass():
    got = T.resolve_names(["my_task"], mode="offline", offline_available=True, known=KNOWN, include_names={"my_task"})
    assert got[0].source == "include"


def test_mmlu_category_groups_resolve_to_their_subjects():
    stem = T.offline_leaves("mmlu_stem")
    assert "mmlu_abstract_algebra" in stem and "mmlu_anatomy" in stem and "mmlu_world_religions" not in stem
    parts = sum(len(T.offline_leaves(g)) for g in T.MMLU_GROUPS if g != "mmlu")
    assert parts == len(T.offline_leaves("mmlu")) == 57


# ---------------------------------------------------------------------------------------------
# chat template


def _model_dir(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    for name, text in files.items():
        (d / name.replace("__", ".")).write_text(text)
    return d


def test_chat_template_required_when_asked(tmp_path):
    bare = _model_dir(tmp_path, tokenizer_config__json='{"eos_token": "</s>"}')
    with pytest.raises(InputError, match="no chat template") as err:
        T.check_chat_template(str(bare))
    assert str(bare) in str(err.value) and "apply_chat_template" in str(err.value)


@pytest.mark.parametrize("files", [{"chat_template__jinja": "{{ messages }}"},
                                   {"tokenizer_config__json": '{"chat_template": "{{ messages }}"}'}])
def test_chat_template_found(tmp_path, files):
    T.check_chat_template(str(_model_dir(tmp_path, **files)))
