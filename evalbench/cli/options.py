"""Option groups shared by several commands: results dir, statistics, judge.

Results dir (`add_results_option`): `--results DIR`, the results root that run ids are looked up
under and runs are written to (default ./results, `evalbench.paths.results_dir`).

Statistics (`add_stats_options`): `--baseline --metrics --test --correction --alpha --conf --iters
--seed` of `compare`, `report` and `export`, with one meaning and one default everywhere.

Judge (`add_judge_options`), for every command that judges (`run`, `alpaca judge`, `mtbench judge`):

    --judge SPEC                      vllm:MODEL | openai:MODEL | url=URL,model=NAME[,key_env=VAR] | same | fake
    --constrained-judge / --no-constrained-judge
                                      default: on for judges evalbench serves (same, vllm), off for endpoints
    --judge-repeats K                 judge every output K times (judge noise; default 1); the suite
                                      option judge_repeats of alpaca and mtbench (`judge_repeat_options`)

There is no default judge: a command that judges needs `--judge` (or the recipe's `judge.kind`).
The options of before (`--judge-url/--judge-model/--judge-key-env`, `--constrained`,
`--unconstrained-judge`) still parse, hidden, and warn once; they map onto the same JudgeSpec.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from evalbench.paths import DEFAULT_RESULTS_DIR

log = logging.getLogger(__name__)

__all__ = ["add_judge_options", "add_results_option", "add_stats_options", "judge_fields", "judge_repeat_options",
           "judge_spec", "split_list"]


def add_results_option(parser: argparse.ArgumentParser, *, default: Path | None = DEFAULT_RESULTS_DIR,
                       help: str | None = None) -> None:
    """`--results DIR`: the results root (run ids are looked up under it, runs are written to it)."""
    parser.add_argument("--results", type=Path, default=default, metavar="DIR",
                        help=help or f"results root; run ids are looked up under it (default: {DEFAULT_RESULTS_DIR})")


def add_stats_options(parser: argparse.ArgumentParser, *, baseline_help: str, test: bool = True,
                      conf: bool = True) -> None:
    """The statistics options of `compare`, `report` and `export` (`test`, `conf`: offer those two)."""
    parser.add_argument("--baseline", help=baseline_help)
    parser.add_argument("--metrics", nargs="+", metavar="METRIC",
                        help="metrics to show: NAME or SUITE:NAME, shell patterns allowed, comma-separated or "
                             "repeated (default: every quality metric, no counts or category/ breakdowns)")
    if test:
        parser.add_argument("--test", default="auto", help="deciding test: auto (= hierarchical: training seeds "
                            "and prompts, exact sign flip for few prompts; Welch on model means without per-sample "
                            "scores), hierarchical, bootstrap, permutation, sign, wilcoxon, welch (default: auto)")
    parser.add_argument("--correction", default="holm", help="multiple-comparison correction: holm, bh, "
                        "bonferroni, none (default: holm; Holm and BH are always reported). The family is every "
                        "group x default metric, also when --metrics shows fewer")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    if conf:
        parser.add_argument("--conf", type=float, default=0.95, help="interval coverage (default: 0.95)")
    parser.add_argument("--iters", type=int, default=10_000, help="bootstrap resamples / sign flips (default: 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling tests (default: 0)")


def split_list(values: list[str] | None) -> list[str] | None:
    """`--metrics a,b c` -> [a, b, c]; None when not given."""
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]


def add_judge_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add the judge options to `parser` (`required`: the command always judges)."""
    from evalbench.runspec import JUDGE_SYNTAX

    need = ("required" if required else "required by suites that need a judge (alpaca, mtbench)")
    parser.add_argument("--judge", metavar="SPEC",
                        help=f"who judges: {JUDGE_SYNTAX}. No default: {need}")
    parser.add_argument("--constrained-judge", dest="constrained_judge", action=argparse.BooleanOptionalAction,
                        default=None, help="constrain the judge's verdicts with vLLM structured outputs so every "
                                           "one parses (default: on for same and vllm judges, off for endpoints)")
    # Deprecated spellings, kept so existing scripts run; they warn and map onto --judge.
    hidden = argparse.SUPPRESS
    parser.add_argument("--judge-url", help=hidden)
    parser.add_argument("--judge-model", help=hidden)
    parser.add_argument("--judge-key-env", help=hidden)
    parser.add_argument("--constrained", dest="constrained_legacy", action="store_true", help=hidden)
    parser.add_argument("--unconstrained-judge", dest="unconstrained_legacy", action="store_true", help=hidden)
    from evalbench.cli.argtypes import positive_int
    from evalbench.judge.repeats import REPEAT_TEMPERATURE

    parser.add_argument("--judge-repeats", type=positive_int, metavar="K",
                        help="judge every output K times to measure the judge's own noise (default 1). AlpacaEval "
                             "shows each later repeat in the opposite order of the one before; MT-bench single "
                             f"grading samples repeats 2..K at temperature {REPEAT_TEMPERATURE:g} (suite option "
                             "judge_repeat_temperature), the first stays FastChat's temperature 0. Scores are the "
                             "means; compare reports the judge variance component (docs/statistics.md)")


def judge_repeat_options(args: argparse.Namespace, suites: list[str]) -> dict[str, dict[str, int]]:
    """`{suite: {"judge_repeats": K}}` for the given suites that can re-judge ({} without --judge-repeats).

    Raises InputError when K > 1 is asked for but none of `suites` judges repeatably.
    """
    from evalbench.errors import InputError
    from evalbench.suites.base import SUITES

    k = getattr(args, "judge_repeats", None)
    if k is None:
        return {}
    able = [s for s in suites if s in SUITES.names() and "judge_repeats" in SUITES.get(s).Options.model_fields]
    if k > 1 and not able:
        raise InputError(f"--judge-repeats applies to suites that judge (alpaca, mtbench); the run has "
                         f"{', '.join(suites) or 'none'}", field="--judge-repeats")
    return {s: {"judge_repeats": k} for s in able}


def judge_fields(args: argparse.Namespace) -> dict[str, Any]:
    """JudgeSpec fields from the parsed options ({} when none was given)."""
    from evalbench.errors import InputError
    from evalbench.runspec import parse_judge_arg

    fields: dict[str, Any] = {}
    url, model, key_env = (getattr(args, k, None) for k in ("judge_url", "judge_model", "judge_key_env"))
    if url or model or key_env:
        if args.judge:
            raise InputError("give either --judge SPEC or the deprecated --judge-url/--judge-model, not both",
                             field="--judge")
        if not (url and model):
            raise InputError("--judge-url and --judge-model go together; better: --judge url=URL,model=NAME",
                             field="--judge")
        spec = f"url={url},model={model}" + (f",key_env={key_env}" if key_env else "")
        log.warning("--judge-url/--judge-model/--judge-key-env are deprecated; use --judge %s", spec)
        fields.update(parse_judge_arg(spec))
    elif args.judge:
        fields.update(parse_judge_arg(args.judge))
    constrained = getattr(args, "constrained_judge", None)
    if getattr(args, "constrained_legacy", False):
        log.warning("--constrained is deprecated; use --constrained-judge")
        constrained = True
    if getattr(args, "unconstrained_legacy", False):
        log.warning("--unconstrained-judge is deprecated; use --no-constrained-judge")
        constrained = False
    if constrained is not None:
        fields["constrained"] = constrained
    return fields


def judge_spec(args: argparse.Namespace, *, command: str):
    """The JudgeSpec of a command that always judges; a missing `--judge` is an error naming it."""
    from evalbench.config import validate_spec
    from evalbench.errors import InputError
    from evalbench.runspec import JUDGE_SYNTAX, JudgeSpec

    fields = judge_fields(args)
    if "kind" not in fields:
        raise InputError(f"{command} needs a judge: --judge {JUDGE_SYNTAX}", field="--judge")
    return validate_spec(JudgeSpec, fields, source="--judge")
