"""A wheel built from the repository, installed outside the checkout (non-editable), finds every
packaged resource and runs the commands a CI runner needs (`gate` with its default rules,
`compare`, `export`, `report`) on runs written by the results store.

The wheel is installed with `--no-deps --target` into a temporary folder and run from another
temporary folder, so neither the checkout nor an editable install can answer for it: the
subprocess asserts that `evalbench` is imported from that folder. Dependencies come from the
test's own environment (installing them afresh would measure the package index, not evalbench).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.synth_runs import Unit, make_run, scores

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

CHECK_RESOURCES = r"""
import sys
from pathlib import Path
import evalbench
site = Path(sys.argv[1]).resolve()
assert Path(evalbench.__file__).resolve().is_relative_to(site), evalbench.__file__
from evalbench.resources import GATE_RULES, OPENLLM_TASKS, TRAIN_RECIPES, asset
from evalbench.train.spec import load_train_spec
from evalbench.aggregate.gate import load_rules
assert GATE_RULES.is_file() and load_rules().rules, GATE_RULES
assert sorted(p.stem for p in TRAIN_RECIPES.glob("*.yaml")) == ["dpo", "ipo", "kto", "orpo_qlora", "rm", "wpo"]
for name in ("dpo", "ipo", "kto", "orpo_qlora", "rm", "wpo"):
    load_train_spec(name, profile="tiny", out="runs/x")
assert (OPENLLM_TASKS / "arc_challenge.yaml").is_file() and (OPENLLM_TASKS / "openllm_data.py").is_file()
assert all(asset("recipes", f).is_file() for f in ("demo.yaml", "demo_pairs.yaml", "demo_train.yaml"))
assert asset("prompts", "movie_chat.jsonl").is_file() and asset("prompts", "imdb_openings.jsonl").is_file()
print("resources ok")
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    dist, site = root / "dist", root / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(REPO)], check=True, cwd=root, timeout=300)
    wheels = list(dist.glob("evalbench-*.whl"))
    assert len(wheels) == 1, wheels
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(wheels[0])], check=True, cwd=root, timeout=300)
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "EVALBENCH_HOME": str(cwd / "home")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_installed_wheel_finds_every_resource(installed, tmp_path):
    out = _run(installed, tmp_path, "-c", CHECK_RESOURCES, str(installed))
    assert out.returncode == 0, out.stderr
    assert "resources ok" in out.stdout


def test_installed_wheel_gates_compares_exports_and_reports(installed, tmp_path):
    results = tmp_path / "results"
    make_run(results, "base", [Unit("base", scores(60, 50, 20, seed=1), metrics={"avg_length": 100.0})])
    make_run(results, "cand", [Unit("base", scores(60, 50, 20, seed=2), metrics={"avg_length": 101.0})])
    gate = _run(installed, tmp_path, "-m", "evalbench", "gate", "--baseline", "base", "--candidate", "cand",
                "--results", str(results))
    assert gate.returncode in (0, 1), gate.stderr  # a verdict, from the packaged default rules
    assert "win_rate" in gate.stdout + gate.stderr
    for args in (["compare", str(results)], ["export", str(results), "--out", str(tmp_path / "lb.csv")],
                 ["report", str(results), "--out", str(tmp_path / "report")]):
        proc = _run(installed, tmp_path, "-m", "evalbench", *args)
        assert proc.returncode == 0, (args, proc.stderr)
    assert (tmp_path / "lb.csv").read_text().count("\n") >= 2
    assert any((tmp_path / "report").iterdir())


# Runs the CLI with every non-core distribution made unimportable: what a core install has.
CORE_ONLY = r"""
import sys
BLOCKED = {"torch", "vllm", "transformers", "peft", "bitsandbytes", "sklearn", "pandas", "statsmodels",
           "lm_eval", "alpaca_eval", "datasets", "sentence_transformers", "sacrebleu", "trl"}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not part of the core install")
sys.meta_path.insert(0, Block())
from evalbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_core_install_reads_compares_gates_exports_and_reports(installed, tmp_path):
    # pyproject's core dependencies (no torch, vLLM, lm-eval, pandas, scikit-learn) are enough for a
    # CI runner that only reads runs.
    results = tmp_path / "results"
    make_run(results, "base", [Unit("base", scores(60, 50, 20, seed=1))])
    make_run(results, "cand", [Unit("base", scores(60, 50, 20, seed=2))])
    for args in (["gate", "--baseline", "base", "--candidate", "cand", "--results", str(results)],
                 ["compare", str(results)], ["export", str(results), "--out", str(tmp_path / "lb.csv")],
                 ["report", str(results), "--out", str(tmp_path / "report")]):
        proc = _run(installed, tmp_path, "-c", CORE_ONLY, *args)
        assert proc.returncode in ((0, 1) if args[0] == "gate" else (0,)), (args, proc.stderr[-2000:])


def test_installed_wheel_trains_from_a_packaged_recipe(installed, tmp_path):
    # `evalbench train --config dpo --profile tiny` outside the checkout: the recipe is package data.
    out = tmp_path / "dpo"
    proc = _run(installed, tmp_path, "-m", "evalbench", "train", "--config", "dpo", "--profile", "tiny",
                "--max-steps", "3", "--out", str(out), "--seed", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "adapter_model.safetensors").exists() and (out / "train_meta.json").exists()
