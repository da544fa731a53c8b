"""`evalbench mtbench judge`: grade FastChat answer files (published or saved) without generating.

    evalbench mtbench judge --answers ../shared/data/mt_bench/model_answer/{alpaca-13b,gpt-4}.jsonl \\
        --judge url=http://127.0.0.1:8000/v1,model=my-judge [--constrained-judge]
    evalbench mtbench judge --answers a.jsonl b.jsonl --mode pair --baseline b --judge vllm:JUDGE_MODEL

Each model is named by its answer file, as FastChat does (`vicuna-13b-v1.3.jsonl` is
`vicuna-13b-v1.3` whatever its `model_id` says). The command is `evalbench run --suite mtbench`
with the replay backend serving the files' answers by question id (`answer_files_spec`): a
standard run (results/runs/<id>/) holding FastChat's `model_judgment/<judge>_single.jsonl` or
`<judge>_pair.jsonl`, per-question SampleRecords, a radar plot (single grading) and summary.json.
Every judge call goes through the cache, so rerunning the same command (or resuming with
--run-id) makes zero judge calls.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from evalbench.errors import InputError
from evalbench.paths import DEFAULT_RESULTS_DIR

log = logging.getLogger(__name__)

__all__ = ["add_command", "answer_files_spec"]


def add_command(subparsers) -> None:
    from evalbench.cli.argtypes import fraction, positive_int
    from evalbench.cli.options import add_judge_options

    parser = subparsers.add_parser("mtbench", help="MT-bench: judge FastChat answer files",
                                   description="MT-bench tools that work on FastChat files.")
    sub = parser.add_subparsers(dest="mtbench_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser(
        "judge", help="grade FastChat model_answer files with any OpenAI-compatible judge",
        description="Grade FastChat model_answer files (e.g. the published MT-bench answers) with a "
                    "judge endpoint, without regenerating; writes a run with FastChat judgment files "
                    "and a summary.")
    p.add_argument("--answers", nargs="+", required=True, metavar="FILE",
                   help="FastChat model_answer/<model>.jsonl files; the model is named by the file name")
    add_judge_options(p, required=True)
    p.add_argument("--mode", choices=("single", "pair"), default="single",
                   help="single-answer grading (default) or pairwise comparison")
    p.add_argument("--baseline", metavar="MODEL",
                   help="pair mode: compare every model with this one (default: all pairs)")
    p.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR, metavar="DIR",
                   help=f"results root (default: {DEFAULT_RESULTS_DIR})")
    p.add_argument("--run-id", help="reuse a run id (resume) (default: derived from the spec, so a rerun resumes)")
    p.add_argument("--question-ids", type=int, nargs="+", metavar="ID", help="judge only these questions (default: every question)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="judge only the first N questions (default: every question)")
    p.add_argument("--questions", metavar="FILE", help="question.jsonl (default: MT-bench's)")
    p.add_argument("--reference-answers", metavar="FILE",
                   help="reference answers (default: FastChat's GPT-4)")
    p.add_argument("--judge-prompts", metavar="FILE", help="judge_prompts.jsonl (default: FastChat's)")
    p.add_argument("--judge-max-tokens", type=positive_int, default=None, metavar="N",
                   help="judge token budget (default 2048, FastChat's; lower it for small local judges)")
    p.add_argument("--max-concurrency", type=positive_int, default=8, metavar="N",
                   help="parallel requests to an endpoint judge (default 8)")
    p.add_argument("--max-failed", type=fraction, default=0.0, metavar="FRACTION",
                   help="allowed fraction of failed judgments per model (e.g. 0.01 or 1%%); above it the command "
                        "exits with code 3 after writing the run (default 0; docs/reliability.md)")
    p.add_argument("--cache", type=Path, metavar="FILE",
                   help="cache file (default: $EVALBENCH_HOME/cache.sqlite)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_judge_command)


def _read_answer_files(paths: Sequence[str | Path], questions, wanted: set[int]) -> dict[str, dict[int, Any]]:
    from evalbench.suites.mtbench.data import model_name_from_path, read_model_answers

    out: dict[str, dict[int, Any]] = {}
    first: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        model = model_name_from_path(path)
        if model in out:
            raise InputError(f"model '{model}' is already named by {first[model]}; FastChat names a model by "
                             "its file name, so answer files must have different names", path=path)
        answers = read_model_answers(path, questions)
        missing = sorted(wanted - answers.keys())
        if missing:
            log.warning("%s: no answer to %d selected question(s) (first: %s); they count as failed samples",
                        path, len(missing), missing[0])
        out[model] = {qid: a for qid, a in answers.items() if qid in wanted}
        first[model] = path
        if not out[model]:
            raise InputError("no answers to the selected questions", path=path)
    return out


def answer_files_spec(answer_files: Sequence[str | Path], *, judge: Mapping[str, Any],
                      mode: Literal["single", "pair"] = "single", baseline: str | None = None,
                      constrained: bool | None = None, options: Mapping[str, Any] | None = None,
                      limit: int | None = None, results: str | Path = "results",
                      cache_path: str | Path | None = None):
    """The RunSpec that judges FastChat answer files: suite mtbench over the replay backend.

    Each file is a checkpoint named by its file name (FastChat's rule) whose answers are replayed by
    question id; the run is a standard run (compare / gate / export / report read it).

    Args:
        answer_files: FastChat `model_answer/<model>.jsonl` files (model = file name).
        judge: a JudgeSpec mapping (e.g. `{"kind": "endpoint", "endpoint": {...}}`).
        constrained: constrain the judge's verdicts (None: the JudgeSpec rule, on for same/vllm
            judges and off for endpoints).
        mode: "single" (1-10 grading of both turns) or "pair" (both orders; all pairs, or every
            model against `baseline`, one of the files' models).
        options: extra MTBenchOptions fields (question_ids, judge_max_tokens, files).

    Raises:
        InputError: unknown question ids, duplicate answers or missing turns (file, line and
            field named), a baseline that is not among the models; all before anything runs.
    """
    from evalbench.config import validate_spec
    from evalbench.registry import did_you_mean
    from evalbench.runspec import RunSpec
    from evalbench.suites.base import SuiteContext
    from evalbench.suites.mtbench.data import model_name_from_path
    from evalbench.suites.mtbench.suite import MTBench, MTBenchOptions

    if mode == "single" and baseline is not None:
        raise InputError("--baseline applies only to --mode pair", field="--baseline")
    if not answer_files:
        raise InputError("no answer files given", field="--answers")
    for path in answer_files:
        if not Path(path).is_file():
            raise InputError("answer file not found", path=path, field="--answers")
    names = [model_name_from_path(p) for p in answer_files]
    if mode == "pair":
        if len(answer_files) < 2:
            raise InputError("pair mode needs at least two answer files", field="--answers")
        if baseline is not None and baseline not in names:
            raise InputError(f"baseline '{baseline}' is not among the answer files' models"
                             f"{did_you_mean(baseline, names)} (models: {', '.join(names)})",
                             field="--baseline")
    fields = dict(options or {})
    if mode == "pair":
        fields.update(single=False, pairwise="baseline" if baseline else "all")
        if baseline:
            fields["baseline"] = baseline
    opts = validate_spec(MTBenchOptions, fields, source="mtbench judge options")
    suite = MTBench(opts)
    selected = suite.selected(SuiteContext(limit=limit))
    # Read every file now: a bad row is reported (file, line, field) before the run starts.
    _read_answer_files(answer_files, suite.questions(), {q.question_id for q in selected})
    data: dict[str, Any] = {
        "suites": ["mtbench"], "results_dir": str(results),
        "judge": {**judge, **({"constrained": constrained} if constrained is not None else {})},
        "model": {"base": "replay", "backend": "replay",
                  "replay": {m: str(Path(p).resolve()) for m, p in zip(names, answer_files)}},
        "suite_options": {"mtbench": fields} if fields else {}}
    if limit is not None:
        data["limit"] = limit
    if cache_path is not None:
        data["cache_path"] = str(cache_path)
    return validate_spec(RunSpec, data, source="mtbench judge")


def _fmt(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def _judge_command(args: argparse.Namespace) -> int:
    """`evalbench mtbench judge` is `evalbench run --suite mtbench` over the replay backend."""
    from evalbench.api import run as run_spec
    from evalbench.cli.options import judge_spec
    from evalbench.cli.run import enforce_failures
    from evalbench.failures import enforce_failure_policy

    judge_fields = judge_spec(args, command="mtbench judge").model_dump(mode="json", exclude_unset=True)
    if judge_fields.get("endpoint"):
        judge_fields["endpoint"]["max_concurrency"] = args.max_concurrency
    judge_fields["concurrency"] = args.max_concurrency  # also a vllm: judge's requests in flight
    options: dict[str, Any] = {"question_ids": args.question_ids, "questions_file": args.questions,
                               "reference_file": args.reference_answers, "judge_prompts_file": args.judge_prompts,
                               "judge_max_tokens": args.judge_max_tokens, "judge_repeats": args.judge_repeats}
    options = {k: v for k, v in options.items() if v is not None}
    spec = answer_files_spec(args.answers, judge=judge_fields, mode=args.mode, baseline=args.baseline,
                             options=options, limit=args.limit, results=args.out,
                             cache_path=args.cache)
    run = run_spec(spec, run_id=args.run_id)
    summary = run.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        enforce_failure_policy(summary["results"], args.max_failed)
        return 0
    if args.mode == "single":
        cols = ["score", "turn_1", "turn_2", "n_failed"]
    else:
        cols = ["pairwise_win_rate", "n_pairwise_wins", "n_pairwise_losses", "n_pairwise_ties",
                "n_pairwise_failed", "n_pairwise_inconsistent"]
    print(f"MT-bench {args.mode} | judge: {spec.judge.name('replay')}"
          + (f" | baseline: {args.baseline}" if args.baseline else ""))
    width = max([len("model")] + [len(r["checkpoint"]) for r in summary["results"]])
    # The unit in the header where the name does not say it (docs/results-format.md, "Units").
    titles = [f"{c} (%)" if c == "pairwise_win_rate" else c for c in cols]
    print("  ".join(["model".ljust(width), *titles]))
    for row in sorted(summary["results"], key=lambda r: -(r["metrics"].get(cols[0]) or -1)):
        print("  ".join([row["checkpoint"].ljust(width),
                         *(_fmt(row["metrics"].get(c)).rjust(len(t)) for c, t in zip(cols, titles))]))
    calls = run.header()["model_calls"][-1]
    print(f"judge calls: {calls['judge']} made, {calls['cached']} from cache | run: {run.path}")
    enforce_failures(run, args.max_failed)
    return 0
