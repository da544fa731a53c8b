"""β / learning-rate schedules (pure Python) and WPO weights (torch), against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalbench.errors import InputError
from evalbench.train.schedules import SCHEDULES, beta_at, lr_at

# --------------------------------------------------------------------------- β schedules


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("start,end", [(0.1, 0.01), (0.01, 0.5)])
def test_beta_endpoints_and_monotonicity(kind, start, end):
    total = 50
    values = [beta_at(s, total, start, end, kind) for s in range(total + 1)]
    assert values[0] == pytest.approx(start)
    assert values[-1] == pytest.approx(end)
    diffs = np.diff(values)
    assert (diffs <= 1e-15).all() if end < start else (diffs >= -1e-15).all()
    assert abs(diffs).max() > 0  # it does move


def test_beta_shapes_midpoints():
    # linear and cosine both pass through the midpoint at half way; cosine is flat at the ends
    assert beta_at(5, 10, 0.2, 0.1, "linear") == pytest.approx(0.15)
    assert beta_at(5, 10, 0.2, 0.1, "cosine") == pytest.approx(0.15)
    # at 1/4 of the way: linear 1/4, cosine (1 − cos(π/4))/2 ≈ 0.1464 of the distance
    assert beta_at(25, 100, 1.0, 2.0, "linear") == pytest.approx(1.25)
    assert beta_at(25, 100, 1.0, 2.0, "cosine") == pytest.approx(1.0 + (1 - math.cos(math.pi / 4)) / 2)


def test_beta_constant_and_clamping():
    assert [beta_at(s, 10, 0.1) for s in (0, 5, 10, 99)] == [0.1] * 4
    assert beta_at(-3, 10, 0.1, 0.2, "linear") == pytest.approx(0.1)
    assert beta_at(30, 10, 0.1, 0.2, "cosine") == pytest.approx(0.2)  # holds, does not cycle back


def test_beta_errors():
    with pytest.raises(InputError, match="did you mean 'cosine'"):
        beta_at(0, 10, 0.1, 0.2, "cosin")
    with pytest.raises(InputError, match="ignores end"):
        beta_at(0, 10, 0.1, 0.2, "constant")
    with pytest.raises(InputError, match="total_steps"):
        beta_at(0, 0, 0.1)
    with pytest.raises(InputError, match="beta must be > 0"):
        beta_at(0, 10, 0.1, 0.0, "linear")
    assert set(SCHEDULES.names()) == {"constant", "linear", "cosine"}


# --------------------------------------------------------------------------- lr schedule


def test_lr_warmup_then_cosine_endpoints_and_monotonicity():
    total, warmup, peak = 100, 10, 5e-7
    lrs = [lr_at(s, total, warmup, peak) for s in range(total + 1)]
    assert lrs[0] == 0.0
    assert lrs[warmup] == pytest.approx(peak)
    assert lrs[total] == pytest.approx(0.0, abs=1e-20)
    assert (np.diff(lrs[: warmup + 1]) > 0).all()
    assert (np.diff(lrs[warmup:]) < 0).all()
    assert lrs[55] == pytest.approx(peak / 2)  # half way through the decay
    assert lr_at(total, total, warmup, peak, min_lr=1e-8) == pytest.approx(1e-8)
    assert lr_at(50, total, warmup, peak, kind="constant") == peak


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_lr_matches_transformers_schedulers(kind):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    total, warmup, peak = 40, 6, 1e-3
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    make = {"cosine": transformers.get_cosine_schedule_with_warmup,
            "linear": transformers.get_linear_schedule_with_warmup,
            "constant": lambda o, w, t: transformers.get_constant_schedule_with_warmup(o, w)}[kind]
    sched = make(opt, warmup, total)
    theirs = []
    for _ in range(total + 1):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [lr_at(s, total, warmup, peak, kind) for s in range(total + 1)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-18)


def test_lr_errors():
    with pytest.raises(InputError, match="warmup"):
        lr_at(0, 10, 11, 1e-6)
    with pytest.raises(InputError, match="min_lr"):
        lr_at(0, 10, 1, 1e-6, min_lr=1e-5)


# --------------------------------------------------------------------------- WPO weights

try:  # the schedules above are plain Python; only the weights need torch
    import torch

    from evalbench.train import weights as W

    F64 = torch.float64
except ImportError:  # pragma: no cover - torch is part of the train extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed (train extra)")


def _logits_from_probs(probs):
    return torch.log(torch.tensor(probs, dtype=F64))


@needs_torch
def test_uniform_distribution_analytic_weights():
    # π = 1/V everywhere: sampled π/Σπ² = (1/V)/(1/V) = 1; greedy π/max π = 1; none = 1/V
    V = 7
    logits = torch.zeros(2, 5, V, dtype=F64)
    tokens = torch.randint(0, V, (2, 5))
    mask = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    for alignment, want in (("sampled", 0.0), ("greedy", 0.0), ("none", -math.log(V))):
        got = W.sequence_log_weights(logits, tokens, mask, alignment)
        torch.testing.assert_close(got, torch.full((2,), want, dtype=F64))


@needs_torch
def test_greedy_weight_is_one_when_tokens_are_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g, dtype=F64) * 3
    tokens = logits.argmax(-1)
    mask = torch.ones(3, 6)
    torch.testing.assert_close(torch.exp(W.sequence_log_weights(logits, tokens, mask, "greedy")),
                               torch.ones(3, dtype=F64))
    # any other token has weight < 1
    other = (tokens + 1) % 11
    assert (W.sequence_log_weights(logits, other, mask, "greedy") < 0).all()


@needs_torch
def test_sampled_weight_hand_computed_and_clamp():
    # one position, π = (0.75, 0.25): Σπ² = 0.625 -> token 0: 0.75/0.625 = 1.2 ; token 1: 0.4
    logits = _logits_from_probs([[[0.75, 0.25], [0.75, 0.25]]])
    mask = torch.ones(1, 2)
    lw_00 = W.sequence_log_weights(logits, torch.tensor([[0, 0]]), mask)
    lw_01 = W.sequence_log_weights(logits, torch.tensor([[0, 1]]), mask)
    assert math.exp(lw_00.item()) == pytest.approx(1.2)
    assert math.exp(lw_01.item()) == pytest.approx(math.sqrt(1.2 * 0.4))  # geometric mean over tokens
    # pair (1.2, 1.2): product 1.44, clamped at 1 like the official code; TRL leaves it at 1.44
    assert W.pair_weights(lw_00, lw_00).item() == pytest.approx(1.0)
    assert W.pair_weights(lw_00, lw_00, clamp_max=None).item() == pytest.approx(1.44)
    # variants: (w_w, w_l) = (1.2·0.4)^½ and 1.2
    w_w, w_l = math.sqrt(0.48), 1.2
    assert W.pair_weights(lw_01, lw_00, "wpo").item() == pytest.approx(min(1.0, w_w * w_l))
    assert W.pair_weights(lw_01, lw_00, "wpo_w").item() == pytest.approx(w_w)
    assert W.pair_weights(lw_01, lw_00, "wpo_l").item() == pytest.approx(1.0)  # 1.2 clamped
    assert W.pair_weights(lw_01, lw_00, "wpo_l", clamp_max=None).item() == pytest.approx(w_l)


@needs_torch
def test_masked_positions_do_not_count_and_empty_completion_is_safe():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 4, 5, generator=g, dtype=F64)
    tokens = torch.tensor([[1, 2, 3, 4]])
    mask = torch.tensor([[0, 1, 1, 0]])
    base = W.sequence_log_weights(logits, tokens, mask)
    logits2 = logits.clone()
    logits2[0, 0] += 10 * torch.randn(5, generator=g, dtype=F64)
    logits2[0, 3] -= 5.0
    tokens2 = torch.tensor([[0, 2, 3, 0]])
    torch.testing.assert_close(W.sequence_log_weights(logits2, tokens2, mask), base)
    # a masked position may hold a padding id outside the vocabulary
    torch.testing.assert_close(W.sequence_log_weights(logits, torch.tensor([[-100, 2, 3, -100]]), mask), base)
    assert W.sequence_log_weights(logits, tokens, torch.zeros(1, 4)).item() == 0.0


@needs_torch
def test_from_logps_matches_numpy_reference():
    # per-token log π and log Σπ² computed independently with numpy, then aggregated by us
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 5, 9)) * 2
    tokens = rng.integers(0, 9, size=(2, 5))
    mask = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]])
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    tok_p = np.take_along_axis(p, tokens[..., None], -1)[..., 0]
    want = (np.log(tok_p / (p ** 2).sum(-1)) * mask).sum(-1) / mask.sum(-1)
    got = W.sequence_log_weights(torch.tensor(logits), torch.tensor(tokens), torch.tensor(mask))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    got2 = W.sequence_log_weights_from_logps(torch.tensor(np.log(tok_p)), torch.tensor(mask),
                                             torch.tensor(np.log((p ** 2).sum(-1))))
    np.testing.assert_allclose(got2.numpy(), want, rtol=1e-12)
    log_norm = W.token_log_norm(torch.tensor(logits), "greedy")
    np.testing.assert_allclose(log_norm.numpy(), np.log(p.max(-1)), rtol=1e-12)


@needs_torch
def test_weights_are_detached_and_applied_without_gradient():
    logits = torch.randn(2, 3, 4, dtype=F64, requires_grad=True)
    lw = W.sequence_log_weights(logits, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3))
    assert not lw.requires_grad
    losses = torch.tensor([0.5, 2.0], dtype=F64, requires_grad=True)
    w = W.pair_weights(lw, lw, clamp_max=None)
    out = W.apply_pair_weights(losses, w)
    out.sum().backward()
    torch.testing.assert_close(losses.grad, w)  # d(w·L)/dL = w, w is a constant
    with pytest.raises(ValueError, match="shape"):
        W.apply_pair_weights(losses, w[:1])


@needs_torch
def test_kto_normalisation_each_group_sums_to_one():
    log_w = torch.log(torch.tensor([0.2, 0.6, 0.9, 0.3, 0.1], dtype=F64))
    labels = torch.tensor([True, False, True, True, False])
    w = W.kto_normalised_weights(log_w, labels)
    assert w[labels].sum().item() == pytest.approx(1.0)
    assert w[~labels].sum().item() == pytest.approx(1.0)
    # desirable 0.2, 0.9, 0.3 -> /1.4 ; undesirable 0.6, 0.1 -> /0.7
    torch.testing.assert_close(w, torch.tensor([0.2 / 1.4, 0.6 / 0.7, 0.9 / 1.4, 0.3 / 1.4, 0.1 / 0.7],
                                               dtype=F64))
    # a batch with one group only
    w1 = W.kto_normalised_weights(log_w[:1], labels[:1])
    assert w1.item() == pytest.approx(1.0)


@needs_torch
def test_apply_unpaired_weights_uniform_is_identity_and_mean_matches_group_sums():
    losses = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=F64)
    labels = torch.tensor([True, False, True, True, False])
    torch.testing.assert_close(W.apply_unpaired_weights(losses, torch.zeros(5, dtype=F64), labels), losses)
    log_w = torch.log(torch.tensor([0.2, 0.6, 0.9, 0.3, 0.1], dtype=F64))
    out = W.apply_unpaired_weights(losses, log_w, labels)
    w = W.kto_normalised_weights(log_w, labels)
    # mean = (n_D Σ_D w̃ L + n_U Σ_U w̃ L) / B
    want = (3 * (w * losses)[labels].sum() + 2 * (w * losses)[~labels].sum()) / 5
    assert out.mean().item() == pytest.approx(want.item())


@needs_torch
def test_unknown_alignment_and_variant():
    with pytest.raises(KeyError, match="did you mean 'greedy'"):
        W.sequence_log_weights(torch.zeros(1, 1, 2), torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1),
                               "gready")
    with pytest.raises(KeyError, match="unknown WPO variant"):
        W.pair_weights(torch.zeros(1), torch.zeros(1), "wpo_x")
