"""What a metric's number means on a plot: its axis label with the unit, and its natural bounds.

One convention for every table and plot (docs/results-format.md, "Units"): rates (win, loss and
tie rates of judged comparisons) are percentages (0-100), MT-bench grades are 1-10, lengths are
characters, lm-eval accuracies and exact-match scores are fractions (0-1) exactly as lm-eval
reports them (the Open LLM Leaderboard v2 normalised scores are 0-100), diversity fractions are
0-1, entropies are nats, rewards are in their scorer's units (VADER compound -1 to 1,
probabilities 0-1). Tables name the unit after a metric: `pairwise_win_rate (%)`, `acc_norm (0-1)`. A bound is where a mean of the metric can never go, so an interval drawn
beyond it is an artefact of a symmetric approximation and is cut there.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Unit(NamedTuple):
    label: str                  # axis label, unit included
    low: float | None = None    # natural bounds of the metric's mean (None: unbounded)
    high: float | None = None
    discrete: bool = False      # per-sample values take few levels (grades, verdicts)


PERCENT = Unit("% (0-100)", 0.0, 100.0)

# Exact names first, then patterns; the first match wins.
_EXACT: dict[str, Unit] = {
    "win_rate": Unit("win rate (%)", 0.0, 100.0),
    "length_controlled_winrate": Unit("LC win rate (%)", 0.0, 100.0),
    "discrete_win_rate": Unit("discrete win rate (%)", 0.0, 100.0),
    "pairwise_loss_rate": Unit("loss rate (%)", 0.0, 100.0),
    "standard_error": Unit("standard error (percentage points)", 0.0, None),
    "lc_standard_error": Unit("standard error (percentage points)", 0.0, None),
    "avg_length": Unit("average length (characters)", 0.0, None),
    "length": Unit("length (characters)", 0.0, None),
    "preference": Unit("preference (1 = reference, 2 = model)", 1.0, 2.0),
    "score": Unit("grade (1-10)", 1.0, 10.0, discrete=True),
    "score_turn1": Unit("grade, turn 1 (1-10)", 1.0, 10.0, discrete=True),
    "score_turn2": Unit("grade, turn 2 (1-10)", 1.0, 10.0, discrete=True),
    "entropy": Unit("entropy (nats)", 0.0, None),
    "entropy_per_token": Unit("entropy (nats per token)", 0.0, None),
    "self_bleu": Unit("self-BLEU (0-100)", 0.0, 100.0),
    "reward": Unit("reward (scorer units)"),
    # Reward suite (evalbench.score.rewards): a classifier label's probability, VADER's compound score.
    "reward_prob": Unit("reward: label probability (0-1)", 0.0, 1.0),
    "vader_compound": Unit("VADER compound sentiment (-1 to 1)", -1.0, 1.0),
}
_PATTERNS: tuple[tuple[str, Unit], ...] = (
    (r"^category/", Unit("grade (1-10)", 1.0, 10.0, discrete=True)),
    (r"win_rate|winrate", Unit("win rate (%)", 0.0, 100.0)),
    (r"^distinct_\d+$", Unit("distinct n-grams (fraction, 0-1)", 0.0, 1.0)),
    (r"_diversity$", Unit("diversity (1 - similarity)", 0.0, 2.0)),
    (r"_similarity$", Unit("similarity (cosine, -1 to 1)", -1.0, 1.0)),
    (r"^(n_|num_)", Unit("count", 0.0, None)),
    (r"/normalized$", Unit("normalised score (0-100)", 0.0, 100.0)),
    # lm-eval's own scale: fractions, so the numbers match lm-eval's results JSON and papers citing it
    (r"acc(uracy)?(_norm)?$|(^|/)exact_match$|(^|/)mc[12]$", Unit("accuracy (fraction, 0-1)", 0.0, 1.0)),
)


def unit_of(metric: str) -> Unit:
    """The metric's unit; an unknown metric is labelled by its name, unbounded."""
    name = metric.split(",")[0]  # lm-eval names carry a filter suffix: "acc,none"
    if name in _EXACT:
        return _EXACT[name]
    for pattern, unit in _PATTERNS:
        if re.search(pattern, name):
            return unit
    return Unit(metric)


def unit_suffix(metric: str) -> str:
    """The unit to print after a metric's name in a table column or row: '%' for percentages,
    '0-1' for fractions, '' when the name says enough (grades, counts, lengths)."""
    label = unit_of(metric).label
    if "(%)" in label or label.startswith("%"):
        return "%"
    if "fraction, 0-1" in label:
        return "0-1"
    return ""


def clip_interval(metric: str, low: float | None, high: float | None) -> tuple[float | None, float | None]:
    """An interval cut at the metric's natural bounds (None stays None)."""
    unit = unit_of(metric)
    if low is not None and unit.low is not None:
        low = max(low, unit.low)
    if high is not None and unit.high is not None:
        high = min(high, unit.high)
    return low, high
