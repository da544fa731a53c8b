"""Generation throughput of evalbench's two vLLM paths against raw `vllm.LLM.generate`, interleaved.

    .venv/bin/python benchmarks/generation_overhead.py [--prompts 256] [--max-tokens 64] [--rounds 3]
        [--model DIR] [--adapter NAME=DIR ...] [--dtype float32] [--max-model-len 1024] [--json FILE]

Three engines, each owned by its own worker process, all started before any timing (start-up and
one warm-up pass excluded):

  raw        vllm.LLM.generate on the chat-templated prompt strings                 (the peer)
  inprocess  evalbench InProcessEngine + CachedBackend (no cache)
  server     evalbench VLLMServer (OpenAI-compatible HTTP) + CachedBackend (no cache)

Decode-bound and equal work: every request asks for exactly --max-tokens tokens (`min_tokens` =
`max_tokens`, so the model cannot stop early at EOS) and every pass must generate prompts x
max_tokens tokens, checked. Equal concurrency: all prompts are in flight at once on every path
(raw: one generate call; inprocess: one batch; server: max_in_flight = prompts). All three engines
get the same vLLM settings (`vllm_server.engine_kwargs` of one ServerSpec, so the CPU build's eager
mode and whole prefills, or CUDA graphs on a GPU). With adapters, requests go round-robin to the
base model and each adapter on every path (raw: LoRARequest per request).

Passes are interleaved A/B/C, A/B/C, ... with the order rotated each round, so load drift on a
shared machine hits every path alike; each round's ratio path/raw is computed from adjacent passes.
Prints median and min-max of tokens/s and of the ratios. Targets: in-process >= 0.95, server >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("raw", "inprocess", "server")
TARGETS = {"inprocess": 0.95, "server": 0.8}


def _prompts(n: int) -> list[str]:
    topics = ["the sea", "a city at night", "breakfast", "mountains", "a small dog", "rain", "music", "trains"]
    return [f"Write a few sentences about {topics[i % len(topics)]} (request {i})." for i in range(n)]


def _spec(args):
    from evalbench.config import AdapterSpec, ServerSpec

    adapters = tuple(AdapterSpec(name=a.partition("=")[0], path=a.partition("=")[2]) for a in args.adapter)
    return ServerSpec(model=args.model, served_name="base", adapters=adapters, dtype=args.dtype,
                      max_model_len=args.max_model_len, max_in_flight=args.prompts,
                      gpu_memory_utilization=args.gpu_memory_utilization)


def _worker(args) -> int:
    """One engine; on each stdin line 'go', one timed pass; prints one JSON line per pass."""
    # The protocol owns stdout; vLLM logs to stdout, so everything else goes to stderr (the log file).
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from evalbench.provenance import vllm_distribution
    from evalbench.serve.vllm_server import engine_kwargs

    spec = _spec(args)
    names = ["base"] + [a.name for a in spec.adapters]
    prompts = _prompts(args.prompts)
    if args.worker == "raw":
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        llm = LLM(**engine_kwargs(spec, vllm_distribution()))  # the settings evalbench gives its engines
        tok = llm.get_tokenizer()
        params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, min_tokens=args.max_tokens)
        loras = {a.name: LoRARequest(a.name, i + 1, str(Path(a.path).resolve())) for i, a in enumerate(spec.adapters)}

        def one_pass() -> int:
            # A raw vLLM user applies the chat template too; timed, as evalbench's paths render theirs.
            texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                             add_generation_prompt=True) for p in prompts]
            lora = [loras.get(names[i % len(names)]) for i in range(len(texts))] if loras else None
            outs = llm.generate(texts, params, lora_request=lora, use_tqdm=False)
            return sum(len(o.outputs[0].token_ids) for o in outs)

        def close() -> None:
            pass
    else:
        from evalbench.config import SamplingSpec
        from evalbench.generate.backend import CachedBackend
        from evalbench.types import GenRequest

        sampling = SamplingSpec(temperature=0.0, max_tokens=args.max_tokens, min_tokens=args.max_tokens)
        if args.worker == "inprocess":
            from evalbench.serve.inprocess import InProcessEngine

            engine = InProcessEngine(spec).start()
        else:
            from evalbench.serve.vllm_server import VLLMServer

            engine = VLLMServer(spec, log_dir=tempfile.mkdtemp(prefix="genbench-")).start()
        backends = {n: CachedBackend(engine.backend(n), None) for n in names}

        def one_pass() -> int:
            by_name: dict[str, list] = {n: [] for n in names}
            for i, p in enumerate(prompts):
                by_name[names[i % len(names)]].append(GenRequest(messages=({"role": "user", "content": p},),
                                                                 sampling=sampling))
            # All checkpoints at once, as `evalbench run` generates them (api.generate_stage).
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(names)) as pool:
                gens = [g for gs in pool.map(lambda n: backends[n].generate(by_name[n]), names) for g in gs]
            failed = [g.error for g in gens if g.error]
            if failed:
                raise RuntimeError(f"{len(failed)} failed generations, e.g. {failed[0]}")
            return sum(g.usage["completion_tokens"] if g.usage else 0 for g in gens)

        close = engine.stop
    try:
        one_pass()  # warm-up
        print("ready", file=proto, flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            t0 = time.perf_counter()
            tokens = one_pass()
            print(json.dumps({"seconds": time.perf_counter() - t0, "tokens": tokens}), file=proto, flush=True)
    finally:
        close()
    return 0


def _start(mode: str, argv: list[str], log_dir: Path) -> subprocess.Popen:
    log = open(log_dir / f"{mode}.log", "w")
    # Own process group: vLLM's engine core outlives its owner; the group is killed at the end.
    return subprocess.Popen([sys.executable, __file__, "--worker", mode, *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)


def _expect(proc: subprocess.Popen, mode: str, log_dir: Path) -> str:
    line = proc.stdout.readline()
    if not line:
        tail = (log_dir / f"{mode}.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{mode} worker died:\n{tail}")
    return line.strip()


def _spread(values: list[float], fmt: str = ".3f") -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", help="model directory (default: the tiny local model)")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--gpu-memory-utilization", type=float,
                        help="per engine (three engines share the device: e.g. 0.25 on a GPU)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if args.model is None:
        from evalbench.models.tiny import ensure_tiny_model

        args.model = str(ensure_tiny_model())
    if args.worker:
        return _worker(args)
    from evalbench.serve.procs import kill_group

    modes = [m for m in args.modes.split(",") if m]
    worker_argv = ["--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens), "--model", args.model,
                   "--dtype", args.dtype, "--max-model-len", str(args.max_model_len)]
    worker_argv += [f"--adapter={a}" for a in args.adapter]
    if args.gpu_memory_utilization:
        worker_argv += ["--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    log_dir = Path(tempfile.mkdtemp(prefix="generation_overhead-"))
    procs: dict[str, subprocess.Popen] = {}
    passes: dict[str, list[dict]] = {m: [] for m in modes}
    expected = args.prompts * args.max_tokens
    try:
        for mode in modes:  # one at a time: start-ups would fight for the cores
            procs[mode] = _start(mode, worker_argv, log_dir)
            if _expect(procs[mode], mode, log_dir) != "ready":
                raise SystemExit(f"{mode} worker did not get ready (log: {log_dir / (mode + '.log')})")
            print(f"{mode}: ready", file=sys.stderr, flush=True)
        for rnd in range(args.rounds):
            order = modes[rnd % len(modes):] + modes[:rnd % len(modes)]
            for mode in order:
                procs[mode].stdin.write("go\n")
                procs[mode].stdin.flush()
                res = json.loads(_expect(procs[mode], mode, log_dir))
                res["round"] = rnd
                passes[mode].append(res)
                print(f"round {rnd} {mode:<10} {res['tokens']} tokens in {res['seconds']:.2f} s "
                      f"({res['tokens'] / res['seconds']:.0f} tok/s)", file=sys.stderr, flush=True)
    finally:
        for proc in procs.values():
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            kill_group(proc.pid)
    equal_work = all(p["tokens"] == expected for ps in passes.values() for p in ps)
    rates = {m: [p["tokens"] / p["seconds"] for p in ps] for m, ps in passes.items()}
    ratios = {m: [a / b for a, b in zip(rates[m], rates["raw"])] for m in modes if m != "raw" and "raw" in modes}
    print(f"\n{args.prompts} prompts x {args.max_tokens} tokens (min_tokens = max_tokens), all in flight at once, "
          f"{args.rounds} interleaved rounds; equal work (every pass {expected} tokens): {equal_work}")
    print("| path | tokens/s median (min-max) | vs raw, per round: median (min-max) | target |")
    print("|---|---|---|---|")
    for m in modes:
        ratio = _spread(ratios[m]) if m in ratios else "1"
        print(f"| {m} | {_spread(rates[m], '.0f')} | {ratio} | {TARGETS.get(m, '-')} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                         "passes": passes, "equal_work": equal_work, "ratios": ratios}, indent=2,
                                        default=str))
    return 0 if equal_work else 1


if __name__ == "__main__":
    sys.exit(main())
