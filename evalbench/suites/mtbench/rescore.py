"""Re-score FastChat MT-bench judgment files offline (`evalbench score mtbench`).

    evalbench score mtbench --judgments gpt-4_single.jsonl
    evalbench score mtbench --judgments gpt-4_pair.jsonl --baseline gpt-3.5-turbo --json

Reads `<judge>_single.jsonl` or `<judge>_pair.jsonl` (FastChat's format, also what evalbench
writes) and applies FastChat show_result's counting rules (see `scoring`). No model is called.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from evalbench.errors import EvalbenchError, InputError
from evalbench.suites.mtbench.data import (judgment_kind, load_questions, read_pair_judgments,
                                           read_single_judgments)
from evalbench.suites.mtbench.scoring import PairScore, SingleScore, pairwise_scores, single_scores

__all__ = ["RescoreResult", "rescore", "result_to_json", "format_table", "question_categories"]

log = logging.getLogger(__name__)

Mode = Literal["single", "pair"]


class RescoreResult(NamedTuple):
    mode: Mode
    files: tuple[str, ...]
    judges: tuple[str, ...]  # judge models seen (rows are pooled across them, as in FastChat)
    n_rows: int
    baseline: str | None
    scores: list[SingleScore] | list[PairScore]


def detect_mode(paths: Sequence[str | Path], mode: Mode | None = None) -> Mode:
    """The judgment kind shared by all `paths`; a file of the other kind is an error."""
    found: Mode | None = mode
    for path in paths:
        kind = judgment_kind(path, default=found)
        if found is None:
            found = kind
        elif kind != found:
            how = "--mode" if mode is not None else f"the first file ({paths[0]})"
            raise InputError(f"holds {kind} judgments, but {how} says {found}", path=path)
    assert found is not None
    return found


def rescore(paths: Sequence[str | Path], *, mode: Mode | None = None, baseline: str | None = None,
            categories: Mapping[int, str] | None = None, keep_duplicates: bool = False) -> RescoreResult:
    """Score FastChat judgment files with FastChat show_result's rules.

    Args:
        paths: one or more judgment files of the same kind (rows are concatenated).
        mode: "single" or "pair"; None detects it from the files.
        baseline: pairwise only: score every model against this one ("vs baseline" mode);
            None is "all pairs" mode.
        categories: single only: question_id -> category for per-category means.
        keep_duplicates: count repeated judgments as FastChat does instead of raising.
    """
    if not paths:
        raise InputError("no judgment files given", field="--judgments")
    mode = detect_mode(paths, mode)
    if mode == "single":
        if baseline is not None:
            raise InputError("--baseline applies only to pairwise judgments", field="--baseline")
        rows = read_single_judgments(paths, keep_duplicates=keep_duplicates)
        scores: list[Any] = single_scores(rows, categories)
    else:
        rows = read_pair_judgments(paths, keep_duplicates=keep_duplicates)  # type: ignore[assignment]
        scores = pairwise_scores(rows, baseline)  # type: ignore[arg-type]
    if not rows:
        raise InputError("no judgments in " + ", ".join(map(str, paths)), field="--judgments")
    judges = tuple(sorted({r.judge_model for r in rows}))
    return RescoreResult(mode, tuple(str(p) for p in paths), judges, len(rows), baseline, scores)


def result_to_json(result: RescoreResult) -> dict[str, Any]:
    return {
        "suite": "mtbench", "mode": result.mode, "files": list(result.files), "judges": list(result.judges),
        "n_rows": result.n_rows, "baseline": result.baseline,
        "models": [_model_json(s) for s in result.scores],
    }


def _model_json(score: SingleScore | PairScore) -> dict[str, Any]:
    """One model's entry. Pairwise rates carry FastChat show_result's names and meanings, as
    fractions (`win_rate` = win / n, `win_rate_adjusted` = (win + tie/2) / n), then evalbench's counts."""
    if isinstance(score, PairScore):
        return {**score.fastchat(), "n": score.n, "n_failed": score.n_failed,
                "n_inconsistent": score.n_inconsistent}
    return score._asdict()


def _fmt(x: float | None) -> str:
    # Six decimals, as pandas prints FastChat's show_result tables.
    return "-" if x is None else f"{x:.6f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        # Model names left-aligned, numbers right-aligned.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), *(line(r) for r in rows)])


def format_table(result: RescoreResult) -> str:
    """A plain-text table (plus a per-category table for single grading when available)."""
    title = (f"MT-bench {result.mode} | judge: {', '.join(result.judges)} | {result.n_rows} rows"
             + (f" | baseline: {result.baseline}" if result.baseline else ""))
    if result.mode == "single":
        scores: list[SingleScore] = result.scores  # type: ignore[assignment]
        body = _table(("model", "turn_1", "turn_2", "average", "n", "n_failed"),
                      [(s.model, _fmt(s.turn_1), _fmt(s.turn_2), _fmt(s.average), str(s.n), str(s.n_failed))
                       for s in scores])
        cats = sorted({c for s in scores for c in s.categories})
        if cats:
            body += "\n\n" + _table(("model", *cats),
                                    [(s.model, *(_fmt(s.categories.get(c)) for c in cats)) for s in scores])
        return f"{title}\n{body}"
    pair: list[PairScore] = result.scores  # type: ignore[assignment]
    # FastChat's column names and fractions; sorted by win_rate_adjusted as show_result sorts.
    body = _table(("model", "win", "loss", "tie", "n", "win_rate_adjusted", "win_rate", "loss_rate",
                   "n_failed", "n_inconsistent"),
                  [(s.model, str(s.win), str(s.loss), str(s.tie), str(s.n), _fmt(s.win_rate),
                    _fmt(s.win_rate_strict), _fmt(s.loss_rate), str(s.n_failed), str(s.n_inconsistent))
                   for s in pair])
    note = ("FastChat show_result's columns, as fractions: win_rate_adjusted = (win + tie/2) / n, win_rate = "
            "win / n, loss_rate = loss / n; run summaries give them in percent as pairwise_win_rate, "
            "pairwise_win_rate_strict, pairwise_loss_rate")
    return f"{title}\n{body}\n{note}"


def question_categories(questions_file: str | None, paths: Sequence[str]) -> dict[int, str] | None:
    """question id -> category from `questions_file`, else from the MT-bench questions (data dir or hub).

    None (with a warning) when the MT-bench questions are unavailable or the judgments are of
    another question set, so that re-scoring still works without per-category means.
    """
    if questions_file is not None:
        return {q.question_id: q.category for q in load_questions(questions_file).values()}
    try:
        cats = {q.question_id: q.category for q in load_questions().values()}
    except EvalbenchError as exc:
        log.warning("no per-category scores: MT-bench questions unavailable (%s)", exc)
        return None
    # Judgments of another question set (e.g. a translated MT-bench): skip, don't fail.
    ids = {j.question_id for j in read_single_judgments(paths, prompt_names=None, keep_duplicates=True)}
    if not ids <= cats.keys():
        log.warning("no per-category scores: %d judged question ids are not MT-bench questions; "
                    "pass --questions", len(ids - cats.keys()))
        return None
    return cats
