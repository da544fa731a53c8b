"""`evalbench report`: a Markdown + HTML report with PNG plots for one or more finished runs.

Sections (each skipped, with a note, when the runs lack its data):

1. runs: id, status, created, spec hash, git commit;
2. comparison table (`evalbench.aggregate.compare`): mean (std) per group, difference vs the
   baseline, underlined when the corrected p-value is below alpha; then the variance components
   (training seed, generation, judge, prompt, residual) of each metric with per-sample scores;
3. bars with t-intervals over seeds, one panel per metric, one figure per suite;
4. AlpacaEval length vs win rate (avg_length against win_rate and the LC win rate);
5. distributions of per-sample scores (histograms for few-level scores, else ECDFs), one figure
   per metric with per-sample scores;
6. MT-bench radar of the `category/<name>` metrics;
7. reward against diversity (reward suite): one point per group with intervals on both axes;
8. training curves from `metrics.jsonl` files found in the adapter directories;
9. side-by-side outputs of a few prompts per suite (`evalbench.report.side_by_side`), those where
   the checkpoints' scores differ most.

Images are PNG files next to `report.md` (linked relatively) and embedded in `report.html` as data
URIs, so the HTML file alone is the whole report; `formats` adds PDF / SVG copies of every plot
for papers. Every figure gives a group the same colour (`plots.group_colors`). The HTML page is
responsive: wide tables scroll inside their own box, images shrink to the page width.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.aggregate.compare import Comparison, compare_runs, to_html, to_markdown
from evalbench.aggregate.summarize import ResultSet, RunData
from evalbench.io import read_jsonl_tolerant, write_text_atomic
from evalbench.report import plots
from evalbench.units import clip_interval, unit_of

log = logging.getLogger(__name__)

CATEGORY_PREFIX = "category/"
MTBENCH_SUITE = "mtbench"
ALPACA_SUITE = "alpaca"


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Section:
    title: str
    md: str = ""
    html: str = ""
    images: list[tuple[Path, str]] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _runs_section(rs: ResultSet) -> _Section:
    head = ["run", "status", "created", "spec hash", "git"]
    rows = []
    for run in rs.runs.values():
        h = run.header
        git = h.get("git") or {}
        sha = (git.get("sha") or "")[:10] + ("+dirty" if git.get("dirty") else "") if git else ""
        rows.append([run.run_id, str(h.get("status", "")), str(h.get("created_at", "")),
                     (run.spec_hash or "")[:12], sha])
    md = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join(
        "| " + " | ".join(r) + " |\n" for r in rows)
    e = html.escape
    ht = ("<table><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in head) + "</tr></thead><tbody>"
          + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</tbody></table>")
    return _Section("Runs", md, ht)


class _Plotter:
    """Draws each figure as PNG (for the page) and again in every extra format asked for."""

    def __init__(self, rs: ResultSet, formats: Sequence[str]):
        unknown = [f for f in formats if f not in plots.FORMATS]
        if unknown:
            from evalbench.errors import InputError

            raise InputError(f"unknown plot format(s) {unknown} (known: {', '.join(plots.FORMATS)})",
                             field="--format")
        self.colors = plots.group_colors(rs.groups())
        self.extra = [f for f in dict.fromkeys(formats) if f != "png"]
        self.copies: list[Path] = []

    def __call__(self, draw, path: Path, *args, **kwargs) -> Path | None:
        png = draw(*args, path.with_suffix(".png"), **kwargs)
        if png is not None:
            for fmt in self.extra:
                self.copies.append(draw(*args, path.with_suffix(f".{fmt}"), **kwargs))
        return png


VARIANCE_COMPONENTS = (("var_train_seed", "training seed"), ("var_generation", "generation"),
                       ("var_judge", "judge"), ("var_prompt", "prompt"), ("var_residual", "residual"))


def variance_tables(comp: Comparison) -> list[tuple[str, str, list[tuple[str, list[float | None]]]]]:
    """`[(suite, metric, [(group, [component, ...]), ...]), ...]`: the variance components of every
    cell that has any (plain-mean metrics with per-sample scores), baseline first, in
    `VARIANCE_COMPONENTS` order; None where the data lack that level. Pure."""
    out = []
    groups = [comp.baseline] + [g for g in comp.groups if g != comp.baseline]
    for suite, metric in comp.columns:
        rows = []
        for g in groups:
            cell = comp.cells.get((g, suite, metric))
            values = [getattr(cell, key, None) for key, _ in VARIANCE_COMPONENTS] if cell is not None else []
            if any(v is not None for v in values):
                rows.append((g, values))
        if rows:
            out.append((suite, metric, rows))
    return out


def _variance_section(comp: Comparison) -> _Section | None:
    """'Variance components': one small table per suite/metric (docs/statistics.md)."""
    tables = variance_tables(comp)
    if not tables:
        return None
    head = ["group", *(label for _, label in VARIANCE_COMPONENTS)]
    note = ("Variances of the per-sample scores by level (ANOVA estimates, docs/statistics.md): training seed "
            "(between models), generation (between generation seeds of a model), judge (between re-judgings "
            "of the same output, `--judge-repeats`), prompt, residual (model x prompt). '–': the data have no "
            "such level.")
    md, ht = [f"_{note}_", ""], [f"<p><em>{html.escape(note)}</em></p>"]

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.3g}"

    for suite, metric, rows in tables:
        md += [f"**{suite} / {metric}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        md += ["| " + " | ".join([g, *map(fmt, vals)]) + " |" for g, vals in rows] + [""]
        e = html.escape
        ht.append(f"<p><strong>{e(suite)} / {e(metric)}</strong></p><table><thead><tr>"
                  + "".join(f"<th>{e(c)}</th>" for c in head) + "</tr></thead><tbody>"
                  + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in [g, *map(fmt, vals)]) + "</tr>"
                            for g, vals in rows) + "</tbody></table>")
    return _Section("Variance components", "\n".join(md), "".join(ht))


def _bars(rs: ResultSet, comp: Comparison, out: Path, plot: _Plotter) -> _Section:
    sec = _Section("Metrics with 95 % intervals over seeds" if comp.conf == 0.95
                   else f"Metrics with {comp.conf:.0%} intervals over seeds")
    for suite in rs.suites():
        panels = []
        for s, m in comp.columns:
            if s != suite:
                continue
            bars = []
            for g in comp.groups:
                cell = comp.cells.get((g, s, m))
                if cell is None:
                    continue
                o = comp.outcomes.get((g, s, m))
                bars.append((g, cell.mean, cell.ci_low, cell.ci_high, bool(o and o.significant)))
            panels.append((m, bars))
        path = plot(plots.bar_chart, out / f"bars_{_slug(suite)}.png", panels, title=suite, colors=plot.colors)
        if path:
            sec.images.append((path, (f"{suite}: mean over seeds with its t-interval, cut at the metric's "
                                     f"natural bounds; * = significant vs '{comp.baseline}'")))
    if not sec.images:
        sec.md = "_No numeric metrics to plot._"
    return sec


def _length_section(rs: ResultSet, out: Path, plot: _Plotter) -> _Section | None:
    if ALPACA_SUITE not in rs.suites():
        return None
    from evalbench.aggregate.stats import seed_summary

    points = []
    for g in rs.groups(ALPACA_SUITE):
        gd = rs.group(ALPACA_SUITE, g)
        p: dict[str, Any] = {"group": g}
        for key in ("avg_length", "win_rate", "length_controlled_winrate"):
            vals = list(gd.seed_values(key).values())
            if not vals:
                p[key] = None
                continue
            s = seed_summary(vals, bootstrap_iters=200)
            p[key] = s.mean
            p[f"{key}_low"], p[f"{key}_high"] = clip_interval(key, s.ci_low, s.ci_high)
        points.append(p)
    sec = _Section("AlpacaEval: length vs win rate")
    path = plot(plots.length_vs_winrate, out / "alpaca_length_vs_winrate.png", points)
    if path:
        sec.images.append((path, ("average output length (characters) against win rate and LC win rate; "
                                 "a win rate that rises with length but an LC win rate that does not "
                                 "points to length gaming")))
    else:
        sec.md = "_The alpaca results have no avg_length / win_rate metrics._"
    return sec


def _distributions(rs: ResultSet, comp: Comparison, out: Path, limit: int, plot: _Plotter) -> _Section:
    sec = _Section("Per-sample score distributions")
    done = 0
    skipped = 0
    for s, m in comp.columns:
        dists = {}
        for g in comp.groups:
            gd = rs.group(s, g)
            if gd is None:
                continue
            vals = [v for unit in gd.sample_scores(m).values() for v in unit.values()]
            if vals:
                dists[g] = vals
        if not dists:
            continue
        if done >= limit:
            skipped += 1
            continue
        path = plot(plots.score_distributions, out / f"dist_{_slug(s)}_{_slug(m)}.png", dists, title=f"{s}: {m}",
                    xlabel=unit_of(m).label, colors=plot.colors)
        if path:
            done += 1
            kind = ("histogram" if plots.is_discrete(np.concatenate([np.asarray(v, dtype=float)
                                                                    for v in dists.values()])) else "ECDF")
            sec.images.append((path, f"{s}/{m}: {kind} of per-sample scores, all seeds pooled"))
    if not sec.images:
        sec.md = "_No per-sample scores in the runs (samples.jsonl)._"
    elif skipped:
        sec.md = f"_{skipped} more metric(s) not plotted (limit {limit})._"
    return sec


def _radar_section(rs: ResultSet, out: Path, plot: _Plotter) -> _Section | None:
    if MTBENCH_SUITE not in rs.suites():
        return None
    sec = _Section("MT-bench by category")
    values: dict[str, dict[str, float]] = {}
    for g in rs.groups():  # global group order: the same colours as in the other figures
        gd = rs.group(MTBENCH_SUITE, g)
        if gd is None:
            continue
        cats = {}
        for m in gd.metric_names():
            if m.startswith(CATEGORY_PREFIX):
                vals = list(gd.seed_values(m).values())
                if vals:
                    cats[m[len(CATEGORY_PREFIX):]] = sum(vals) / len(vals)
        if cats:
            values[g] = cats
    path = plot(plots.radar, out / "mtbench_radar.png", values, colors=plot.colors) if values else None
    if path:
        sec.images.append((path, "mean single-answer grade per category over seeds"))
    else:
        sec.md = (f"_No per-category MT-bench metrics (`{CATEGORY_PREFIX}<name>`, at least 3 shared by every "
                  "checkpoint) in the runs; radar skipped._")
    return sec


REWARD_SUITE = "reward"
DIVERSITY_SUITE = "diversity"
# The frontier's default x axis: the first of these the runs have (reward suite first, then diversity).
FRONTIER_DIVERSITY: tuple[str, ...] = ("entropy", "pid_diversity", "distinct_2", "distinct_1")


def reward_metric_of(rs: ResultSet) -> str | None:
    """The reward suite's reward metric: a registered reward key (`evalbench.score.rewards`), else
    the first metric of the suite that is neither a diversity metric nor bookkeeping."""
    from evalbench.aggregate.summarize import is_bookkeeping
    from evalbench.score.rewards import REWARD_METRICS

    names: dict[str, None] = {}
    for g in rs.groups(REWARD_SUITE):
        gd = rs.group(REWARD_SUITE, g)
        names.update(dict.fromkeys(gd.metric_names() if gd is not None else []))
    for m in names:
        if m in REWARD_METRICS:
            return m
    diversity = re.compile(r"^(entropy|entropy_per_token|self_bleu|distinct_\d+|.*_(similarity|diversity))$")
    return next((m for m in names if not is_bookkeeping(m) and not diversity.match(m)), None)


def resolve_diversity(rs: ResultSet, choice: str | None) -> tuple[str, str] | None:
    """(suite, metric) of the frontier's x axis: `choice` as `metric` or `suite:metric`, else the
    first of FRONTIER_DIVERSITY found; a metric is looked up in the reward suite (same samples as
    the reward) before the diversity suite. None when the runs have none."""
    def has(suite: str, metric: str) -> bool:
        return any(gd is not None and metric in gd.metric_names() for gd in (rs.group(suite, g) for g in rs.groups(suite)))

    if choice and ":" in choice:
        suite, _, metric = choice.partition(":")
        return (suite, metric) if has(suite, metric) else None
    for metric in ([choice] if choice else list(FRONTIER_DIVERSITY)):
        for suite in (REWARD_SUITE, DIVERSITY_SUITE):
            if has(suite, metric):
                return suite, metric
    return None


def frontier_points(rs: ResultSet, reward: tuple[str, str], diversity: tuple[str, str], *, conf: float = 0.95,
                    iters: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """One point per group having both metrics: model-level means and intervals (as `compare`'s
    cells: over training-seed models when a group has two or more, else over generation seeds),
    cut at the metrics' natural bounds; `label` = the group's training method when it differs."""
    from evalbench.aggregate.summarize import group_summary

    points = []
    for g in rs.groups():
        p: dict[str, Any] = {"group": g}
        for axis, (suite, metric) in (("x", diversity), ("y", reward)):
            gd = rs.group(suite, g)
            by_model = gd.model_values(metric) if gd is not None else {}
            if not by_model:
                break
            summary, _, _, _ = group_summary(by_model, conf=conf, bootstrap_iters=iters, seed=seed)
            p[axis] = summary.mean
            p[f"{axis}_low"], p[f"{axis}_high"] = clip_interval(metric, summary.ci_low, summary.ci_high)
            p["n"] = summary.n
            methods = gd.distinct("method")
            if methods and str(methods[0]) != g:
                p["label"] = f"{g} ({', '.join(map(str, methods))})"
        else:
            points.append(p)
    return points


def _frontier_section(rs: ResultSet, out: Path, plot: _Plotter, diversity: str | None, conf: float) -> _Section | None:
    if REWARD_SUITE not in rs.suites():
        return None
    sec = _Section("Reward vs diversity")
    metric = reward_metric_of(rs)
    div = resolve_diversity(rs, diversity)
    if metric is None or div is None:
        sec.md = (f"_No {'reward metric' if metric is None else 'diversity metric ' + repr(diversity or '')} in the "
                  "runs; frontier skipped (diversity: " + ", ".join(FRONTIER_DIVERSITY) + " or suite:metric)._")
        return sec
    points = frontier_points(rs, (REWARD_SUITE, metric), div, conf=conf)
    path = plot(plots.reward_diversity_frontier, out / f"frontier_{_slug(metric)}_{_slug(div[1])}.png", points,
                reward_metric=metric, diversity_metric=div[1], colors=plot.colors)
    if path:
        sec.images.append((path, (f"{REWARD_SUITE}/{metric} against {div[0]}/{div[1]}: one point per checkpoint group "
                                  f"(mean over models and seeds) with {conf:.0%} intervals on both axes; dashed: "
                                  "the non-dominated groups")))
    else:
        sec.md = "_No group has both a reward and a diversity value._"
    return sec


# Columns of a side-by-side table in the report; `evalbench show` lists every checkpoint.
MAX_SIDE_BY_SIDE_COLUMNS = 6


def representative_checkpoints(rs: ResultSet, run_id: str, suite: str, available: set[str],
                               limit: int = MAX_SIDE_BY_SIDE_COLUMNS) -> list[str]:
    """One checkpoint per group (its first training seed by name), in the report's group order, at
    most `limit`: several seeds of one method side by side say less than one of each method."""
    by_group: dict[str, set[str]] = {}
    for r in rs.rows:
        if r["run_id"] == run_id and r["suite"] == suite and r["checkpoint"] in available:
            by_group.setdefault(r["group"], set()).add(r["checkpoint"])
    order = [g for g in rs.groups() if g in by_group] + [g for g in by_group if g not in rs.groups()]
    return [min(by_group[g]) for g in dict.fromkeys(order)][:limit]


def _side_by_side_section(rs: ResultSet, n_prompts: int) -> _Section | None:
    """A few prompts per run and suite, checkpoints side by side (those whose scores differ most)."""
    from evalbench.report.side_by_side import side_by_side
    from evalbench.report.side_by_side import to_html as sbs_html
    from evalbench.report.side_by_side import to_markdown as sbs_markdown
    from evalbench.store import Run

    if n_prompts <= 0:
        return None
    sec = _Section("Side-by-side outputs (sample)")
    md, ht = [], []
    for run in rs.runs.values():
        try:
            gens = Run(run.path).generations()
        except Exception as exc:  # noqa: BLE001 - an unreadable generations file must not sink the report
            log.warning("report: no side-by-side for %s: %s", run.run_id, exc)
            continue
        samples = run.samples()
        for suite in dict.fromkeys(g.suite for g in gens):
            have = {g.checkpoint for g in gens if g.suite == suite}
            shown = representative_checkpoints(rs, run.run_id, suite, have)
            sbs = side_by_side(gens, samples, suite=suite, checkpoints=shown or None, prompts=n_prompts,
                               disagree=True)
            if not sbs.rows:
                continue
            heading = f"{run.run_id} / {suite}" if len(rs.runs) > 1 else suite
            md += [f"### {heading}", "", sbs_markdown(sbs, max_chars=400), ""]
            ht += [f"<h3>{html.escape(heading)}</h3>", sbs_html(sbs, max_chars=800)]
    if not md:
        return None
    sec.md = ("_One checkpoint per group; prompts where their scores differ most; every checkpoint: "
              "`evalbench show RUN`._\n\n"
              + "\n".join(md))
    sec.html = ("<p><em>One checkpoint per group; prompts where their scores differ most; every checkpoint: "
                "<code>evalbench show RUN</code>.</em></p>" + "\n".join(ht))
    return sec


def _adapter_dirs(rs: ResultSet, group: str) -> list[tuple[str, Path]]:
    out: dict[Path, str] = {}
    for r in rs.rows:
        if r["group"] != group or not r.get("adapter"):
            continue
        p = Path(r["adapter"])
        candidates = [p] if p.is_absolute() else [p, rs.runs[r["run_id"]].path / p]
        for c in candidates:
            if (c / "metrics.jsonl").exists():
                label = r["checkpoint"] + (f" (train seed {r['train_seed']})" if r.get("train_seed") is not None
                                           and str(r["train_seed"]) not in r["checkpoint"] else "")
                out.setdefault(c.resolve(), label)
                break
    return [(label, path) for path, label in out.items()]


def _training_section(rs: ResultSet, out: Path, plot: _Plotter) -> _Section | None:
    sec = _Section("Training curves")
    for g in rs.groups():
        curves = {}
        for label, path in _adapter_dirs(rs, g):
            rows = [r for r in read_jsonl_tolerant(path / "metrics.jsonl") if isinstance(r, dict)]
            if rows:
                curves[label] = rows
        if not curves:
            continue
        path = plot(plots.training_curves, out / f"training_{_slug(g)}.png", curves, title=g)
        if path:
            sec.images.append((path, f"{g}: per-step training metrics from the adapters' metrics.jsonl"))
    return sec if sec.images else None


_CSS = """*{box-sizing:border-box}body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;overflow-wrap:anywhere}
.table-wrap{max-width:100%;overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{overflow-wrap:normal}th:first-child,td:first-child{text-align:left}
figure{margin:1em 0;max-width:100%}img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
pre{max-width:100%;overflow-x:auto}figcaption{font-size:13px;color:#555}code{background:#f4f4f4;padding:0 3px}"""


def build_report(runs: Sequence[RunData] | ResultSet, out_dir: str | Path, *, baseline: str | None = None,
                 metrics: Sequence[str] | None = None, test: str = "auto", correction: str = "holm",
                 alpha: float = 0.05, conf: float = 0.95, iters: int = 10_000, seed: int = 0,
                 title: str = "evalbench report", max_distributions: int = 12,
                 formats: Sequence[str] = ("png",), frontier_diversity: str | None = None,
                 side_by_side_prompts: int = 3) -> ReportFiles:
    """Write `report.md`, `report.html` and PNG plots into `out_dir`; returns their paths.

    Options as in `compare_runs`; `max_distributions` caps the per-sample distribution figures;
    `formats` adds copies of every plot as PDF / SVG (`plots.FORMATS`); `frontier_diversity` is the
    x axis of the reward-vs-diversity frontier (`entropy`, `pid_diversity`, `distinct_2`, ... or
    `suite:metric`; default: the first of `FRONTIER_DIVERSITY` the runs have); `side_by_side_prompts`
    prompts per run and suite are shown side by side across checkpoints (0: none).
    """
    from evalbench import __version__, progress

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rs = runs if isinstance(runs, ResultSet) else ResultSet(runs)
    comp = compare_runs(rs, baseline=baseline, metrics=metrics, test=test, correction=correction, alpha=alpha,
                        conf=conf, iters=iters, seed=seed)
    sections: list[_Section] = [_runs_section(rs)]
    sections.append(_Section(f"Comparison with '{comp.baseline}'", to_markdown(comp), to_html(comp)))
    variance = _variance_section(comp)
    if variance is not None:
        sections.append(variance)
    plot = _Plotter(rs, formats)
    builders = [lambda: _bars(rs, comp, out, plot), lambda: _length_section(rs, out, plot),
                lambda: _distributions(rs, comp, out, max_distributions, plot), lambda: _radar_section(rs, out, plot),
                lambda: _frontier_section(rs, out, plot, frontier_diversity, conf),
                lambda: _training_section(rs, out, plot), lambda: _side_by_side_section(rs, side_by_side_prompts)]
    with progress.track("report plots", total=len(builders)) as bar:
        for build in builders:
            sec = build()
            if sec is not None:
                sections.append(sec)
            bar.advance()
    notes = list(comp.notes)
    md = [f"# {title}", "", (f"_evalbench {__version__}; {len(rs.runs)} run(s), {len(rs.groups())} checkpoint "
                            f"group(s), suites: {', '.join(rs.suites())}._"), ""]
    e = html.escape
    ht = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">", f"<title>{e(title)}</title>",
          f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
          (f"<p><em>evalbench {e(__version__)}; {len(rs.runs)} run(s), {len(rs.groups())} checkpoint group(s), "
          f"suites: {e(', '.join(rs.suites()))}.</em></p>")]
    images: list[Path] = []
    for sec in sections:
        md += [f"## {sec.title}", ""]
        ht.append(f"<h2>{e(sec.title)}</h2>")
        if sec.md:
            md += [sec.md.rstrip(), ""]
        if sec.html:
            ht.append(_scrollable_tables(sec.html))
        elif sec.md:
            ht.append(f"<p>{e(sec.md.strip('_'))}</p>")
        for path, caption in sec.images:
            images.append(path)
            rel = path.relative_to(out).as_posix()
            md += [f"![{caption}]({rel})", "", f"_{caption}_", ""]
            ht.append(f"<figure><img src=\"{_data_uri(path)}\" alt=\"{e(caption)}\"><figcaption>{e(caption)}"
                      "</figcaption></figure>")
    ht.append("</body></html>")
    md_path, html_path = out / "report.md", out / "report.html"
    write_text_atomic(md_path, "\n".join(md) + "\n")
    write_text_atomic(html_path, "\n".join(ht) + "\n")
    return ReportFiles(md_path, html_path, images + [p for p in plot.copies if p is not None], notes)


def _data_uri(path: Path) -> str:
    """The image inline, so report.html is one self-contained file (CI artifact, e-mail)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _scrollable_tables(fragment: str) -> str:
    """Wrap each table in a box that scrolls sideways, so a wide table never widens the page."""
    return re.sub(r"<table\b", "<div class=\"table-wrap\"><table", fragment).replace("</table>", "</table></div>")


__all__ = ["FRONTIER_DIVERSITY", "VARIANCE_COMPONENTS", "ReportFiles", "build_report", "frontier_points",
           "resolve_diversity", "reward_metric_of", "variance_tables"]
