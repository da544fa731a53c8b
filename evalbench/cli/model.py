"""`evalbench model build-tiny`: build the embedded default model (a tiny local Llama)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_command(subparsers) -> None:
    from evalbench.models.tiny import DEFAULT_PRETRAIN_STEPS, DEFAULT_SEED

    parser = subparsers.add_parser("model", help="build or manage local models",
                                   description="Build or manage local models.")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION")
    sub.required = True
    build = sub.add_parser(
        "build-tiny", help="build the tiny Llama used as the embedded default model",
        description="Train a byte-level BPE tokenizer and a 2-layer Llama (hidden 128, head_dim 64) on "
                    "local text, and save it with save_pretrained (float32 safetensors, tokenizer with "
                    "a ChatML chat template, generation_config, tiny_meta.json). The same seed gives "
                    "identical files. Prints the model directory.")
    build.add_argument("--out", metavar="DIR",
                       help="output directory (default: $EVALBENCH_HOME/models/tiny-seed<S>, "
                            "EVALBENCH_HOME defaulting to ~/.cache/evalbench)")
    build.add_argument("--seed", type=int, default=DEFAULT_SEED, help="weight init and batch order seed "
                       "(default: %(default)s)")
    build.add_argument("--pretrain-steps", type=_non_negative, default=DEFAULT_PRETRAIN_STEPS,
                       help="causal-LM steps on the local corpus; 0 keeps random weights "
                            "(default: %(default)s, 20-50 s on 2 CPU cores)")
    build.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    build.add_argument("--with-data-text", action="store_true",
                       help="also train on the AlpacaEval instructions and reference answers from the "
                            "data dir (--data-dir / EVALBENCH_DATA_DIR); off by default so the build is "
                            "hermetic")
    build.set_defaults(func=_build_tiny)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _build_tiny(args: argparse.Namespace) -> int:
    from evalbench.models.tiny import build_tiny_model, default_tiny_model_dir

    out = args.out if args.out else default_tiny_model_dir(args.seed, args.pretrain_steps)
    path = build_tiny_model(out, seed=args.seed, pretrain_steps=args.pretrain_steps,
                            overwrite=args.overwrite, include_data_text=args.with_data_text)
    print(path)
    return 0
