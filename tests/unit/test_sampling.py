"""`--limit N` subsets: stratified across categories, seeded, nested as N grows."""

from collections import Counter

import pytest

from evalbench.sampling import describe_subset, stratified_order, stratified_subset

CATS = ["writing"] * 10 + ["roleplay"] * 10 + ["math"] * 10 + ["coding"] * 3
IDS = list(range(100, 100 + len(CATS)))


def test_first_n_covers_every_category_evenly():
    chosen = stratified_subset(IDS, CATS, 8)
    counts = Counter(CATS[i] for i in chosen)
    assert set(counts) == {"writing", "roleplay", "math", "coding"}
    assert max(counts.values()) - min(counts.values()) <= 1


def test_small_category_runs_out_then_others_continue():
    counts = Counter(CATS[i] for i in stratified_subset(IDS, CATS, 21))
    assert counts["coding"] == 3 and counts["writing"] == counts["roleplay"] == counts["math"] == 6


def test_nested_and_in_file_order():
    small, large = stratified_subset(IDS, CATS, 5), stratified_subset(IDS, CATS, 17)
    assert set(small) <= set(large)
    assert small == sorted(small)


def test_seed_changes_the_draw_but_is_reproducible():
    assert stratified_subset(IDS, CATS, 8, seed=1) == stratified_subset(IDS, CATS, 8, seed=1)
    assert stratified_subset(IDS, CATS, 8, seed=1) != stratified_subset(IDS, CATS, 8, seed=2)


def test_order_is_a_permutation():
    assert sorted(stratified_order(IDS, CATS)) == list(range(len(IDS)))


def test_item_rank_does_not_depend_on_other_rows():
    # Appending rows to the file keeps the draw within the existing strata.
    more_ids, more_cats = IDS + [999], CATS + ["extraction"]
    order = [i for i in stratified_order(more_ids, more_cats) if more_cats[i] == "math"]
    assert order == [i for i in stratified_order(IDS, CATS) if CATS[i] == "math"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="differ in length"):
        stratified_order([1, 2], ["a"])
    with pytest.raises(ValueError, match="at least 1"):
        stratified_subset(IDS, CATS, 0)


def test_describe():
    chosen = stratified_subset(IDS, CATS, 4)
    assert describe_subset(CATS, chosen, len(CATS)).startswith("4 of 33, a seeded subset stratified over 4 categories")
