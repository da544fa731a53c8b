"""The README recipes (issue 16 item 7), CPU-sized: the same `evalbench` commands on the embedded tiny
model with the `tiny` training profiles, a few steps and a few prompts.

Each test follows one recipe of README.md ("Recipes: the experiments people run") command by
command, through the real CLI in a subprocess, and checks that the outputs the recipe promises
are there. The reward-model recipe's training and analysis half needs no vLLM and runs in the
default suite (about a minute); the others start a vLLM server on CPU and are marked slow. The
tiny model's numbers mean nothing here: the recipes' wiring is what is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
pytest.importorskip("torch")

HH = "prefs/hh_rlhf_harmless_base_test.jsonl"  # the tiny profiles' training data (under the data dir)


def _data_dir() -> Path:
    root = os.environ.get("EVALBENCH_DATA_DIR")
    if not root or not (Path(root) / HH).exists():
        pytest.skip(f"needs the benchmark data dir with {HH} (EVALBENCH_DATA_DIR)")
    return Path(root)


def evalbench(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `evalbench ARGS` as a user would; fail with the tail of its stderr. Tables and files
    print on stdout, summaries of `reward score` / `train` are log lines on stderr."""
    env = {**os.environ, "EVALBENCH_DATA_DIR": str(_data_dir()), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "evalbench", "-q", *args], check=False, cwd=cwd, env=env,
                          text=True, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"evalbench {' '.join(args)} -> {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


def tiny_train(cwd: Path, *args: str, steps: int = 8) -> None:
    evalbench("train", "--profile", "tiny", "--max-steps", str(steps), *args, cwd=cwd)


def run_dir(cwd: Path, run_id: str) -> Path:
    path = cwd / "results" / "runs" / run_id
    assert (path / "summary.json").exists(), f"no finished run {run_id}"
    return path


# --------------------------------------------------------------------------- 3. reward model


@pytest.fixture(scope="module")
def rm_workdir(tmp_path_factory) -> Path:
    """Recipe 3, first half: a Bradley-Terry RM with a held-out split, pairs scored, analyses."""
    cwd = tmp_path_factory.mktemp("recipe-rm")
    lines = (_data_dir() / HH).read_text(encoding="utf-8").splitlines()
    rows = [_hh_to_prompt_pair(json.loads(line)) for line in lines[200:216]]
    (cwd / "heldout_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tiny_train(cwd, "--config", "rm", "--seed", "0", "--eval-fraction", "0.25", "--eval-every", "5",
               "--out", "ckpts/rm", steps=10)
    return cwd


def test_recipe_reward_model_validation_scores_and_bias(rm_workdir):
    cwd = rm_workdir
    meta = json.loads((cwd / "ckpts/rm/train_meta.json").read_text())
    held = meta["held_out"]["after"]
    # validation accuracy, reward mean / std on the held-out split (written by the trainer)
    assert {"rewards/accuracies", "rewards/mean", "rewards/std"} <= set(held)
    assert (cwd / "ckpts/rm/training_curves.png").exists()

    out = evalbench("reward", "score", "--pairs", "--model", "ckpts/rm", "--data", "heldout_pairs.jsonl",
                    "--out", "scored_pairs.jsonl", cwd=cwd)
    assert "16 pairs: accuracy" in out.stderr  # chosen-vs-rejected accuracy, margin, both means
    scored = [json.loads(line) for line in (cwd / "scored_pairs.jsonl").read_text().splitlines()]
    assert len(scored) == 16

    # chosen-vs-rejected distributions, t-test, length and readability bias (README's snippet)
    _pairs_to_responses(cwd / "heldout_pairs.jsonl", cwd / "responses.jsonl")
    evalbench("reward", "score", "--model", "ckpts/rm", "--data", "responses.jsonl", "--out", "scored.jsonl", cwd=cwd)
    evalbench("analyze", "rewards", "--scores", "scored.jsonl", "--out", "rm_report", cwd=cwd)
    analysis = json.loads((cwd / "rm_report/rewards_analysis.json").read_text())
    groups = {c["checkpoint"]: c for c in analysis["checkpoints"]}
    assert set(groups) == {"chosen", "rejected"}
    assert all(g["n"] == 16 and g["reward_std"] is not None and g["fk_grade_mean"] is not None
               for g in groups.values())
    assert analysis["welch"] and analysis["length_bias"] and analysis["readability"]
    assert (cwd / "rm_report/reward_distributions.png").exists()


def _hh_to_prompt_pair(row: dict) -> dict:
    """An HH row (two dialogues) as {prompt, chosen, rejected}: the text up to the last assistant turn."""
    marker = "\n\nAssistant:"
    cut = row["chosen"].rfind(marker)
    return {"prompt": row["chosen"][:cut].strip(), "chosen": row["chosen"][cut + len(marker):].strip(),
            "rejected": row["rejected"][row["rejected"].rfind(marker) + len(marker):].strip()}


def _pairs_to_responses(pairs: Path, out: Path) -> None:
    """The README's one-liner: each pair as two responses, checkpoint 'chosen' and 'rejected'."""
    code = ("import json,sys\n"
            "for l in open(sys.argv[1]):\n"
            "    r = json.loads(l)\n"
            "    for k in ('chosen', 'rejected'):\n"
            "        print(json.dumps({'checkpoint': k, 'prompt': r.get('prompt', ''), 'response': r[k]}))\n")
    with out.open("w", encoding="utf-8") as f:
        subprocess.run([sys.executable, "-c", code, str(pairs)], stdout=f, check=True)


@pytest.mark.slow
def test_recipe_reward_model_scores_dpo_vs_original(rm_workdir, tiny_model):
    """Recipe 3, second half: DPO vs the original model, both scored by that RM (reward suite)."""
    cwd = rm_workdir
    tiny_train(cwd, "--config", "dpo", "--seed", "0", "--out", "ckpts/dpo/seed0")
    out = evalbench("run", "--suite", "reward", "--model", str(tiny_model), "--adapter", "dpo=ckpts/dpo/seed0",
                    "--set", "suite_options.reward.scorer=rm:ckpts/rm", "--set", "suite_options.reward.prompts=alpaca",
                    "--set", "suite_options.reward.n_prompts=6", "--set", "suite_options.reward.k=2",
                    "--run-id", "rm-scored", cwd=cwd)
    summary = json.loads((run_dir(cwd, "rm-scored") / "summary.json").read_text())
    rows = {r["checkpoint"]: r["metrics"] for r in summary["results"] if r["suite"] == "reward"}
    assert len(rows) == 2 and "dpo" in rows
    assert all(m["reward"] is not None for m in rows.values())
    assert "reward" in out.stdout


# --------------------------------------------------------------------------- 1. DPO vs ORPO (QLoRA)


@pytest.mark.slow
def test_recipe_dpo_vs_orpo_qlora_curves_and_side_by_side(tmp_path, tiny_model):
    cwd = tmp_path
    for method in ("dpo", "orpo"):
        config = ["--config", "dpo", "--qlora"] if method == "dpo" else ["--config", "orpo_qlora"]
        tiny_train(cwd, *config, "--base", str(tiny_model), "--seed", "0", "--eval-fraction", "0.25",
                   "--eval-every", "4", "--out", f"ckpts/{method}/seed0")
        meta = json.loads((cwd / f"ckpts/{method}/seed0/train_meta.json").read_text())
        assert meta["quantization"] == "nf4" and "after" in meta["held_out"]
    evalbench("run", "--suite", "alpaca", "--model", str(tiny_model), "--adapters-glob", "ckpts/*/seed*",
              "--judge", "same", "--limit", "3", "--set", "suite_options.alpaca.max_new_tokens=24",
              "--set", "suite_options.alpaca.judge_max_output_chars=400", "--run-id", "dpo-vs-orpo", cwd=cwd)
    run = run_dir(cwd, "dpo-vs-orpo")
    evalbench("report", str(run), "--out", "report", cwd=cwd)
    assert any(p.name.startswith("training_") for p in (cwd / "report").glob("*.png")), "training curves"
    evalbench("show", str(run), "--suite", "alpaca", "--prompts", "3", "--reference", "--format", "markdown",
              "--out", "side_by_side.md", cwd=cwd)
    text = (cwd / "side_by_side.md").read_text()
    assert "dpo-seed0" in text and "orpo-seed0" in text and "reference" in text.lower()


# --------------------------------------------------------------------------- 4. ORPO with PID / AID


@pytest.mark.slow
def test_recipe_orpo_pid_aid(tmp_path, tiny_model):
    pytest.importorskip("sentence_transformers")
    cwd = tmp_path
    tiny_train(cwd, "--config", "orpo_qlora", "--base", str(tiny_model), "--seed", "0", "--out", "ckpts/orpo/seed0")
    evalbench("run", "--suite", "diversity", "--model", str(tiny_model), "--adapters-glob", "ckpts/orpo/seed*",
              "--set", "suite_options.diversity.k=3", "--set", "suite_options.diversity.n_prompts=6",
              "--set", "suite_options.diversity.max_tokens=24", "--run-id", "orpo-diversity", cwd=cwd)
    summary = json.loads((run_dir(cwd, "orpo-diversity") / "summary.json").read_text())
    metrics = {r["checkpoint"]: r["metrics"] for r in summary["results"]}
    assert len(metrics) == 2
    for m in metrics.values():
        assert m["pid_similarity"] is not None and m["aid_similarity"] is not None


# --------------------------------------------------------------------------- 5. the WPO table


@pytest.mark.slow
def test_recipe_wpo_table_over_five_seeds(tmp_path, tiny_model):
    cwd = tmp_path
    for seed in range(5):
        tiny_train(cwd, "--config", "dpo", "--seed", str(seed), "--out", f"ckpts/dpo/seed{seed}", steps=4)
        tiny_train(cwd, "--config", "wpo", "--wpo-alignment", "sampled", "--seed", str(seed),
                   "--out", f"ckpts/wpo_sampled/seed{seed}", steps=4)
    # On CPU the reward suite (VADER) stands in for the GPT-4-judged AlpacaEval / MT-bench.
    evalbench("run", "--suite", "reward", "--model", str(tiny_model), "--adapters-glob", "ckpts/*/seed*",
              "--no-base", "--set", "suite_options.reward.n_prompts=8", "--set", "suite_options.reward.k=2",
              "--set", "suite_options.reward.max_tokens=16", "--run-id", "wpo-table", cwd=cwd)
    evalbench("compare", str(run_dir(cwd, "wpo-table")), "--baseline", "dpo", "--format", "markdown",
              "--out", "table.md", cwd=cwd)
    table = (cwd / "table.md").read_text()
    assert "wpo_sampled" in table and "dpo (baseline)" in table
    comparison = json.loads(evalbench("compare", str(run_dir(cwd, "wpo-table")), "--baseline", "dpo",
                                      "--format", "json", cwd=cwd).stdout)
    assert "5 models" in json.dumps(comparison) or '"n_models": 5' in json.dumps(comparison)
