"""`evalbench reward score`: score {prompt, response} rows (or preference pairs) with a reward model.

    evalbench reward score --model runs/rm-s0 --data answers.jsonl [--out scored.jsonl]
    evalbench reward score --pairs --model runs/rm-s0 --data prefs.jsonl

The model is an `evalbench train --method rm` output directory or any one-label sequence-classification
model; scores are cached, so a rerun is free. Heavy imports happen inside the handler.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_command(subparsers) -> None:
    p = subparsers.add_parser("reward", help="use a trained reward model",
                              description="Reward-model utilities.")
    sub = p.add_subparsers(dest="reward_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("score", help="score {prompt, response} JSONL rows with a reward model",
                       description="Read JSONL rows {prompt, response, [checkpoint], ...} (prompt: a string or a "
                                   "message list) and write them back with `reward` added, to --out or stdout. "
                                   "Scores are cached (resumable).")
    s.add_argument("--pairs", action="store_true",
                   help="rows are preference pairs ({prompt, chosen, rejected}, HH or UltraFeedback, as for "
                        "training): write reward_chosen, reward_rejected and reward_margin, and print the "
                        "pairwise accuracy and reward mean/std to stderr")
    s.add_argument("--model", required=True, help="an `evalbench train --method rm` output directory, or a "
                                                  "sequence-classification model with one label")
    s.add_argument("--data", required=True, type=Path, help="JSONL rows {prompt, response, ...}")
    s.add_argument("--out", type=Path, help="output JSONL (written atomically; default: stdout)")
    s.add_argument("--batch-size", type=int, default=8, help="rows per reward-model forward (default: 8)")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the reward model runs (default: auto, CUDA when available)")
    s.add_argument("--skip-bad-rows", action="store_true",
                   help="write bad rows with reward null and an error instead of failing")
    s.add_argument("--no-cache", action="store_true", help="do not read or write the score cache")
    s.add_argument("--cache", type=Path, help="cache file (default: $EVALBENCH_HOME/cache.sqlite)")
    s.set_defaults(func=run_reward_score)


def run_reward_score(args: argparse.Namespace) -> int:
    from evalbench.errors import InputError
    from evalbench.train.reward import (
        load_reward_model,
        pair_summary,
        read_pair_rows,
        read_score_rows,
        score_file,
        score_pairs_file,
    )

    if args.batch_size < 1:
        raise InputError("must be >= 1", field="--batch-size")
    # bad input fails before the model loads
    (read_pair_rows if args.pairs else read_score_rows)(args.data, args.skip_bad_rows)
    cache = None
    if not args.no_cache:
        from evalbench.cache import Cache
        from evalbench.paths import cache_path as default_cache_path

        cache = Cache(args.cache or default_cache_path())
    rm = load_reward_model(args.model, device=args.device)
    scorer = score_pairs_file if args.pairs else score_file
    rows = scorer(rm, args.data, batch_size=args.batch_size, skip_bad_rows=args.skip_bad_rows, cache=cache)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.out:
        from evalbench.io import write_text_atomic

        write_text_atomic(args.out, text)
        print(f"{len(rows)} rows scored -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.pairs:
        print(_pair_line(pair_summary(rows)), file=sys.stderr)
    return 0


def _pair_line(summary: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    return (f"{summary['pairs']} pairs: accuracy {fmt(summary['accuracy'])} (ties {summary['ties']}), "
            f"margin {fmt(summary['margin_mean'])} ± {fmt(summary['margin_std'])}, chosen {fmt(summary['chosen_mean'])}, "
            f"rejected {fmt(summary['rejected_mean'])}, reward {fmt(summary['reward_mean'])} ± "
            f"{fmt(summary['reward_std'])}" + (f"; {summary['failed']} failed" if summary["failed"] else ""))
