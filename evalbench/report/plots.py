"""Plots for reports: plain data in, one file out. matplotlib's object API on the Agg canvas.

No pyplot: figures are `matplotlib.figure.Figure` objects saved through the Agg backend, so
nothing touches a display or global backend state (safe in CI, threads and notebooks). Every
function returns the written path, or None when it has nothing to draw; none raises on empty input.

Conventions, the same in every figure of a report: one colour per checkpoint group (`colors`,
from `group_colors` over the report's groups, so a group keeps its colour when another is
missing from a panel); axes labelled with their unit (`evalbench.units`); intervals cut
at the metric's natural bounds; per-sample scores drawn as ECDFs or, for scores with few levels
(grades, verdicts), as histograms, never as densities that leak outside the support. The file
format follows the path's suffix (.png, .pdf, .svg).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.errors import require

log = logging.getLogger(__name__)

DPI = 110
_PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
            "#CCB974", "#64B5CD")


def _figure(width: float, height: float):
    require("matplotlib", "eval")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


FORMATS: tuple[str, ...] = ("png", "pdf", "svg")


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in FORMATS:
        raise ValueError(f"unsupported plot format '{fmt}' (known: {', '.join(FORMATS)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format=fmt, dpi=DPI)
    return path


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def group_colors(groups: Sequence[str]) -> dict[str, str]:
    """One colour per group, by position in the full group list of a report (stable across panels)."""
    return {g: _color(i) for i, g in enumerate(dict.fromkeys(groups))}


def _colors_for(names: Sequence[str], colors: Mapping[str, str] | None) -> list[str]:
    colors = colors or {}
    fallback = group_colors([n for n in names if n not in colors])
    return [colors.get(n) or fallback[n] for n in names]


def bar_chart(panels: Sequence[tuple[str, Sequence[tuple[str, float | None, float | None, float | None, bool]]]],
              path: str | Path, *, title: str | None = None, ncols: int = 3,
              colors: Mapping[str, str] | None = None) -> Path | None:
    """Bars with error bars, one panel per metric, the y axis labelled with the metric's unit.

    Args:
        panels: `(metric, [(group, mean, ci_low, ci_high, significant), ...])`; a None CI bound
            draws no error bar (one seed); a None mean is skipped. Intervals are cut at the metric's
            natural bounds. Significant bars get a '*' placed above the top of their error bar.
        colors: group -> colour (`group_colors`), the same in every panel and figure.
    """
    from evalbench.units import clip_interval, unit_of

    panels = [(t, [b for b in bars if b[1] is not None]) for t, bars in panels]
    panels = [(t, bars) for t, bars in panels if bars]
    if not panels:
        return None
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(4.2 * ncols, 3.2 * nrows)
    for k, (metric, bars) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        x = np.arange(len(bars))
        means = np.array([b[1] for b in bars], dtype=float)
        clipped = [clip_interval(metric, b[2], b[3]) for b in bars]
        lo = np.array([max(0.0, b[1] - c[0]) if c[0] is not None else 0.0 for b, c in zip(bars, clipped)])
        hi = np.array([max(0.0, c[1] - b[1]) if c[1] is not None else 0.0 for b, c in zip(bars, clipped)])
        ax.bar(x, means, color=_colors_for([b[0] for b in bars], colors), alpha=0.85)
        ax.errorbar(x, means, yerr=np.vstack([lo, hi]), fmt="none", ecolor="black", capsize=4, lw=1)
        tops = means + hi
        span = float(np.nanmax(tops) - min(0.0, float(np.nanmin(means - lo)))) or 1.0
        for i, b in enumerate(bars):
            if b[4]:  # above the error bar's cap, never on it
                ax.annotate("*", (x[i], tops[i] + 0.03 * span), ha="center", va="bottom", fontsize=14)
        if any(b[4] for b in bars):
            ax.set_ylim(top=float(np.nanmax(tops)) + 0.15 * span)
        unit = unit_of(metric)
        if unit.low is not None and unit.low >= 0 and float(np.nanmin(means)) >= 0:
            ax.set_ylim(bottom=unit.low)
        ax.set_xticks(x)
        ax.set_xticklabels([b[0] for b in bars], rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.set_ylabel(unit.label, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def length_vs_winrate(points: Sequence[Mapping[str, float | str | None]], path: str | Path) -> Path | None:
    """AlpacaEval length vs win rate: one point per group for win rate and, when present, LC win rate.

    Args:
        points: dicts with `group`, `avg_length`, `win_rate` and optionally `win_rate_low/high`,
            `length_controlled_winrate` (+ `_low/_high`); None values are skipped.
    """
    pts = [p for p in points if p.get("avg_length") is not None and p.get("win_rate") is not None]
    if not pts:
        return None
    fig = _figure(6.0, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    for key, marker, label in (("win_rate", "o", "win rate"), ("length_controlled_winrate", "s", "LC win rate")):
        sel = [p for p in pts if p.get(key) is not None]
        if not sel:
            continue
        x = np.array([float(p["avg_length"]) for p in sel])
        y = np.array([float(p[key]) for p in sel])
        lo = np.array([y[i] - float(p[f"{key}_low"]) if p.get(f"{key}_low") is not None else 0.0
                       for i, p in enumerate(sel)])
        hi = np.array([float(p[f"{key}_high"]) - y[i] if p.get(f"{key}_high") is not None else 0.0
                       for i, p in enumerate(sel)])
        ax.errorbar(x, y, yerr=np.vstack([lo, hi]), fmt=marker, capsize=3, label=label, alpha=0.85)
        if key == "win_rate":
            for xi, yi, p in zip(x, y, sel):
                ax.annotate(str(p["group"]), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("average output length (characters)")
    ax.set_ylabel("win rate vs reference (%)")
    ax.set_ylim(0, 100)
    ax.set_title("AlpacaEval: length vs win rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


MAX_DISCRETE_LEVELS = 12


def is_discrete(values: np.ndarray) -> bool:
    """Few distinct levels (grades 1-10, win/tie/loss verdicts): a histogram shows them as they are."""
    return np.unique(values).size <= MAX_DISCRETE_LEVELS


def score_distributions(dists: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "",
                        xlabel: str = "score", colors: Mapping[str, str] | None = None) -> Path | None:
    """Each group's per-sample scores: a histogram of proportions when the scores take few levels
    (MT-bench grades, 0/50/100 verdicts), else an empirical CDF.

    Neither puts mass where no score can be, unlike a kernel density, which smears integer grades
    and 0/100 preferences beyond the scale's ends.
    """
    dists = {g: np.asarray([v for v in vals if v is not None and math.isfinite(v)], dtype=float)
             for g, vals in dists.items()}
    dists = {g: v for g, v in dists.items() if v.size}
    if not dists:
        return None
    names = list(dists)
    palette = dict(zip(names, _colors_for(names, colors)))
    allv = np.concatenate(list(dists.values()))
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    if is_discrete(allv):
        levels = np.unique(allv)
        gaps = np.diff(levels)
        width = 0.8 * (float(gaps.min()) if gaps.size else 1.0) / len(dists)
        for i, (g, v) in enumerate(dists.items()):
            share = np.array([(v == level).mean() for level in levels])
            offset = (i - (len(dists) - 1) / 2) * width
            ax.bar(levels + offset, share, width=width, color=palette[g], alpha=0.85,
                   label=f"{g} (n={v.size}, mean {v.mean():.3g})")
        ax.set_xticks(levels)
        ax.set_ylabel("share of samples")
    else:
        for g, v in dists.items():
            xs = np.sort(v)
            ys = np.arange(1, xs.size + 1) / xs.size
            ax.step(np.concatenate([[xs[0]], xs]), np.concatenate([[0.0], ys]), where="post", color=palette[g],
                    label=f"{g} (n={v.size}, mean {v.mean():.3g})")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share of samples ≤ x (ECDF)")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def radar(values: Mapping[str, Mapping[str, float]], path: str | Path, *, title: str = "MT-bench by category",
          rmax: float | None = 10.0, colors: Mapping[str, str] | None = None) -> Path | None:
    """A radar (spider) chart: one polygon per group over the categories all groups share.

    Args:
        values: `{group: {category: score}}`.
        rmax: radial limit (MT-bench grades are 1-10); None = from the data.
    """
    cats = sorted(set.intersection(*(set(v) for v in values.values()))) if values else []
    if len(cats) < 3:  # a polygon needs at least 3 axes
        return None
    angles = np.linspace(0, 2 * np.pi, len(cats), endpoint=False)
    fig = _figure(5.5, 5.5)
    ax = fig.add_subplot(1, 1, 1, projection="polar")
    top = 0.0
    palette = dict(zip(values, _colors_for(list(values), colors)))
    for g, v in values.items():
        r = np.array([float(v[c]) for c in cats])
        top = max(top, float(r.max()))
        ax.plot(np.append(angles, angles[0]), np.append(r, r[0]), color=palette[g], label=g)
        ax.fill(np.append(angles, angles[0]), np.append(r, r[0]), color=palette[g], alpha=0.1)
    ax.set_xticks(angles)
    ax.set_xticklabels(cats, fontsize=8)
    ax.set_ylim(0, rmax if rmax is not None and top <= rmax else top * 1.05 or 1.0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.3, 1.1))
    return _save(fig, path)


# Held-out keys (`eval/...`, rows with "split": "eval") follow their training counterparts, so a run
# with held-out evaluation shows both within the first panels and one without it is unchanged.
TRAINING_KEYS: tuple[str, ...] = ("loss", "eval/loss", "rewards/margins", "eval/rewards/margins",
                                  "rewards/accuracies", "eval/rewards/accuracies", "rewards/chosen",
                                  "rewards/rejected", "beta", "learning_rate", "grad_norm")


def training_curves(curves: Mapping[str, Sequence[Mapping[str, float]]], path: str | Path, *,
                    keys: Sequence[str] = TRAINING_KEYS, max_panels: int = 6, title: str | None = None) -> Path | None:
    """Per-step training metrics (one line per adapter), one panel per key present.

    Args:
        curves: `{label: rows}`, rows as written by the trainer to `metrics.jsonl` (`step` plus
            metrics; rows without `step` are numbered in order).
    """
    present = [k for k in keys if any(k in row for rows in curves.values() for row in rows)]
    if not present:
        return None
    present = present[:max_panels]
    ncols = min(3, len(present))
    nrows = math.ceil(len(present) / ncols)
    fig = _figure(4.2 * ncols, 3.0 * nrows)
    for k, key in enumerate(present):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        for i, (label, rows) in enumerate(curves.items()):
            xs, ys = [], []
            for j, row in enumerate(rows):
                v = row.get(key)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    step = row.get("step", j)
                    xs.append(step if isinstance(step, (int, float)) else j)
                    ys.append(float(v))
            if xs:
                ax.plot(xs, ys, color=_color(i), label=label, lw=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def scatter(xs: Mapping[str, Sequence[float]], ys: Mapping[str, Sequence[float]], path: str | Path, *,
            xlabel: str, ylabel: str, title: str = "") -> Path | None:
    """One colour per group: e.g. reward against word count."""
    groups = [g for g in xs if len(xs[g]) and len(xs[g]) == len(ys.get(g, ()))]
    if not groups:
        return None
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for i, g in enumerate(groups):
        ax.scatter(xs[g], ys[g], s=10, color=_color(i), alpha=0.6, label=g)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def more_is_diverse(metric: str) -> bool:
    """Whether a larger value of a diversity metric means more diverse outputs (entropy, distinct-n,
    `*_diversity`) or less (`*_similarity`, self-BLEU)."""
    return not (metric.endswith("_similarity") or metric == "self_bleu")


def pareto_front(points: Sequence[tuple[float, float]], *, more_x_is_better: bool = True) -> list[int]:
    """Indices of the points no other point dominates (as good or better on both axes, better on
    one), sorted by x; y is better when larger, x when larger unless `more_x_is_better` is False."""
    sign = 1.0 if more_x_is_better else -1.0
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(sign * xj >= sign * xi and yj >= yi and (sign * xj > sign * xi or yj > yi)
                        for j, (xj, yj) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def reward_diversity_frontier(points: Sequence[Mapping[str, Any]], path: str | Path, *, reward_metric: str,
                              diversity_metric: str, colors: Mapping[str, str] | None = None,
                              title: str | None = None) -> Path | None:
    """Reward against diversity, one point per checkpoint group, with intervals on both axes.

    The picture of the IMDB experiments (DPO paper Fig. 2; f-divergence DPO): each alignment
    method trades diversity for reward, and the non-dominated groups form the frontier (dashed).

    Args:
        points: dicts with `group`, `x` (diversity mean), `y` (reward mean), optional `x_low`,
            `x_high`, `y_low`, `y_high` (interval bounds, None = no bar: one replicate), `label`
            (the text next to the point, e.g. the method), `n` (replicates, shown in the legend).
            Points without x or y are skipped. Intervals are cut at each metric's natural bounds.
        reward_metric, diversity_metric: the metrics on y and x (axis labels and bounds from
            `evalbench.units`; the x label says which direction is more diverse).
        colors: group -> colour (`group_colors`), the same as in the report's other figures.
    """
    from evalbench.units import clip_interval, unit_of

    pts = [p for p in points if p.get("x") is not None and p.get("y") is not None
           and math.isfinite(float(p["x"])) and math.isfinite(float(p["y"]))]
    if not pts:
        return None
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    palette = dict(zip([str(p["group"]) for p in pts], _colors_for([str(p["group"]) for p in pts], colors)))
    for p in pts:
        x, y = float(p["x"]), float(p["y"])
        xl, xh = clip_interval(diversity_metric, p.get("x_low"), p.get("x_high"))
        yl, yh = clip_interval(reward_metric, p.get("y_low"), p.get("y_high"))
        xerr = [[max(0.0, x - xl) if xl is not None else 0.0], [max(0.0, xh - x) if xh is not None else 0.0]]
        yerr = [[max(0.0, y - yl) if yl is not None else 0.0], [max(0.0, yh - y) if yh is not None else 0.0]]
        color = palette[str(p["group"])]
        n = p.get("n")
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", color=color, ecolor=color, capsize=3, ms=7,
                    alpha=0.9, label=f"{p['group']}" + (f" (n={n})" if n else ""))
        ax.annotate(str(p.get("label") or p["group"]), (x, y), textcoords="offset points", xytext=(6, 5),
                    fontsize=8, color=color)
    xy = [(float(p["x"]), float(p["y"])) for p in pts]
    front = pareto_front(xy, more_x_is_better=more_is_diverse(diversity_metric))
    if len(front) >= 2:
        ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], ls="--", color="#555555", lw=1,
                label="frontier (non-dominated)", zorder=0)
    direction = "more diverse →" if more_is_diverse(diversity_metric) else "← more diverse"
    ax.set_xlabel(f"{diversity_metric}: {unit_of(diversity_metric).label}  ({direction})", fontsize=9)
    ax.set_ylabel(f"{reward_metric}: {unit_of(reward_metric).label}", fontsize=9)
    ax.set_title(title or f"Reward vs diversity ({reward_metric} vs {diversity_metric})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


__all__ = ["FORMATS", "bar_chart", "group_colors", "is_discrete", "length_vs_winrate", "more_is_diverse",
           "pareto_front", "radar", "reward_diversity_frontier", "scatter", "score_distributions",
           "training_curves"]
