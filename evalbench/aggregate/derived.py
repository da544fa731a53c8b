"""Metrics that are not a plain mean of independent per-sample scores, and how to resample them.

A suite's summary metric is either

* a **plain mean**: the mean over samples of a per-sample score that the suite's `SampleRecord.scores`
  carry under the same key (AlpacaEval `win_rate`, MT-bench `score`, ...). Significance tests work on
  those per-sample scores directly; or
* a **derived** metric: computed from all samples at once (AlpacaEval's length-controlled win rate is
  a GLM fit; AID is a U-statistic over pairs of prompts). Its per-sample pieces are not independent
  observations, so they must never be tested as if they were. Such metrics keep no per-sample key in
  `scores`; instead a *resampler* registered here recomputes the metric of one unit (checkpoint x
  generation seed) under prompt-resampling weights, and the tests work on those recomputations.

A resampler is `fn(records, prompt_ids, weights) -> values`:

* `records`: the SampleRecords of one unit (any order; failed ones included);
* `prompt_ids`: the sample ids that index the columns of `weights` (shared by every unit compared);
* `weights`: float array `(B, P)`, how many times each prompt is drawn in each of B resamples (a row
  of ones is the original data, so `fn(records, ids, np.ones((1, P)))[0]` is the unit's metric);
* returns a float array `(B,)`, NaN where the metric is undefined for that resample.

Registration is lazy ("module:function" strings), so looking up one resampler never imports another
suite's heavy dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from evalbench.registry import Registry
from evalbench.store import SampleRecord

Resampler = Callable[[Sequence[SampleRecord], Sequence[str], np.ndarray], np.ndarray]

DERIVED: Registry[Resampler] = Registry("derived metric")


def key(suite: str, metric: str) -> str:
    return f"{suite}:{metric}"


def resampler_for(suite: str, metric: str) -> Resampler | None:
    """The registered resampler of `suite`'s `metric`, or None for plain-mean metrics."""
    k = key(suite, metric)
    return DERIVED.get(k) if k in DERIVED else None


# Built-in derived metrics (lazy: resolving one imports only its suite's resampling module).
DERIVED.add(key("alpaca", "length_controlled_winrate"), "evalbench.suites.alpaca.resample:lc_resampler")
DERIVED.add(key("diversity", "aid_similarity"), "evalbench.suites.diversity:aid_similarity_resampler")
DERIVED.add(key("diversity", "aid_diversity"), "evalbench.suites.diversity:aid_diversity_resampler")
