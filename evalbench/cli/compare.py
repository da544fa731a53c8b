"""`evalbench compare` (mean (std) tables with significance) and `evalbench gate` (CI regression gate)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from evalbench.cli.options import add_results_option, add_stats_options, split_list

FORMATS = ("text", "markdown", "html", "csv", "json", "latex")
_SUFFIX_FORMAT = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".csv": "csv",
                  ".json": "json", ".txt": "text", ".tex": "latex"}


def add_compare(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare checkpoint groups over seeds: mean (std), difference vs baseline, significance",
        description="Table of mean (std) per checkpoint group and metric, with the difference to the baseline "
                    "marked when the corrected p-value is below alpha (underlined in Markdown/HTML, bold with "
                    "an asterisk in the terminal).")
    p.add_argument("runs", nargs="+", metavar="RUN_OR_DIR", help="run directories, results roots or run ids")
    add_stats_options(p, baseline_help="baseline checkpoint group (default: the first one)")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from --out's suffix, else text)")
    p.add_argument("--out", type=Path, help="write to this file (default: stdout)")
    p.add_argument("--digits", type=int, default=2, help="decimals shown (default: 2)")
    add_results_option(p)
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from evalbench.aggregate.compare import RENDERERS, compare_runs, print_comparison
    from evalbench.aggregate.summarize import load_runs
    from evalbench.io import write_text_atomic

    runs = load_runs(args.runs, results_root=args.results)
    comp = compare_runs(runs, baseline=args.baseline, metrics=split_list(args.metrics), test=args.test,
                        correction=args.correction, alpha=args.alpha, conf=args.conf, iters=args.iters,
                        seed=args.seed)
    fmt = args.format or (_SUFFIX_FORMAT.get(args.out.suffix.lower(), "markdown") if args.out else "text")
    if fmt == "text" and args.out is None:
        print_comparison(comp, args.digits)  # a terminal's width, or the plain layout when piped
        return 0
    render = RENDERERS[fmt]
    text = render(comp) if fmt in ("csv", "json") else render(comp, args.digits)
    if args.out:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def add_gate(subparsers) -> None:
    p = subparsers.add_parser(
        "gate", help="CI gate: exit 1 when the candidate regresses significantly beyond the allowed drop",
        description="Compare a candidate run with a baseline run metric by metric. A metric fails when it drops "
                    "by more than its rule allows AND the corrected p-value is below alpha. Exit codes: 0 pass, "
                    "1 regression, 2 usage or data error.")
    p.add_argument("--baseline", required=True, metavar="RUN", help="baseline run (directory or id)")
    p.add_argument("--candidate", required=True, metavar="RUN", help="candidate run (directory or id)")
    p.add_argument("--rules", type=Path, help="rules YAML (default: the packaged evalbench/assets/gates/default.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a rules key, e.g. --set defaults.alpha=0.01 (repeatable)")
    p.add_argument("--baseline-group", help="checkpoint group of the baseline run to compare "
                   "(default: its only group, else every group both runs share)")
    p.add_argument("--candidate-group", help="checkpoint group of the candidate run to compare "
                   "(default: its only group, else every group both runs share)")
    p.add_argument("--summary-md", type=Path, help="write the Markdown summary here (also appended to "
                   "$GITHUB_STEP_SUMMARY when that is set) (default: stdout only)")
    p.add_argument("--junit", type=Path, help="write a JUnit XML report here (default: none)")
    add_results_option(p)
    p.set_defaults(func=run_gate)


def run_gate(args: argparse.Namespace) -> int:
    from evalbench.aggregate.gate import check, load_rules
    from evalbench.aggregate.summarize import ResultSet, load_runs
    from evalbench.io import write_text_atomic

    rules = load_rules(args.rules, args.overrides)
    base = load_runs([args.baseline], results_root=args.results, with_samples=True)
    cand = load_runs([args.candidate], results_root=args.results, with_samples=True)
    report = check(ResultSet(cand), ResultSet(base), rules, candidate_group=args.candidate_group,
                   baseline_group=args.baseline_group)
    md = report.to_markdown()
    sys.stdout.write(md)
    if args.summary_md:
        write_text_atomic(args.summary_md, md)
    if args.junit:
        write_text_atomic(args.junit, report.to_junit_xml())
    # Read only here: library code never looks at the environment.
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(md + "\n")
    return report.exit_code
