"""`evalbench cache stats|path`: inspect the generation/judgment cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evalbench.paths import cache_path as default_cache_path


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("cache", help="inspect the generation and judgment cache")
    parser.add_argument("action", choices=["stats", "path"])
    parser.add_argument("--cache", type=Path, help="cache file (default: $EVALBENCH_HOME/cache.sqlite)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = args.cache or default_cache_path()
    if args.action == "path":
        print(path)
        return 0
    from evalbench.cache import Cache

    print(json.dumps(Cache(path).stats(), indent=2))
    return 0
