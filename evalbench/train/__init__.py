"""Preference training: losses, β/lr schedules, WPO weights, data and the trainer loop.

Import-light on purpose: nothing here imports torch. `evalbench.train.losses` and
`evalbench.train.weights` are torch modules (import them where they are used);
`evalbench.train.schedules` is plain Python.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from evalbench.train.spec import TrainSpec


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
