"""Executors: where the stages of `evalbench.api.run` do their work. One registry, one small interface.

    local   everything in this process: one engine per base model, units one after another (default)
    ray     engines as Ray actors on an existing cluster (`--executor ray [--ray-address ADDR]`):
            several engines per base model when the cluster has the GPUs, units spread over them

`api.run` asks its executor for the policy engine and the judge backend (context managers) and
hands it the generate and score stages; it never knows which executor it has. Whatever the
executor, the suites run in the driver, every model call goes through the driver's cache, and
every record goes to the driver's one `RecordSink`: resume, caching and the results format do
not depend on the executor, so the executor is left out of the spec hash (a run started with one
resumes with the other). Adding an executor is one class with the methods of `Executor` plus one
`EXECUTORS.add` line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any, Protocol

from evalbench.registry import Registry

__all__ = ["EXECUTORS", "Executor", "make_executor"]

Unit = tuple[str, str, int]  # (suite, checkpoint, seed), as in evalbench.api


class Executor(Protocol):
    """What `api.run` needs from an executor (signatures mirror evalbench.api's stage functions)."""

    def policy_engine(self, spec: Any, run: Any, cache: Any, *, serve: bool = True,
                      suites: Sequence[Any] = ()) -> ContextManager[tuple[list[Any], Any]]: ...

    def judge_backend(self, spec: Any, run: Any, cache: Any, policy: Any) -> ContextManager[Any]: ...

    # `on_unit(unit, records)`: called in the driver as each unit's generations are written (the
    # overlapped judging of evalbench.api.OverlappedScoring).
    def generate(self, sink: Any, suites: Sequence[Any], checkpoints: Sequence[Any], seeds: Sequence[int],
                 ctx: Any, on_unit: Callable[[Unit, list[Any]], None] | None = None) -> dict[Unit, list[Any]]: ...

    # `done`: units already scored (kept as they are); the others are scored here.
    def score(self, sink: Any, suites: Sequence[Any], checkpoints: Sequence[Any], seeds: Sequence[int],
              ctx: Any, gens: dict[Unit, list[Any]], done: Mapping[Unit, list[Any]] | None = None
              ) -> dict[Unit, list[Any]]: ...


EXECUTORS: Registry[Any] = Registry("executor")
# Lazy targets: the local executor never imports Ray.
EXECUTORS.add("local", "evalbench.executors.local:LocalExecutor")
EXECUTORS.add("ray", "evalbench.executors.ray:RayExecutor")


def make_executor(spec: Any) -> Executor:
    """The executor a RunSpec names (`executor`, default `local`), configured from the spec."""
    return EXECUTORS.get(getattr(spec, "executor", "local"))(spec)
