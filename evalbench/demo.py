"""`evalbench demo`: the main job on the embedded default model, on any CPU machine.

Current scope (serving smoke path): build the tiny model, serve it through vLLM, generate answers
to a few AlpacaEval instructions, and write a run to the results store. Numbers from the tiny model
are meaningless; the demo shows the pipeline, not model quality.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_command(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the main job end to end on the tiny local model")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
    parser.add_argument("--limit", type=int, default=8, help="number of AlpacaEval instructions")
    parser.add_argument("--run-id", help="reuse a run id (resume)")
    parser.set_defaults(func=run)


def _instructions(limit: int) -> list[dict]:
    from evalbench.data import HubFile, resolve
    from evalbench.io import read_json

    path = resolve("alpaca_eval/gpt4_1106_preview/model_outputs.json",
                   hub=HubFile("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline.json"))
    rows = read_json(path)
    return [{"sample_id": str(i), "instruction": r["instruction"]} for i, r in enumerate(rows[:limit])]


def run(args: argparse.Namespace) -> int:
    from evalbench.cache import Cache
    from evalbench.cache_cli import default_cache_path
    from evalbench.config import SamplingSpec, ServerSpec
    from evalbench.generate.backend import CachedBackend
    from evalbench.generate.stage import Item, generate_items
    from evalbench.io import canonical_json, sha256_text
    from evalbench.models.tiny import ensure_tiny_model
    from evalbench.serve.vllm_server import VLLMServer
    from evalbench.store import ResultsStore
    from evalbench.types import GenRequest

    print("evalbench demo: tiny local model; its numbers are meaningless (pipeline check only).", flush=True)
    model_dir = ensure_tiny_model()
    spec = ServerSpec(model=str(model_dir), served_name="tiny", dtype="float32", max_model_len=1024)
    sampling = SamplingSpec(temperature=0.7, max_tokens=128, seed=0)
    rows = _instructions(args.limit)
    run_spec = {"demo": "serving-smoke", "server": spec.model_dump(mode="json"),
                "sampling": sampling.model_dump(mode="json"), "limit": args.limit}
    store = ResultsStore(args.results)
    handle = store.start(run_spec, sha256_text(canonical_json(run_spec)), run_id=args.run_id, kind="demo")
    cache = Cache(default_cache_path())
    try:
        with VLLMServer(spec, log_dir=handle.path / "logs") as server:
            backend = CachedBackend(server.backend("tiny"), cache)
            items = [Item(r["sample_id"], GenRequest(messages=({"role": "user", "content": r["instruction"]},),
                                                      sampling=sampling)) for r in rows]
            gens = generate_items(backend, items, suite="alpaca", checkpoint="tiny", seed=0, run=handle)
        ok = [g for g in gens if g.ok]
        handle.write_summary({"results": [{"suite": "alpaca", "checkpoint": "tiny", "seed": 0,
                                           "metrics": {"n_generated": len(ok), "n_failed": len(gens) - len(ok),
                                                       "avg_length": sum(len(g.text) for g in ok) / max(1, len(ok))},
                                           "cache_hits": backend.hits, "model_calls": backend.misses}]})
        handle.finish("success")
    except BaseException as exc:
        handle.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "error", error=str(exc)[:500])
        raise
    print(f"run written to {handle.path} ({len(ok)} answers, {backend.hits} from cache)")
    for r, g in list(zip(rows, gens))[:3]:
        print(f"- {r['instruction'][:60]!r} -> {g.text[:80]!r}" if g.ok else f"- failed: {g.error}")
    return 0
