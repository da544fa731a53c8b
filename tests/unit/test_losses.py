"""Closed-form and hand-computed checks of the preference losses (evalbench.train.losses)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from evalbench.errors import InputError  # noqa: E402
from evalbench.train import losses as L  # noqa: E402

F64 = torch.float64


def t(*xs) -> torch.Tensor:
    return torch.tensor(xs, dtype=F64)


def pair(chosen, rejected, ref_chosen=None, ref_rejected=None, chosen_len=None, rejected_len=None,
         chosen_nll=None) -> L.PairLogps:
    chosen, rejected = t(*chosen), t(*rejected)
    n = len(chosen)
    return L.PairLogps(
        chosen=chosen, rejected=rejected,
        chosen_len=t(*(chosen_len or [1] * n)), rejected_len=t(*(rejected_len or [1] * n)),
        ref_chosen=None if ref_chosen is None else t(*ref_chosen),
        ref_rejected=None if ref_rejected is None else t(*ref_rejected),
        chosen_nll=None if chosen_nll is None else t(*chosen_nll))


def random_pair(n=6, seed=0, ref=True) -> L.PairLogps:
    g = torch.Generator().manual_seed(seed)
    lens_c = torch.randint(1, 20, (n,), generator=g).to(F64)
    lens_r = torch.randint(1, 20, (n,), generator=g).to(F64)
    # summed log-probs roughly -0.1 .. -3 nats per token
    c = -lens_c * (0.1 + 2.9 * torch.rand(n, generator=g, dtype=F64))
    r = -lens_r * (0.1 + 2.9 * torch.rand(n, generator=g, dtype=F64))
    rc = c + torch.randn(n, generator=g, dtype=F64)
    rr = r + torch.randn(n, generator=g, dtype=F64)
    return L.PairLogps(c, r, lens_c, lens_r, rc if ref else None, rr if ref else None)


# --------------------------------------------------------------------------- DPO family


def test_dpo_at_zero_margin_is_log2():
    # u_w = u_l (different absolute logps, same log-ratio) -> -log σ(0) = log 2
    b = pair([-5.0, -1.0, -30.0], [-7.0, -2.5, -10.0], [-4.0, -3.0, -31.0], [-6.0, -4.5, -11.0])
    out = L.dpo(b, L.LossParams(beta=0.3))
    assert out.shape == (3,)
    torch.testing.assert_close(out, torch.full((3,), math.log(2.0), dtype=F64))


def test_dpo_hand_value():
    # u_w = 2, u_l = -1, β = 0.5 -> h = 1.5 -> log(1 + e^-1.5)
    b = pair([-3.0], [-6.0], [-5.0], [-5.0])
    assert L.dpo(b, L.LossParams(beta=0.5)).item() == pytest.approx(math.log1p(math.exp(-1.5)), abs=1e-12)


def test_cdpo_eps0_equals_dpo_and_hand_value():
    b = random_pair()
    p = L.LossParams(beta=0.2)
    torch.testing.assert_close(L.cdpo(b, p), L.dpo(b, p))
    # ε = 0.1 at h = β (u_w − u_l) = 2: −0.9 log σ(2) − 0.1 log σ(−2)
    b1 = pair([0.0], [-4.0], [-2.0], [-2.0])  # u_w = 2, u_l = -2, β = 0.5 -> h = 2
    want = -0.9 * math.log(1 / (1 + math.exp(-2))) - 0.1 * math.log(1 / (1 + math.exp(2)))
    got = L.cdpo(b1, L.LossParams(beta=0.5, label_smoothing=0.1)).item()
    assert got == pytest.approx(want, abs=1e-12)


def test_cdpo_penalises_overconfidence():
    # with ε > 0 the loss has a finite minimiser: it grows again for very large margins
    p = L.LossParams(beta=1.0, label_smoothing=0.1)
    small = L.cdpo(pair([0.0], [-2.0], [0.0], [0.0]), p).item()
    huge = L.cdpo(pair([0.0], [-50.0], [0.0], [0.0]), p).item()
    assert huge > small


def test_ipo_zero_at_length_averaged_margin():
    beta = 0.25  # target length-averaged margin 1/(2β) = 2
    # chosen: u_w = 9 over 3 tokens (3/token); rejected: u_l = 4 over 4 tokens (1/token) -> 3 - 1 = 2
    b = pair([-1.0], [-6.0], [-10.0], [-10.0], chosen_len=[3], rejected_len=[4])
    assert L.ipo(b, L.LossParams(beta=beta)).item() == pytest.approx(0.0, abs=1e-12)
    # the summed (not averaged) margin 9 - 4 = 5 would not be zero: the averaging matters
    b_sum = pair([-1.0], [-6.0], [-10.0], [-10.0])
    assert L.ipo(b_sum, L.LossParams(beta=beta)).item() == pytest.approx((5 - 2) ** 2)


def test_ipo_at_zero_margin_is_inverse_two_beta_squared():
    b = pair([-3.0, -8.0], [-5.0, -2.0], [-3.0, -8.0], [-5.0, -2.0], chosen_len=[3, 8], rejected_len=[5, 1])
    out = L.ipo(b, L.LossParams(beta=0.1))
    torch.testing.assert_close(out, torch.full((2,), 25.0, dtype=F64))  # (0 - 1/0.2)^2


def test_slic_hinge_zero_beyond_margin():
    p = L.LossParams(beta=0.5)
    # u_w - u_l = 3 -> h = 1.5 >= 1 -> 0 ; u_w - u_l = 1 -> h = 0.5 -> 1 - 0.5
    b = pair([0.0, 0.0], [-3.0, -1.0], [0.0, 0.0], [0.0, 0.0])
    torch.testing.assert_close(L.slic(b, p), t(0.0, 0.5))


def test_slic_reference_free_form():
    p = L.LossParams(reference_free=True, slic_delta=2.0)
    # δ − log π(y_w) + log π(y_l): 2 - (-1) + (-5) = -2 -> 0 ; 2 - (-4) + (-3) = 3
    b = pair([-1.0, -4.0], [-5.0, -3.0])
    torch.testing.assert_close(L.compute("slic", b, p), t(0.0, 3.0))
    assert not L.LOSSES.get("slic").requires_ref(p)
    assert L.LOSSES.get("slic").requires_ref(L.LossParams())


# --------------------------------------------------------------------------- f-DPO


def test_fdpo_reverse_kl_equals_dpo():
    b = random_pair(seed=3)
    p = L.LossParams(beta=0.1, divergence="reverse_kl")
    torch.testing.assert_close(L.fdpo(b, p), L.dpo(b, p))


def test_fdpo_forward_kl_and_js_hand_values():
    # u_w = log 2 (t = 2), u_l = 0 (t = 1)
    b = pair([math.log(2.0)], [0.0], [0.0], [0.0])
    # forward KL: f'(t) = 1 − 1/t -> 0.5 − 0 ; h = β·0.5
    got = L.fdpo(b, L.LossParams(beta=2.0, divergence="forward_kl")).item()
    assert got == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-12)
    # JS: f'(t) = log(2t/(1+t)) -> log(4/3) − log(1) ; h = β·log(4/3)
    got = L.fdpo(b, L.LossParams(beta=2.0, divergence="js_divergence")).item()
    h = 2.0 * math.log(4.0 / 3.0)
    assert got == pytest.approx(math.log1p(math.exp(-h)), abs=1e-12)


def test_alpha_divergence_limits():
    b = random_pair(seed=4)
    rev = L.fdpo(b, L.LossParams(divergence="reverse_kl"))
    fwd = L.fdpo(b, L.LossParams(divergence="forward_kl"))
    # documented: α = 1 is the reverse-KL limit (taken exactly), α → 1 tends to it
    torch.testing.assert_close(L.fdpo(b, L.LossParams(divergence="alpha_divergence", alpha=1.0)), rev)
    near = L.fdpo(b, L.LossParams(divergence="alpha_divergence", alpha=1.0 - 1e-4))
    torch.testing.assert_close(near, rev, atol=2e-3, rtol=0)
    far = L.fdpo(b, L.LossParams(divergence="alpha_divergence", alpha=0.5))
    assert (far - rev).abs().max() > 1e-2  # the limit test above is not vacuous
    # α = 0 is forward KL: (t^-1 − 1)/(−1) = 1 − 1/t
    torch.testing.assert_close(L.fdpo(b, L.LossParams(divergence="alpha_divergence", alpha=0.0)), fwd)


def test_alpha_divergence_hand_value():
    # α = 0.5, t = 4 (u = log 4): (4^-0.5 − 1)/(−0.5) = 1 ; t = 1 -> 0 ; h = β·1
    b = pair([math.log(4.0)], [0.0], [0.0], [0.0])
    got = L.fdpo(b, L.LossParams(beta=0.7, divergence="alpha_divergence", alpha=0.5)).item()
    assert got == pytest.approx(math.log1p(math.exp(-0.7)), abs=1e-12)


def test_divergence_applies_to_ipo_and_hinge_like_trl():
    # TRL applies f' before the ipo / hinge losses as well; check one value for each
    b = pair([math.log(2.0)], [0.0], [0.0], [0.0], chosen_len=[2], rejected_len=[1])
    p = L.LossParams(beta=0.5, divergence="forward_kl")
    assert L.ipo(b, p).item() == pytest.approx((0.5 / 2 - 1.0) ** 2)
    assert L.slic(b, p).item() == pytest.approx(1 - 0.5 * 0.5)


# --------------------------------------------------------------------------- reference-free


def test_orpo_hand_value_without_reference():
    # mean token log-probs: chosen log 0.5 (odds 1), rejected log 0.2 (odds 1/4)
    # log OR = log 4 -> −log σ(log 4) = log(5/4); NLL(y_w) = log 2
    b = pair([2 * math.log(0.5)], [3 * math.log(0.2)], chosen_len=[2], rejected_len=[3])
    assert not b.has_ref
    got = L.compute("orpo", b, L.LossParams(orpo_lambda=0.1)).item()
    assert got == pytest.approx(math.log(2.0) + 0.1 * math.log(1.25), abs=1e-12)
    # an explicit chosen_nll replaces the derived SFT term
    b2 = pair([2 * math.log(0.5)], [3 * math.log(0.2)], chosen_len=[2], rejected_len=[3], chosen_nll=[1.0])
    got2 = L.orpo(b2, L.LossParams(orpo_lambda=0.1)).item()
    assert got2 == pytest.approx(1.0 + 0.1 * math.log(1.25), abs=1e-12)


def test_simpo_hand_value_without_reference():
    # β = 2: r_w = 2·(−4/4) = −2, r_l = 2·(−9/3) = −6, γ = 1 -> −log σ(3)
    b = pair([-4.0], [-9.0], chosen_len=[4], rejected_len=[3])
    got = L.compute("simpo", b, L.LossParams(beta=2.0, simpo_gamma=1.0)).item()
    assert got == pytest.approx(math.log1p(math.exp(-3.0)), abs=1e-12)


def test_reference_free_losses_need_no_reference_but_dpo_does():
    b = random_pair(ref=False)
    for name in ("orpo", "simpo"):
        info = L.LOSSES.get(name)
        assert not info.requires_ref(L.LossParams())
        assert torch.isfinite(L.compute(name, b, L.LossParams())).all()
    for name in ("dpo", "cdpo", "ipo", "fdpo", "slic"):
        assert L.LOSSES.get(name).requires_ref(L.LossParams())
        with pytest.raises(ValueError, match="reference"):
            L.compute(name, b, L.LossParams())


# --------------------------------------------------------------------------- gradients

PAIRED_CASES = [
    ("dpo", L.LossParams()),
    ("cdpo", L.LossParams(label_smoothing=0.2)),
    ("ipo", L.LossParams()),
    ("slic", L.LossParams()),
    ("slic", L.LossParams(reference_free=True)),
    ("orpo", L.LossParams()),
    ("simpo", L.LossParams(beta=2.0)),
    *[("fdpo", L.LossParams(divergence=d)) for d in L.DIVERGENCE_NAMES],
    ("fdpo", L.LossParams(divergence="alpha_divergence", alpha=0.2)),
    ("fdpo", L.LossParams(divergence="alpha_divergence", alpha=1.7)),
]


def test_every_paired_loss_is_covered_by_the_gradient_test():
    paired = {n for n in L.LOSSES.names() if L.LOSSES.get(n).batch is L.PairLogps}
    assert paired == {name for name, _ in PAIRED_CASES}


@pytest.mark.parametrize("name,params", PAIRED_CASES, ids=lambda x: str(x))
def test_gradient_at_zero_margin_pushes_chosen_up_rejected_down(name, params):
    # zero margin: equal policy and reference log-probs and equal lengths for both sides
    chosen = torch.tensor([-6.0, -12.0], dtype=F64, requires_grad=True)
    rejected = torch.tensor([-6.0, -12.0], dtype=F64, requires_grad=True)
    lens = t(3, 6)
    b = L.PairLogps(chosen, rejected, lens, lens, chosen.detach().clone(), rejected.detach().clone())
    L.compute(name, b, params).sum().backward()
    assert (chosen.grad < 0).all(), chosen.grad   # descending the loss raises log π(y_w)
    assert (rejected.grad > 0).all(), rejected.grad  # and lowers log π(y_l)


# --------------------------------------------------------------------------- KTO


def test_kto_hand_computed_small_batch():
    # mismatched-pair log-ratios 0.5 and 1.5 -> z = 1.0 ; β = 1, λ_D = 1, λ_U = 1.5
    b = L.UnpairedLogps(
        logps=t(-1.0, -3.0, -2.5), ref_logps=t(-3.0, -4.0, -3.0), lens=t(2, 3, 4),
        labels=torch.tensor([True, False, True]),
        kl_logps=t(-2.0, -1.5), ref_kl_logps=t(-2.5, -3.0))
    p = L.LossParams(beta=1.0, kto_lambda_d=1.0, kto_lambda_u=1.5)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # r = 2, 1, 0.5: desirable 1−σ(r−z), undesirable 1.5·(1−σ(z−r))
    want = t(1 - sig(2 - 1), 1.5 * (1 - sig(1 - 1)), 1 - sig(0.5 - 1))
    torch.testing.assert_close(L.compute("kto", b, p), want)
    assert L.kto_reference_point(b).item() == pytest.approx(1.0)


def test_kto_reference_point_clamped_at_zero_and_detached():
    kl = torch.tensor([-3.0, -2.0], dtype=F64, requires_grad=True)
    b = L.UnpairedLogps(logps=t(-1.0), ref_logps=t(-1.5), lens=t(1), labels=torch.tensor([True]),
                        kl_logps=kl, ref_kl_logps=t(-1.0, -1.0))  # mean log-ratio −1.5 < 0
    z = L.kto_reference_point(b)
    assert z.item() == 0.0 and not z.requires_grad
    # without mismatched pairs z = 0 as well; r = 0.5 -> 1 − σ(0.5 β)
    b0 = L.UnpairedLogps(logps=t(-1.0), ref_logps=t(-1.5), lens=t(1), labels=torch.tensor([True]))
    assert L.kto(b0, L.LossParams(beta=2.0)).item() == pytest.approx(1 - 1 / (1 + math.exp(-1.0)))


def test_kto_gradient_signs():
    logps = torch.tensor([-2.0, -2.0], dtype=F64, requires_grad=True)
    b = L.UnpairedLogps(logps=logps, ref_logps=t(-2.0, -2.0), lens=t(2, 2),
                        labels=torch.tensor([True, False]))
    L.kto(b, L.LossParams()).sum().backward()
    assert logps.grad[0] < 0 < logps.grad[1]


# --------------------------------------------------------------------------- reward model


def test_bradley_terry_and_rm():
    assert L.bradley_terry(t(0.3), t(0.3)).item() == pytest.approx(math.log(2.0))
    r_c = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    out = L.compute("rm", L.RewardPair(r_c, t(0.0, -1.0)), L.LossParams())
    torch.testing.assert_close(out.detach(), t(math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))))
    out.sum().backward()
    assert (r_c.grad < 0).all()


# --------------------------------------------------------------------------- registry & params


def test_registry_metadata_and_early_checks():
    assert set(L.LOSSES.names()) >= {"dpo", "cdpo", "ipo", "slic", "fdpo", "orpo", "simpo", "kto", "rm"}
    assert L.LOSSES.get("kto").paired is False and L.LOSSES.get("kto").batch is L.UnpairedLogps
    assert L.check_loss_options("dpo", L.LossParams(), weighting=True).name == "dpo"
    with pytest.raises(InputError, match="WPO weighting is not defined for loss 'orpo'"):
        L.check_loss_options("orpo", L.LossParams(), weighting=True)
    with pytest.raises(InputError, match="did you mean 'ipo'"):
        L.check_loss_options("ipp", L.LossParams())
    with pytest.raises(InputError, match="ignores label_smoothing") as err:
        L.check_loss_options("dpo", L.LossParams(label_smoothing=0.1))
    assert err.value.field == "label_smoothing" and "cdpo" in str(err.value)
    # beta is set for every loss by the trainer, so it never counts as "ignored"
    L.check_loss_options("orpo", L.LossParams(beta=0.01))


def test_decorator_rejects_duplicates_and_unknown_fields():
    with pytest.raises(ValueError, match="duplicate loss 'dpo'"):
        L.loss("dpo", needs_ref=True)(lambda b, p: b.chosen)
    with pytest.raises(ValueError, match="unknown LossParams fields"):
        L.loss("new_loss_x", needs_ref=False, uses=("betta",))


def test_compute_rejects_wrong_batch_type():
    b = L.UnpairedLogps(logps=t(-1.0), ref_logps=t(-1.0), lens=t(1), labels=torch.tensor([True]))
    with pytest.raises(TypeError, match="takes a PairLogps"):
        L.compute("dpo", b, L.LossParams())


@pytest.mark.parametrize("kwargs,field", [
    ({"beta": 0.0}, "beta"), ({"beta": float("nan")}, "beta"), ({"label_smoothing": 0.5}, "label_smoothing"),
    ({"divergence": "js"}, "divergence"), ({"orpo_lambda": -1.0}, "orpo_lambda"),
])
def test_loss_params_validation(kwargs, field):
    with pytest.raises(InputError) as err:
        L.LossParams(**kwargs)
    assert err.value.field == field


def test_loss_params_replace_revalidates():
    p = L.LossParams(beta=0.1)
    assert p.replace(beta=0.05).beta == 0.05
    with pytest.raises(InputError):
        p.replace(beta=-1.0)


# --------------------------------------------------------------------------- metrics


def test_preference_metrics_hand_values():
    # u_w = (1, -1), u_l = (0, 1), β = 0.5 -> rewards chosen (0.5, -0.5), rejected (0, 0.5)
    b = pair([-1.0, -3.0], [-2.0, -1.0], [-2.0, -2.0], [-2.0, -2.0])
    m = L.preference_metrics(b, beta=0.5)
    assert m.rewards_chosen == pytest.approx(0.0)
    assert m.rewards_rejected == pytest.approx(0.25)
    assert m.rewards_margins == pytest.approx(-0.25)
    assert m.rewards_accuracies == pytest.approx(0.5)
    assert m.as_dict()["logps/chosen"] == pytest.approx(-2.0)
    # reference-free (SimPO-style) rewards: β · log π / |y|
    b2 = pair([-4.0], [-9.0], chosen_len=[4], rejected_len=[3])
    m2 = L.preference_metrics(b2, beta=2.0, length_normalised=True)
    assert (m2.rewards_chosen, m2.rewards_rejected, m2.rewards_accuracies) == pytest.approx((-2.0, -6.0, 1.0))
