"""The local executor: the stages exactly as `evalbench.api` defines them, in this process."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any


class LocalExecutor:
    """One engine per base model in this process (or its engine subprocess); units in order."""

    def __init__(self, spec: Any = None):
        self.spec = spec

    # evalbench.api imports this package, so its functions are looked up when called.
    def policy_engine(self, spec: Any, run: Any, cache: Any, *, serve: bool = True,
                      suites: Sequence[Any] = ()) -> ContextManager[tuple[list[Any], Any]]:
        from evalbench.api import policy_engine

        return policy_engine(spec, run, cache, serve=serve, suites=suites)

    def judge_backend(self, spec: Any, run: Any, cache: Any, policy: Any) -> ContextManager[Any]:
        from evalbench.api import judge_backend

        return judge_backend(spec, run, cache, policy)

    def generate(self, sink, suites, checkpoints, seeds, ctx, on_unit=None):
        from evalbench.api import generate_stage

        return generate_stage(sink, suites, checkpoints, seeds, ctx, on_unit=on_unit)

    def score(self, sink, suites, checkpoints, seeds, ctx, gens, done=None):
        from evalbench.api import score_stage

        return score_stage(sink, suites, checkpoints, seeds, ctx, gens, done=done)
