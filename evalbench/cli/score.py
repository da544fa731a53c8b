"""`evalbench score SUITE ...`: re-score saved judgments / annotations without any model call.

    evalbench score alpaca --annotations results/m1/annotations.json.gz results/m2/annotations.json [--json]
    evalbench score mtbench --judgments gpt-4_single.jsonl
    evalbench score mtbench --judgments gpt-4_pair.jsonl --baseline gpt-3.5-turbo --json

The scoring itself is `evalbench.suites.alpaca.rescore` and `evalbench.suites.mtbench.rescore`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("score", help="re-score existing annotation/judgment files offline")
    sub = parser.add_subparsers(dest="suite", metavar="SUITE")
    sub.required = True
    add_alpaca(sub)
    add_mtbench(sub)


# --------------------------------------------------------------------------- alpaca


def add_alpaca(subparsers) -> None:
    parser = subparsers.add_parser(
        "alpaca", help="AlpacaEval 2 win rate, standard error and LC win rate from annotation files",
        description="Re-score alpaca_eval annotation files (one model each; .json or .json.gz) without "
                    "calling a judge: win rate, standard error, discrete win rate and the "
                    "length-controlled win rate.")
    parser.add_argument("--annotations", nargs="+", required=True, metavar="FILE",
                        help="annotations.json[.gz] files, one model each")
    parser.add_argument("--json", action="store_true", dest="as_json",
                        help="print a JSON list of objects instead of a table")
    parser.set_defaults(func=run_alpaca)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN (e.g. a standard error of a single judgment)
    return value


def run_alpaca(args: argparse.Namespace) -> int:
    from evalbench.suites.alpaca.rescore import RESULT_KEYS, rescore_annotations

    rows = rescore_annotations(args.annotations)
    if args.as_json:
        out = [{k: _jsonable(row[k]) for k in RESULT_KEYS} for row in rows]
        sys.stdout.write(json.dumps(out, indent=2, allow_nan=False) + "\n")
    else:
        print_alpaca_table(rows)
    return 0


def print_alpaca_table(rows: Sequence[dict[str, Any]]) -> None:
    """Print the leaderboard columns of `rows` as a table on stdout (None / NaN shown as '-')."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="AlpacaEval 2 (weighted judge vs gpt4_1106_preview)")
    columns = [("model", "model", None), ("LC win rate", "length_controlled_winrate", ".2f"),
               ("LC SE", "lc_standard_error", ".2f"), ("win rate", "win_rate", ".2f"),
               ("SE", "standard_error", ".2f"), ("discrete", "discrete_win_rate", ".2f"),
               ("wins", "n_wins", "d"), ("base wins", "n_wins_base", "d"), ("draws", "n_draws", "d"),
               ("n", "n_total", "d"), ("avg length", "avg_length", "d")]
    for title, _, fmt in columns:
        table.add_column(title, justify="left" if fmt is None else "right", overflow="fold")  # never "…"
    for row in rows:
        cells = []
        for _, key, fmt in columns:
            value = row[key]
            if fmt is None:
                cells.append(str(value))
            elif value is None or (isinstance(value, float) and not math.isfinite(value)):
                cells.append("-")
            else:
                cells.append(format(value, fmt))
        table.add_row(*cells)
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        # Piped or logged: as wide as the table needs, so no cell is cut (a terminal folds at its width).
        from rich.measure import Measurement

        width = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console = Console(file=sys.stdout, width=width)
    console.print(table)


# --------------------------------------------------------------------------- mtbench


def add_mtbench(subparsers) -> None:
    p = subparsers.add_parser(
        "mtbench", help="re-score FastChat MT-bench judgment files (single or pairwise)",
        description="Re-score FastChat-format MT-bench judgments (<judge>_single.jsonl or "
                    "<judge>_pair.jsonl) with FastChat show_result's rules; no model is called.")
    p.add_argument("--judgments", nargs="+", required=True, metavar="FILE",
                   help="judgment files, all single or all pairwise")
    p.add_argument("--mode", choices=("single", "pair"), help="default: detected from the files")
    p.add_argument("--baseline", metavar="MODEL",
                   help="pairwise: win rates against this model (default: all pairs)")
    p.add_argument("--questions", metavar="FILE",
                   help="question.jsonl for per-category means (default: the MT-bench questions from the "
                        "data dir or hub, skipped if unavailable)")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="count repeated judgments as FastChat does instead of failing")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_mtbench)


def run_mtbench(args: argparse.Namespace) -> int:
    import logging

    from evalbench.suites.mtbench.rescore import (
        detect_mode,
        format_table,
        question_categories,
        rescore,
        result_to_json,
    )

    paths = list(args.judgments)
    mode = detect_mode(paths, args.mode)
    categories = question_categories(args.questions, paths) if mode == "single" else None
    if mode == "pair" and args.questions:
        logging.getLogger(__name__).warning("--questions is ignored for pairwise judgments")
    result = rescore(paths, mode=mode, baseline=args.baseline, categories=categories,
                     keep_duplicates=args.keep_duplicates)
    if args.json:
        print(json.dumps(result_to_json(result), indent=2))
    else:
        print(format_table(result))
    return 0
