"""Objectives: completion log-probs, and one training objective per loss batch type.

An objective takes a `Context`, a collated batch and the step's `LossParams`, computes the
policy (and reference) log-probs, calls the pure loss in `evalbench.train.losses`, and returns
the mean loss with its metric sums (`StepOut`). `OBJECTIVES` is keyed by the loss's batch type:
paired log-probs (DPO family, ORPO, SimPO), KTO's unpaired batches, the reward model's pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from evalbench.registry import Registry
from evalbench.train.batches import Prepared
from evalbench.train.model import autocast, eval_mode
from evalbench.train.spec import TrainSpec

# --------------------------------------------------------------------------- log-probs


def token_logps(logits, input_ids, loss_mask):
    """Per-token log π(y_t | ...) of the scored tokens, the mask, and the shifted logits.

    `logits` may cover only the last K positions (`logits_to_keep`); position t predicts token
    t + 1, so the targets are the last K − 1 tokens.
    """
    import torch

    keep = logits.shape[1]
    shifted = logits[:, :-1].float()
    targets = input_ids[:, input_ids.shape[1] - keep + 1:]
    mask = loss_mask[:, loss_mask.shape[1] - keep + 1:].to(shifted.dtype)
    # gather − logsumexp: the full log_softmax tensor is never materialised for the gradient
    picked = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    tok = (picked - torch.logsumexp(shifted, dim=-1)) * mask
    return tok, mask, shifted


def forward_logits(model, ids, att, keep: int | None = None):
    """The model's logits, only for the last `keep` positions when the model class supports it."""
    if keep is not None and keep < ids.shape[1] and getattr(model, "_evalbench_keep_ok", True):
        try:
            return model(input_ids=ids, attention_mask=att, use_cache=False, logits_to_keep=keep).logits
        except TypeError as exc:  # a model class without `logits_to_keep`: full logits from now on
            if "logits_to_keep" not in str(exc):
                raise
            model._evalbench_keep_ok = False
    return model(input_ids=ids, attention_mask=att, use_cache=False).logits


def sequence_logps(model, ids, att, lmask, keep: int | None = None):
    """(sums (B,), lens (B,)) of completion log-probs."""
    tok, mask, _ = token_logps(forward_logits(model, ids, att, keep), ids, lmask)
    return tok.sum(-1), mask.sum(-1)


# --------------------------------------------------------------------------- objectives


class StepOut(NamedTuple):
    """A micro-batch's mean loss and its metric sums: key -> (sum, count)."""

    loss: Any
    stats: dict[str, tuple[float, int]]
    tokens: int


@dataclass
class Context:
    """What every objective needs.

    `ref` holds precomputed reference log-probs of the training examples, indexed by a batch's
    `index` (None: computed inline with the adapter disabled, as for any other split).
    """

    prep: Prepared
    model: Any
    device: Any
    precision: str
    needs_ref: bool
    ref: dict[str, Any] | None = None
    wpo: bool = False

    @property
    def spec(self) -> TrainSpec:
        return self.prep.spec


def _means(stats: dict[str, float], n: int) -> dict[str, tuple[float, int]]:
    return {k: (v * n, n) for k, v in stats.items()}


def reference_paired(ctx: Context, batch) -> tuple[Any, Any]:
    """Reference sums (chosen, rejected) of a paired batch: precomputed, else adapter disabled."""
    import torch

    if ctx.ref is not None:
        idx = batch["index"]
        return ctx.ref["chosen"][idx].to(ctx.device), ctx.ref["rejected"][idx].to(ctx.device)
    with torch.no_grad(), ctx.model.disable_adapter(), eval_mode(ctx.model), autocast(ctx.device, ctx.precision):
        sums, _ = sequence_logps(ctx.model, batch["input_ids"], batch["attention_mask"], batch["loss_mask"],
                                 batch["keep"])
    n = batch["n"]
    return sums[:n], sums[n:]


def paired_objective(ctx: Context, batch, params) -> StepOut:
    from evalbench.train import losses as L
    from evalbench.train import weights as W

    n = batch["n"]
    with autocast(ctx.device, ctx.precision):
        logits = forward_logits(ctx.model, batch["input_ids"], batch["attention_mask"], batch["keep"])
    tok, mask, shifted = token_logps(logits, batch["input_ids"], batch["loss_mask"])
    sums, lens = tok.sum(-1), mask.sum(-1)
    ref_c = ref_r = None
    if ctx.needs_ref:
        ref_c, ref_r = reference_paired(ctx, batch)
    b = L.PairLogps(chosen=sums[:n], rejected=sums[n:], chosen_len=lens[:n], rejected_len=lens[n:],
                    ref_chosen=ref_c, ref_rejected=ref_r)
    per_example = L.compute(ctx.spec.loss_name, b, params)
    extra: dict[str, float] = {}
    if ctx.wpo:
        w = ctx.spec.wpo
        log_w = W.sequence_log_weights_from_logps(tok, mask, W.token_log_norm(shifted, w.alignment))
        weights = W.pair_weights(log_w[:n], log_w[n:], w.variant, w.clamp_max)
        per_example = W.apply_pair_weights(per_example, weights)
        extra["wpo/weight_mean"] = weights.mean().item()
    info = ctx.spec.info
    scale = getattr(params, info.reward_scale)
    metrics = L.preference_metrics(b, scale, length_normalised=info.length_normalised).as_dict()
    stats = _means({**metrics, **extra, "loss": per_example.mean().item()}, n)
    return StepOut(per_example.mean(), stats, int(batch["attention_mask"].sum()))


def unpaired_objective(ctx: Context, batch, params) -> StepOut:
    import torch

    from evalbench.train import losses as L
    from evalbench.train import weights as W

    with autocast(ctx.device, ctx.precision):
        logits = forward_logits(ctx.model, batch["input_ids"], batch["attention_mask"], batch["keep"])
    tok, mask, shifted = token_logps(logits, batch["input_ids"], batch["loss_mask"])
    sums, lens = tok.sum(-1), mask.sum(-1)
    kl = kl_ref = None
    idx = batch["index"]
    if "kl" in batch:
        with torch.no_grad(), autocast(ctx.device, ctx.precision):
            kl, _ = sequence_logps(ctx.model, *batch["kl"])  # z is detached: no gradient needed
    if ctx.ref is not None:
        ref = ctx.ref["logps"][idx].to(ctx.device)
        if kl is not None:
            kl_ref = ctx.ref["kl"][idx].to(ctx.device)
    else:
        with torch.no_grad(), ctx.model.disable_adapter(), eval_mode(ctx.model), \
                autocast(ctx.device, ctx.precision):
            ref, _ = sequence_logps(ctx.model, batch["input_ids"], batch["attention_mask"], batch["loss_mask"],
                                    batch["keep"])
            if kl is not None:
                kl_ref, _ = sequence_logps(ctx.model, *batch["kl"])
    labels = batch["labels"]
    b = L.UnpairedLogps(logps=sums, ref_logps=ref, lens=lens, labels=labels, kl_logps=kl, ref_kl_logps=kl_ref)
    per_example = L.compute("kto", b, params)
    stats: dict[str, tuple[float, int]] = {}
    if ctx.wpo:
        log_w = W.sequence_log_weights_from_logps(tok, mask, W.token_log_norm(shifted, ctx.spec.wpo.alignment))
        per_example = W.apply_unpaired_weights(per_example, log_w, labels)
        stats["wpo/weight_mean"] = (torch.exp(log_w).sum().item(), len(log_w))
    with torch.no_grad():
        r = (sums - ref).detach() * params.beta
        for key, group in (("chosen", labels), ("rejected", ~labels)):
            k = int(group.sum())
            if k:
                stats[f"rewards/{key}"] = (r[group].sum().item(), k)
                stats[f"logps/{key}"] = (sums[group].detach().sum().item(), k)
        stats["kl"] = (L.kto_reference_point(b).item(), 1)
    n = batch["n"]
    stats["loss"] = (per_example.mean().item() * n, n)
    return StepOut(per_example.mean(), stats, int(batch["attention_mask"].sum()))


def reward_objective(ctx: Context, batch, params) -> StepOut:
    import torch

    from evalbench.train import losses as L
    from evalbench.train.reward import reward_scores

    n = batch["n"]
    with autocast(ctx.device, ctx.precision):
        rewards = reward_scores(ctx.model, batch["input_ids"], batch["attention_mask"])
    b = L.RewardPair(chosen=rewards[:n], rejected=rewards[n:])
    per_example = L.compute("rm", b, params)
    c, r = b.chosen.detach(), b.rejected.detach()
    stats = _means({"loss": per_example.mean().item(), "rewards/chosen": c.mean().item(),
                    "rewards/rejected": r.mean().item(), "rewards/margins": (c - r).mean().item(),
                    "rewards/accuracies": (c > r).float().mean().item()}, n)
    scores = torch.cat([c, r]).double()
    stats["rewards/mean"] = (scores.sum().item(), 2 * n)
    stats[_SQUARES] = ((scores ** 2).sum().item(), 2 * n)
    return StepOut(per_example.mean(), stats, int(batch["attention_mask"].sum()))


# loss batch type name -> objective
OBJECTIVES: Registry[Callable[[Context, dict, Any], StepOut]] = Registry("training objective")
OBJECTIVES.add("PairLogps", paired_objective)
OBJECTIVES.add("UnpairedLogps", unpaired_objective)
OBJECTIVES.add("RewardPair", reward_objective)


# Pooled over micro-batches as a mean of squares; `finish_row` turns it into `rewards/std`.
_SQUARES = "rewards/_squares"


def finish_row(stats: dict[str, tuple[float, int]]) -> dict[str, float | None]:
    """Metric means from pooled (sum, count) stats; None where nothing was counted."""
    row: dict[str, float | None] = {k: (s / c if c else None) for k, (s, c) in stats.items()}
    if "rewards/margins" not in row and row.get("rewards/chosen") is not None and row.get("rewards/rejected") is not None:
        row["rewards/margins"] = row["rewards/chosen"] - row["rewards/rejected"]  # KTO: group means
    squares = row.pop(_SQUARES, None)
    if squares is not None and row.get("rewards/mean") is not None:
        # population std of every scored reward, E[r^2] - E[r]^2 (clamped: rounding can dip below 0)
        row["rewards/std"] = math.sqrt(max(squares - row["rewards/mean"] ** 2, 0.0))
    return row


def add_stats(total: dict[str, list[float]], stats: dict[str, tuple[float, int]]) -> None:
    """Pool one micro-batch's (sum, count) stats into `total` in place."""
    for k, (s, c) in stats.items():
        acc = total.setdefault(k, [0.0, 0])
        acc[0] += s
        acc[1] += c
