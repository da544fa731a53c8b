"""The suite contract: generate -> score -> finalize -> summarize, with saved output between the stages.

A suite is one module with a `Suite` subclass registered in `SUITES` (registry name == CLI name ==
YAML stem). `evalbench.api` drives every suite the same way and is the only code that writes the
run's records:

    for checkpoint, seed:  gens = suite.generate(ctx, checkpoint, seed)       # cached model calls
                           samples = suite.score(ctx, checkpoint, seed, gens)  # cached judge calls
    updated = suite.finalize(ctx, checkpoints, seeds, all_gens, all_samples)  # cross-checkpoint work
    metrics = suite.summarize(final_samples_of_one_checkpoint_and_seed)      # pure

Stages *return* records; the driver appends the new ones to the store (generations.jsonl,
samples.jsonl). `finalize` returns replacements for sample records (same key, e.g. MT-bench's
pairwise scores merged into a question's record); the driver applies them last-wins, as readers
of the store do. Suites never see the run: they get `ctx.artifacts`, a directory the driver owns,
for files in their ecosystem's formats, and `ctx.header`, run.json fields the driver records.
Generation and judgment requests go through `CachedBackend`s, so a resumed run never pays twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from evalbench.config import Spec
from evalbench.generate.backend import CachedBackend
from evalbench.judge.base import Judge
from evalbench.registry import Registry
from evalbench.errors import EvalbenchError, InputError
from evalbench.store import GenerationRecord, SampleRecord


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
    """What a stage may use besides its arguments; built by the driver (`evalbench.api`)."""

    # The run's Judge (evalbench.judge; the driver builds it once). A bare CachedBackend is still
    # accepted and wrapped by the suites with `judge_name` / `constrained_judge` (hand-built contexts).
    judge: Judge | CachedBackend | None = None
    judge_name: str | None = None
    # The judge is a local vLLM model: constrain its verdicts so every one parses.
    constrained_judge: bool = False
    limit: int | None = None
    # run.artifacts/: the one place a suite writes files (FastChat, alpaca_eval, lm-eval formats).
    artifacts_dir: Path | None = None
    log_dir: Path | None = None
    # run.json fields a suite reports (e.g. lm-eval task versions); the driver writes them.
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def artifacts(self) -> Path:
        if self.artifacts_dir is None:
            raise EvalbenchError("this stage writes artifacts, but the context has no artifacts_dir")
        return self.artifacts_dir


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

    def check(self, model: str, artifacts: Path, limit: int | None = None) -> None:
        """Input checks that need the model, before the run directory or any engine exists."""

    @abstractmethod
    def generate(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int) -> list[GenerationRecord]: ...

    @abstractmethod
    def score(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int,
              generations: Sequence[GenerationRecord]) -> list[SampleRecord]: ...

    def read_replay(self, path: Path) -> Mapping[str, Sequence[Sequence[str]]]:
        """Saved outputs of one model, for the replay backend: {sample_id: [choice turns, ...]}."""
        raise InputError(f"suite '{self.name}' cannot replay saved outputs", path=path)

    def finalize(self, ctx: SuiteContext, checkpoints: Sequence[Checkpoint], seeds: Sequence[int],
                 generations: Sequence[GenerationRecord], samples: Sequence[SampleRecord]) -> list[SampleRecord]:
        """Work across checkpoints (pairwise judging, exported files) over this suite's records of
        the run; returns new or replacement sample records (same key replaces). Default: none."""
        return []

    @abstractmethod
    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        """Metrics of one checkpoint x seed from its (final) sample records. Pure."""


SUITES: Registry[type[Suite]] = Registry("suite")
# Lazy targets: looking up one suite never imports another's dependencies.
for _name, _target in {
    "alpaca": "evalbench.suites.alpaca.suite:AlpacaEval2",
    "mtbench": "evalbench.suites.mtbench.suite:MTBench",
    "diversity": "evalbench.suites.diversity:Diversity",
    "reward": "evalbench.suites.reward:RewardSuite",
    "openllm": "evalbench.suites.openllm.suite:OpenLLM",
    "openllm_v2": "evalbench.suites.openllm.suite:OpenLLMv2",
}.items():
    SUITES.add(_name, _target)
