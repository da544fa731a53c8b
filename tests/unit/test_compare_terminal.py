"""The comparison in a terminal and in a pipe (issue 18, item 1): it fits the width, never cuts a digit
or a significance mark, tells similar metric names apart, and `run`, `demo` and `compare` print it the
same way (tables at the terminal's width, the plain layout when not a TTY)."""

from __future__ import annotations

import io
import re

import pytest

from evalbench.aggregate.compare import MARK, compare_runs, print_comparison, to_plain, to_text
from evalbench.aggregate.summarize import load_runs
from tests.unit.synth_runs import Unit, make_run, scores

ITERS = 500
GROUPS = {"base": 0.0, "dpo": 10.0, "ipo-beta0.1-lr5e-7-a-long-group-name": 0.5, "simpo": -8.0}
MTBENCH = ("pairwise_win_rate", "pairwise_win_rate_strict", "pairwise_loss_rate", "score")


@pytest.fixture(scope="module")
def comp(tmp_path_factory):
    """Four groups over AlpacaEval (per-sample win rates) and MT-bench (seed-level metrics only)."""
    units = []
    for gi, (group, shift) in enumerate(GROUPS.items()):
        for s in range(3):
            ck = group if group == "base" else f"{group}-s{s}"
            kw = {"seed": s} if group == "base" else {"group": group, "train_seed": s}
            units.append(Unit(ck, scores(60, 50 + shift, 20, 100 * gi + s),
                              metrics={"length_controlled_winrate": 40 + shift + 0.37 * s,
                                       "avg_length": 1234.5 + 10 * shift + s}, **kw))
            units.append(Unit(ck, None, suite="mtbench", metrics={
                "pairwise_win_rate": 48 + shift + 0.91 * s, "pairwise_win_rate_strict": 40 + shift + 1.3 * s,
                "pairwise_loss_rate": 45 - shift + 0.7 * s, "score": 6.1 + shift / 10 + 0.11 * s}, **kw))
    run = make_run(tmp_path_factory.mktemp("runs"), "r1", units)
    return compare_runs(load_runs([run]), baseline="base", iters=ITERS)


def _expected_cells(comp, digits=2):
    """Every number the table must show whole: 'mean (std)' and the signed difference (+ mark)."""
    out = []
    for (group, suite, metric), cell in comp.cells.items():
        out.append(f"{cell.mean:.{digits}f} ({cell.std:.{digits}f})")
        o = comp.outcomes.get((group, suite, metric))
        if o is not None:
            base = comp.cells[(comp.baseline, suite, metric)]
            out.append(f"{cell.mean - base.mean:+.{digits}f}" + (MARK if o.significant else ""))
    return out


def _first_column(table_text: str) -> list[str]:
    """The first column of rich tables' bodies, one entry per row, folded pieces joined (a table
    with stacked cells rules its rows; one without has one line per row)."""
    rows: list[str] = []
    body: list[str] = []
    for line in table_text.splitlines():
        if line.startswith("┡"):
            body = []
        elif line.startswith(("│", "├")):
            body.append(line)
        elif line.startswith("└"):
            ruled = any(b.startswith("├") for b in body)
            current: list[str] = []
            for b in [*body, "├"]:
                if b.startswith("├") or not ruled:
                    if not ruled and not b.startswith("├"):
                        current.append(b[1:].split("│")[0].strip())
                    if current:
                        rows.append("".join(current))
                    current = []
                else:
                    current.append(b[1:].split("│")[0].strip())
    return rows


@pytest.mark.parametrize("width", [60, 100, 200])
def test_tables_fit_the_width_and_keep_every_digit_and_mark(comp, width):
    text = to_text(comp, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    n_significant = sum(bool(o.significant) for o in comp.outcomes.values())
    assert n_significant >= 6  # dpo and simpo differ on most metrics
    tables = "\n".join(line for line in text.splitlines() if line[:1] in "┏┃┡│├└")
    assert tables.count(MARK) == n_significant
    # rich may put a long cell's difference on its own line, but never breaks a number
    tokens = {t for line in text.splitlines() for t in line.replace("│", " ").split()}
    for expected in _expected_cells(comp):
        if " (" in expected:
            mean, std = expected.split(" ")
            assert expected in text or (mean in tokens and std in tokens), expected
        else:
            assert expected in tokens, expected


@pytest.mark.parametrize("width", [60, 100, 200])
def test_metric_names_wrap_instead_of_being_cut_and_stay_distinct(comp, width):
    text = to_text(comp, width=width)
    labels = [label.replace(" ", "") for label in _first_column(text)]  # a wrap at a space drops it
    for metric in MTBENCH:
        label = metric + ("(%)" if "rate" in metric else "")
        assert label in labels, (label, labels)
    assert "pairwise_win_rate(%)" in labels and "pairwise_win_rate_strict(%)" in labels
    assert "length_controlled_winrate(%)" in labels
    # one table per suite (or more when the groups do not fit side by side), titled by the suite
    assert text.index("alpaca: mean (std)") < text.index("mtbench: mean (std)")


def test_wide_terminal_shows_all_groups_side_by_side_in_one_table_per_suite(comp):
    text = to_text(comp, width=200)
    assert text.count("┏") == 2
    header = next(line for line in text.splitlines() if line.startswith("┃ metric"))
    assert all(g in header for g in GROUPS)


def test_narrow_terminal_splits_groups_and_repeats_the_baseline(comp):
    text = to_text(comp, width=60)
    assert text.count("┏") > 2
    assert text.count("base (baseline)") + text.count("(baseline)") >= text.count("┏")


def test_piped_output_is_plain_and_keeps_every_digit(comp):
    text = to_plain(comp)
    assert to_text(comp) == text  # no width: the plain layout
    assert "…" not in text and "│" not in text and "┃" not in text
    for expected in _expected_cells(comp):
        assert expected in text, expected
    lines = text.splitlines()
    for metric in MTBENCH:
        label = metric + (" (%)" if "rate" in metric else "")
        assert any(line.startswith(label + " ") for line in lines), label
    # one block per suite: title, header, rule, one row per metric
    start = lines.index(next(line for line in lines if line.startswith("mtbench: ")))
    assert lines[start + 1].startswith("metric") and set(lines[start + 2]) == {"-"}
    assert [line.split("  ")[0].strip() for line in lines[start + 3:start + 7]] == [
        "pairwise_win_rate (%)", "pairwise_win_rate_strict (%)", "pairwise_loss_rate (%)", "score"]
    marks = sum(line.count(MARK) for line in lines if line.startswith(("win_rate", "length_", "avg_", "pairwise",
                                                                        "score")))
    assert marks == sum(bool(o.significant) for o in comp.outcomes.values())


def test_print_comparison_is_plain_off_a_tty_and_fitted_on_one(comp, monkeypatch):
    buf = io.StringIO()
    print_comparison(comp, file=buf)
    assert buf.getvalue() == to_plain(comp)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty = Tty()
    print_comparison(comp, file=tty)
    out = tty.getvalue()
    assert "┏" in out and "…" not in out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert max(len(line) for line in plain.splitlines()) <= 100


def test_run_and_compare_print_the_same_layout():
    """`run`/`demo` (cli.run.compare_and_export) and `compare` go through print_comparison; no width=160."""
    import inspect

    import evalbench.cli.compare as compare_cli
    import evalbench.cli.run as run_cli

    for module in (compare_cli, run_cli):
        source = inspect.getsource(module)
        assert "print_comparison(" in source and "width=160" not in source
