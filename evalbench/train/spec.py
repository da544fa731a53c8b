"""`TrainSpec`: the frozen, validated description of one preference-training run.

A spec comes from keyword arguments, from a YAML recipe (`evalbench/assets/recipes/train/*.yaml`, optionally
with a named profile such as `tiny`) and from `key=value` overrides, in that order of
precedence (overrides win). Everything that decides the result is in the spec, and its hash
goes into `train_meta.json`.

Methods (registry `METHODS`, CLI name == registry name == recipe stem) map to a loss of
`evalbench.train.losses.LOSSES` plus how the trainer reports its implicit rewards:
dpo, cdpo, ipo, slic, fdpo, orpo, simpo, kto, rm, and `wpo` (= dpo with WPO weighting on,
Zhou et al. 2024). WPO weighting is an option of every weightable loss (`wpo.enabled`).

The sub-specs (LoRA, loss, WPO, data, optimiser, held-out) live in `evalbench.train.spec_parts`
and are re-exported here. This module imports no torch: `TrainSpec` validation is cheap. `check(spec)` runs the checks
that need the loss registry (option combinations, `check_loss_options`) and the optional
reporters, and is what the trainer and the CLI call before loading any model.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator, model_validator

from evalbench.config import Spec, apply_overrides, load_yaml, validate_spec
from evalbench.errors import InputError
from evalbench.registry import Registry
from evalbench.resources import TRAIN_RECIPES
from evalbench.train.spec_parts import (
    DataSpec,
    HeldOutSpec,
    LoraSpec,
    LossSpec,
    OptimSpec,
    ScheduleKind,
    WPOSpec,
)

log = logging.getLogger(__name__)

# Where `--config dpo` finds its recipe when given a bare name.
RECIPES_DIR = TRAIN_RECIPES  # package data: found outside the source checkout too
PROFILES_KEY = "profiles"
# `base: tiny` means the embedded tiny model (evalbench.models.tiny.ensure_tiny_model()).
TINY_ALIAS = "tiny"


__all__ = [
    "HELD_OUT_MEASUREMENT_FIELDS", "METHODS", "PROFILES_KEY", "RECIPES_DIR", "RUN_CONTROL_FIELDS", "TINY_ALIAS",
    "DataSpec", "HeldOutSpec", "LoraSpec", "LossSpec", "MethodInfo", "OptimSpec", "ScheduleKind", "TrainSpec",
    "WPOSpec", "check", "deep_merge", "load_train_spec", "recipe_path", "resolve_base", "total_steps",
    "warmup_steps",
]


class MethodInfo(NamedTuple):
    """How a training method maps onto a registered loss and reports its implicit rewards.

    Attributes:
        loss: name in `evalbench.train.losses.LOSSES`.
        wpo: WPO weighting switched on by the method itself (`wpo`).
        reward_scale: the `LossParams` field that scales the logged implicit rewards
            (β for the DPO family; ORPO logs λ · mean log-prob, as TRL's ORPOTrainer).
        length_normalised: logged rewards use mean token log-probs (SimPO, ORPO).
        model: "causal_lm" (policy + LoRA) or "reward_model" (LoRA + scalar value head).
        summary: one line for `--help`.
    """

    loss: str
    wpo: bool = False
    reward_scale: str = "beta"
    length_normalised: bool = False
    model: Literal["causal_lm", "reward_model"] = "causal_lm"
    summary: str = ""


METHODS: Registry[MethodInfo] = Registry("training method")
METHODS.add("dpo", MethodInfo("dpo", summary="DPO sigmoid loss (Rafailov et al. 2023)"))
METHODS.add("cdpo", MethodInfo("cdpo", summary="conservative DPO, label smoothing ε (Mitchell 2023)"))
METHODS.add("ipo", MethodInfo("ipo", summary="IPO, length-averaged log-ratios (Azar et al. 2024)"))
METHODS.add("slic", MethodInfo("slic", summary="SLiC-HF hinge; loss.reference_free for the rank form"))
METHODS.add("fdpo", MethodInfo("fdpo", summary="f-divergence DPO: loss.divergence = reverse_kl, forward_kl, "
                                               "js_divergence, alpha_divergence (Wang et al. 2023)"))
METHODS.add("orpo", MethodInfo("orpo", reward_scale="orpo_lambda", length_normalised=True,
                               summary="ORPO, odds-ratio + SFT, no reference (Hong et al. 2024)"))
METHODS.add("simpo", MethodInfo("simpo", length_normalised=True,
                                summary="SimPO, length-normalised, no reference (Meng et al. 2024)"))
METHODS.add("kto", MethodInfo("kto", summary="KTO on unpaired {prompt, completion, label} rows or rows "
                                             "derived from pairs (Ethayarajh et al. 2024)"))
METHODS.add("rm", MethodInfo("rm", model="reward_model",
                             summary="Bradley-Terry reward model: LoRA + scalar head (Ouyang et al. 2022)"))
METHODS.add("wpo", MethodInfo("dpo", wpo=True, summary="DPO with WPO weighting (Zhou et al. 2024)"))


# Run-control fields: they change where and how a run is written, not what it computes, so
# they are left out of `train_hash` (a resumed run may change them).
RUN_CONTROL_FIELDS = frozenset({"out", "overwrite", "resume", "save_steps", "report_to", "wandb_project",
                                "plots", "threads", "eval_batch_size"})
# Held-out fields that only decide what is measured; `fraction` stays in: it removes training rows.
HELD_OUT_MEASUREMENT_FIELDS = frozenset({"data", "split", "limit", "every"})


class TrainSpec(Spec):
    """One training run. See the module docstring and `evalbench/assets/recipes/train/*.yaml` for recipes.

    Attributes (selected):
        method: a `METHODS` name.
        base: base model (local directory, hub id, or `tiny` for the embedded tiny model).
        out: output directory; it becomes the peft adapter directory.
        max_steps: optimiser steps; when None, `epochs` passes over the data decide. In
            `load_train_spec`, an `epochs` given by the caller (the CLI's `--epochs`) drops a
            recipe's `max_steps`; giving both explicitly is an error.
        quantization: "nf4" loads the base in 4-bit NF4 through bitsandbytes (QLoRA).
        precision: "auto" = bf16 autocast on a CUDA GPU that supports it, else fp32.
        precompute_ref: compute reference log-probs once before training and cache them on disk
            (keyed by base-model identity + tokenized data hash), instead of each step. Ignored,
            with a logged note, by methods that use no reference (orpo, simpo, reference-free slic).
        save_steps: save a resumable checkpoint every N steps (atomically).
        kto_kl: KTO reference point z from mismatched pairs (False: z = 0).
        eval_examples: score the first N training examples before and after training (loss,
            implicit rewards, accuracy) into train_meta.json["eval"]; 0 turns it off.
        held_out: evaluation on held-out rows during training (`HeldOutSpec`).
        eval_batch_size: examples per no-grad forward (evaluations, precomputed reference
            log-probs); default 2 x optim.batch_size.
    """

    method: str
    base: str
    data: DataSpec
    out: str
    seed: int = 0
    max_steps: int | None = Field(None, ge=1)
    epochs: float = Field(1.0, gt=0)
    loss: LossSpec = LossSpec()
    wpo: WPOSpec = WPOSpec()
    lora: LoraSpec = LoraSpec()
    optim: OptimSpec = OptimSpec()
    quantization: Literal["none", "nf4"] = "none"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gradient_checkpointing: bool = False
    precompute_ref: bool = False
    ref_cache_dir: str | None = None
    kto_kl: bool = True
    eval_examples: int = Field(256, ge=0)
    held_out: HeldOutSpec = HeldOutSpec()
    eval_batch_size: int | None = Field(None, ge=1)
    save_steps: int | None = Field(None, ge=1)
    report_to: tuple[Literal["wandb", "tensorboard"], ...] = ()
    wandb_project: str = "evalbench"
    plots: bool = True
    threads: int | None = Field(None, ge=1)
    overwrite: bool = False
    resume: bool = False

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v not in METHODS:
            from evalbench.registry import did_you_mean

            raise ValueError(f"unknown method '{v}'{did_you_mean(v, METHODS.names())} "
                             f"(known: {', '.join(METHODS.names())})")
        return v

    @model_validator(mode="after")
    def _combination(self) -> TrainSpec:
        if self.overwrite and self.resume:
            raise ValueError("give at most one of overwrite and resume")
        return self

    @property
    def eval_batch(self) -> int:
        """Examples per no-grad forward: `eval_batch_size`, else twice the training micro-batch."""
        return self.eval_batch_size or 2 * self.optim.batch_size

    @property
    def info(self) -> MethodInfo:
        return METHODS.get(self.method)

    @property
    def loss_name(self) -> str:
        return self.info.loss

    @property
    def wpo_enabled(self) -> bool:
        return self.wpo.enabled or self.info.wpo

    def train_hash(self) -> str:
        """Hash of everything that decides the trained weights (run-control fields excluded)."""
        from evalbench.io import canonical_json, sha256_text

        dump = self.model_dump(mode="json", exclude=set(RUN_CONTROL_FIELDS))
        held_out = {k: v for k, v in dump.pop("held_out").items() if k not in HELD_OUT_MEASUREMENT_FIELDS}
        if held_out != {"fraction": 0.0}:  # the default leaves the hash of runs before held-out unchanged
            dump["held_out"] = held_out
        return sha256_text(canonical_json(dump))


# --------------------------------------------------------------------------- checks


def check(spec: TrainSpec):
    """Every check that needs no model and no data: returns the loss's `LossInfo`.

    Raises:
        InputError: an option combination the loss cannot honour (e.g. WPO on ORPO, a
            divergence on SimPO, `reference_free` on DPO), a β schedule that cannot be
            evaluated, fp16 on CPU. (`precompute_ref` on a reference-free loss is only noted.)
        MissingExtra: torch / peft / transformers, bitsandbytes for nf4, or a requested
            reporter (wandb, tensorboard) is not installed.
    """
    from evalbench.errors import require

    require("torch", "train")
    require("transformers", "train")
    require("peft", "train")
    from evalbench.train.losses import check_loss_options
    from evalbench.train.schedules import beta_at

    params = spec.loss.params()
    info = check_loss_options(spec.loss_name, params, weighting=spec.wpo_enabled)
    if not spec.wpo_enabled and spec.wpo != WPOSpec():
        raise InputError("wpo options are set but WPO weighting is off; add wpo.enabled=true "
                         "(--wpo) or use method 'wpo'", field="wpo")
    # evaluates the schedule once so that a bad schedule fails here, not at step 1
    beta_at(0, 1, spec.loss.beta, spec.loss.beta_end, spec.loss.beta_schedule)
    if spec.precompute_ref and not info.requires_ref(params):
        # a recipe written for DPO (precompute_ref: true) stays usable with --method simpo / orpo
        log.warning("method '%s' uses no reference model: precompute_ref is ignored", spec.method)
    if spec.method != "kto" and spec.kto_kl is not True:
        raise InputError(f"kto_kl is a KTO option; method '{spec.method}' ignores it", field="kto_kl")
    if spec.quantization == "nf4":
        require("bitsandbytes", "train")
    import torch

    cuda = torch.cuda.is_available()
    if spec.device == "cuda" and not cuda:
        raise InputError("device 'cuda' asked for but torch sees no CUDA GPU", field="device")
    on_gpu = spec.device == "cuda" or (spec.device == "auto" and cuda)
    if spec.precision == "fp16" and not on_gpu:
        raise InputError("fp16 mixed precision needs a CUDA GPU; use fp32 or bf16 on CPU", field="precision")
    for name in spec.report_to:
        # torch.utils.tensorboard is in torch; the `tensorboard` package it needs may not be
        modules = {"wandb": ("wandb",), "tensorboard": ("tensorboard", "torch.utils.tensorboard")}[name]
        for module in modules:
            require(module, "tracking")
    return info


# --------------------------------------------------------------------------- loading


def recipe_path(config: str | Path) -> Path:
    """A recipe file: an existing path, else a packaged recipe `<name>` (evalbench/assets/recipes/train)."""
    path = Path(config).expanduser()
    if path.exists():
        return path
    candidate = RECIPES_DIR / f"{config}.yaml"
    if "/" not in str(config) and candidate.exists():
        return candidate
    known = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []
    hint = f" (recipes in {RECIPES_DIR}: {', '.join(known)})" if known else ""
    raise InputError(f"config file not found{hint}", path=path, field="--config")


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, merging nested mappings key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_train_spec(config: str | Path | None = None, *, profile: str | None = None,
                    overrides: Sequence[str] = (), **fields: Any) -> TrainSpec:
    """Build a `TrainSpec` from a recipe (+ profile), keyword fields and `key=value` overrides.

    Precedence, lowest first: recipe, recipe profile, keyword `fields` (nested mappings are
    merged), overrides. Keyword fields whose value is None are ignored, so CLI flags that were
    not given do not clobber the recipe.

    Run length: `max_steps` wins over `epochs` inside one layer, so an `epochs` given in
    `fields` or `overrides` (`--epochs`) drops the `max_steps` of the recipe / profile; it would
    otherwise be silently ignored. Giving both explicitly is an error.

    Raises:
        InputError: missing recipe, unknown profile, `epochs` and `max_steps` both given, or a
            validation error naming the key path.
    """
    data: dict[str, Any] = {}
    source = None
    if config is not None:
        path = recipe_path(config)
        source = str(path)
        data = load_yaml(path)
        profiles = data.pop(PROFILES_KEY, None) or {}
        if not isinstance(profiles, Mapping):
            raise InputError("'profiles' must map profile names to overrides", path=path, field=PROFILES_KEY)
        if profile is not None:
            if profile not in profiles:
                from evalbench.registry import did_you_mean

                raise InputError(f"unknown profile '{profile}'{did_you_mean(profile, list(profiles))} "
                                 f"(known: {', '.join(sorted(profiles)) or 'none'})", path=path,
                                 field="--profile")
            data = deep_merge(data, profiles[profile])
    elif profile is not None:
        raise InputError("--profile needs --config (profiles live in recipe files)", field="--profile")
    explicit = _drop_none(fields)
    overridden = {o.split("=", 1)[0].strip() for o in overrides}
    epochs = "epochs" in explicit or "epochs" in overridden
    if epochs and ("max_steps" in explicit or "max_steps" in overridden):
        raise InputError("give either epochs (--epochs) or max_steps (--max-steps), not both: max_steps "
                         "would decide the run length alone", field="--epochs")
    if epochs and data.pop("max_steps", None) is not None:
        log.info("epochs given: the recipe's max_steps is dropped")
    data = deep_merge(data, explicit)
    data = apply_overrides(data, overrides)
    return validate_spec(TrainSpec, data, source=source)


def _drop_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, Mapping):
            value = _drop_none(value)
            if not value:
                continue
        if value is not None:
            out[key] = value
    return out


def resolve_base(base: str) -> str:
    """The base model to load: `tiny` -> the embedded tiny model dir; local paths made absolute."""
    if base == TINY_ALIAS and not Path(base).exists():
        from evalbench.models.tiny import ensure_tiny_model

        return str(ensure_tiny_model().resolve())
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise InputError("not a model directory (no config.json)", path=path, field="base")
        return str(path.resolve())
    if base.startswith(("/", ".", "~")) or base.count("/") >= 2:
        raise InputError("base model directory not found", path=base, field="base")
    return base


def total_steps(spec: TrainSpec, n_examples: int) -> int:
    """Optimiser steps of a run over `n_examples` (pairs; KTO: completions)."""
    if spec.max_steps is not None:
        return spec.max_steps
    per_epoch = math.ceil(n_examples / spec.optim.batch_size)
    return max(1, math.ceil(per_epoch * spec.epochs / spec.optim.grad_accum))


def warmup_steps(spec: TrainSpec, total: int) -> int:
    if spec.optim.warmup_steps is not None:
        return min(spec.optim.warmup_steps, total)
    return min(total, round(spec.optim.warmup_ratio * total))
