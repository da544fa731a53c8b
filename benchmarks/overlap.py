"""Wall time of `evalbench run` with judging overlapped with generation, and without (`--no-overlap`).

Not a test: run it by hand (several minutes),

    EVALBENCH_DATA_DIR=... .venv/bin/python benchmarks/overlap.py [--adapters 4] [--questions 80]
        [--max-tokens 64] [--judge-latency 1.0] [--judge-concurrency 32] [--max-in-flight 256] [--repeats 3]

The policy is the tiny local model with --adapters random LoRA adapters, served by evalbench's
managed vLLM server (the default engine; its start is part of every attempt, as for a user); the
judge is an OpenAI-compatible stub (evalbench.serve.stub, in this process) that answers every
request after a fixed latency with a FastChat-parseable rating, standing for a remote API judge.
The suite is MT-bench single-answer grading (both turns) of the first --questions questions.
--max-in-flight bounds the policy engine's requests in flight (its batch): a grid far larger than
the batch (30 adapters x 805 prompts against 256) is emulated on this small one with a small bound.
Each attempt is a whole `api.run` with a fresh results directory and cache, so all the work is
done every time; the two modes run interleaved A/B, A/B, ... (which goes first alternates per
repeat). Equal work is checked: the same judge requests (count) and generated tokens in both
modes. Medians, min-max and the per-pair ratio overlap / sequential are printed, with the rows for
results/benchmarks.md; the per-attempt data goes to <workdir>/overlap.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scaling import make_adapter, tokens_generated


def spec_for(overlap: bool, base: Path, adapters: list[Path], judge_url: str, args, work: Path):
    from evalbench.runspec import RunSpec, parse_judge_arg

    judge = {**parse_judge_arg(f"url={judge_url},model=judge,key_env=NO_SUCH_KEY"),
             "concurrency": args.judge_concurrency}
    return RunSpec.model_validate({
        "suites": ["mtbench"], "seeds": [0], "results_dir": str(work / "results"),
        "cache_path": str(work / "cache.sqlite"), "overlap_judging": overlap,
        "suite_options": {"mtbench": {"question_ids": list(range(81, 81 + args.questions)),
                                      "max_new_tokens": args.max_tokens}},
        "model": {"base": str(base), "served_name": "tiny", "dtype": "float32", "max_model_len": 2048,
                  "include_base": False, "serving": {"max_in_flight": args.max_in_flight},
                  "adapters": [{"name": f"a{i}", "path": str(p)} for i, p in enumerate(adapters)]},
        "judge": judge})


def attempt(overlap: bool, base: Path, adapters: list[Path], stub, args, tokenizer) -> dict:
    from evalbench.api import run

    before = stub.request_count
    with tempfile.TemporaryDirectory(prefix="overlap-") as tmp:
        t0 = time.perf_counter()
        handle = run(spec_for(overlap, base, adapters, stub.base_url, args, Path(tmp)))
        wall = time.perf_counter() - t0
        calls = handle.header()["model_calls"][-1]
        return {"mode": "overlap" if overlap else "sequential", "wall_s": wall,
                "judge_requests": stub.request_count - before, "tokens": tokens_generated(handle.path, tokenizer),
                "generate_calls": calls["generate"], "judge_calls": calls["judge"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--adapters", type=int, default=4)
    p.add_argument("--questions", type=int, default=80)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--judge-latency", type=float, default=1.0)
    p.add_argument("--judge-concurrency", type=int, default=32)
    p.add_argument("--max-in-flight", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from transformers import AutoTokenizer

    from evalbench.models.tiny import ensure_tiny_model
    from evalbench.serve.stub import StubServer, StubState

    work = args.workdir or Path(tempfile.mkdtemp(prefix="overlap-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = ensure_tiny_model()
    tokenizer = AutoTokenizer.from_pretrained(base)
    adapters = [make_adapter(base, work / "adapters" / f"a{i}", seed=i) for i in range(args.adapters)]
    state = StubState(responder=lambda body: "The answer is fine. Rating: [[5]]", latency_s=args.judge_latency)
    results = []
    with StubServer(models=("judge",), state=state) as stub:
        for rep in range(args.repeats):
            order = (True, False) if rep % 2 == 0 else (False, True)
            for overlap in order:
                r = attempt(overlap, base, adapters, stub, args, tokenizer)
                results.append({**r, "repeat": rep})
                print(f"repeat {rep} {r['mode']:<10} {r['wall_s']:6.1f} s  judge requests {r['judge_requests']}  "
                      f"tokens {r['tokens']}", flush=True)
    (work / "overlap.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                   "results": results}, indent=1))
    problems = []
    for key in ("judge_requests", "tokens"):
        if len({r[key] for r in results}) != 1:
            problems.append(f"unequal work: {key} {sorted({r[key] for r in results})}")
    walls = {m: [r["wall_s"] for r in results if r["mode"] == m] for m in ("overlap", "sequential")}
    ratios = [o["wall_s"] / s["wall_s"] for o, s in zip((r for r in results if r["mode"] == "overlap"),
                                                         (r for r in results if r["mode"] == "sequential"))]
    lines = ["| mode | median wall s | min-max s | judge requests | tokens generated |", "|---|---|---|---|---|"]
    for mode, ws in walls.items():
        rows = [r for r in results if r["mode"] == mode]
        lines.append(f"| {mode} | {statistics.median(ws):.1f} | {min(ws):.1f}-{max(ws):.1f} | "
                     f"{rows[0]['judge_requests']} | {rows[0]['tokens']} |")
    lines.append("")
    lines.append(f"overlap / sequential per repeat: {statistics.median(ratios):.2f} "
                 f"({min(ratios):.2f}-{max(ratios):.2f}), {len(ratios)} pairs")
    print("\n".join(lines))
    for problem in problems:
        print("CHECK FAILED:", problem)
    print(f"per-attempt data: {work / 'overlap.json'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
