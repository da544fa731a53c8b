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


def _default(path: str) -> str:
    """TrainSpec's default of a dotted field (`optim.lr`), as the help shows it: the value a run gets
    when neither a flag, the recipe, its profile nor --set gives one. (The flags themselves default
    to None so that a recipe's value is not overridden, which is why argparse's own default is not
    shown.)"""
    from pydantic_core import PydanticUndefined

    from evalbench.train.spec import TrainSpec

    model: Any = TrainSpec
    *parents, name = path.split(".")
    for part in parents:
        model = model.model_fields[part].annotation
    field = model.model_fields[name]
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    return "unset" if value is None else str(value)


def _d(path: str, unset: str | None = None) -> str:
    """' (default: X)' for a help text; `unset` explains what happens when the default is None."""
    value = _default(path)
    return f" (default: {unset if value == 'unset' and unset else value})"


def add_command(subparsers) -> None:
    """Register `evalbench train`."""
    from evalbench.train.spec import METHODS

    methods = "; ".join(f"{n}: {METHODS.get(n).summary}" for n in METHODS.names())
    p = subparsers.add_parser(
        "train", help="train a LoRA/QLoRA preference adapter (dpo, ipo, orpo, simpo, kto, wpo, rm, ...)",
        description="Train a peft LoRA (or QLoRA) adapter with a preference loss. The output directory is "
                    "the adapter (serve it with vLLM --lora-modules NAME=DIR) plus train_meta.json, "
                    f"metrics.jsonl and training_curves.png. Methods: {methods}. Precedence: recipe (--config) "
                    "< its --profile < flags < --set; a default shown is the one used when none of them sets it.")
    g = p.add_argument_group("run")
    g.add_argument("--config", help="YAML recipe: a path or the name of a packaged recipe (dpo, ipo, kto, "
                                    "orpo_qlora, rm, wpo) (default: none, flags only)")
    g.add_argument("--profile", help="a profile of the recipe, e.g. tiny (default: none)")
    g.add_argument("--method", help=f"one of: {', '.join(METHODS.names())} (required unless the recipe sets it)")
    g.add_argument("--base", help="base model: local dir, hub id, or 'tiny' (the embedded tiny model) "
                                  "(required unless the recipe sets it)")
    g.add_argument("--data", help="preference data: .jsonl/.json/.parquet, a path under the data dir, or a "
                                  "hub dataset id (required unless the recipe sets it)")
    g.add_argument("--out", help="output directory (becomes the adapter directory) (required unless the recipe "
                                 "sets it)")
    g.add_argument("--seed", type=int, help="training seed: LoRA init, data order, dropout" + _d("seed"))
    g.add_argument("--max-steps", type=int, help="optimiser steps (wins over the recipe's epochs)"
                   + _d("max_steps", "--epochs decides"))
    g.add_argument("--epochs", type=float, help="passes over the data; replaces a recipe's max_steps (give "
                                                "at most one of --epochs and --max-steps)" + _d("epochs"))
    g.add_argument("--overwrite", **_TRUE, help="replace an existing output directory" + _d("overwrite"))
    g.add_argument("--resume", **_TRUE, help="continue from the last checkpoint in --out" + _d("resume"))
    g.add_argument("--save-steps", type=int, help="save a resumable checkpoint every N steps"
                   + _d("save_steps", "only the final adapter"))
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any spec field, e.g. --set loss.beta_schedule=cosine (repeatable)")
    g = p.add_argument_group("loss")
    g.add_argument("--beta", type=float, help="β (start value when annealed)" + _d("loss.beta"))
    g.add_argument("--beta-end", type=float, help="β at the last step (with --beta-schedule)"
                   + _d("loss.beta_end", "unset: β stays constant"))
    g.add_argument("--beta-schedule", choices=["constant", "linear", "cosine"],
                   help="how β moves from --beta to --beta-end" + _d("loss.beta_schedule"))
    g.add_argument("--label-smoothing", type=float, help="cdpo's ε" + _d("loss.label_smoothing"))
    g.add_argument("--divergence", choices=["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"],
                   help="f-divergence (fdpo, and cdpo/ipo/slic)" + _d("loss.divergence"))
    g.add_argument("--alpha", type=float, help="α of the alpha_divergence" + _d("loss.alpha"))
    g.add_argument("--reference-free", **_TRUE, help="slic: reference-free rank hinge" + _d("loss.reference_free"))
    g.add_argument("--orpo-lambda", type=float, help="orpo: weight λ of the odds-ratio term" + _d("loss.orpo_lambda"))
    g.add_argument("--simpo-gamma", type=float, help="simpo: target reward margin γ" + _d("loss.simpo_gamma"))
    g.add_argument("--wpo", **_TRUE, help="WPO weighting on a paired loss or kto" + _d("wpo.enabled"))
    g.add_argument("--wpo-alignment", choices=["sampled", "greedy", "none"],
                   help="WPO: the per-token normaliser; sampled: the policy's own sampling probability (the "
                        "paper's), greedy: its top token, none: 1" + _d("wpo.alignment"))
    g.add_argument("--wpo-variant", choices=["wpo", "wpo_w", "wpo_l"],
                   help="WPO: weight by both responses (wpo), only the chosen (wpo_w) or only the rejected (wpo_l)"
                   + _d("wpo.variant"))
    g = p.add_argument_group("optimisation")
    g.add_argument("--lr", type=float, help="peak learning rate (AdamW)" + _d("optim.lr"))
    g.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay" + _d("optim.weight_decay"))
    g.add_argument("--batch-size", type=int, help="pairs per micro-batch" + _d("optim.batch_size"))
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimiser step" + _d("optim.grad_accum"))
    g.add_argument("--warmup-ratio", type=float, help="share of the steps spent warming the learning rate up"
                   + _d("optim.warmup_ratio"))
    g.add_argument("--max-grad-norm", type=float, help="gradient-norm clipping threshold"
                   + _d("optim.max_grad_norm", "no clipping"))
    g.add_argument("--lora-r", type=int, help="LoRA rank" + _d("lora.r"))
    g.add_argument("--lora-alpha", type=float, help="LoRA scaling α (the update is scaled by α / r)"
                   + _d("lora.alpha"))
    g.add_argument("--lora-dropout", type=float, help="dropout on the LoRA input" + _d("lora.dropout"))
    g.add_argument("--target-modules", help="comma-separated LoRA target modules" + _d("lora.target_modules"))
    g.add_argument("--qlora", **_TRUE, help="load the base in 4-bit NF4 (bitsandbytes) (default: off)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="training precision; auto: bf16 autocast on a CUDA GPU that supports it, else fp32"
                   + _d("precision"))
    g.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="where to train; auto: CUDA when available" + _d("device"))
    g.add_argument("--gradient-checkpointing", **_TRUE, help="recompute activations in the backward pass "
                   "(less memory, slower)" + _d("gradient_checkpointing"))
    g.add_argument("--precompute-ref", **_TRUE, help="reference log-probs once, cached on disk"
                   + _d("precompute_ref"))
    g.add_argument("--threads", type=int, help="torch CPU threads" + _d("threads", "torch's choice"))
    g.add_argument("--report-to", help="comma-separated: wandb, tensorboard" + _d("report_to"))
    g = p.add_argument_group("data")
    g.add_argument("--max-length", type=int, help="tokens of prompt + response" + _d("data.max_length"))
    g.add_argument("--max-prompt-length", type=int, help="tokens of the prompt" + _d("data.max_prompt_length"))
    g.add_argument("--overlong", choices=["truncate", "skip", "error"],
                   help="what to do with a row longer than the limits" + _d("data.overlong"))
    g.add_argument("--limit", type=int, help="use the first N usable rows" + _d("data.limit", "every row"))
    g.add_argument("--skip-bad-rows", **_TRUE, help="skip (and count) malformed rows instead of failing"
                   + _d("data.skip_bad_rows"))
    g.add_argument("--system-prompt", help="system message put before every prompt"
                   + _d("data.system_prompt", "none"))
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-data", help="held-out preference data (same formats as --data), evaluated during "
                                       "training; tokenized like --data" + _d("held_out.data", "none"))
    g.add_argument("--eval-split", help="split of a hub --eval-data" + _d("held_out.split", "the --data split"))
    g.add_argument("--eval-fraction", type=float, help="hold out this fraction of the --data rows instead (not "
                                                       "trained on; the same rows for every seed)"
                   + _d("held_out.fraction"))
    g.add_argument("--eval-limit", type=int, help="evaluate at most N held-out rows"
                   + _d("held_out.limit", "every held-out row"))
    g.add_argument("--eval-every", type=int, help="evaluate the held-out rows every N optimiser steps (always "
                                                  "before and after training)"
                   + _d("held_out.every", "only before and after"))
    g.add_argument("--eval-batch-size", type=int, help="examples per evaluation / reference forward"
                   + _d("eval_batch_size", "2 x --batch-size"))
    g.add_argument("--eval-examples", type=int, help="training examples scored before and after training "
                                                     "(0: off)" + _d("eval_examples"))
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
