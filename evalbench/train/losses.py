"""Preference losses as pure functions over log-prob batches, in the `LOSSES` registry.

Every loss takes a batch dataclass and a `LossParams` and returns a per-example loss of
shape (B,); the trainer reduces it (mean, or weighted by WPO weights, see
`evalbench.train.weights`). Nothing here reads files, models or globals.

Notation (docs: /work/shared/notes/methods.md, "Preference losses"):
`u_w = log π(y_w|x) − log π_ref(y_w|x)`, `u_l` likewise, `h = β (u_w − u_l)`, σ the logistic
function; log-probs are summed over the completion tokens unless a loss says otherwise.

Adding a loss is one `@loss(...)` function plus a closed-form test in tests/unit/test_losses.py.

This module is torch-only by nature, so it imports torch at the top; `import evalbench` and
`import evalbench.train` never import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from evalbench.errors import InputError
from evalbench.registry import Registry
from evalbench.train.loss_inputs import (  # noqa: F401  (re-exported: the losses' public inputs)
    DIVERGENCE_NAMES,
    Divergence,
    LossParams,
    PairLogps,
    RewardPair,
    UnpairedLogps,
)

_DEFAULTS = LossParams()
_PARAM_NAMES = tuple(f.name for f in dataclasses.fields(LossParams))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class LossInfo:
    """A registered loss and what the trainer must know before loading a model.

    Attributes:
        name: registry name (== config / CLI name).
        fn: the pure loss function `(batch, params) -> Tensor (B,)`.
        needs_ref: whether a reference model is needed; a callable when it depends on the
            params (SLiC's `reference_free`).
        paired: True for (chosen, rejected) batches, False for KTO's unpaired batches.
        weightable: whether WPO weights can be applied (see `evalbench.train.weights`).
        batch: the batch dataclass the function takes.
        uses: the `LossParams` fields the loss reads; setting any other field to a
            non-default value is rejected by `check_loss_options` (it would be ignored).
    """

    name: str
    fn: Callable[[Any, LossParams], Tensor]
    needs_ref: bool | Callable[[LossParams], bool]
    paired: bool
    weightable: bool
    batch: type
    uses: frozenset[str] = field(default_factory=frozenset)

    def requires_ref(self, params: LossParams) -> bool:
        return self.needs_ref(params) if callable(self.needs_ref) else bool(self.needs_ref)

    def __call__(self, batch: Any, params: LossParams) -> Tensor:
        return compute(self.name, batch, params)


LOSSES: Registry[LossInfo] = Registry("loss")


def loss(name: str, *, needs_ref: bool | Callable[[LossParams], bool], paired: bool = True,
         weightable: bool = True, batch: type | None = None, uses: tuple[str, ...] = ("beta",)):
    """Register a loss function under `name` with the metadata the trainer validates early.

    The decorated function is returned unchanged, so it can be called directly.
    """
    unknown = set(uses) - set(_PARAM_NAMES)
    if unknown:  # a typo here would silently disable check_loss_options for that field
        raise ValueError(f"loss '{name}' uses unknown LossParams fields {sorted(unknown)}")

    def deco(fn: Callable[[Any, LossParams], Tensor]) -> Callable[[Any, LossParams], Tensor]:
        LOSSES.add(name, LossInfo(name=name, fn=fn, needs_ref=needs_ref, paired=paired,
                                  weightable=weightable,
                                  batch=batch or (PairLogps if paired else UnpairedLogps),
                                  uses=frozenset(uses)))
        return fn

    return deco


def check_loss_options(name: str, params: LossParams, *, weighting: bool = False) -> LossInfo:
    """Validate a loss configuration before any model is loaded; returns its `LossInfo`.

    Raises:
        InputError: unknown loss name (with a did-you-mean), WPO weighting asked for a loss
            that cannot be weighted, or a parameter set that this loss ignores.
    """
    try:
        info = LOSSES.get(name)
    except KeyError as exc:
        raise InputError(str(exc), field="loss") from None
    if weighting and not info.weightable:
        ok = ", ".join(n for n in LOSSES.names() if LOSSES.get(n).weightable)
        raise InputError(f"WPO weighting is not defined for loss '{name}' (weightable: {ok})",
                         field="wpo")
    for pname in _PARAM_NAMES:
        # beta is exempt: trainers set it (and anneal it) for every loss, and a loss that
        # does not read it (orpo, rm) is unaffected by it.
        if pname != "beta" and pname not in info.uses and getattr(params, pname) != getattr(_DEFAULTS, pname):
            users = [n for n in LOSSES.names() if pname in LOSSES.get(n).uses]
            hint = f"; it is read by: {', '.join(users)}" if users else ""
            raise InputError(f"loss '{name}' ignores {pname}={getattr(params, pname)!r}{hint}",
                             field=pname)
    return info


def compute(name: str, batch: Any, params: LossParams) -> Tensor:
    """Look up loss `name`, check the batch fits it, and return the per-example loss (B,)."""
    info = LOSSES.get(name)
    if not isinstance(batch, info.batch):
        raise TypeError(f"loss '{name}' takes a {info.batch.__name__}, got {type(batch).__name__}")
    if info.requires_ref(params) and not batch.has_ref:
        raise ValueError(f"loss '{name}' needs reference log-probs (ref_*), which the batch lacks")
    return info.fn(batch, params)


# --------------------------------------------------------------------------- f-divergences

DIVERGENCES: Registry[Callable[[Tensor, float], Tensor]] = Registry("divergence")

# exp() overflow guard for the α-divergence, per dtype: TRL's values for half/bf16/fp32
# (DPOTrainer._compute_loss); float64 is ours (TRL has no entry for it).
_EXP_CLAMP = {torch.float16: 11.0, torch.bfloat16: 80.0, torch.float32: 80.0, torch.float64: 700.0}


@DIVERGENCES.register("reverse_kl")
def _reverse_kl(logratio: Tensor, alpha: float) -> Tensor:
    # f(t) = t log t  ->  f'(t) = log t + 1; the constant cancels in chosen - rejected,
    # so this is DPO's log-ratio.
    return logratio


@DIVERGENCES.register("forward_kl")
def _forward_kl(logratio: Tensor, alpha: float) -> Tensor:
    # f(t) = -log t -> f'(t) = -1/t; TRL writes 1 - 1/t (same differences).
    return 1 - torch.exp(-logratio)


@DIVERGENCES.register("js_divergence")
def _js_divergence(logratio: Tensor, alpha: float) -> Tensor:
    # f'(t) = log(2t / (1 + t)) = log 2 + log σ(log t)  (Wang et al. 2023, Table 1)
    return math.log(2.0) + F.logsigmoid(logratio)


@DIVERGENCES.register("alpha_divergence")
def _alpha_divergence(logratio: Tensor, alpha: float) -> Tensor:
    # TRL's form f'(t) = (t^(α-1) - 1) / (α - 1). Wang et al. write (1 - t^(-a)) / a, the same
    # function with a = 1 - α. α -> 1 tends to log t (reverse KL), α = 0 is forward KL.
    if abs(alpha - 1.0) < 1e-6:  # the limit itself; the formula would divide by ~0 (as TRL)
        return logratio
    work = torch.promote_types(logratio.dtype, torch.float32)
    t = ((alpha - 1.0) * logratio).to(work).clamp(max=_EXP_CLAMP.get(work, 80.0))
    return (torch.expm1(t) / (alpha - 1.0)).to(logratio.dtype)


def divergence_scores(logratio: Tensor, divergence: str, alpha: float = 0.5) -> Tensor:
    """f'(π/π_ref) evaluated at `exp(logratio)` for the named f-divergence (f-DPO's score)."""
    return DIVERGENCES.get(divergence)(logratio, alpha)


def ref_scores(b: PairLogps, p: LossParams) -> tuple[Tensor, Tensor]:
    """Per-completion scores (s_w, s_l): f'(π/π_ref) of the summed log-ratios u_w, u_l.

    For `p.divergence == "reverse_kl"` these are u_w and u_l themselves.
    """
    if not b.has_ref:
        raise ValueError("this loss needs reference log-probs (ref_chosen, ref_rejected)")
    u_w = b.chosen - b.ref_chosen
    u_l = b.rejected - b.ref_rejected
    return divergence_scores(u_w, p.divergence, p.alpha), divergence_scores(u_l, p.divergence, p.alpha)


def _lens(n: Tensor, like: Tensor) -> Tensor:
    # An empty completion would divide by zero; count it as one token (TRL clamps at 1 too).
    return n.to(like.dtype).clamp(min=1.0)


def log1mexp(x: Tensor) -> Tensor:
    """log(1 − exp(x)) for x < 0, stably (Mächler 2012: switch formulas at −log 2)."""
    return torch.where(x < -math.log(2.0), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


# --------------------------------------------------------------------------- losses


@loss("dpo", needs_ref=True)
def dpo(b: PairLogps, p: LossParams) -> Tensor:
    """DPO (Rafailov et al. 2023, Eq. 7): `−log σ(β (u_w − u_l))`, the sigmoid loss."""
    if not b.has_ref:
        raise ValueError("dpo needs reference log-probs (ref_chosen, ref_rejected)")
    h = p.beta * ((b.chosen - b.ref_chosen) - (b.rejected - b.ref_rejected))
    return -F.logsigmoid(h)


@loss("cdpo", needs_ref=True, uses=("beta", "label_smoothing", "divergence", "alpha"))
def cdpo(b: PairLogps, p: LossParams) -> Tensor:
    """Conservative DPO: `−(1−ε) log σ(h) − ε log σ(−h)`, labels flipped with probability ε.

    Source: Mitchell 2023, "A note on DPO with noisy preferences & relationship to IPO"
    (also OpenRLHF's `label_smoothing`). TRL 1.16's sigmoid loss no longer takes label
    smoothing; its `robust` loss (Chowdhury et al. 2024) is a different, unbiased estimator
    `((1−ε) ℓ(h) − ε ℓ(−h)) / (1 − 2ε)`, and its `exo_pair` another; neither equals cDPO.
    ε = 0 is exactly DPO.
    """
    s_w, s_l = ref_scores(b, p)
    h = p.beta * (s_w - s_l)
    eps = p.label_smoothing
    return -(1.0 - eps) * F.logsigmoid(h) - eps * F.logsigmoid(-h)


@loss("ipo", needs_ref=True, uses=("beta", "divergence", "alpha"))
def ipo(b: PairLogps, p: LossParams) -> Tensor:
    """IPO (Azar et al. 2024, Eq. 17): `(ū_w − ū_l − 1/(2β))²` with β as the paper's τ.

    # IPO Eq. 17 uses log-ratios averaged over the scored tokens: TRL normalises by length,
    # a choice confirmed with the IPO authors (TRL #1265 and the DPOTrainer comment).
    The loss is zero when the length-averaged margin equals 1/(2β).
    """
    s_w, s_l = ref_scores(b, p)
    margin = s_w / _lens(b.chosen_len, s_w) - s_l / _lens(b.rejected_len, s_l)
    return (margin - 1.0 / (2.0 * p.beta)) ** 2


def _slic_needs_ref(p: LossParams) -> bool:
    return not p.reference_free


@loss("slic", needs_ref=_slic_needs_ref,
      uses=("beta", "divergence", "alpha", "slic_delta", "reference_free"))
def slic(b: PairLogps, p: LossParams) -> Tensor:
    """SLiC-HF calibration hinge (Zhao et al. 2023).

    Reference-normalised (default, TRL's `hinge`): `max(0, 1 − β (u_w − u_l))`.
    Reference-free (`p.reference_free`, the paper's Eq. 1 rank loss):
    `max(0, δ − log π(y_w|x) + log π(y_l|x))`. The SFT regulariser of the paper is not
    included (train it separately or add the chosen NLL in the trainer).
    """
    if p.reference_free:
        return torch.relu(p.slic_delta - b.chosen + b.rejected)
    s_w, s_l = ref_scores(b, p)
    return torch.relu(1.0 - p.beta * (s_w - s_l))


@loss("fdpo", needs_ref=True, uses=("beta", "divergence", "alpha"))
def fdpo(b: PairLogps, p: LossParams) -> Tensor:
    """f-DPO (Wang et al. 2023, arXiv 2309.16240): `−log σ(β (f'(π/π_ref)_w − f'(π/π_ref)_l))`.

    The f' forms are TRL's `f_divergence_type` formulas (DPOTrainer, TRL 1.16): reverse_kl
    (= DPO), forward_kl `1 − 1/t`, js_divergence `log 2 + log σ(log t)`, alpha_divergence
    `(t^(α−1) − 1)/(α−1)` (α → 1: reverse KL; α = 0: forward KL).
    """
    s_w, s_l = ref_scores(b, p)
    return -F.logsigmoid(p.beta * (s_w - s_l))


def orpo_log_odds_ratio(b: PairLogps) -> Tensor:
    """log odds(y_w) − log odds(y_l) with odds(y) = P/(1−P), P = exp(mean token log-prob)."""
    m_w = b.chosen / _lens(b.chosen_len, b.chosen)
    m_l = b.rejected / _lens(b.rejected_len, b.rejected)
    # log odds = m - log(1 - e^m); a completion with P = 1 exactly has infinite odds.
    return (m_w - log1mexp(m_w)) - (m_l - log1mexp(m_l))


@loss("orpo", needs_ref=False, weightable=False, uses=("orpo_lambda",))
def orpo(b: PairLogps, p: LossParams) -> Tensor:
    """ORPO (Hong et al. 2024, arXiv 2403.07691, Eq. 6–7): `NLL(y_w) + λ · (−log σ(log OR))`.

    The SFT term is `b.chosen_nll` if given, else the mean token NLL of the chosen completion
    `−chosen/chosen_len`. (TRL's ORPOTrainer computes its NLL over prompt and completion
    tokens and averages over the batch; the paper's L_SFT is over the response.) No
    reference model. Not WPO-weightable: the SFT term is not a preference likelihood.
    TRL's `ORPOConfig.beta` is this λ.
    """
    nll = b.chosen_nll if b.chosen_nll is not None else -b.chosen / _lens(b.chosen_len, b.chosen)
    return nll - p.orpo_lambda * F.logsigmoid(orpo_log_odds_ratio(b))


@loss("simpo", needs_ref=False, uses=("beta", "simpo_gamma"))
def simpo(b: PairLogps, p: LossParams) -> Tensor:
    """SimPO (Meng et al. 2024, arXiv 2405.14734, Eq. 6).

    `−log σ(β/|y_w| · log π(y_w|x) − β/|y_l| · log π(y_l|x) − γ)`; no reference model.
    """
    r_w = p.beta * b.chosen / _lens(b.chosen_len, b.chosen)
    r_l = p.beta * b.rejected / _lens(b.rejected_len, b.rejected)
    return -F.logsigmoid(r_w - r_l - p.simpo_gamma)


def kto_reference_point(b: UnpairedLogps) -> Tensor:
    """KTO's z: batch-mean KL estimate from mismatched pairs, clamped at 0 and detached.

    `z = max(0, mean(log π(y'|x) − log π_ref(y'|x)))` over the mismatched pairs (Ethayarajh
    et al. 2024, §4.1); 0 when the batch carries none.
    """
    if b.kl_logps is None or b.ref_kl_logps is None:
        return torch.zeros((), dtype=b.logps.dtype, device=b.logps.device)
    # Detached: z is a reference point, not something to optimise (paper and TRL).
    return (b.kl_logps - b.ref_kl_logps).mean().detach().clamp(min=0)


@loss("kto", needs_ref=True, paired=False, uses=("beta", "kto_lambda_d", "kto_lambda_u"))
def kto(b: UnpairedLogps, p: LossParams) -> Tensor:
    """KTO (Ethayarajh et al. 2024, Eq. 7), per example in batch order.

    desirable: `λ_D (1 − σ(β (r − z)))`; undesirable: `λ_U (1 − σ(β (z − r)))`, with
    `r = log π(y|x) − log π_ref(y|x)` and z from `kto_reference_point`.
    """
    r = b.logps - b.ref_logps
    z = kto_reference_point(b)
    labels = b.labels.to(torch.bool)
    desirable = p.kto_lambda_d * (1 - torch.sigmoid(p.beta * (r - z)))
    undesirable = p.kto_lambda_u * (1 - torch.sigmoid(p.beta * (z - r)))
    return torch.where(labels, desirable, undesirable)


def bradley_terry(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """Bradley–Terry reward-model loss `−log σ(r(x,y_w) − r(x,y_l))` per pair (Ouyang et al. 2022)."""
    return -F.logsigmoid(r_chosen - r_rejected)


@loss("rm", needs_ref=False, weightable=False, batch=RewardPair, uses=())
def rm(b: RewardPair, p: LossParams) -> Tensor:
    """Reward-model training loss over scalar rewards; see `bradley_terry`."""
    return bradley_terry(b.chosen, b.rejected)


# --------------------------------------------------------------------------- metrics


class PreferenceMetrics(NamedTuple):
    """Batch means of the per-step metrics TRL logs (keys via `as_dict`)."""

    rewards_chosen: float
    rewards_rejected: float
    rewards_margins: float
    rewards_accuracies: float
    logps_chosen: float
    logps_rejected: float

    def as_dict(self) -> dict[str, float]:
        return {"rewards/chosen": self.rewards_chosen, "rewards/rejected": self.rewards_rejected,
                "rewards/margins": self.rewards_margins, "rewards/accuracies": self.rewards_accuracies,
                "logps/chosen": self.logps_chosen, "logps/rejected": self.logps_rejected}


def preference_metrics(b: PairLogps, beta: float, *, length_normalised: bool = False) -> PreferenceMetrics:
    """Implicit rewards and accuracy of a paired batch, as TRL defines them.

    With reference log-probs: rewards/chosen = mean β·u_w, rewards/rejected = mean β·u_l.
    Without (ORPO, SimPO): β·log π(y|x), divided by the token count when
    `length_normalised` (SimPO's reward). margins = mean(chosen − rejected reward);
    accuracies = fraction of pairs whose chosen reward is strictly larger.
    """
    with torch.no_grad():
        c, r = b.chosen.detach(), b.rejected.detach()
        if b.has_ref:
            c, r = c - b.ref_chosen.detach(), r - b.ref_rejected.detach()
        if length_normalised:
            c, r = c / _lens(b.chosen_len, c), r / _lens(b.rejected_len, r)
        rc, rr = beta * c, beta * r
        return PreferenceMetrics(
            rewards_chosen=rc.mean().item(), rewards_rejected=rr.mean().item(),
            rewards_margins=(rc - rr).mean().item(),
            rewards_accuracies=(rc > rr).to(torch.float64).mean().item(),
            logps_chosen=b.chosen.detach().mean().item(), logps_rejected=b.rejected.detach().mean().item())
