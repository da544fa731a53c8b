"""`evalbench export` (leaderboard CSVs), `evalbench report` (Markdown/HTML + plots), `evalbench analyze`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evalbench.cli.options import add_results_option, add_stats_options, split_list


def add_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write the leaderboard CSV (one row per checkpoint group) and an AlpacaEval leaderboard",
        description="One row per checkpoint group: model, adapter, method, seeds, judge, spec hash, evalbench "
                    "version, then per suite and metric the mean, std, t-interval, n and the difference and "
                    "(corrected) p-value against --baseline.")
    p.add_argument("runs_pos", nargs="*", metavar="RUN_OR_DIR", help="run directories, results roots or run ids")
    p.add_argument("--runs", action="append", default=[], metavar="DIR",
                   help="runs to export (repeatable; default: <results>/runs)")
    p.add_argument("--out", type=Path, help="leaderboard file (default: <results>/leaderboard.csv)")
    p.add_argument("--format", choices=("csv", "latex"), default=None,
                   help="csv, or latex (a booktabs table of mean (std)); default: latex for an --out ending in "
                        ".tex, else csv")
    add_stats_options(p, baseline_help="checkpoint group to test every group against (default: no tests)",
                      test=False, conf=False)
    p.add_argument("--alpaca-out", type=Path, help="also write an AlpacaEval-compatible leaderboard CSV here "
                   "(default: none)")
    p.add_argument("--alpaca-mode", default="community", help="its `mode` column (default: community)")
    p.add_argument("--alpaca-merge", type=Path, help="merge into this published AlpacaEval leaderboard CSV "
                   "(default: none)")
    add_results_option(p)
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from evalbench.aggregate.summarize import load_runs
    from evalbench.report.export import export_leaderboard

    targets = [*args.runs_pos, *args.runs] or [args.results]
    runs = load_runs(targets, results_root=args.results)
    out = args.out if args.out is not None else args.results / "leaderboard.csv"
    paths = export_leaderboard(runs, out, baseline=args.baseline, metrics=split_list(args.metrics),
                               correction=args.correction, alpha=args.alpha, iters=args.iters, seed=args.seed,
                               alpaca_out=args.alpaca_out, alpaca_mode=args.alpaca_mode,
                               alpaca_merge=args.alpaca_merge, fmt=args.format)
    for p in paths:
        print(f"wrote {p}")
    return 0


def add_report(subparsers) -> None:
    p = subparsers.add_parser("report", help="Markdown + HTML report with plots for one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN_OR_DIR", help="run directories, results roots or run ids")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    add_stats_options(p, baseline_help="baseline checkpoint group (default: the first one)", conf=False)
    p.add_argument("--title", default="evalbench report", help="title of the report (default: evalbench report)")
    p.add_argument("--format", dest="formats", action="append", choices=("png", "pdf", "svg"), default=None,
                   help="also write every plot in this format, for papers (repeatable; PNG is always written "
                        "and embedded in report.html)")
    p.add_argument("--frontier-diversity", metavar="METRIC",
                   help="x axis of the reward-vs-diversity plot: entropy, entropy_per_token, pid_diversity, "
                        "distinct_1, distinct_2 ... or SUITE:METRIC (default: the first of entropy, pid_diversity, "
                        "distinct_2, distinct_1 the runs have; the reward suite's own before the diversity suite's)")
    p.add_argument("--side-by-side", type=int, default=3, metavar="N",
                   help="prompts per suite shown side by side across checkpoints (default 3; 0: none)")
    add_results_option(p)
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from evalbench.aggregate.summarize import load_runs
    from evalbench.report.report import build_report

    runs = load_runs(args.runs, results_root=args.results)
    files = build_report(runs, args.out, baseline=args.baseline, metrics=split_list(args.metrics), test=args.test,
                         correction=args.correction, alpha=args.alpha, iters=args.iters, seed=args.seed,
                         title=args.title, formats=["png", *(args.formats or [])],
                         frontier_diversity=args.frontier_diversity, side_by_side_prompts=args.side_by_side)
    print(f"wrote {files.markdown}, {files.html} and {len(files.images)} plot(s)")
    return 0


def add_analyze(subparsers) -> None:
    p = subparsers.add_parser("analyze", help="analyses of scored outputs (reward-model studies)")
    sub = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    sub.required = True
    r = sub.add_parser("rewards", help="reward distributions, Welch tests, length bias, readability, keywords",
                       description="Analyse JSONL rows {checkpoint, prompt, response, reward}.")
    r.add_argument("--scores", type=Path, required=True,
                   help="JSONL written by `evalbench reward score` (required); from `reward score --pairs`: "
                        "pairwise accuracy and a paired chosen-vs-rejected test instead")
    r.add_argument("--json", action="store_true", help="print the full analysis as JSON")
    r.add_argument("--out", type=Path, help="write rewards_analysis.{json,md} and plots into this directory "
                   "(default: none; the result is printed either way)")
    r.add_argument("--top-k", type=int, default=10, help="TF-IDF keywords per checkpoint (default: 10)")
    r.set_defaults(func=run_analyze_rewards)


def run_analyze_rewards(args: argparse.Namespace) -> int:
    from evalbench.report.reward_analysis import (
        analyze_pairs,
        analyze_rewards,
        is_pairs_file,
        load_reward_pairs,
        load_reward_scores,
        pairs_to_markdown,
        to_markdown,
        write_outputs,
        write_pair_outputs,
    )

    if is_pairs_file(args.scores):  # `reward score --pairs` output: chosen vs rejected of each pair
        pairs, unscored = load_reward_pairs(args.scores)
        result = analyze_pairs(pairs, n_unscored=unscored)
        sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else pairs_to_markdown(result))
        if args.out:
            paths = write_pair_outputs(pairs, result, args.out)
            print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr if args.json else sys.stdout)
        return 0
    rows = load_reward_scores(args.scores)
    result = analyze_rewards(rows, top_k=args.top_k)
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(to_markdown(result))
    if args.out:
        paths = write_outputs(rows, result, args.out)
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr if args.json else sys.stdout)
    return 0
