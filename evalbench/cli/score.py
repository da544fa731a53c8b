"""`evalbench score SUITE ...`: re-score saved judgments/annotations without any model call."""

from __future__ import annotations

import importlib

# suite -> "module:function(subparsers)" adding `evalbench score <suite>`.
SCORE_TARGETS: dict[str, str] = {
    "alpaca": "evalbench.suites.alpaca.rescore:add_command",
    "mtbench": "evalbench.suites.mtbench.rescore:add_command",
}


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("score", help="re-score existing annotation/judgment files offline")
    sub = parser.add_subparsers(dest="suite", metavar="SUITE")
    sub.required = True
    for target in SCORE_TARGETS.values():
        module, _, func = target.partition(":")
        getattr(importlib.import_module(module), func)(sub)
