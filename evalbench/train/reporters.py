"""Experiment trackers that receive every training row: TensorBoard and Weights & Biases.

A reporter is a class `(spec, out) -> obj` with `log(step, row)` and `close()`, registered in
`REPORTERS` under its `report_to` name. Their packages are optional (the `tracking` extra) and
imported only when a reporter is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalbench.registry import Registry
from evalbench.train.spec import TrainSpec


class TensorBoardReporter:
    """Scalars under `train/<key>` (held-out rows under `eval/<key>`) in `<out>/tensorboard`."""

    def __init__(self, spec: TrainSpec, out: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tensorboard"))

    def log(self, step: int, row: dict[str, Any]) -> None:
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "step":
                self.writer.add_scalar(_name(key), value, step)

    def close(self) -> None:
        self.writer.close()


class WandBReporter:
    """One wandb run per training run, named after the output directory."""

    def __init__(self, spec: TrainSpec, out: Path):
        import wandb

        self.run = wandb.init(project=spec.wandb_project, name=out.name, dir=str(out),
                              config=spec.model_dump(mode="json"))

    def log(self, step: int, row: dict[str, Any]) -> None:
        self.run.log({_name(k): v for k, v in row.items() if v is not None and k != "step"}, step=step)

    def close(self) -> None:
        self.run.finish()


def _name(key: str) -> str:
    # held-out keys already carry their "eval/" prefix
    return key if key.startswith("eval/") else f"train/{key}"


REPORTERS: Registry[type] = Registry("reporter")
REPORTERS.add("tensorboard", TensorBoardReporter)
REPORTERS.add("wandb", WandBReporter)
