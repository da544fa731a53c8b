"""PNG plots for reports: plain data in, one file out. matplotlib's object API on the Agg canvas.

No pyplot: figures are `matplotlib.figure.Figure` objects saved through the Agg backend, so
nothing touches a display or global backend state (safe in CI, threads and notebooks). Every
function returns the written path, or None when it has nothing to draw; none raises on empty input.
matplotlib (and scipy for the KDE) are imported inside the functions (extra `eval`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

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


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def bar_chart(panels: Sequence[tuple[str, Sequence[tuple[str, float | None, float | None, float | None, bool]]]],
              path: str | Path, *, title: str | None = None, ncols: int = 3) -> Path | None:
    """Bars with error bars, one panel per metric.

    Args:
        panels: `(metric title, [(group, mean, ci_low, ci_high, significant), ...])`; a None CI bound
            draws no error bar (one seed); a None mean is skipped. Significant bars get a '*' above.
    """
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
        lo = np.array([b[1] - b[2] if b[2] is not None else 0.0 for b in bars])
        hi = np.array([b[3] - b[1] if b[3] is not None else 0.0 for b in bars])
        ax.bar(x, means, color=[_color(i) for i in range(len(bars))], alpha=0.85)
        ax.errorbar(x, means, yerr=np.vstack([lo, hi]), fmt="none", ecolor="black", capsize=4, lw=1)
        for i, b in enumerate(bars):
            if b[4]:
                ax.annotate("*", (x[i], means[i] + hi[i]), ha="center", va="bottom", fontsize=14)
        ax.set_xticks(x)
        ax.set_xticklabels([b[0] for b in bars], rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
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
    ax.set_title("AlpacaEval: length vs win rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def score_distributions(dists: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "",
                        xlabel: str = "score") -> Path | None:
    """Gaussian KDE (scipy.stats.gaussian_kde, Scott's bandwidth) of each group's scores.

    A group with fewer than 2 distinct values has no density (the KDE's covariance is singular):
    it is drawn as a vertical line at its value instead.
    """
    dists = {g: np.asarray([v for v in vals if v is not None and math.isfinite(v)], dtype=float)
             for g, vals in dists.items()}
    dists = {g: v for g, v in dists.items() if v.size}
    if not dists:
        return None
    gaussian_kde = require("scipy.stats", "eval").gaussian_kde
    allv = np.concatenate(list(dists.values()))
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    grid = np.linspace(lo - pad, hi + pad, 256)
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for i, (g, v) in enumerate(dists.items()):
        label = f"{g} (n={v.size}, mean {v.mean():.3g})"
        if np.unique(v).size < 2:
            ax.axvline(float(v[0]), color=_color(i), label=label + " [constant]")
            continue
        try:
            dens = gaussian_kde(v)(grid)
        except np.linalg.LinAlgError:
            ax.axvline(float(v.mean()), color=_color(i), label=label)
            continue
        ax.plot(grid, dens, color=_color(i), label=label)
        ax.fill_between(grid, dens, color=_color(i), alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def radar(values: Mapping[str, Mapping[str, float]], path: str | Path, *, title: str = "MT-bench by category",
          rmax: float | None = 10.0) -> Path | None:
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
    for i, (g, v) in enumerate(values.items()):
        r = np.array([float(v[c]) for c in cats])
        top = max(top, float(r.max()))
        ax.plot(np.append(angles, angles[0]), np.append(r, r[0]), color=_color(i), label=g)
        ax.fill(np.append(angles, angles[0]), np.append(r, r[0]), color=_color(i), alpha=0.1)
    ax.set_xticks(angles)
    ax.set_xticklabels(cats, fontsize=8)
    ax.set_ylim(0, rmax if rmax is not None and top <= rmax else top * 1.05 or 1.0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.3, 1.1))
    return _save(fig, path)


TRAINING_KEYS: tuple[str, ...] = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen",
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


__all__ = ["bar_chart", "length_vs_winrate", "radar", "scatter", "score_distributions", "training_curves"]
