"""`evalbench train` (`evalbench reward score` is in evalbench.cli.reward).

    evalbench train --method dpo --base tiny --data prefs/hh_rlhf_harmless_base_test.jsonl \\
        --out runs/dpo-s0 --seed 0 [--config dpo --profile tiny] [--set k=v ...]

Flags override the recipe (`--config`, a path or a packaged recipe name), and `--set
key.path=value` overrides both. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

_TRUE = {"action": "store_const", "const": True, "default": None}


def add_command(subparsers) -> None:
    """Register `evalbench train`."""
    from evalbench.train.spec import METHODS

    methods = "; ".join(f"{n}: {METHODS.get(n).summary}" for n in METHODS.names())
    p = subparsers.add_parser(
        "train", help="train a LoRA/QLoRA preference adapter (dpo, ipo, orpo, simpo, kto, wpo, rm, ...)",
        description="Train a peft LoRA (or QLoRA) adapter with a preference loss. The output directory is "
                    "the adapter (serve it with vLLM --lora-modules NAME=DIR) plus train_meta.json, "
                    f"metrics.jsonl and training_curves.png. Methods: {methods}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("run")
    g.add_argument("--config", help="YAML recipe: a path or the name of a packaged recipe (dpo, ipo, kto, orpo_qlora, rm, wpo)")
    g.add_argument("--profile", help="a profile of the recipe (e.g. tiny)")
    g.add_argument("--method", help=f"one of: {', '.join(METHODS.names())}")
    g.add_argument("--base", help="base model: local dir, hub id, or 'tiny' (the embedded tiny model)")
    g.add_argument("--data", help="preference data: .jsonl/.json/.parquet, a path under the data dir, or a "
                                  "hub dataset id")
    g.add_argument("--out", help="output directory (becomes the adapter directory)")
    g.add_argument("--seed", type=int)
    g.add_argument("--max-steps", type=int, help="optimiser steps (wins over the recipe's epochs)")
    g.add_argument("--epochs", type=float, help="passes over the data; replaces a recipe's max_steps (give "
                                                "at most one of --epochs and --max-steps)")
    g.add_argument("--overwrite", **_TRUE, help="replace an existing output directory")
    g.add_argument("--resume", **_TRUE, help="continue from the last checkpoint in --out")
    g.add_argument("--save-steps", type=int, help="save a resumable checkpoint every N steps")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any spec field, e.g. --set loss.beta_schedule=cosine (repeatable)")
    g = p.add_argument_group("loss")
    g.add_argument("--beta", type=float, help="β (start value when annealed)")
    g.add_argument("--beta-end", type=float, help="β at the last step (with --beta-schedule)")
    g.add_argument("--beta-schedule", choices=["constant", "linear", "cosine"])
    g.add_argument("--label-smoothing", type=float, help="cdpo's ε")
    g.add_argument("--divergence", choices=["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"],
                   help="f-divergence (fdpo, and cdpo/ipo/slic)")
    g.add_argument("--alpha", type=float, help="α of the alpha_divergence")
    g.add_argument("--reference-free", **_TRUE, help="slic: reference-free rank hinge")
    g.add_argument("--orpo-lambda", type=float)
    g.add_argument("--simpo-gamma", type=float)
    g.add_argument("--wpo", **_TRUE, help="WPO weighting on a paired loss or kto")
    g.add_argument("--wpo-alignment", choices=["sampled", "greedy", "none"])
    g.add_argument("--wpo-variant", choices=["wpo", "wpo_w", "wpo_l"])
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay")
    g.add_argument("--batch-size", type=int, help="pairs per micro-batch")
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step")
    g.add_argument("--warmup-ratio", type=float)
    g.add_argument("--max-grad-norm", type=float)
    g.add_argument("--lora-r", type=int)
    g.add_argument("--lora-alpha", type=float)
    g.add_argument("--lora-dropout", type=float)
    g.add_argument("--target-modules", help="comma-separated LoRA target modules")
    g.add_argument("--qlora", **_TRUE, help="load the base in 4-bit NF4 (bitsandbytes)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    g.add_argument("--device", choices=["auto", "cpu", "cuda"])
    g.add_argument("--gradient-checkpointing", **_TRUE)
    g.add_argument("--precompute-ref", **_TRUE, help="reference log-probs once, cached on disk")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--report-to", help="comma-separated: wandb, tensorboard")
    g = p.add_argument_group("data")
    g.add_argument("--max-length", type=int)
    g.add_argument("--max-prompt-length", type=int)
    g.add_argument("--overlong", choices=["truncate", "skip", "error"])
    g.add_argument("--limit", type=int, help="use the first N usable rows")
    g.add_argument("--skip-bad-rows", **_TRUE, help="skip (and count) malformed rows instead of failing")
    g.add_argument("--system-prompt")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-data", help="held-out preference data (same formats as --data), evaluated during "
                                       "training; tokenized like --data")
    g.add_argument("--eval-split", help="split of a hub --eval-data; unset: the --data split")
    g.add_argument("--eval-fraction", type=float, help="hold out this fraction of the --data rows instead (not "
                                                       "trained on; the same rows for every seed)")
    g.add_argument("--eval-limit", type=int, help="evaluate at most N held-out rows")
    g.add_argument("--eval-every", type=int, help="evaluate the held-out rows every N optimiser steps (always "
                                                  "before and after training)")
    g.add_argument("--eval-batch-size", type=int, help="examples per evaluation / reference forward "
                                                       "(unset: 2 x --batch-size)")
    g.add_argument("--eval-examples", type=int, help="training examples scored before and after training "
                                                     "(0: off)")
    p.set_defaults(func=run_train)


def spec_from_args(args: argparse.Namespace):
    """argparse namespace -> validated TrainSpec (recipe < profile < flags < --set)."""
    from evalbench.train.spec import load_train_spec

    def csv(value: str | None) -> tuple[str, ...] | None:
        return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None

    fields: dict[str, Any] = {
        "method": args.method, "base": args.base, "out": args.out, "seed": args.seed,
        "max_steps": args.max_steps, "epochs": args.epochs, "overwrite": args.overwrite, "resume": args.resume,
        "save_steps": args.save_steps, "precision": args.precision, "device": args.device,
        "gradient_checkpointing": args.gradient_checkpointing, "precompute_ref": args.precompute_ref,
        "threads": args.threads, "report_to": csv(args.report_to),
        "eval_batch_size": args.eval_batch_size, "eval_examples": args.eval_examples,
        "held_out": {"data": args.eval_data, "split": args.eval_split, "fraction": args.eval_fraction,
                     "limit": args.eval_limit, "every": args.eval_every},
        "quantization": "nf4" if args.qlora else None,
        "data": {"path": args.data, "max_length": args.max_length, "max_prompt_length": args.max_prompt_length,
                 "overlong": args.overlong, "limit": args.limit, "skip_bad_rows": args.skip_bad_rows,
                 "system_prompt": args.system_prompt},
        "loss": {"beta": args.beta, "beta_end": args.beta_end, "beta_schedule": args.beta_schedule,
                 "label_smoothing": args.label_smoothing, "divergence": args.divergence, "alpha": args.alpha,
                 "reference_free": args.reference_free, "orpo_lambda": args.orpo_lambda,
                 "simpo_gamma": args.simpo_gamma},
        "wpo": {"enabled": args.wpo, "alignment": args.wpo_alignment, "variant": args.wpo_variant},
        "optim": {"lr": args.lr, "weight_decay": args.weight_decay, "batch_size": args.batch_size, "grad_accum": args.grad_accum,
                  "warmup_ratio": args.warmup_ratio, "max_grad_norm": args.max_grad_norm},
        "lora": {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                 "target_modules": csv(args.target_modules)},
    }
    return load_train_spec(args.config, profile=args.profile, overrides=args.overrides, **fields)


def run_train(args: argparse.Namespace) -> int:
    from evalbench.train.trainer import META_FILE, train

    spec = spec_from_args(args)
    out = train(spec)
    meta = json.loads((out / META_FILE).read_text())
    last = meta.get("last") or {}
    after = (meta.get("eval") or {}).get("after") or {}
    held = (meta.get("held_out") or {}).get("after")

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"

    line = (f"{spec.method} seed {spec.seed}: {meta['steps']['done']} steps in {meta.get('train_time_s', 0):.1f}s; "
            f"last loss {fmt(last.get('loss'))}; train-set accuracy {fmt(after.get('rewards/accuracies'))}, "
            f"margin {fmt(after.get('rewards/margins'))}")
    if held:
        line += (f"; held-out loss {fmt(held.get('loss'))}, accuracy {fmt(held.get('rewards/accuracies'))}, "
                 f"margin {fmt(held.get('rewards/margins'))}")
    print(line)
    print(out)
    return 0
