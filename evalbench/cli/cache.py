"""`evalbench cache stats | path | verify | prune | clear`: inspect and repair the generation and
judgment cache.

    verify   file-level damage, SQLite's integrity check, entries failing their checksum (exit 1 if any)
    prune    delete corrupt entries (and, with --older-than DAYS, old ones), then reclaim space
    clear    delete the cache file (needs --yes: everything in it is paid for again)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evalbench.paths import cache_path as default_cache_path


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of days >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of days >= 0, got {text!r}")
    return value


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("cache", help="inspect, verify, prune or clear the generation and judgment cache",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["stats", "path", "verify", "prune", "clear"],
                        help="stats: entries and size (JSON); path: the cache file; verify: integrity and checksums "
                             "(exit 1 when damaged); prune: delete corrupt (and with --older-than, old) entries; "
                             "clear: delete the cache file (with --yes)")
    parser.add_argument("--cache", type=Path, help="cache file (default: $EVALBENCH_HOME/cache.sqlite)")
    parser.add_argument("--older-than", type=_days, metavar="DAYS", help="prune: also delete entries older than this "
                        "(default: keep every intact entry)")
    parser.add_argument("--yes", action="store_true", help="clear: really delete the cache file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalbench import cache as cache_mod

    path = args.cache or default_cache_path()
    if args.action == "path":
        print(path)
        return 0
    if args.action == "verify":
        report = cache_mod.verify(path)
        print(json.dumps(report, indent=2))
        if not report["ok"]:
            fix = (f"evalbench cache clear --yes --cache {path}" if report["file_problem"] or report["integrity"] != "ok"
                   else f"evalbench cache prune --cache {path}")
            print(f"the cache needs repair: {fix}")
            return 1
        return 0
    if args.action == "prune":
        older = args.older_than * 86400 if args.older_than is not None else None
        print(json.dumps(cache_mod.prune(path, older_than_s=older), indent=2))
        return 0
    if args.action == "clear":
        if not args.yes:
            from evalbench.errors import InputError

            raise InputError(f"clearing deletes every cached generation and judgment in {path}; add --yes",
                             field="--yes")
        removed = cache_mod.clear(path)
        print(f"removed {', '.join(map(str, removed))}" if removed else f"no cache at {path}")
        return 0
    print(json.dumps(cache_mod.Cache(path).stats(), indent=2))
    return 0
