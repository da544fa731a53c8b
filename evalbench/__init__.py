"""evalbench: did this checkpoint get better, and is the difference real?

The public API, for scripts and notebooks (docs/api.md has a complete example):

    import evalbench
    adapter = evalbench.train(evalbench.TrainSpec(...))            # a LoRA adapter directory
    handle = evalbench.run(evalbench.RunSpec(...))                 # a finished run in the results store
    table = evalbench.compare(handle, baseline="base")             # groups over seeds, with tests
    report = evalbench.gate(candidate=run_b, baseline=run_a)       # report.passed / report.failures
    evalbench.export([run_a, run_b], "results/leaderboard.csv")

`import evalbench` is deliberately light (no numpy, torch, pydantic, vllm or lm-eval): each public
name is imported from its module on first use (PEP 562), and heavy dependencies load inside the
functions that need them, with an error naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalbench.errors import EvalbenchError, InputError, MissingExtra

__version__ = "0.1.0"

# public name -> "module:attribute" where it is defined, or "module" for a module itself.
# `train` is the package evalbench.train, which is callable: `evalbench.train(spec)` (see there why).
_LAZY: dict[str, str] = {
    "run": "evalbench.api:run",
    "RunSpec": "evalbench.runspec:RunSpec",
    "load_runs": "evalbench.aggregate.summarize:load_runs",
    "compare": "evalbench.analysis:compare",
    "gate": "evalbench.analysis:gate",
    "export": "evalbench.analysis:export",
    "train": "evalbench.train",
    "TrainSpec": "evalbench.train.spec:TrainSpec",
    "load_train_spec": "evalbench.train.spec:load_train_spec",
    "Suite": "evalbench.suites.base:Suite",
    "SUITES": "evalbench.suites.base:SUITES",
    "Judge": "evalbench.judge.base:Judge",
    "BACKENDS": "evalbench.backends:BACKENDS",
}

__all__ = [
    "BACKENDS", "SUITES", "EvalbenchError", "InputError", "Judge", "MissingExtra", "RunSpec", "Suite", "TrainSpec",
    "__version__", "compare", "export", "gate", "load_runs", "load_train_spec", "run", "train",
]

if TYPE_CHECKING:  # static analysers and IDEs see the real objects
    from evalbench import train
    from evalbench.aggregate.summarize import load_runs
    from evalbench.analysis import compare, export, gate
    from evalbench.api import run
    from evalbench.backends import BACKENDS
    from evalbench.judge.base import Judge
    from evalbench.runspec import RunSpec
    from evalbench.suites.base import SUITES, Suite
    from evalbench.train.spec import TrainSpec, load_train_spec


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'evalbench' has no attribute '{name}'")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
