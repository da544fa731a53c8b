"""LaTeX tables for papers: the WPO-style comparison (`compare --format latex`) and the leaderboard
(`export --format latex`). Renderers of the aggregate layer's tables, beside compare's Markdown
and HTML ones, so the report layer imports them and never the other way round.

Both use booktabs rules (`\\usepackage{booktabs}`; the comparison also needs `\\usepackage[normalem]{ulem}`
for `\\uline`, which, unlike `\\underline`, breaks across lines and keeps the baseline). Cells are
`mean (std)` over seeds; a candidate's cell adds its signed difference to the baseline and is
underlined when the corrected p-value of that difference is below alpha, as in WPO's Table 1.
The caption names the test, the correction, the family and n per group, so a table lifted into
a paper keeps the claim it makes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: Any) -> str:
    """Text safe inside a LaTeX table cell or caption."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def _num(x: float | None, digits: int) -> str:
    return "--" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _tabular(header: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str, label: str | None,
             notes: Sequence[str] = ()) -> str:
    spec = "l" + "r" * (len(header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines.append(rf"\caption{{{caption}}}")
    if label:
        lines.append(rf"\label{{{escape(label)}}}")
    lines.append(r"\end{table}")
    lines += [f"% {n}" for n in notes]
    return "\n".join(lines) + "\n"


def comparison_to_latex(comp, digits: int = 2, *, label: str | None = "tab:evalbench-comparison") -> str:
    """The comparison (`evalbench.aggregate.compare.Comparison`) as a booktabs table.

    Rows are checkpoint groups (baseline first, marked), columns are `suite/metric`; each cell is
    `mean (std)`, candidates add `+delta`, and significant cells are `\\uline`d.
    """
    header = ["Checkpoint", *(escape(f"{s}/{m}") for s, m in comp.columns)]
    rows = []
    for g in comp.groups:
        row = [escape(g) + (" (baseline)" if g == comp.baseline else "")]
        for s, m in comp.columns:
            cell = comp.cells.get((g, s, m))
            if cell is None or cell.mean is None:
                row.append("--")
                continue
            text = _num(cell.mean, digits) + (f" ({_num(cell.std, digits)})" if cell.std is not None else "")
            outcome = comp.outcomes.get((g, s, m)) if g != comp.baseline else None
            if outcome is not None and outcome.delta is not None:
                text += f" {outcome.delta:+.{digits}f}"
            if outcome is not None and outcome.significant:
                text = rf"\uline{{{text}}}"
            row.append(text)
        rows.append(row)
    tests = sorted({o.test for o in comp.outcomes.values() if getattr(o, "test", None)})
    family = getattr(comp, "family_label", None) or f"{len(comp.outcomes)} tests"
    counts = {g: comp.cells[(g, s, m)].n for g in comp.groups for s, m in comp.columns
              if (g, s, m) in comp.cells}
    caption = (f"Mean (std) over seeds; signed numbers are differences to the baseline "
               f"{escape(comp.baseline)}. Underlined: {escape(comp.correction)}-corrected $p < {comp.alpha:g}$ "
               f"({escape(', '.join(tests) or 'no test')}; family: {escape(family)}). "
               f"$n$ (seed units) per group: " + ", ".join(f"{escape(g)} {n}" for g, n in counts.items()) + ".")
    notes = [n.replace("\n", " ") for n in comp.notes]
    return _tabular(header, rows, caption=caption, label=label, notes=notes)


def leaderboard_to_latex(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], *,
                         digits: int = 2, label: str | None = "tab:evalbench-leaderboard") -> str:
    """Leaderboard rows (`export.leaderboard_rows`) as a booktabs table of `mean (std)` per metric.

    `metrics` are the `suite.metric` prefixes of the row's `<suite>.<metric>.mean` / `.std` columns.
    """
    header = ["Checkpoint", *(escape(m.replace(".", "/", 1)) for m in metrics)]
    body = []
    for row in rows:
        cells = [escape(row.get("group") or row.get("checkpoint") or "")]
        for m in metrics:
            mean, std = row.get(f"{m}.mean"), row.get(f"{m}.std")
            text = "--" if mean in (None, "") else _num(float(mean), digits)
            if std not in (None, "") and mean not in (None, ""):
                text += f" ({_num(float(std), digits)})"
            cells.append(text)
        body.append(cells)
    caption = "Mean (std) over seeds per checkpoint group (evalbench leaderboard)."
    return _tabular(header, body, caption=caption, label=label)
