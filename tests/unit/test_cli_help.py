"""Every option of every `evalbench` command has help text that states its real default (issue 18,
item 6): no option without help, no "(default: None)" anywhere, and every option that takes a value
says what happens when it is not given."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from evalbench.cli import build_parser

SKIPPED = (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("evalbench",)
              ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) for the top parser and every sub-parser, each once (aliases skipped)."""
    yield " ".join(path), parser
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(build_parser()))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, SKIPPED) and a.help != argparse.SUPPRESS]


def test_the_walk_reaches_nested_commands():
    assert {"evalbench run", "evalbench train", "evalbench compare", "evalbench mtbench judge",
            "evalbench score mtbench"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help_and_no_default_none(command):
    parser = COMMANDS[command]
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in _options(parser)
               if not (a.help or "").strip()]
    assert missing == [], f"{command}: options without help: {missing}"
    assert "(default: None)" not in parser.format_help(), command


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_default_is_stated(command):
    """Every option that takes a value says what it is when not given: its default value, what an
    unset value means ("default: stdout", "default: every item"), or that it is required. On/off
    flags, repeatable options (an empty list) and required options are exempt."""
    unstated = []
    for a in _options(COMMANDS[command]):
        if (not a.option_strings or a.required or a.default is argparse.SUPPRESS or a.nargs == 0
                or isinstance(a, argparse._AppendAction) and a.default in ([], None)):
            continue  # SUPPRESS: the global options' copies in sub-commands keep the top-level value
        text = (a.help or "").lower()
        if "default" not in text and "required" not in text:
            unstated.append(f"{a.option_strings[0]} (default {a.default!r})")
    assert unstated == [], f"{command}: help does not state the default of {unstated}"
