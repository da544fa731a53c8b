"""Preference training: losses, β/lr schedules, WPO weights, data and the trainer loop.

Public API (imported lazily, so `import evalbench.train` imports no torch):

    from evalbench.train import TrainSpec, load_train_spec, train
    spec = load_train_spec("dpo", profile="tiny", out="runs/dpo-s0", seed=0)
    out = train(spec)          # the adapter directory, with train_meta.json and metrics.jsonl

`evalbench.train.losses` and `evalbench.train.weights` are torch modules (import them where
they are used); `evalbench.train.schedules` and `evalbench.train.spec` are plain Python. The
trainer is split by concern (see `evalbench.train.trainer`'s docstring for the module map).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_EXPORTS = {
    "train": "evalbench.train.trainer",
    "prepare": "evalbench.train.batches",
    "TrainSpec": "evalbench.train.spec",
    "HeldOutSpec": "evalbench.train.spec",
    "load_train_spec": "evalbench.train.spec",
    "METHODS": "evalbench.train.spec",
    "LOSSES": "evalbench.train.losses",
    "REPORTERS": "evalbench.train.reporters",
    "load_reward_model": "evalbench.train.reward",
    "score_file": "evalbench.train.reward",
    "training_curves": "evalbench.train.plots",
    "META_FILE": "evalbench.train.layout",
    "METRICS_FILE": "evalbench.train.layout",
}

__all__ = [
    "LOSSES",
    "META_FILE",
    "METHODS",
    "METRICS_FILE",
    "REPORTERS",
    "HeldOutSpec",
    "TrainSpec",
    "load_reward_model",
    "load_train_spec",
    "prepare",
    "score_file",
    "train",
    "training_curves",
]

if TYPE_CHECKING:
    from pathlib import Path

    from evalbench.train.batches import prepare
    from evalbench.train.layout import META_FILE, METRICS_FILE
    from evalbench.train.losses import LOSSES
    from evalbench.train.plots import training_curves
    from evalbench.train.reporters import REPORTERS
    from evalbench.train.reward import load_reward_model, score_file
    from evalbench.train.spec import METHODS, HeldOutSpec, TrainSpec, load_train_spec
    from evalbench.train.trainer import train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalbench.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _CallablePackage(types.ModuleType):
    """`evalbench.train(spec)` trains: this package is also the public function `evalbench.train`.

    Importing any `evalbench.train.<module>` binds this package as the attribute `train` of
    `evalbench`, which would shadow a plain function of that name; a callable package keeps
    `evalbench.train(spec)`, `evalbench.train.TrainSpec` and `import evalbench.train.x` all working.
    """

    def __call__(self, spec: TrainSpec) -> Path:
        from evalbench.train.trainer import train

        return train(spec)


sys.modules[__name__].__class__ = _CallablePackage
