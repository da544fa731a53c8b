"""`evalbench runs ls|show`: list and inspect runs in the results store."""

from __future__ import annotations

import argparse
import json

from evalbench.cli.options import add_results_option


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("runs", help="list or show runs in the results store")
    parser.add_argument("action", choices=["ls", "show"], help="ls: one line per run (id, status, kind, created); show: one run's header and summary (JSON)")
    parser.add_argument("run", nargs="?", help="run id or directory (for show)")
    add_results_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalbench.errors import InputError
    from evalbench.store import ResultsStore

    store = ResultsStore(args.results)
    if args.action == "ls":
        for r in store.runs():
            h = r.header()
            print(f"{r.run_id}\t{h.get('status')}\t{h.get('kind')}\t{h.get('created_at')}")
        return 0
    if not args.run:
        raise InputError("`runs show` needs a run id or directory")
    r = store.open(args.run)
    out = {"run": r.header()}
    if (r.path / "summary.json").exists():
        out["summary"] = r.summary()
    print(json.dumps(out, indent=2))
    return 0
