"""The preference trainer's loop: peft LoRA / QLoRA, every registered loss, WPO, β annealing.

`train(spec)` is the whole job: validate (before any model is loaded), read and tokenize the
data, load the base model once (reference log-probs come from the same weights with the
adapter disabled, or are precomputed once and cached on disk), run AdamW with warm-up + decay,
gradient accumulation and clipping, log every step to `metrics.jsonl`, evaluate the held-out
split every `held_out.every` steps and at the end, save resumable checkpoints atomically, and
finally write the adapter, `train_meta.json` and the curves (files: `evalbench.train.layout`).

The work is split by concern, each module usable on its own:
    spec, spec_parts   the TrainSpec and its parts; recipes; checks before loading
    data, tokens       reading rows; chat template, masking, truncation
    batches      data preparation, held-out split, padding, the seeded order
    model        device, precision, tokenizer, base model + LoRA
    objectives   log-probs and one objective per loss batch type (`OBJECTIVES`)
    reference    precomputed reference log-probs and their disk cache
    evaluation   training-set and held-out evaluation
    checkpoints  adapter and step checkpoints; safe restore
    reporters    TensorBoard / wandb
The losses themselves are pure functions in `evalbench.train.losses`.

Reproducibility: with the same seed, spec, data and hardware, the loss trajectory is
identical (seeded LoRA/head initialisation, data order and dropout; tested). Held-out
evaluations draw no random numbers, so they do not change it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalbench.errors import EvalbenchError, InputError
from evalbench.io import append_jsonl, read_jsonl_tolerant, write_json_atomic, write_text_atomic
from evalbench.train.batches import Prepared, collate, logits_to_keep, micro_batches, order, prepare
from evalbench.train.checkpoints import (
    clear_dir,
    latest_checkpoint,
    load_trainer_state,
    now,
    restore_checkpoint,
    save_adapter,
    save_checkpoint,
)
from evalbench.train.evaluation import evaluate, held_out_row
from evalbench.train.layout import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CHECKPOINTS_DIR,
    CURVES_FILE,
    META_FILE,
    META_FORMAT,
    METRICS_FILE,
    OPTIM_FILE,
    STATE_FILE,
    STEP_KEYS,
)
from evalbench.train.model import (
    autocast,
    device_for,
    eval_mode,
    load_model,
    load_tokenizer,
    precision_for,
    trainable_params,
)
from evalbench.train.objectives import (
    OBJECTIVES,
    Context,
    StepOut,
    add_stats,
    finish_row,
    paired_objective,
    reward_objective,
    sequence_logps,
    token_logps,
    unpaired_objective,
)
from evalbench.train.reference import (
    compute_reference,
    load_or_compute_reference,
    ref_cache_dir,
    ref_cache_key,
)
from evalbench.train.reporters import REPORTERS
from evalbench.train.spec import TrainSpec

log = logging.getLogger(__name__)

# Re-exported: `evalbench.train.trainer` was one module; its public names still import from here.
__all__ = [
    "ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "CHECKPOINTS_DIR", "CURVES_FILE", "META_FILE", "META_FORMAT",
    "METRICS_FILE", "OBJECTIVES", "OPTIM_FILE", "REPORTERS", "STATE_FILE", "STEP_KEYS", "Context", "Prepared",
    "StepOut", "autocast", "collate", "compute_reference", "eval_mode", "evaluate", "latest_checkpoint",
    "load_model", "load_or_compute_reference", "load_tokenizer", "logits_to_keep", "micro_batches", "order",
    "paired_objective", "prepare", "ref_cache_dir", "ref_cache_key", "reward_objective", "save_adapter",
    "save_checkpoint", "sequence_logps", "token_logps", "train", "unpaired_objective",
]


@dataclass
class _Run:
    out: Path
    meta: dict[str, Any] = field(default_factory=dict)
    last_eval: dict[str, Any] | None = None  # the latest held-out metrics row

    def write_meta(self, **updates: Any) -> None:
        self.meta.update(updates)
        self.meta["updated_at"] = now()
        write_json_atomic(self.out / META_FILE, self.meta)


def _base_meta(prep: Prepared, device, precision: str) -> dict[str, Any]:
    from evalbench.provenance import git_state, hardware, model_identity, package_versions

    spec = prep.spec
    return {
        "format": META_FORMAT, "status": "running", "method": spec.method, "loss": spec.loss_name,
        "wpo": spec.wpo.model_dump(mode="json") | {"enabled": True} if spec.wpo_enabled else None,
        "seed": spec.seed, "spec": spec.model_dump(mode="json"), "spec_hash": spec.spec_hash(),
        "train_hash": spec.train_hash(),
        "base_model": {"name_or_path": prep.base, **model_identity(prep.base)},
        "data": {**prep.load_report.as_dict(), "truncation": prep.truncation.as_dict(), "kind": prep.kind,
                 "tokenized_sha256": prep.data_hash, "examples": len(prep.examples)},
        "steps": {"total": prep.total, "warmup": prep.warmup, "done": 0,
                  "micro_batches_per_epoch": math.ceil(len(prep.examples) / spec.optim.batch_size),
                  "effective_batch": spec.optim.batch_size * spec.optim.grad_accum},
        "device": str(device), "precision": precision, "quantization": spec.quantization,
        "versions": package_versions(), "git": git_state(), "hardware": hardware(),
        "started_at": now(),
    }


def train(spec: TrainSpec) -> Path:
    """Train one adapter as `spec` says and return the output directory.

    `spec.threads` sets torch's CPU thread count for this call only (restored afterwards).

    Everything checkable without the model (method, option combinations, data rows, output
    directory) is checked before the model is loaded. On an exception the directory keeps
    metrics.jsonl, the last checkpoint and a train_meta.json whose status says what happened.

    Raises:
        InputError / MissingExtra: bad spec, data or environment (nothing is written), or a
            checkpoint whose trainer state is unsafe or unreadable (resume).
        EvalbenchError: a checkpoint that does not fit (resume).
    """
    import torch

    threads = torch.get_num_threads()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    try:
        return _train(spec)
    finally:
        torch.set_num_threads(threads)


def _resume_point(spec: TrainSpec, out: Path) -> tuple[Path | None, dict[str, Any], bool]:
    """(checkpoint to resume from, the previous train_meta.json, start afresh?) for `spec`."""
    resume_from = None
    previous: dict[str, Any] = {}
    fresh = spec.overwrite
    if spec.resume:
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads((out / META_FILE).read_text())
        if previous and previous.get("train_hash") != spec.train_hash():
            raise InputError("--resume: this directory holds a run with different settings (train hash "
                             "differs); use --overwrite to start again", path=out, field="--resume")
        if previous.get("status") == "success" and (out / ADAPTER_CONFIG).exists():
            return None, previous, False
        resume_from = latest_checkpoint(out)
        if resume_from is None:
            if out.is_dir() and any(out.iterdir()) and not previous:
                raise InputError("--resume: the directory holds no evalbench training run (no train_meta.json)",
                                 path=out, field="--resume")
            if previous:
                log.warning("--resume: no checkpoint in %s (save_steps was not set); training from the start", out)
            fresh = True
    return resume_from, previous, fresh


def _train(spec: TrainSpec) -> Path:
    import torch

    t_start = time.perf_counter()
    prep = prepare(spec)
    out = Path(spec.out).expanduser()
    device = device_for(spec)
    precision = precision_for(spec, device)
    reporters_cls = [REPORTERS.get(name) for name in spec.report_to]

    resume_from, previous, fresh = _resume_point(spec, out)
    if spec.resume and resume_from is None and not fresh:
        log.info("%s already holds a finished run with these settings; nothing to do", out)
        return out
    # read (and vet) the trainer state before the model loads: an unsafe file fails in a second
    saved_state = load_trainer_state(resume_from / OPTIM_FILE) if resume_from is not None else None
    if fresh:
        clear_dir(out)
    out.mkdir(parents=True, exist_ok=True)

    # Seeded before the model exists: LoRA A matrices and a reward head are initialised from it.
    torch.manual_seed(spec.seed)
    random.seed(spec.seed)
    t_load = time.perf_counter()
    model = load_model(spec, prep.base, prep.tokenizer, device, precision)
    load_s = time.perf_counter() - t_load
    loss_params = spec.loss.params()
    ctx = Context(prep=prep, model=model, device=device, precision=precision,
                  needs_ref=prep.loss_info.requires_ref(loss_params), wpo=spec.wpo_enabled)
    run = _Run(out, _base_meta(prep, device, precision))
    trainable = trainable_params(model)
    run.meta["trainable_params"] = sum(p.numel() for p in trainable)
    run.meta["total_params"] = sum(p.numel() for p in model.parameters())
    run.meta["model_load_s"] = round(load_s, 3)
    run.meta["reference"] = {"mode": "inline" if ctx.needs_ref else "none"}
    if spec.precompute_ref and not ctx.needs_ref:
        run.meta["reference"]["note"] = "precompute_ref ignored: this method uses no reference model"
    if prep.held_out is not None:
        run.meta["held_out"] = dict(prep.held_out.info, every=spec.held_out.every)
    if resume_from is None:
        (out / METRICS_FILE).unlink(missing_ok=True)
    run.write_meta()
    reporters: list[Any] = []
    eval_bs = spec.eval_batch
    first_beta = loss_params.replace(beta=spec.loss.step_beta(0, prep.total))
    try:
        if ctx.needs_ref and spec.precompute_ref:
            ctx.ref, info = load_or_compute_reference(ctx, eval_bs)
            run.write_meta(reference=info)
        if spec.eval_examples and resume_from is None:
            run.meta["eval"] = {"examples": min(spec.eval_examples, len(prep.examples)),
                                "before": evaluate(ctx, first_beta, eval_bs, spec.eval_examples)}
        optimizer = torch.optim.AdamW(trainable, lr=spec.optim.lr, betas=spec.optim.adam_betas,
                                      eps=spec.optim.adam_eps, weight_decay=spec.optim.weight_decay)
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        start = 0
        if resume_from is not None:
            start = restore_checkpoint(model, resume_from, optimizer, scaler, spec.train_hash(), saved_state)
            kept = [r for r in read_jsonl_tolerant(out / METRICS_FILE) if r.get("step", 0) <= start]
            write_text_atomic(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
            run.meta["resumed_from"] = {"checkpoint": str(resume_from), "step": start}
            # keep what the interrupted run measured
            run.meta["first_started_at"] = previous.get("first_started_at") or previous.get("started_at")
            if "before" in (previous.get("eval") or {}):
                run.meta["eval"] = {k: v for k, v in previous["eval"].items() if k != "after"}
            if "before" in (previous.get("held_out") or {}):
                run.meta["held_out"]["before"] = previous["held_out"]["before"]
            log.info("resuming from %s (step %d of %d)", resume_from, start, prep.total)
        reporters = [cls(spec, out) for cls in reporters_cls]
        if resume_from is None:
            if prep.held_out is not None:
                row = held_out_row(ctx, first_beta, eval_bs, 0)
                _log_row(out, reporters, row)
                run.meta["held_out"]["before"] = _unprefixed(row)
            torch.manual_seed(spec.seed)  # dropout stream independent of how the model was built
        train_s = _loop(ctx, optimizer, scaler, start, run, reporters, loss_params)
        # the β of the last step: with annealing the model was last trained (and is judged) at beta_end
        last_beta = loss_params.replace(beta=spec.loss.step_beta(prep.total - 1, prep.total))
        if spec.eval_examples:
            run.meta.setdefault("eval", {})["after"] = evaluate(ctx, last_beta, eval_bs, spec.eval_examples)
        if prep.held_out is not None:
            row = run.last_eval
            if row is None or row["step"] != prep.total:
                row = held_out_row(ctx, last_beta, eval_bs, prep.total)
                _log_row(out, reporters, row)
            run.meta["held_out"]["after"] = _unprefixed(row)
        save_adapter(model, out)
        curves = None
        if spec.plots:
            curves = _plot(out)
        from evalbench.provenance import content_hash

        run.write_meta(status="success", finished_at=now(), wall_time_s=round(time.perf_counter() - t_start, 3),
                       train_time_s=round(train_s, 3), curves=curves,
                       adapter_sha256=content_hash(out / ADAPTER_WEIGHTS))
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        with contextlib.suppress(Exception):
            run.write_meta(status=status, error=f"{type(exc).__name__}: {str(exc)[:500]}", finished_at=now(),
                           wall_time_s=round(time.perf_counter() - t_start, 3))
        raise
    finally:
        for rep in reporters:
            with contextlib.suppress(Exception):
                rep.close()
    log.info("trained %s (%s, seed %d) in %.1fs -> %s", spec.method, spec.loss_name, spec.seed,
             time.perf_counter() - t_start, out)
    return out


def _unprefixed(row: dict[str, Any]) -> dict[str, Any]:
    """A held-out metrics row as train_meta.json keeps it: the metric names without `eval/`."""
    from evalbench.train.layout import EVAL_PREFIX

    return {k[len(EVAL_PREFIX):]: v for k, v in row.items() if k.startswith(EVAL_PREFIX)}


def _log_row(out: Path, reporters: list, row: dict[str, Any]) -> None:
    append_jsonl(out / METRICS_FILE, [row])
    for rep in reporters:
        rep.log(row["step"], {k: v for k, v in row.items() if k != "split"})


def _loop(ctx: Context, optimizer, scaler, start: int, run: _Run, reporters: list, loss_params) -> float:
    """Optimiser steps `start`..total; appends metrics.jsonl; returns the wall seconds spent (the
    process CPU seconds go to `run.meta["train_cpu_s"]`)."""
    import torch

    from evalbench.progress import track
    from evalbench.train.schedules import lr_at

    spec, prep, model = ctx.spec, ctx.prep, ctx.model
    objective = OBJECTIVES.get(prep.loss_info.batch.__name__)
    accum = spec.optim.grad_accum
    batches = micro_batches(len(prep.examples), spec.optim.batch_size, spec.seed, start * accum)
    trainable = trainable_params(model)
    clip = spec.optim.max_grad_norm or float("inf")
    every = spec.held_out.every if prep.held_out is not None else None
    model.train()
    t0, cpu0 = time.perf_counter(), time.process_time()
    with track(f"train {spec.method} seed {spec.seed}", total=prep.total) as bar:
        bar.advance(start)
        for step in range(start, prep.total):
            t_step = time.perf_counter()
            beta = spec.loss.step_beta(step, prep.total)
            params = loss_params.replace(beta=beta)
            lr = lr_at(step, prep.total, prep.warmup, spec.optim.lr, spec.optim.lr_schedule, spec.optim.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            totals: dict[str, list[float]] = {}
            tokens = 0
            epoch = 0.0
            for _ in range(accum):
                epoch, index = next(batches)
                batch = collate(prep.train_set, index, prep.tokenizer.pad_token_id, ctx.device)
                result = objective(ctx, batch, params)
                loss = result.loss / accum
                if not torch.isfinite(result.loss):
                    raise EvalbenchError(f"loss is {result.loss.item()} at step {step + 1}; lower the learning "
                                         "rate or check the data (metrics so far are in metrics.jsonl)")
                (scaler.scale(loss) if scaler else loss).backward()
                add_stats(totals, result.stats)
                tokens += result.tokens
            if scaler:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, clip)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t_step
            row = {"step": step + 1, "epoch": round(epoch, 4),
                   **finish_row({k: (s, int(c)) for k, (s, c) in totals.items()}),
                   "beta": beta, "lr": lr, "grad_norm": float(grad_norm), "tokens_per_s": round(tokens / dt, 1),
                   "step_time_s": round(dt, 4), "elapsed_s": round(time.perf_counter() - t0, 3)}
            _log_row(run.out, reporters, row)
            run.meta["steps"]["done"] = step + 1
            run.meta["last"] = row
            bar.advance()
            if every and (step + 1) % every == 0:
                # the β this step trained with: an annealed run is judged by the objective it is at
                eval_row = held_out_row(ctx, params, spec.eval_batch, step + 1)
                _log_row(run.out, reporters, eval_row)
                run.last_eval = eval_row
            if spec.save_steps and (step + 1) % spec.save_steps == 0 and step + 1 < prep.total:
                save_checkpoint(model, run.out, step + 1, optimizer, scaler, spec.train_hash())
                run.write_meta()
    run.meta["train_cpu_s"] = round(time.process_time() - cpu0, 3)
    return time.perf_counter() - t0


def _plot(out: Path) -> str | None:
    try:
        from evalbench.train.plots import training_curves

        rows = read_jsonl_tolerant(out / METRICS_FILE)
        return str(training_curves(rows, out / CURVES_FILE).name) if rows else None
    except ImportError as exc:  # matplotlib is optional for training itself
        log.warning("no training curves: %s", exc)
        return None
