"""Where evalbench keeps things on disk: the one place that reads the path settings.

    $EVALBENCH_HOME (default ~/.cache/evalbench)   evalbench's own files, reused across runs:
        cache.sqlite          generations and judgments (`cache_path`)
        models/               the tiny local model builds (`models_dir`)
        hashes.json           content-hash memo of model and adapter directories
        ref_logps/            precomputed reference log-probs of the trainer
        merged/, openllm/     merged LoRA copies and lm-eval caches of the OpenLLM suites
    data dir                  a local copy of benchmark files: `--data-dir`, else $EVALBENCH_DATA_DIR,
                              else none (files come from the Hugging Face hub)
    results dir               runs and exports: given per command or spec, default ./results

Settings are read when a path is asked for, never at import, so a test or a CLI flag that sets them
later still counts. An empty environment value means "unset" (`EVALBENCH_HOME= evalbench ...`
gives the default, not the current directory): shells and CI templates often export empty values.
This module imports nothing from evalbench but `errors`, so every layer may use it.
"""

from __future__ import annotations

import os
from pathlib import Path

from evalbench.errors import InputError

HOME_ENV = "EVALBENCH_HOME"
DATA_DIR_ENV = "EVALBENCH_DATA_DIR"
DEFAULT_HOME = Path("~/.cache/evalbench")
DEFAULT_RESULTS_DIR = Path("results")
CACHE_FILE = "cache.sqlite"

# The CLI's `--data-dir` for this process; wins over the environment.
_explicit_data_dir: Path | None = None


def env_path(name: str) -> Path | None:
    """The path in environment variable `name`, `~` expanded; None when unset, empty or blank."""
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def evalbench_home() -> Path:
    """`$EVALBENCH_HOME`, else `~/.cache/evalbench`."""
    return env_path(HOME_ENV) or DEFAULT_HOME.expanduser()


def cache_path() -> Path:
    """The default generation/judgment cache: `<home>/cache.sqlite`."""
    return evalbench_home() / CACHE_FILE


def models_dir() -> Path:
    """Where locally built models go: `<home>/models`."""
    return evalbench_home() / "models"


def results_dir(path: str | Path | None = None) -> Path:
    """The results root: `path` when given (and not empty), else `./results`."""
    return Path(path).expanduser() if path not in (None, "") else DEFAULT_RESULTS_DIR


def set_data_dir(path: str | Path | None) -> None:
    """Set the data dir for this process (the CLI's `--data-dir`); None goes back to the environment."""
    global _explicit_data_dir
    if path in (None, ""):
        _explicit_data_dir = None
        return
    resolved = Path(path).expanduser()
    if not resolved.is_dir():
        raise InputError("data dir does not exist", path=path, field="--data-dir")
    _explicit_data_dir = resolved


def data_dir() -> Path | None:
    """The local benchmark-data folder (`--data-dir`, else `$EVALBENCH_DATA_DIR`), or None for the hub."""
    if _explicit_data_dir is not None:
        return _explicit_data_dir
    env = env_path(DATA_DIR_ENV)
    if env is None:
        return None
    if not env.is_dir():
        raise InputError(f"{DATA_DIR_ENV} points to a missing directory", path=env)
    return env


__all__ = [
    "CACHE_FILE", "DATA_DIR_ENV", "DEFAULT_HOME", "DEFAULT_RESULTS_DIR", "HOME_ENV", "cache_path", "data_dir",
    "env_path", "evalbench_home", "models_dir", "results_dir", "set_data_dir",
]
