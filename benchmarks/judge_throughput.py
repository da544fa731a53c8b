"""Judging throughput: evalbench's `alpaca judge` vs alpaca_eval's annotator vs the ideal, equal concurrency.

Not a test: run it by hand (a few minutes),

    EVALBENCH_DATA_DIR=... .venv/bin/python benchmarks/judge_throughput.py [--n 805] [--concurrency 8,32,128]
        [--latency 0.2] [--repeats 3] [--workdir DIR]

A stub judge (evalbench.serve.stub, OpenAI-compatible, m/M top log-probs) answers every request
after a fixed latency (default 200 ms). It runs in *this* process, so its CPU is not charged to the
tools, which run as child processes one after another, interleaved A/B/A/B (evalbench, alpaca_eval,
evalbench, ...; which goes first alternates per repeat) at each concurrency:

    evalbench    `python -m evalbench alpaca judge --outputs F --judge url=STUB,model=judge
                  --concurrency C --no-cache` (the whole command: imports, run directory, LC fit)
    alpaca_eval  `PairwiseAnnotator.annotate_head2head` with an annotator config in the shape of
                  weighted_alpaca_eval_gpt4_turbo (chat completions, 1 token, top-5 log-probs,
                  logprob_parser) and `num_procs = C` (its threads), caching off

Equal work is checked: every run must send exactly N requests to the stub (a run that sends
another number is reported and fails the benchmark). Each run reports the whole child process's wall
time and its request phase (evalbench: its progress line for the judging stage; alpaca_eval: the
timed annotate call). The ideal request phase is ceil(N / C) x latency. Medians and min-max over
repeats are printed and written to <workdir>/judge_throughput.json; the rows for
results/benchmarks.md are printed last.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The judging stage's progress line: "<desc>: 805/805 done in 12.3s (65.4/s)" (evalbench.progress).
_DONE = re.compile(r"alpaca judge[^:]*: (\d+)/(\d+) done in ([0-9.]+)s")

AE_CHILD = r'''
import json, os, sys, time
cfg, model_outputs, refs, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.perf_counter()
from alpaca_eval.annotators import PairwiseAnnotator
import logging; logging.getLogger().setLevel(logging.WARNING)
annotator = PairwiseAnnotator(annotators_config=cfg, caching_path=None, is_avoid_reannotations=False)
outputs = json.load(open(model_outputs)); references = json.load(open(refs))
t1 = time.perf_counter()
rows = annotator.annotate_head2head(outputs_1=references, outputs_2=outputs)
t2 = time.perf_counter()
print(json.dumps({"request_s": t2 - t1, "setup_s": t1 - t0, "n": len(rows),
                  "n_ok": sum(r.get("preference") is not None for r in rows)}))
'''


def _inputs(workdir: Path, n: int) -> tuple[Path, Path]:
    from evalbench.suites.alpaca.data import load_eval_set

    rows = load_eval_set()[:n]
    outputs = [{"instruction": r.instruction, "output": f"answer {i}: {r.instruction[:60]}", "generator": "mine",
                "dataset": r.dataset} for i, r in enumerate(rows)]
    refs = [{"instruction": r.instruction, "output": r.output, "generator": r.generator, "dataset": r.dataset}
            for r in rows]
    (workdir / "model_outputs.json").write_text(json.dumps(outputs))
    (workdir / "references.json").write_text(json.dumps(refs))
    return workdir / "model_outputs.json", workdir / "references.json"


def _ae_config(workdir: Path, base_url: str, concurrency: int) -> tuple[Path, dict[str, str]]:
    import yaml

    from evalbench.suites.alpaca.judge import _alpaca_eval_files

    prompt = _alpaca_eval_files() / "evaluators_configs" / "alpaca_eval_clf_gpt4_turbo" / "alpaca_eval_clf.txt"
    (workdir / "openai_configs.yaml").write_text(yaml.safe_dump({"default": [{"api_key": "sk-local",
                                                                               "base_url": base_url}]}))
    judge_dir = workdir / f"ae_judge_c{concurrency}"
    judge_dir.mkdir(exist_ok=True)
    (judge_dir / "configs.yaml").write_text(yaml.safe_dump({"bench_judge": {
        "prompt_template": str(prompt), "fn_completions": "openai_completions",
        "completions_kwargs": {"model_name": "judge", "max_tokens": 1, "temperature": 0, "logprobs": True,
                               "top_logprobs": 5, "price_per_token": 0, "num_procs": concurrency},
        "fn_completion_parser": "logprob_parser",
        "completion_parser_kwargs": {"numerator_token": "m", "denominator_tokens": ["m", "M"], "is_binarize": False},
        "completion_key": "completions_all", "batch_size": 1}}))
    env = {"OPENAI_CLIENT_CONFIG_PATH": str(workdir / "openai_configs.yaml"),
           "OPENAI_MAX_CONCURRENCY": str(concurrency)}
    return judge_dir / "configs.yaml", env


def run_evalbench(workdir: Path, outputs: Path, base_url: str, concurrency: int, tag: str) -> dict:
    out = workdir / f"eb-{tag}"
    cmd = [sys.executable, "-m", "evalbench", "-v", "alpaca", "judge", "--outputs", str(outputs),
           "--judge", f"url={base_url},model=judge", "--concurrency", str(concurrency), "--no-cache",
           "--out", str(out), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "EVALBENCH_HOME": str(out / "home")})
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        raise SystemExit(f"evalbench failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    match = None
    for match in _DONE.finditer(proc.stderr):
        pass
    return {"wall_s": wall, "request_s": float(match.group(3)) if match else None, "command": " ".join(cmd)}


def run_alpaca_eval(workdir: Path, outputs: Path, refs: Path, base_url: str, concurrency: int) -> dict:
    cfg, env = _ae_config(workdir, base_url, concurrency)
    cmd = [sys.executable, "-c", AE_CHILD, str(cfg), str(outputs), str(refs), str(concurrency)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **env})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"alpaca_eval failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "request_s": data["request_s"], "n_ok": data["n_ok"]}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=805, help="pairs to judge (default: all 805)")
    parser.add_argument("--concurrency", default="8,32,128")
    parser.add_argument("--latency", type=float, default=0.2, help="stub latency per request, s (default 0.2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--skip-alpaca-eval", action="store_true")
    args = parser.parse_args(argv)
    from evalbench.io import stable_hash
    from evalbench.serve.stub import StubServer, StubState

    def verdict(body):  # a deterministic verdict per prompt
        h = stable_hash(body.get("messages") or body.get("prompt")) % 1000 / 1000
        return [("m", -0.1 - 3 * h), ("M", -0.1 - 3 * (1 - h)), ("x", -9.0)]

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="judge_throughput-"))
    workdir.mkdir(parents=True, exist_ok=True)
    outputs, refs = _inputs(workdir, args.n)
    levels = [int(c) for c in args.concurrency.split(",")]
    tools = ["evalbench"] + ([] if args.skip_alpaca_eval else ["alpaca_eval"])
    results: dict[int, dict[str, list[dict]]] = {c: {t: [] for t in tools} for c in levels}
    state = StubState(responder=lambda b: "m", top_logprobs=verdict, latency_s=args.latency)
    with StubServer(models=("judge",), state=state) as stub:
        for rep in range(args.repeats):
            for c in levels:
                order = tools if rep % 2 == 0 else tools[::-1]
                for tool in order:
                    before = stub.request_count
                    if tool == "evalbench":
                        res = run_evalbench(workdir, outputs, stub.base_url, c, f"c{c}-r{rep}")
                    else:
                        res = run_alpaca_eval(workdir, outputs, refs, stub.base_url, c)
                    res["requests"] = stub.request_count - before
                    results[c][tool].append(res)
                    print(f"[rep {rep}] c={c:<4} {tool:<12} wall {res['wall_s']:6.2f} s  request phase "
                          f"{res['request_s'] if res['request_s'] is None else round(res['request_s'], 2)} s  "
                          f"requests {res['requests']}", file=sys.stderr, flush=True)
    equal_work = all(r["requests"] == args.n for c in levels for t in tools for r in results[c][t])
    summary = []
    for c in levels:
        ideal = math.ceil(args.n / c) * args.latency
        eb = results[c]["evalbench"]
        eb_req = [r["request_s"] for r in eb if r["request_s"]]
        row = {"concurrency": c, "ideal_request_s": ideal,
               "evalbench_wall_s": [r["wall_s"] for r in eb], "evalbench_request_s": eb_req,
               "evalbench_ideal_fraction": [ideal / x for x in eb_req]}
        if "alpaca_eval" in tools:
            ae = results[c]["alpaca_eval"]
            row["alpaca_eval_wall_s"] = [r["wall_s"] for r in ae]
            row["alpaca_eval_request_s"] = [r["request_s"] for r in ae]
            # Pair by repeat: run k of one tool against run k of the other (same machine state, adjacent).
            row["speedup_request"] = [a["request_s"] / e["request_s"] for a, e in zip(ae, eb) if e["request_s"]]
            row["speedup_wall"] = [a["wall_s"] / e["wall_s"] for a, e in zip(ae, eb)]
        summary.append(row)
    (workdir / "judge_throughput.json").write_text(json.dumps({"n": args.n, "latency_s": args.latency,
                                                                "equal_work": equal_work, "results": results,
                                                                "summary": summary}, indent=2))
    print(f"\n{args.n} AlpacaEval pairs, stub judge {args.latency * 1000:.0f} ms/request, {args.repeats} repeats, "
          f"median (min-max); equal work (every run sent {args.n} requests): {equal_work}")
    print("| concurrency | ideal request phase s | evalbench request phase s | of ideal | evalbench whole command s "
          "| alpaca_eval annotate s | alpaca_eval whole process s | speed-up (request phase) | speed-up (whole) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in summary:
        ae_cols = ["-"] * 4
        if "alpaca_eval_wall_s" in row:
            ae_cols = [_spread(row["alpaca_eval_request_s"]), _spread(row["alpaca_eval_wall_s"]),
                       _spread(row["speedup_request"]) + "x", _spread(row["speedup_wall"]) + "x"]
        print(f"| {row['concurrency']} | {row['ideal_request_s']:.1f} | {_spread(row['evalbench_request_s'])} | "
              f"{_spread(row['evalbench_ideal_fraction'])} | {_spread(row['evalbench_wall_s'])} | "
              + " | ".join(ae_cols) + " |")
    print(f"details: {workdir / 'judge_throughput.json'}")
    return 0 if equal_work else 1


if __name__ == "__main__":
    sys.exit(main())
