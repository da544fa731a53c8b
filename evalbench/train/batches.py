"""Batching: the prepared data of a run and the padded tensors the objectives take.

`prepare(spec)` validates everything that needs no model (spec, output directory, data rows),
tokenizes the training rows and the held-out rows, and fixes the step counts. `collate` turns
example indices into right-padded tensors; `micro_batches` is the seeded, resumable order.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalbench.errors import InputError
from evalbench.io import stable_hash
from evalbench.train.model import load_tokenizer
from evalbench.train.spec import TrainSpec, check, resolve_base, total_steps, warmup_steps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExampleSet:
    """Tokenized examples of one split and what batching them needs.

    Attributes:
        kind: "paired" (TokenizedPair) or "unpaired" (TokenizedUnpaired, KTO).
        kl_partners: KTO's fixed mismatched partner of each example (None: z = 0).
    """

    kind: str
    examples: list
    kl_partners: list[int] | None = None


@dataclass(frozen=True)
class HeldOut:
    """The held-out evaluation split: its examples and where they came from (for train_meta.json)."""

    data: ExampleSet
    info: dict[str, Any]


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
    held_out: HeldOut | None = None

    @property
    def train_set(self) -> ExampleSet:
        return ExampleSet(self.kind, self.examples, self.kl_partners)


def check_out(spec: TrainSpec) -> Path:
    """The output directory, refused when it holds something and neither overwrite nor resume is set."""
    out = Path(spec.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a directory", path=out, field="--out")
    if out.is_dir() and any(out.iterdir()) and not (spec.overwrite or spec.resume):
        raise InputError("output directory exists and is not empty; pass --overwrite to replace it or "
                         "--resume to continue its last checkpoint", path=out, field="--out")
    return out


def split_held_out(examples: Sequence, fraction: float) -> tuple[list, list]:
    """(train, held-out): a fixed pseudo-random `fraction` of the source rows, each split in file order.

    Examples derived from one row (KTO's two halves of a pair) stay on the same side. The split
    depends only on the rows, not on the training seed, so every seed of an experiment is
    evaluated on the same held-out rows.

    Raises:
        InputError: nothing would be left on one side.
    """
    rows = list(dict.fromkeys(e.ref for e in examples))
    k = round(fraction * len(rows))
    if k < 1 or k >= len(rows):
        raise InputError(f"an eval fraction of {fraction} of {len(rows)} rows leaves "
                         f"{'no held-out' if k < 1 else 'no training'} rows", field="held_out.fraction")
    shuffled = list(rows)
    random.Random(stable_hash("held-out", len(rows))).shuffle(shuffled)
    held = set(shuffled[:k])
    return [e for e in examples if e.ref not in held], [e for e in examples if e.ref in held]


def _tokenize(raw: Sequence, paired: bool, tokenizer, data_spec, kto_kl: bool) -> tuple[ExampleSet, Any]:
    from evalbench.train import tokens as T

    if paired:
        examples, trunc = T.tokenize_pairs(raw, tokenizer, data_spec)
        return ExampleSet("paired", examples), trunc
    examples, trunc = T.tokenize_unpaired(raw, tokenizer, data_spec)
    return ExampleSet("unpaired", examples, T.kl_partners(examples) if kto_kl else None), trunc


def _held_out_rows(spec: TrainSpec, paired: bool, raw: list) -> tuple[list, list | None, dict[str, Any]]:
    """(training rows, held-out rows or None, held-out description)."""
    from evalbench.train import data as D

    h = spec.held_out
    if h.data is not None:
        fields = {"path": h.data, "offset": 0, "limit": h.limit}
        if h.split is not None:
            fields["split"] = h.split
        source = spec.data.model_copy(update=fields)  # tokenized exactly like the training data
        rows, report = D.load_examples(source, paired=paired)
        return raw, rows, {"source": report.source, "sha256": report.sha256, "rows_read": report.rows_read}
    if h.fraction:
        train_rows, held = split_held_out(raw, h.fraction)
        if h.limit is not None:
            held = held[:h.limit]
        return train_rows, held, {"source": "fraction", "fraction": h.fraction}
    return raw, None, {}


def prepare(spec: TrainSpec) -> Prepared:
    """Validate the spec, the output directory and the data; nothing is loaded but the tokenizer.

    Raises:
        InputError / MissingExtra: anything wrong with the spec, options, data or output dir.
    """
    from evalbench.train import data as D
    from evalbench.train.tokens import tokenized_hash

    loss_info = check(spec)
    check_out(spec)
    base = resolve_base(spec.base)
    tokenizer = load_tokenizer(base)
    raw, report = D.load_examples(spec.data, paired=loss_info.paired)
    raw, held_raw, held_info = _held_out_rows(spec, loss_info.paired, raw)
    train, trunc = _tokenize(raw, loss_info.paired, tokenizer, spec.data, spec.kto_kl)
    if train.kind == "unpaired":
        if spec.kto_kl and train.kl_partners is None:
            log.warning("every KTO example has the same prompt: no mismatched pairs, so z = 0")
        labels = {e.label for e in train.examples}
        if len(labels) < 2:
            log.warning("KTO data holds only %s examples", "desirable" if True in labels else "undesirable")
    held_out = None
    if held_raw is not None:
        held, held_trunc = _tokenize(held_raw, loss_info.paired, tokenizer, spec.data, spec.kto_kl)
        held_out = HeldOut(held, {**held_info, "examples": len(held.examples), "truncation": held_trunc.as_dict(),
                                  "tokenized_sha256": tokenized_hash(held.examples)})
    prep = Prepared(spec=spec, loss_info=loss_info, base=base, tokenizer=tokenizer, kind=train.kind,
                    examples=train.examples, load_report=report, truncation=trunc,
                    data_hash=tokenized_hash(train.examples), kl_partners=train.kl_partners, held_out=held_out)
    prep.total = total_steps(spec, len(train.examples))
    prep.warmup = warmup_steps(spec, prep.total)
    return prep


# --------------------------------------------------------------------------- tensors


def logits_to_keep(masks: Sequence[Sequence[int]], width: int) -> int:
    """How many trailing positions need logits: from the one predicting the earliest completion token.

    Prompt positions before that predict nothing that is scored; skipping their LM-head output
    saves time and (for large vocabularies) most of the logits memory, as TRL's `use_logits_to_keep`.
    """
    first = min((list(m).index(1) for m in masks if 1 in m), default=1)
    return width - max(first - 1, 0)


def pad_batch(seqs: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int, device):
    """Right-padded (input_ids, attention_mask, loss_mask) tensors of `seqs` on `device`.

    `masks[i]` marks the scored tokens of `seqs[i]` and may be shorter (an empty mask scores nothing).
    """
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


def collate(data: ExampleSet, index: Sequence[int], pad_id: int, device) -> dict[str, Any]:
    """Padded tensors for the examples `index` of `data` (right padding; loss_mask = completion tokens).

    Paired: rows [chosen_0..chosen_B-1, rejected_0..rejected_B-1] in one forward (TRL's
    concatenated forward). Unpaired: the examples, plus the KL batch (prompt_i with the
    completion of its fixed mismatched partner) when KTO's z is on.
    """
    import torch

    ex = [data.examples[i] for i in index]
    batch: dict[str, Any] = {"index": torch.tensor(list(index), dtype=torch.long), "n": len(ex)}
    if data.kind == "paired":
        rows = [_join(e.prompt, e.chosen) for e in ex] + [_join(e.prompt, e.rejected) for e in ex]
    else:
        rows = [_join(e.prompt, e.completion) for e in ex]
        batch["labels"] = torch.tensor([e.label for e in ex], dtype=torch.bool, device=device)
        if data.kl_partners is not None:
            kl = [_join(e.prompt, data.examples[data.kl_partners[i]].completion) for e, i in zip(ex, index)]
            padded = pad_batch([r[0] for r in kl], [r[1] for r in kl], pad_id, device)
            batch["kl"] = (*padded, logits_to_keep([r[1] for r in kl], padded[0].shape[1]))
    batch["input_ids"], batch["attention_mask"], batch["loss_mask"] = pad_batch(
        [r[0] for r in rows], [r[1] for r in rows], pad_id, device)
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
