"""Compare checkpoint groups against a baseline: mean (std) tables with corrected significance marks.

The table follows the convention of WPO's Table 1 (Zhou et al. 2024): one row per checkpoint group,
one column per benchmark metric, each cell `mean (std)` over seeds; here each non-baseline cell also
shows its difference to the baseline and is underlined (Markdown/HTML) or bold with an asterisk
(terminal) when the corrected p-value of that difference is below alpha.

Which test decides a cell (`test="auto"`):

1. the **paired bootstrap** of per-sample scores (`evalbench.aggregate.stats`), clustered by prompt
   when a group has several seed units that repeat the same prompts, when the suite's
   `SampleRecord.scores` carry the metric's key (docs/results-format.md, "Paired tests");
2. otherwise **Welch's t-test** on per-seed values when both sides have at least two seeds (and
   not both sides constant over seeds, where the t statistic is undefined);
3. otherwise no test: the cell is shown without a mark and the note says why.

Asking for `welch` with one seed on a side says so and falls back to the per-sample test; asking
for a per-sample test on a metric without per-sample scores falls back to Welch. Besides the
deciding test, every other applicable test is reported (`p_bootstrap`, `p_permutation`, `p_sign`,
`p_wilcoxon`, `p_welch`), with an effect size (`cohens_dz` on per-prompt differences, or Hedges'
g across seeds). All deciding p-values of one comparison form one family, adjusted by Holm and by
Benjamini-Hochberg; both are reported next to the raw p, and `correction` picks the one that marks.

Comparing runs of different suite versions or prompt sets is refused with the mismatch named.
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from evalbench.aggregate.summarize import GroupData, ResultSet, RunData
from evalbench.errors import InputError
from evalbench.registry import UnknownName

log = logging.getLogger(__name__)

SAMPLE_TESTS: tuple[str, ...] = ("bootstrap", "permutation", "sign", "wilcoxon")
TEST_CHOICES: tuple[str, ...] = ("auto", *SAMPLE_TESTS, "welch")

# Long-format rows (CSV / JSON), in this order.
COMPARE_COLUMNS: tuple[str, ...] = (
    "suite", "metric", "group", "baseline", "is_baseline", "n", "mean", "std", "ci_low", "ci_high",
    "boot_low", "boot_high", "delta", "delta_ci_low", "delta_ci_high", "test", "unit", "n_pairs",
    "n_dropped", "p_value", "p_holm", "p_bh", "p_adjusted", "significant", "effect_size",
    "effect_size_kind", "p_bootstrap", "p_permutation", "p_sign", "p_wilcoxon", "p_welch", "note")


@dataclass(frozen=True)
class TestOutcome:
    """One group vs the baseline on one metric. `delta` = group - baseline (the deciding test's)."""

    suite: str
    metric: str
    group: str
    baseline: str
    test: str | None = None  # method of the deciding test, None when untestable
    unit: str | None = None  # "sample" or "seed"
    delta: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    p_value: float | None = None
    n_pairs: int | None = None  # pairs, prompts (clustered) or seeds (Welch: n_a + n_b)
    n_dropped: int = 0  # prompts left out because one side has no valid score
    effect_size: float | None = None
    effect_size_kind: str | None = None
    p_by_test: dict[str, float | None] = field(default_factory=dict)
    p_holm: float | None = None
    p_bh: float | None = None
    p_adjusted: float | None = None
    significant: bool | None = None
    note: str | None = None

    @property
    def tested(self) -> bool:
        return self.p_value is not None


def check_comparable(a: GroupData, b: GroupData) -> None:
    """Refuse to compare different suite versions or prompt sets, naming the mismatch."""
    va = {v for v in a.suite_versions if v is not None}
    vb = {v for v in b.suite_versions if v is not None}
    if len(va | vb) > 1:
        raise InputError(f"{a.suite}: suite versions differ: '{a.group}' has {sorted(va)}, '{b.group}' has "
                         f"{sorted(vb)}; results of different suite versions are not comparable")
    if a.has_samples() and b.has_samples():
        ia, ib = a.prompt_ids(), b.prompt_ids()
        if ia != ib:
            only_a = sorted(ia - ib)
            only_b = sorted(ib - ia)
            parts = [(f"{a.suite}: prompt sets differ: '{a.group}' has {len(ia)} sample ids, "
                     f"'{b.group}' has {len(ib)}")]
            if only_a:
                parts.append(f"{len(only_a)} only in '{a.group}' ({_examples(only_a)})")
            if only_b:
                parts.append(f"{len(only_b)} only in '{b.group}' ({_examples(only_b)})")
            raise InputError("; ".join(parts))


def _examples(items: list, k: int = 3) -> str:
    return ", ".join(repr(x) for x in items[:k]) + (", ..." if len(items) > k else "")


def _paired_inputs(a: GroupData, b: GroupData, metric: str):
    """Per-unit score maps restricted to prompts valid on both sides, and the number dropped."""
    sa, sb = a.sample_scores(metric), b.sample_scores(metric)
    if not sa or not sb:
        return None, None, 0
    valid_a = set().union(*(set(d) for d in sa.values()))
    valid_b = set().union(*(set(d) for d in sb.values()))
    common = valid_a & valid_b
    all_ids = set().union(*(set(d) for d in sa.values()), *(set(d) for d in sb.values()))
    if a.has_samples():
        all_ids |= a.prompt_ids()
    if b.has_samples():
        all_ids |= b.prompt_ids()
    ra = {u: {k: v for k, v in d.items() if k in common} for u, d in sa.items()}
    rb = {u: {k: v for k, v in d.items() if k in common} for u, d in sb.items()}
    ra = {u: d for u, d in ra.items() if d}
    rb = {u: d for u, d in rb.items() if d}
    return ra, rb, len(all_ids) - len(common)


def compare_groups(a: GroupData, b: GroupData, metric: str, *, test: str = "auto", conf: float = 0.95,
                   iters: int = 10_000, seed: int = 0, all_tests: bool = True) -> TestOutcome:
    """Test group `a` (candidate) against group `b` (baseline) on one metric of one suite.

    Args:
        test: "auto" or a name in `TEST_CHOICES` (see the module doc for fallbacks).
        conf, iters, seed: interval coverage, resamples / sign flips, random seed.
        all_tests: also run every other applicable test (reported in `p_by_test`).

    Raises:
        InputError: different suite versions or prompt sets (`check_comparable`), unknown test.
    """
    from evalbench.aggregate import stats

    if test not in TEST_CHOICES:
        try:
            stats.TESTS.get(test)
        except UnknownName as exc:
            raise InputError(str(exc).replace("(known: ", "(known: auto, "), field="test") from None
    check_comparable(a, b)
    out = TestOutcome(a.suite, metric, a.group, b.group)
    notes: list[str] = []
    ra, rb, n_dropped = _paired_inputs(a, b, metric)
    paired = bool(ra) and bool(rb)
    if paired and len(set().union(*(set(d) for d in ra.values()))) < 2:
        notes.append(f"fewer than 2 prompts with valid '{metric}' scores on both sides")
        paired = False
    va, vb = a.seed_values(metric), b.seed_values(metric)
    seeds_ok = len(va) >= 2 and len(vb) >= 2
    if seeds_ok and len(set(va.values())) == 1 and len(set(vb.values())) == 1:
        # Both sides identical over seeds (deterministic decoding and judging do this): the t
        # statistic is undefined, and calling any difference "real" from zero observed spread would
        # turn every deterministic change into a significant one. No Welch test then.
        if not paired or test == "welch":  # only worth saying where Welch would have decided
            notes.append("zero spread over seeds on both sides: Welch's t-test is undefined")
        seeds_ok = False

    if test == "auto":
        chosen = "bootstrap" if paired else ("welch" if seeds_ok else None)
    elif test == "welch":
        chosen = "welch" if seeds_ok else None
        if not seeds_ok:
            if len(va) < 2 or len(vb) < 2:
                notes.append(f"Welch's t-test needs 2 seeds per side ('{a.group}': {len(va)}, "
                             f"'{b.group}': {len(vb)})")
            if paired:
                notes.append("fell back to the per-sample paired bootstrap")
            chosen = "bootstrap" if paired else None
    else:
        chosen = test if paired else None
        if not paired:
            notes.append(f"no per-sample '{metric}' scores for a paired test"
                         + ("; used Welch's t-test across seeds" if seeds_ok else ""))
            chosen = "welch" if seeds_ok else None
    if chosen is None and not notes:
        notes.append(f"not testable: no per-sample '{metric}' scores and fewer than 2 seeds per side "
                     f"('{a.group}': {len(va)}, '{b.group}': {len(vb)})")

    results: dict[str, Any] = {}
    wanted = ([*SAMPLE_TESTS] if paired and all_tests else []) + (["welch"] if seeds_ok and all_tests else [])
    if chosen and chosen not in wanted:
        wanted.insert(0, chosen)
    clustered = paired and (len(ra) > 1 or len(rb) > 1)
    for name in wanted:
        if name == "welch":
            args = (va, vb)
        elif clustered:
            args = (ra, rb)
        else:
            args = (next(iter(ra.values())), next(iter(rb.values())))
        try:
            with warnings.catch_warnings():
                # scipy warns when one side is (nearly) constant, e.g. identical lengths over seeds;
                # the test result is still defined, and the note below would only repeat it.
                warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
                results[name] = stats.run_test(name, *args, conf=conf, iters=iters, seed=seed)
        except InputError as exc:
            results[name] = None
            notes.append(f"{name}: {exc}")
    fields: dict[str, Any] = {"p_by_test": {k: (None if v is None else v.p_value) for k, v in results.items()},
                              "n_dropped": n_dropped if paired else 0}
    main = results.get(chosen) if chosen else None
    if main is not None:
        fields.update(test=main.method, unit="seed" if chosen == "welch" else "sample", delta=main.delta,
                      delta_ci_low=main.ci_low, delta_ci_high=main.ci_high, p_value=main.p_value,
                      n_pairs=main.n)
        if chosen == "welch":
            fields.update(effect_size=stats.hedges_g(list(va.values()), list(vb.values())),
                          effect_size_kind="hedges_g")
        else:
            pair = stats.align_clustered(ra, rb)
            fields.update(effect_size=stats.cohens_dz(pair.a, pair.b), effect_size_kind="cohens_dz")
    elif va and vb:  # untestable: still show the difference of the means
        fields["delta"] = sum(va.values()) / len(va) - sum(vb.values()) / len(vb)
    if n_dropped and paired:
        notes.append(f"{n_dropped} prompt(s) without a valid score on one side left out")
    return replace(out, **fields, note="; ".join(notes) or None)


def adjust_outcomes(outcomes: Sequence[TestOutcome], *, correction: str = "holm",
                    alpha: float = 0.05) -> list[TestOutcome]:
    """Fill `p_holm`, `p_bh`, `p_adjusted` (by `correction`) and `significant` over one family."""
    from evalbench.aggregate.stats import adjust

    tested = [i for i, o in enumerate(outcomes) if o.p_value is not None]
    pvals = [outcomes[i].p_value for i in tested]
    holm = adjust(pvals, "holm") if pvals else []
    bh = adjust(pvals, "bh") if pvals else []
    chosen = adjust(pvals, correction) if pvals else []
    out = list(outcomes)
    for j, i in enumerate(tested):
        out[i] = replace(out[i], p_holm=holm[j], p_bh=bh[j], p_adjusted=chosen[j],
                         significant=bool(chosen[j] < alpha))
    return out


@dataclass(frozen=True)
class Cell:
    """One group's across-seed summary of one metric."""

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    boot_low: float | None
    boot_high: float | None
    note: str | None = None


@dataclass
class Comparison:
    """The result of `compare_runs`: cells per group x column, outcomes per non-baseline cell."""

    baseline: str
    groups: list[str]
    columns: list[tuple[str, str]]
    cells: dict[tuple[str, str, str], Cell]  # (group, suite, metric)
    outcomes: dict[tuple[str, str, str], TestOutcome]
    alpha: float
    correction: str
    conf: float
    test: str
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """Long format: one row per (suite, metric, group), keys in `COMPARE_COLUMNS` order."""
        out = []
        for suite, metric in self.columns:
            for group in self.groups:
                cell = self.cells.get((group, suite, metric))
                if cell is None:
                    continue
                o = self.outcomes.get((group, suite, metric))
                row: dict[str, Any] = {"suite": suite, "metric": metric, "group": group, "baseline": self.baseline,
                                       "is_baseline": group == self.baseline, **asdict(cell)}
                notes = [cell.note] if cell.note else []
                if o is not None:
                    row.update({k: getattr(o, k) for k in (
                        "delta", "delta_ci_low", "delta_ci_high", "test", "unit", "n_pairs", "n_dropped",
                        "p_value", "p_holm", "p_bh", "p_adjusted", "significant", "effect_size",
                        "effect_size_kind")})
                    for t in (*SAMPLE_TESTS, "welch"):
                        row[f"p_{t}"] = o.p_by_test.get(t)
                    if o.note:
                        notes.append(o.note)
                row["note"] = "; ".join(notes) or None
                out.append({c: row.get(c) for c in COMPARE_COLUMNS})
        return out


def compare_runs(runs: Sequence[RunData] | ResultSet, *, baseline: str | None = None,
                 metrics: Sequence[str] | None = None, test: str = "auto", correction: str = "holm",
                 alpha: float = 0.05, conf: float = 0.95, iters: int = 10_000, seed: int = 0,
                 bootstrap_iters: int | None = None, all_tests: bool = True,
                 run_tests: bool = True) -> Comparison:
    """Summarise every checkpoint group over seeds and test each against the baseline.

    Args:
        runs: loaded runs (`load_runs`) or a merged `ResultSet`.
        baseline: a group or checkpoint name; default: the first group seen.
        metrics: selectors (`metric`, `suite:metric`, shell patterns); default: every numeric metric
            except bookkeeping counts and `category/...` breakdowns.
        test: "auto" or a test name (`TEST_CHOICES`); correction: "holm", "bh", "bonferroni", "none".
        alpha, conf, iters, seed: significance level, interval coverage, resamples, random seed.
        bootstrap_iters: resamples of the across-seed bootstrap interval (default: `iters`).
        all_tests: also report every other applicable test's p-value.
        run_tests: False: summaries only (no difference tests, no marks).

    Raises:
        InputError: unknown baseline/metric/test/correction; a group that shares no suite with the
            baseline; different suite versions or prompt sets.
    """
    from evalbench.aggregate.stats import ADJUSTMENTS, seed_summary

    if correction not in ADJUSTMENTS:
        try:
            ADJUSTMENTS.get(correction)
        except UnknownName as exc:
            raise InputError(str(exc), field="--correction") from None
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}", field="--alpha")
    rs = runs if isinstance(runs, ResultSet) else ResultSet(runs)
    if not rs.rows:
        raise InputError("the runs have no result rows (empty summary.json 'results')")
    groups = rs.groups()
    base = rs.resolve_group(baseline) if baseline else groups[0]
    columns = rs.metric_columns(metrics)
    if not columns:
        raise InputError("no numeric metrics to compare; name some with --metrics")
    base_suites = {s for s in rs.suites() if rs.group(s, base) is not None}
    notes: list[str] = []
    for g in groups:
        suites = {s for s in rs.suites() if rs.group(s, g) is not None}
        if g != base and not suites & base_suites:
            raise InputError(f"'{g}' shares no suite with baseline '{base}' ('{g}': {sorted(suites)}; "
                             f"'{base}': {sorted(base_suites)}); compare runs of the same suites")
    cells: dict[tuple[str, str, str], Cell] = {}
    outcomes: dict[tuple[str, str, str], TestOutcome] = {}
    biters = bootstrap_iters if bootstrap_iters is not None else iters
    from evalbench.progress import track

    work = [(s, m, g) for s, m in columns for g in groups]
    with track("compare", total=len(work)) as bar:
        for suite, metric, group in work:
            bar.advance()
            gd = rs.group(suite, group)
            if gd is None:
                continue
            vals = list(gd.seed_values(metric).values())
            if not vals:
                continue
            s = seed_summary(vals, conf=conf, bootstrap_iters=biters, seed=seed)
            cells[(group, suite, metric)] = Cell(s.n, s.mean, s.std, s.ci_low, s.ci_high, s.boot_low,
                                                 s.boot_high, s.note)
            if group == base or not run_tests:
                continue
            bd = rs.group(suite, base)
            if bd is None or not bd.seed_values(metric):
                continue
            outcomes[(group, suite, metric)] = compare_groups(gd, bd, metric, test=test, conf=conf,
                                                              iters=iters, seed=seed, all_tests=all_tests)
    keys = list(outcomes)
    adjusted = adjust_outcomes([outcomes[k] for k in keys], correction=correction, alpha=alpha)
    outcomes = dict(zip(keys, adjusted))
    for suite in rs.suites():
        missing = [g for g in groups if rs.group(suite, g) is None]
        if missing and any(c[0] == suite for c in columns):
            notes.append(f"{suite}: no results for {', '.join(missing)}")
    return Comparison(base, groups, columns, cells, outcomes, alpha, correction, conf, test, notes)


# ---------------------------------------------------------------------------------------------
# rendering


def _fmt(x: float | None, digits: int) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _seed_counts(comp: Comparison) -> dict[str, str]:
    out = {}
    for g in comp.groups:
        ns = sorted({c.n for (gg, _, _), c in comp.cells.items() if gg == g})
        out[g] = "/".join(str(n) for n in ns) if ns else "0"
    return out


def _cell_parts(comp: Comparison, group: str, suite: str, metric: str, digits: int):
    """(main text, diff text or '', significant) for one cell."""
    cell = comp.cells.get((group, suite, metric))
    if cell is None:
        return "—", "", False
    main = _fmt(cell.mean, digits) + ("" if cell.std is None else f" ({_fmt(cell.std, digits)})")
    o = comp.outcomes.get((group, suite, metric))
    if o is None:
        return main, "", False
    base = comp.cells.get((comp.baseline, suite, metric))
    diff = None if base is None or base.mean is None or cell.mean is None else cell.mean - base.mean
    return main, "" if diff is None else f"{diff:+.{digits}f}", bool(o.significant)


def _column_title(comp: Comparison, suite: str, metric: str) -> str:
    return f"{suite}/{metric}"


def _legend(comp: Comparison, mark: str) -> list[str]:
    counts = _seed_counts(comp)
    lines = [(f"Mean (std) over seeds per checkpoint group; signed numbers are differences to the baseline "
             f"'{comp.baseline}'. {mark}: {comp.correction}-corrected p < {comp.alpha:g} "
             f"({'paired bootstrap / Welch' if comp.test == 'auto' else comp.test} test; raw, Holm and BH "
             f"p-values in the CSV/JSON output)."),
             "Seeds per group: " + ", ".join(f"{g} {n}" for g, n in counts.items()) + "."]
    return lines


def _notes(comp: Comparison) -> list[str]:
    out = list(comp.notes)
    for (g, s, m), o in comp.outcomes.items():
        if o.note:
            out.append(f"{g} vs {comp.baseline}, {s}/{m}: {o.note}")
    return out


def to_markdown(comp: Comparison, digits: int = 2) -> str:
    """A Markdown table; significant cells are underlined with `<u>…</u>` (WPO Table 1 style)."""
    header = ["checkpoint", *(_column_title(comp, s, m) for s, m in comp.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in comp.groups:
        label = f"{g} (baseline)" if g == comp.baseline else g
        cells = []
        for s, m in comp.columns:
            main, diff, sig = _cell_parts(comp, g, s, m, digits)
            text = f"<u>{main}</u>" if sig else main
            cells.append(text + (f" {diff}" if diff else ""))
        lines.append("| " + " | ".join([label.replace("|", "\\|"), *cells]) + " |")
    lines.append("")
    lines.extend(_legend(comp, "<u>Underlined</u>"))
    notes = _notes(comp)
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines) + "\n"


def to_html(comp: Comparison, digits: int = 2) -> str:
    """An HTML `<table>` fragment (plus legend) with significant cells in `<u>`."""
    e = html.escape
    out = ["<table class=\"evalbench-compare\">", "<thead><tr><th>checkpoint</th>"
           + "".join(f"<th>{e(_column_title(comp, s, m))}</th>" for s, m in comp.columns) + "</tr></thead>", "<tbody>"]
    for g in comp.groups:
        label = f"{g} (baseline)" if g == comp.baseline else g
        tds = []
        for s, m in comp.columns:
            main, diff, sig = _cell_parts(comp, g, s, m, digits)
            text = f"<u>{e(main)}</u>" if sig else e(main)
            tds.append(f"<td>{text}{' ' + e(diff) if diff else ''}</td>")
        out.append(f"<tr><th>{e(label)}</th>{''.join(tds)}</tr>")
    out.append("</tbody></table>")
    out.extend(f"<p>{e(line).replace('&lt;u&gt;Underlined&lt;/u&gt;', '<u>Underlined</u>')}</p>"
               for line in _legend(comp, "<u>Underlined</u>"))
    notes = _notes(comp)
    if notes:
        out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return "\n".join(out) + "\n"


def to_csv(comp: Comparison) -> str:
    """Long-format CSV, columns `COMPARE_COLUMNS`; empty fields for None."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COMPARE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in comp.rows():
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def to_json(comp: Comparison) -> str:
    return json.dumps({"baseline": comp.baseline, "alpha": comp.alpha, "correction": comp.correction,
                       "conf": comp.conf, "test": comp.test, "groups": comp.groups,
                       "columns": [f"{s}/{m}" for s, m in comp.columns], "rows": comp.rows(),
                       "notes": _notes(comp)}, indent=2) + "\n"


def to_rich_table(comp: Comparison, digits: int = 2):
    """A rich Table; significant cells are bold with a trailing asterisk."""
    from rich.table import Table

    table = Table(title=f"vs baseline '{comp.baseline}'", show_lines=False)
    table.add_column("checkpoint", style="cyan", no_wrap=True)
    for s, m in comp.columns:
        table.add_column(_column_title(comp, s, m), justify="right")
    for g in comp.groups:
        label = f"{g} (baseline)" if g == comp.baseline else g
        cells = []
        for s, m in comp.columns:
            main, diff, sig = _cell_parts(comp, g, s, m, digits)
            text = main + (f" {diff}" if diff else "")
            cells.append(f"[bold]{text}*[/bold]" if sig else text)
        table.add_row(label, *cells)
    return table


def to_text(comp: Comparison, digits: int = 2, width: int = 160) -> str:
    """The terminal table rendered to plain text (no colour codes), plus legend and notes."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    console.print(to_rich_table(comp, digits))
    for line in _legend(comp, "* (bold)"):
        console.print(line, markup=False)
    for n in _notes(comp):
        console.print(f"- {n}", markup=False)
    return buf.getvalue()


RENDERERS = {"markdown": to_markdown, "md": to_markdown, "html": to_html, "csv": to_csv, "json": to_json,
             "text": to_text}


def write_comparison(comp: Comparison, path: str | Path, fmt: str | None = None, digits: int = 2) -> Path:
    """Write in the format named by `fmt` or the file suffix (.md, .html, .csv, .json, .txt)."""
    from evalbench.io import write_text_atomic

    path = Path(path)
    fmt = fmt or {".md": "markdown", ".html": "html", ".htm": "html", ".csv": "csv", ".json": "json",
                  ".txt": "text"}.get(path.suffix.lower(), "markdown")
    render = RENDERERS[fmt]
    text = render(comp) if fmt in ("csv", "json") else render(comp, digits)
    write_text_atomic(path, text)
    return path


__all__ = [
    "COMPARE_COLUMNS",
    "TEST_CHOICES",
    "Cell",
    "Comparison",
    "TestOutcome",
    "adjust_outcomes",
    "check_comparable",
    "compare_groups",
    "compare_runs",
    "to_csv",
    "to_html",
    "to_json",
    "to_markdown",
    "to_rich_table",
    "to_text",
    "write_comparison",
]
