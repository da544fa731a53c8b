"""The inputs of the preference losses: log-prob batches and the hyper-parameters (`LossParams`).

Split from `evalbench.train.losses` (the registry and the loss functions), which re-exports every
name here, so `from evalbench.train.losses import PairLogps, LossParams` keeps working.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from torch import Tensor

from evalbench.errors import InputError
from evalbench.registry import did_you_mean

Divergence = Literal["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"]
DIVERGENCE_NAMES: tuple[str, ...] = get_args(Divergence)


# --------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class PairLogps:
    """One batch of preference pairs, as log-probs of the completions (all tensors shape (B,)).

    Attributes:
        chosen, rejected: log π(y|x) summed over the scored completion tokens.
        chosen_len, rejected_len: number of scored tokens (the same mask as the sums).
        ref_chosen, ref_rejected: the same sums under the frozen reference model; required
            by the losses registered with `needs_ref=True`.
        chosen_nll: mean per-token NLL of the chosen completion, ORPO's SFT term. When
            absent, ORPO uses `-chosen / chosen_len` (the same quantity from the same mask).
    """

    chosen: Tensor
    rejected: Tensor
    chosen_len: Tensor
    rejected_len: Tensor
    ref_chosen: Tensor | None = None
    ref_rejected: Tensor | None = None
    chosen_nll: Tensor | None = None

    @property
    def has_ref(self) -> bool:
        return self.ref_chosen is not None and self.ref_rejected is not None


@dataclass(frozen=True)
class UnpairedLogps:
    """One KTO batch: single completions labelled desirable or not (tensors shape (B,)).

    Attributes:
        logps, ref_logps: summed completion log-probs under the policy and the reference.
        lens: scored-token counts (used by WPO weighting and metrics, not by the KTO loss).
        labels: bool, True = desirable.
        kl_logps, ref_kl_logps: summed log-probs of *mismatched* (prompt, completion) pairs
            from the same batch (shape (K,)), for KTO's reference point z. When absent, z = 0
            (TRL's `calculate_KL=False`).
    """

    logps: Tensor
    ref_logps: Tensor
    lens: Tensor
    labels: Tensor
    kl_logps: Tensor | None = None
    ref_kl_logps: Tensor | None = None

    @property
    def has_ref(self) -> bool:
        return self.ref_logps is not None


@dataclass(frozen=True)
class RewardPair:
    """Scalar reward-model outputs for the chosen and rejected completions (shape (B,))."""

    chosen: Tensor
    rejected: Tensor

    @property
    def has_ref(self) -> bool:  # a reward model has no reference; kept for a uniform check
        return False


# --------------------------------------------------------------------------- params


@dataclass(frozen=True)
class LossParams:
    """Hyper-parameters read by the losses; each loss declares which fields it uses.

    Attributes:
        beta: β, the KL-regularisation strength (IPO's τ; SimPO's reward scale). For β
            annealing build a new `LossParams(beta=beta_at(step, ...))` each step.
        label_smoothing: cDPO's ε, the assumed probability that a label is flipped; [0, 0.5).
        divergence: f-divergence whose f'(π/π_ref) replaces the log-ratio (f-DPO); TRL's
            `f_divergence_type` names.
        alpha: α of the α-divergence in TRL's parameterisation (`f_alpha_divergence_coef`):
            α → 1 is reverse KL (DPO), α = 0 is forward KL.
        slic_delta: δ of the reference-free SLiC hinge.
        reference_free: SLiC only: use `max(0, δ − log π(y_w) + log π(y_l))`, no reference.
        orpo_lambda: ORPO's λ weighting the odds-ratio term (paper: 0.1–0.25).
        simpo_gamma: SimPO's target reward margin γ.
        kto_lambda_d, kto_lambda_u: KTO's desirable / undesirable weights λ_D, λ_U.
    """

    beta: float = 0.1
    label_smoothing: float = 0.0
    divergence: Divergence = "reverse_kl"
    alpha: float = 0.5
    slic_delta: float = 1.0
    reference_free: bool = False
    orpo_lambda: float = 0.1
    simpo_gamma: float = 0.5
    kto_lambda_d: float = 1.0
    kto_lambda_u: float = 1.0

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> InputError:
            return InputError(f"{why}, got {getattr(self, name)!r}", field=name)

        if not (self.beta > 0 and math.isfinite(self.beta)):
            raise bad("beta", "beta must be a finite number > 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            # ε = 0.5 makes the labels pure noise (the loss no longer depends on the order).
            raise bad("label_smoothing", "label_smoothing must be in [0, 0.5)")
        if self.divergence not in DIVERGENCE_NAMES:
            raise InputError(
                f"unknown divergence {self.divergence!r}{did_you_mean(self.divergence, DIVERGENCE_NAMES)}"
                f" (known: {', '.join(DIVERGENCE_NAMES)})", field="divergence")
        if not math.isfinite(self.alpha):
            raise bad("alpha", "alpha must be finite")
        for name in ("slic_delta", "orpo_lambda", "simpo_gamma", "kto_lambda_d", "kto_lambda_u"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise bad(name, f"{name} must be a finite number >= 0")

    def replace(self, **changes: Any) -> LossParams:
        """A copy with some fields changed (validated again), e.g. a new β each step."""
        return dataclasses.replace(self, **changes)
