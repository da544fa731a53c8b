"""`evalbench train` and `evalbench reward score` through the real CLI entry point (in-process)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from evalbench.cli import main
from tests.unit.test_train_data import write_jsonl
from tests.unit.test_train_trainer import PAIRS, make_random_model, rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_random_model(tmp_path_factory.mktemp("cli") / "model")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("cli-data") / "pairs.jsonl", PAIRS)


def common(model_dir, pairs, out, *extra):
    return ["-q", "train", "--base", str(model_dir), "--data", str(pairs), "--out", str(out), "--max-steps", "2",
            "--batch-size", "4", "--lr", "5e-3", "--max-length", "64", "--max-prompt-length", "32",
            "--lora-r", "4", "--target-modules", "q_proj,v_proj", "--set", "plots=false",
            "--set", "eval_examples=8", *extra]


@pytest.fixture(scope="module")
def rm_dir(model_dir, pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-rm") / "rm"
    assert main(common(model_dir, pairs, out, "--method", "rm", "--max-steps", "10", "--lr", "2e-2")) == 0
    return out


def test_train_from_flags_writes_the_adapter_and_prints_it(model_dir, pairs, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(common(model_dir, pairs, out, "--method", "wpo", "--seed", "3", "--beta", "0.2",
                       "--wpo-alignment", "greedy", "--set", "loss.beta_schedule=linear", "--set", "loss.beta_end=0.1"))
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == str(out) and "wpo seed 3: 2 steps" in printed[0]
    meta = json.loads((out / "train_meta.json").read_text())
    spec = meta["spec"]
    assert spec["seed"] == 3 and spec["loss"]["beta"] == 0.2 and spec["wpo"]["alignment"] == "greedy"
    assert spec["lora"]["target_modules"] == ["q_proj", "v_proj"] and spec["lora"]["r"] == 4
    assert [r["beta"] for r in rows(out)] == pytest.approx([0.2, 0.1])  # linear 0.2 -> 0.1, beta_end at the last step


def test_recipe_with_flags_on_top(model_dir, pairs, tmp_path):
    out = tmp_path / "recipe"
    # the dpo recipe's tiny profile, with the base, data and steps replaced from the command line
    assert main(common(model_dir, pairs, out, "--config", "dpo", "--profile", "tiny", "--set",
                       "lora.target_modules=[q_proj,v_proj]", "--set", "data.limit=null")) == 0
    spec = json.loads((out / "train_meta.json").read_text())["spec"]
    assert spec["method"] == "dpo" and spec["precompute_ref"] is True and spec["max_steps"] == 2
    assert spec["loss"]["beta"] == 0.1  # from the profile


@pytest.mark.parametrize("extra, message", [
    (["--method", "dpp"], "did you mean 'dpo'"),
    (["--method", "orpo", "--wpo"], "WPO weighting is not defined for loss 'orpo'"),
    (["--method", "simpo", "--divergence", "js_divergence"], "ignores divergence"),
    (["--method", "dpo", "--set", "optim.lrr=1"], "optim.lrr: unknown key"),
])
def test_bad_options_exit_2_with_one_line(model_dir, pairs, tmp_path, capsys, extra, message):
    assert main(common(model_dir, pairs, tmp_path / "x", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("evalbench: error:") and message in err
    assert not (tmp_path / "x").exists()


def test_existing_out_dir_exit_2(model_dir, pairs, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    assert main(common(model_dir, pairs, tmp_path / "x", "--method", "dpo")) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_reward_score_to_file_and_stdout(rm_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "answers.jsonl", [
        {"prompt": PAIRS[0]["prompt"], "response": PAIRS[0]["chosen"], "checkpoint": "a", "extra": 1},
        {"prompt": [{"role": "user", "content": PAIRS[0]["prompt"]}], "response": PAIRS[0]["rejected"],
         "checkpoint": "b"}])
    cache = tmp_path / "cache.sqlite"
    out = tmp_path / "scored.jsonl"
    assert main(["-q", "reward", "score", "--model", str(rm_dir), "--data", str(data), "--out", str(out),
                 "--cache", str(cache)]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["checkpoint"] for s in scored] == ["a", "b"] and scored[0]["extra"] == 1
    assert all(isinstance(s["reward"], float) for s in scored)
    assert scored[0]["reward"] > scored[1]["reward"]  # the trained RM prefers the chosen answer
    capsys.readouterr()
    assert main(["-q", "reward", "score", "--model", str(rm_dir), "--data", str(data), "--no-cache"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["reward"] for s in again] == pytest.approx([s["reward"] for s in scored], abs=1e-5)


def test_reward_score_resumes_from_the_cache(rm_dir, tmp_path, monkeypatch):
    from evalbench.train import reward as R

    data = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "response": "r"}])
    cache = tmp_path / "cache.sqlite"
    out1, out2 = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    assert main(["-q", "reward", "score", "--model", str(rm_dir), "--data", str(data), "--out", str(out1),
                 "--cache", str(cache)]) == 0

    def no_model_calls(*a, **k):
        raise AssertionError("scored again instead of reading the cache")

    monkeypatch.setattr(R.RewardModel, "score", no_model_calls)
    assert main(["-q", "reward", "score", "--model", str(rm_dir), "--data", str(data), "--out", str(out2),
                 "--cache", str(cache)]) == 0
    assert out1.read_text() == out2.read_text()


def test_reward_score_bad_rows(rm_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "q", "response": "r"}, {"prompt": "q"}])
    assert main(["-q", "reward", "score", "--model", str(rm_dir), "--data", str(data), "--no-cache"]) == 2
    assert f"{data}:2 [response]: missing field" in capsys.readouterr().err
    assert main(["-q", "reward", "score", "--model", str(rm_dir), "--data", str(data), "--no-cache",
                 "--skip-bad-rows"]) == 0
    scored = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert isinstance(scored[0]["reward"], float)
    assert scored[1]["reward"] is None and "missing field" in scored[1]["error"]


def test_reward_score_refuses_a_policy_adapter(model_dir, pairs, tmp_path, capsys):
    out = tmp_path / "policy"
    assert main(common(model_dir, pairs, out, "--method", "dpo", "--max-steps", "1")) == 0
    data = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "response": "r"}])
    assert main(["-q", "reward", "score", "--model", str(out), "--data", str(data), "--no-cache"]) == 2
    assert "not a reward model" in capsys.readouterr().err


def test_eval_flags_weight_decay_and_a_reference_free_method_on_a_dpo_recipe(model_dir, pairs, tmp_path, capsys):
    out = tmp_path / "simpo"
    # the dpo recipe sets precompute_ref: true; simpo has no reference, so it is noted and ignored
    code = main(common(model_dir, pairs, out, "--config", "dpo", "--profile", "tiny", "--method", "simpo",
                       "--set", "lora.target_modules=[q_proj,v_proj]", "--set", "data.limit=null",
                       "--weight-decay", "0.01", "--eval-batch-size", "3", "--eval-fraction", "0.25",
                       "--eval-every", "1"))
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out loss" in printed
    meta = json.loads((out / "train_meta.json").read_text())
    spec = meta["spec"]
    assert spec["optim"]["weight_decay"] == 0.01 and spec["eval_batch_size"] == 3
    assert spec["held_out"]["fraction"] == 0.25 and spec["held_out"]["every"] == 1
    assert meta["reference"]["mode"] == "none" and "ignored" in meta["reference"]["note"]
    assert meta["held_out"]["examples"] == 2 and meta["data"]["examples"] == 6
    assert [r["step"] for r in rows(out) if r.get("split") == "eval"] == [0, 1, 2]


def test_epochs_flag_replaces_the_recipes_max_steps(model_dir, pairs, tmp_path, capsys):
    base = ["-q", "train", "--base", str(model_dir), "--data", str(pairs), "--out", str(tmp_path / "e"),
            "--config", "dpo", "--profile", "tiny", "--batch-size", "4", "--max-length", "64",
            "--max-prompt-length", "32", "--set", "lora.target_modules=[q_proj,v_proj]", "--set", "data.limit=null",
            "--set", "plots=false", "--set", "eval_examples=0", "--set", "precompute_ref=false"]
    assert main([*base, "--epochs", "1"]) == 0  # the profile's max_steps (40) is dropped: 8 pairs / 4 = 2 steps
    assert json.loads((tmp_path / "e" / "train_meta.json").read_text())["steps"]["total"] == 2
    capsys.readouterr()
    assert main([*base, "--epochs", "1", "--max-steps", "3", "--overwrite"]) == 2
    assert "either epochs (--epochs) or max_steps (--max-steps)" in capsys.readouterr().err


def test_reward_score_pairs_accuracy_matches_the_trained_models_eval(rm_dir, pairs, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    hh = {"chosen": "\n\nHuman: What is 1 plus 2?\n\nAssistant: It is 3.",
          "rejected": "\n\nHuman: What is 1 plus 2?\n\nAssistant: Maybe 9 apples."}
    data = write_jsonl(tmp_path / "p.jsonl", [*PAIRS, hh, {"prompt": "q", "chosen": "x"}])
    assert main(["-q", "reward", "score", "--pairs", "--model", str(rm_dir), "--data", str(data), "--out", str(out),
                 "--no-cache", "--skip-bad-rows"]) == 0
    err = capsys.readouterr().err
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == 10 and scored[-1]["reward_margin"] is None and "missing field" in scored[-1]["error"]
    for r in scored[:9]:
        assert r["reward_margin"] == pytest.approx(r["reward_chosen"] - r["reward_rejected"])
    assert scored[8]["reward_margin"] == pytest.approx(scored[0]["reward_margin"], abs=1e-5)  # HH = same pair
    meta = json.loads((rm_dir / "train_meta.json").read_text())
    accuracy = sum(r["reward_margin"] > 0 for r in scored[:8]) / 8
    assert accuracy == pytest.approx(meta["eval"]["after"]["rewards/accuracies"])
    assert "9 pairs: accuracy" in err and "1 failed" in err


def test_reward_score_pairs_shares_the_cache_with_plain_scoring(rm_dir, tmp_path, monkeypatch):
    from evalbench.train import reward as R

    cache = tmp_path / "cache.sqlite"
    plain = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "response": "good"}, {"prompt": "q", "response": "bad"}])
    assert main(["-q", "reward", "score", "--model", str(rm_dir), "--data", str(plain), "--out",
                 str(tmp_path / "a.out"), "--cache", str(cache)]) == 0
    monkeypatch.setattr(R.RewardModel, "score_completions", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "good", "rejected": "bad"}])
    assert main(["-q", "reward", "score", "--pairs", "--model", str(rm_dir), "--data", str(pairs), "--out",
                 str(tmp_path / "p.out"), "--cache", str(cache)]) == 0
    a = [json.loads(line)["reward"] for line in (tmp_path / "a.out").read_text().splitlines()]
    p = json.loads((tmp_path / "p.out").read_text())
    assert (p["reward_chosen"], p["reward_rejected"]) == (a[0], a[1])
