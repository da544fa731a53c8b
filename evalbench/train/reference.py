"""Reference log-probs computed once before training and cached on disk (`precompute_ref`).

The reference policy is the base model itself with the adapter disabled; without
`precompute_ref` the objectives compute the same numbers inline each step. The cache key is the
base model's identity plus the tokenized data (and KL pairing, quantization, precision), so any
run over the same data and base reuses the file.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from evalbench.train.batches import Prepared, collate
from evalbench.train.model import autocast, eval_mode
from evalbench.train.objectives import Context, sequence_logps
from evalbench.train.spec import TrainSpec

log = logging.getLogger(__name__)


def ref_cache_dir(spec: TrainSpec) -> Path:
    """`spec.ref_cache_dir`, else `$EVALBENCH_HOME/ref_logps` (default home ~/.cache/evalbench)."""
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
            batch = collate(prep.train_set, idx, prep.tokenizer.pad_token_id, ctx.device)
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


def load_or_compute_reference(ctx: Context, batch_size: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Precomputed reference log-probs, from the disk cache when the key matches.

    `batch_size`: examples per no-grad forward (default: the spec's eval batch size).
    """
    import torch

    key = ref_cache_key(ctx.prep, ctx.precision)
    path = ref_cache_dir(ctx.spec) / f"{key}.pt"
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("key") == key and all(len(v) == len(ctx.prep.examples) for v in saved["ref"].values()):
                log.info("reference log-probs from cache %s", path)
                return saved["ref"], {"mode": "precomputed", "cache": str(path), "cache_hit": True}
        except Exception as exc:  # noqa: BLE001 -- a torn or foreign file: recompute and replace it
            log.warning("ignoring unreadable reference cache %s (%s)", path, exc)
    t0 = time.perf_counter()
    ref = compute_reference(ctx, batch_size or ctx.spec.eval_batch)
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
