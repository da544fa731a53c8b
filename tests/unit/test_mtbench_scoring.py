"""MT-bench scores: FastChat show_result's rules checked against hand computations."""

from __future__ import annotations

import random

import pytest

from evalbench.errors import InputError
from evalbench.suites.mtbench.data import PairJudgment, SingleJudgment
from evalbench.suites.mtbench.scoring import PairScore, pairwise_scores, single_scores


def S(qid, model, turn, score):
    return SingleJudgment(qid, model, "gpt-4", "single-v1", turn, score,
                          None if score is not None else "failed")


def P(qid, m1, m2, g1, g2, turn=1):
    return PairJudgment(qid, m1, m2, "gpt-4", "pair-v2", turn, g1, g2)


SINGLE = [
    S(81, "m1", 1, 8.0), S(81, "m1", 2, 6.0), S(101, "m1", 1, 10.0), S(101, "m1", 2, None),
    S(82, "m1", 1, None),
    S(81, "m2", 1, 4.0), S(81, "m2", 2, 5.0), S(101, "m2", 1, 2.5), S(101, "m2", 2, 3.0),
]


def test_single_scores_by_hand():
    got = {s.model: s for s in single_scores(SINGLE, {81: "writing", 82: "writing", 101: "reasoning"})}
    m1, m2 = got["m1"], got["m2"]
    # m1: turn 1 valid {8, 10} -> 9; turn 2 valid {6} -> 6; failures dropped (2).
    # Average pools the valid rows: (8 + 6 + 10) / 3 = 8, not the mean of turn means (7.5).
    assert (m1.turn_1, m1.turn_2, m1.average) == (9.0, 6.0, 8.0)
    assert (m1.n, m1.n_failed, m1.n_turn_1, m1.n_turn_2) == (3, 2, 2, 1)
    assert m1.categories == {"reasoning": 10.0, "writing": 7.0}  # writing (8 + 6) / 2
    # m2: turn 1 (4 + 2.5) / 2 = 3.25; turn 2 (5 + 3) / 2 = 4; average 14.5 / 4 = 3.625.
    assert (m2.turn_1, m2.turn_2, m2.average, m2.n, m2.n_failed) == (3.25, 4.0, 3.625, 4, 0)
    assert m2.categories == {"reasoning": 2.75, "writing": 4.5}
    assert [s.model for s in single_scores(SINGLE)] == ["m1", "m2"]  # best average first
    assert single_scores(SINGLE)[0].categories == {}


def test_single_model_with_only_failures_is_listed_without_scores():
    (s,) = single_scores([S(81, "x", 1, None), S(81, "x", 2, None)])
    assert (s.turn_1, s.turn_2, s.average, s.n, s.n_failed) == (None, None, None, 0, 2)


def test_single_unknown_category_raises():
    with pytest.raises(InputError, match="question_id 101"):
        single_scores(SINGLE, {81: "writing", 82: "writing"})


def test_single_scores_match_pandas_groupby_on_random_data():
    # An independent route: FastChat's show_result is a pandas filter + groupby-mean.
    pd = pytest.importorskip("pandas")
    rng = random.Random(0)
    rows = [S(q, f"m{m}", t, rng.choice([None, *range(1, 11), 7.5]))
            for q in range(81, 101) for m in range(4) for t in (1, 2)]
    df = pd.DataFrame([{"model": r.model, "score": -1 if r.score is None else r.score, "turn": r.turn}
                       for r in rows])
    df = df[df["score"] != -1]
    t1 = df[df["turn"] == 1].groupby("model")["score"].mean()
    t2 = df[df["turn"] == 2].groupby("model")["score"].mean()
    avg = df.groupby("model")["score"].mean()
    for s in single_scores(rows):
        assert s.turn_1 == pytest.approx(t1[s.model]) and s.turn_2 == pytest.approx(t2[s.model])
        assert s.average == pytest.approx(avg[s.model])


PAIRS = [
    P(81, "a", "b", "model_1", "model_1"),           # 1: a wins
    P(82, "a", "b", "model_1", "model_2"),           # 2: orders disagree -> tie
    P(83, "a", "b", "tie", "model_1"),               # 3: g1 tie -> tie (and inconsistent)
    P(81, "a", "b", None, "model_1", turn=2),        # 4: a game failed -> dropped
    P(81, "a", "c", "model_2", "model_2"),           # 5: c wins
    P(81, "b", "c", "tie", "tie"),                   # 6: consistent tie
    P(82, "c", "b", "model_1", "model_1"),           # 7: c wins (baseline b in the model_2 slot)
]


def test_pairwise_all_pairs_by_hand():
    got = {s.model: s for s in pairwise_scores(PAIRS)}
    # a: rows 1 win, 2 tie, 3 tie, 5 loss (row 4 failed) -> n 4, (1 + 2/2) / 4 = 0.5
    assert got["a"] == PairScore("a", win=1, loss=1, tie=2, n=4, n_failed=1, n_inconsistent=2,
                                 win_rate=0.5, win_rate_strict=0.25, loss_rate=0.25)
    # b: rows 1 loss, 2 tie, 3 tie, 6 tie, 7 loss -> n 5, 1.5 / 5 = 0.3
    assert got["b"] == PairScore("b", win=0, loss=2, tie=3, n=5, n_failed=1, n_inconsistent=2,
                                 win_rate=0.3, win_rate_strict=0.0, loss_rate=0.4)
    # c: rows 5 win, 6 tie, 7 win -> n 3, 2.5 / 3
    c = got["c"]
    assert (c.win, c.loss, c.tie, c.n, c.n_failed, c.n_inconsistent) == (2, 0, 1, 3, 0, 0)
    assert c.win_rate == pytest.approx(2.5 / 3) and c.win_rate_strict == pytest.approx(2 / 3)
    assert [s.model for s in pairwise_scores(PAIRS)] == ["c", "a", "b"]


def test_pairwise_vs_baseline_by_hand():
    got = pairwise_scores(PAIRS, baseline="b")
    assert [s.model for s in got] == ["c", "a"]  # the baseline is not listed
    c, a = got
    # c vs b: rows 6 tie, 7 win -> (1 + 0.5) / 2; row 5 (a vs c) does not involve b.
    assert (c.win, c.loss, c.tie, c.n, c.win_rate) == (1, 0, 1, 2, 0.75)
    # a vs b: rows 1 win, 2 tie, 3 tie, 4 failed -> (1 + 1) / 3
    assert (a.win, a.loss, a.tie, a.n, a.n_failed) == (1, 0, 2, 3, 1)
    assert a.win_rate == pytest.approx(2 / 3)


def test_pairwise_bad_baseline_suggests():
    with pytest.raises(InputError, match="'gpt-3.5'.*did you mean 'gpt-3.5-turbo'"):
        pairwise_scores([P(81, "a", "gpt-3.5-turbo", "tie", "tie"), P(82, "a", "b", "tie", "tie")],
                        baseline="gpt-3.5")


def test_pairwise_only_failures():
    (x, y) = pairwise_scores([P(81, "x", "y", None, None)])
    assert (x.n, x.n_failed, x.win_rate) == (0, 1, None)
    assert (y.n, y.n_failed, y.win_rate) == (0, 1, None)
