"""Test-wide settings: offline hub, the shared data dir, and markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("EVALBENCH_DATA_DIR", str((REPO.parent / "shared" / "data").resolve()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ["EVALBENCH_DATA_DIR"])
    if not path.is_dir():
        pytest.fail(f"EVALBENCH_DATA_DIR={path} does not exist (expected ../shared/data beside the repo)")
    return path
