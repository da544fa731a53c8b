"""End-to-end AlpacaEval 2 work, evalbench vs alpaca_eval's own `evaluate_from_model`, same endpoints.

Not a test: run it by hand,

    .venv/bin/python benchmarks/e2e_vs_alpaca_eval.py [--n 20] [--max-new-tokens 64] [--workdir DIR]

One vLLM server (CPU build) serves the tiny local model; it is both the generator and the judge for
both tools. Each tool, with a fresh cache, answers the first N AlpacaEval 2 instructions (greedy,
the same token budget) and judges every answer against the reference with the
`weighted_alpaca_eval_gpt4_turbo` prompt of the installed alpaca_eval: one verdict token at
temperature 0, top-5 log-probs, the verdict constrained to m / M (vLLM structured outputs) so that
the tiny judge always answers with a label. alpaca_eval runs with the settings of
`notes/cpu-stack.md` (OPENAI_CLIENT_CONFIG_PATH, an evaluator configs.yaml with an absolute
prompt path, fn_metric="get_winrate", precomputed_leaderboard=None, caching_path=None). evalbench
runs its `alpaca` suite (generate -> score -> summarize, with the length-controlled GLM fit that
alpaca_eval cannot run offline).

The tiny model has 2048 positions and the official prompt alone is ~690 of its tokens, so both tools
get the same eval set with each reference output cut to --ref-chars characters (default 1000).
Prefix caching is off so that the tool running second gains nothing from the first. The wall times
of the two calls (imports excluded, the server warm) are taken --repeats times, alternating which
tool goes first, each with fresh caches; the median ratio is printed and everything is written to
<workdir>/e2e_vs_alpaca_eval.json. Target: evalbench <= 0.5x alpaca_eval.

As a fidelity check, rows that both tools happened to show the judge in the same order must get the
same preference (same greedy outputs, prompt and judge); the largest difference is printed.
Both tools get the same concurrency (--concurrency, default 16): alpaca_eval's OPENAI_MAX_CONCURRENCY
and its decoders' num_procs, evalbench's requests in flight to the server (generation and judging).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# Run standalone from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_RATIO = 0.5
GEN_TEMPLATE = "<|im_start|>user\n{instruction}\n<|im_end|>"  # one user turn, as evalbench sends it


def _eval_set(workdir: Path, n: int, ref_chars: int) -> Path:
    from evalbench.suites.alpaca.data import load_eval_set, write_model_outputs

    rows = load_eval_set()[:n]
    path = workdir / "eval_set.json"
    write_model_outputs(path, [{"instruction": r.instruction, "output": r.output[:ref_chars],
                                "generator": r.generator, "dataset": r.dataset} for r in rows])
    return path


def _alpaca_eval_configs(workdir: Path, base_url: str, model: str, max_new_tokens: int,
                         concurrency: int) -> tuple[Path, dict]:
    import yaml

    from evalbench.suites.alpaca.judge import _alpaca_eval_files

    prompt = _alpaca_eval_files() / "evaluators_configs" / "alpaca_eval_clf_gpt4_turbo" / "alpaca_eval_clf.txt"
    (workdir / "openai_configs.yaml").write_text(yaml.safe_dump({"default": [{"api_key": "sk-local",
                                                                               "base_url": base_url}]}))
    judge_dir = workdir / "ae_judge"
    judge_dir.mkdir(exist_ok=True)
    (judge_dir / "configs.yaml").write_text(yaml.safe_dump({"bench_weighted_judge": {
        "prompt_template": str(prompt),
        "fn_completions": "openai_completions",
        "completions_kwargs": {"model_name": model, "max_tokens": 1, "temperature": 0, "logprobs": True,
                               "top_logprobs": 5, "price_per_token": 0, "num_procs": concurrency,
                               "extra_body": {"structured_outputs": {"choice": ["m", "M"]}}},
        "fn_completion_parser": "logprob_parser",
        "completion_parser_kwargs": {"numerator_token": "m", "denominator_tokens": ["m", "M"],
                                     "is_binarize": False},
        "completion_key": "completions_all",
        "batch_size": 1}}))
    (workdir / "ae_gen_prompt.txt").write_text(GEN_TEMPLATE)
    model_configs = {model: {"prompt_template": str(workdir / "ae_gen_prompt.txt"),
                             "fn_completions": "openai_completions",
                             "completions_kwargs": {"model_name": model, "max_tokens": max_new_tokens,
                                                    "temperature": 0, "top_p": 1.0, "price_per_token": 0,
                                                    "num_procs": concurrency}}}
    return judge_dir / "configs.yaml", model_configs


def run_alpaca_eval(workdir: Path, out_dir: Path, eval_set: Path, base_url: str, model: str, max_new_tokens: int,
                    concurrency: int | None) -> dict:
    """alpaca_eval's evaluate_from_model, timed (its import excluded); a fresh output dir, no cache."""
    # alpaca_eval reads these at import time (the first repeat imports it).
    os.environ["OPENAI_CLIENT_CONFIG_PATH"] = str(workdir / "openai_configs.yaml")
    if concurrency:
        os.environ["OPENAI_MAX_CONCURRENCY"] = str(concurrency)
    annotators_config, model_configs = _alpaca_eval_configs(workdir, base_url, model, max_new_tokens, concurrency)
    import alpaca_eval  # noqa: F401  (import outside the timed region, as for evalbench)
    from alpaca_eval import constants
    from alpaca_eval.main import evaluate_from_model

    logging.getLogger().setLevel(logging.WARNING)  # alpaca_eval's import sets the root logger to INFO
    t0 = time.perf_counter()
    leaderboard, annotations = evaluate_from_model(
        model_configs=model_configs, evaluation_dataset=str(eval_set), annotators_config=str(annotators_config),
        output_path=str(out_dir / "ae_out"), fn_metric="get_winrate", sort_by="win_rate",
        precomputed_leaderboard=None, caching_path=None, is_return_instead_of_print=True)
    wall = time.perf_counter() - t0
    row = leaderboard.loc[model]
    return {"wall_s": wall, "win_rate": float(row["win_rate"]), "n_total": int(row["n_total"]),
            "concurrency": constants.OPENAI_MAX_CONCURRENCY,
            "outputs": json.loads((out_dir / "ae_out" / "model_outputs.json").read_text()),
            "annotations": annotations.to_dict(orient="records") if hasattr(annotations, "to_dict") else annotations}


def run_evalbench(out_dir: Path, eval_set: Path, server, model: str, max_new_tokens: int, n: int,
                  concurrency: int) -> dict:
    """The alpaca suite's generate -> score -> summarize, timed (imports excluded); a fresh cache."""
    import sklearn.linear_model
    import sklearn.model_selection  # noqa: F401

    from evalbench.cache import Cache
    from evalbench.generate.backend import CachedBackend
    from evalbench.store import ResultsStore
    from evalbench.suites.alpaca.suite import AlpacaEval2, AlpacaOptions
    from evalbench.suites.base import Checkpoint, SuiteContext

    options = AlpacaOptions(eval_set=str(eval_set), max_new_tokens=max_new_tokens, temperature=0.0, limit=n)
    cache = Cache(out_dir / "evalbench_cache.sqlite")  # fresh
    policy = server.backend(model, max_concurrency=concurrency)
    judge = server.backend(model, max_concurrency=concurrency)
    suite = AlpacaEval2(options)
    suite.rows()  # read the eval set and the judge prompt outside the timed region, like alpaca_eval's import
    suite.prompt()
    t0 = time.perf_counter()
    run = ResultsStore(out_dir / "evalbench_results").start({"alpaca": options.model_dump(mode="json")},
                                                             options.spec_hash(), data_files=suite.data_files())
    ctx = SuiteContext(judge=CachedBackend(judge, cache), judge_name=model, constrained_judge=True,
                       artifacts_dir=run.artifacts)
    ckpt = Checkpoint(name=model, backend=CachedBackend(policy, cache), base_model=str(server.spec.model))
    gens = suite.generate(ctx, ckpt, 0)
    t_gen = time.perf_counter() - t0
    samples = suite.score(ctx, ckpt, 0, gens)
    metrics = suite.summarize(samples)
    run.write_summary({"results": [{"suite": "alpaca", "checkpoint": model, "seed": 0, "metrics": metrics}]})
    run.finish("success")
    wall = time.perf_counter() - t0
    art = run.artifacts / "alpaca" / model / "seed0"
    return {"wall_s": wall, "generate_s": t_gen, "win_rate": metrics["win_rate"], "n_total": metrics["n_total"],
            "n_failed": metrics["n_failed"], "length_controlled_winrate": metrics["length_controlled_winrate"],
            "concurrency": policy.max_concurrency, "model_calls": policy.calls, "judge_calls": judge.calls,
            "outputs": json.loads((art / "model_outputs.json").read_text()),
            "annotations": json.loads((art / "annotations.json").read_text())}


def _alpaca_eval_switched(instruction: str, seed: int = 0) -> bool:
    """alpaca_eval's presentation order for a row (RandomSwitchTwoColumnsProcessor, annotator seed 0):
    `random.Random("is_switched_outputs" + instruction + str(seed)).choices([False, True])`, as documented
    in its processors.py; alpaca_eval drops the column from the annotations it returns."""
    import random

    return random.Random("is_switched_outputs" + instruction + str(seed)).choices([False, True], k=1)[0]


def _same_order_agreement(ae_rows: list, eb_rows: list) -> tuple[int, float | None]:
    """(rows both tools showed in the same order, max |preference difference| on those rows).

    With the same greedy outputs, prompt and judge, a row shown in the same order must get the same
    verdict from both tools: a fidelity check of evalbench's judge path against alpaca_eval's."""
    eb_by_instruction = {r["instruction"]: r for r in eb_rows}
    diffs = []
    for a in ae_rows:
        b = eb_by_instruction.get(a["instruction"])
        if b is None or a["output_2"] != b["output_2"] or a.get("preference") is None or b["preference"] is None:
            continue
        if _alpaca_eval_switched(a["instruction"]) == b["is_switched_outputs"]:
            diffs.append(abs(float(a["preference"]) - float(b["preference"])))
    return len(diffs), (max(diffs) if diffs else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="instructions (default 20)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--ref-chars", type=int, default=1000, help="cut references to fit the tiny context")
    parser.add_argument("--model", help="model directory (default: the tiny local model, built if missing)")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="requests in flight for both tools (alpaca_eval's OPENAI_MAX_CONCURRENCY; default 16)")
    parser.add_argument("--workdir", type=Path, help="working directory (default: a new temporary one)")
    parser.add_argument("--evalbench-first", action="store_true", help="run evalbench first in the first repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, alternating which tool goes "
                        "first (default 3); the median ratio is reported")
    parser.add_argument("--data-dir", type=Path, help="benchmark data (default: $EVALBENCH_DATA_DIR, else "
                        "../shared/data beside the checkout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local
    from evalbench.data import set_data_dir

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if args.data_dir is not None:
        set_data_dir(args.data_dir)
    elif not os.environ.get("EVALBENCH_DATA_DIR") and shared.is_dir():
        set_data_dir(shared)

    from evalbench.config import ServerSpec
    from evalbench.serve.vllm_server import VLLMServer

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="e2e_vs_alpaca_eval-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.model is None:
        from evalbench.models.tiny import ensure_tiny_model

        args.model = str(ensure_tiny_model())
    eval_set = _eval_set(workdir, args.n, args.ref_chars)
    served = "tiny"
    spec = ServerSpec(model=args.model, served_name=served, dtype="float32", max_model_len=args.max_model_len,
                      extra_args=("--no-enable-prefix-caching",))
    print(f"starting vLLM ({args.model}) ...", file=sys.stderr, flush=True)
    with VLLMServer(spec, log_dir=workdir / "logs") as server:
        from evalbench.config import SamplingSpec
        from evalbench.generate.backend import CachedBackend
        from evalbench.types import GenRequest

        # Warm the server outside both timings: first request, and the first m/M grammar (xgrammar
        # compiles it once; the tool that ran first would otherwise pay for both).
        CachedBackend(server.backend(served), None).generate(
            [GenRequest(messages=({"role": "user", "content": "warm up"},), sampling=SamplingSpec(max_tokens=8)),
             GenRequest(messages=({"role": "user", "content": "m or M?"},),
                        sampling=SamplingSpec(max_tokens=1, logprobs=True, top_logprobs=5, choice=("m", "M")))])

        reps = []
        for rep in range(args.repeats):
            rep_dir = workdir / f"rep{rep}"
            rep_dir.mkdir(exist_ok=True)
            # Alternate which tool goes first, so neither always meets a server the other just used.
            order = ("evalbench", "alpaca_eval") if (rep % 2 == 1) != args.evalbench_first else \
                ("alpaca_eval", "evalbench")
            res = {}
            for tool in order:
                print(f"[{rep + 1}/{args.repeats}] {tool}: {args.n} instructions ...", file=sys.stderr, flush=True)
                if tool == "alpaca_eval":
                    res[tool] = run_alpaca_eval(workdir, rep_dir, eval_set, server.base_url, served,
                                                args.max_new_tokens, args.concurrency)
                else:
                    res[tool] = run_evalbench(rep_dir, eval_set, server, served, args.max_new_tokens, args.n,
                                              args.concurrency)
            res["first"] = order[0]
            reps.append(res)

    import statistics

    ae, eb = reps[0]["alpaca_eval"], reps[0]["evalbench"]
    same_outputs = sum(a["output"] == b["output"] for a, b in zip(ae["outputs"], eb["outputs"]))
    agree = _same_order_agreement(ae["annotations"], eb["annotations"])
    ratios = [r["evalbench"]["wall_s"] / r["alpaca_eval"]["wall_s"] for r in reps]
    ratio = statistics.median(ratios)
    result = {
        "n": args.n, "max_new_tokens": args.max_new_tokens, "ref_chars": args.ref_chars, "model": args.model,
        "repeats": [{"first": r["first"], **{tool: {k: v for k, v in r[tool].items() if k not in ("outputs", "annotations")}
                                             for tool in ("alpaca_eval", "evalbench")}} for r in reps],
        "identical_outputs": same_outputs, "same_order_rows": agree[0], "same_order_max_abs_pref_diff": agree[1],
        "ratios": ratios, "median_ratio_evalbench_over_alpaca_eval": ratio, "target": TARGET_RATIO,
    }
    (workdir / "e2e_vs_alpaca_eval.json").write_text(json.dumps(result, indent=2))
    print(f"\nAlpacaEval 2 work, {args.n} instructions, tiny model as generator and judge (same vLLM server), "
          f"{args.repeats} repeat(s)")
    print(f"{'rep':>3} {'first':<12} {'alpaca_eval s':>14} {'evalbench s':>12} {'ratio':>6}")
    for i, r in enumerate(reps):
        print(f"{i:>3} {r['first']:<12} {r['alpaca_eval']['wall_s']:>14.2f} {r['evalbench']['wall_s']:>12.2f} "
              f"{ratios[i]:>6.2f}")
    print(f"concurrency: alpaca_eval {ae['concurrency']}, evalbench {eb['concurrency']}; win rate: alpaca_eval "
          f"{ae['win_rate']:.2f}, evalbench {eb['win_rate']:.2f} (n_total {ae['n_total']} / {eb['n_total']}); "
          f"evalbench LC win rate {eb['length_controlled_winrate']}")
    print(f"evalbench (rep 0): generation {eb['generate_s']:.2f} s, judging + LC {eb['wall_s'] - eb['generate_s']:.2f} s")
    print(f"identical greedy outputs: {same_outputs}/{args.n}; rows shown in the same order by both tools: {agree[0]}, "
          f"max |preference difference| on them: {agree[1]}")
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"median ratio evalbench / alpaca_eval = {ratio:.2f} ({verdict} the target <= {TARGET_RATIO})")
    print(f"details: {workdir / 'e2e_vs_alpaca_eval.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
