"""The preference trainer: peft LoRA / QLoRA, every registered loss, WPO, β annealing, one loop.

`train(spec)` is the whole job: validate (before any model is loaded), read and tokenize the
data, load the base model once (reference log-probs come from the same weights with the
adapter disabled, or are precomputed once and cached on disk), run AdamW with warm-up + decay,
gradient accumulation and clipping, log every step to `metrics.jsonl`, save resumable
checkpoints atomically, and finally write the adapter, `train_meta.json` and the curves.

Output directory (`spec.out`), loadable by vLLM with `--lora-modules name=<out>`:
    adapter_config.json, adapter_model.safetensors   the peft adapter (written last, atomically)
    train_meta.json     method, hyper-parameters, data hash, base identity, seed, versions, times
    metrics.jsonl       one row per optimiser step (see `STEP_KEYS`)
    training_curves.png loss and implicit rewards over steps
    checkpoints/step-NNNNNN/  adapter + optimiser state (`save_steps`); `resume` continues there

The losses themselves live in `evalbench.train.losses` (pure functions); this module only
computes log-probs, builds the batches they take and reduces them. The per-kind work (paired
policy log-probs, KTO's unpaired batches, the reward model's scalar head) is in the
`OBJECTIVES` registry, keyed by the loss's batch type.

Reproducibility: with the same seed, spec, data and hardware, the loss trajectory is
identical (seeded LoRA/head initialisation, data order and dropout; tested).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from evalbench.errors import EvalbenchError, InputError
from evalbench.io import append_jsonl, read_jsonl_tolerant, stable_hash, write_json_atomic, write_text_atomic
from evalbench.registry import Registry
from evalbench.train.spec import TrainSpec, check, resolve_base, total_steps, warmup_steps

log = logging.getLogger(__name__)

META_FILE = "train_meta.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "training_curves.png"
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
OPTIM_FILE = "trainer_state.pt"
ADAPTER_CONFIG = "adapter_config.json"
META_FORMAT = 1

# Keys of a metrics.jsonl row (KTO adds `kl`; WPO adds `wpo/weight_mean`; a value may be null
# when a batch has nothing to average, e.g. no undesirable example in a KTO batch).
STEP_KEYS = ("step", "epoch", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
             "rewards/accuracies", "logps/chosen", "logps/rejected", "beta", "lr", "grad_norm",
             "tokens_per_s", "step_time_s", "elapsed_s")


# --------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    """Everything known before the model is loaded."""

    spec: TrainSpec
    loss_info: Any
    base: str
    tokenizer: Any
    kind: str  # "paired" | "unpaired"
    examples: list
    load_report: Any
    truncation: Any
    data_hash: str
    kl_partners: list[int] | None = None
    total: int = 0
    warmup: int = 0


def _check_out(spec: TrainSpec) -> Path:
    out = Path(spec.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a directory", path=out, field="--out")
    if out.is_dir() and any(out.iterdir()) and not (spec.overwrite or spec.resume):
        raise InputError("output directory exists and is not empty; pass --overwrite to replace it or "
                         "--resume to continue its last checkpoint", path=out, field="--out")
    return out


def load_tokenizer(base: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(base)
    except OSError as exc:
        raise InputError(f"cannot load the tokenizer: {exc}".splitlines()[0][:300], path=base,
                         field="base") from None
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise InputError("the tokenizer has neither a pad nor an eos token", path=base, field="base")
        tok.pad_token = tok.eos_token  # padding is masked out everywhere, so any id works
    return tok


def prepare(spec: TrainSpec) -> Prepared:
    """Validate the spec, the output directory and the data; nothing is loaded but the tokenizer.

    Raises:
        InputError / MissingExtra: anything wrong with the spec, options, data or output dir.
    """
    loss_info = check(spec)
    _check_out(spec)
    base = resolve_base(spec.base)
    from evalbench.train import data as D

    tokenizer = load_tokenizer(base)
    raw, report = D.load_examples(spec.data, paired=loss_info.paired)
    if loss_info.paired:
        examples, trunc = D.tokenize_pairs(raw, tokenizer, spec.data)
        kind, partners = "paired", None
    else:
        examples, trunc = D.tokenize_unpaired(raw, tokenizer, spec.data)
        kind = "unpaired"
        partners = D.kl_partners(examples) if spec.kto_kl else None
        if spec.kto_kl and partners is None:
            log.warning("every KTO example has the same prompt: no mismatched pairs, so z = 0")
        labels = {e.label for e in examples}
        if len(labels) < 2:
            log.warning("KTO data holds only %s examples", "desirable" if True in labels else "undesirable")
    prep = Prepared(spec=spec, loss_info=loss_info, base=base, tokenizer=tokenizer, kind=kind,
                    examples=examples, load_report=report, truncation=trunc,
                    data_hash=D.tokenized_hash(examples), kl_partners=partners)
    prep.total = total_steps(spec, len(examples))
    prep.warmup = warmup_steps(spec, prep.total)
    return prep


# --------------------------------------------------------------------------- model


def _device(spec: TrainSpec):
    import torch

    if spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _precision(spec: TrainSpec, device) -> str:
    if spec.precision != "auto":
        return spec.precision
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"  # CPU autocast to bf16 is slower than fp32 on most CPUs


def autocast(device, precision: str):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def load_model(spec: TrainSpec, base: str, tokenizer, device, precision: str):
    """Base model (4-bit NF4 for QLoRA) + a fresh LoRA adapter; for `rm` a scalar value head too.

    Trainable: the LoRA matrices (and the `score` head of a reward model, saved through peft's
    `modules_to_save`). Everything else is frozen.
    """
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    reward = spec.info.model == "reward_model"
    # Frozen base weights in the compute precision (half the memory under bf16/fp16); the
    # trainable LoRA / head parameters are kept in float32 below (mixed-precision training).
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if precision == "bf16" else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": "cpu" if device.type == "cpu" else (device.index or 0)}
    cls = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    if reward:
        kwargs["num_labels"] = 1
    try:
        model = cls.from_pretrained(base, **kwargs)
    except OSError as exc:
        raise InputError(f"cannot load the base model: {str(exc).splitlines()[0][:300]}", path=base,
                         field="base") from None
    model.config.use_cache = False
    if reward:
        model.config.pad_token_id = tokenizer.pad_token_id
    gc_kwargs = {"use_reentrant": False}
    if spec.quantization == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    elif spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
        model.enable_input_require_grads()
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in spec.lora.target_modules if m not in present]
    if missing:
        raise InputError(f"LoRA target modules {missing} are not in the model (linear layers include: "
                         f"{', '.join(sorted(n for n in present if n.endswith('proj'))[:12])})",
                         field="lora.target_modules")
    config = LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                        target_modules=list(spec.lora.target_modules), bias=spec.lora.bias,
                        task_type="SEQ_CLS" if reward else "CAUSAL_LM",
                        modules_to_save=["score"] if reward else None)
    model = get_peft_model(model, config)
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # AdamW state and updates in fp32
    if spec.quantization != "nf4":
        model.to(device)
    return model


def _trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def _bnb_4bit_modules(model) -> list:
    import sys

    bnb = sys.modules.get("bitsandbytes")  # not imported: no 4-bit layer can exist
    if bnb is None:
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode (no dropout) for a no-grad pass, except bitsandbytes 4-bit layers.

    bitsandbytes 0.50 on a CPU with AVX512-BF16 repacks a `Linear4bit` weight for its inference
    kernel on the first forward in eval mode without grad, and never packs it back: later
    training forwards then run `gemv_4bit`, which has no autograd, and every gradient upstream
    of a 4-bit layer is silently zero (seen here: LoRA B stayed exactly 0). Those layers hold no
    dropout, so keeping them in training mode changes nothing else.
    """
    was = model.training
    model.eval()
    for module in _bnb_4bit_modules(model):
        module.train()
    try:
        yield
    finally:
        model.train(was)


# --------------------------------------------------------------------------- batches


def logits_to_keep(masks: Sequence[Sequence[int]], width: int) -> int:
    """How many trailing positions need logits: from the one predicting the earliest completion token.

    Prompt positions before that predict nothing that is scored; skipping their LM-head output
    saves time and (for large vocabularies) most of the logits memory, as TRL's `use_logits_to_keep`.
    """
    first = min((list(m).index(1) for m in masks if 1 in m), default=1)
    return width - max(first - 1, 0)


def _pad(seqs: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int, device):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    lmask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        att[i, :len(s)] = 1
        lmask[i, :len(m)] = torch.tensor(m, dtype=torch.long)
    return ids.to(device), att.to(device), lmask.to(device)


def _join(prompt: Sequence[int], completion: Sequence[int]) -> tuple[list[int], list[int]]:
    return list(prompt) + list(completion), [0] * len(prompt) + [1] * len(completion)


def collate(prep: Prepared, index: Sequence[int], device) -> dict[str, Any]:
    """Padded tensors for the examples `index` (right padding; loss_mask = completion tokens).

    Paired: rows [chosen_0..chosen_B-1, rejected_0..rejected_B-1] in one forward (TRL's
    concatenated forward). Unpaired: the examples, plus the KL batch (prompt_i with the
    completion of its fixed mismatched partner) when KTO's z is on.
    """
    import torch

    pad = prep.tokenizer.pad_token_id
    ex = [prep.examples[i] for i in index]
    batch: dict[str, Any] = {"index": torch.tensor(list(index), dtype=torch.long), "n": len(ex)}
    if prep.kind == "paired":
        rows = [_join(e.prompt, e.chosen) for e in ex] + [_join(e.prompt, e.rejected) for e in ex]
    else:
        rows = [_join(e.prompt, e.completion) for e in ex]
        batch["labels"] = torch.tensor([e.label for e in ex], dtype=torch.bool, device=device)
        if prep.kl_partners is not None:
            kl = [_join(e.prompt, prep.examples[prep.kl_partners[i]].completion) for e, i in zip(ex, index)]
            padded = _pad([r[0] for r in kl], [r[1] for r in kl], pad, device)
            batch["kl"] = (*padded, logits_to_keep([r[1] for r in kl], padded[0].shape[1]))
    batch["input_ids"], batch["attention_mask"], batch["loss_mask"] = _pad(
        [r[0] for r in rows], [r[1] for r in rows], pad, device)
    batch["keep"] = logits_to_keep([r[1] for r in rows], batch["input_ids"].shape[1])
    return batch


def order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a seeded shuffle, identical in every process."""
    idx = list(range(n))
    random.Random(stable_hash("train-order", seed, epoch)).shuffle(idx)
    return idx


def micro_batches(n: int, batch_size: int, seed: int, start: int = 0) -> Iterator[tuple[float, list[int]]]:
    """Endless (epoch progress, example indices) micro-batches; `start` skips that many (resume)."""
    per_epoch = math.ceil(n / batch_size)
    k = start
    while True:
        epoch, j = divmod(k, per_epoch)
        idx = order(n, seed, epoch)
        yield (k + 1) / per_epoch, idx[j * batch_size:(j + 1) * batch_size]
        k += 1


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


def _forward_logits(model, ids, att, keep: int | None = None):
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
    tok, mask, _ = token_logps(_forward_logits(model, ids, att, keep), ids, lmask)
    return tok.sum(-1), mask.sum(-1)


# --------------------------------------------------------------------------- objectives


class StepOut(NamedTuple):
    """A micro-batch's mean loss and its metric sums: key -> (sum, count)."""

    loss: Any
    stats: dict[str, tuple[float, int]]
    tokens: int


@dataclass
class Context:
    """What every objective needs; `ref` holds precomputed reference log-probs (or None)."""

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
        logits = _forward_logits(ctx.model, batch["input_ids"], batch["attention_mask"], batch["keep"])
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
        logits = _forward_logits(ctx.model, batch["input_ids"], batch["attention_mask"], batch["keep"])
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
    return StepOut(per_example.mean(), stats, int(batch["attention_mask"].sum()))


# loss batch type name -> objective
OBJECTIVES: Registry[Callable[[Context, dict, Any], StepOut]] = Registry("training objective")
OBJECTIVES.add("PairLogps", paired_objective)
OBJECTIVES.add("UnpairedLogps", unpaired_objective)
OBJECTIVES.add("RewardPair", reward_objective)


def _finish_row(stats: dict[str, tuple[float, int]]) -> dict[str, float | None]:
    row: dict[str, float | None] = {k: (s / c if c else None) for k, (s, c) in stats.items()}
    if "rewards/margins" not in row and row.get("rewards/chosen") is not None and row.get("rewards/rejected") is not None:
        row["rewards/margins"] = row["rewards/chosen"] - row["rewards/rejected"]  # KTO: group means
    return row


def _add(total: dict[str, list[float]], stats: dict[str, tuple[float, int]]) -> None:
    for k, (s, c) in stats.items():
        acc = total.setdefault(k, [0.0, 0])
        acc[0] += s
        acc[1] += c


# --------------------------------------------------------------------------- reference log-probs


def ref_cache_dir(spec: TrainSpec) -> Path:
    if spec.ref_cache_dir:
        return Path(spec.ref_cache_dir).expanduser()
    from evalbench.paths import evalbench_home

    return evalbench_home() / "ref_logps"


def ref_cache_key(prep: Prepared, precision: str) -> str:
    """Base-model identity + tokenized data (+ KL pairing, quantization, precision)."""
    from evalbench.io import canonical_json, sha256_text
    from evalbench.provenance import model_identity

    return sha256_text(canonical_json({
        "base": model_identity(prep.base), "data": prep.data_hash, "kind": prep.kind,
        "kl_partners": prep.kl_partners, "quantization": prep.spec.quantization, "precision": precision,
        "format": 1}))


def compute_reference(ctx: Context, batch_size: int) -> dict[str, Any]:
    """Reference log-prob sums for every example, adapter disabled, in dataset order."""
    import torch

    from evalbench.progress import track

    prep, model = ctx.prep, ctx.model
    n = len(prep.examples)
    out: dict[str, list] = {}
    with track("reference log-probs", total=n) as bar, torch.no_grad(), model.disable_adapter(), \
            eval_mode(model), autocast(ctx.device, ctx.precision):
        for start in range(0, n, batch_size):
            idx = list(range(start, min(n, start + batch_size)))
            batch = collate(prep, idx, ctx.device)
            sums, _ = sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["loss_mask"],
                                     batch["keep"])
            if prep.kind == "paired":
                out.setdefault("chosen", []).append(sums[:len(idx)].float().cpu())
                out.setdefault("rejected", []).append(sums[len(idx):].float().cpu())
            else:
                out.setdefault("logps", []).append(sums.float().cpu())
                if "kl" in batch:
                    kl, _ = sequence_logps(model, *batch["kl"])
                    out.setdefault("kl", []).append(kl.float().cpu())
            bar.advance(len(idx))
    return {k: torch.cat(v) for k, v in out.items()}


def load_or_compute_reference(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]]:
    """Precomputed reference log-probs, from the disk cache when the key matches."""
    import torch

    key = ref_cache_key(ctx.prep, ctx.precision)
    path = ref_cache_dir(ctx.spec) / f"{key}.pt"
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("key") == key and all(len(v) == len(ctx.prep.examples) for v in saved["ref"].values()):
                log.info("reference log-probs from cache %s", path)
                return saved["ref"], {"mode": "precomputed", "cache": str(path), "cache_hit": True}
        except Exception as exc:  # a torn or foreign file: recompute and replace it
            log.warning("ignoring unreadable reference cache %s (%s)", path, exc)
    t0 = time.perf_counter()
    ref = compute_reference(ctx, 2 * ctx.spec.optim.batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"key": key, "ref": ref}, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return ref, {"mode": "precomputed", "cache": str(path), "cache_hit": False,
                 "seconds": round(time.perf_counter() - t0, 3)}


# --------------------------------------------------------------------------- evaluation


def evaluate(ctx: Context, params, batch_size: int, limit: int | None = None) -> dict[str, float | None]:
    """Mean loss and implicit-reward metrics over the first `limit` training examples (all when
    None), in eval mode and without WPO weighting."""
    import torch

    total: dict[str, list[float]] = {}
    wpo, ctx.wpo = ctx.wpo, False
    try:
        with torch.no_grad(), eval_mode(ctx.model):
            objective = OBJECTIVES.get(ctx.prep.loss_info.batch.__name__)
            n = len(ctx.prep.examples) if limit is None else min(limit, len(ctx.prep.examples))
            for start in range(0, n, batch_size):
                batch = collate(ctx.prep, list(range(start, min(n, start + batch_size))), ctx.device)
                _add(total, objective(ctx, batch, params).stats)
    finally:
        ctx.wpo = wpo
    return _finish_row({k: (s, int(c)) for k, (s, c) in total.items()})


# --------------------------------------------------------------------------- saving


def save_adapter(model, out: Path) -> None:
    """Write the peft adapter into `out`: each file replaced atomically, adapter_config.json last.

    The config is what makes a directory an adapter for peft and vLLM, so a reader never sees
    a config next to missing or stale weights.
    """
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=out))
    try:
        model.save_pretrained(tmp)
        names = sorted((p.name for p in tmp.iterdir()), key=lambda name: name == ADAPTER_CONFIG)
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_checkpoint(ctx: Context, out: Path, step: int, optimizer, scaler, train_hash: str) -> Path:
    """`checkpoints/step-NNNNNN/`: adapter + optimiser + RNG state, renamed into place whole."""
    import torch

    root = out / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:06d}-", dir=root))
    try:
        ctx.model.save_pretrained(tmp)
        torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                    "rng": _rng_state()}, tmp / OPTIM_FILE)
        write_json_atomic(tmp / STATE_FILE, {"step": step, "train_hash": train_hash,
                                             "saved_at": _now()})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("checkpoint saved: %s", final)
    return final


def latest_checkpoint(out: Path) -> Path | None:
    root = out / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE_FILE).exists())
    return done[-1] if done else None


def _restore(ctx: Context, ckpt: Path, optimizer, scaler, train_hash: str) -> int:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((ckpt / STATE_FILE).read_text())
    if state.get("train_hash") != train_hash:
        raise InputError("--resume: the checkpoint was written by a run with different settings "
                         "(train hash differs); use --overwrite to start again", path=ckpt)
    weights = load_file(str(ckpt / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(ctx.model, weights)
    if getattr(result, "unexpected_keys", None):
        raise EvalbenchError(f"checkpoint {ckpt} does not fit this model: unexpected {result.unexpected_keys[:3]}")
    saved = torch.load(ckpt / OPTIM_FILE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    if scaler is not None and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    rng = saved["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _clear(out: Path) -> None:
    """Remove a previous run's directory (--overwrite): moved aside first, then deleted."""
    if not out.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, trash / out.name)
    shutil.rmtree(trash, ignore_errors=True)


# --------------------------------------------------------------------------- reporters


class _TensorBoard:
    def __init__(self, spec: TrainSpec, out: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tensorboard"))

    def log(self, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "step":
                self.writer.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, spec: TrainSpec, out: Path):
        import wandb

        self.run = wandb.init(project=spec.wandb_project, name=out.name, dir=str(out),
                              config=spec.model_dump(mode="json"))

    def log(self, step: int, row: dict[str, Any]) -> None:
        self.run.log({f"train/{k}": v for k, v in row.items() if v is not None and k != "step"}, step=step)

    def close(self) -> None:
        self.run.finish()


REPORTERS: Registry[type] = Registry("reporter")
REPORTERS.add("tensorboard", _TensorBoard)
REPORTERS.add("wandb", _WandB)


# --------------------------------------------------------------------------- the loop


@dataclass
class _Run:
    out: Path
    meta: dict[str, Any] = field(default_factory=dict)

    def write_meta(self, **updates: Any) -> None:
        self.meta.update(updates)
        self.meta["updated_at"] = _now()
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
        "started_at": _now(),
    }


def train(spec: TrainSpec) -> Path:
    """Train one adapter as `spec` says and return the output directory.

    `spec.threads` sets torch's CPU thread count for this call only (restored afterwards).

    Everything checkable without the model (method, option combinations, data rows, output
    directory) is checked before the model is loaded. On an exception the directory keeps
    metrics.jsonl, the last checkpoint and a train_meta.json whose status says what happened.

    Raises:
        InputError / MissingExtra: bad spec, data or environment (nothing is written).
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


def _train(spec: TrainSpec) -> Path:
    import torch

    t_start = time.perf_counter()
    prep = prepare(spec)
    out = Path(spec.out).expanduser()
    device = _device(spec)
    precision = _precision(spec, device)
    reporters_cls = [REPORTERS.get(name) for name in spec.report_to]

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
            log.info("%s already holds a finished run with these settings; nothing to do", out)
            return out
        resume_from = latest_checkpoint(out)
        if resume_from is None:
            if out.is_dir() and any(out.iterdir()) and not previous:
                raise InputError("--resume: the directory holds no evalbench training run (no train_meta.json)",
                                 path=out, field="--resume")
            if previous:
                log.warning("--resume: no checkpoint in %s (save_steps was not set); training from the start", out)
            fresh = True
    if fresh:
        _clear(out)
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
    trainable = _trainable(model)
    run.meta["trainable_params"] = sum(p.numel() for p in trainable)
    run.meta["total_params"] = sum(p.numel() for p in model.parameters())
    run.meta["model_load_s"] = round(load_s, 3)
    run.meta["reference"] = {"mode": "inline" if ctx.needs_ref else "none"}
    if resume_from is None:
        (out / METRICS_FILE).unlink(missing_ok=True)
    run.write_meta()
    reporters: list[Any] = []
    try:
        if ctx.needs_ref and spec.precompute_ref:
            ctx.ref, info = load_or_compute_reference(ctx)
            run.write_meta(reference=info)
        eval_bs = 2 * spec.optim.batch_size
        if spec.eval_examples and resume_from is None:
            run.meta["eval"] = {"examples": min(spec.eval_examples, len(prep.examples)),
                                "before": evaluate(ctx, loss_params, eval_bs, spec.eval_examples)}
        optimizer = torch.optim.AdamW(trainable, lr=spec.optim.lr, betas=spec.optim.adam_betas,
                                      eps=spec.optim.adam_eps, weight_decay=spec.optim.weight_decay)
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        start = 0
        if resume_from is not None:
            start = _restore(ctx, resume_from, optimizer, scaler, spec.train_hash())
            kept = [r for r in read_jsonl_tolerant(out / METRICS_FILE) if r.get("step", 0) <= start]
            write_text_atomic(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
            run.meta["resumed_from"] = {"checkpoint": str(resume_from), "step": start}
            # keep what the interrupted run measured
            run.meta["first_started_at"] = previous.get("first_started_at") or previous.get("started_at")
            if "before" in (previous.get("eval") or {}):
                run.meta["eval"] = {k: v for k, v in previous["eval"].items() if k != "after"}
            log.info("resuming from %s (step %d of %d)", resume_from, start, prep.total)
        else:
            torch.manual_seed(spec.seed)  # dropout stream independent of how the model was built
        reporters = [cls(spec, out) for cls in reporters_cls]
        train_s = _loop(ctx, optimizer, scaler, start, run, reporters, loss_params)
        if spec.eval_examples:
            run.meta.setdefault("eval", {})["after"] = evaluate(ctx, loss_params, eval_bs, spec.eval_examples)
        save_adapter(model, out)
        curves = None
        if spec.plots:
            curves = _plot(out)
        from evalbench.provenance import content_hash

        run.write_meta(status="success", finished_at=_now(), wall_time_s=round(time.perf_counter() - t_start, 3),
                       train_time_s=round(train_s, 3), curves=curves,
                       adapter_sha256=content_hash(out / "adapter_model.safetensors"))
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
        with contextlib.suppress(Exception):
            run.write_meta(status=status, error=f"{type(exc).__name__}: {str(exc)[:500]}", finished_at=_now(),
                           wall_time_s=round(time.perf_counter() - t_start, 3))
        raise
    finally:
        for rep in reporters:
            with contextlib.suppress(Exception):
                rep.close()
    log.info("trained %s (%s, seed %d) in %.1fs -> %s", spec.method, spec.loss_name, spec.seed,
             time.perf_counter() - t_start, out)
    return out


def _loop(ctx: Context, optimizer, scaler, start: int, run: _Run, reporters: list, loss_params) -> float:
    """Optimiser steps `start`..total; appends metrics.jsonl; returns the wall seconds spent (the
    process CPU seconds go to `run.meta["train_cpu_s"]`)."""
    import torch

    from evalbench.progress import track
    from evalbench.train.schedules import beta_at, lr_at

    spec, prep, model = ctx.spec, ctx.prep, ctx.model
    objective = OBJECTIVES.get(prep.loss_info.batch.__name__)
    accum = spec.optim.grad_accum
    batches = micro_batches(len(prep.examples), spec.optim.batch_size, spec.seed, start * accum)
    trainable = _trainable(model)
    clip = spec.optim.max_grad_norm or float("inf")
    metrics_path = run.out / METRICS_FILE
    model.train()
    t0, cpu0 = time.perf_counter(), time.process_time()
    with track(f"train {spec.method} seed {spec.seed}", total=prep.total) as bar:
        bar.advance(start)
        for step in range(start, prep.total):
            t_step = time.perf_counter()
            beta = beta_at(step, prep.total, spec.loss.beta, spec.loss.beta_end, spec.loss.beta_schedule)
            params = loss_params.replace(beta=beta)
            lr = lr_at(step, prep.total, prep.warmup, spec.optim.lr, spec.optim.lr_schedule, spec.optim.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            totals: dict[str, list[float]] = {}
            tokens = 0
            epoch = 0.0
            for _ in range(accum):
                epoch, index = next(batches)
                batch = collate(prep, index, ctx.device)
                result = objective(ctx, batch, params)
                loss = result.loss / accum
                if not torch.isfinite(result.loss):
                    raise EvalbenchError(f"loss is {result.loss.item()} at step {step + 1}; lower the learning "
                                         "rate or check the data (metrics so far are in metrics.jsonl)")
                (scaler.scale(loss) if scaler else loss).backward()
                _add(totals, result.stats)
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
                   **_finish_row({k: (s, int(c)) for k, (s, c) in totals.items()}),
                   "beta": beta, "lr": lr, "grad_norm": float(grad_norm), "tokens_per_s": round(tokens / dt, 1),
                   "step_time_s": round(dt, 4), "elapsed_s": round(time.perf_counter() - t0, 3)}
            append_jsonl(metrics_path, [row])
            for rep in reporters:
                rep.log(step + 1, row)
            run.meta["steps"]["done"] = step + 1
            run.meta["last"] = row
            bar.advance()
            if spec.save_steps and (step + 1) % spec.save_steps == 0 and step + 1 < prep.total:
                save_checkpoint(ctx, run.out, step + 1, optimizer, scaler, spec.train_hash())
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
