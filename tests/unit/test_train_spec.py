"""TrainSpec: validation, recipes + profiles + overrides, method table, option checks (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from evalbench.errors import InputError
from evalbench.train.spec import (
    METHODS,
    RECIPES_DIR,
    TrainSpec,
    check,
    load_train_spec,
    resolve_base,
    total_steps,
    warmup_steps,
)

BASE = dict(base="some/model", out="/tmp/never-written", data={"path": "x.jsonl"})


def make(**kw) -> TrainSpec:
    return load_train_spec(**{**BASE, "method": "dpo", **kw})


def test_every_method_maps_to_a_registered_loss():
    pytest.importorskip("torch")
    from evalbench.train.losses import LOSSES

    assert set(METHODS.names()) == {"dpo", "cdpo", "ipo", "slic", "fdpo", "orpo", "simpo", "kto", "rm", "wpo"}
    for name in METHODS.names():
        assert METHODS.get(name).loss in LOSSES
    assert make(method="wpo").wpo_enabled and make(method="wpo").loss_name == "dpo"
    assert not make().wpo_enabled


def test_unknown_method_suggests_the_closest():
    with pytest.raises(InputError, match=r"method: .*unknown method 'dpp'; did you mean 'dpo'"):
        make(method="dpp")


def test_unknown_key_names_the_path():
    with pytest.raises(InputError, match=r"optim\.learning_rate: unknown key"):
        make(optim={"learning_rate": 1e-3})


def test_field_ranges():
    for bad in ({"loss": {"beta": 0}}, {"optim": {"batch_size": 0}}, {"lora": {"dropout": 1.0}},
                {"optim": {"lr": 1e-4, "min_lr": 1e-3}}, {"data": {"path": "x", "max_length": 8,
                                                                     "max_prompt_length": 8}}):
        with pytest.raises(InputError):
            make(**bad)
    with pytest.raises(InputError, match="beta_schedule 'linear' or 'cosine'"):
        make(loss={"beta": 0.1, "beta_end": 0.01})
    with pytest.raises(InputError, match="at most one of overwrite and resume"):
        make(overwrite=True, resume=True)


def test_recipe_profile_fields_overrides_precedence(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: dpo\nbase: b\nout: o\ndata: {path: d.jsonl, limit: 5}\nloss: {beta: 0.01}\n"
                      "optim: {lr: 1.0e-5, batch_size: 4}\n"
                      "profiles:\n  small: {max_steps: 3, optim: {lr: 1.0e-3}}\n")
    s = load_train_spec(recipe, profile="small")
    # the profile changes only what it names; nested mappings are merged key by key
    assert (s.max_steps, s.optim.lr, s.optim.batch_size, s.loss.beta, s.data.limit) == (3, 1e-3, 4, 0.01, 5)
    s = load_train_spec(recipe, profile="small", optim={"lr": 2e-3, "grad_accum": None}, seed=None)
    assert s.optim.lr == 2e-3 and s.optim.grad_accum == 1 and s.seed == 0  # None = "flag not given"
    s = load_train_spec(recipe, profile="small", optim={"lr": 2e-3}, overrides=["optim.lr=3e-3", "seed=7"])
    assert s.optim.lr == 3e-3 and s.seed == 7
    with pytest.raises(InputError, match="unknown profile 'smal'; did you mean 'small'"):
        load_train_spec(recipe, profile="smal")
    with pytest.raises(InputError, match="--profile needs --config"):
        load_train_spec(profile="small", **BASE, method="dpo")


@pytest.mark.parametrize("name", ["dpo", "wpo", "ipo", "orpo_qlora", "kto", "rm"])
def test_shipped_recipes_validate_with_and_without_the_tiny_profile(name):
    pytest.importorskip("torch")
    assert (RECIPES_DIR / f"{name}.yaml").exists()
    full = load_train_spec(name, out="/tmp/x")
    tiny = load_train_spec(name, profile="tiny", out="/tmp/x")
    check(full)  # option combinations are valid for each loss
    check(tiny)
    assert tiny.base == "tiny" and tiny.max_steps == 40 and tiny.data.limit == 64 and tiny.data.max_length == 256
    assert full.method == tiny.method and full.seed == 0
    if name in ("dpo", "wpo", "ipo"):
        assert full.loss.beta == 0.01  # the published setting the recipes document
    assert full.optim.warmup_ratio == 0.1 and full.optim.lr_schedule == "cosine"


def test_missing_recipe_lists_the_known_ones():
    with pytest.raises(InputError, match=r"config file not found \(recipes in .*dpo"):
        load_train_spec("nope")


def test_train_hash_ignores_run_control_only():
    a = make()
    assert a.train_hash() == make(out="/elsewhere", overwrite=True, save_steps=5).train_hash()
    assert a.train_hash() != make(seed=1).train_hash()
    assert a.spec_hash() != make(out="/elsewhere").spec_hash()


def test_steps_and_warmup():
    s = make(epochs=2, optim={"batch_size": 4, "grad_accum": 2})
    assert total_steps(s, 10) == 3  # ceil(10/4) = 3 micro-batches per epoch, x2 epochs, /2 accum
    assert total_steps(make(max_steps=7), 10_000) == 7
    assert warmup_steps(make(optim={"warmup_ratio": 0.1}), 40) == 4
    assert warmup_steps(make(optim={"warmup_steps": 50}), 40) == 40


def test_resolve_base(tmp_path):
    with pytest.raises(InputError, match="base model directory not found"):
        resolve_base(str(tmp_path / "missing"))
    (tmp_path / "m").mkdir()
    with pytest.raises(InputError, match="no config.json"):
        resolve_base(str(tmp_path / "m"))
    (tmp_path / "m" / "config.json").write_text("{}")
    assert resolve_base(str(tmp_path / "m")) == str((tmp_path / "m").resolve())
    assert resolve_base("org/name") == "org/name"  # a hub id is passed through


def test_missing_reporter_is_a_missing_extra():
    pytest.importorskip("torch")
    import importlib.util

    from evalbench.errors import MissingExtra

    if importlib.util.find_spec("tensorboard"):
        pytest.skip("tensorboard is installed here")
    with pytest.raises(MissingExtra, match=r"evalbench\[tracking\]"):
        check(make(report_to=["tensorboard"]))


def test_pydantic_errors_are_input_errors_not_tracebacks():
    with pytest.raises(InputError):
        load_train_spec(**BASE)  # no method
    with pytest.raises(ValidationError):
        TrainSpec(method="dpo", base="b", out="o", data={"path": "p"}, nonsense=1)


def test_recipes_dir_is_in_the_repo():
    assert RECIPES_DIR == Path(__file__).resolve().parents[2] / "evalbench" / "assets" / "recipes" / "train"


# --------------------------------------------------------------------------- issue 16 traps


def test_explicit_epochs_replace_a_recipes_max_steps(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: dpo\nbase: b\nout: o\ndata: {path: d.jsonl}\nprofiles:\n  tiny: {max_steps: 40}\n")
    assert load_train_spec(recipe, profile="tiny").max_steps == 40
    s = load_train_spec(recipe, profile="tiny", epochs=3)  # --epochs 3: no longer silently ignored
    assert s.max_steps is None and s.epochs == 3
    assert load_train_spec(recipe, profile="tiny", overrides=["epochs=2"]).max_steps is None
    assert load_train_spec(recipe, profile="tiny", max_steps=5).max_steps == 5
    with pytest.raises(InputError, match="either epochs .* or max_steps"):
        load_train_spec(recipe, profile="tiny", epochs=3, max_steps=5)


def test_reference_free_methods_note_precompute_ref_instead_of_failing(caplog):
    pytest.importorskip("torch")
    for method, extra in (("simpo", {}), ("orpo", {}), ("slic", {"loss": {"reference_free": True}})):
        caplog.clear()
        check(make(method=method, precompute_ref=True, **extra))
        assert "precompute_ref is ignored" in caplog.text, method
    caplog.clear()
    check(make(method="dpo", precompute_ref=True))
    assert "ignored" not in caplog.text


def test_weight_decay_eval_batch_size_and_held_out_fields():
    s = make(optim={"weight_decay": 0.01}, eval_batch_size=3)
    assert s.optim.weight_decay == 0.01 and s.eval_batch == 3
    assert make(optim={"batch_size": 4}).eval_batch == 8  # default: twice the micro-batch
    assert make(held_out={"fraction": 0.2, "every": 5}).held_out.enabled
    with pytest.raises(InputError, match="either held_out.data"):
        make(held_out={"fraction": 0.2, "data": "e.jsonl"})
    with pytest.raises(InputError, match="no held-out rows"):
        make(held_out={"every": 5})
    with pytest.raises(InputError, match="held_out.fraction"):
        make(held_out={"fraction": 1.0})


def test_train_hash_counts_a_held_out_fraction_but_not_what_is_measured():
    a = make()
    assert a.train_hash() == make(eval_batch_size=4).train_hash()
    assert a.train_hash() == make(held_out={"data": "e.jsonl", "every": 3}).train_hash()
    assert a.train_hash() != make(held_out={"fraction": 0.1}).train_hash()  # fewer training rows


def test_annealed_beta_reaches_beta_end_at_the_last_step():
    loss = make(loss={"beta": 0.5, "beta_end": 0.1, "beta_schedule": "linear"}).loss
    assert [loss.step_beta(s, 5) for s in range(5)] == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    assert loss.step_beta(0, 1) == 0.5  # one step: the start value
