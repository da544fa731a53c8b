"""`evalbench report`: Markdown + HTML files and valid PNG plots; graceful skips."""

from __future__ import annotations

import json
import re

from evalbench.aggregate.summarize import load_runs
from evalbench.cli import main
from evalbench.report import plots
from evalbench.report.report import build_report
from tests.unit.synth_runs import Unit, make_run, scores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _valid_png(path) -> bool:
    data = path.read_bytes()
    # signature, then an IHDR chunk first; a blank or truncated figure would be far below 2 kB
    return data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) > 2000


def _runs(tmp_path, *, categories=True, curves=True):
    units = []
    for s in range(2):
        adapter = tmp_path / f"adapters/dpo-s{s}"
        if curves:
            adapter.mkdir(parents=True)
            (adapter / "metrics.jsonl").write_text("\n".join(
                json.dumps({"step": k, "loss": 0.69 - 0.01 * k * (s + 1), "rewards/margins": 0.02 * k,
                            "rewards/accuracies": min(1.0, 0.5 + 0.05 * k)}) for k in range(20)) + "\n")
        units.append(Unit("base", scores(60, 50, 20, s), seed=s,
                          metrics={"avg_length": 900.0 + s, "length_controlled_winrate": 50.0 + s}))
        units.append(Unit(f"dpo-s{s}", scores(60, 58, 20, 10 + s), group="dpo", train_seed=s, adapter=str(adapter),
                          metrics={"avg_length": 1300.0 + s, "length_controlled_winrate": 53.0 + s}))
        cats = {f"category/{c}": 5.0 + i + s * 0.1 for i, c in enumerate(["writing", "math", "coding", "stem"])}
        units.append(Unit("base", scores(40, 6, 1, 20 + s), seed=s, suite="mtbench",
                          metrics=cats if categories else {}))
        units.append(Unit(f"dpo-s{s}", scores(40, 6.5, 1, 30 + s), group="dpo", train_seed=s, suite="mtbench",
                          adapter=str(adapter),
                          metrics={k: v + 0.5 for k, v in cats.items()} if categories else {}))
    return make_run(tmp_path / "results", "r1", units)


def test_report_files_and_plots(tmp_path):
    run = _runs(tmp_path)
    files = build_report(load_runs([run]), tmp_path / "report", baseline="base", iters=500)
    assert files.markdown.exists() and files.html.exists()
    names = {p.name for p in files.images}
    assert {"bars_alpaca.png", "bars_mtbench.png", "alpaca_length_vs_winrate.png", "dist_alpaca_win_rate.png",
            "dist_mtbench_win_rate.png", "mtbench_radar.png", "training_dpo.png"} <= names
    for p in files.images:
        assert _valid_png(p), p
    md = files.markdown.read_text()
    html = files.html.read_text()
    # every image is linked relatively from the Markdown and embedded in the HTML (one self-contained file)
    import base64

    for p in files.images:
        assert f"]({p.name})" in md
        assert f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"' in html
    assert '<div class="table-wrap"><table' in html
    assert "<u>" in md and "<table" in html and html.startswith("<!DOCTYPE html>")
    assert "## Training curves" in md and "## MT-bench by category" in md


def test_report_without_categories_or_curves_says_so(tmp_path):
    run = _runs(tmp_path, categories=False, curves=False)
    files = build_report(load_runs([run]), tmp_path / "report", iters=300)
    names = {p.name for p in files.images}
    assert "mtbench_radar.png" not in names and not any(n.startswith("training_") for n in names)
    md = files.markdown.read_text()
    assert re.search(r"No per-category MT-bench metrics .*radar skipped", md)
    assert "## Training curves" not in md


def test_plots_handle_degenerate_data(tmp_path):
    # a constant group and a few-level group: a histogram, no density outside the support
    p = plots.score_distributions({"a": [1.0, 1.0, 1.0], "b": [0.0, 1.0, 2.0, 2.5]}, tmp_path / "d.png")
    assert p is not None and _valid_png(p)
    assert plots.score_distributions({"a": []}, tmp_path / "e.png") is None
    assert plots.radar({"a": {"x": 1.0, "y": 2.0}}, tmp_path / "r.png") is None  # fewer than 3 axes
    assert plots.training_curves({"a": [{"step": 1, "other": 2.0}]}, tmp_path / "t.png") is None
    assert plots.bar_chart([("m", [("a", None, None, None, False)])], tmp_path / "b.png") is None


def test_cli_report(tmp_path, capsys):
    run = _runs(tmp_path, curves=False)
    out = tmp_path / "rep"
    assert main(["-q", "report", str(run), "--out", str(out), "--iters", "300", "--metrics", "win_rate"]) == 0
    assert (out / "report.md").exists() and (out / "report.html").exists()
    assert "plot(s)" in capsys.readouterr().out


def test_colours_follow_the_group_not_the_bar_position():
    colors = plots.group_colors(["base", "dpo", "orpo"])
    assert len(set(colors.values())) == 3
    # a panel without 'dpo' keeps orpo's colour
    assert plots._colors_for(["base", "orpo"], colors) == [colors["base"], colors["orpo"]]


def test_intervals_respect_the_metric_bounds():
    from evalbench.units import clip_interval, unit_of

    assert clip_interval("win_rate", -5.0, 104.0) == (0.0, 100.0)
    assert clip_interval("avg_length", -88.0, 900.0) == (0.0, 900.0)
    assert clip_interval("reward", -3.0, 3.0) == (-3.0, 3.0)
    assert unit_of("category/math").discrete and unit_of("score").label == "grade (1-10)"
    # lm-eval accuracies stay lm-eval's fractions (issue 18.4, docs/results-format.md "Units")
    assert unit_of("acc,none").label == "accuracy (fraction, 0-1)"
    assert clip_interval("arc_challenge/acc_norm", -0.1, 1.2) == (0.0, 1.0)
    assert unit_of("pairwise_loss_rate").label == "loss rate (%)"


def test_discrete_scores_are_histograms_and_formats_follow_the_suffix(tmp_path):
    grades = {"a": [1, 5, 5, 9, 10], "b": [2, 3, 8, 8, 8]}
    assert plots.is_discrete(__import__("numpy").array([1.0, 5.0, 9.0, 10.0]))
    for fmt, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")):
        path = plots.score_distributions(grades, tmp_path / f"g.{fmt}")
        assert path.read_bytes().startswith(magic), fmt


def test_report_formats_write_pdf_and_svg_copies(tmp_path):
    run = _runs(tmp_path, curves=False)
    files = build_report(load_runs([run]), tmp_path / "report", iters=200, formats=("png", "pdf", "svg"))
    suffixes = {p.suffix for p in files.images}
    assert {".png", ".pdf", ".svg"} <= suffixes
