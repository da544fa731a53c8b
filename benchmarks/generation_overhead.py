"""Generation overhead of evalbench's backends against raw `vllm.LLM.generate`, in one run.

Same tiny model, same prompts (chat template applied), greedy, same max tokens. Each path runs in
its own subprocess (engine start-up excluded from the timing, one warm-up pass first):

  raw        vllm.LLM.generate on the prompt strings                    (the peer)
  inprocess  evalbench InProcessEngine + CachedBackend (cache disabled)
  server     evalbench VLLMServer + OpenAI client (cache disabled)

Prints throughput (generated tokens/s) and the ratios to raw. Target: in-process >= 0.95.

    .venv/bin/python benchmarks/generation_overhead.py [--prompts 256] [--max-tokens 128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _prompts(n: int) -> list[str]:
    topics = ["the sea", "a city at night", "breakfast", "mountains", "a small dog", "rain", "music", "trains"]
    return [f"Write a few sentences about {topics[i % len(topics)]} (request {i})." for i in range(n)]


def _measure(mode: str, n: int, max_tokens: int, repeat: int) -> dict:
    from evalbench.config import SamplingSpec, ServerSpec
    from evalbench.models.tiny import ensure_tiny_model
    from evalbench.types import GenRequest

    model = str(ensure_tiny_model())
    prompts = _prompts(n)
    spec = ServerSpec(model=model, served_name="tiny", dtype="float32", max_model_len=1024)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    times, tokens = [], 0
    if mode == "raw":
        from vllm import LLM, SamplingParams

        # Same engine settings as evalbench on the CPU build (whole prefills).
        llm = LLM(model=model, dtype="float32", max_model_len=1024, enforce_eager=True, seed=0,
                  enable_chunked_prefill=False)
        tok = llm.get_tokenizer()
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens)

        def render() -> list[str]:  # a raw vLLM user applies the chat template too
            return [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                            add_generation_prompt=True) for p in prompts]

        llm.generate(render(), params, use_tqdm=False)  # warm-up
        for _ in range(repeat):
            t0 = time.perf_counter()
            outs = llm.generate(render(), params, use_tqdm=False)
            times.append(time.perf_counter() - t0)
            tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    else:
        from evalbench.generate.backend import CachedBackend

        reqs = [GenRequest(messages=({"role": "user", "content": p},),
                           sampling=SamplingSpec(temperature=0.0, max_tokens=max_tokens)) for p in prompts]
        if mode == "inprocess":
            from evalbench.serve.inprocess import InProcessEngine

            ctx = InProcessEngine(spec)
        else:
            import tempfile

            from evalbench.serve.vllm_server import VLLMServer

            ctx = VLLMServer(spec, log_dir=tempfile.mkdtemp())
        with ctx as engine:
            inner = engine.backend("tiny") if mode == "inprocess" else engine.backend("tiny", max_concurrency=n)
            backend = CachedBackend(inner, None)
            backend.generate(reqs)  # warm-up
            for _ in range(repeat):
                t0 = time.perf_counter()
                gens = backend.generate(reqs)
                times.append(time.perf_counter() - t0)
                tokens = sum(g.usage["completion_tokens"] if g.usage else 0 for g in gens)
    best = min(times)
    return {"mode": mode, "seconds": best, "tokens": tokens, "tokens_per_s": tokens / best}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=["raw", "inprocess", "server"], help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        result = _measure(args.mode, args.prompts, args.max_tokens, args.repeat)
        with open(args.result_file, "w") as fh:
            json.dump(result, fh)
        return 0
    import tempfile

    from evalbench.serve.procs import kill_group

    results = {}
    for mode in ("raw", "inprocess", "server"):
        result_file = tempfile.mktemp(suffix=".json")
        # Own process group: vLLM's engine core outlives the measuring process; kill it with the group.
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen([sys.executable, __file__, "--mode", mode, "--prompts", str(args.prompts),
                                     "--max-tokens", str(args.max_tokens), "--repeat", str(args.repeat),
                                     "--result-file", result_file], stdout=log, stderr=log,
                                    start_new_session=True)
            proc.wait()
            kill_group(proc.pid)
            if not os.path.exists(result_file):
                log.seek(0)
                print(f"{mode}: failed\n{log.read().decode(errors='replace')[-2000:]}", file=sys.stderr)
                return 1
        with open(result_file) as fh:
            results[mode] = json.load(fh)
        os.unlink(result_file)
    raw = results["raw"]["tokens_per_s"]
    print(f"{'path':<10} {'tokens':>7} {'best s':>8} {'tok/s':>9} {'vs raw':>7}")
    for mode, r in results.items():
        print(f"{mode:<10} {r['tokens']:>7} {r['seconds']:>8.3f} {r['tokens_per_s']:>9.1f} "
              f"{r['tokens_per_s'] / raw:>7.3f}")
    ratio = results["inprocess"]["tokens_per_s"] / raw
    print(f"in-process / raw throughput ratio: {ratio:.3f} (target >= 0.95)")
    print(f"server / raw throughput ratio: {results['server']['tokens_per_s'] / raw:.3f} (reported)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
