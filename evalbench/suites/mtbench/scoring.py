"""MT-bench scores from judgments (pure: records in, small typed results out).

The counting rules are FastChat's `fastchat/llm_judge/show_result.py`, re-implemented:

Single grading (`display_result_single`): rows with score −1 (here `score is None`) are dropped;
then per model the mean score of turn-1 rows, of turn-2 rows, and of *all* remaining rows
("Average"). The average therefore pools both turns; it equals the mean of the two turn means
only when both turns have the same number of valid ratings. Rows are pooled across judges and
prompt names, as FastChat pools everything in the file.

Pairwise (`display_result_pairwise`): a row (one question/turn, model_1 vs model_2, both games)
is dropped when either game's winner is "error" (here None). With a baseline, rows that do not
involve the baseline are skipped, and the baseline itself is left out of the table. Each
remaining row counts once for model_1 and once for model_2: if g1_winner is "tie" or
g1_winner != g2_winner, both get a tie; otherwise the named model gets a win and the other a
loss. With n = win + loss + tie:
    win_rate        = (win + tie / 2) / n   (FastChat's column `win_rate_adjusted`)
    win_rate_strict = win / n               (FastChat's column `win_rate`)
    loss_rate       = loss / n
These are fractions, as FastChat prints them; `PairScore.fastchat()` gives one model's row under
FastChat's own column names. A run's summary reports the same rates in percent under evalbench's
names (`pairwise_win_rate` = 100 x win_rate_adjusted; docs/results-format.md, "Units").
"All pairs" mode is the same count without a baseline: every row counts for both its models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from evalbench.errors import InputError
from evalbench.registry import did_you_mean
from evalbench.suites.mtbench.data import PairJudgment, SingleJudgment
from evalbench.suites.mtbench.judging import combine_games

__all__ = ["SingleScore", "PairScore", "single_scores", "pairwise_scores"]


class SingleScore(NamedTuple):
    """One model's MT-bench single-grading score; a mean is None when it has no valid rating."""

    model: str
    turn_1: float | None
    turn_2: float | None
    average: float | None  # mean over all valid ratings of both turns (FastChat "Average")
    n: int  # valid ratings
    n_failed: int  # ratings the judge failed to give (dropped)
    n_turn_1: int
    n_turn_2: int
    categories: dict[str, float]  # category -> mean over both turns; empty without categories


class PairScore(NamedTuple):
    """One model's pairwise record; rates are None when it has no valid comparison."""

    model: str
    win: int
    loss: int
    tie: int
    n: int  # win + loss + tie
    n_failed: int  # comparisons dropped because a game had no verdict
    n_inconsistent: int  # ties that come from the two orders disagreeing
    win_rate: float | None  # (win + tie/2) / n: FastChat's win_rate_adjusted (a fraction)
    win_rate_strict: float | None  # win / n: FastChat's win_rate
    loss_rate: float | None  # loss / n

    def fastchat(self) -> dict[str, str | int | float | None]:
        """This model's row under FastChat show_result's names, in its column order, as fractions:
        `win_rate` = win / n, `loss_rate`, `win_rate_adjusted` = (win + tie/2) / n."""
        return {"model": self.model, "win": self.win, "loss": self.loss, "tie": self.tie,
                "win_rate": self.win_rate_strict, "loss_rate": self.loss_rate,
                "win_rate_adjusted": self.win_rate}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _by_score(value: float | None) -> tuple[bool, float]:
    # Descending by value, models without one last.
    return (value is None, -(value or 0.0))


def single_scores(judgments: Iterable[SingleJudgment],
                  categories: Mapping[int, str] | None = None) -> list[SingleScore]:
    """Per-model single-grading scores, best average first (FastChat's show_result rules).

    Args:
        judgments: single judgments of any models, turns and judges.
        categories: question_id -> category; when given, also the per-category means.

    Raises:
        InputError: a judged question_id has no category in `categories`.
    """
    turn_scores: dict[str, dict[int, list[float]]] = defaultdict(lambda: {1: [], 2: []})
    cat_scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    failed: dict[str, int] = defaultdict(int)
    for j in judgments:
        turn_scores[j.model]  # a model whose every rating failed still gets a row
        if j.score is None:
            failed[j.model] += 1
            continue
        turn_scores[j.model].setdefault(j.turn, []).append(j.score)
        if categories is not None:
            if j.question_id not in categories:
                raise InputError(f"question_id {j.question_id} (model '{j.model}') has no category; "
                                 "is this the right question file?", field="question_id")
            cat_scores[j.model][categories[j.question_id]].append(j.score)
    out = []
    for model, turns in turn_scores.items():
        every = [s for t in sorted(turns) for s in turns[t]]
        out.append(SingleScore(
            model=model, turn_1=_mean(turns[1]), turn_2=_mean(turns[2]), average=_mean(every),
            n=len(every), n_failed=failed[model], n_turn_1=len(turns[1]), n_turn_2=len(turns[2]),
            categories={c: sum(v) / len(v) for c, v in sorted(cat_scores[model].items())}))
    out.sort(key=lambda s: (_by_score(s.average), s.model))
    return out


def pairwise_scores(judgments: Iterable[PairJudgment], baseline: str | None = None) -> list[PairScore]:
    """Per-model win/tie/loss and win rates, best `win_rate` first (FastChat's show_result rules).

    Args:
        judgments: pairwise judgments (both games per row).
        baseline: "vs baseline" mode: only rows with this model count and it is not listed.
            None: "all pairs" mode, every row counts for both of its models.

    Raises:
        InputError: `baseline` appears in no judgment.
    """
    rows = list(judgments)
    if baseline is not None:
        present = {m for j in rows for m in (j.model_1, j.model_2)}
        if baseline not in present:
            raise InputError(f"baseline '{baseline}' is in none of the judgments"
                             f"{did_you_mean(baseline, present)}", field="--baseline")
        rows = [j for j in rows if baseline in (j.model_1, j.model_2)]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("win", "loss", "tie", "failed", "inconsistent"), 0))
    for j in rows:
        outcome = combine_games(j.g1_winner, j.g2_winner)
        if outcome.winner is None:
            counts[j.model_1]["failed"] += 1
            counts[j.model_2]["failed"] += 1
        elif outcome.winner == "tie":
            for m in (j.model_1, j.model_2):
                counts[m]["tie"] += 1
                counts[m]["inconsistent"] += outcome.consistent is False
        else:
            winner, loser = ((j.model_1, j.model_2) if outcome.winner == "model_1"
                             else (j.model_2, j.model_1))
            counts[winner]["win"] += 1
            counts[loser]["loss"] += 1
    out = []
    for model, c in counts.items():
        if model == baseline:
            continue
        n = c["win"] + c["loss"] + c["tie"]
        out.append(PairScore(
            model=model, win=c["win"], loss=c["loss"], tie=c["tie"], n=n, n_failed=c["failed"],
            n_inconsistent=c["inconsistent"],
            win_rate=(c["win"] + 0.5 * c["tie"]) / n if n else None,
            win_rate_strict=c["win"] / n if n else None,
            loss_rate=c["loss"] / n if n else None))
    out.sort(key=lambda s: (_by_score(s.win_rate), s.model))
    return out
