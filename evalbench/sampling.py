"""Representative subsets for `--limit N`: seeded, stratified by category, nested as N grows.

Taking the first N rows of a benchmark file picks one category (MT-bench's first 8 questions are
all `writing`; AlpacaEval's first 16 are all `helpful_base`), so a quick run measures one corner
of the benchmark. Instead every stratum is put in a seeded random order and the strata are
interleaved round-robin; `--limit N` takes the first N of that order. Two properties follow:

* stratified: the counts of any two categories differ by at most one until a category runs out;
* nested: the subset for N is contained in the subset for any larger N, so raising `--limit` on a
  resumed run only adds work, and results for the smaller subset stay valid.

The order of an item depends only on the seed, its id and its stratum, not on the other items,
so adding rows to a file does not reshuffle the rest of its stratum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence


def _rank_key(seed: int, item_id: Hashable) -> str:
    return hashlib.sha256(f"{seed}\x00{item_id}".encode()).hexdigest()


def stratified_order(ids: Sequence[Hashable], strata: Sequence[Hashable], *, seed: int = 0) -> list[int]:
    """Positions of `ids` in the round-robin order over seeded shuffles of each stratum.

    Strata take turns in the order they first appear in `strata`.
    """
    if len(ids) != len(strata):
        raise ValueError(f"ids and strata differ in length ({len(ids)} != {len(strata)})")
    by_stratum: dict[Hashable, list[int]] = {}
    for pos, stratum in enumerate(strata):
        by_stratum.setdefault(stratum, []).append(pos)
    queues = [sorted(positions, key=lambda p: _rank_key(seed, ids[p])) for positions in by_stratum.values()]
    order: list[int] = []
    for turn in range(max((len(q) for q in queues), default=0)):
        order.extend(q[turn] for q in queues if turn < len(q))
    return order


def stratified_subset(ids: Sequence[Hashable], strata: Sequence[Hashable], n: int, *, seed: int = 0) -> list[int]:
    """The first `n` positions of `stratified_order`, returned in file order."""
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    return sorted(stratified_order(ids, strata, seed=seed)[:n])


def describe_subset(strata: Sequence[Hashable], chosen: Sequence[int], total: int) -> str:
    """'16 of 805, stratified by category: helpful_base 4, koala 3, ...' for the log."""
    counts: dict[Hashable, int] = {}
    for pos in chosen:
        counts[strata[pos]] = counts.get(strata[pos], 0) + 1
    parts = ", ".join(f"{k} {v}" for k, v in counts.items())
    return f"{len(chosen)} of {total}, a seeded subset stratified over {len(counts)} categories ({parts})"
