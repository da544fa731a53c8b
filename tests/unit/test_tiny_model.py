"""The embedded tiny model: reproducible bytes, loadable, chat template, tokenizer, guard rails."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalbench.errors import InputError
from evalbench.io import sha256_file
from evalbench.models import corpus as corpus_mod
from evalbench.models import tiny
from evalbench.models.corpus import IM_END, IM_START, build_corpus, render_chatml

REPO = Path(__file__).resolve().parents[2]
STEPS = 3  # a few real optimizer steps: enough to exercise training determinism, fast on 2 cores

# Runs the sub-command through the module's own `add_command`, in a fresh interpreter with a
# different hash seed, so that "identical bytes" also covers process-level randomness.
_CLI = ("import argparse, sys\n"
        "from evalbench.cli.model import add_command\n"
        "p = argparse.ArgumentParser(); add_command(p.add_subparsers())\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n")


def _file_hashes(root: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(root.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> tuple[Path, Path]:
    """The same recipe built in this process and, concurrently, in a fresh interpreter."""
    a = tmp_path_factory.mktemp("a") / "tiny"
    b = tmp_path_factory.mktemp("b") / "tiny"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _CLI, "model", "build-tiny", "--out", str(b),
                             "--seed", "0", "--pretrain-steps", str(STEPS)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tiny.build_tiny_model(a, seed=0, pretrain_steps=STEPS) == a.resolve()
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert Path(stdout.strip().splitlines()[-1]) == b.resolve()  # the CLI prints the model dir
    return a, b


@pytest.fixture(scope="module")
def built(two_builds) -> Path:
    return two_builds[0]


@pytest.fixture(scope="module")
def hf(built):
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(built)
    model = transformers.AutoModelForCausalLM.from_pretrained(built)
    return tok, model


# ---------------------------------------------------------------------------------------------
# reproducibility


def test_same_seed_gives_identical_bytes_across_processes(two_builds):
    built, other = two_builds
    a, b = _file_hashes(built), _file_hashes(other)
    expected = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                "tokenizer_config.json", tiny.META_FILE}
    assert expected <= set(a)
    assert a == b
    # nothing path- or time-dependent leaked into the small text files
    for name in a:
        if name.endswith((".json", ".jinja")):
            text = (built / name).read_text(encoding="utf-8")
            assert str(built.parent) not in text, name


def test_another_seed_changes_weights_not_tokenizer(built, tmp_path):
    other = tiny.build_tiny_model(tmp_path / "s1", seed=1, pretrain_steps=0)
    a, b = _file_hashes(built), _file_hashes(other)
    assert a["model.safetensors"] != b["model.safetensors"]
    assert a["tokenizer.json"] == b["tokenizer.json"]  # the tokenizer depends on the corpus only


def test_meta_records_recipe_and_training(built):
    meta = json.loads((built / tiny.META_FILE).read_text())
    corpus = build_corpus()
    assert meta["seed"] == 0 and meta["pretrain_steps"] == STEPS
    assert meta["corpus"]["sha256"] == corpus.sha256 == meta["recipe"]["corpus_sha256"]
    assert meta["recipe"] == tiny.recipe(0, STEPS, corpus)
    assert meta["config"]["model_type"] == "llama"
    assert math.isfinite(meta["train"]["final_loss"])
    # a random init over V tokens starts near ln(V) (uniform prediction)
    assert abs(meta["train"]["first_loss"] - math.log(meta["tokenizer"]["vocab_size"])) < 1.0


# ---------------------------------------------------------------------------------------------
# loadable, shaped as promised


def test_config_shape(hf):
    _, model = hf
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    assert head_dim >= 32
    assert cfg.hidden_size // cfg.num_attention_heads == head_dim
    assert cfg.num_hidden_layers == 2
    assert 1000 <= cfg.vocab_size <= 2048
    assert cfg.max_position_embeddings == 2048
    assert next(model.parameters()).dtype.is_floating_point
    assert str(next(model.parameters()).dtype) == "torch.float32"


def test_loads_with_transformers_and_generates(hf):
    import torch

    tok, model = hf
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    n_prompt = enc["input_ids"].shape[1]
    assert out.shape[0] == 1 and n_prompt < out.shape[1] <= n_prompt + 8
    assert isinstance(tok.decode(out[0, n_prompt:]), str)
    assert model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids(IM_END)


def test_chat_template_renders_with_generation_prompt(hf):
    tok, _ = hf
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                    "<|im_start|>assistant\n")
    # the training corpus is rendered by the Python twin of the template: they must agree
    assert text == render_chatml(messages, add_generation_prompt=True)
    no_prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert no_prompt == render_chatml(messages)
    assert not no_prompt.endswith("assistant\n")


def test_tokenizer_round_trips_and_keeps_specials_atomic(hf):
    tok, _ = hf
    texts = ["The cat sat on the mat.", "  leading spaces\tand tabs\n\nnew lines ",
             "naïve café, Straße, 東京, emoji 🙂", "def f(x):\n    return x ** 2  # code",
             render_chatml([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    for special in (IM_START, IM_END, "<|endoftext|>"):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    assert tok.eos_token == IM_END and tok.pad_token == "<|endoftext|>"
    # no BOS/EOS is added around plain text (ChatML models rely on the template instead)
    plain = tok("hello", add_special_tokens=False)["input_ids"]
    assert tok("hello", add_special_tokens=True)["input_ids"] == plain


# ---------------------------------------------------------------------------------------------
# guard rails and cache


def test_refuses_to_overwrite_non_empty_dir(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="overwrite"):
        tiny.build_tiny_model(out, pretrain_steps=0)
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temp dirs left behind
    tiny.build_tiny_model(out, pretrain_steps=0, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / tiny.META_FILE).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_rejects_negative_steps(tmp_path):
    with pytest.raises(InputError, match="pretrain"):
        tiny.build_tiny_model(tmp_path / "x", pretrain_steps=-1)


def test_cli_rejects_negative_steps():
    import argparse

    from evalbench.cli.model import add_command

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["model", "build-tiny", "--pretrain-steps", "-3"])
    assert exc.value.code == 2


def test_default_dir_uses_home_argument_then_env(tmp_path, monkeypatch):
    assert tiny.default_tiny_model_dir(home=tmp_path) == tmp_path / "models" / "tiny-seed0"
    assert tiny.default_tiny_model_dir(3, 10, home=tmp_path) == tmp_path / "models" / "tiny-seed3-steps10"
    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "h"))
    assert tiny.default_tiny_model_dir(1) == tmp_path / "h" / "models" / "tiny-seed1"


def test_ensure_builds_once_then_reuses(tmp_path, monkeypatch):
    path = tiny.ensure_tiny_model(seed=0, pretrain_steps=0, home=tmp_path)
    assert path == tmp_path / "models" / "tiny-seed0-steps0"
    before = _file_hashes(path)

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although a matching model exists")

    monkeypatch.setattr(tiny, "_write_model", no_build)
    assert tiny.ensure_tiny_model(seed=0, pretrain_steps=0, home=tmp_path) == path
    assert _file_hashes(path) == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # temp dirs cleaned up


def test_ensure_rebuilds_a_stale_recipe(tmp_path):
    out = tmp_path / "m"
    tiny.ensure_tiny_model(out, seed=0, pretrain_steps=0)
    meta_path = out / tiny.META_FILE
    meta = json.loads(meta_path.read_text())
    meta["recipe"]["corpus_sha256"] = "0" * 64  # as if built by an older evalbench
    meta_path.write_text(json.dumps(meta))
    tiny.ensure_tiny_model(out, seed=0, pretrain_steps=0)
    assert json.loads(meta_path.read_text())["recipe"] == tiny.recipe(0, 0, build_corpus())


def test_ensure_refuses_a_foreign_non_empty_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=tiny.META_FILE):
        tiny.ensure_tiny_model(tmp_path, pretrain_steps=0)


# ---------------------------------------------------------------------------------------------
# corpus and schedule (pure)


def test_corpus_is_deterministic_and_chat_shaped():
    a, b = build_corpus(), build_corpus()
    assert a.sha256 == b.sha256 and a.documents == b.documents
    chats = [d for d in a.documents if d.startswith(IM_START)]
    assert len(chats) > 500
    # every conversation ends with a closed assistant turn: what teaches the model to stop
    assert all(d.endswith(f"{IM_END}\n") and "<|im_start|>assistant\n" in d for d in chats)
    assert len(a.documents) - len(chats) > 100  # plain prose too
    assert build_corpus(["extra text\n"]).sha256 != a.sha256


def test_data_dir_text_is_optional_and_chat_formatted(data_dir, monkeypatch):
    docs = corpus_mod.data_dir_documents(max_answer_chars=200)
    assert len(docs) == 805  # the AlpacaEval 2 eval set (README of the data dir)
    assert all(d.startswith("<|im_start|>user\n") and d.endswith(f"{IM_END}\n") for d in docs)
    monkeypatch.delenv("EVALBENCH_DATA_DIR")
    assert corpus_mod.data_dir_documents() == []


def test_truncate_at_sentence():
    assert corpus_mod.truncate_at_sentence("One. Two. Three.", 100) == "One. Two. Three."
    assert corpus_mod.truncate_at_sentence("One. Two. Three.", 10) == "One. Two."
    assert corpus_mod.truncate_at_sentence("abcdefghijkl", 5) == "abcde"


def test_lr_schedule_warmup_then_cosine():
    peak, warm, total, ratio = 1.0, 4, 14, 0.1
    lrs = [tiny.lr_at(s, total, peak, warm, ratio) for s in range(total)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]  # linear warm-up: (step + 1) / warmup
    assert lrs[4] == pytest.approx(1.0)  # cosine starts at the peak...
    assert lrs[-1] == pytest.approx(0.1)  # ...and ends at the floor, peak * ratio
    mid = 4 + (total - 4 - 1) / 2  # halfway through the decay, cos(pi/2) = 0: the midpoint
    assert tiny.lr_at(int(mid), total, peak, warm, ratio) == pytest.approx(0.55 + 0.45 * math.cos(
        math.pi * (int(mid) - 4) / (total - 5)))
    assert all(x >= y for x, y in zip(lrs[4:], lrs[5:]))


def test_ensure_survives_losing_the_race(tmp_path, monkeypatch):
    out = tmp_path / "m"
    real_write = tiny._write_model

    def write_while_another_process_installs(tmp, *args):
        meta = real_write(tmp, *args)
        # the "other process" (unpatched) finishes first and renames its build into place
        monkeypatch.setattr(tiny, "_write_model", real_write)
        tiny.build_tiny_model(out, seed=0, pretrain_steps=0)
        return meta

    monkeypatch.setattr(tiny, "_write_model", write_while_another_process_installs)
    assert tiny.ensure_tiny_model(out, seed=0, pretrain_steps=0) == out
    assert tiny.read_meta(out)["recipe"] == tiny.recipe(0, 0, build_corpus())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # the loser's build was removed
