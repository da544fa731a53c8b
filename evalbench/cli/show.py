"""`evalbench show RUN`: prompt x checkpoint outputs side by side, with each cell's verdict / score / reward.

    evalbench show results/runs/run-abc --prompts 10 --disagree --reference --format markdown

The table itself is `evalbench.report.side_by_side` (pure); this shell reads the run's records and,
with `--reference`, the benchmark's reference answers (AlpacaEval: the gpt4_1106_preview outputs;
MT-bench: FastChat's GPT-4 reference answers, which exist for math, reasoning and coding).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from evalbench.cli.options import add_results_option

log = logging.getLogger(__name__)


def add_command(subparsers) -> None:
    from evalbench.cli.argtypes import positive_int

    p = subparsers.add_parser(
        "show", help="show several checkpoints' outputs side by side, with their scores",
        description="Prompt x checkpoint outputs of one run (one suite, one generation seed), each cell with "
                    "its judge verdict, grade or reward. Example: evalbench show RUN --prompts 10 --disagree "
                    "--reference --format markdown")
    p.add_argument("run", metavar="RUN", help="a run directory or a run id under --results")
    p.add_argument("--suite", help="which suite's outputs (default: the first with generations)")
    p.add_argument("--seed", type=int, help="generation seed (default: the smallest)")
    p.add_argument("--prompts", default="10", metavar="N|IDS",
                   help="how many prompts (N), or comma-separated sample ids (default: 10)")
    p.add_argument("--checkpoints", metavar="A,B,...",
                   help="checkpoints to show, in this order (default: all, sorted by name)")
    p.add_argument("--samples", type=positive_int, default=1, metavar="N",
                   help="show up to N of each cell's K samples (reward / diversity suites), each with its reward "
                        "(default 1)")
    p.add_argument("--metric", help="the score shown per cell (default: the suite's headline: preference, "
                                    "grade, reward)")
    p.add_argument("--reference", action="store_true",
                   help="add the benchmark's reference answer (AlpacaEval, MT-bench) as a column")
    p.add_argument("--disagree", action="store_true",
                   help="pick the prompts whose checkpoint scores differ most (largest spread first)")
    p.add_argument("--format", choices=("text", "markdown", "html"), default="text",
                   help="output format (default: text)")
    p.add_argument("--max-chars", type=positive_int, default=600, help="cut each text to this length (default 600)")
    p.add_argument("--out", type=Path, help="write to this file (default: stdout)")
    add_results_option(p)
    p.set_defaults(func=run_show)


def parse_prompts(value: str) -> int | list[str]:
    """`10` -> 10; `3,7,12` or `imdb-01` -> those ids (a lone number is a count, not an id)."""
    from evalbench.errors import InputError

    value = value.strip()
    if value.isdigit():
        if int(value) < 1:
            raise InputError("must be at least 1", field="--prompts")
        return int(value)
    ids = [v.strip() for v in value.split(",") if v.strip()]
    if not ids:
        raise InputError(f"expected a count or comma-separated sample ids, got {value!r}", field="--prompts")
    return ids


def load_references(suite: str, sample_ids) -> dict[str, str]:
    """Reference answers by sample id for a benchmark that has them; {} (with a note) otherwise."""
    try:
        if suite == "alpaca":
            from evalbench.suites.alpaca.data import load_eval_set

            rows = load_eval_set()
            return {sid: rows[int(sid)].output for sid in sample_ids if sid.isdigit() and int(sid) < len(rows)}
        if suite == "mtbench":
            from evalbench.suites.mtbench.data import load_reference_answers

            refs = load_reference_answers()
            out = {}
            for sid in sample_ids:
                answer = refs.get(int(sid)) if sid.isdigit() else None
                if answer is not None and answer.choices:
                    turns = answer.choices[0]
                    out[sid] = "\n\n".join(f"[turn {i}] {t}" for i, t in enumerate(turns, 1)) if len(turns) > 1 \
                        else turns[0]
            return out
    except Exception as exc:  # noqa: BLE001 - a missing benchmark file must not hide the outputs
        log.warning("show: no reference answers for %s: %s", suite, str(exc).splitlines()[0])
        return {}
    log.warning("show: suite %s has no reference answers", suite)
    return {}


def run_show(args: argparse.Namespace) -> int:
    from evalbench.report.side_by_side import FORMATS, side_by_side, to_html, to_markdown, to_text
    from evalbench.store import ResultsStore

    run = ResultsStore(args.results).open(args.run)
    gens, samples = run.generations(), run.samples()
    checkpoints = [c.strip() for c in args.checkpoints.split(",") if c.strip()] if args.checkpoints else None
    prompts = parse_prompts(args.prompts)
    references = None
    if args.reference:
        suite = args.suite or next((g.suite for g in gens), "")
        references = load_references(suite, sorted({g.sample_id for g in gens if g.suite == suite}))
    sbs = side_by_side(gens, samples, suite=args.suite, seed=args.seed, checkpoints=checkpoints, prompts=prompts,
                       metric=args.metric, disagree=args.disagree, references=references,
                       samples_per_cell=args.samples)
    render = {"text": lambda s: to_text(s, max_chars=args.max_chars),
              "markdown": lambda s: to_markdown(s, max_chars=args.max_chars),
              "html": lambda s: to_html(s, max_chars=args.max_chars, standalone=True)}
    assert set(render) == set(FORMATS)
    text = render[args.format](sbs)
    if args.out:
        from evalbench.io import write_text_atomic

        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0
