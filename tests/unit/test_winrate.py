"""Win rate, standard error and the length-controlled GLM (evalbench.score.winrate) on small inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalbench.score.winrate import (LC_FEATURES, GamedRows, clean_preferences, length_controlled_winrate,
                                     std_delta_len, win_rate_metrics)


def test_win_rate_metrics_hand_computed():
    # Preferences 1, 2, 1.5, 1.25, 0 (0 = legacy draw = 1.5) -> soft labels 0, 1, .5, .25, .5.
    # mean = 2.25 / 5 = .45 -> win_rate 45. Squared deviations from .45: .2025 + .3025 + .0025 + .04
    # + .0025 = .55; sample variance .55 / 4 = .1375; SEM = sqrt(.1375 / 5) = .165831 -> 16.5831.
    # Wins (> .5): 1; base wins (< .5): 0 and .25 -> 2; draws (= .5): 2; discrete (1 + 2/2)/5 = 40.
    m = win_rate_metrics([1, 2, 1.5, 1.25, 0], [10, 11, 12, 13, 14])
    assert m["win_rate"] == pytest.approx(45.0)
    assert m["standard_error"] == pytest.approx(100 * math.sqrt(0.1375 / 5))
    assert (m["n_wins"], m["n_wins_base"], m["n_draws"], m["n_total"]) == (1, 2, 2, 5)
    assert m["discrete_win_rate"] == pytest.approx(40.0)
    assert m["avg_length"] == 12  # mean 12.0


def test_avg_length_truncates_like_the_leaderboard():
    # int(mean): 10.9 -> 10 (the leaderboard stores int(mean), not round(mean)).
    assert win_rate_metrics([1.5, 1.5], [10, 11.8])["avg_length"] == 10


def test_failed_judgments_are_left_out():
    base = win_rate_metrics([1.0, 2.0, 1.75], [5, 5, 5])
    with_nan = win_rate_metrics([1.0, np.nan, 2.0, 1.75], [5, 5, 5, 5])
    assert with_nan == base
    assert with_nan["n_total"] == 3


@pytest.mark.parametrize("bad", [-1, 2.5, 0.5, 3])
def test_out_of_range_preferences_raise(bad):
    with pytest.raises(ValueError, match="position 1"):
        win_rate_metrics([1.5, bad, 1.2], [1, 1, 1])


def test_no_valid_preference_raises():
    with pytest.raises(ValueError, match="no valid preference"):
        win_rate_metrics([np.nan, np.nan], [1, 2])


def test_single_judgment_has_undefined_standard_error():
    m = win_rate_metrics([2.0], [3])
    assert m["win_rate"] == 100.0 and math.isnan(m["standard_error"])


def test_clean_preferences_maps_zero_to_draw():
    np.testing.assert_array_equal(clean_preferences([0, 1, 2]), [1.5, 1, 2])


def test_discrete_rounding_edges():
    # Just above/below 1.5 round to a win / a loss; only exactly 1.5 (or 0) is a draw.
    m = win_rate_metrics([1.5 + 1e-9, 1.5 - 1e-9, 1.5], [1, 1, 1])
    assert (m["n_wins"], m["n_wins_base"], m["n_draws"]) == (1, 1, 1)
    assert m["discrete_win_rate"] == pytest.approx(50.0)


def test_matches_alpaca_eval_get_winrate_on_random_preferences():
    pytest.importorskip("alpaca_eval.metrics.winrate")
    from alpaca_eval.metrics.winrate import get_winrate

    rng = np.random.default_rng(0)
    prefs = rng.uniform(1, 2, size=300)
    prefs[:20] = rng.choice([1.0, 1.5, 2.0, 0.0], size=20)
    ours = win_rate_metrics(prefs, np.ones(300))
    theirs = get_winrate([{"preference": p} for p in prefs])
    for key in ("win_rate", "standard_error", "discrete_win_rate"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
        assert ours[key] == int(theirs[key]), key


def test_std_delta_len_sign_and_scale():
    z = std_delta_len([10, 20, 30], [20, 20, 20])  # delta -10, 0, 10; sd = 10
    np.testing.assert_allclose(z, [-1, 0, 1])
    with pytest.raises(ValueError, match="constant"):
        std_delta_len([5, 6], [5, 6])


def _synthetic(n=600, seed=0, w_len=-2.0, w_model=0.0, w_diff=1.0):
    """Preferences drawn from a known GLM: P(model wins) = sigmoid(w_len tanh(z) + w_diff d + w_model)."""
    rng = np.random.default_rng(seed)
    len_ref = rng.integers(500, 1500, size=n).astype(float)
    # The model is usually longer than the reference.
    len_model = len_ref + rng.normal(600, 400, size=n)
    len_model = np.maximum(len_model, 1)
    difficulty = rng.normal(0, 0.5, size=n)
    z = std_delta_len(len_ref, len_model)
    p = 1 / (1 + np.exp(-(w_len * np.tanh(z) + w_diff * difficulty + w_model)))
    prefs = 1 + rng.binomial(1, p).astype(float)  # hard verdicts, 2 = model wins
    return prefs, len_model, len_ref, difficulty


def test_lc_removes_a_pure_length_advantage():
    # The data-generating model has no quality effect (w_model = 0) and rewards length (the model is
    # longer -> z < 0 -> w_len * tanh(z) > 0). Raw win rate is well above 50; the GLM, fitted
    # without gamed rows, recovers the length weight and its LC win rate sits near the length-free
    # mean E[sigmoid(w_diff d)] ~ 50.
    prefs, len_model, len_ref, difficulty = _synthetic(n=2000)
    raw = win_rate_metrics(prefs, len_model)["win_rate"]
    lc = length_controlled_winrate(prefs, len_model, len_ref, difficulty, regularize_lambda=None)
    assert raw > 70
    assert abs(lc.length_controlled_winrate - 50) < 4
    assert lc.weights[LC_FEATURES[0]] < -1  # negative: longer than the reference -> more wins
    assert set(lc.weights) == set(LC_FEATURES)
    assert lc.glm_preference.shape == (2000,)


def test_lc_nan_rows_are_predicted_but_not_fitted():
    prefs, len_model, len_ref, difficulty = _synthetic(n=400, seed=1)
    prefs_nan = prefs.copy()
    prefs_nan[::10] = np.nan
    lc = length_controlled_winrate(prefs_nan, len_model, len_ref, difficulty, regularize_lambda=None)
    assert lc.glm_preference.shape == (400,) and np.isfinite(lc.glm_preference).all()
    # Changing the labels of NaN rows cannot matter; changing the labels of fitted rows must.
    flipped = prefs_nan.copy()
    flipped[1::10] = 3 - flipped[1::10]
    lc2 = length_controlled_winrate(flipped, len_model, len_ref, difficulty, regularize_lambda=None)
    assert lc2.length_controlled_winrate != pytest.approx(lc.length_controlled_winrate, abs=1e-6)


def test_lc_input_errors():
    prefs, len_model, len_ref, difficulty = _synthetic(n=50)
    with pytest.raises(ValueError, match="same length"):
        length_controlled_winrate(prefs, len_model[:-1], len_ref, difficulty, regularize_lambda=None)
    with pytest.raises(ValueError, match="gamed"):
        length_controlled_winrate(prefs, len_model, len_ref, difficulty)  # lambda 0.2 needs gamed rows
    with pytest.raises(ValueError, match="no valid preference"):
        length_controlled_winrate(np.full(50, np.nan), len_model, len_ref, difficulty, regularize_lambda=None)


def _gamed_rows(difficulty, seed=2):
    rng = np.random.default_rng(seed)
    n = len(difficulty)
    z = np.concatenate([rng.normal(-1.5, 1, n), rng.normal(2, 1, n)])  # verbose, concise
    d = np.concatenate([difficulty, difficulty])
    pref = 1 / (1 + np.exp(-(-1.6 * np.tanh(z) + 0.8 * d)))
    return GamedRows(pref, z, d)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # the library's own sklearn deprecations
@pytest.mark.parametrize("glm_name", ["length_controlled_v1", "length_controlled_noreg"])
def test_lc_matches_alpaca_eval_on_synthetic_annotations(glm_name, tmp_path, monkeypatch):
    """Golden check against the library's `get_length_controlled_winrate` on synthetic annotations.

    The library always downloads `df_gamed.csv` (also its source of instruction difficulty); we
    hand it a local one. Both sides reproduce the same liblinear seed sequence, so they agree to
    float precision (1e-6 leaves room for BLAS differences).
    """
    pd = pytest.importorskip("pandas")
    glm = pytest.importorskip("alpaca_eval.metrics.glm_winrate")
    prefs, len_model, len_ref, difficulty = _synthetic(n=300, seed=3, w_model=-0.5)
    # Soft preferences, as the weighted judge produces.
    rng = np.random.default_rng(4)
    n = len(prefs)
    prefs = np.where(prefs == 2, rng.uniform(1.6, 2.0, size=n), rng.uniform(1.0, 1.4, size=n))
    gamed = _gamed_rows(difficulty)
    df_gamed = pd.DataFrame({
        "model": ["verbose"] * n + ["concise"] * n, "preference": gamed.preference,
        "index": np.concatenate([np.arange(n), np.arange(n)]), "std_delta_len": gamed.std_delta_len,
        "instruction_difficulty": gamed.instruction_difficulty, "not_gamed_baseline": False})
    csv = tmp_path / "df_gamed.csv"
    df_gamed.to_csv(csv, index=False)
    monkeypatch.setattr(glm, "hf_hub_download", lambda *a, **k: str(csv))
    annotations = pd.DataFrame({
        "instruction": [f"i{k}" for k in range(n)], "output_1": ["x" * int(v) for v in len_ref],
        "output_2": ["y" * int(v) for v in len_model], "generator_1": "ref", "generator_2": "model",
        "annotator": "judge", "preference": prefs})
    sklearn = pytest.importorskip("sklearn")
    with sklearn.config_context():  # the library switches on metadata routing globally; undo it after
        theirs = glm.get_length_controlled_winrate(annotations, glm_name=glm_name, save_weights_dir=None,
                                                   is_warn_extreme_changes=False)
    lam = 0.2 if glm_name == "length_controlled_v1" else None
    ours = length_controlled_winrate(prefs, [len(o) for o in annotations.output_2],
                                     [len(o) for o in annotations.output_1], difficulty, gamed,
                                     regularize_lambda=lam)
    assert ours.length_controlled_winrate == pytest.approx(theirs["length_controlled_winrate"], abs=1e-6)
    assert ours.lc_standard_error == pytest.approx(theirs["lc_standard_error"], abs=1e-6)
    np.testing.assert_allclose(ours.glm_preference, annotations["glm_preference"], atol=1e-8)
