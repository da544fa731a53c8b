"""`evalbench demo`: the main job end to end on the embedded tiny model, on any CPU machine.

1. build the tiny model (a BPE tokenizer + a 2-layer Llama trained for seconds on built-in text);
2. train two methods (DPO, ORPO) x 2 seeds of LoRA adapters on local preference data;
3. serve base + adapters from one vLLM engine, run AlpacaEval 2 and MT-bench subsets with a local
   judge (the base model, constrained verdicts);
4. compare the methods against the base with significance tests, export the leaderboard CSV,
   and write a report.

Every step is cached or resumable: a second `evalbench demo` finishes in seconds. Numbers from the
tiny model are meaningless; the demo shows the pipeline, not model quality.
"""

from __future__ import annotations

import argparse
import logging
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

METHODS = ("dpo", "orpo")
# Training recipe (packaged evalbench/assets/recipes/train/<name>.yaml, profile `tiny`) per method; ORPO trains with QLoRA.
RECIPES = {"dpo": "dpo", "orpo": "orpo_qlora", "wpo": "wpo", "ipo": "ipo", "kto": "kto"}
TRAIN_SEEDS = (0, 1)

REAL_MODELS = """\
The tiny model's numbers are meaningless: it shows that every stage works, not model quality.
For real numbers, on a GPU machine (pip install -e '.[gpu,train,eval]'):
  evalbench train --config dpo --seed 0 --out ckpts/dpo/seed0          # QLoRA/LoRA on a hub model
  evalbench run --suite alpaca,mtbench --model HuggingFaceH4/mistral-7b-sft-beta \\
      --adapters-glob 'ckpts/*/seed*' --judge openai:gpt-4-1106-preview --seeds 0,1,2
(or --judge vllm:MODEL for a local judge model, url=URL,model=NAME for any OpenAI-compatible one)."""


def add_command(subparsers) -> None:
    from evalbench.argtypes import positive_int

    parser = subparsers.add_parser("demo", help="run the main job end to end on the tiny local model")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
    parser.add_argument("--limit", type=positive_int, help="items per suite (default: the recipe's, 16 / 8)")
    parser.add_argument("--methods", default=",".join(METHODS), help="training methods (default: dpo,orpo)")
    parser.add_argument("--train-seeds", default=",".join(map(str, TRAIN_SEEDS)))
    parser.set_defaults(func=run)


def train_adapters(root: Path, base: Path, methods: list[str], seeds: list[int]) -> list[Path]:
    from evalbench.train.spec import load_train_spec
    from evalbench.train.trainer import train

    outs = []
    for method in methods:
        for seed in seeds:
            out = root / method / f"seed{seed}"
            # A rerun resumes (a finished adapter is kept as it is).
            resume = ["resume=true"] if out.exists() else []
            spec = load_train_spec(RECIPES.get(method, method), profile="tiny",
                                   overrides=[f"base={base}", f"seed={seed}", f"out={out}", *resume])
            print(f"training {method} seed {seed} -> {out}", flush=True)
            outs.append(train(spec))
    return outs


def run(args: argparse.Namespace) -> int:
    from evalbench.api import run as run_spec
    from evalbench.config import load_yaml, validate_spec
    from evalbench.models.tiny import ensure_tiny_model
    from evalbench.run_cli import print_summary
    from evalbench.runspec import RunSpec

    print("evalbench demo: tiny local model on CPU. " + REAL_MODELS.splitlines()[0], flush=True)
    base = ensure_tiny_model()
    demo_root = args.results / "demo"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.train_seeds.split(",") if s.strip()]
    train_adapters(demo_root / "adapters", base, methods, seeds)

    recipe = load_yaml(resources.files("evalbench") / "assets" / "recipes" / "demo.yaml")
    recipe["model"] = {**recipe["model"], "base": str(base), "served_name": "tiny",
                       "adapters_glob": [str(demo_root / "adapters" / "*" / "seed*")]}
    recipe["results_dir"] = str(args.results)
    if args.limit:
        recipe["limit"] = args.limit
        for opts in recipe.get("suite_options", {}).values():
            opts.pop("limit", None)
    spec = validate_spec(RunSpec, recipe, source="demo recipe")
    handle = run_spec(spec)
    print_summary(handle)

    from evalbench.aggregate.summarize import load_runs
    from evalbench.report.report import build_report
    from evalbench.run_cli import compare_and_export

    compare_and_export(handle, spec)
    report = build_report(load_runs([handle.path], with_samples=True), demo_root / "report",
                          baseline=spec.baseline)
    print(f"{'report:':<20}{report.markdown}\n")
    print(REAL_MODELS)
    return 0
