"""Side-by-side outputs: prompts x checkpoints, each cell with its output and its verdict / score / reward.

Pure: records in, rows out (`side_by_side`), and rows to text, Markdown or HTML. Reading a run and
its benchmark's reference answers is the caller's job (`evalbench show`, `evalbench report`).

    sbs = side_by_side(run.generations(), run.samples(), prompts=10, disagree=True)
    print(to_text(sbs))

One table per suite and generation seed. A cell shows the checkpoint's first sample (MT-bench: both
turns) and the number its SampleRecord carries for the suite's headline metric (`HEADLINE`, or
`metric`): AlpacaEval's preference against the reference as a verdict (win / tie / loss), MT-bench's
1-10 grade, the reward suite's mean reward over its K samples (plus the first sample's own reward).
`disagree` orders prompts by how far the checkpoints' numbers spread (max - min), largest first:
the prompts worth reading in an error analysis.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evalbench.errors import InputError
from evalbench.store import GenerationRecord, SampleRecord

# The number a cell shows per suite (first key a record has); other suites: the first numeric score.
HEADLINE: dict[str, tuple[str, ...]] = {
    "alpaca": ("preference", "win_rate"),
    "mtbench": ("score", "turn_1"),
    "reward": ("reward", "reward_prob", "vader_compound"),
    "diversity": ("distinct_2", "pid_diversity", "entropy"),
}


@dataclass(frozen=True)
class Cell:
    checkpoint: str
    output: str | None          # the first sample (turns joined); None: no generation
    n_samples: int
    score: float | None         # the headline metric's value in this cell's SampleRecord
    verdict: str | None         # the score as text: "win (1.83)", "7 / 10", "0.412"
    error: str | None = None


@dataclass(frozen=True)
class Row:
    sample_id: str
    prompt: str
    cells: tuple[Cell, ...]
    reference: str | None = None
    spread: float | None = None  # max - min of the cells' scores (None with fewer than 2)


@dataclass(frozen=True)
class SideBySide:
    suite: str
    seed: int
    metric: str | None
    checkpoints: tuple[str, ...]
    rows: tuple[Row, ...]
    n_prompts: int               # prompts available before selection


def _prompt_text(rec: GenerationRecord) -> str:
    req = rec.request or {}
    if "prompt" in req:
        return str(req["prompt"])
    msgs = req.get("messages") or []
    users = [m.get("content", "") for m in msgs if m.get("role") == "user"]
    return str(users[-1] if users else (msgs[-1].get("content", "") if msgs else ""))


def _verdict(suite: str, metric: str, value: float | None, record: SampleRecord | None) -> str | None:
    if value is None:
        return None
    if metric == "preference":
        # AlpacaEval preference in [1, 2]: 2 = the checkpoint beats the reference.
        word = "win" if value > 1.5 else "loss" if value < 1.5 else "tie"
        return f"{word} ({value:.2f})"
    if suite == "mtbench" and metric in ("score", "turn_1", "turn_2"):
        return f"{value:g} / 10"
    text = f"{value:.3g}"
    if record is not None and suite == "reward":
        rewards = [r for r in record.data.get("rewards") or [] if r is not None]
        if len(rewards) > 1 and record.data["rewards"][0] is not None:
            text = f"{value:.3g} (mean of {len(rewards)}; this sample {record.data['rewards'][0]:.3g})"
    return text


def _numbered(outputs: Sequence[str], rewards: Sequence[float | None] | None) -> str:
    """K samples as `[1] text (reward 0.41)` paragraphs."""
    parts = []
    for j, text in enumerate(outputs):
        r = rewards[j] if rewards is not None and j < len(rewards) else None
        parts.append(f"[{j + 1}] {text}" + (f" (reward {r:.3g})" if r is not None else ""))
    return "\n\n".join(parts)


def headline_metric(suite: str, samples: Sequence[SampleRecord]) -> str | None:
    """The metric a suite's cells show: the first of `HEADLINE[suite]` its records carry, else
    (a reward suite's own metric, or) the first numeric score key."""
    keys: dict[str, None] = {}
    for s in samples:
        keys.update(dict.fromkeys(k for k, v in s.scores.items() if v is not None))
    for m in HEADLINE.get(suite, ()):
        if m in keys:
            return m
    named = next((s.data.get("reward_metric") for s in samples if s.data.get("reward_metric")), None)
    if named in keys:
        return named
    return next(iter(keys), None)


def _order_key(sample_id: str) -> tuple:
    return (0, int(sample_id), "") if sample_id.isdigit() else (1, 0, sample_id)


def side_by_side(generations: Sequence[GenerationRecord], samples: Sequence[SampleRecord], *,
                 suite: str | None = None, seed: int | None = None, checkpoints: Sequence[str] | None = None,
                 prompts: int | Sequence[str] | None = 10, metric: str | None = None, disagree: bool = False,
                 references: Mapping[str, str] | None = None, samples_per_cell: int = 1) -> SideBySide:
    """Prompt x checkpoint cells of one suite and generation seed.

    Args:
        generations, samples: a run's records (any suites; the last record of a key wins).
        suite: default: the first suite with generations.
        seed: default: the smallest generation seed of that suite.
        checkpoints: which, in this order; default: all, sorted by name.
        prompts: how many prompts (the first N in sample-id order, or the N that disagree most), or
            the sample ids to show, in that order; None: all.
        metric: the score shown per cell; default: `headline_metric`.
        disagree: pick (and order) prompts by the spread of the cells' scores, largest first;
            prompts with fewer than two scored cells come last.
        references: sample id -> the benchmark's reference answer (shown next to the outputs).
        samples_per_cell: how many of a cell's K samples to show (reward / diversity suites sample K per
            prompt); each is numbered and, in the reward suite, followed by its own reward.

    Raises:
        InputError: an unknown suite, seed, checkpoint or sample id (naming the known ones).
    """
    suites = list(dict.fromkeys(g.suite for g in generations))
    if not suites:
        raise InputError("the run has no generations to show", field="generations")
    suite = suite or suites[0]
    if suite not in suites:
        raise InputError(f"no generations of suite {suite!r} (suites: {', '.join(suites)})", field="--suite")
    gens = [g for g in generations if g.suite == suite]
    seeds = sorted({g.seed for g in gens})
    seed = seeds[0] if seed is None else seed
    if seed not in seeds:
        raise InputError(f"no generations of seed {seed} (seeds: {', '.join(map(str, seeds))})", field="--seed")
    gens = [g for g in gens if g.seed == seed]
    # Sorted: the order records reach the store depends on how the driver scheduled the work.
    known = sorted({g.checkpoint for g in gens})
    chosen = list(checkpoints) if checkpoints else known
    missing = [c for c in chosen if c not in known]
    if missing:
        from evalbench.registry import did_you_mean

        raise InputError(f"unknown checkpoint {missing[0]!r}{did_you_mean(missing[0], known)} "
                         f"(checkpoints: {', '.join(known)})", field="--checkpoints")

    by_key: dict[tuple[str, str], dict[int, GenerationRecord]] = {}
    for g in gens:
        by_key.setdefault((g.checkpoint, g.sample_id), {})[g.turn] = g  # last record of a key wins
    recs = {(s.checkpoint, s.sample_id): s for s in samples if s.suite == suite and s.seed == seed}
    metric = metric or headline_metric(suite, [s for s in recs.values() if s.checkpoint in chosen])

    ids = sorted({sid for (ck, sid) in by_key if ck in chosen}, key=_order_key)
    rows = []
    for sid in ids:
        cells = []
        prompt = ""
        for ck in chosen:
            turns = by_key.get((ck, sid), {})
            rec = recs.get((ck, sid))
            if not turns:
                cells.append(Cell(ck, None, 0, None, None, "no generation"))
                continue
            first = turns[min(turns)]
            prompt = prompt or _prompt_text(first)
            texts = [t.outputs[0] for _, t in sorted(turns.items()) if t.outputs]
            output = "\n\n".join(f"[turn {n}] {t}" for n, t in enumerate(texts, 1)) if len(texts) > 1 else \
                (texts[0] if texts else None)
            if samples_per_cell > 1 and len(turns) == 1 and len(first.outputs) > 1:
                output = _numbered(first.outputs[:samples_per_cell], (rec.data.get("rewards") if rec is not None else None))
            value = rec.scores.get(metric) if rec is not None and metric else None
            value = None if value is None or not math.isfinite(value) else float(value)
            error = first.error or (rec.error if rec is not None else None)
            cells.append(Cell(ck, output, len(first.outputs), value, _verdict(suite, metric or "", value, rec), error))
        scored = [c.score for c in cells if c.score is not None]
        spread = max(scored) - min(scored) if len(scored) >= 2 else None
        rows.append(Row(sid, prompt, tuple(cells), (references or {}).get(sid), spread))

    if isinstance(prompts, int) or prompts is None:
        if disagree:
            rows.sort(key=lambda r: (r.spread is None, -(r.spread or 0.0)))
        rows = rows[:prompts] if prompts is not None else rows
    else:
        index = {r.sample_id: r for r in rows}
        unknown = [p for p in prompts if p not in index]
        if unknown:
            from evalbench.registry import did_you_mean

            raise InputError(f"unknown prompt id {unknown[0]!r}{did_you_mean(unknown[0], list(index))} "
                             f"({len(index)} prompts in {suite} seed {seed})", field="--prompts")
        rows = [index[p] for p in prompts]
        if disagree:
            rows.sort(key=lambda r: (r.spread is None, -(r.spread or 0.0)))
    return SideBySide(suite, seed, metric, tuple(chosen), tuple(rows), len(ids))


# --------------------------------------------------------------------------- rendering


def _cut(text: str | None, limit: int | None) -> str:
    text = "" if text is None else text
    if limit is not None and len(text) > limit:
        return text[:limit - 1].rstrip() + "…"
    return text


def _cell_note(c: Cell) -> str:
    parts = [c.verdict] if c.verdict else []
    if c.error:
        parts.append(f"error: {c.error}")
    return "; ".join(parts) or "—"


def _title(sbs: SideBySide) -> str:
    return (f"{sbs.suite}, seed {sbs.seed}: {len(sbs.rows)} of {sbs.n_prompts} prompts x "
            f"{len(sbs.checkpoints)} checkpoints" + (f"; cells show {sbs.metric}" if sbs.metric else ""))


def to_text(sbs: SideBySide, *, max_chars: int | None = 600) -> str:
    """Plain text for a terminal: one block per prompt, one paragraph per checkpoint."""
    lines = [_title(sbs), ""]
    for r in sbs.rows:
        head = f"=== prompt {r.sample_id}" + (f" (spread {r.spread:.3g})" if r.spread is not None else "") + " ==="
        lines += [head, _cut(r.prompt, max_chars), ""]
        if r.reference is not None:
            lines += ["--- reference", _cut(r.reference, max_chars), ""]
        for c in r.cells:
            lines += [f"--- {c.checkpoint}: {_cell_note(c)}", _cut(c.output, max_chars), ""]
    return "\n".join(lines).rstrip() + "\n"


def _md(text: str) -> str:
    """A Markdown table cell: pipes escaped, line breaks as <br>."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", "<br>")


def to_markdown(sbs: SideBySide, *, max_chars: int | None = 600) -> str:
    """A Markdown table: one row per prompt, a column per checkpoint (and the reference)."""
    ref = any(r.reference is not None for r in sbs.rows)
    head = ["prompt", *(["reference"] if ref else []), *sbs.checkpoints]
    lines = [f"_{_title(sbs)}_", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sbs.rows:
        cols = [f"**{_md(r.sample_id)}** {_md(_cut(r.prompt, max_chars))}"]
        if ref:
            cols.append(_md(_cut(r.reference, max_chars)))
        cols += [f"**{_md(_cell_note(c))}**<br>{_md(_cut(c.output, max_chars))}" for c in r.cells]
        lines.append("| " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def to_html(sbs: SideBySide, *, max_chars: int | None = 1200, standalone: bool = False) -> str:
    """An HTML table (a fragment, or a whole page with `standalone`); texts keep their line breaks."""
    e = html.escape
    ref = any(r.reference is not None for r in sbs.rows)
    head = ["prompt", *(["reference"] if ref else []), *sbs.checkpoints]
    pre = "white-space:pre-wrap;text-align:left;vertical-align:top"
    out = [f"<p><em>{e(_title(sbs))}</em></p>", "<table class=\"side-by-side\"><thead><tr>"
           + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in sbs.rows:
        cols = [f"<td style=\"{pre}\"><b>{e(r.sample_id)}</b> {e(_cut(r.prompt, max_chars))}</td>"]
        if ref:
            cols.append(f"<td style=\"{pre}\">{e(_cut(r.reference, max_chars))}</td>")
        cols += [f"<td style=\"{pre}\"><b>{e(_cell_note(c))}</b>\n{e(_cut(c.output, max_chars))}</td>" for c in r.cells]
        out.append("<tr>" + "".join(cols) + "</tr>")
    out.append("</tbody></table>")
    body = "\n".join(out)
    if not standalone:
        return body
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>side by side</title><style>"
            "body{font-family:system-ui,sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}"
            "th,td{border:1px solid #ccc;padding:4px 8px}</style></head><body>" + body + "</body></html>\n")


FORMATS = {"text": to_text, "markdown": to_markdown, "html": lambda sbs: to_html(sbs, standalone=True)}

__all__ = ["FORMATS", "HEADLINE", "Cell", "Row", "SideBySide", "headline_metric", "side_by_side", "to_html",
           "to_markdown", "to_text"]
