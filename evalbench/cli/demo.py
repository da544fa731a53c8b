"""`evalbench demo`: the IMDB-style DPO experiment end to end on the tiny local model, on CPU.

What the demo does, its recipes and its pure parts (pair building, specs) are in `evalbench.demo`;
this module parses the options, sequences the steps and prints.
"""

from __future__ import annotations

import argparse

from evalbench.cli.options import add_results_option


def add_command(subparsers) -> None:
    from evalbench.cli.argtypes import positive_int
    from evalbench.demo import METHODS, TRAIN, TRAIN_SEEDS

    parser = subparsers.add_parser("demo", help="the IMDB-style DPO experiment end to end on the tiny local model "
                                                "(CPU)")
    add_results_option(parser)
    parser.add_argument("--limit", type=positive_int,
                        help="AlpacaEval / MT-bench items (default: the recipe's 8 / 8; the reward suite always "
                             "uses its 64 prompts)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"training methods of demo_train.yaml (default: {','.join(METHODS)}; also: "
                             f"{','.join(m for m in TRAIN['methods'] if m not in METHODS)})")
    parser.add_argument("--train-seeds", default=",".join(map(str, TRAIN_SEEDS)),
                        help=f"training seeds per method, comma-separated (default: {','.join(map(str, TRAIN_SEEDS))})")
    parser.add_argument("--no-judged", action="store_true",
                        help="leave out the AlpacaEval / MT-bench pipeline proofs (reward suite only)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from evalbench.aggregate.summarize import load_runs
    from evalbench.api import run as run_spec
    from evalbench.cli.run import compare_and_export
    from evalbench.demo import (
        BASE,
        NOT_MEANINGFUL,
        REAL_MODELS,
        TRAIN,
        eval_spec,
        finished_run,
        sample_pairs,
        side_by_side_text,
        train_adapters,
        zero_adapter,
    )
    from evalbench.models.tiny import ensure_tiny_model
    from evalbench.report.report import build_report

    started = time.monotonic()
    print("== evalbench demo: the IMDB-style DPO experiment on the tiny local model, on CPU", flush=True)
    base = ensure_tiny_model()
    results = args.results
    demo_root = results / "demo"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.train_seeds.split(",") if s.strip()]

    pairs, n_prompts = sample_pairs(base, demo_root, results)
    n_pairs = sum(1 for _ in pairs.open(encoding="utf-8"))
    print(f"{'pairs:':<20}{pairs} ({n_pairs} of {n_prompts} prompts: VADER gap > {TRAIN['pair_margin']})",
          flush=True)
    adapters = train_adapters(demo_root / "adapters", base, methods, seeds, pairs)

    # The base model as a zero LoRA adapter (evalbench.demo.zero_adapter: why).
    base_adapter = zero_adapter(adapters[0], demo_root / "base_adapter")
    spec = eval_spec(base, demo_root, results, args.limit, judged=not args.no_judged, base_adapter=base_adapter)
    # A finished evaluation is reused unless an adapter changed since (a rerun takes seconds).
    inputs = [f for a in [*adapters, base_adapter] for f in a.glob("adapter_model.*")]
    handle = finished_run(spec, inputs) or run_spec(spec)
    print(f"run {handle.run_id}: {handle.path}\n", flush=True)
    if not args.no_judged:
        print(f"note: {NOT_MEANINGFUL}\n")
    compare_and_export(handle, spec)
    runs = load_runs([handle.path], with_samples=True)
    report = build_report(runs, demo_root / "report", baseline=spec.baseline, frontier_diversity="distinct_1")
    frontier = next((p for p in report.images if p.name.startswith("frontier_")), None)
    print(f"{'report:':<20}{report.markdown}")
    if frontier is not None:
        print(f"{'frontier plot:':<20}{frontier}")
    shown = [BASE, *[f"{m}-seed{seeds[0]}" for m in methods]]
    print(f"\nside by side (evalbench show {handle.path} --suite reward --disagree "
          f"--checkpoints {','.join(shown)}):")
    print(side_by_side_text(handle, shown))
    if not args.no_judged:
        print(f"note: {NOT_MEANINGFUL}")
    print(f"demo finished in {time.monotonic() - started:.0f} s\n")
    print(REAL_MODELS)
    return 0
