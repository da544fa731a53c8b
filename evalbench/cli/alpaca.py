"""`evalbench alpaca judge`: judge an existing model_outputs.json against the AlpacaEval 2 references.

A preset of `evalbench run --suite alpaca` whose policy is the replay backend serving the file's
outputs by eval-set index (`outputs_spec`): the result is a standard run under --results that
compare / gate / export / report read.

    evalbench alpaca judge --outputs model_outputs.json --judge url=URL,model=NAME[,key_env=VAR]
        [--constrained-judge] [--out DIR] [--judge-prompt FILE] [--max-output-chars N]
    (--judge takes the same SPEC as `evalbench run`: vllm:MODEL, openai:MODEL, url=..., fake)

The outputs are matched to the eval set by instruction content (an error lists the first
mismatches; fewer rows than the eval set is allowed and reported as `n_total`). Every judgment goes
through the cache ($EVALBENCH_HOME/cache.sqlite unless --cache/--no-cache), so a rerun makes zero
judge calls. Besides the run, writes `annotations.json` (alpaca_eval's format) and `metrics.json`
into --out (default: the outputs file's directory) and prints the leaderboard columns.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_command(subparsers) -> None:
    from evalbench.cli.argtypes import fraction, non_negative_int, positive_float, positive_int
    from evalbench.cli.options import add_judge_options

    parser = subparsers.add_parser("alpaca", help="AlpacaEval 2 tools (judge a model_outputs.json)")
    sub = parser.add_subparsers(dest="alpaca_command", metavar="ACTION")
    sub.required = True
    judge = sub.add_parser(
        "judge", help="judge a model_outputs.json with the weighted pairwise judge",
        description="Judge an alpaca_eval model_outputs.json against the gpt4_1106_preview references with "
                    "the log-prob weighted pairwise judge (weighted_alpaca_eval_gpt4_turbo prompt) on any "
                    "OpenAI-compatible endpoint; writes annotations.json and metrics.json.")
    judge.add_argument("--outputs", required=True, type=Path, help="model_outputs.json (one generator)")
    add_judge_options(judge, required=True)
    judge.add_argument("--out", type=Path, help="output directory (default: the outputs file's directory)")
    judge.add_argument("--judge-prompt", type=Path, help="ChatML prompt file with {instruction} {output_1} "
                       "{output_2} (default: alpaca_eval's weighted_alpaca_eval_gpt4_turbo prompt)")
    judge.add_argument("--max-output-chars", type=positive_int,
                       help="cut each output shown to the judge to N characters, for small contexts "
                            "(default: shown whole)")
    judge.add_argument("--order-seed", type=int, default=0, help="seed of the presentation order (default 0)")
    judge.add_argument("--eval-set", type=Path, help="model_outputs.json-format references (default: AlpacaEval 2)")
    judge.add_argument("--concurrency", type=positive_int, default=8,
                       help="parallel requests to an endpoint judge (default 8)")
    judge.add_argument("--timeout", type=positive_float, default=120.0, metavar="SECONDS",
                       help="per-request timeout (default 120)")
    judge.add_argument("--max-retries", type=non_negative_int, default=6, metavar="N",
                       help="retries per request on 429 / 5xx / dropped connections / unusable answers (default 6)")
    judge.add_argument("--max-failed", type=fraction, default=0.0, metavar="FRACTION",
                       help="allowed fraction of failed judgments (e.g. 0.01 or 1%%); above it the command exits "
                            "with code 3 after writing its files (default 0; docs/reliability.md)")
    judge.add_argument("--cache", type=Path, help="cache file (default: $EVALBENCH_HOME/cache.sqlite)")
    judge.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    judge.add_argument("--results", type=Path, help="results root of the run (default: the --out directory, so "
                       "everything the command writes stays together)")
    judge.add_argument("--run-id", help="run id (default: derived from the spec, so a rerun resumes)")
    judge.add_argument("--json", action="store_true", dest="as_json", help="print the metrics as JSON")
    judge.set_defaults(func=run_judge)


def outputs_spec(outputs_path: str | Path, *, judge: dict[str, Any], constrained: bool | None = None,
                 judge_prompt: str | Path | None = None, max_output_chars: int | None = None, order_seed: int = 0,
                 eval_set: str | Path | None = None, results: str | Path = "results",
                 cache_path: str | Path | None = None, judge_repeats: int | None = None):
    """The RunSpec that judges one model_outputs.json: suite alpaca over the replay backend.

    The file's generator is the checkpoint; its rows are matched to the eval set by instruction
    content and evaluated in the file's order (`instructions`), unstripped, as the file has them.

    Raises:
        InputError: unreadable outputs, instructions outside the eval set (first mismatches listed),
            several generators in one file; all before the run starts.
    """
    from evalbench.config import validate_spec
    from evalbench.errors import InputError
    from evalbench.runspec import RunSpec
    from evalbench.suites.alpaca.data import match_instructions, read_model_outputs
    from evalbench.suites.alpaca.suite import AlpacaEval2, AlpacaOptions

    outputs_path = Path(outputs_path)
    outputs = read_model_outputs(outputs_path)
    generators = sorted({o.generator for o in outputs})
    if len(generators) > 1:
        raise InputError(f"expected one generator per file, found {generators[:5]}", path=outputs_path,
                         field="generator")
    options: dict[str, Any] = {"eval_set": str(eval_set) if eval_set else None,
                               "judge_prompt": str(judge_prompt) if judge_prompt else None,
                               "judge_max_output_chars": max_output_chars, "judge_order_seed": order_seed,
                               "judge_repeats": judge_repeats}
    options = {k: v for k, v in options.items() if v is not None}
    suite = AlpacaEval2(AlpacaOptions(**options))
    data = suite.eval_set()
    positions = match_instructions([o.instruction for o in outputs], data, path=outputs_path)
    if any(p != i for i, p in enumerate(positions)):
        log.info("%s: rows are not in eval-set order; instruction difficulty is taken by content", outputs_path)
    empty = sum(1 for o in outputs if not o.output.strip())
    if empty:
        log.warning("%s: %d empty output(s); they are judged as answers (and counted in n_empty_outputs)",
                    outputs_path, empty)
    if len(set(positions.tolist())) < len(data):
        log.warning("%s: %d of %d eval instructions judged", outputs_path, len(outputs), len(data))
    suite.prompt()  # a bad judge prompt fails here, before the run starts
    # alpaca judge has always judged the file's outputs as they are (no stripping).
    options.update(instructions=[int(p) for p in positions], strip_outputs=False)
    spec: dict[str, Any] = {
        "suites": ["alpaca"], "results_dir": str(results),
        "judge": {**judge, **({"constrained": constrained} if constrained is not None else {})},
        "model": {"base": generators[0], "backend": "replay", "replay": {generators[0]: str(outputs_path.resolve())}},
        "suite_options": {"alpaca": options}}
    if cache_path is not None:
        spec["cache_path"] = str(cache_path)
    return validate_spec(RunSpec, spec, source="alpaca judge")


def judge_file(outputs_path: str | Path, *, judge: dict[str, Any] | None = None, judge_url: str | None = None,
               judge_model: str | None = None, judge_key_env: str | None = None, constrained: bool | None = None,
               out_dir: str | Path | None = None, judge_prompt: str | Path | None = None,
               max_output_chars: int | None = None, order_seed: int = 0, eval_set: str | Path | None = None,
               concurrency: int = 8, cache_path: str | Path | None = None, use_cache: bool = True,
               timeout_s: float = 120.0, max_retries: int = 6, results: str | Path | None = None,
               run_id: str | None = None, judge_repeats: int | None = None) -> dict[str, Any]:
    """Judge one model_outputs.json as a standard run; returns the metrics row.

    The run (results/runs/<id>/) is what compare / gate / export / report read; for alpaca_eval's
    tools, annotations.json and metrics.json are also written to `out_dir` (default: the outputs
    file's directory). The run goes under `results` (default: `out_dir`, as `<out_dir>/runs/<id>/`).
    The judge is `judge` (JudgeSpec fields, e.g. `parse_judge_arg("vllm:MODEL")`), or the endpoint
    `judge_url` / `judge_model` / `judge_key_env`; `constrained` None follows the JudgeSpec rule.

    Raises:
        InputError: unreadable outputs, instructions outside the eval set (first mismatches listed),
            several generators in one file, a bad judge prompt.
    """
    import shutil

    from evalbench.api import run as run_spec
    from evalbench.io import write_json_atomic
    from evalbench.suites.alpaca.suite import AlpacaEval2, AlpacaOptions, artifact_dir
    from evalbench.suites.base import SuiteContext

    outputs_path = Path(outputs_path)
    out_dir = Path(out_dir) if out_dir is not None else outputs_path.parent
    if judge is None:
        from evalbench.errors import InputError
        from evalbench.runspec import parse_judge_arg

        if not (judge_url and judge_model):
            raise InputError("alpaca judge needs a judge: --judge SPEC", field="--judge")
        judge = parse_judge_arg(f"url={judge_url},model={judge_model}"
                                + (f",key_env={judge_key_env}" if judge_key_env else ""))
    judge = dict(judge)
    if judge.get("endpoint"):
        judge["endpoint"] = {**judge["endpoint"], "max_concurrency": concurrency, "timeout_s": timeout_s,
                             "max_retries": max_retries}
    judge["concurrency"] = concurrency  # also a vllm: judge's requests in flight
    spec = outputs_spec(outputs_path, judge=judge, constrained=constrained, judge_prompt=judge_prompt,
                        max_output_chars=max_output_chars, order_seed=order_seed, eval_set=eval_set,
                        results=results if results is not None else out_dir, cache_path=cache_path,
                        judge_repeats=judge_repeats)
    handle = run_spec(spec, run_id=run_id, use_cache=use_cache)
    (row,) = [r for r in handle.summary()["results"] if r["suite"] == "alpaca"]
    generator = row["checkpoint"]
    metrics = row["metrics"]
    out_dir.mkdir(parents=True, exist_ok=True)
    suite = AlpacaEval2(AlpacaOptions(**spec.suite_options["alpaca"]))
    shutil.copyfile(artifact_dir(SuiteContext(artifacts_dir=handle.artifacts), generator, 0) / "annotations.json",
                    out_dir / "annotations.json")
    calls = handle.header()["model_calls"][-1]
    prompt = suite.prompt()
    failures = [s.error for s in handle.samples(suite="alpaca") if s.error]
    result: dict[str, Any] = {"model": generator, **metrics}
    write_json_atomic(out_dir / "metrics.json", {
        **{k: _jsonable(v) for k, v in result.items()},
        "judge": {"base_url": spec.judge.endpoint.base_url if spec.judge.endpoint else None,
                  "model": spec.judge.name(spec.model.base), "kind": spec.judge.kind, "prompt": prompt.source,
                  "prompt_sha256": prompt.sha256, "constrained": spec.judge.is_constrained(),
                  "self_judged": spec.judge.self_judged, "max_output_chars": max_output_chars,
                  "order_seed": order_seed},
        "judge_calls": calls["judge"], "cache_hits": calls["cached"], "first_failure": failures[0] if failures else None,
        "n_rows": row["n_samples"], "n_eval_set": len(suite.eval_set()), "run": str(handle.path)})
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_judge(args: argparse.Namespace) -> int:
    from evalbench.cli.options import judge_spec

    judge = judge_spec(args, command="alpaca judge").model_dump(mode="json", exclude_unset=True)
    row = judge_file(args.outputs, judge=judge, out_dir=args.out,
                     judge_prompt=args.judge_prompt, max_output_chars=args.max_output_chars,
                     order_seed=args.order_seed, eval_set=args.eval_set, concurrency=args.concurrency,
                     cache_path=args.cache, use_cache=not args.no_cache, timeout_s=args.timeout,
                     max_retries=args.max_retries, results=args.results, run_id=args.run_id,
                     judge_repeats=args.judge_repeats)
    if args.as_json:
        sys.stdout.write(json.dumps({k: _jsonable(v) for k, v in row.items()}, indent=2) + "\n")
    else:
        from evalbench.cli.score import print_alpaca_table

        print_alpaca_table([row])
        if row.get("n_failed"):
            print(f"{row['n_failed']} judgment(s) failed: see metrics.json / annotations.json 'error'")
    out_dir = args.out or args.outputs.parent
    print(f"wrote {out_dir / 'annotations.json'} and {out_dir / 'metrics.json'}", file=sys.stderr)
    from evalbench.failures import enforce_failure_policy

    # Failed judgments are left out of the win rate; exiting 0 would hide the shift (issue 15).
    enforce_failure_policy([{"suite": "alpaca", "checkpoint": row.get("model"), "n_failed": row.get("n_failed") or 0,
                             "n_samples": (row.get("n_total") or 0) + (row.get("n_failed") or 0)}], args.max_failed)
    return 0
