"""Client CPU per request: evalbench's OpenAI-compatible client vs the openai SDK's `create()` path.

    .venv/bin/python benchmarks/client_overhead.py [--n 805] [--concurrency 32] [--rounds 3]

A stub judge (evalbench.serve.stub, no latency) runs in a separate process, so only the client's
CPU is counted. Each round sends N AlpacaEval-sized judge requests (system + ~3 KB user message,
1 token, top-5 log-probs) through the paths, interleaved (order rotated per round), at the same
concurrency:

    evalbench   OpenAICompatibleBackend.generate_uncached: body built once, `client.post(...,
                cast_to=httpx.Response)`, JSON read into a Generation
    sdk         the same client class with its `_send` replaced by `client.chat.completions.create(**body)`
                and the SDK's response model (what evalbench did before issue 17)
    one-pool    evalbench's client with all requests in one httpx connection pool, as before the
                pools were split (POOL_SHARD)

Reports client CPU milliseconds per request (user + system time of this process during the batch,
divided by N): median (min-max) over rounds. Target: <= 2 ms for evalbench.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUB = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
from evalbench.serve.stub import StubServer, StubState
state = StubState(responder=lambda b: "m", top_logprobs=lambda b: [("m", -0.2), ("M", -1.8), ("x", -9.0)])
with StubServer(models=("judge",), state=state) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
'''


def _requests(n: int):
    from evalbench.config import SamplingSpec
    from evalbench.types import GenRequest

    sampling = SamplingSpec(max_tokens=1, logprobs=True, top_logprobs=5)
    text = "Which of the two answers is better? " * 80
    return [GenRequest(messages=({"role": "system", "content": "You are a careful judge."},
                                 {"role": "user", "content": f"[{i}] {text}"}), sampling=sampling) for i in range(n)]


def _sdk_backend(url: str, concurrency: int):
    """The client as before issue 17: every attempt goes through the SDK's create() and response model."""
    from evalbench.generate.client import OpenAICompatibleBackend, parse_response

    class SdkPath(OpenAICompatibleBackend):
        async def _send(self, client, req, body=None):
            body = dict(body if body is not None else self.request_body(req))
            resp = await client.chat.completions.create(**body)
            return parse_response(resp, chat=True, n=1, logprobs=True)

    return SdkPath(url, "judge", api_key="x", max_concurrency=concurrency)


def _one_pool_backend(url: str, concurrency: int):
    """evalbench's client with every request in one httpx connection pool (before the pools were split)."""
    from evalbench.generate import client as cl

    class OnePool(cl.OpenAICompatibleBackend):
        def generate_uncached(self, *args, **kwargs):
            shard, cl.POOL_SHARD = cl.POOL_SHARD, 10**9
            try:
                return super().generate_uncached(*args, **kwargs)
            finally:
                cl.POOL_SHARD = shard

    return OnePool(url, "judge", api_key="x", max_concurrency=concurrency)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=805)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import httpx  # noqa: F401  (imports outside the measured batches)
    import openai  # noqa: F401

    from evalbench.generate.client import OpenAICompatibleBackend

    stub = subprocess.Popen([sys.executable, "-c", STUB, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        url = stub.stdout.readline().strip()
        paths = {"evalbench": OpenAICompatibleBackend(url, "judge", api_key="x", max_concurrency=args.concurrency),
                 "sdk": _sdk_backend(url, args.concurrency),
                 "one-pool": _one_pool_backend(url, args.concurrency)}
        reqs = _requests(args.n)
        for backend in paths.values():  # warm-up: connections, lazy imports
            backend.generate_uncached(reqs[:8])
        per_request: dict[str, list[float]] = {name: [] for name in paths}
        for rnd in range(args.rounds):
            order = list(paths)[rnd % len(paths):] + list(paths)[:rnd % len(paths)]  # rotated per round
            for name in order:
                c0, t0 = _cpu(), time.perf_counter()
                gens = paths[name].generate_uncached(reqs)
                cpu, wall = _cpu() - c0, time.perf_counter() - t0
                if not all(g.ok for g in gens) or len(gens) != args.n:
                    raise SystemExit(f"{name}: not every request succeeded")
                per_request[name].append(1000 * cpu / args.n)
                print(f"round {rnd} {name:<10} {1000 * cpu / args.n:.2f} ms CPU/request, wall {wall:.2f} s",
                      file=sys.stderr, flush=True)
    finally:
        stub.stdin.close()
        stub.wait(timeout=10)
    print(f"\n{args.n} judge requests at concurrency {args.concurrency}, {args.rounds} interleaved rounds; "
          "client CPU ms per request, median (min-max)")
    for name, values in per_request.items():
        print(f"| {name} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |")
    for other in ("sdk", "one-pool"):
        ratios = [s / e for s, e in zip(per_request[other], per_request["evalbench"])]
        print(f"{other} / evalbench CPU per request: {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
