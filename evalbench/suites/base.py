"""The suite contract: generate -> score -> summarize, with saved output between the stages.

A suite is one module with a `Suite` subclass registered in `SUITES` (registry name == CLI name ==
YAML stem). `evalbench run` (evalbench/api.py) drives every suite the same way:

    for checkpoint, seed:  gens = suite.generate(ctx, checkpoint, seed)       # cached model calls
                           samples = suite.score(ctx, checkpoint, seed, gens)  # cached judge calls
    suite.finalize(ctx, checkpoints, seeds)       # cross-checkpoint work (MT-bench pairwise), artifacts
    metrics = suite.summarize(samples_of_one_checkpoint_and_seed)              # pure

Generation and judgment requests go through `CachedBackend`s, so a resumed run never pays twice.
Suites append what they produce to `ctx.run` themselves, as they produce it (generations through
`generate_items(..., run=ctx.run)`, samples through `ctx.run.append_samples`); the return values
are for the caller. A resumed stage may append a record twice: readers keep the last one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from evalbench.config import Spec
from evalbench.generate.backend import CachedBackend
from evalbench.registry import Registry
from evalbench.store import GenerationRecord, Run, SampleRecord


@dataclass(frozen=True)
class Checkpoint:
    """A policy to evaluate: the base model or a LoRA adapter served on its engine."""

    name: str
    # None when no suite of the run generates through evalbench (e.g. only lm-eval suites).
    backend: CachedBackend | None
    base_model: str
    adapter_path: str | None = None
    # From train_meta.json when the adapter was trained by evalbench: method, training seed, ...
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteContext:
    run: Run
    judge: CachedBackend | None = None
    judge_name: str | None = None
    # The judge is a local vLLM model: constrain its verdicts so every one parses.
    constrained_judge: bool = False
    limit: int | None = None

    @property
    def artifacts(self) -> Path:
        return self.run.artifacts


class NoOptions(Spec):
    pass


class Suite(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    needs_judge: ClassVar[bool] = False
    # False: the suite brings its own engine (lm-eval), so `evalbench run` need not serve the policy.
    uses_policy_backend: ClassVar[bool] = True
    Options: ClassVar[type[Spec]] = NoOptions

    def __init__(self, options: Spec | None = None):
        self.options = options if options is not None else self.Options()

    def data_files(self) -> list[Path]:
        """Benchmark files read, for provenance hashes in run.json."""
        return []

    @abstractmethod
    def generate(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int) -> list[GenerationRecord]: ...

    @abstractmethod
    def score(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int,
              generations: Sequence[GenerationRecord]) -> list[SampleRecord]: ...

    def finalize(self, ctx: SuiteContext, checkpoints: Sequence[Checkpoint], seeds: Sequence[int]) -> None:
        """Work across checkpoints (pairwise judging, exported files). Default: nothing."""

    @abstractmethod
    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        """Metrics of one checkpoint x seed from its sample records. Pure."""


SUITES: Registry[type[Suite]] = Registry("suite")
# Lazy targets: looking up one suite never imports another's dependencies.
for _name, _target in {
    "alpaca": "evalbench.suites.alpaca.suite:AlpacaEval2",
    "mtbench": "evalbench.suites.mtbench.suite:MTBench",
    "diversity": "evalbench.suites.diversity:Diversity",
    "openllm": "evalbench.suites.openllm.suite:OpenLLM",
    "openllm_v2": "evalbench.suites.openllm.suite:OpenLLMv2",
}.items():
    SUITES.add(_name, _target)
