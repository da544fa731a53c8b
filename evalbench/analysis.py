"""Finished runs in, answers out: `compare`, `gate` and `export` for Python callers.

These are the library side of `evalbench compare`, `evalbench gate` and `evalbench export`: the same
functions (`aggregate.compare.compare_runs`, `aggregate.gate.check`, `report.export.export_leaderboard`)
behind one way of naming runs. A run may be given as a `Run` handle (what `evalbench.run` returns),
a run directory, a results root or a directory of runs, a run id under `results_dir`, a loaded
`RunData`, or a list of any of these. Nothing here prints or reads the environment.

    handle = evalbench.run(spec)
    table = evalbench.compare(handle, baseline="tiny")   # Comparison: .rows(), .outcomes
    report = evalbench.gate(candidate=handle_b, baseline=handle_a)
    report.passed, report.failures
    evalbench.export([handle_a, handle_b], "results/leaderboard.csv")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalbench.paths import results_dir as _results_dir

if TYPE_CHECKING:
    from evalbench.aggregate.compare import Comparison
    from evalbench.aggregate.gate import GateReport, GateRules
    from evalbench.aggregate.summarize import ResultSet, RunData
    from evalbench.store import Run

    RunRef = str | Path | Run | RunData
    Runs = RunRef | Sequence[RunRef] | ResultSet


def load(runs: Runs, *, results_dir: str | Path | None = None, with_samples: bool = True) -> list[RunData]:
    """Load `runs` (see the module doc for what a run may be), in order, each run once.

    Per-sample scores are loaded by default: the paired tests need them, and without them
    comparisons fall back to Welch's test on model means.
    """
    from evalbench.aggregate.summarize import ResultSet, RunData, load_runs
    from evalbench.store import Run

    if isinstance(runs, ResultSet):
        return list(runs.runs.values())
    items = [runs] if isinstance(runs, (str, Path, Run, RunData)) else list(runs)
    root = _results_dir(results_dir)
    loaded: list[RunData] = []
    seen: set[Path] = set()
    for item in items:
        if isinstance(item, RunData):
            found = [item]
        else:
            found = load_runs([item.path if isinstance(item, Run) else item], results_root=root,
                              with_samples=with_samples)
        for run in found:
            key = Path(run.path).resolve()
            if key not in seen:  # the same run named twice (a path and its handle) counts once
                seen.add(key)
                loaded.append(run)
    return loaded


def compare(runs: Runs, *, baseline: str | None = None, metrics: Sequence[str] | None = None,
            results_dir: str | Path | None = None, **options: Any) -> Comparison:
    """Every checkpoint group over seeds, each tested against `baseline` (`evalbench compare`).

    Args:
        runs: the runs to compare (their checkpoint groups are merged across runs).
        baseline: a checkpoint group or checkpoint name; default: the first group seen.
        metrics: selectors (`metric`, `suite:metric`, shell patterns); default: every quality metric.
        results_dir: where run ids are looked up (default `./results`).
        **options: `test`, `correction`, `alpha`, `conf`, `iters`, `seed`, ... of
            `evalbench.aggregate.compare.compare_runs`.

    Returns:
        The `Comparison`: `.rows()` in long format, `.outcomes` per (group, suite, metric); render it
        with `evalbench.aggregate.compare.to_markdown` / `to_csv` / `write_comparison`.
    """
    from evalbench.aggregate.compare import compare_runs

    return compare_runs(load(runs, results_dir=results_dir), baseline=baseline, metrics=metrics, **options)


def gate(candidate: Runs, baseline: Runs, *, rules: str | Path | GateRules | None = None,
         overrides: Sequence[str] = (), candidate_group: str | None = None, baseline_group: str | None = None,
         results_dir: str | Path | None = None) -> GateReport:
    """The CI regression gate (`evalbench gate`): does `candidate` regress against `baseline`?

    A metric fails when it drops by more than its rule allows and the corrected p-value is below
    the rule's alpha.

    Args:
        candidate, baseline: runs, as for `compare`.
        rules: a rules YAML path or loaded `GateRules`; default: the packaged default rules.
        overrides: `KEY=VALUE` overrides of the rules file, e.g. `defaults.alpha=0.01`.
        candidate_group, baseline_group: the checkpoint groups to pair (default: see `aggregate.gate.check`).

    Returns:
        The `GateReport`: `.passed`, `.failures`, `.exit_code`, `.to_markdown()`, `.to_junit_xml()`.
    """
    from evalbench.aggregate.gate import GateRules, check, load_rules
    from evalbench.aggregate.summarize import ResultSet

    loaded_rules = rules if isinstance(rules, GateRules) else load_rules(rules, overrides)
    return check(ResultSet(load(candidate, results_dir=results_dir)),
                 ResultSet(load(baseline, results_dir=results_dir)), loaded_rules,
                 candidate_group=candidate_group, baseline_group=baseline_group)


def export(runs: Runs, out: str | Path | None = None, *, baseline: str | None = None,
           results_dir: str | Path | None = None, alpaca_out: str | Path | None = None,
           **options: Any) -> list[Path]:
    """Write the leaderboard CSV, one row per checkpoint group (`evalbench export`).

    Args:
        runs: the runs to export.
        out: the CSV path; default `<results_dir>/leaderboard.csv`.
        baseline: group to test every group against (significance columns stay empty without one).
        alpaca_out: also write an AlpacaEval-compatible leaderboard CSV here.
        **options: `metrics`, `correction`, `alpha`, `iters`, `seed`, `alpaca_mode`, `alpaca_merge` of
            `evalbench.report.export.export_leaderboard`.

    Returns:
        The files written.
    """
    from evalbench.report.export import export_leaderboard

    target = Path(out) if out is not None else _results_dir(results_dir) / "leaderboard.csv"
    return export_leaderboard(load(runs, results_dir=results_dir), target, baseline=baseline,
                              alpaca_out=alpaca_out, **options)


__all__ = ["compare", "export", "gate", "load"]
