"""docs/api.md's example runs as written: its ```python blocks, in order, as one script.

It trains two adapters on the tiny model, serves them on a real vLLM server (CPU build), judges,
compares and gates: about two and a half minutes on 2 cores (marked like the other vLLM integration tests,
so CI runs it and the docs cannot drift).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(markdown: str) -> list[str]:
    return BLOCK.findall(markdown)


def test_python_blocks_are_found():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 3 and all(b.strip() for b in blocks)
    assert "evalbench.train(" in blocks[0] and "evalbench.run(" in blocks[1] and "evalbench.gate(" in blocks[2]


def test_api_doc_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("vllm")
    monkeypatch.chdir(tmp_path)  # the example writes under ./api-example
    script = "\n".join(python_blocks(DOC.read_text()))
    namespace: dict = {"__name__": "__main__"}
    exec(compile(script, str(DOC), "exec"), namespace)  # noqa: S102  (executing our own docs is the test)
    handle = namespace["handle"]
    assert handle.header()["status"] == "success"
    assert {r["checkpoint"] for r in handle.summary()["results"]} == {"tiny", "dpo", "ipo"}
    assert (tmp_path / "api-example" / "leaderboard.csv").exists()
