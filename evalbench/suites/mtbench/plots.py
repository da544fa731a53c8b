"""The MT-bench radar plot: per-category scores (1-10) of several models on one chart.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend switch), so it
works headless and never changes the backend of a user's notebook. matplotlib is part of the
`eval` extra.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from evalbench.errors import InputError, require
from evalbench.suites.mtbench.data import CATEGORIES

__all__ = ["radar_plot", "category_order"]

log = logging.getLogger(__name__)


def category_order(scores: Mapping[str, Mapping[str, float | None]],
                   categories: Sequence[str] = CATEGORIES) -> list[str]:
    """MT-bench's eight categories in the paper's order, then any other category found, sorted."""
    found = {c for per_model in scores.values() for c in per_model}
    return [c for c in categories if c in found] + sorted(found - set(categories))


def radar_plot(scores: Mapping[str, Mapping[str, float | None]], path: str | Path, *,
               title: str | None = None, categories: Sequence[str] | None = None,
               max_value: float = 10.0, dpi: int = 120) -> Path | None:
    """Write a PNG radar chart: one polygon per model over the categories.

    Args:
        scores: model -> category -> score; a missing or None score is drawn at 0 and marked
            "n/a" in the legend entry of that model, never silently interpolated.
        path: the PNG to write (parent folders are created).
        categories: axis order (default: `category_order(scores)`).
        max_value: the radial limit (MT-bench ratings are 1-10).

    Returns:
        The path, or None (nothing written, logged) with fewer than 3 categories: a radar needs
        three axes to be a polygon, and an empty one-axis chart only misleads.

    Raises:
        InputError: no models or no categories to draw.
    """
    require("matplotlib", "eval")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not scores:
        raise InputError("radar plot: no models to draw")
    axes_names = list(categories) if categories is not None else category_order(scores)
    if not axes_names:
        raise InputError("radar plot: no category scores to draw")
    if len(axes_names) < 3:
        log.info("radar plot skipped: %d categor%s (%s); it needs at least 3", len(axes_names),
                 "y" if len(axes_names) == 1 else "ies", ", ".join(axes_names))
        return None
    n = len(axes_names)
    angles = [2 * math.pi * i / n for i in range(n)]
    fig = Figure(figsize=(7, 7))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(math.pi / 2)  # first category at the top, clockwise as in the MT-bench paper
    ax.set_theta_direction(-1)
    ax.set_xticks(angles)
    ax.set_xticklabels(axes_names)
    ax.set_ylim(0, max_value)
    for model, per_cat in scores.items():
        values = [per_cat.get(c) for c in axes_names]
        missing = [c for c, v in zip(axes_names, values) if v is None]
        drawn = [float(v) if v is not None else 0.0 for v in values]
        label = model + (f" (n/a: {', '.join(missing)})" if missing else "")
        ax.plot(angles + angles[:1], drawn + drawn[:1], linewidth=1.5, label=label)
        ax.fill(angles + angles[:1], drawn + drawn[:1], alpha=0.1)
    ax.legend(loc="upper right", bbox_to_anchor=(1.25, 1.1), fontsize="small")
    if title:
        ax.set_title(title, pad=24)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    tmp.replace(path)  # readers never see half a PNG
    return path
