"""Checkpoints: the final adapter, resumable step checkpoints, and restoring one safely.

A checkpoint `checkpoints/step-NNNNNN/` holds the adapter, `trainer_state.pt` (optimiser, grad
scaler and RNG states: tensors and plain Python data only) and `trainer_state.json` (step, train
hash). It is written into a temporary directory and renamed into place whole, so a directory
with a `trainer_state.json` is always complete.

Resuming reads `trainer_state.pt` with `torch.load(weights_only=True)`: a file that holds
anything but tensors and plain data (a pickle that would run code when loaded) is refused with
one line instead of being executed, so resuming from a directory someone else wrote is safe.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalbench.errors import EvalbenchError, InputError
from evalbench.io import write_json_atomic
from evalbench.train.layout import ADAPTER_CONFIG, ADAPTER_WEIGHTS, CHECKPOINTS_DIR, OPTIM_FILE, STATE_FILE

log = logging.getLogger(__name__)


def now() -> str:
    """The current UTC time, ISO 8601 to the second (train_meta.json and checkpoint stamps)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def clear_dir(out: Path) -> None:
    """Remove a previous run's directory (--overwrite): moved aside first, then deleted."""
    if not out.exists():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, trash / out.name)
    shutil.rmtree(trash, ignore_errors=True)


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


def save_checkpoint(model, out: Path, step: int, optimizer, scaler, train_hash: str) -> Path:
    """`checkpoints/step-NNNNNN/`: adapter + optimiser + RNG state, renamed into place whole."""
    import torch

    root = out / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step-{step:06d}-", dir=root))
    try:
        model.save_pretrained(tmp)
        torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                    "rng": _rng_state()}, tmp / OPTIM_FILE)
        write_json_atomic(tmp / STATE_FILE, {"step": step, "train_hash": train_hash, "saved_at": now()})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("checkpoint saved: %s", final)
    return final


def latest_checkpoint(out: Path) -> Path | None:
    """The complete checkpoint with the highest step under `out`, or None."""
    root = out / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / STATE_FILE).exists())
    return done[-1] if done else None


def load_trainer_state(path: Path) -> dict[str, Any]:
    """The optimiser / scaler / RNG state of a checkpoint, loaded without running any pickled code.

    Raises:
        InputError: one line naming the file when it holds anything but tensors and plain data
            (refused, never executed), cannot be read, or is not an evalbench trainer state.
    """
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError("refusing to load the trainer state: it holds objects other than tensors and plain "
                         "data (not written by evalbench, or tampered with); delete the checkpoint or use "
                         "--overwrite", path=path, field="--resume") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise InputError(f"cannot read the trainer state ({type(exc).__name__}); delete the checkpoint or use "
                         "--overwrite", path=path, field="--resume") from None
    if not isinstance(state, dict) or not {"optimizer", "rng"} <= state.keys():
        raise InputError("not an evalbench trainer state (no optimizer / rng entries)", path=path, field="--resume")
    return state


def restore_checkpoint(model, ckpt: Path, optimizer, scaler, train_hash: str,
                       saved: dict[str, Any] | None = None) -> int:
    """Load adapter weights, optimiser, scaler and RNG states from `ckpt`; returns its step.

    `saved`: the checkpoint's trainer state when already read (`load_trainer_state`, which a
    caller may run before loading the model, so an unsafe file fails fast).

    Raises:
        InputError: a checkpoint of other settings, or an unsafe / unreadable trainer state.
        EvalbenchError: adapter weights that do not fit the model.
    """
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((ckpt / STATE_FILE).read_text())
    if state.get("train_hash") != train_hash:
        raise InputError("--resume: the checkpoint was written by a run with different settings "
                         "(train hash differs); use --overwrite to start again", path=ckpt)
    if saved is None:
        saved = load_trainer_state(ckpt / OPTIM_FILE)  # before touching the model: a refused file changes nothing
    weights = load_file(str(ckpt / ADAPTER_WEIGHTS))
    result = set_peft_model_state_dict(model, weights)
    if getattr(result, "unexpected_keys", None):
        raise EvalbenchError(f"checkpoint {ckpt} does not fit this model: unexpected {result.unexpected_keys[:3]}")
    optimizer.load_state_dict(saved["optimizer"])
    if scaler is not None and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    rng = saved["rng"]
    torch.set_rng_state(rng["torch"])
    random.setstate(_python_rng(rng["python"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return int(state["step"])


def _python_rng(state: Any) -> tuple:
    # random.setstate wants (version, tuple of ints, gauss) exactly; a loaded state may hold lists
    version, internal, gauss = state
    return int(version), tuple(int(x) for x in internal), gauss
