"""evalbench's DPO trainer against TRL's `DPOTrainer`: same model, data, batch, LoRA, steps.

Each side trains in a fresh interpreter (`--worker evalbench|trl`), so imports, allocator state and
peak memory do not leak from one into the other. A worker reports
- `steps_per_s`: optimiser steps / seconds of the training loop only (evalbench: `train_time_s`
  of train_meta.json; TRL: `on_train_begin` -> `on_train_end` of a callback); model loading and
  tokenization are outside, so the two loops are compared like for like;
- `peak_rss_mib`: `resource.getrusage(RUSAGE_SELF).ru_maxrss` of the worker at exit (this includes
  what each library imports), and the `VmHWM` of /proc/self/status as a cross-check;
- `steps_per_cpu_s`: steps / process CPU seconds of the same loop, steadier than wall-clock when
  other jobs share the machine;
- `wall_s`: the whole worker, imports included, for context.
The parent runs the two sides alternately `--repeats` times and prints medians and the ratios
evalbench / TRL (targets: speed >= 1.2x, memory <= 1.0x).

Workload: the embedded tiny model (`evalbench model build-tiny`), the first `--pairs` HH pairs from
the data dir (`prefs/hh_rlhf_harmless_base_test.jsonl`) whose chat-templated prompt and completions
fit in `--max-length` / `--max-prompt-length` without truncation (so both libraries see the same
tokens: TRL 1.16 only truncates whole sequences), as conversational rows. DPO sigmoid loss, β 0.1,
LoRA r 8 / alpha 16 / dropout 0 on q,k,v,o, AdamW lr 1e-3, 10 % warm-up, cosine, clip 1.0, fp32 on
CPU. Reference log-probs are computed each step with the adapter disabled on both sides, or, with
`--precompute-ref`, once before the loop on both sides (outside the measured loop time on both;
evalbench starts from an empty cache). Both use the default torch thread count unless `--threads` is given.

    EVALBENCH_DATA_DIR=../shared/data python benchmarks/trainer_vs_trl.py --steps 30 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HH = "prefs/hh_rlhf_harmless_base_test.jsonl"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def peak_rss() -> dict[str, float]:
    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KiB on Linux
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["vmhwm_mib"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def select_rows(model_dir: Path, n: int, max_length: int, max_prompt_length: int) -> list[dict]:
    """The first `n` HH pairs that fit without truncation, as TRL conversational rows."""
    from transformers import AutoTokenizer

    from evalbench.data import resolve
    from evalbench.io import iter_jsonl
    from evalbench.train.data import RowError, RowRef, parse_pair

    tok = AutoTokenizer.from_pretrained(model_dir)

    def n_tokens(messages: list[dict], generation_prompt: bool = False) -> int:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    rows = []
    for line, raw in iter_jsonl(resolve(HH)):
        try:
            _, pair = parse_pair(raw, RowRef(HH, line))
        except RowError:
            continue
        # +1: tokenizing prompt and completion separately can split one more token at the seam
        fits = n_tokens(list(pair.prompt), True) <= max_prompt_length and all(
            n_tokens(list(pair.prompt) + list(c)) + 1 <= max_length for c in (pair.chosen, pair.rejected))
        if fits:
            rows.append({"prompt": list(pair.prompt), "chosen": list(pair.chosen), "rejected": list(pair.rejected)})
        if len(rows) == n:
            return rows
    raise SystemExit(f"only {len(rows)} HH pairs fit in max_length={max_length}")


# --------------------------------------------------------------------------- workers


def worker_evalbench(args, data: Path, model_dir: Path, out: Path) -> dict:
    from evalbench.train.spec import load_train_spec
    from evalbench.train.trainer import train

    spec = load_train_spec(
        method="dpo", base=str(model_dir), out=str(out), seed=args.seed, max_steps=args.steps, eval_examples=0,
        plots=False, precompute_ref=args.precompute_ref, threads=args.threads, ref_cache_dir=str(out) + "-ref",
        data={"path": str(data), "max_length": args.max_length, "max_prompt_length": args.max_prompt_length},
        loss={"beta": 0.1},
        lora={"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": LORA_TARGETS},
        optim={"lr": 1e-3, "batch_size": args.batch_size, "warmup_ratio": 0.1, "lr_schedule": "cosine",
               "max_grad_norm": 1.0})
    train(spec)
    meta = json.loads((out / "train_meta.json").read_text())
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert meta["data"]["truncation"]["prompts_truncated"] == 0
    assert meta["data"]["truncation"]["completions_truncated"] == 0
    return {"loop_s": meta["train_time_s"], "loop_cpu_s": meta["train_cpu_s"], "first_loss": losses[0],
            "last_loss": losses[-1]}


def worker_trl(args, data: Path, model_dir: Path, out: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    times: dict[str, float] = {}
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            times["begin"], times["cpu_begin"] = time.perf_counter(), time.process_time()

        def on_train_end(self, *a, **k):
            times["end"], times["cpu_end"] = time.perf_counter(), time.process_time()

        def on_log(self, _args, _state, _control, logs=None, **k):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    cfg = DPOConfig(output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                    learning_rate=1e-3, lr_scheduler_type="cosine", warmup_steps=0.1, max_grad_norm=1.0,
                    beta=0.1, loss_type="sigmoid", max_length=args.max_length, save_strategy="no",
                    report_to=[], use_cpu=True, bf16=False, logging_steps=1, seed=args.seed,
                    dataloader_num_workers=0, disable_tqdm=True,
                    precompute_ref_log_probs=args.precompute_ref)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS,
                                                task_type="CAUSAL_LM"),
                         callbacks=[Clock()])
    trainer.train()
    return {"loop_s": times["end"] - times["begin"], "loop_cpu_s": times["cpu_end"] - times["cpu_begin"],
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None}


WORKERS = {"evalbench": worker_evalbench, "trl": worker_trl}


def run_worker(args) -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = WORKERS[args.worker](args, Path(args.data), Path(args.model), Path(tmp) / "out")
    result["steps_per_s"] = args.steps / result["loop_s"]
    result["steps_per_cpu_s"] = args.steps / result["loop_cpu_s"]
    result["wall_s"] = time.perf_counter() - t0
    result.update(peak_rss())
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--max-prompt-length", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precompute-ref", action="store_true",
                   help="both sides compute reference log-probs once before training (evalbench: cached on "
                        "disk, cache cleared first; TRL: precompute_ref_log_probs)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        run_worker(args)
        return

    from evalbench.models.tiny import ensure_tiny_model

    model_dir = ensure_tiny_model()
    rows = select_rows(model_dir, args.pairs, args.max_length, args.max_prompt_length)
    results: dict[str, list[dict]] = {"evalbench": [], "trl": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        for rep in range(args.repeats):
            order = ["evalbench", "trl"] if rep % 2 == 0 else ["trl", "evalbench"]  # alternate: drift cancels
            for side in order:
                cmd = [sys.executable, __file__, "--worker", side, "--data", str(data), "--model", str(model_dir),
                       "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--seed", str(args.seed),
                       "--max-length", str(args.max_length), "--max-prompt-length", str(args.max_prompt_length)]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                if args.precompute_ref:
                    cmd += ["--precompute-ref"]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if proc.returncode != 0 or line is None:
                    sys.stderr.write(proc.stderr[-4000:])
                    raise SystemExit(f"{side} worker failed (exit {proc.returncode})")
                res = json.loads(line[len("RESULT "):])
                results[side].append(res)
                print(f"run {rep + 1}/{args.repeats} {side:9s} steps/s {res['steps_per_s']:.3f}  "
                      f"steps/CPU-s {res['steps_per_cpu_s']:.3f}  "
                      f"peak RSS {res['peak_rss_mib']:.0f} MiB  loop {res['loop_s']:.1f}s  wall {res['wall_s']:.1f}s  "
                      f"loss {res['first_loss']:.4f} -> {res['last_loss']:.4f}", flush=True)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    speed = med("evalbench", "steps_per_s") / med("trl", "steps_per_s")
    cpu_speed = med("evalbench", "steps_per_cpu_s") / med("trl", "steps_per_cpu_s")
    memory = med("evalbench", "peak_rss_mib") / med("trl", "peak_rss_mib")
    print(f"\n{args.pairs} pairs, {args.steps} steps, batch {args.batch_size}, max_length {args.max_length}, "
          f"reference {'precomputed' if args.precompute_ref else 'each step'}, {os.cpu_count()} CPUs, "
          f"torch threads {args.threads or 'default'}, {args.repeats} repeats (medians), "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    for side in ("evalbench", "trl"):
        print(f"  {side:9s}  {med(side, 'steps_per_s'):.3f} steps/s   {med(side, 'steps_per_cpu_s'):.3f} steps/CPU-s   "
              f"peak RSS {med(side, 'peak_rss_mib'):.0f} MiB")
    print(f"  speed  evalbench/TRL = {speed:.2f}x wall-clock, {cpu_speed:.2f}x per CPU-second "
          f"(target >= 1.2x: {'met' if speed >= 1.2 else 'NOT met'} on wall-clock; on a shared machine the "
          f"CPU-time ratio is the steadier one)")
    print(f"  memory evalbench/TRL = {memory:.2f}x  (target <= 1.0x: {'met' if memory <= 1.0 else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"},
                                         "results": results, "speed_ratio": speed, "cpu_speed_ratio": cpu_speed,
                                         "memory_ratio": memory},
                                        indent=2, default=str))


if __name__ == "__main__":
    main()
