"""`evalbench openllm`: Open LLM Leaderboard tasks (lm-eval) for a base model and LoRA adapters.

    evalbench openllm --model BASE [--adapter NAME=PATH ...] [--tasks arc_challenge,gsm8k] [--limit 20]
                      [--backend inprocess|server] [--base-url URL] [--suite openllm|openllm_v2]

A preset of `evalbench run --suite openllm` (the same RunSpec, so the same run id whichever command
started it): SampleRecords per document, lm-eval's results and samples under
artifacts/openllm/<checkpoint>/, summary.json. The run id defaults to a hash of the spec, so
running the same command again resumes it and recomputes nothing that finished.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from evalbench.cli.options import add_results_option

log = logging.getLogger(__name__)


def add_command(subparsers) -> None:
    from evalbench.cli.argtypes import positive_int

    p = subparsers.add_parser("openllm", help="OpenLLM leaderboard tasks through lm-eval (base model + LoRA adapters)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="base model: a local directory or a hub id")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH",
                   help="a LoRA adapter to evaluate (repeatable)")
    p.add_argument("--no-base", action="store_true", help="evaluate only the adapters, not the base model")
    p.add_argument("--served-name", help="checkpoint name of the base model (default: the model directory name)")
    p.add_argument("--suite", default="openllm", choices=["openllm", "openllm_v2"],
                   help="default task list: openllm (v1, six tasks) or openllm_v2 (lm-eval's leaderboard group)")
    p.add_argument("--tasks", help="comma-separated lm-eval task or group names (default: the suite's)")
    p.add_argument("--limit", type=positive_int, help="documents per task, for quick runs (default: every document)")
    p.add_argument("--backend", choices=["inprocess", "server"], default="inprocess",
                   help="lm-eval's vLLM model in process, or local-completions against a vLLM server "
                        "(default: inprocess)")
    p.add_argument("--base-url", help="server backend: an existing OpenAI-compatible endpoint (.../v1); "
                   "default: evalbench starts a vLLM server per checkpoint")
    p.add_argument("--served-model", help="with --base-url: the name the base model is served under "
                   "(default: --model)")
    p.add_argument("--api", choices=["completions", "chat"], default="completions",
                   help="server backend: /v1/completions (every task) or /v1/chat/completions (generation tasks, "
                        "with --apply-chat-template) (default: completions)")
    p.add_argument("--num-fewshot", action="append", default=[], metavar="TASK=N", help="few-shot override")
    p.add_argument("--apply-chat-template", action="store_true", help="render prompts with the model's chat template")
    p.add_argument("--fewshot-as-multiturn", action="store_true",
                   help="with --apply-chat-template: give the few-shot examples as earlier chat turns (lm-eval's "
                        "option; default: off, one user message)")
    p.add_argument("--data", choices=["auto", "offline", "online"], default="auto",
                   help="offline: local files in the data dir; online: lm-eval's hub datasets (default: auto, "
                        "offline where evalbench has a local definition and a data dir is set, else online)")
    p.add_argument("--include-path", action="append", default=[], metavar="DIR", help="your own lm-eval task YAMLs")
    p.add_argument("--dtype", default="auto", help="vLLM dtype of the model (default: auto, the model's own; "
                   "CPU: float32 or bfloat16)")
    p.add_argument("--max-length", type=positive_int, help="context length in tokens (default: the model's)")
    p.add_argument("--batch-size", help="vLLM batch ('auto') or prompts per request (server) "
                   "(default: auto in process, 1 per request on a server)")
    p.add_argument("--num-concurrent", type=positive_int, default=4, help="parallel requests to the server (default: 4)")
    p.add_argument("--lora", choices=["auto", "merge", "native"], default="auto",
                   help="evaluate adapters as merged copies or as LoRA (default: auto, merged on the vLLM CPU "
                        "build, LoRA otherwise)")
    p.add_argument("--report-subtasks", action="store_true", help="summarise every member task of a group")
    p.add_argument("--seed", type=int, action="append", help="evalbench seed(s) the records are filed under (default 0)")
    add_results_option(p)
    p.add_argument("--run-id", help="run id (default: derived from the spec, so a rerun resumes)")
    p.set_defaults(func=run)


def _pairs(items: list[str], flag: str) -> dict[str, int]:
    from evalbench.errors import InputError

    out: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key] = int(value)
        except ValueError:
            raise InputError(f"expected TASK=N, got {item!r}", field=flag) from None
    return out


def build_options(args: argparse.Namespace):
    from evalbench.config import validate_spec
    from evalbench.suites.openllm.runner import OpenLLMOptions

    data: dict[str, Any] = {"backend": args.backend, "data": args.data, "dtype": args.dtype,
                            "num_fewshot": _pairs(args.num_fewshot, "--num-fewshot"),
                            "apply_chat_template": args.apply_chat_template,
                            "fewshot_as_multiturn": args.fewshot_as_multiturn,
                            "include_path": tuple(args.include_path), "num_concurrent": args.num_concurrent,
                            "lora": args.lora, "report_subtasks": args.report_subtasks, "api": args.api}
    if args.tasks:
        data["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    for key in ("limit", "base_url", "served_model", "max_length"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.batch_size is not None:
        data["batch_size"] = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    return validate_spec(OpenLLMOptions, data, source="evalbench openllm")


def spec_from_args(args: argparse.Namespace):
    """The RunSpec of `evalbench openllm`: the same spec (and run id) as the equivalent `evalbench run`.

    `evalbench openllm --model M --tasks T --limit 5` is `evalbench run --suite openllm --model M
    --limit 5 --set suite_options.openllm.tasks=[T]`: options equal to their defaults are left out,
    as `run` leaves out what is not given.
    """
    from evalbench.config import parse_adapter_arg, validate_spec
    from evalbench.errors import InputError
    from evalbench.runspec import RunSpec

    options = build_options(args)
    adapters = [parse_adapter_arg(a) for a in args.adapter]
    base_name = args.served_name or Path(args.model).name or args.model
    names = ([] if args.no_base else [base_name]) + [a.name for a in adapters]
    if not names:
        raise InputError("nothing to evaluate: --no-base without --adapter", field="--no-base")
    if len(set(names)) != len(names):
        raise InputError(f"checkpoint names must be unique, got {names}", field="--adapter")
    for a in adapters:
        if not Path(a.path).is_dir():
            raise InputError(f"adapter '{a.name}' directory not found", path=a.path, field="--adapter")
    suite_options = options.model_dump(mode="json", exclude_defaults=True)
    limit = suite_options.pop("limit", None)
    model: dict[str, Any] = {"base": args.model}
    if args.served_name:
        model["served_name"] = args.served_name
    if adapters:
        model["adapters"] = [a.model_dump() for a in adapters]
    if args.no_base:
        model["include_base"] = False
    data: dict[str, Any] = {"suites": [args.suite], "model": model, "results_dir": str(args.results)}
    if suite_options:
        data["suite_options"] = {args.suite: suite_options}
    if limit is not None:
        data["limit"] = limit
    if args.seed:
        data["seeds"] = list(args.seed)
    return validate_spec(RunSpec, data, source="evalbench openllm")


def run(args: argparse.Namespace) -> int:
    """`evalbench openllm` is `evalbench run --suite openllm|openllm_v2` with lm-eval's options."""
    from evalbench.api import build_suites
    from evalbench.api import run as run_spec

    spec = spec_from_args(args)
    handle = run_spec(spec, run_id=args.run_id)
    _print_table(handle.summary()["results"], build_suites(spec)[0].tasks)
    print(f"run written to {handle.path}")
    return 0


def _print_table(rows: list[dict[str, Any]], tasks: list[str]) -> None:
    seen = set()
    for row in rows:
        if row["checkpoint"] in seen:
            continue
        seen.add(row["checkpoint"])
        metrics = row["metrics"]
        shown = {k: v for k, v in metrics.items() if not k.endswith("_stderr") and "/" in k
                 and k.split("/")[0] in tasks or k in ("average",) or k.endswith("/normalized")}
        parts = [f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(shown.items())]
        print(f"{row['checkpoint']}: " + ", ".join(parts))
