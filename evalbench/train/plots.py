"""Training curves from `metrics.jsonl` rows: loss, implicit rewards, accuracy / β / lr.

Headless (matplotlib's Agg backend); the PNG is written atomically. Panels whose metrics a
method does not log (e.g. accuracies for KTO) are left out. Held-out evaluation rows (`eval/`
keys) are drawn in the same panels as the training values they mirror, dashed with markers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalbench.io import FILE_MODE

# panel title -> metric keys drawn in it
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss", "eval/loss")),
    ("implicit rewards", ("rewards/chosen", "rewards/rejected", "rewards/margins", "eval/rewards/margins")),
    ("reward accuracy", ("rewards/accuracies", "eval/rewards/accuracies")),
    ("schedules", ("beta", "lr")),
)


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)):
            xs.append(row.get("step", len(xs) + 1))
            ys.append(float(value))
    return xs, ys


def training_curves(rows: Sequence[dict[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Draw the panels that have data and save a PNG at `path`; returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [(name, keys) for name, keys in PANELS if any(_series(rows, k)[0] for k in keys)]
    if not panels:
        raise ValueError("no plottable metrics in the rows")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels):
        twin = None
        for key in keys:
            xs, ys = _series(rows, key)
            if not xs:
                continue
            target = ax
            if name == "schedules" and key == "lr":  # β and lr differ by orders of magnitude
                twin = twin or ax.twinx()
                target = twin
                target.plot(xs, ys, label=key, color="tab:orange")
                target.set_ylabel("lr")
            elif key.startswith("eval/"):  # sparse held-out points: visible markers, dashed
                target.plot(xs, ys, label=f"held-out {key[5:]}", linestyle="--", marker="o", markersize=3)
            else:
                target.plot(xs, ys, label=key)
        if name == "implicit rewards":
            ax.axhline(0.0, color="grey", linewidth=0.6)
        if name == "reward accuracy":
            ax.set_ylim(-0.02, 1.02)
            ax.axhline(0.5, color="grey", linewidth=0.6, linestyle="--")
        ax.set_title(name)
        ax.set_xlabel("step")
        handles, labels = ax.get_legend_handles_labels()
        if twin is not None:
            h2, l2 = twin.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        if len(labels) > 1:
            ax.legend(handles, labels, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 would stick to the plot
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path
