"""Suites `openllm` (Open LLM Leaderboard v1) and `openllm_v2` (lm-eval's `leaderboard` group).

lm-eval does both generation and scoring, so `generate` returns nothing and `score` runs lm-eval
for the checkpoint (`checkpoint.base_model` + `checkpoint.adapter_path`, in a worker subprocess;
see runner.py), saves lm-eval's results and per-sample logs under
`run.artifacts/openllm/<checkpoint>/` and returns one SampleRecord per document
(`sample_id = <task>/<doc_id>`, scores keyed `<task>/<metric>`); lm-eval's task versions go into
run.json through `ctx.header["openllm"]`. `summarize` is pure over those
records: `<task>/<metric>`, `<task>/<metric>_stderr` and `average` (v1: the mean of the six headline
metrics; v2: the leaderboard's normalised benchmark scores and their mean).

The tasks are deterministic (log-likelihoods, greedy generation, fixed few-shot seed), so every
evalbench seed of a checkpoint shares one lm-eval run and gets the same records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from evalbench.store import GenerationRecord, SampleRecord
from evalbench.suites.base import Checkpoint, Suite, SuiteContext
from evalbench.suites.openllm import tasks as T
from evalbench.suites.openllm.metrics import summarize_tasks, summarize_v2
from evalbench.suites.openllm.runner import (
    OpenLLMOptions,
    Plan,
    Target,
    lm_eval_versions,
    load_records,
    offline_data_files,
    plan_tasks,
    run_checkpoint,
)

log = logging.getLogger(__name__)


class OpenLLM(Suite):
    """Open LLM Leaderboard v1: ARC-Challenge 25-shot acc_norm, HellaSwag 10-shot acc_norm, MMLU 5-shot
    acc, TruthfulQA mc2 0-shot, WinoGrande 5-shot acc, GSM8K 5-shot exact match, and their average."""

    name: ClassVar[str] = "openllm"
    version: ClassVar[str] = "1"
    uses_policy_backend: ClassVar[bool] = False  # lm-eval runs its own engine (in-process or server)
    Options = OpenLLMOptions
    default_tasks: ClassVar[tuple[str, ...]] = tuple(t for t, _, _ in T.V1_TASKS)

    def __init__(self, options: OpenLLMOptions | None = None):
        super().__init__(options)
        self._plan: Plan | None = None
        self._plan_dir: Path | None = None

    @property
    def opts(self) -> OpenLLMOptions:
        return self.options  # type: ignore[return-value]

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.opts.tasks or self.default_tasks))

    def data_files(self) -> list[Path]:
        """Also the early input check: unknown task names and missing offline files raise here,
        which `evalbench run` calls before it starts any engine."""
        return offline_data_files(self.opts, self.default_tasks)

    def options_for(self, ctx: SuiteContext) -> OpenLLMOptions:
        if self.opts.limit is None and ctx.limit is not None:
            return self.opts.model_copy(update={"limit": ctx.limit})
        return self.opts

    def prepare(self, model: str, task_dir: Path, limit: int | None = None) -> Plan:
        """Validate everything (names, data, chat template) and write the offline task files."""
        options = self.opts if self.opts.limit is not None or limit is None else \
            self.opts.model_copy(update={"limit": limit})
        if self._plan is None or self._plan_dir != task_dir:
            self._plan = plan_tasks(options, self.default_tasks, model, task_dir)
            self._plan_dir = task_dir
        return self._plan

    def check(self, model: str, artifacts: Path, limit: int | None = None) -> None:
        """Names, offline data and chat template, and the offline task files, before the run starts."""
        self.prepare(model, artifacts / "openllm" / "tasks", limit)

    def plan(self, ctx: SuiteContext, model: str) -> Plan:
        return self.prepare(model, ctx.artifacts / "openllm" / "tasks", ctx.limit)

    def generate(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int) -> list[GenerationRecord]:
        return []  # lm-eval generates and scores in `score`

    def score(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int,
              generations: Sequence[GenerationRecord]) -> list[SampleRecord]:
        options = self.options_for(ctx)
        plan = self.plan(ctx, checkpoint.base_model)
        out = ctx.artifacts / "openllm" / checkpoint.name
        target = Target(checkpoint.name, checkpoint.base_model, checkpoint.adapter_path, dict(checkpoint.meta))
        report = run_checkpoint(target, plan, options, out, log_dir=ctx.log_dir)
        records = load_records(out, plan, suite=self.name, checkpoint=checkpoint.name, seed=seed)
        versions = lm_eval_versions(out, plan)
        recorded = ctx.header.setdefault("openllm", {})
        recorded[checkpoint.name] = {**versions, "computed": report["computed"], "data_files": plan.data_files}
        return records

    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        return summarize_tasks(samples, self.tasks, report_subtasks=self.opts.report_subtasks, average=True)


class OpenLLMv2(OpenLLM):
    """Open LLM Leaderboard v2: lm-eval's `leaderboard` group (IFEval, BBH, MATH lvl 5, GPQA, MuSR,
    MMLU-Pro) with the leaderboard's normalisation. Online only: its datasets are not in the shared data."""

    name: ClassVar[str] = "openllm_v2"
    version: ClassVar[str] = "1"
    default_tasks: ClassVar[tuple[str, ...]] = (T.V2_GROUP,)

    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        out = summarize_v2(samples, T.V2_GROUP) if T.V2_GROUP in self.tasks else {}
        others = [t for t in self.tasks if t != T.V2_GROUP]
        if others:
            out.update(summarize_tasks(samples, others, report_subtasks=self.opts.report_subtasks, average=False))
        return out
