"""Evaluation during training: loss and implicit-reward metrics over a set of examples, no gradients.

Two uses: the first `eval_examples` *training* examples before and after training (did the
model fit what it saw?), and the held-out split (`held_out`: a file or a fraction of the rows),
every `held_out.every` steps and at the end (does it generalise?). Both run in eval mode (no
dropout) without WPO weighting, with the β of the step they describe. Held-out reference
log-probs are always computed inline: a precomputed reference covers the training rows only.
"""

from __future__ import annotations

from dataclasses import replace

from evalbench.train.batches import ExampleSet, collate
from evalbench.train.layout import EVAL_PREFIX
from evalbench.train.model import eval_mode
from evalbench.train.objectives import OBJECTIVES, Context, add_stats, finish_row


def evaluate(ctx: Context, params, batch_size: int, limit: int | None = None,
             data: ExampleSet | None = None) -> dict[str, float | None]:
    """Mean loss and implicit-reward metrics over the first `limit` examples (all when None) of
    `data` (default: the training examples), in eval mode and without WPO weighting."""
    import torch

    held_out = data is not None
    data = data if data is not None else ctx.prep.train_set
    # WPO re-weights the training loss only; a precomputed reference is indexed by training rows
    ectx = replace(ctx, wpo=False, ref=None if held_out else ctx.ref)
    pad_id = ctx.prep.tokenizer.pad_token_id
    total: dict[str, list[float]] = {}
    objective = OBJECTIVES.get(ctx.prep.loss_info.batch.__name__)
    n = len(data.examples) if limit is None else min(limit, len(data.examples))
    with torch.no_grad(), eval_mode(ctx.model):
        for start in range(0, n, batch_size):
            batch = collate(data, list(range(start, min(n, start + batch_size))), pad_id, ctx.device)
            add_stats(total, objective(ectx, batch, params).stats)
    return finish_row({k: (s, int(c)) for k, (s, c) in total.items()})


def held_out_row(ctx: Context, params, batch_size: int, step: int) -> dict:
    """The metrics.jsonl row of a held-out evaluation after `step` optimiser steps."""
    assert ctx.prep.held_out is not None
    metrics = evaluate(ctx, params, batch_size, data=ctx.prep.held_out.data)
    return {"step": step, "split": "eval", **{f"{EVAL_PREFIX}{k}": v for k, v in metrics.items()},
            f"{EVAL_PREFIX}beta": params.beta}
