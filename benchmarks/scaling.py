"""Wall time of `evalbench run` for N adapters x S seeds: local executor vs Ray with 1 and 2 engines.

Each attempt is a whole `api.run` (engine start included: that is what a user waits for) on the
tiny local model served in-process by vLLM, MT-bench generation (both turns) for a few questions
with the fake judge, a fresh results directory and cache each time, so every attempt does all of
the work. Modes run interleaved A/B/C, A/B/C, ... so load drift on a shared machine hits all of
them alike; the table gives the median and the spread (min-max) per mode, the engine starts per
base model and worker (from run.json's `executor.engines`; the local executor starts one by
construction) and the tokens generated (equal work: every mode must generate the same tokens).

    .venv/bin/python benchmarks/scaling.py [--adapters 2] [--seeds 2] [--repeats 3]
        [--questions 4] [--max-tokens 64] [--modes local,ray1,ray2] [--out results/benchmarks.md]

The Ray cluster is private, single-node and bound to 127.0.0.1, sized by --ray-cpus (default 2).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

MTBENCH_QUESTIONS = (81, 82, 83, 84, 85, 86, 87, 88, 89, 90)


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A random LoRA adapter on the tiny model (non-zero B, so it changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (out / "adapter_config.json").exists():
        return out
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, torch_dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    peft_model.save_pretrained(out)
    return out


def run_spec(mode: str, base: Path, adapters: list[Path], args: argparse.Namespace, work: Path):
    from evalbench.runspec import RunSpec

    extra: dict = {}
    if mode.startswith("ray"):
        extra = {"executor": "ray", "ray_engines": int(mode[3:] or 1)}
    return RunSpec.model_validate({
        "suites": ["mtbench"], "seeds": list(range(args.seeds)), "results_dir": str(work / "results"),
        "cache_path": str(work / "cache.sqlite"),
        "suite_options": {"mtbench": {"question_ids": list(MTBENCH_QUESTIONS[: args.questions]),
                                      "max_new_tokens": args.max_tokens}},
        "model": {"base": str(base), "served_name": "tiny", "engine": "inprocess", "dtype": "float32",
                  "max_model_len": 1024, "include_base": False,
                  "adapters": [{"name": f"a{i}", "path": str(p)} for i, p in enumerate(adapters)]},
        "judge": {"kind": "fake"}, **extra})


def tokens_generated(run_path: Path, tokenizer) -> int:
    total = 0
    for line in (run_path / "generations.jsonl").read_text().splitlines():
        row = json.loads(line)
        counts = row.get("token_counts")
        if counts and all(c is not None for c in counts):
            total += sum(counts)
        else:
            total += sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in row["outputs"])
    return total


LOCAL_STARTS: list[float] = []  # InProcessEngine.start durations in this process (local executor)


def time_local_engine_starts() -> None:
    from evalbench.serve.inprocess import InProcessEngine

    start = InProcessEngine.start

    def timed(self):
        t0 = time.perf_counter()
        try:
            return start(self)
        finally:
            LOCAL_STARTS.append(time.perf_counter() - t0)

    InProcessEngine.start = timed


def attempt(mode: str, base: Path, adapters: list[Path], args: argparse.Namespace, tokenizer) -> dict:
    from evalbench.api import run

    with tempfile.TemporaryDirectory(prefix=f"scaling-{mode}-") as tmp:
        spec = run_spec(mode, base, adapters, args, Path(tmp))
        LOCAL_STARTS.clear()
        start = time.perf_counter()
        handle = run(spec)
        wall = time.perf_counter() - start
        header = handle.header()
        engines = header.get("executor", {}).get("engines") or \
            [{"model": str(base), "engine_starts": len(LOCAL_STARTS), "engine_start_s": sum(LOCAL_STARTS)}]
        # Engines of one run start in parallel: the run waited for the slowest.
        engine_start = max(e.get("engine_start_s", 0.0) for e in engines)
        return {"mode": mode, "wall_s": wall, "engine_start_s": engine_start, "work_s": wall - engine_start,
                "tokens": tokens_generated(handle.path, tokenizer),
                "requests": header["model_calls"][-1]["generate"],
                "workers": len(engines), "engine_starts": [e["engine_starts"] for e in engines],
                "bases": sorted({e["model"] for e in engines})}


def start_ray(cpus: int):
    if "ray" not in sys.modules:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read at import: loopback only
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1", namespace="evalbench",
             object_store_memory=100 * 1024**2, log_to_driver=False, configure_logging=False)
    return ray


def table(results: list[dict], modes: list[str]) -> list[str]:
    lines = [("| mode | workers | median wall s | min-max s | median engine start s | median wall - engine start s "
             "| runs | engine starts per worker | tokens | requests |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    local = statistics.median(r["wall_s"] for r in results if r["mode"] == modes[0])
    for mode in modes:
        rows = [r for r in results if r["mode"] == mode]
        walls = [r["wall_s"] for r in rows]
        med = statistics.median(walls)
        starts = sorted({s for r in rows for s in r["engine_starts"]})
        lines.append(f"| {mode} | {rows[0]['workers']} | {med:.1f} ({med / local:.2f}x {modes[0]}) | "
                     f"{min(walls):.1f}-{max(walls):.1f} | "
                     f"{statistics.median(r['engine_start_s'] for r in rows):.1f} | "
                     f"{statistics.median(r['work_s'] for r in rows):.1f} | {len(rows)} | {starts} | "
                     f"{sorted({r['tokens'] for r in rows})} | {sorted({r['requests'] for r in rows})} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--adapters", type=int, default=2)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--questions", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--modes", default="local,ray1,ray2")
    p.add_argument("--ray-cpus", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("results/benchmarks.md"))
    args = p.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    import logging

    logging.basicConfig(level=logging.WARNING)
    from transformers import AutoTokenizer

    from evalbench.models.tiny import ensure_tiny_model

    base = ensure_tiny_model()
    time_local_engine_starts()
    tokenizer = AutoTokenizer.from_pretrained(base)
    adapter_dir = Path(tempfile.mkdtemp(prefix="scaling-adapters-"))
    adapters = [make_adapter(base, adapter_dir / f"a{i}", seed=i) for i in range(args.adapters)]
    if any(m.startswith("ray") for m in modes):
        start_ray(args.ray_cpus)

    results = []
    for rep in range(args.repeats):
        for mode in modes:  # interleaved: A B C, A B C, ...
            r = attempt(mode, base, adapters, args, tokenizer)
            results.append(r)
            print(f"repeat {rep} {mode:<6} {r['wall_s']:7.1f} s (engine start {r['engine_start_s']:.1f} s)  tokens {r['tokens']}  requests {r['requests']}  "
                  f"engine starts {r['engine_starts']}", flush=True)

    # Equal work and one engine per base model per worker, or the timings mean nothing.
    problems = []
    if len({r["tokens"] for r in results}) != 1:
        problems.append(f"modes generated different token counts: {sorted({r['tokens'] for r in results})}")
    if any(s != 1 for r in results for s in r["engine_starts"]):
        problems.append("a worker started its engine more than once")
    lines = table(results, modes)
    print("\n".join(lines))
    for problem in problems:
        print("CHECK FAILED:", problem)

    command = "EVALBENCH_DATA_DIR=/work/shared/data .venv/bin/python benchmarks/scaling.py " + \
        " ".join(shlex.quote(a) for a in sys.argv[1:])
    section = [
        "", f"## Scaling: local executor vs Ray workers ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
        f"`{command}`", "",
        (f"{args.adapters} adapters x {args.seeds} seeds, MT-bench generation ({args.questions} questions, both "
         f"turns, max {args.max_tokens} new tokens), fake judge; tiny model, vLLM CPU build in-process; Ray "
         f"single-node on 127.0.0.1 with {args.ray_cpus} CPUs; wall = the whole `api.run` (engine starts "
         f"included), fresh cache each run; modes interleaved, {args.repeats} repeats. Engine start: opening "
         f"the engine (in the Ray actor for ray modes; the slowest when several start at once); the "
         f"actor's own start and Ray's scheduling are in the remainder."), "",
        *lines, "",
        "Checks: " + ("; ".join(problems) if problems else
                      "every mode generated the same tokens; exactly one engine start per base model per worker."),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists():
        args.out.write_text("# evalbench benchmarks\n\nEach section: what was measured, the exact command, "
                            "and the numbers. Appended by the scripts in benchmarks/.\n")
    with open(args.out, "a") as fh:
        fh.write("\n".join(section) + "\n")
    print(f"appended to {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
