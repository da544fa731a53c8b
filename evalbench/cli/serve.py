"""`evalbench serve`: run a managed vLLM server (base model + LoRA adapters) until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="base model: a local directory or a hub id")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH",
                        help="a peft LoRA adapter served unmerged under NAME (repeatable)")
    parser.add_argument("--served-name", help="name of the base model on the endpoint (default: dir name)")
    parser.add_argument("--dtype", default="auto",
                        help="vLLM --dtype (default: auto, the model's own; CPU: float32 or bfloat16)")
    parser.add_argument("--max-model-len", type=int, help="context length in tokens (default: the model's own)")
    parser.add_argument("--seed", type=int, default=0, help="vLLM --seed of the server's sampling (default: 0)")
    parser.add_argument("--kv-cache-gib", type=float, default=1.0,
                        help="KV cache size on the CPU build (VLLM_CPU_KVCACHE_SPACE; default: 1.0)")
    parser.add_argument("--vllm-arg", action="append", default=[], metavar="ARG",
                        help="extra argument passed to vLLM as is (repeatable)")
    from evalbench.cli.run import add_serving_options

    add_serving_options(parser, judge=False, vllm_arg=False)  # GPU options (docs/gpu.md)


def server_spec_from_args(args: argparse.Namespace):
    from evalbench.cli.run import SERVING_FLAGS
    from evalbench.config import ServerSpec, parse_adapter_arg, validate_spec

    adapters = [parse_adapter_arg(a) for a in args.adapter]
    serving = {k: getattr(args, k) for k in SERVING_FLAGS if getattr(args, k, None) is not None}
    return validate_spec(ServerSpec, {
        "model": args.model, "served_name": args.served_name, "adapters": adapters, "dtype": args.dtype,
        "max_model_len": args.max_model_len, "seed": args.seed, "kv_cache_gib": args.kv_cache_gib,
        "extra_args": tuple(args.vllm_arg), **serving})


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve a base model and LoRA adapters through vLLM "
                                   "(OpenAI-compatible, 127.0.0.1)")
    add_server_arguments(parser)
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--log-dir", default="results/serve", help="where the server log goes (default: results/serve)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from evalbench.serve.vllm_server import VLLMServer

    spec = server_spec_from_args(args)
    # SIGTERM behaves like Ctrl-C so the context manager stops the server's process group.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with VLLMServer(spec, log_dir=Path(args.log_dir), port=args.port) as server:
        print(f"serving {', '.join(server.names())} at {server.base_url} (log: {server.log_path})", flush=True)
        print("press Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while True:
                server.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            return 0
