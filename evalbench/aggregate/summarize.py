"""Finished runs in, per-group views out: loading, merging and across-seed aggregation.

Everything downstream of `evalbench run` (compare, gate, export, report) reads runs through this
module, so the rules live in one place:

* **What a run argument may be.** A run directory (holds `run.json`), a results root (holds
  `runs/`), a directory of run directories, or a run id under `--results`/runs. Runs named
  explicitly must have a `summary.json`; runs found by scanning a directory without one (still
  running, crashed) are skipped with a warning naming them. Missing summaries are always named.
* **Seed units.** A row of `summary.json["results"]` is one suite x checkpoint x generation seed.
  A checkpoint *group* (e.g. "dpo") collects its training seeds (one checkpoint each, e.g.
  "dpo-s1", "dpo-s2") and their generation seeds. A *model* is a checkpoint; its generation seeds
  are lower-level replicates, averaged per model before anything is compared across models
  (`group_summary`, `GroupData.score_array`; docs/statistics.md).
* **Merging several runs.** Rows of the same group in different runs are more seeds of that group.
  When the same unit (suite, group, checkpoint, seed) appears in two runs with identical metrics it
  is counted once (cached re-runs reproduce it exactly); with different metrics the later run's
  group is renamed `group@run_id` so that nothing is averaged twice or silently overwritten.
* **Per-sample scores** come from `samples.jsonl`, matched to a group through the run's
  checkpoint -> group map; a summary metric is paired-testable when the samples carry its key.

`aggregate_results` / `aggregate_run` produce the `aggregate` rows of summary.json (mean, std,
t- and bootstrap intervals at the model level via `group_summary`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.errors import InputError
from evalbench.registry import did_you_mean
from evalbench.store import Run, SampleRecord

log = logging.getLogger(__name__)

# Metrics that count or describe rather than measure quality: left out of default tables and gates
# (they stay in the data and can be asked for by name).
BOOKKEEPING_METRICS: frozenset[str] = frozenset({
    "n_total", "n_wins", "n_wins_base", "n_draws", "standard_error", "lc_standard_error",
    "n_samples", "n_failed", "n_generated", "n", "n_valid", "n_turn_1", "n_turn_2", "n_inconsistent",
})



def is_bookkeeping(metric: str) -> bool:
    """Counts and standard errors: `BOOKKEEPING_METRICS`, `n_*`, `*_stderr`, `*standard_error`."""
    return (metric in BOOKKEEPING_METRICS or metric.startswith("n_")
            or metric.endswith(("_stderr", "standard_error")))


# Fields of an `aggregate` row, in order (docs/results-format.md). `n` counts the replicates the
# interval is over: models (checkpoints) when the group has two or more, else generation seeds.
AGGREGATE_FIELDS: tuple[str, ...] = (
    "suite", "group", "metric", "n", "mean", "std", "sem", "ci_low", "ci_high", "boot_low", "boot_high",
    "conf", "train_seeds", "seeds", "n_missing", "n_models", "n_gen_seeds", "note")


def as_number(value: Any) -> float | None:
    """A finite float, or None for anything else (None, NaN, bools, strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# loading


@dataclass
class RunData:
    """One finished run: header, summary rows and (lazily) its sample records."""

    path: Path
    header: dict[str, Any]
    summary: dict[str, Any]
    _samples: list[SampleRecord] | None = field(default=None, repr=False)
    _index: dict[tuple, list[SampleRecord]] | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return str(self.header.get("run_id") or self.path.name)

    @property
    def results(self) -> list[dict[str, Any]]:
        return self.summary.get("results", [])

    @property
    def spec_hash(self) -> str | None:
        return self.header.get("spec_hash")

    def samples(self) -> list[SampleRecord]:
        """Sample records (read once; a torn last line is ignored, a bad middle line raises)."""
        if self._samples is None:
            from pydantic import ValidationError

            try:
                self._samples = Run(self.path).samples()
            except ValidationError as exc:  # a record with a missing or mistyped field
                raise InputError(f"bad sample record: {exc}".splitlines()[0],
                                 path=self.path / "samples.jsonl") from None
        return self._samples


def _validate_rows(rows: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(rows, list):
        raise InputError("expected a list", path=path, field="results")
    for i, row in enumerate(rows):
        where = f"results[{i}]"
        if not isinstance(row, dict):
            raise InputError("expected an object", path=path, field=where)
        for key in ("suite", "checkpoint"):
            if not isinstance(row.get(key), str) or not row.get(key):
                raise InputError(f"missing or empty '{key}'", path=path, field=f"{where}.{key}")
        if not isinstance(row.get("metrics"), dict):
            raise InputError("missing 'metrics' object", path=path, field=f"{where}.metrics")
        seed = row.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InputError(f"seed must be an integer, got {seed!r}", path=path, field=f"{where}.seed")
    return rows


# Runs whose summary, if any, may not be the run's final results.
UNFINISHED_STATUSES = frozenset({"error", "interrupted", "started"})


def load_run(run: str | Path | Run, *, with_samples: bool = False) -> RunData:
    """Read a run directory's header and summary (and samples when asked); errors name the file."""
    path = run.path if isinstance(run, Run) else Path(run)
    handle = Run(path)
    if not handle.header_path.exists():
        raise InputError("not a run directory (no run.json)", path=path)
    header = handle.header()
    summary = handle.summary()
    _validate_rows(summary.get("results", []), path / "summary.json")
    data = RunData(path, header, summary)
    if with_samples:
        data.samples()
    return data


def _resolve(arg: str | Path, results_root: Path) -> tuple[list[Path], bool]:
    """(run directories, named explicitly?) for one command-line argument."""
    path = Path(arg)
    if (path / "run.json").exists():
        return [path], True
    if path.is_dir():
        base = path / "runs" if (path / "runs").is_dir() else path
        found = sorted(p for p in base.iterdir() if (p / "run.json").exists())
        if found:
            return found, False
        raise InputError("no runs found here (expected run.json, or run directories below)", path=path)
    by_id = results_root / "runs" / str(arg)
    if (by_id / "run.json").exists():
        return [by_id], True
    raise InputError(f"not a run directory, results root or run id under {results_root / 'runs'}", path=arg)


def load_runs(args: Sequence[str | Path], *, results_root: str | Path = "results",
              with_samples: bool = False) -> list[RunData]:
    """Load every run named by `args` (see module doc), in order, each once.

    Raises:
        InputError: an argument names nothing; a run named explicitly has no summary.json (all such
            runs are named in one message); no run with a summary was found at all.
    """
    if not args:
        raise InputError("give at least one run directory, results root or run id")
    explicit_missing: list[Path] = []
    skipped: list[Path] = []
    unfinished: list[str] = []
    out: list[RunData] = []
    seen: set[Path] = set()
    for arg in args:
        paths, explicit = _resolve(arg, Path(results_root))
        for p in paths:
            key = p.resolve()
            if key in seen:
                continue
            seen.add(key)
            if not (p / "summary.json").exists():
                (explicit_missing if explicit else skipped).append(p / "summary.json")
                continue
            run = load_run(p, with_samples=with_samples)
            status = run.header.get("status")
            if status in UNFINISHED_STATUSES:
                # A run that failed or was interrupted after writing results may hold partial or
                # stale numbers: left out of a scan of a results root, kept (with a warning) when named.
                if not explicit:
                    unfinished.append(f"{p.name} ({status})")
                    continue
                log.warning("run %s has status '%s': its results may be partial (rerun the same command to "
                            "finish it)", p.name, status)
            out.append(run)
    if explicit_missing:
        raise InputError("missing summary file(s) (run not finished? rerun the same command to resume): "
                         + ", ".join(str(p) for p in explicit_missing))
    if skipped:
        log.warning("skipping %d run(s) without summary.json: %s", len(skipped),
                    ", ".join(str(p) for p in skipped))
    if unfinished:
        log.warning("skipping %d run(s) that did not finish: %s (name a run to include it anyway)",
                    len(unfinished), ", ".join(unfinished))
    if not out:
        raise InputError("no finished runs: " + "; ".join(
            part for part in (("missing summary file(s) " + ", ".join(str(p) for p in skipped)) if skipped else "",
                              ("unfinished run(s) " + ", ".join(unfinished)) if unfinished else "") if part))
    return out


# ---------------------------------------------------------------------------------------------
# merged view


def _unit_key(row: Mapping[str, Any]) -> tuple:
    return (row["suite"], row["group"], row["checkpoint"], row.get("seed"))


def _unit_name(row: Mapping[str, Any]) -> str:
    """A readable id of a seed unit, unique within a ResultSet."""
    return f"{row['run_id']}/{row['checkpoint']}/seed={row.get('seed')}"


def _normalise(row: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    out = dict(row)
    out["run_id"] = run_id
    out["group"] = row.get("group") or row["checkpoint"]
    out["suite_version"] = None if row.get("suite_version") is None else str(row["suite_version"])
    return out


@dataclass
class GroupData:
    """Everything about one checkpoint group in one suite that the tests need."""

    suite: str
    group: str
    rows: list[dict[str, Any]]
    runs: dict[str, RunData]

    @property
    def suite_versions(self) -> set[str | None]:
        return {r.get("suite_version") for r in self.rows}

    @property
    def n_units(self) -> int:
        return len(self.rows)

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for r in self.rows:
            for k, v in r["metrics"].items():
                if as_number(v) is not None or v is None:
                    names.setdefault(k, None)
        return list(names)

    def seed_values(self, metric: str) -> dict[str, float]:
        """`{unit: value}` of a summary metric over seed units (units without a value left out)."""
        out = {}
        for r in self.rows:
            v = as_number(r["metrics"].get(metric))
            if v is not None:
                out[_unit_name(r)] = v
        return out

    def _records(self, row: Mapping[str, Any]) -> list[SampleRecord]:
        run = self.runs[row["run_id"]]
        index = _sample_index(run)
        return index.get((self.suite, row["checkpoint"], row.get("seed")), [])

    def prompt_ids(self) -> set[str]:
        """Sample ids of every record of this group (failed ones included): its prompt set."""
        return {rec.sample_id for r in self.rows for rec in self._records(r)}

    def sample_scores(self, metric: str) -> dict[str, dict[str, float]]:
        """`{unit: {sample_id: score}}` for units whose records carry `metric`; None scores dropped.

        Empty when no record of the group has the key (the metric is not paired-testable).
        """
        out: dict[str, dict[str, float]] = {}
        for r in self.rows:
            recs = [rec for rec in self._records(r) if metric in rec.scores]
            if not recs:
                continue
            vals = {rec.sample_id: v for rec in recs if (v := as_number(rec.scores[metric])) is not None}
            out[_unit_name(r)] = vals
        return out

    def models(self) -> list[str]:
        """The group's trained models: its distinct checkpoints (each training seed is its own checkpoint)."""
        return list(dict.fromkeys(r["checkpoint"] for r in self.rows))

    def model_values(self, metric: str) -> dict[str, list[float]]:
        """`{checkpoint: [summary value per generation seed]}` (models without a value left out)."""
        out: dict[str, list[float]] = {}
        for r in self.rows:
            v = as_number(r["metrics"].get(metric))
            if v is not None:
                out.setdefault(r["checkpoint"], []).append(v)
        return out

    def top_level_values(self, metric: str) -> tuple[dict[str, float], str]:
        """The independent replicates of the group's mean, and their level.

        With two or more models: each model's mean over its generation seeds (level "model"). With
        one model (a fixed checkpoint such as the base model): its generation seeds (level
        "generation"), whose spread is the sampling noise of that fixed model's mean.
        """
        by_model = self.model_values(metric)
        if len(by_model) >= 2:
            return {m: sum(v) / len(v) for m, v in by_model.items()}, "model"
        return self.seed_values(metric), "generation"

    def unit_records(self) -> dict[str, dict[Any, list[SampleRecord]]]:
        """`{checkpoint: {generation seed: records}}`: the records of each unit, for resamplers."""
        out: dict[str, dict[Any, list[SampleRecord]]] = {}
        for r in self.rows:
            recs = self._records(r)
            if recs:
                out.setdefault(r["checkpoint"], {}).setdefault(r.get("seed"), []).extend(recs)
        return out

    def score_array(self, metric: str, prompt_ids: Sequence[str] | None = None, *,
                    judge_repeats: bool = False) -> ScoreArray | None:
        """Per-sample scores of `metric` as a (models x gen_seeds x prompts) array, NaN = missing.

        Models are checkpoints; a model with fewer generation seeds than another is padded with NaN
        rows. Records with the same (checkpoint, seed, sample_id) but different
        `data["judge_repeat"]` are judge repeats and are averaged (so are exact duplicates); with
        `judge_repeats=True` they are kept on their own axis instead, (models x gen_seeds x
        judge_repeats x prompts), ordered by `judge_repeat`, for `stats.variance_components`.
        A record that holds its repeats itself (`data["judge_repeats"][metric]`, a list of the k
        values whose mean is its score: `evalbench.judge.repeats`) is one value here and k values,
        repeats 0..k-1 (None = NaN), on the judge-repeat axis.
        Columns follow `prompt_ids` (default: the group's sorted sample ids). None when no record
        carries the metric.
        """
        units = self.unit_records()
        cells: dict[tuple[str, Any], dict[str, list[tuple[int, float]]]] = {}
        found = False
        for ckpt, gens in units.items():
            for gen, recs in gens.items():
                scores = cells.setdefault((ckpt, gen), {})
                for rec in recs:
                    if metric not in rec.scores:
                        continue
                    found = True
                    v = as_number(rec.scores[metric])
                    if v is None:
                        continue
                    held = _held_repeats(rec, metric) if judge_repeats else None
                    if held is not None:
                        scores.setdefault(rec.sample_id, []).extend(enumerate(held))
                        continue
                    repeat = rec.data.get("judge_repeat") if isinstance(rec.data, dict) else None
                    scores.setdefault(rec.sample_id, []).append((repeat if isinstance(repeat, int) else 0, v))
        if not found:
            return None
        ids = list(prompt_ids) if prompt_ids is not None else sorted(self.prompt_ids())
        col = {sid: i for i, sid in enumerate(ids)}
        models = [m for m in units if any(cells.get((m, g)) for g in units[m])]
        gens = {m: [g for g in units[m] if cells.get((m, g))] for m in models}
        n_gen = max((len(g) for g in gens.values()), default=0)
        n_rep = max((len(v) for c in cells.values() for v in c.values()), default=1) if judge_repeats else 1
        arr = np.full((len(models), max(n_gen, 1), n_rep, len(ids)), np.nan)
        for i, m in enumerate(models):
            for j, g in enumerate(gens[m]):
                for sid, vals in cells[(m, g)].items():
                    if sid not in col:
                        continue
                    if judge_repeats:
                        for k, (_, v) in enumerate(sorted(vals, key=lambda x: x[0])):
                            arr[i, j, k, col[sid]] = v
                    else:
                        arr[i, j, 0, col[sid]] = sum(v for _, v in vals) / len(vals)
        return ScoreArray(models, gens, ids, arr if judge_repeats else arr[:, :, 0, :])

    def has_samples(self) -> bool:
        return any(self._records(r) for r in self.rows)

    def train_seeds(self) -> list:
        return sorted({r.get("train_seed") for r in self.rows}, key=lambda s: (s is None, str(s)))

    def gen_seeds(self) -> list:
        return sorted({r.get("seed") for r in self.rows}, key=lambda s: (s is None, str(s)))

    def first(self, key: str) -> Any:
        """The first non-null value of a row field (base_model, adapter, method, judge, ...)."""
        for r in self.rows:
            if r.get(key) is not None:
                return r[key]
        return None

    def distinct(self, key: str) -> list:
        vals: dict[Any, None] = {}
        for r in self.rows:
            if r.get(key) is not None:
                vals.setdefault(r[key], None)
        return list(vals)


def _held_repeats(rec: SampleRecord, metric: str) -> list[float] | None:
    """The judge repeats a record holds for `metric` (`data["judge_repeats"]`), None = NaN; None
    when it holds none (or not a list for this metric)."""
    held = rec.data.get("judge_repeats") if isinstance(rec.data, dict) else None
    values = held.get(metric) if isinstance(held, dict) else None
    if not isinstance(values, list) or not values:
        return None
    return [math.nan if (x := as_number(v)) is None else x for v in values]


@dataclass(frozen=True)
class ScoreArray:
    """A group's per-sample scores of one metric: `values[model, gen_seed, prompt]`, NaN = missing
    (`values[model, gen_seed, judge_repeat, prompt]` when asked for judge repeats)."""

    models: list[str]
    gen_seeds: dict[str, list]  # per model, the generation seeds in row order
    prompt_ids: list[str]
    values: np.ndarray

    @property
    def n_gen_seeds(self) -> int:
        """Generation seeds per model (the largest count, when models differ)."""
        return max((len(g) for g in self.gen_seeds.values()), default=0)


def _sample_index(run: RunData) -> dict[tuple, list[SampleRecord]]:
    """(suite, checkpoint, seed) -> records of a run, built once per run."""
    if run._index is None:
        index: dict[tuple, list[SampleRecord]] = {}
        for rec in run.samples():
            index.setdefault((rec.suite, rec.checkpoint, rec.seed), []).append(rec)
        run._index = index
    return run._index


class ResultSet:
    """Summary rows of several runs merged into suite x group views (see module doc for the rules)."""

    def __init__(self, runs: Iterable[RunData]):
        self.runs: dict[str, RunData] = {}
        self.rows: list[dict[str, Any]] = []
        by_unit: dict[tuple, dict[str, Any]] = {}
        for run in runs:
            if run.run_id in self.runs:
                raise InputError(f"run id '{run.run_id}' given twice ({self.runs[run.run_id].path} and {run.path})")
            self.runs[run.run_id] = run
            rows = [_normalise(r, run.run_id) for r in run.results]
            # Decide per (suite, group) of this run: duplicates dropped, conflicts renamed.
            renamed: set[tuple[str, str]] = set()
            for r in rows:
                other = by_unit.get(_unit_key(r))
                if other is not None and other["metrics"] != r["metrics"]:
                    renamed.add((r["suite"], r["group"]))
            for suite, group in sorted(renamed):
                log.warning("group '%s' of suite %s in run %s repeats seeds of an earlier run with different "
                            "results; shown as '%s@%s'", group, suite, run.run_id, group, run.run_id)
            for r in rows:
                if (r["suite"], r["group"]) in renamed:
                    r["group"] = f"{r['group']}@{run.run_id}"
                key = _unit_key(r)
                if key in by_unit:
                    log.debug("unit %s appears in runs %s and %s with identical metrics; counted once",
                              key, by_unit[key]["run_id"], run.run_id)
                    continue
                by_unit[key] = r
                self.rows.append(r)

    def suites(self) -> list[str]:
        return list(dict.fromkeys(r["suite"] for r in self.rows))

    def groups(self, suite: str | None = None) -> list[str]:
        return list(dict.fromkeys(r["group"] for r in self.rows if suite is None or r["suite"] == suite))

    def group(self, suite: str, group: str) -> GroupData | None:
        rows = [r for r in self.rows if r["suite"] == suite and r["group"] == group]
        return GroupData(suite, group, rows, self.runs) if rows else None

    def resolve_group(self, name: str, *, field_name: str = "--baseline") -> str:
        """A group name from a group or checkpoint name; unknown names get a did-you-mean."""
        groups = self.groups()
        if name in groups:
            return name
        by_ckpt = list(dict.fromkeys(r["group"] for r in self.rows if r["checkpoint"] == name))
        if len(by_ckpt) == 1:
            return by_ckpt[0]
        names = groups + list(dict.fromkeys(r["checkpoint"] for r in self.rows))
        raise InputError(f"no checkpoint group '{name}'{did_you_mean(name, names)} "
                         f"(groups: {', '.join(groups)})", field=field_name)

    def metric_columns(self, selectors: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """(suite, metric) columns in order of appearance.

        Default: every numeric metric except bookkeeping counts and per-category breakdowns
        (`category/...`). Selectors are `metric` or `suite:metric`, shell patterns allowed
        (`mtbench:category/*`); a selector that matches nothing is an error.
        """
        available: dict[tuple[str, str], None] = {}
        for r in self.rows:
            for k, v in r["metrics"].items():
                if as_number(v) is not None:
                    available.setdefault((r["suite"], k), None)
        cols = list(available)
        if not selectors:
            return [c for c in cols if not is_bookkeeping(c[1]) and not c[1].startswith("category/")]
        chosen: dict[tuple[str, str], None] = {}
        for sel in selectors:
            suite_pat, sep, metric_pat = sel.partition(":")
            if not sep:
                suite_pat, metric_pat = "*", sel
            hits = [c for c in cols if fnmatchcase(c[0], suite_pat) and fnmatchcase(c[1], metric_pat)]
            if not hits:
                names = sorted({m for _, m in cols})
                raise InputError(f"metric '{sel}' matches nothing{did_you_mean(metric_pat, names)} "
                                 f"(metrics: {', '.join(f'{s}:{m}' for s, m in cols)})", field="--metrics")
            for c in hits:
                chosen.setdefault(c, None)
        return list(chosen)


# ---------------------------------------------------------------------------------------------
# aggregation


def group_summary(by_model: Mapping[str, Sequence[float]], *, conf: float = 0.95, bootstrap_iters: int = 10_000,
                  seed: int = 0):
    """Mean and interval of a group's metric at the right level: `(SeedSummary, n_models, n_gen_seeds, note)`.

    The mean is the mean over models of each model's mean over its generation seeds. With two or
    more models the spread and interval are over the model means (training seeds are the
    replicates; generation seeds are lower-level replicates, never independent models). With one
    model they are over its generation seeds and the note says they show sampling noise only.
    """
    from evalbench.aggregate.stats import seed_summary

    models = {m: list(v) for m, v in by_model.items() if v}
    if not models:
        raise InputError("no values to summarise")
    n_gen = max(len(v) for v in models.values())
    notes = []
    if len(models) >= 2:
        values = [sum(v) / len(v) for v in models.values()]
        if n_gen > 1:
            notes.append(f"generation seeds averaged within each of {len(models)} models")
    else:
        values = next(iter(models.values()))
        if len(values) >= 2:
            notes.append("one trained model: spread over its generation seeds (sampling noise only)")
    s = seed_summary(values, conf=conf, bootstrap_iters=bootstrap_iters, seed=seed)
    note = "; ".join(([s.note] if s.note else []) + notes) or None
    return s, len(models), n_gen, note


def aggregate_results(results: Sequence[Mapping[str, Any]], *, conf: float = 0.95,
                      bootstrap_iters: int = 10_000, seed: int = 0) -> list[dict[str, Any]]:
    """The `aggregate` rows of summary.json: one per suite x group x numeric metric.

    Each row: `suite, group, metric, n` (the replicates of the interval: models with a value when the
    group has two or more checkpoints, else generation seeds; see `group_summary`), `mean` (over
    models of the mean over generation seeds), `std` (ddof=1), `sem`,
    `ci_low/ci_high` (Student t), `boot_low/boot_high` (percentile bootstrap of the mean, seeded),
    `conf`, `train_seeds` and `seeds` (generation seeds) seen, `n_missing` (units whose value is
    null, e.g. a failed judge), `n_models`, `n_gen_seeds` (per model, the most) and `note` (one seed:
    no spread; one model: generation noise only; some units missing). With one seed
    every spread and interval is None, never NaN. Metrics that are never numeric (strings) are
    skipped; a metric that is null in every unit gets `mean = None` and a note.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in results:
        group = row.get("group") or row["checkpoint"]
        groups.setdefault((row["suite"], group), []).append(row)
    out: list[dict[str, Any]] = []
    for (suite, group), rows in groups.items():
        metrics: dict[str, None] = {}
        for r in rows:
            for k, v in r.get("metrics", {}).items():
                if v is None or as_number(v) is not None:
                    metrics.setdefault(k, None)
        for metric in metrics:
            present = [r for r in rows if metric in r.get("metrics", {})]
            values = [v for r in present if (v := as_number(r["metrics"][metric])) is not None]
            n_missing = len(present) - len(values)
            base = {"suite": suite, "group": group, "metric": metric, "conf": conf,
                    "train_seeds": sorted({r.get("train_seed") for r in present}, key=lambda s: (s is None, str(s))),
                    "seeds": sorted({r.get("seed") for r in present}, key=lambda s: (s is None, str(s))),
                    "n_missing": n_missing}
            if not values:
                out.append({**{f: None for f in AGGREGATE_FIELDS}, **base, "n": 0,
                            "note": "no valid value in any seed"})
                continue
            by_model: dict[str, list[float]] = {}
            for r in present:
                if (v := as_number(r["metrics"][metric])) is not None:
                    by_model.setdefault(r["checkpoint"], []).append(v)
            s, n_models, n_gen, note = group_summary(by_model, conf=conf, bootstrap_iters=bootstrap_iters, seed=seed)
            notes = [note] if note else []
            if n_missing:
                notes.append(f"{n_missing} of {len(present)} seed(s) have no value")
            out.append({**base, "n": s.n, "mean": s.mean, "std": s.std, "sem": s.sem, "ci_low": s.ci_low,
                        "ci_high": s.ci_high, "boot_low": s.boot_low, "boot_high": s.boot_high,
                        "n_models": n_models, "n_gen_seeds": n_gen, "note": "; ".join(notes) or None})
    return [{f: row.get(f) for f in AGGREGATE_FIELDS} for row in out]


def aggregate_run(run: str | Path | Run | RunData, results: Sequence[Mapping[str, Any]] | None = None, *,
                  conf: float = 0.95, bootstrap_iters: int = 10_000, seed: int = 0,
                  write: bool = False) -> list[dict[str, Any]]:
    """Across-seed aggregate rows of one run (see `aggregate_results`).

    Args:
        run: the run (directory, `Run` handle or loaded `RunData`).
        results: the summary rows; default: `summary.json["results"]` of the run.
        write: also store the rows as `summary.json["aggregate"]` (keeping everything else).

    `evalbench run` calls this after writing its per-seed rows.
    """
    if isinstance(run, RunData):
        path, summary = run.path, run.summary
    else:
        path = run.path if isinstance(run, Run) else Path(run)
        summary = Run(path).summary() if (results is None or write) else {}
    if results is None:
        results = _validate_rows(summary.get("results", []), path / "summary.json")
    rows = aggregate_results(results, conf=conf, bootstrap_iters=bootstrap_iters, seed=seed)
    if write:
        kept = {k: v for k, v in summary.items() if k not in ("schema_version", "run_id", "aggregate")}
        Run(path).write_summary({**kept, "aggregate": rows})
    return rows


__all__ = [
    "AGGREGATE_FIELDS",
    "BOOKKEEPING_METRICS",
    "GroupData",
    "ResultSet",
    "RunData",
    "ScoreArray",
    "aggregate_results",
    "aggregate_run",
    "as_number",
    "group_summary",
    "is_bookkeeping",
    "load_run",
    "load_runs",
]
