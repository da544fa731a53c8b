"""`evalbench run` end to end, killed with SIGKILL mid-generation and mid-judging, then resumed.

Two adapters x two seeds, alpaca + mtbench + diversity, a local judge (the tiny base model,
constrained). The policy and the judge are the shared vLLM server reached as an external
endpoint, so each attempt is a fresh `evalbench` process without its own server start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalbench.cache import Cache

pytestmark = [pytest.mark.integration]


def _cmd(server, results: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "evalbench", "-q", "run", "--suite", "alpaca,mtbench,diversity",
            "--model", "tiny", "--model-url", server.base_url, "--served-model", "lora_a",
            "--served-model", "lora_b", "--judge", f"url={server.base_url},model=tiny", "--seeds", "0,1",
            "--limit", "4", "--results", str(results),
            "--set", f"cache_path={cache}",
            "--set", "suite_options.alpaca.max_new_tokens=32",
            "--set", "suite_options.alpaca.judge_max_output_chars=200",
            "--set", "suite_options.mtbench.max_new_tokens=24",
            "--set", "suite_options.mtbench.judge_max_tokens=64",
            "--set", "suite_options.mtbench.question_ids=[81,82,83,84]",
            "--set", "suite_options.diversity.k=3",
            "--set", "suite_options.diversity.max_tokens=24",
            "--set", "judge.constrained=true"]


def _lines(path: Path) -> int:
    return sum(1 for _ in open(path)) if path.exists() else 0


def _kill_when(proc: subprocess.Popen, run_dir_glob: Path, file: str, at_least: int, timeout: float = 300) -> bool:
    """SIGKILL the process group once `file` in the run dir has `at_least` lines; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        for run_dir in run_dir_glob.glob("run-*"):
            if _lines(run_dir / file) >= at_least:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"{file} never reached {at_least} lines")


def _summary(results: Path) -> dict:
    (run_dir,) = list((results / "runs").glob("run-*"))
    return json.loads((run_dir / "summary.json").read_text())


def _differences(a: dict, b: dict) -> list:
    """Metrics that differ. Floats may differ in the last float32 bits of the judge's log-probs:
    vLLM computes them in whatever batch the requests happen to share, and a resumed run batches
    differently (preferences differ by ~1e-10, a standard error of 0.0116 by 1.5e-8); counts,
    lengths and verdicts must be equal."""
    ka = {(r["suite"], r["checkpoint"], r["seed"]): r["metrics"] for r in a["results"]}
    kb = {(r["suite"], r["checkpoint"], r["seed"]): r["metrics"] for r in b["results"]}
    assert ka.keys() == kb.keys()
    diffs = []
    for k, metrics in ka.items():
        assert metrics.keys() == kb[k].keys(), k
        for m, v in metrics.items():
            w = kb[k][m]
            same = (v == pytest.approx(w, rel=1e-6, abs=1e-4)) if isinstance(v, float) else v == w
            if not same:
                diffs.append((k, m, v, w))
    return diffs


def _outputs(results: Path) -> dict:
    (run_dir,) = list((results / "runs").glob("run-*"))
    rows = [json.loads(line) for line in open(run_dir / "generations.jsonl")]
    return {(r["suite"], r["checkpoint"], r["seed"], r["sample_id"], r["turn"]): r["outputs"] for r in rows}


def test_killed_runs_resume_to_the_uninterrupted_result(vllm_server, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Uninterrupted reference run.
    ref = subprocess.run(_cmd(vllm_server, tmp_path / "ref", tmp_path / "ref.sqlite"), env=env,
                         capture_output=True, text=True, timeout=900)
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = _summary(tmp_path / "ref")
    ref_calls = len(Cache(tmp_path / "ref.sqlite"))

    results, cache_path = tmp_path / "resumed", tmp_path / "resumed.sqlite"
    rng = random.Random(0)
    # 1) killed during generation, 2) killed during judging, 3) resumed to the end.
    for file, at_least in (("generations.jsonl", rng.randint(2, 12)), ("samples.jsonl", rng.randint(2, 12))):
        proc = subprocess.Popen(_cmd(vllm_server, results, cache_path), env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert _kill_when(proc, results / "runs", file, at_least), "the run ended before it could be killed"
    before = len(Cache(cache_path))
    assert 0 < before < ref_calls
    final = subprocess.run(_cmd(vllm_server, results, cache_path), env=env, capture_output=True, text=True,
                           timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    resumed = _summary(results)
    assert _differences(reference, resumed) == []
    assert _outputs(results) == _outputs(tmp_path / "ref")
    # The resumed attempt asked only for what was not cached yet: no request was paid twice.
    (run_dir,) = list((results / "runs").glob("run-*"))
    header = json.loads((run_dir / "run.json").read_text())
    last = header["model_calls"][-1]
    assert last["generate"] + last["judge"] == ref_calls - before
    assert len(Cache(cache_path)) == ref_calls
    assert header["resumed"] == 2
