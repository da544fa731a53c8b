"""`evalbench` command line: argv -> validated spec -> library call -> exit code.

Exit codes: 0 success, 1 a gate failed (regression), 2 usage or data error, 3 the run finished but
items failed beyond --max-failed, 75 the run directory is in use by another process, 130 interrupted
(docs/reliability.md).
The package holds every command and nothing else: one module per command group (`run`, `train`,
`compare` + `gate`, `export` + `report` + `analyze`, `show`, `alpaca`, `mtbench`, `openllm`, `model`,
`serve`, `cache`, `runs`, `score`, `reward`, `demo`), the option groups several commands share
(`options`: results dir, statistics, judge) and argparse value types (`argtypes`). Library modules
never import it. Each command is listed in COMMANDS lazily as "module:function"; that function adds
its parser to the sub-parser set. The global options (-v, -q, --log-json, --data-dir) work before or
after the command.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from evalbench import __version__
from evalbench.errors import EvalbenchError

log = logging.getLogger("evalbench")

# name -> "module:function(subparsers)", in the order `--help` lists them: the main command first,
# then training and the commands that read finished runs, then per-benchmark tools and utilities.
# Each module keeps heavy imports inside its handler, so building the parser stays cheap.
COMMANDS: dict[str, str] = {
    "run": "evalbench.cli.run:add_command",
    "train": "evalbench.cli.train:add_command",
    "compare": "evalbench.cli.compare:add_compare",
    "gate": "evalbench.cli.compare:add_gate",
    "export": "evalbench.cli.export:add_export",
    "report": "evalbench.cli.export:add_report",
    "analyze": "evalbench.cli.export:add_analyze",
    "show": "evalbench.cli.show:add_command",
    "alpaca": "evalbench.cli.alpaca:add_command",
    "mtbench": "evalbench.cli.mtbench:add_command",
    "openllm": "evalbench.cli.openllm:add_command",
    "model": "evalbench.cli.model:add_command",
    "serve": "evalbench.cli.serve:add_command",
    "cache": "evalbench.cli.cache:add_command",
    "runs": "evalbench.cli.runs:add_command",
    "score": "evalbench.cli.score:add_command",
    "reward": "evalbench.cli.reward:add_command",
    "demo": "evalbench.cli.demo:add_command",
}


def add_global_options(parser: argparse.ArgumentParser, *, on_command: bool = False) -> None:
    """-v / -q / --log-json / --data-dir.

    They are accepted before and after the command (`evalbench run ... -q`). On a command's parser
    (`on_command`) their defaults are SUPPRESS, so a flag given only before the command is not reset
    by the command's parser; -v counts on both sides add up (`verbosity`).
    """
    def default(value: object) -> object:
        return argparse.SUPPRESS if on_command else value

    group = parser.add_argument_group("global options")
    group.add_argument("--data-dir", default=default(None),
                       help="local copy of benchmark files (default: $EVALBENCH_DATA_DIR, else the Hugging Face hub)")
    # argparse gives a command's parser a fresh namespace, so its -v count is kept apart and added.
    group.add_argument("-v", "--verbose", action="count", default=default(0),
                       dest="verbose_after_command" if on_command else "verbose",
                       help="more log output (-vv: debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=default(False),
                       help="warnings and errors only; no progress bars")
    group.add_argument("--log-json", action="store_true", default=default(False),
                       help="log as JSON lines on stderr (for CI)")


def command_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below `parser`: commands and their sub-commands (`alpaca judge`), each once."""
    found: dict[int, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse offers no public way to list sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if id(child) not in found:
                    found[id(child)] = child
                    found.update((id(p), p) for p in command_parsers(child))
    return list(found.values())


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="evalbench",
        description="Evaluate LLM checkpoints with error bars: AlpacaEval 2, MT-bench, OpenLLM, diversity.")
    parser.add_argument("--version", action="version", version=f"evalbench {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for target in COMMANDS.values():
        module, _, func = target.partition(":")
        getattr(importlib.import_module(module), func)(sub)
    for command in command_parsers(parser):
        add_global_options(command, on_command=True)
    return parser


def verbosity(args: argparse.Namespace) -> int:
    """How many -v were given, before and after the command together."""
    return args.verbose + getattr(args, "verbose_after_command", 0)


def setup_logging(verbose: int, quiet: bool, as_json: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        from evalbench.progress import JsonLogFormatter

        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname).1s %(name)s: %(message)s"))
    root = logging.getLogger("evalbench")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _report_end(args: argparse.Namespace, event: str, message: str, **fields) -> None:
    """The last line of a failed command: plain text, or with --log-json one JSON line like every other."""
    if getattr(args, "log_json", False):
        import json
        import time

        print(json.dumps({"ts": round(time.time(), 3), "level": "error", "logger": "evalbench",
                          "event": event, "msg": message, **fields}, ensure_ascii=False), file=sys.stderr)
    else:
        print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbosity(args), args.quiet, args.log_json)
    from evalbench import progress

    progress.configure(enabled=not (args.quiet or args.log_json))
    try:
        if args.data_dir:
            from evalbench.paths import set_data_dir

            set_data_dir(args.data_dir)
        code = args.func(args)
    except EvalbenchError as exc:
        _report_end(args, "error", f"evalbench: error: {exc}", exit_code=exc.exit_code,
                    error_type=type(exc).__name__)
        return exc.exit_code
    except KeyboardInterrupt:
        _report_end(args, "interrupted", "evalbench: interrupted; finished work is cached, rerun the same "
                    "command to resume", exit_code=130)
        return 130
    return int(code or 0)
