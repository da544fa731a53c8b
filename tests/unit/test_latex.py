"""LaTeX output: booktabs tables for the comparison (WPO style) and the leaderboard."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from evalbench.aggregate.compare import compare_runs
from evalbench.aggregate.summarize import load_runs
from evalbench.cli import main
from evalbench.aggregate.latex import comparison_to_latex, escape
from tests.unit.synth_runs import Unit, make_run, scores


def _runs(tmp_path):
    units = []
    for s in range(3):
        units.append(Unit(f"base-s{s}", scores(80, 50, 10, s), group="base_model", train_seed=s))
        units.append(Unit(f"dpo-s{s}", scores(80, 65, 10, 10 + s), group="dpo_100%", train_seed=s))
    return make_run(tmp_path / "results", "r", units)


def test_escape():
    assert escape("dpo_100% & #1") == r"dpo\_100\% \& \#1"


def test_comparison_table_is_booktabs_with_underlined_significant_cells(tmp_path):
    comp = compare_runs(load_runs([_runs(tmp_path)]), baseline="base_model", iters=500)
    tex = comparison_to_latex(comp)
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"base\_model (baseline)" in tex and r"dpo\_100\%" in tex
    assert r"\uline{" in tex  # a 15-point gain over 3 seeds x 80 prompts is significant
    assert r"\caption{" in tex and "corrected $p < 0.05$" in tex


def test_cli_compare_latex_and_export_latex(tmp_path, capsys):
    run = _runs(tmp_path)
    assert main(["compare", str(run), "--baseline", "base_model", "--format", "latex", "--iters", "300"]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith(r"\begin{table}") and r"\uline{" in out
    tex = tmp_path / "lb.tex"
    assert main(["export", str(run), "--out", str(tex)]) == 0
    text = tex.read_text()
    assert r"\begin{tabular}{lr}" in text and r"dpo\_100\%" in text


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no LaTeX installation")
def test_the_table_compiles(tmp_path):
    comp = compare_runs(load_runs([_runs(tmp_path)]), baseline="base_model", iters=300)
    doc = (r"\documentclass{article}\usepackage{booktabs}\usepackage[normalem]{ulem}\begin{document}"
           + comparison_to_latex(comp) + r"\end{document}")
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
