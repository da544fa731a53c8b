"""The parts of a `TrainSpec`: LoRA, loss (with the β schedule), WPO, data, optimiser and
held-out evaluation settings. Frozen pydantic specs; no torch (`LossSpec.params` imports the
loss module only when called). `evalbench.train.spec` re-exports every name here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from evalbench.config import Spec

ScheduleKind = Literal["constant", "linear", "cosine"]


class LoraSpec(Spec):
    """peft LoRA settings (Hu et al. 2021). `alpha / r` scales the update."""

    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    bias: Literal["none", "all", "lora_only"] = "none"

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or any(not m.strip() for m in v):
            raise ValueError("target_modules must list at least one module name")
        return v


class LossSpec(Spec):
    """Loss hyper-parameters (see `evalbench.train.losses.LossParams`) and the β schedule.

    β moves from `beta` to `beta_end` along `beta_schedule` (constant, linear, cosine) over the
    optimisation steps: Annealing-DPO / -IPO; `beta_end` must be left out for constant.
    """

    beta: float = Field(0.1, gt=0)
    beta_end: float | None = Field(None, gt=0)
    beta_schedule: ScheduleKind = "constant"
    label_smoothing: float = 0.0
    divergence: Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"] = "reverse_kl"
    alpha: float = 0.5
    slic_delta: float = 1.0
    reference_free: bool = False
    orpo_lambda: float = 0.1
    simpo_gamma: float = 0.5
    kto_lambda_d: float = 1.0
    kto_lambda_u: float = 1.0

    @model_validator(mode="after")
    def _schedule(self) -> LossSpec:
        if self.beta_schedule == "constant" and self.beta_end is not None and self.beta_end != self.beta:
            raise ValueError(f"beta_end={self.beta_end} needs beta_schedule 'linear' or 'cosine' "
                             "(a constant schedule would ignore it)")
        return self

    def step_beta(self, step: int, total_steps: int) -> float:
        """β of optimisation step `step` (0-based) of `total_steps`: `beta` first, `beta_end` at the last."""
        from evalbench.train.schedules import beta_for_step

        return beta_for_step(step, total_steps, self.beta, self.beta_end, self.beta_schedule)

    def params(self, beta: float | None = None):
        """The `LossParams` of this spec (β overridden for a step of an annealed schedule)."""
        from evalbench.train.losses import LossParams

        fields = self.model_dump(exclude={"beta_end", "beta_schedule"})
        if beta is not None:
            fields["beta"] = beta
        return LossParams(**fields)


class WPOSpec(Spec):
    """WPO re-weighting (Zhou et al. 2024): alignment of the token normaliser and the variant.

    `clamp_max`: the pair weight is clamped at this value (1.0 as the official code; None for
    TRL's unclamped `use_weighting`). KTO weights are normalised per label group instead and
    never clamped (the paper states only the normalisation).
    """

    enabled: bool = False
    alignment: Literal["sampled", "greedy", "none"] = "sampled"
    variant: Literal["wpo", "wpo_w", "wpo_l"] = "wpo"
    clamp_max: float | None = Field(1.0, gt=0)


class DataSpec(Spec):
    """Where the preference data comes from and how it is cut.

    `path`: a local .jsonl / .json / .parquet file (optionally .gz for JSON), a path relative
    to the data dir (`EVALBENCH_DATA_DIR`, e.g. `prefs/hh_rlhf_harmless_base_test.jsonl`), or a
    Hugging Face hub dataset id (`org/name`, read with `datasets.load_dataset(path, name,
    split=split)`). Rows: TRL `{prompt, chosen, rejected}` (strings or message lists),
    Anthropic HH `{chosen, rejected}` dialogues, UltraFeedback-binarized (message lists that
    repeat the prompt), or unpaired `{prompt, completion, label}` (KTO).

    Lengths are in tokens after the chat template: the prompt keeps its last
    `max_prompt_length` tokens; a completion that still does not fit in `max_length` is cut
    (`overlong: truncate`, TRL's behaviour), dropped (`skip`) or rejected (`error`).
    """

    path: str
    name: str | None = None
    split: str = "train"
    offset: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1)
    max_length: int = Field(512, ge=2)
    max_prompt_length: int = Field(256, ge=1)
    overlong: Literal["truncate", "skip", "error"] = "truncate"
    skip_bad_rows: bool = False
    chat_template: bool = True
    system_prompt: str | None = None

    @model_validator(mode="after")
    def _lengths(self) -> DataSpec:
        if self.max_prompt_length >= self.max_length:
            raise ValueError(f"max_prompt_length ({self.max_prompt_length}) must be < max_length "
                             f"({self.max_length}): no room would be left for the completion")
        return self


class OptimSpec(Spec):
    """AdamW with linear warm-up then decay (`evalbench.train.schedules.lr_at`).

    The effective batch is `batch_size * grad_accum` pairs (KTO: completions). `warmup_steps`
    wins over `warmup_ratio` when given. `max_grad_norm` None or 0 disables clipping (the
    norm is still logged).
    """

    lr: float = Field(5e-6, gt=0)
    lr_schedule: ScheduleKind = "cosine"
    min_lr: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    warmup_steps: int | None = Field(None, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, ge=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _lrs(self) -> OptimSpec:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must be <= lr ({self.lr})")
        if not all(0.0 <= b < 1.0 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be in [0, 1), got {self.adam_betas}")
        return self


class HeldOutSpec(Spec):
    """Held-out evaluation during training: loss, reward accuracy, margins, chosen/rejected rewards
    (reward models: accuracy and reward mean/std) on rows the model does not train on.

    The rows come from `data` (a file or hub dataset, read and tokenized like the training data:
    same lengths, chat template and system prompt; `split` picks a hub split) or, with
    `fraction`, from that fraction of the training rows, held out and not trained on (a fixed
    split, the same for every seed). Evaluated before training, every `every` optimiser steps
    and after the last step; rows go to metrics.jsonl (`eval/...` keys), the first and last to
    train_meta.json["held_out"].
    """

    data: str | None = None
    split: str | None = None
    limit: int | None = Field(None, ge=1)
    fraction: float = Field(0.0, ge=0.0, lt=1.0)
    every: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> HeldOutSpec:
        if self.data is not None and self.fraction:
            raise ValueError("give either held_out.data (--eval-data) or held_out.fraction (--eval-fraction), "
                             "not both")
        if not self.enabled and (self.every is not None or self.split is not None or self.limit is not None):
            raise ValueError("held-out options are set but there are no held-out rows; add --eval-data or "
                             "--eval-fraction")
        return self

    @property
    def enabled(self) -> bool:
        return self.data is not None or self.fraction > 0
