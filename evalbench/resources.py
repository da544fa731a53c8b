"""Files that ship inside the package (recipes, gate rules, lm-eval task configs), found through
`importlib.resources` so that they resolve the same way in a source checkout, an editable install
and a wheel installed anywhere (a path relative to the source tree breaks outside the checkout).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def asset(*parts: str) -> Path:
    """The path of `evalbench/assets/<parts...>` (installed as a regular directory, never zipped)."""
    return Path(str(resources.files("evalbench").joinpath("assets", *parts)))


TRAIN_RECIPES = asset("recipes", "train")
GATE_RULES = asset("gates", "default.yaml")
OPENLLM_TASKS = asset("openllm_tasks")
