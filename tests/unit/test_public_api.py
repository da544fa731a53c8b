"""`import evalbench`: a light, lazy public API (issue 13, requirement 7)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import evalbench
from evalbench.aggregate.compare import Comparison
from evalbench.aggregate.gate import GateReport
from evalbench.analysis import load
from tests.unit.synth_runs import Unit, make_run, scores

PUBLIC = ("run", "RunSpec", "load_runs", "compare", "gate", "export", "train", "TrainSpec", "Suite", "Judge",
          "BACKENDS")
HEAVY = ("numpy", "torch", "vllm", "lm_eval", "transformers", "pydantic", "yaml")


def test_import_is_light_and_names_load_on_first_use():
    loaded = f"[m for m in {HEAVY!r} if m in sys.modules]"
    code = (f"import sys, json, evalbench; before = {loaded}; evalbench.RunSpec; after = {loaded}; "
            "print(json.dumps([before, after]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after = json.loads(out)
    assert before == []
    assert "torch" not in after  # a spec is plain pydantic


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_resolve_to_their_defining_objects(name):
    module_name, _, attr = evalbench._LAZY[name].partition(":")
    module = importlib.import_module(module_name)
    assert getattr(evalbench, name) is (getattr(module, attr) if attr else module)
    assert name in evalbench.__all__ and name in dir(evalbench)


def test_every_lazy_name_is_public_and_unknown_names_raise():
    assert set(evalbench._LAZY) | {"__version__", "EvalbenchError", "InputError", "MissingExtra"} == set(
        evalbench.__all__)
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        _ = evalbench.no_such_thing


def _runs(tmp_path, cand_mean):
    base = scores(120, 50.0, 10.0, 0)
    noise = scores(120, 0.0, 2.0, 1)
    b = make_run(tmp_path / "results", "base-run", [Unit("policy", base)])
    c = make_run(tmp_path / "results", "cand-run", [Unit("policy", [v + cand_mean - 50.0 + e
                                                                    for v, e in zip(base, noise)])])
    return b, c


RULES = "iters: 2000\nrules:\n  - {metric: win_rate, max_drop: 1.0}\n"


def test_gate_takes_paths_or_run_ids_and_returns_a_report(tmp_path):
    b, c = _runs(tmp_path, 45.0)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    report = evalbench.gate(candidate=c, baseline=b, rules=rules)
    assert isinstance(report, GateReport) and not report.passed and report.exit_code == 1
    by_id = evalbench.gate(candidate="cand-run", baseline="base-run", rules=rules,
                           results_dir=tmp_path / "results")
    assert [r.status for r in by_id.results] == [r.status for r in report.results] == ["fail"]
    assert evalbench.gate(candidate=b, baseline=b, rules=rules).passed


def test_compare_and_export_take_several_runs(tmp_path):
    from evalbench.store import Run

    b, _ = _runs(tmp_path, 55.0)
    renamed = make_run(tmp_path / "other", "cand-run-2", [Unit("policy-b", scores(120, 60.0, 10.0, 3))])
    comparison = evalbench.compare([Run(b), renamed], baseline="policy", iters=500)
    assert isinstance(comparison, Comparison)
    assert comparison.baseline == "policy" and comparison.groups == ["policy", "policy-b"]
    assert ("policy-b", "alpaca", "win_rate") in comparison.outcomes
    # the same run named twice (handle and path) counts once
    assert len(load([Run(b), b])) == 1

    written = evalbench.export([b, renamed], tmp_path / "lb.csv", baseline="policy", iters=500)
    assert written == [tmp_path / "lb.csv"] and "policy-b" in written[0].read_text()
    default = evalbench.export(b, results_dir=tmp_path / "results")
    assert default == [tmp_path / "results" / "leaderboard.csv"] and default[0].exists()


def test_train_stays_callable_after_its_submodules_are_imported():
    """`import evalbench.train.x` binds the package as `evalbench.train`; it must still train."""
    import evalbench.train.spec  # the import is the point

    assert callable(evalbench.train) and evalbench.train is sys.modules["evalbench.train"]
