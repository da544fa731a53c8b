"""Synthetic finished runs for the aggregate / gate / export / report tests (written via ResultsStore)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.store import ResultsStore, SampleRecord


@dataclass
class Unit:
    """One suite x checkpoint x seed row; `scores` are per-sample values of `metric` (ids '0'..'n-1')."""

    checkpoint: str
    scores: Sequence[float | None] | None
    seed: int = 0
    group: str | None = None
    train_seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # extra / overriding summary metrics
    suite: str = "alpaca"
    suite_version: str = "1"
    adapter: str | None = None
    method: str | None = None
    ids: Sequence[str] | None = None


def make_run(root: Path, run_id: str, units: Sequence[Unit], *, metric: str = "win_rate",
             spec: Mapping[str, Any] | None = None, judge: str | None = "stub-judge") -> Path:
    store = ResultsStore(root)
    spec = dict(spec or {"synthetic": run_id})
    run = store.start(spec, f"hash-{run_id}", run_id=run_id)
    rows = []
    for u in units:
        metrics: dict[str, Any] = {}
        if u.scores is not None:
            ids = list(u.ids) if u.ids is not None else [str(i) for i in range(len(u.scores))]
            run.append_samples(SampleRecord(suite=u.suite, checkpoint=u.checkpoint, seed=u.seed, sample_id=sid,
                                            scores={metric: None if v is None else float(v)},
                                            error=None if v is not None else "judge failed")
                               for sid, v in zip(ids, u.scores))
            valid = [v for v in u.scores if v is not None]
            metrics[metric] = float(np.mean(valid))
        metrics.update(u.metrics)
        rows.append({"suite": u.suite, "suite_version": u.suite_version, "checkpoint": u.checkpoint,
                     "group": u.group or u.checkpoint, "train_seed": u.train_seed, "seed": u.seed,
                     "base_model": "tiny", "adapter": u.adapter, "adapter_sha256": None if u.adapter is None else "ab" * 32,
                     "method": u.method, "judge": judge, "metrics": metrics,
                     "n_samples": 0 if u.scores is None else len(u.scores),
                     "n_failed": 0 if u.scores is None else sum(v is None for v in u.scores)})
    run.write_summary({"results": rows})
    run.finish("success")
    return run.path


def scores(n: int, mean: float, sd: float, seed: int) -> list[float]:
    """Reproducible normal scores."""
    return list(np.random.default_rng(seed).normal(mean, sd, size=n))


def trained_group(group: str, rng: np.random.Generator, prompt_logits: np.ndarray, *, n_models: int = 5,
                  seed_sd: float = 0.1, shift: float = 0.0, gen_seeds: Sequence[int] = (0,),
                  suite: str = "alpaca") -> list[Unit]:
    """A checkpoint group of `n_models` training seeds scored like AlpacaEval win rates (0 or 100).

    Model m wins prompt p with probability sigmoid(prompt_logits[p] + s_m + shift), s_m ~ N(0, seed_sd):
    each training seed is a slightly different model (a logit sd of 0.1 is about 2 win-rate points).
    Every generation seed redraws the wins (sampling noise).
    """
    units = []
    for m in range(n_models):
        logit = prompt_logits + rng.normal(0.0, seed_sd) + shift
        p = 1.0 / (1.0 + np.exp(-logit))
        for g in gen_seeds:
            wins = 100.0 * (rng.random(p.size) < p)
            units.append(Unit(f"{group}-s{m}", list(wins), seed=g, group=group, train_seed=m, suite=suite))
    return units
