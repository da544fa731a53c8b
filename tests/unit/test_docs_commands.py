"""Every `evalbench ...` command shown in README.md and docs/ parses with its exact arguments.

A renamed or removed flag fails here instead of in a user's terminal. Shell loop variables take
the first value of their `for` loop in the same code block; synopsis brackets (`[--flag X]`)
are read as the flags they stand for.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from evalbench.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _loop_values(block: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"\bfor\s+(\w+)\s+in\s+([^\s;]+)", block)}


def doc_commands(text: str) -> list[str]:
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        block = block.replace("\\\n", " ")
        loops = _loop_values(block)
        for line in block.splitlines():
            match = re.search(r"(?:^\s*\$?\s*|&&\s*|;\s*|do\s+)(evalbench\s.*)", line)
            if not match:
                continue
            cmd = re.split(r"\s(?:\|\||&&|\||>|2>|;)\s|\s#", match.group(1))[0]
            cmd = re.sub(r"\$\{?(\w+)\}?", lambda m: loops.get(m.group(1), "1"), cmd)
            cmd = cmd.replace("[", " ").replace("]", " ").replace("...", " ")
            found.append(" ".join(cmd.split()))
    return found


CASES = [(path.relative_to(REPO).as_posix(), cmd) for path in DOCS for cmd in doc_commands(path.read_text())]


def test_the_docs_show_commands():
    assert len(CASES) >= 15
    assert any(cmd.startswith("evalbench run ") for _, cmd in CASES)


@pytest.mark.parametrize("where,cmd", CASES, ids=[f"{w}:{c[:60]}" for w, c in CASES])
def test_documented_command_parses(where, cmd):
    parser = build_parser()
    try:
        args = parser.parse_args(shlex.split(cmd)[1:])
    except SystemExit as exc:  # argparse exits 2 on an unknown flag or a bad value
        pytest.fail(f"{where}: `{cmd}` does not parse (exit {exc.code})")
    assert args.command
