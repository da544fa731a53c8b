"""Side-by-side outputs (`evalbench.report.side_by_side`, `evalbench show`) and the reward-vs-diversity
frontier in `evalbench report`, on runs driven through the reward suite with FakeBackend policies.

Three groups of checkpoints answer with scripted texts whose VADER rewards and distinct-n are known
in direction: `base` (one model, neutral and varied), `dpo` (two training seeds, positive and
repetitive), `ipo` (two training seeds, mildly positive).
"""

from __future__ import annotations

import struct

import pytest

from evalbench.aggregate.summarize import aggregate_results, load_runs
from evalbench.api import drive, summarize_records
from evalbench.cli import main
from evalbench.errors import InputError
from evalbench.generate.backend import CachedBackend
from evalbench.generate.fake import FakeBackend
from evalbench.report import plots
from evalbench.report.report import build_report, frontier_points, resolve_diversity, reward_metric_of
from evalbench.report.side_by_side import side_by_side, to_html, to_markdown, to_text
from evalbench.store import GenerationRecord, ResultsStore, SampleRecord
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.reward import RewardOptions, RewardSuite

pytest.importorskip("vaderSentiment")

SCRIPTS = {
    "base": [" it was a film", " the plot moves on", " some scenes are long"],
    "dpo-s0": [" great great fun", " great great fun", " great fun"],
    "dpo-s1": [" wonderful and great", " wonderful and great", " great"],
    "ipo-s0": [" good film", " a nice story here", " fine acting"],
    "ipo-s1": [" pretty good", " nice enough plot", " the actors were good"],
}
GROUPS = {"base": ("base", None, None), "dpo-s0": ("dpo", "dpo", 0), "dpo-s1": ("dpo", "dpo", 1),
          "ipo-s0": ("ipo", "ipo", 0), "ipo-s1": ("ipo", "ipo", 1)}


def _checkpoint(name: str) -> Checkpoint:
    group, method, train_seed = GROUPS[name]
    meta = {"group": group, "method": method, "train_seed": train_seed}
    backend = FakeBackend(name, responder=lambda body, name=name: SCRIPTS[name])
    return Checkpoint(name, CachedBackend(backend, None), base_model="fake", meta=meta)


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    suite = RewardSuite(RewardOptions(prompts="imdb", n_prompts=6, k=3))
    cks = [_checkpoint(n) for n in SCRIPTS]
    run = ResultsStore(root).start({"test": "sbs"}, "h" * 64, run_id="sbs")
    final = drive(run, [suite], cks, [0, 1], SuiteContext())
    rows = summarize_records([suite], cks, [0, 1], final, None)
    run.write_results(rows, aggregate=aggregate_results(rows))
    run.finish("success")
    return run


# --------------------------------------------------------------------------- side by side (pure)


def test_side_by_side_cells_carry_outputs_and_rewards(reward_run):
    gens, samples = reward_run.generations(), reward_run.samples()
    sbs = side_by_side(gens, samples, prompts=2)
    assert (sbs.suite, sbs.seed, sbs.metric, sbs.n_prompts) == ("reward", 0, "vader_compound", 6)
    assert sbs.checkpoints == tuple(sorted(SCRIPTS))
    first = sbs.rows[0]
    assert [c.output for c in first.cells] == [SCRIPTS[n][0] for n in sorted(SCRIPTS)]
    rec = next(s for s in samples if (s.checkpoint, s.seed, s.sample_id) == ("dpo-s0", 0, first.sample_id))
    cell = first.cells[sbs.checkpoints.index("dpo-s0")]
    assert cell.score == pytest.approx(rec.scores["vader_compound"])
    assert cell.verdict.startswith(f"{cell.score:.3g} (mean of 3; this sample {rec.data['rewards'][0]:.3g})")
    # the prompt is the completion opening
    assert first.prompt == next(g for g in gens if g.sample_id == first.sample_id).request["prompt"]

    several = side_by_side(gens, samples, prompts=1, samples_per_cell=2).rows[0].cells[sbs.checkpoints.index("dpo-s0")]
    assert several.output == (f"[1] {SCRIPTS['dpo-s0'][0]} (reward {rec.data['rewards'][0]:.3g})\n\n"
                              f"[2] {SCRIPTS['dpo-s0'][1]} (reward {rec.data['rewards'][1]:.3g})")

    picked = side_by_side(gens, samples, checkpoints=["ipo-s1", "base"], prompts=[first.sample_id], seed=1)
    assert picked.checkpoints == ("ipo-s1", "base") and [r.sample_id for r in picked.rows] == [first.sample_id]
    assert picked.seed == 1


def test_disagree_orders_prompts_by_the_spread_of_scores():
    def rec(ck, sid, score):
        return (GenerationRecord(suite="alpaca", checkpoint=ck, seed=0, sample_id=sid, request={"messages": [
                    {"role": "user", "content": f"q{sid}"}]}, sampling={}, outputs=[f"{ck} answer {sid}"]),
                SampleRecord(suite="alpaca", checkpoint=ck, seed=0, sample_id=sid,
                             scores={"preference": score, "win_rate": None if score is None else 100 * (score - 1)}))

    pairs = [rec("a", "0", 1.5), rec("b", "0", 1.6), rec("a", "1", 1.0), rec("b", "1", 2.0),
             rec("a", "2", 1.2), rec("b", "2", None), rec("a", "10", 1.1), rec("b", "10", 1.9)]
    gens, samples = [p[0] for p in pairs], [p[1] for p in pairs]
    plain = side_by_side(gens, samples, prompts=None)
    assert [r.sample_id for r in plain.rows] == ["0", "1", "2", "10"]  # numeric id order
    top = side_by_side(gens, samples, prompts=2, disagree=True, references={"1": "the reference"})
    assert [r.sample_id for r in top.rows] == ["1", "10"]
    assert top.rows[0].spread == pytest.approx(1.0) and top.rows[0].reference == "the reference"
    assert [c.verdict for c in top.rows[0].cells] == ["loss (1.00)", "win (2.00)"]
    last = side_by_side(gens, samples, prompts=None, disagree=True).rows[-1]
    assert last.sample_id == "2" and last.spread is None  # one scored cell: no spread, last
    md = to_markdown(top)
    assert "| prompt | reference | a | b |" in md and "**win (2.00)**" in md
    assert "<td" in to_html(top) and "the reference" in to_html(top)
    assert "=== prompt 1 (spread 1) ===" in to_text(top)
    with pytest.raises(InputError, match="unknown checkpoint 'bb'; did you mean 'b'"):
        side_by_side(gens, samples, checkpoints=["bb"])
    with pytest.raises(InputError, match="unknown prompt id '11'"):
        side_by_side(gens, samples, prompts=["11"])
    with pytest.raises(InputError, match="no generations of suite 'mtbench'"):
        side_by_side(gens, samples, suite="mtbench")


def test_markdown_and_html_escape_table_breaking_text():
    gen = GenerationRecord(suite="reward", checkpoint="a|b", seed=0, sample_id="x",
                           request={"prompt": "<b>|"}, sampling={}, outputs=["line1\nline2 | <script>"])
    sbs = side_by_side([gen], [], prompts=None)
    md = to_markdown(sbs)
    assert "line1<br>line2 \\| &lt;script&gt;" in md
    assert "<script>" not in to_html(sbs) and "&lt;script&gt;" in to_html(sbs)


# --------------------------------------------------------------------------- evalbench show


def test_show_command_prints_text_markdown_and_html(reward_run, capsys, tmp_path):
    assert main(["show", str(reward_run.path), "--prompts", "2", "--disagree", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("reward, seed 0: 2 of 6 prompts x 5 checkpoints; cells show vader_compound")
    assert out.count("=== prompt ") == 2 and "--- dpo-s0: " in out
    assert main(["show", str(reward_run.path), "--prompts", "1", "--samples", "3", "-q"]) == 0
    assert "[3] " in capsys.readouterr().out
    ids = sorted({g.sample_id for g in reward_run.generations()})[:2]
    assert main(["show", "sbs", "--results", str(reward_run.path.parent.parent), "--format", "markdown",
                 "--checkpoints", "base,dpo-s1", "--prompts", ",".join(ids), "-q"]) == 0
    out = capsys.readouterr().out
    assert "| prompt | base | dpo-s1 |" in out and out.count(f"**{ids[0]}**") == 1
    page = tmp_path / "sbs.html"
    assert main(["show", str(reward_run.path), "--format", "html", "--out", str(page), "-q"]) == 0
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert main(["show", str(reward_run.path), "--checkpoints", "nope", "-q"]) == 2
    assert "unknown checkpoint 'nope'" in capsys.readouterr().err


def test_show_reference_column_for_alpaca(tmp_path, capsys):
    from evalbench.cli.show import load_references
    from evalbench.suites.alpaca.data import load_eval_set

    try:
        rows = load_eval_set()
    except Exception as exc:  # noqa: BLE001 - the data dir may be absent on a bare machine
        pytest.skip(f"AlpacaEval data not available: {exc}")
    refs = load_references("alpaca", ["0", "3"])
    assert refs == {"0": rows[0].output, "3": rows[3].output}
    assert load_references("reward", ["imdb-00"]) == {}


# --------------------------------------------------------------------------- frontier


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def test_frontier_plot_renders_a_valid_png(tmp_path):
    points = [{"group": "base", "x": 2.0, "y": 0.1, "x_low": 1.5, "x_high": 2.5, "y_low": -1.3, "y_high": 0.3, "n": 4},
              {"group": "dpo", "x": 1.0, "y": 0.8, "x_low": None, "x_high": None, "y_low": 0.6, "y_high": 1.4,
               "label": "dpo (dpo)", "n": 3},
              {"group": "ipo", "x": 0.5, "y": 0.4}, {"group": "empty", "x": None, "y": 0.2}]
    path = plots.reward_diversity_frontier(points, tmp_path / "f.png", reward_metric="vader_compound",
                                           diversity_metric="entropy", colors=plots.group_colors(["base", "dpo", "ipo"]))
    width, height = _png_size(path)
    assert width > 300 and height > 200
    assert plots.reward_diversity_frontier([{"group": "g", "x": None, "y": 1}], tmp_path / "none.png",
                                           reward_metric="reward", diversity_metric="entropy") is None
    # ipo is dominated by dpo (less diverse and lower reward): the frontier is base and dpo
    assert plots.pareto_front([(2.0, 0.1), (1.0, 0.8), (0.5, 0.4)]) == [1, 0]
    # for a similarity (lower = more diverse) the direction flips
    assert plots.pareto_front([(0.2, 0.1), (0.5, 0.8), (0.6, 0.4)], more_x_is_better=False) == [0, 1]


def test_report_has_the_frontier_and_a_side_by_side(reward_run, tmp_path):
    rs_runs = load_runs([reward_run.path], with_samples=True)
    from evalbench.aggregate.summarize import ResultSet

    rs = ResultSet(rs_runs)
    assert reward_metric_of(rs) == "vader_compound"
    assert resolve_diversity(rs, None) == ("reward", "entropy")
    assert resolve_diversity(rs, "distinct_2") == ("reward", "distinct_2")
    assert resolve_diversity(rs, "diversity:pid_diversity") is None
    points = {p["group"]: p for p in frontier_points(rs, ("reward", "vader_compound"), ("reward", "distinct_1"))}
    assert set(points) == {"base", "dpo", "ipo"}
    assert points["dpo"]["y"] > points["ipo"]["y"] > points["base"]["y"]
    assert points["dpo"]["x"] < points["base"]["x"]  # the repetitive group is less diverse
    assert points["dpo"]["n"] == 2 and points["base"]["n"] == 2  # two models; one model x two seeds
    for p in points.values():
        assert -1.0 <= p["y_low"] <= p["y"] <= p["y_high"] <= 1.0  # cut at VADER's bounds
        assert 0.0 <= p["x_low"] <= p["x"] <= p["x_high"] <= 1.0
    assert "label" not in points["dpo"]  # the method is the group's name: no extra label

    files = build_report(rs_runs, tmp_path / "report", iters=200, frontier_diversity="distinct_1")
    frontier = [p for p in files.images if p.name.startswith("frontier_")]
    assert [p.name for p in frontier] == ["frontier_vader_compound_distinct_1.png"]
    _png_size(frontier[0])
    md = files.markdown.read_text()
    assert "## Reward vs diversity" in md and "## Side-by-side outputs (sample)" in md
    page = files.html.read_text()
    assert "class=\"side-by-side\"" in page and SCRIPTS["dpo-s0"][0].strip() in page
    # one checkpoint per group in the report's table
    assert "| base | dpo-s0 | ipo-s0 |" in md and "dpo-s1" not in md.split("## Side-by-side")[1]
