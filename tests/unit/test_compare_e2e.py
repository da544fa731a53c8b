"""End to end (issue 12): null groups through the results store, `evalbench compare` and `evalbench gate`.

Two checkpoint groups drawn from the same distribution, 5 training seeds each with a real seed-to-seed
spread, written as runs; a calibrated pipeline flags about 5 % of such comparisons (the old
clustered bootstrap flagged 13-43 %). Over 40 synthetic replicates we allow 10 % (4 flags), and
check that the outputs name the test and the n at each level.
"""

from __future__ import annotations

import json

import numpy as np

from evalbench.cli import main
from tests.unit.synth_runs import make_run, trained_group

N_PROMPTS = 120
REPLICATES = 40


def _null_runs(root, rep: int, *, shift: float = 0.0):
    rng = np.random.default_rng(1000 + rep)
    prompts = rng.normal(0.0, 1.5, N_PROMPTS)  # shared prompt difficulty: pairing carries information
    base = make_run(root / f"b{rep}", f"base-{rep}", trained_group("a", rng, prompts, seed_sd=0.15))
    cand = make_run(root / f"c{rep}", f"cand-{rep}", trained_group("b", rng, prompts, seed_sd=0.15, shift=shift))
    return base, cand


def _compare_json(capsys, base, cand) -> dict:
    assert main(["-q", "compare", str(base), str(cand), "--baseline", "a", "--format", "json",
                 "--iters", "200"]) == 0
    return json.loads(capsys.readouterr().out)


def _gate(capsys, base, cand, rules) -> tuple[int, str]:
    code = main(["-q", "gate", "--baseline", str(base), "--candidate", str(cand), "--rules", str(rules),
                 "--baseline-group", "a", "--candidate-group", "b"])
    return code, capsys.readouterr().out


def test_null_groups_are_rarely_flagged_by_compare_and_gate(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("iters: 200\nrules:\n  - {metric: win_rate, max_drop: 0.0}\n")
    compare_flags = gate_flags = 0
    for rep in range(REPLICATES):
        base, cand = _null_runs(tmp_path, rep)
        data = _compare_json(capsys, base, cand)
        (row,) = [r for r in data["rows"] if r["group"] == "b"]
        compare_flags += bool(row["significant"])
        code, md = _gate(capsys, base, cand, rules)
        assert code in (0, 1)
        gate_flags += code == 1
        if rep == 0:
            # 5 vs 5 trained models: the model level (Welch on model means; stats.MODEL_LEVEL_MIN)
            assert row["test"] == "hierarchical" and row["level"] == "model"
            assert (row["n_models"], row["n_models_baseline"], row["n_gen_seeds"], row["n_prompts"]) == \
                (5, 5, 1, N_PROMPTS)
            assert row["mde"] > 0 and row["delta_ci_low"] < row["delta"] < row["delta_ci_high"]
            assert data["family"]["label"].startswith("holm over 1 tests: 1 group x 1 metric")
            assert "hierarchical (model)" in md and f"models 5/5, gen. seeds 1/1, prompts {N_PROMPTS}" in md
    assert compare_flags <= REPLICATES // 10, compare_flags
    assert gate_flags <= REPLICATES // 10, gate_flags


def test_text_output_names_the_test_and_levels_and_a_real_drop_fails_the_gate(tmp_path, capsys):
    base, cand = _null_runs(tmp_path, 0, shift=-1.0)  # about 20 win-rate points worse
    assert main(["-q", "compare", str(base), str(cand), "--baseline", "a", "--iters", "200",
                 "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "hierarchical (model); models 5 vs 5, gen. seeds 1 vs 1, prompts 120" in out
    assert "MDE(80%)" in out and "Family: holm over 1 tests" in out and "<u>" in out
    rules = tmp_path / "rules.yaml"
    rules.write_text("iters: 200\nrules:\n  - {metric: win_rate, max_drop: 1.0}\n")
    code, md = _gate(capsys, base, cand, rules)
    assert code == 1 and "❌ FAIL" in md
