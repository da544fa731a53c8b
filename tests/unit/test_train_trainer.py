"""The trainer on a random-init 1-layer Llama (built from a config, no download): real peft LoRA,
real AdamW, real files. Each test is a few optimiser steps (seconds on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from evalbench.errors import InputError
from evalbench.train.spec import TrainSpec, load_train_spec
from evalbench.train.trainer import META_FILE, METRICS_FILE, train
from tests.unit.test_train_data import make_tokenizer, write_jsonl

# Small but not trivial: 8 prompts the model must learn to answer one way rather than another.
PAIRS = [{"prompt": f"What is {a} plus {b}?", "chosen": f"It is {a + b}.", "rejected": f"Maybe {a * b + 7} apples."}
         for a, b in [(1, 2), (3, 4), (2, 5), (6, 1), (4, 4), (7, 2), (5, 3), (8, 1)]]


def make_random_model(out: Path, layers: int = 1, hidden: int = 64, seed: int = 0) -> Path:
    """A random-init Llama (head_dim 32) with the test tokenizer, saved with save_pretrained."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=512, tie_word_embeddings=False,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def rand_model(tmp_path_factory) -> Path:
    return make_random_model(tmp_path_factory.mktemp("rand") / "model")


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "pairs.jsonl", PAIRS)


def make_spec(rand_model, pairs_file, out, **kw) -> TrainSpec:
    fields = dict(method="dpo", base=str(rand_model), out=str(out), max_steps=6, eval_examples=8, plots=False,
                  data={"path": str(pairs_file), "max_length": 64, "max_prompt_length": 32},
                  optim={"lr": 5e-3, "batch_size": 4, "warmup_ratio": 0.0},
                  lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}, loss={"beta": 0.5})
    for key, value in kw.items():
        if isinstance(value, dict) and isinstance(fields.get(key), dict):
            fields[key] = {**fields[key], **value}
        else:
            fields[key] = value
    return load_train_spec(**fields)


def losses(out: Path) -> list[float]:
    """Training losses per step (held-out evaluation rows, `"split": "eval"`, left out)."""
    return [r["loss"] for r in rows(out) if "split" not in r]


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines()]


def base_state(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


# --------------------------------------------------------------------------- DPO end to end


@pytest.fixture(scope="module")
def dpo_run(rand_model, pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dpo"
    spec = make_spec(rand_model, pairs_file, out, max_steps=12, plots=True, save_steps=5)
    return spec, train(spec)


def test_dpo_learns_the_training_pairs(dpo_run):
    _, out = dpo_run
    meta = json.loads((out / META_FILE).read_text())
    before, after = meta["eval"]["before"], meta["eval"]["after"]
    # a fresh LoRA (B = 0) is the reference itself: zero implicit reward, loss log 2
    assert before["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    assert before["loss"] == pytest.approx(0.693147, abs=1e-4)
    assert after["rewards/accuracies"] > 0.5 and after["rewards/margins"] > 0
    assert after["loss"] < before["loss"]


def test_outputs_meta_metrics_and_curves(dpo_run):
    spec, out = dpo_run
    meta = json.loads((out / META_FILE).read_text())
    assert meta["status"] == "success" and meta["method"] == "dpo" and meta["seed"] == 0
    assert meta["spec"] == spec.model_dump(mode="json") and meta["spec_hash"] == spec.spec_hash()
    assert meta["steps"] == {"total": 12, "warmup": 0, "done": 12, "micro_batches_per_epoch": 2,
                             "effective_batch": 4}
    assert meta["data"]["examples"] == 8 and len(meta["data"]["sha256"]) == 64
    assert meta["base_model"]["sha256"] and meta["versions"]["torch"] and meta["wall_time_s"] > 0
    assert meta["trainable_params"] < meta["total_params"]
    rs = rows(out)
    assert [r["step"] for r in rs] == list(range(1, 13))
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                "logps/chosen", "logps/rejected", "beta", "lr", "grad_norm", "tokens_per_s"):
        assert all(isinstance(r[key], float) for r in rs), key
    assert (out / "training_curves.png").stat().st_size > 1000
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-000005", "step-000010"]


def test_base_unchanged_lora_changed_and_adapter_reloads(dpo_run, rand_model):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    _, out = dpo_run
    before = base_state(rand_model)
    adapter = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: training moved it
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(rand_model.resolve()) and cfg["r"] == 4
    base = AutoModelForCausalLM.from_pretrained(rand_model)
    assert all(torch.equal(base.state_dict()[k], v) for k, v in before.items())  # files untouched
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    ref = base(input_ids=ids).logits
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(rand_model), out)
    assert not torch.allclose(model(input_ids=ids).logits, ref, atol=1e-5)
    with model.disable_adapter():
        assert torch.allclose(model(input_ids=ids).logits, ref, atol=1e-6)


def test_logits_to_keep_gives_the_same_logps_as_full_logits(rand_model):
    from transformers import AutoModelForCausalLM

    from evalbench.train.batches import logits_to_keep, pad_batch
    from evalbench.train.objectives import sequence_logps

    model = AutoModelForCausalLM.from_pretrained(rand_model).eval()
    # prompts of 5 and 3 tokens, completions of 4 and 6: masks mark the completion tokens
    seqs = [[7, 8, 9, 10, 11, 20, 21, 22, 23], [7, 8, 9, 30, 31, 32, 33, 34, 35]]
    masks = [[0] * 5 + [1] * 4, [0] * 3 + [1] * 6]
    ids, att, lmask = pad_batch(seqs, masks, 0, "cpu")
    keep = logits_to_keep(masks, ids.shape[1])
    assert keep == 9 - 2  # the position before the earliest completion token (index 3) onwards
    with torch.no_grad():
        full, n_full = sequence_logps(model, ids, att, lmask)
        part, n_part = sequence_logps(model, ids, att, lmask, keep)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=att).logits, -1)
    assert torch.allclose(full, part, atol=1e-5) and n_full.tolist() == n_part.tolist() == [4, 6]
    # and both equal the direct sum over the completion tokens
    direct = [sum(logp[b, t - 1, seqs[b][t]].item() for t in range(len(seqs[b])) if masks[b][t]) for b in range(2)]
    assert full.tolist() == pytest.approx(direct, abs=1e-4)


# --------------------------------------------------------------------------- reproducibility, resume


def test_same_seed_same_losses_other_seed_differs(rand_model, pairs_file, tmp_path):
    a = losses(train(make_spec(rand_model, pairs_file, tmp_path / "a", seed=3, lora={"dropout": 0.1})))
    b = losses(train(make_spec(rand_model, pairs_file, tmp_path / "b", seed=3, lora={"dropout": 0.1})))
    c = losses(train(make_spec(rand_model, pairs_file, tmp_path / "c", seed=4, lora={"dropout": 0.1})))
    assert a == b
    assert a != c


def test_resume_continues_the_same_trajectory(dpo_run, rand_model, pairs_file, tmp_path):
    import shutil

    spec, out = dpo_run
    full = rows(out)
    # simulate a run killed after step 7: keep checkpoint 5 and the metrics of steps 1-7
    crashed = tmp_path / "crashed"
    shutil.copytree(out, crashed)
    shutil.rmtree(crashed / "checkpoints" / "step-000010")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (crashed / name).unlink()
    (crashed / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in full[:7]))
    resumed = train(spec.model_copy(update={"out": str(crashed), "resume": True}))
    again = rows(resumed)
    assert [r["step"] for r in again] == list(range(1, 13))
    assert [r["loss"] for r in again] == pytest.approx([r["loss"] for r in full], rel=1e-5, abs=1e-7)
    meta = json.loads((crashed / META_FILE).read_text())
    assert meta["resumed_from"]["step"] == 5 and meta["status"] == "success"
    original = json.loads((out / META_FILE).read_text())
    assert meta["eval"]["before"] == original["eval"]["before"]  # carried over, not recomputed
    assert meta["eval"]["after"] == pytest.approx(original["eval"]["after"], rel=1e-4)


def test_resume_of_a_finished_run_does_nothing(dpo_run, tmp_path):
    import shutil

    spec, out = dpo_run
    shutil.copytree(out, tmp_path / "done")
    before = (tmp_path / "done" / METRICS_FILE).read_text()
    meta_before = (tmp_path / "done" / META_FILE).read_text()
    assert train(spec.model_copy(update={"out": str(tmp_path / "done"), "resume": True})) == tmp_path / "done"
    assert (tmp_path / "done" / METRICS_FILE).read_text() == before
    assert (tmp_path / "done" / META_FILE).read_text() == meta_before


def test_resume_refuses_a_checkpoint_from_other_settings(dpo_run, tmp_path):
    import shutil

    spec, out = dpo_run
    shutil.copytree(out, tmp_path / "x")
    other = spec.model_copy(update={"out": str(tmp_path / "x"), "resume": True,
                                    "loss": spec.loss.model_copy(update={"beta": 0.3})})
    with pytest.raises(InputError, match="different settings"):
        train(other)


def test_resume_without_a_checkpoint_starts_again(rand_model, pairs_file, tmp_path):
    spec = make_spec(rand_model, pairs_file, tmp_path / "r", max_steps=2)
    out = train(spec)
    first = losses(out)
    (out / META_FILE).write_text((out / META_FILE).read_text().replace('"success"', '"interrupted"'))
    (out / "adapter_config.json").unlink()
    (out / METRICS_FILE).write_text("")
    again = train(spec.model_copy(update={"resume": True}))
    assert losses(again) == first and json.loads((again / META_FILE).read_text())["status"] == "success"
    # resuming into a directory that is not a training run is refused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no evalbench training run"):
        train(spec.model_copy(update={"out": str(tmp_path / "other"), "resume": True}))


def test_existing_output_is_refused_unless_overwrite(rand_model, pairs_file, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(InputError, match="--overwrite"):
        train(make_spec(rand_model, pairs_file, out, max_steps=1))
    assert (out / "old.txt").read_text() == "keep me"  # nothing was touched
    train(make_spec(rand_model, pairs_file, out, max_steps=1, overwrite=True))
    assert not (out / "old.txt").exists() and (out / "adapter_config.json").exists()


# --------------------------------------------------------------------------- options


def test_grad_accumulation_matches_the_big_batch(rand_model, pairs_file, tmp_path):
    # 2 micro-batches of 4 see the same 8 examples as one batch of 8 (same seeded order), and the
    # mean of the two equal-size micro-batch means is the batch mean: same losses, same updates.
    big = make_spec(rand_model, pairs_file, tmp_path / "big", max_steps=4, optim={"batch_size": 8})
    acc = make_spec(rand_model, pairs_file, tmp_path / "acc", max_steps=4, optim={"batch_size": 4, "grad_accum": 2})
    assert losses(train(acc)) == pytest.approx(losses(train(big)), rel=1e-4, abs=1e-6)


def test_precomputed_reference_matches_inline_and_is_cached(rand_model, pairs_file, tmp_path):
    inline = losses(train(make_spec(rand_model, pairs_file, tmp_path / "i")))
    cache = tmp_path / "refcache"
    out = train(make_spec(rand_model, pairs_file, tmp_path / "p", precompute_ref=True, ref_cache_dir=str(cache)))
    assert losses(out) == pytest.approx(inline, rel=1e-4, abs=1e-6)
    first = json.loads((out / META_FILE).read_text())["reference"]
    assert first["mode"] == "precomputed" and first["cache_hit"] is False
    out2 = train(make_spec(rand_model, pairs_file, tmp_path / "p2", precompute_ref=True, ref_cache_dir=str(cache)))
    assert json.loads((out2 / META_FILE).read_text())["reference"]["cache_hit"] is True
    assert losses(out2) == losses(out)
    assert len(list(cache.glob("*.pt"))) == 1


def test_beta_schedule_and_lr_warmup_in_metrics(rand_model, pairs_file, tmp_path):
    from evalbench.train.schedules import beta_at, lr_at

    out = train(make_spec(rand_model, pairs_file, tmp_path / "s", max_steps=5,
                          loss={"beta": 0.5, "beta_end": 0.1, "beta_schedule": "cosine"},
                          optim={"warmup_ratio": 0.4, "lr": 1e-3}))
    rs = rows(out)
    # issue 16: the last step trains at beta_end (step s of 5 is at progress s / 4)
    assert [r["beta"] for r in rs] == pytest.approx([beta_at(s, 4, 0.5, 0.1, "cosine") for s in range(5)])
    assert [r["lr"] for r in rs] == pytest.approx([lr_at(s, 5, 2, 1e-3, "cosine") for s in range(5)])
    assert rs[0]["beta"] == 0.5 and rs[-1]["beta"] == pytest.approx(0.1)
    # the post-training evaluation uses the β of the last step: margins are β times the policy's
    # log-ratio margin, and the fresh adapter of the "before" evaluation is the reference itself
    meta = json.loads((out / META_FILE).read_text())
    before, after = meta["eval"]["before"], meta["eval"]["after"]
    log_ratio_margin = (after["logps/chosen"] - after["logps/rejected"]) - (before["logps/chosen"] - before["logps/rejected"])
    assert after["rewards/margins"] == pytest.approx(0.1 * log_ratio_margin, rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("method, extra, key", [
    ("wpo", {}, "wpo/weight_mean"),
    ("ipo", {"wpo": {"enabled": True, "alignment": "greedy", "variant": "wpo_l"}}, "wpo/weight_mean"),
    ("orpo", {}, None),
    ("simpo", {"loss": {"beta": 2.0, "simpo_gamma": 0.5}}, None),
    ("slic", {"loss": {"reference_free": True}}, None),
    ("fdpo", {"loss": {"divergence": "js_divergence"}}, None),
    ("cdpo", {"loss": {"label_smoothing": 0.1}}, None),
])
def test_every_paired_method_runs(rand_model, pairs_file, tmp_path, method, extra, key):
    out = train(make_spec(rand_model, pairs_file, tmp_path / method, method=method, max_steps=2, **extra))
    rs = rows(out)
    assert len(rs) == 2 and all(r["loss"] == r["loss"] for r in rs)  # finite, not NaN
    if key:
        w = [r[key] for r in rs]
        assert all(0 < x <= 1.0 for x in w)  # clamped at 1 like the official WPO code
    meta = json.loads((out / META_FILE).read_text())
    assert meta["loss"] == ("dpo" if method == "wpo" else method)
    assert meta["reference"]["mode"] == ("none" if method in ("orpo", "simpo", "slic") else "inline")


def test_kto_from_pairs_with_kl_and_wpo(rand_model, pairs_file, tmp_path):
    out = train(make_spec(rand_model, pairs_file, tmp_path / "kto", method="kto", max_steps=4,
                          wpo={"enabled": True}, optim={"lr": 1e-2}))
    rs = rows(out)
    assert all(r["kl"] >= 0 for r in rs)  # z is clamped at 0
    meta = json.loads((out / META_FILE).read_text())
    assert meta["data"]["kind"] == "unpaired" and meta["data"]["examples"] == 16
    after = meta["eval"]["after"]
    assert after["rewards/chosen"] > after["rewards/rejected"]  # desirable pulled up vs undesirable


def test_reward_model_trains_saves_head_and_scores(rand_model, pairs_file, tmp_path):
    from evalbench.train.reward import load_reward_model, score_file

    out = train(make_spec(rand_model, pairs_file, tmp_path / "rm", method="rm", max_steps=15,
                          optim={"lr": 2e-2}))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["eval"]["after"]["rewards/accuracies"] > meta["eval"]["before"]["rewards/accuracies"] or \
        meta["eval"]["after"]["rewards/accuracies"] == 1.0
    assert meta["eval"]["after"]["rewards/margins"] > 0
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["task_type"] == "SEQ_CLS" and "score" in cfg["modules_to_save"]
    rm = load_reward_model(out)
    data = write_jsonl(tmp_path / "answers.jsonl", [{"prompt": p["prompt"], "response": r, "checkpoint": c}
                                                    for p in PAIRS for c, r in (("good", p["chosen"]),
                                                                                ("bad", p["rejected"]))])
    scored = score_file(rm, data)
    assert [s["checkpoint"] for s in scored][:2] == ["good", "bad"]
    good = [s["reward"] for s in scored if s["checkpoint"] == "good"]
    bad = [s["reward"] for s in scored if s["checkpoint"] == "bad"]
    # the reloaded model reproduces the training-set margin it logged
    assert sum(g - b for g, b in zip(good, bad)) / len(good) == pytest.approx(
        meta["eval"]["after"]["rewards/margins"], rel=1e-3, abs=1e-4)


def test_qlora_nf4_runs_on_cpu(rand_model, pairs_file, tmp_path):
    pytest.importorskip("bitsandbytes")
    out = train(make_spec(rand_model, pairs_file, tmp_path / "q", quantization="nf4", max_steps=3))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["quantization"] == "nf4" and len(rows(out)) == 3
    # gradients reach the LoRA matrices through the 4-bit layers (see trainer.eval_mode)
    assert all(r["grad_norm"] > 0 for r in rows(out))
    assert meta["eval"]["after"]["loss"] < meta["eval"]["before"]["loss"]
    from safetensors.torch import load_file

    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())


def test_bf16_mixed_precision_on_cpu(rand_model, pairs_file, tmp_path):
    out = train(make_spec(rand_model, pairs_file, tmp_path / "bf16", max_steps=2, precision="bf16"))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["precision"] == "bf16" and all(r["loss"] == r["loss"] for r in rows(out))
    from safetensors.torch import load_file

    # the adapter is trained and saved in float32 even though the frozen base ran in bf16
    assert {v.dtype for v in load_file(str(out / "adapter_model.safetensors")).values()} == {torch.float32}


def test_gradient_checkpointing_gives_the_same_losses(rand_model, pairs_file, tmp_path):
    plain = losses(train(make_spec(rand_model, pairs_file, tmp_path / "a", max_steps=3)))
    gc = losses(train(make_spec(rand_model, pairs_file, tmp_path / "b", max_steps=3, gradient_checkpointing=True)))
    assert gc == pytest.approx(plain, rel=1e-4, abs=1e-6)


# --------------------------------------------------------------------------- rejected early


@pytest.mark.parametrize("fields, match", [
    ({"method": "orpo", "wpo": {"enabled": True}}, "WPO weighting is not defined for loss 'orpo'"),
    ({"method": "simpo", "loss": {"divergence": "forward_kl"}}, "ignores divergence"),
    ({"method": "dpo", "loss": {"reference_free": True}}, "ignores reference_free"),
    ({"method": "dpo", "wpo": {"alignment": "greedy"}}, "WPO weighting is off"),
    ({"method": "dpo", "kto_kl": False}, "KTO option"),
    ({"method": "dpo", "precision": "fp16", "device": "cpu"}, "fp16"),
    ({"method": "dpo", "report_to": ["wandb"]}, "wandb"),
])
def test_bad_combinations_fail_before_the_model_loads(rand_model, pairs_file, tmp_path, monkeypatch, fields, match):
    import evalbench.train.trainer as T

    def boom(*a, **k):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(T, "load_model", boom)
    if fields.get("report_to") and __import__("importlib").util.find_spec("wandb"):
        pytest.skip("wandb is installed here")
    with pytest.raises(Exception, match=match):
        train(make_spec(rand_model, pairs_file, tmp_path / "x", **fields))
    assert not (tmp_path / "x").exists()


def test_bad_data_fails_before_the_model_loads(rand_model, tmp_path, monkeypatch):
    import evalbench.train.trainer as T

    monkeypatch.setattr(T, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    bad = write_jsonl(tmp_path / "bad.jsonl", PAIRS[:2] + [{"prompt": "q", "chosen": "x", "rejected": "x"}])
    with pytest.raises(InputError, match=r"bad.jsonl:3 \[rejected\]: chosen and rejected are identical"):
        train(make_spec(rand_model, bad, tmp_path / "x"))


def test_unknown_lora_target_module_is_named(rand_model, pairs_file, tmp_path):
    with pytest.raises(InputError, match=r"LoRA target modules \['query_key_value'\]"):
        train(make_spec(rand_model, pairs_file, tmp_path / "y", lora={"target_modules": ["query_key_value"]}))


def test_report_to_wandb_logs_every_step(rand_model, pairs_file, tmp_path, monkeypatch):
    """The reporter plumbing, with a stand-in `wandb` module (the real one is not installed here)."""
    import sys
    import types

    logged: list[tuple[int, dict]] = []
    fake = types.ModuleType("wandb")

    class Run:
        finished = False

        def log(self, row, step):
            logged.append((step, row))

        def finish(self):
            Run.finished = True

    fake.init = lambda **kw: Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = train(make_spec(rand_model, pairs_file, tmp_path / "w", max_steps=3, report_to=["wandb"]))
    assert [s for s, _ in logged] == [1, 2, 3] and Run.finished
    assert [r["train/loss"] for _, r in logged] == losses(out)


def test_skip_bad_rows_is_counted_in_meta(rand_model, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", PAIRS + ["{broken", {"prompt": "q", "chosen": "x", "rejected": "x"}])
    threads = torch.get_num_threads()
    out = train(make_spec(rand_model, bad, tmp_path / "x", max_steps=1, data={"skip_bad_rows": True},
                          threads=threads + 1))
    assert torch.get_num_threads() == threads  # `threads` applies to the call only
    data = json.loads((out / META_FILE).read_text())["data"]
    assert data["bad_rows_skipped"] == 2 and data["examples"] == 8 and len(data["bad_row_reasons"]) == 2


# --------------------------------------------------------------------------- issue 16: held-out evaluation


def test_held_out_fraction_every_n_steps_and_at_the_end(rand_model, pairs_file, tmp_path):
    out = train(make_spec(rand_model, pairs_file, tmp_path / "h", max_steps=4, plots=True,
                          held_out={"fraction": 0.25, "every": 2}))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["data"]["examples"] == 6 and meta["held_out"]["examples"] == 2  # 2 of 8 rows held out
    all_rows = rows(out)
    train_rows = [r for r in all_rows if "split" not in r]
    evals = [r for r in all_rows if r.get("split") == "eval"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert [r["step"] for r in evals] == [0, 2, 4]  # before, every 2 steps; the last one is the final eval
    for key in ("eval/loss", "eval/rewards/accuracies", "eval/rewards/margins", "eval/rewards/chosen",
                "eval/rewards/rejected"):
        assert all(isinstance(r[key], float) for r in evals), key
    assert evals[0]["eval/loss"] == pytest.approx(0.693147, abs=1e-4)  # fresh adapter = reference
    held = meta["held_out"]
    assert held["before"]["loss"] == evals[0]["eval/loss"] and held["after"]["loss"] == evals[-1]["eval/loss"]
    assert held["fraction"] == 0.25 and held["every"] == 2
    assert (out / "training_curves.png").stat().st_size > 1000


def test_held_out_file_does_not_change_the_training_trajectory(rand_model, pairs_file, tmp_path):
    plain = train(make_spec(rand_model, pairs_file, tmp_path / "a", max_steps=3, lora={"dropout": 0.1}))
    evaluated = train(make_spec(rand_model, pairs_file, tmp_path / "b", max_steps=3, lora={"dropout": 0.1},
                                held_out={"data": str(pairs_file), "every": 1, "limit": 4}, eval_batch_size=3))
    assert losses(evaluated) == losses(plain)  # evaluation draws no random numbers
    meta = json.loads((evaluated / META_FILE).read_text())
    assert meta["held_out"]["examples"] == 4 and meta["held_out"]["source"].endswith("pairs.jsonl")
    assert [r["step"] for r in rows(evaluated) if r.get("split") == "eval"] == [0, 1, 2, 3]


def test_reward_model_held_out_accuracy_and_reward_spread(rand_model, pairs_file, tmp_path):
    out = train(make_spec(rand_model, pairs_file, tmp_path / "rmh", method="rm", max_steps=2,
                          held_out={"fraction": 0.25}))
    after = json.loads((out / META_FILE).read_text())["held_out"]["after"]
    assert 0.0 <= after["rewards/accuracies"] <= 1.0
    assert after["rewards/std"] >= 0 and isinstance(after["rewards/mean"], float)
    assert after["rewards/mean"] == pytest.approx((after["rewards/chosen"] + after["rewards/rejected"]) / 2)
    assert all(r["rewards/std"] >= 0 for r in rows(out) if "split" not in r)


# --------------------------------------------------------------------------- issue 16/15: traps, safety


def test_reference_free_method_ignores_precompute_ref(rand_model, pairs_file, tmp_path, caplog):
    out = train(make_spec(rand_model, pairs_file, tmp_path / "o", method="orpo", max_steps=1,
                          precompute_ref=True, ref_cache_dir=str(tmp_path / "cache")))
    reference = json.loads((out / META_FILE).read_text())["reference"]
    assert reference["mode"] == "none" and "precompute_ref ignored" in reference["note"]
    assert "precompute_ref is ignored" in caplog.text
    assert not (tmp_path / "cache").exists()


def test_weight_decay_reaches_the_optimiser(rand_model, pairs_file, tmp_path):
    plain = losses(train(make_spec(rand_model, pairs_file, tmp_path / "a", max_steps=3)))
    decayed = losses(train(make_spec(rand_model, pairs_file, tmp_path / "b", max_steps=3,
                                     optim={"weight_decay": 50.0})))
    assert decayed[0] == pytest.approx(plain[0]) and decayed[1:] != pytest.approx(plain[1:])


class _Payload:
    """Unpickling this calls open(marker, "w"): code that runs on load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_resume_refuses_a_malicious_trainer_state(dpo_run, tmp_path, monkeypatch):
    import shutil

    import evalbench.train.trainer as T

    spec, out = dpo_run
    crashed = tmp_path / "crashed"
    shutil.copytree(out, crashed)
    shutil.rmtree(crashed / "checkpoints" / "step-000010")
    (crashed / "adapter_config.json").unlink()
    marker = tmp_path / "pwned"
    torch.save({"optimizer": _Payload(marker), "rng": {}}, crashed / "checkpoints" / "step-000005" / "trainer_state.pt")
    monkeypatch.setattr(T, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    with pytest.raises(InputError, match="refusing to load the trainer state") as err:
        train(spec.model_copy(update={"out": str(crashed), "resume": True}))
    assert "\n" not in str(err.value) and "trainer_state.pt" in str(err.value)
    assert not marker.exists()  # the payload never ran


def test_resume_keeps_the_held_out_history(rand_model, pairs_file, tmp_path):
    import shutil

    spec = make_spec(rand_model, pairs_file, tmp_path / "full", max_steps=6, save_steps=3,
                     held_out={"fraction": 0.25, "every": 2})
    full = rows(train(spec))
    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "full", crashed)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (crashed / name).unlink()
    (crashed / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in full if r["step"] <= 5))
    again = rows(train(spec.model_copy(update={"out": str(crashed), "resume": True})))
    assert [(r["step"], r.get("split")) for r in again] == [(r["step"], r.get("split")) for r in full]
    evals = [r["eval/loss"] for r in again if r.get("split") == "eval"]
    assert evals == pytest.approx([r["eval/loss"] for r in full if r.get("split") == "eval"], rel=1e-5)
    meta = json.loads((crashed / META_FILE).read_text())
    assert meta["held_out"]["before"]["loss"] == full[0]["eval/loss"]  # carried over, not recomputed


def test_kto_held_out_keeps_both_halves_of_a_pair_together(rand_model, pairs_file, tmp_path):
    out = train(make_spec(rand_model, pairs_file, tmp_path / "kto", method="kto", max_steps=1,
                          held_out={"fraction": 0.25}))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["data"]["examples"] == 12 and meta["held_out"]["examples"] == 4  # 2 pairs -> 4 completions
    assert meta["held_out"]["after"]["kl"] >= 0
