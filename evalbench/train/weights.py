"""WPO weights (Zhou et al. 2024, arXiv 2406.11827) as pure functions over per-token outputs.

WPO re-weights a paired preference loss by how likely the pair is under the current policy:
`L = −E[w(x,y_w) · w(x,y_l) · log p(y_w ≻ y_l | x)]`, weights detached from the graph, with a
length-normalised per-sequence weight

    w(x, y) = exp( (1/|y|) Σ_t log [ π(y_t | x, y_<t) / Z_t ] )

whose normaliser Z_t is the *alignment* (registry `ALIGNMENTS`):
- `sampled` (default; the paper's and TRL's): Z_t = Σ_v π(v | x, y_<t)², the probability the
  policy's own sample would be drawn, so a token as likely as a typical sample scores 1;
- `greedy`: Z_t = max_v π(v | x, y_<t) (no public code implements it);
- `none`: Z_t = 1, the raw geometric-mean token probability.

Variants (registry `VARIANTS`): `wpo` = w_w · w_l, `wpo_w` = w_w only, `wpo_l` = w_l only.

Clamping, a deliberate choice: the official code (wzhouad/WPO `scripts/run_wpo.py`) computes
`clamp(exp(mean_w + mean_l), max=1)`, i.e. it clamps the *combined* pair weight at 1, and we do
the same by default (`clamp_max=1.0`). TRL 1.16's `DPOConfig(use_weighting=True)` does not clamp
(`weights = exp(mean)`, product unclamped); `pair_weights(..., clamp_max=None)` reproduces TRL's
numbers exactly (tests/unit/test_trl_agreement.py). With `sampled` alignment a sequence weight can
exceed 1 (π(y_t) > Σ_v π_v² whenever y_t is the policy's likely choice), so the two differ there.

Everything here runs under `torch.no_grad()` and returns detached tensors computed in at least
float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from evalbench.registry import Registry

Alignment = Literal["sampled", "greedy", "none"]
Variant = Literal["wpo", "wpo_w", "wpo_l"]

# alignment name -> per-token log Z_t from full-vocabulary log-probs (..., V) -> (...)
ALIGNMENTS: Registry[Callable[[Tensor], Tensor]] = Registry("WPO alignment")


@ALIGNMENTS.register("sampled")
def _sampled(log_probs: Tensor) -> Tensor:
    # log Σ_v π_v² = logsumexp(2 log π): stable even when most π_v underflow.
    return torch.logsumexp(2.0 * log_probs, dim=-1)


@ALIGNMENTS.register("greedy")
def _greedy(log_probs: Tensor) -> Tensor:
    return log_probs.max(dim=-1).values


@ALIGNMENTS.register("none")
def _none(log_probs: Tensor) -> Tensor:
    return torch.zeros(log_probs.shape[:-1], dtype=log_probs.dtype, device=log_probs.device)


def _work(t: Tensor) -> Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def token_log_norm(logits: Tensor, alignment: Alignment = "sampled") -> Tensor:
    """Per-token log Z_t (B, T) of an alignment, from next-token logits (B, T, V)."""
    fn = ALIGNMENTS.get(alignment)
    with torch.no_grad():
        return fn(torch.log_softmax(_work(logits.detach()), dim=-1))


def sequence_log_weights_from_logps(token_logps: Tensor, mask: Tensor,
                                    log_norm: Tensor | None = None) -> Tensor:
    """Length-normalised log weight per sequence, from per-token quantities.

    Args:
        token_logps: (B, T) log π(y_t | x, y_<t) of the scored tokens.
        mask: (B, T) 1 for scored (completion) tokens, 0 elsewhere.
        log_norm: (B, T) the alignment's log Z_t (e.g. TRL's fused-head `log_sum_sq_probs`
            for `sampled`); None means alignment `none`.

    Returns:
        (B,) `(1/|y|) Σ_t mask · (log π(y_t) − log Z_t)`, detached; |y| is clamped at 1 so an
        empty completion gets log weight 0 (TRL clamps the same way).
    """
    with torch.no_grad():
        per_token = _work(token_logps.detach())
        if log_norm is not None:
            per_token = per_token - _work(log_norm.detach())
        m = mask.to(per_token.dtype)
        return (per_token * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)


def sequence_log_weights(logits: Tensor, tokens: Tensor, mask: Tensor,
                         alignment: Alignment = "sampled") -> Tensor:
    """Length-normalised log WPO weight per sequence, from next-token logits.

    Args:
        logits: (B, T, V) logits whose position t predicts `tokens[:, t]` (already shifted).
        tokens: (B, T) target token ids (any value where `mask` is 0).
        mask: (B, T) 1 for scored completion tokens.
        alignment: one of `ALIGNMENTS` ("sampled", "greedy", "none").

    Returns:
        (B,) log w(x, y), detached.
    """
    fn = ALIGNMENTS.get(alignment)
    with torch.no_grad():
        log_probs = torch.log_softmax(_work(logits.detach()), dim=-1)
        safe = torch.where(mask.bool(), tokens, torch.zeros_like(tokens))
        token_logps = log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        return sequence_log_weights_from_logps(token_logps, mask, fn(log_probs))


# variant name -> combined log weight of a pair from (log w_w, log w_l)
VARIANTS: Registry[Callable[[Tensor, Tensor], Tensor]] = Registry("WPO variant")
VARIANTS.add("wpo", lambda lw, ll: lw + ll)
VARIANTS.add("wpo_w", lambda lw, ll: lw)
VARIANTS.add("wpo_l", lambda lw, ll: ll)


def pair_weights(log_w_chosen: Tensor, log_w_rejected: Tensor, variant: Variant = "wpo",
                 clamp_max: float | None = 1.0) -> Tensor:
    """Pair weights (B,) from the sequence log weights of chosen and rejected.

    `wpo`: w_w · w_l; `wpo_w`: w_w; `wpo_l`: w_l; then clamped at `clamp_max` (1.0 as the
    official code; None for TRL's unclamped weights). Detached.
    """
    combine = VARIANTS.get(variant)
    with torch.no_grad():
        w = torch.exp(combine(log_w_chosen.detach(), log_w_rejected.detach()))
        return w if clamp_max is None else w.clamp(max=clamp_max)


def apply_pair_weights(losses: Tensor, weights: Tensor) -> Tensor:
    """Per-example paired losses (B,) times their (detached) WPO weights; reduce with mean."""
    if losses.shape != weights.shape:
        raise ValueError(f"losses {tuple(losses.shape)} and weights {tuple(weights.shape)} differ in shape")
    return losses * weights.detach().to(losses.dtype)


def kto_normalised_weights(log_w: Tensor, labels: Tensor, clamp_max: float | None = None) -> Tensor:
    """WPO weights for an unpaired (KTO) batch: desirable and undesirable each sum to 1.

    Args:
        log_w: (B,) sequence log weights (`sequence_log_weights`).
        labels: (B,) bool, True = desirable.
        clamp_max: optional clamp of w before normalising (off by default: the paper states
            only the normalisation for unpaired losses).

    Returns:
        (B,) w̃ with Σ_{desirable} w̃ = 1 and Σ_{undesirable} w̃ = 1 (a group absent from the
        batch has no weights). Detached.
    """
    with torch.no_grad():
        lw = _work(log_w.detach())
        if clamp_max is not None:
            lw = lw.clamp(max=math.log(clamp_max))
        labels = labels.to(torch.bool)
        out = torch.zeros_like(lw)
        for group in (labels, ~labels):
            if group.any():
                # softmax of log weights = w / Σ w, without overflow for large weights
                out[group] = torch.softmax(lw[group], dim=0)
        return out


def apply_unpaired_weights(losses: Tensor, log_w: Tensor, labels: Tensor,
                           clamp_max: float | None = None) -> Tensor:
    """Per-example KTO losses (B,) weighted by `kto_normalised_weights`, ready for `.mean()`.

    Each weight is multiplied by its group's size, so that uniform weights give back the
    unweighted losses exactly and the trainer's usual mean reduction still applies; the
    relative weights inside each group are the normalised WPO weights.
    """
    if losses.shape != log_w.shape or losses.shape != labels.shape:
        raise ValueError("losses, log_w and labels must have the same shape (B,)")
    w = kto_normalised_weights(log_w, labels, clamp_max)
    labels = labels.to(torch.bool)
    sizes = torch.where(labels, labels.sum(), (~labels).sum()).to(w.dtype)
    return losses * (w * sizes).to(losses.dtype)
