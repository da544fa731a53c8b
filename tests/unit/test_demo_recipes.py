"""`evalbench demo`'s pure parts and packaged recipes: on-policy pair building, and every recipe
(pairs run, training methods, evaluation run) validating as the specs the demo builds from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalbench import demo


def test_best_worst_pairs_keeps_the_extremes_above_the_margin():
    prompts = {"a": "pa", "b": "pb", "c": "pc"}
    outputs = {"a": ["x", "y", "z"], "b": ["u", "v"], "c": ["only"]}
    rewards = {"a": [0.1, 0.9, -0.3], "b": [0.5, 0.6], "c": [1.0]}
    rows = demo.best_worst_pairs(prompts, outputs, rewards, margin=0.2)
    # b's gap (0.1) is not above the margin; c has one sample.
    assert rows == [{"id": "a", "prompt": "pa", "chosen": "y", "rejected": "z", "reward_chosen": 0.9,
                     "reward_rejected": -0.3}]


def test_best_worst_pairs_skips_unscored_and_empty_samples():
    rows = demo.best_worst_pairs({"a": "p"}, {"a": ["good", "  ", "bad", "unscored"]},
                                 {"a": [0.8, -1.0, 0.0, None]}, margin=0.2)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("good", "bad")]
    # A gap exactly at the margin is not kept (strictly greater, as in the DPO-paper recipe).
    assert demo.best_worst_pairs({"a": "p"}, {"a": ["s", "t"]}, {"a": [0.4, 0.2]}, margin=0.2) == []


def test_pairs_file_is_trl_rows_and_not_rewritten_when_unchanged(tmp_path):
    from evalbench.train.data import load_examples
    from evalbench.train.spec import DataSpec

    rows = demo.best_worst_pairs({"a": "Tell me"}, {"a": ["Great!", "Awful."]}, {"a": [0.6, -0.5]}, margin=0.2)
    path = demo.write_pairs(rows, tmp_path / "pairs.jsonl")
    stamp = path.stat().st_mtime_ns
    demo.write_pairs(rows, path)
    assert path.stat().st_mtime_ns == stamp  # the trainer's resume sees the same data file
    examples, _ = load_examples(DataSpec(path=str(path)), paired=True)
    assert examples[0].prompt == ({"role": "user", "content": "Tell me"},)
    assert examples[0].chosen[0]["content"] == "Great!" and examples[0].rejected[0]["content"] == "Awful."


@pytest.mark.parametrize("method", list(demo.TRAIN["methods"]))
def test_every_demo_method_builds_a_valid_train_spec(method, tmp_path):
    from evalbench.train.spec import check, load_train_spec

    config, overrides = demo.train_overrides(method, tmp_path / "base", 1, tmp_path / "out", tmp_path / "p.jsonl")
    spec = load_train_spec(config, profile="tiny", overrides=overrides)
    check(spec)
    assert spec.seed == 1 and spec.max_steps == demo.TRAIN["common"]["max_steps"]
    assert spec.data.path == str(tmp_path / "p.jsonl") and spec.threads == 1
    expected = demo.TRAIN["methods"][method]["set"].get("method", config)
    assert spec.method == expected


def test_default_methods_are_three_losses_over_three_seeds():
    assert len(demo.METHODS) >= 3 and set(demo.METHODS) <= set(demo.TRAIN["methods"])
    assert len(demo.TRAIN_SEEDS) >= 3


def test_eval_and_pairs_recipes_validate(tmp_path):
    from evalbench.config import validate_spec
    from evalbench.runspec import RunSpec

    spec = demo.eval_spec(tmp_path / "tiny", tmp_path / "demo", tmp_path, limit=4, judged=True)
    assert spec.suites == ("reward", "alpaca", "mtbench")
    assert spec.judge.kind == "same" and spec.judge.self_judged
    assert spec.suite_options["alpaca"]["limit"] == 4 and spec.suite_options["mtbench"]["limit"] == 4
    reward = spec.suite_options["reward"]
    assert (reward["k"], reward["temperature"], reward["max_tokens"], reward["scorer"]) == (4, 1.0, 48, "vader")
    only = demo.eval_spec(tmp_path / "tiny", tmp_path / "demo", tmp_path, limit=None, judged=False,
                          base_adapter=tmp_path / "zero")
    assert only.suites == ("reward",)
    # the base model is served as the zero adapter `base`, which is the baseline
    assert not only.model.include_base and only.baseline == demo.BASE
    assert [(a.name, a.path) for a in only.model.adapters] == [(demo.BASE, str(tmp_path / "zero"))]
    pairs = demo.recipe("demo_pairs.yaml")
    pairs["model"]["base"] = str(tmp_path / "tiny")
    pairs_spec = validate_spec(RunSpec, pairs, source="demo_pairs.yaml")
    # Training pairs and evaluation samples come from different generation seeds (fresh samples).
    assert not set(pairs_spec.seeds) & set(spec.seeds)
    assert pairs_spec.suite_options["reward"] == {**reward}


def test_unknown_demo_method_is_one_clear_error(tmp_path):
    from evalbench.errors import InputError

    with pytest.raises(InputError, match="unknown demo method 'dpp'.*did you mean 'dpo'"):
        demo.train_adapters(tmp_path, tmp_path, ["dpp"], [0], tmp_path / "p.jsonl")


def test_pairs_jsonl_rows_are_json_lines(tmp_path):
    rows = [{"id": "a", "prompt": "p", "chosen": "c", "rejected": "r", "reward_chosen": 1.0, "reward_rejected": 0.0}]
    path = demo.write_pairs(rows, tmp_path / "sub" / "pairs.jsonl")
    assert [json.loads(line) for line in Path(path).read_text().splitlines()] == rows


class _Run:
    """The two readers pairs_from_run uses, over fixed records."""

    def __init__(self, gens, samples):
        self._gens, self._samples = gens, samples

    def generations(self):
        return self._gens

    def samples(self):
        return self._samples


def _records(checkpoint: str, seed: int, sample_id: str, request: dict, outputs: list[str], rewards: list[float]):
    from evalbench.store import GenerationRecord, SampleRecord

    gen = GenerationRecord(suite="reward", checkpoint=checkpoint, seed=seed, sample_id=sample_id, request=request,
                           sampling={}, outputs=outputs)
    sample = SampleRecord(suite="reward", checkpoint=checkpoint, seed=seed, sample_id=sample_id, scores={},
                          data={"rewards": rewards})
    return gen, sample


def test_pairs_from_run_reads_chat_and_completion_prompts_of_one_checkpoint():
    from evalbench.errors import InputError

    g1, s1 = _records("tiny", 0, "a", {"messages": [{"role": "user", "content": "Tell me"}]}, ["ok", "bad"], [0.5, -0.5])
    g2, s2 = _records("tiny", 0, "b", {"prompt": "The movie was"}, [" great", " dull"], [0.9, 0.0])
    g3, s3 = _records("dpo-seed0", 0, "a", g1.request, ["x", "y"], [1.0, -1.0])
    run = _Run([g1, g2, g3], [s1, s2, s3])
    with pytest.raises(InputError, match="several checkpoints"):
        demo.pairs_from_run(run, 0.2)
    rows = demo.pairs_from_run(run, 0.2, checkpoint="tiny")
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [("Tell me", "ok", "bad"),
                                                                         ("The movie was", " great", " dull")]
    # several generation seeds: every (seed, prompt) is a group of its own
    g4, s4 = _records("tiny", 1, "a", g1.request, ["fine", "awful"], [0.4, -0.4])
    rows = demo.pairs_from_run(_Run([g1, g4], [s1, s4]), 0.2)
    assert [r["id"] for r in rows] == ["a@0", "a@1"]


def test_zero_adapter_keeps_lora_a_and_zeroes_lora_b(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    like = tmp_path / "dpo"
    like.mkdir()
    (like / "adapter_config.json").write_text('{"r": 2}')
    save_file({"m.lora_A.weight": torch.ones(2, 4), "m.lora_B.weight": torch.full((4, 2), 3.0)},
              str(like / "adapter_model.safetensors"))
    out = demo.zero_adapter(like, tmp_path / "zero")
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert torch.equal(weights["m.lora_B.weight"], torch.zeros(4, 2))  # B·A = 0: the base model exactly
    assert torch.equal(weights["m.lora_A.weight"], torch.ones(2, 4))
    assert (out / "adapter_config.json").read_text() == '{"r": 2}'
    stamp = (out / "adapter_model.safetensors").stat().st_mtime_ns
    demo.zero_adapter(like, tmp_path / "zero")
    assert (out / "adapter_model.safetensors").stat().st_mtime_ns == stamp  # written once
