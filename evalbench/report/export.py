"""Leaderboard CSV export: one row per checkpoint group, plus an AlpacaEval-compatible leaderboard.

`results/leaderboard.csv` (`export_leaderboard`): the fixed identity columns `LEADERBOARD_COLUMNS`
first, in that order, then for every (suite, metric) column, in order of appearance, the fields
`METRIC_FIELDS` named `<suite>.<metric>.<field>`; `n_samples` / `n_failed` count the group's samples and
the failed ones left out of every metric (summed over suites, checkpoints and seeds) (e.g. `alpaca.win_rate.mean`). Mean, std and the
Student-t interval are over models (checkpoints; generation seeds averaged within each, see
docs/statistics.md); `delta`, `p_value`, `p_adjusted`, `significant`, `test`, the CI of the
difference, `mde` (80 % power), `n_models` and `n_prompts` compare the group with `--baseline`
exactly as `evalbench compare` does (the hierarchical test over training seeds and prompts, else
Welch on model means; Holm-corrected over the whole family by default). Without a baseline those columns are empty. List-valued cells
(seeds, run ids, several adapters of one group) are joined with ';'.

The AlpacaEval CSV (`export_alpaca_leaderboard`) has exactly the columns of alpaca_eval's
published leaderboards (`ALPACA_LEADERBOARD_COLUMNS`: an unnamed index holding the model name,
then win_rate ... lc_standard_error), sorted by length-controlled win rate like alpaca_eval's own
`leaderboard.csv`, so it can be read back with `pandas.read_csv(path, index_col=0)` or merged into
a published leaderboard file. With several seeds a group's value is the mean over seeds (counts
rounded to integers, `avg_length` truncated to an integer as the leaderboard does).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalbench import __version__
from evalbench.aggregate.summarize import ResultSet, RunData, as_number
from evalbench.errors import InputError
from evalbench.io import write_text_atomic

log = logging.getLogger(__name__)

LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "group", "model", "adapter", "adapter_sha256", "method", "n_seeds", "train_seeds", "seeds", "judge",
    "self_judged", "suites", "avg_length", "baseline", "run_ids", "spec_hash", "evalbench_version", "n_samples", "n_failed")
METRIC_FIELDS: tuple[str, ...] = (
    "mean", "std", "ci_low", "ci_high", "n", "delta", "p_value", "p_adjusted", "significant",
    "test", "delta_ci_low", "delta_ci_high", "mde", "n_models", "n_prompts")

# alpaca_eval's leaderboard CSV (src/alpaca_eval/leaderboards/data_AlpacaEval_2/*.csv): the first
# column is the unnamed pandas index holding the model name.
ALPACA_LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "", "win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate",
    "mode", "avg_length", "length_controlled_winrate", "lc_standard_error")
_ALPACA_COUNTS = ("n_wins", "n_wins_base", "n_draws", "n_total")
ALPACA_SUITE = "alpaca"


def _join(values: Sequence[Any]) -> str | None:
    vals = [str(v) for v in values if v is not None]
    return ";".join(vals) if vals else None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return _join(value) or ""
    return value


def leaderboard_rows(runs: Sequence[RunData] | ResultSet, *, baseline: str | None = None,
                     metrics: Sequence[str] | None = None, correction: str = "holm", alpha: float = 0.05,
                     iters: int = 10_000, seed: int = 0) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows) of the leaderboard; see the module doc for the columns."""
    from evalbench.aggregate.compare import compare_runs

    rs = runs if isinstance(runs, ResultSet) else ResultSet(runs)
    comp = compare_runs(rs, baseline=baseline, metrics=metrics, correction=correction, alpha=alpha,
                        iters=iters, seed=seed, all_tests=False, run_tests=baseline is not None)
    columns = list(LEADERBOARD_COLUMNS) + [f"{s}.{m}.{f}" for s, m in comp.columns for f in METRIC_FIELDS]
    rows = []
    for group in comp.groups:
        grows = [r for r in rs.rows if r["group"] == group]
        run_ids = list(dict.fromkeys(r["run_id"] for r in grows))
        versions = list(dict.fromkeys((rs.runs[i].header.get("versions") or {}).get("evalbench") or __version__
                                      for i in run_ids))
        # Seed units per suite; a group evaluated on several suites has the same units in each.
        n_units = max(len({(r["checkpoint"], r.get("train_seed"), r.get("seed")) for r in grows if r["suite"] == s})
                      for s in {r["suite"] for r in grows})

        def distinct(key: str, grows: list = grows) -> list:
            return list(dict.fromkeys(r.get(key) for r in grows if r.get(key) is not None))

        avg_length = None
        for suite in [ALPACA_SUITE, *rs.suites()]:
            cell = comp.cells.get((group, suite, "avg_length"))
            if cell is None:
                gd = rs.group(suite, group)
                vals = list(gd.seed_values("avg_length").values()) if gd else []
                if vals:
                    avg_length = sum(vals) / len(vals)
                    break
            else:
                avg_length = cell.mean
                break
        row: dict[str, Any] = {
            "group": group, "model": _join(distinct("base_model")), "adapter": _join(distinct("adapter")),
            "adapter_sha256": _join(distinct("adapter_sha256")), "method": _join(distinct("method")),
            "n_seeds": n_units,
            "train_seeds": sorted({r.get("train_seed") for r in grows if r.get("train_seed") is not None}),
            "seeds": sorted({r.get("seed") for r in grows if r.get("seed") is not None}),
            "judge": _join(distinct("judge")),
            # true when any judged row of the group was judged by the policy's own base model
            "self_judged": (any(r.get("self_judged") for r in grows)
                            if any(r.get("self_judged") is not None for r in grows) else None),
            "suites": list(dict.fromkeys(r["suite"] for r in grows)),
            "avg_length": avg_length, "baseline": comp.baseline if baseline is not None else None,
            "run_ids": run_ids,
            "spec_hash": _join(list(dict.fromkeys(rs.runs[i].spec_hash for i in run_ids))),
            "evalbench_version": _join(versions),
            # Failed items are left out of every metric: the count says how much each one rests on
            # (issue 15), summed over the group's suites, checkpoints and seeds.
            "n_samples": sum(int(r.get("n_samples") or 0) for r in grows),
            "n_failed": sum(int(r.get("n_failed") or 0) for r in grows)}
        for s, m in comp.columns:
            cell = comp.cells.get((group, s, m))
            o = comp.outcomes.get((group, s, m))
            vals = {"mean": None if cell is None else cell.mean, "std": None if cell is None else cell.std,
                    "ci_low": None if cell is None else cell.ci_low, "ci_high": None if cell is None else cell.ci_high,
                    "n": None if cell is None else cell.n,
                    "delta": None if o is None else o.delta, "p_value": None if o is None else o.p_value,
                    "p_adjusted": None if o is None else o.p_adjusted,
                    "significant": None if o is None else o.significant,
                    "test": None if o is None else o.test,
                    "delta_ci_low": None if o is None else o.delta_ci_low,
                    "delta_ci_high": None if o is None else o.delta_ci_high,
                    "mde": None if o is None else o.mde, "n_models": None if o is None else o.n_models,
                    "n_prompts": None if o is None else o.n_prompts}
            for f in METRIC_FIELDS:
                row[f"{s}.{m}.{f}"] = vals[f]
        rows.append({c: row.get(c) for c in columns})
    return columns, rows


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def export_leaderboard(runs: Sequence[RunData] | ResultSet, out: str | Path, *, baseline: str | None = None,
                       metrics: Sequence[str] | None = None, correction: str = "holm", alpha: float = 0.05,
                       iters: int = 10_000, seed: int = 0, alpaca_out: str | Path | None = None,
                       alpaca_mode: str = "community", alpaca_merge: str | Path | None = None,
                       fmt: str | None = None) -> list[Path]:
    """Write the leaderboard CSV (and the AlpacaEval CSV when `alpaca_out` is given); returns the paths.

    `fmt` "latex" (or an `out` ending in .tex) writes a booktabs table of mean (std) per metric
    instead of the CSV (`evalbench.aggregate.latex`).

    Args:
        runs: loaded runs or a merged ResultSet.
        out: the leaderboard CSV path (written atomically).
        baseline: group or checkpoint to test every group against (empty significance columns if None).
        metrics: metric selectors as in `evalbench compare`.
        alpaca_out, alpaca_mode, alpaca_merge: see `export_alpaca_leaderboard`.
    """
    rs = runs if isinstance(runs, ResultSet) else ResultSet(runs)
    columns, rows = leaderboard_rows(rs, baseline=baseline, metrics=metrics, correction=correction, alpha=alpha,
                                     iters=iters, seed=seed)
    if (fmt or ("latex" if Path(out).suffix.lower() == ".tex" else "csv")) == "latex":
        from evalbench.aggregate.latex import leaderboard_to_latex

        metrics_shown = list(dict.fromkeys(c.rsplit(".", 1)[0] for c in columns if c.endswith(".mean")))
        write_text_atomic(out, leaderboard_to_latex(columns, rows, metrics_shown))
    else:
        write_text_atomic(out, _csv_text(columns, rows))
    written = [Path(out)]
    if alpaca_out is not None:
        written.append(export_alpaca_leaderboard(rs, alpaca_out, mode=alpaca_mode, merge=alpaca_merge))
    return written


def alpaca_leaderboard_rows(rs: ResultSet, *, mode: str = "community") -> list[dict[str, Any]]:
    """AlpacaEval leaderboard rows (keys: ALPACA_LEADERBOARD_COLUMNS, '' = model name) of the alpaca suite."""
    if ALPACA_SUITE not in rs.suites():
        raise InputError(f"no '{ALPACA_SUITE}' results in the runs (suites: {', '.join(rs.suites())}); "
                         "the AlpacaEval leaderboard needs them")
    out = []
    for group in rs.groups(ALPACA_SUITE):
        gd = rs.group(ALPACA_SUITE, group)
        assert gd is not None
        row: dict[str, Any] = {"": group, "mode": mode}
        for col in ALPACA_LEADERBOARD_COLUMNS[1:]:
            if col == "mode":
                continue
            vals = list(gd.seed_values(col).values())
            if not vals:
                row[col] = None
                continue
            mean = sum(vals) / len(vals)
            if col in _ALPACA_COUNTS:
                row[col] = round(mean)
            elif col == "avg_length":
                row[col] = math.floor(mean)  # the published leaderboard truncates
            else:
                row[col] = mean
        if row.get("win_rate") is None:
            log.warning("alpaca group '%s' has no win_rate; left out of the AlpacaEval leaderboard", group)
            continue
        out.append(row)
    return out


def _float(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return as_number(value)


def _sort_key(row: dict[str, Any]) -> tuple:
    lc = _float(row.get("length_controlled_winrate"))
    wr = _float(row.get("win_rate"))
    return (lc is None, -(lc or 0.0), -(wr or 0.0))


def export_alpaca_leaderboard(runs: Sequence[RunData] | ResultSet, out: str | Path, *, mode: str = "community",
                              merge: str | Path | None = None) -> Path:
    """Write an AlpacaEval-compatible leaderboard CSV of the alpaca suite's groups.

    Args:
        mode: the leaderboard's `mode` column for our rows (alpaca_eval uses minimal / verified /
            community / dev).
        merge: a published leaderboard CSV to merge with (its rows are kept verbatim; ours replace
            rows of the same name); the result is sorted by length-controlled win rate.

    Raises:
        InputError: no alpaca results; the merge file's columns differ from the expected ones.
    """
    rs = runs if isinstance(runs, ResultSet) else ResultSet(runs)
    rows = alpaca_leaderboard_rows(rs, mode=mode)
    ours = {r[""] for r in rows}
    if merge is not None:
        merge = Path(merge)
        if not merge.exists():
            raise InputError("file not found", path=merge, field="--alpaca-merge")
        with open(merge, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            if tuple(header) != ALPACA_LEADERBOARD_COLUMNS:
                raise InputError(f"not an AlpacaEval leaderboard: columns {header} (expected "
                                 f"{list(ALPACA_LEADERBOARD_COLUMNS)})", path=merge, line=1)
            for lineno, values in enumerate(reader, start=2):
                if not values:
                    continue
                if len(values) != len(header):
                    raise InputError(f"expected {len(header)} fields, got {len(values)}", path=merge, line=lineno)
                row = dict(zip(header, values))  # kept verbatim (strings)
                if row[""] not in ours:
                    rows.append(row)
    rows.sort(key=_sort_key)
    write_text_atomic(out, _csv_text(ALPACA_LEADERBOARD_COLUMNS, rows))
    return Path(out)


__all__ = ["ALPACA_LEADERBOARD_COLUMNS", "LEADERBOARD_COLUMNS", "METRIC_FIELDS", "alpaca_leaderboard_rows",
           "export_alpaca_leaderboard", "export_leaderboard", "leaderboard_rows"]
