"""Our losses and WPO weights against TRL's own code (an independent implementation).

TRL 1.16 has no standalone `dpo_loss`: the DPO and KTO losses live inside
`DPOTrainer._compute_loss` / `KTOTrainer._compute_loss`, which run the model themselves. We call
those methods unbound, on a lightweight stand-in for the trainer (only the attributes they read)
and a tiny bigram language model that answers TRL's fused-head call
(`model(..., labels=..., fused_lm_head=True)` -> per-token log-probs). Reference log-probs are
passed precomputed (`precompute_ref_logps=True`), so no reference model is involved. ORPO and
SimPO (via CPO) expose their loss as methods (`odds_ratio_loss`, `cpo_loss`). WPO sampled
weighting is checked twice: through the stand-in in float64, and through TRL's real fused LM
head on a random tiny `LlamaForCausalLM` (built from a config, no download).

Tolerance 1e-6 on float64 values, except where TRL itself computes in float32 (noted inline).
"""

from __future__ import annotations

from collections import defaultdict
from types import MethodType, SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from trl.trainer.dpo_trainer import DPOTrainer  # noqa: E402
from trl.trainer.kto_trainer import KTOTrainer  # noqa: E402

from evalbench.train import losses as L  # noqa: E402
from evalbench.train import weights as W  # noqa: E402

F64 = torch.float64
V = 13  # vocabulary of the bigram stand-in
ATOL = 1e-6


# --------------------------------------------------------------------------- stand-ins


class BigramLM:
    """A causal LM whose next-token logits depend on the current token only: table[id].

    Called like TRL calls a model patched by `add_fused_lm_head`: returns per-token log-probs of
    the labels (0 where the label is -100) and the extra per-token fields TRL reads.
    """

    training = True

    def __init__(self, table: torch.Tensor):
        self.table = table

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids]  # position t predicts token t + 1

    def __call__(self, input_ids, labels=None, fused_lm_head=False, **_):
        assert fused_lm_head and labels is not None
        full = torch.log_softmax(self.logits(input_ids)[:, :-1], dim=-1)
        target = labels[:, 1:]
        mask = target != -100
        log_probs = full.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
        log_sum_sq = torch.logsumexp(2 * full, dim=-1) * mask
        zeros = torch.zeros_like(log_probs)
        return SimpleNamespace(log_probs=log_probs, log_sum_sq_probs=log_sum_sq, entropy=zeros,
                               mean_logits=zeros, is_top1=torch.zeros_like(mask), aux_loss=None)


def _accelerator():
    ident = lambda x: x  # noqa: E731 - single process: gathers are the identity
    return SimpleNamespace(device=torch.device("cpu"), gather=ident, gather_for_metrics=ident,
                           unwrap_model=ident)


def _metrics():
    return defaultdict(lambda: defaultdict(list))


def fake_dpo_trainer(**over) -> SimpleNamespace:
    ns = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=_accelerator(), aux_loss_enabled=False,
        ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl",
        f_alpha_divergence_coef=0.5, loss_types=["sigmoid"], loss_weights=[1.0], beta=0.1,
        label_smoothing=0.0, use_weighting=False, _metrics=_metrics(), _total_train_tokens=0,
        _tp_size=1, args=SimpleNamespace(gradient_checkpointing_kwargs=None, discopop_tau=0.05))
    for k, v in over.items():
        setattr(ns, k, v)
    return ns


def make_rows(n: int, gen: torch.Generator, width: int = 12):
    """Right-padded rows: prompt (1–4 tokens), completion (1–6), padding; plus masks."""
    ids = torch.randint(0, V, (n, width), generator=gen)
    attn = torch.zeros(n, width, dtype=torch.long)
    comp = torch.zeros(n, width, dtype=torch.long)
    for i in range(n):
        p = int(torch.randint(1, 5, (1,), generator=gen))
        c = int(torch.randint(1, 7, (1,), generator=gen))
        attn[i, : p + c] = 1
        comp[i, p: p + c] = 1
    return ids, attn, comp


def summed_logps(lm: BigramLM, ids, comp):
    """Our side of the bookkeeping: summed completion log-probs and token counts."""
    lp = torch.log_softmax(lm.logits(ids)[:, :-1], -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    mask = comp[:, 1:]
    return (lp * mask).sum(-1), mask.sum(-1)


@pytest.fixture(scope="module")
def dpo_case():
    """Four pairs of chosen/rejected rows, a float64 bigram LM and reference log-probs."""
    gen = torch.Generator().manual_seed(7)
    B = 4
    lm = BigramLM(torch.randn(V, V, generator=gen, dtype=F64) * 2)
    ids, attn, comp = make_rows(2 * B, gen)
    ref = torch.randn(2 * B, generator=gen, dtype=F64) * 3 - 8
    logps, lens = summed_logps(lm, ids, comp)
    return SimpleNamespace(B=B, lm=lm, ids=ids, attn=attn, comp=comp, ref=ref, logps=logps, lens=lens)


def trl_dpo_per_pair(case, trainer, lm=None):
    """TRL's loss for each pair separately (it returns the batch mean), in pair order."""
    out = []
    for i in range(case.B):
        rows = [i, case.B + i]  # TRL's batch layout: [chosen..., rejected...]
        inputs = {"input_ids": case.ids[rows], "attention_mask": case.attn[rows],
                  "completion_mask": case.comp[rows],
                  "ref_chosen_logps": case.ref[[i]], "ref_rejected_logps": case.ref[[case.B + i]]}
        out.append(DPOTrainer._compute_loss(trainer, lm or case.lm, inputs, False))
    return torch.stack(out)


def our_batch(case, dtype=F64) -> L.PairLogps:
    B = case.B
    return L.PairLogps(chosen=case.logps[:B].to(dtype), rejected=case.logps[B:].to(dtype),
                       chosen_len=case.lens[:B], rejected_len=case.lens[B:],
                       ref_chosen=case.ref[:B].to(dtype), ref_rejected=case.ref[B:].to(dtype))


# --------------------------------------------------------------------------- DPO family


@pytest.mark.parametrize("trl_loss,ours,beta", [
    ("sigmoid", "dpo", 0.3), ("hinge", "slic", 0.2), ("ipo", "ipo", 0.4)])
def test_dpo_family_matches_trl(dpo_case, trl_loss, ours, beta):
    theirs = trl_dpo_per_pair(dpo_case, fake_dpo_trainer(loss_types=[trl_loss], beta=beta))
    mine = L.compute(ours, our_batch(dpo_case), L.LossParams(beta=beta))
    assert mine.abs().max() > 1e-3  # the comparison is not between zeros (hinge can be flat)
    torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("divergence", ["reverse_kl", "forward_kl", "js_divergence"])
@pytest.mark.parametrize("trl_loss,ours", [("sigmoid", "fdpo"), ("hinge", "slic"), ("ipo", "ipo")])
def test_f_divergences_match_trl(dpo_case, divergence, trl_loss, ours):
    trainer = fake_dpo_trainer(loss_types=[trl_loss], beta=0.5, f_divergence_type=divergence)
    theirs = trl_dpo_per_pair(dpo_case, trainer)
    mine = L.compute(ours, our_batch(dpo_case), L.LossParams(beta=0.5, divergence=divergence))
    torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0, 1.6])
def test_alpha_divergence_matches_trl(dpo_case, alpha):
    # TRL's α-divergence branch looks its exp() clamp up by dtype and has no float64 entry
    # (KeyError), so this one runs in float32 on both sides; α = 1 takes TRL's limit branch.
    case = SimpleNamespace(**vars(dpo_case))
    case.lm = BigramLM(dpo_case.lm.table.float())
    case.ref = dpo_case.ref.float()
    trainer = fake_dpo_trainer(loss_types=["sigmoid"], beta=0.5, f_divergence_type="alpha_divergence",
                               f_alpha_divergence_coef=alpha)
    theirs = trl_dpo_per_pair(case, trainer)
    mine = L.fdpo(our_batch(dpo_case, torch.float32),
                  L.LossParams(beta=0.5, divergence="alpha_divergence", alpha=alpha))
    assert theirs.dtype == mine.dtype == torch.float32
    # exp() of log-ratios of several nats makes some losses ~1e3-1e4, so compare relatively at
    # float32 resolution (we use expm1 where TRL writes exp − 1)
    torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=4e-6)


def test_cdpo_matches_trl_cpo_label_smoothing(dpo_case):
    # TRL 1.16's DPO sigmoid dropped label smoothing; CPO's sigmoid loss kept the cDPO form
    # −(1−ε) log σ(βz) − ε log σ(−βz) over z = chosen − rejected. Feeding it the log-ratios
    # u_w, u_l gives cDPO.
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    b = our_batch(dpo_case)
    cpo = SimpleNamespace(alpha=0.0, beta=0.3, label_smoothing=0.2, loss_type="sigmoid",
                          accelerator=_accelerator())
    theirs, _, _ = CPOTrainer.cpo_loss(cpo, b.chosen - b.ref_chosen, b.rejected - b.ref_rejected)
    mine = L.cdpo(b, L.LossParams(beta=0.3, label_smoothing=0.2))
    torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)


# --------------------------------------------------------------------------- reference-free


def test_simpo_matches_trl_cpo(dpo_case):
    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    b = our_batch(dpo_case)
    # CPO with loss_type="simpo" takes length-averaged log-probs (its get_batch_logps with
    # average_log_prob=True); cpo_alpha=0 means no NLL term, which lives outside cpo_loss anyway.
    cpo = SimpleNamespace(alpha=0.0, beta=2.0, simpo_gamma=0.7, label_smoothing=0.0, loss_type="simpo",
                          accelerator=_accelerator())
    theirs, _, _ = CPOTrainer.cpo_loss(cpo, b.chosen / b.chosen_len, b.rejected / b.rejected_len)
    mine = L.simpo(b, L.LossParams(beta=2.0, simpo_gamma=0.7))
    torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)


def test_orpo_matches_trl(dpo_case):
    from trl.experimental.orpo.orpo_trainer import ORPOTrainer

    B, lm = dpo_case.B, dpo_case.lm
    # TRL's own length averaging: get_batch_logps(average_log_prob=True) on logits and labels
    labels = dpo_case.ids.masked_fill(dpo_case.comp == 0, -100)
    trl_mean = ORPOTrainer.get_batch_logps(lm.logits(dpo_case.ids), labels, average_log_prob=True)
    torch.testing.assert_close(trl_mean, dpo_case.logps / dpo_case.lens, atol=1e-12, rtol=0)

    lam = 0.25
    orpo = SimpleNamespace(beta=lam, accelerator=_accelerator())  # TRL's ORPO beta is the paper's λ
    ratio_losses, *_ = ORPOTrainer.odds_ratio_loss(orpo, trl_mean[:B], trl_mean[B:])
    nll = torch.tensor([0.9, 1.7, 2.2, 0.4], dtype=F64)
    theirs = nll - ratio_losses  # TRL: loss = policy_nll_loss − losses.mean(), per pair here
    b = our_batch(dpo_case)
    mine = L.orpo(L.PairLogps(b.chosen, b.rejected, b.chosen_len, b.rejected_len, chosen_nll=nll),
                  L.LossParams(orpo_lambda=lam))
    # odds_ratio_loss casts to float32 (`.float()`), hence the float32-level tolerance
    torch.testing.assert_close(mine, theirs.to(F64), atol=ATOL, rtol=0)


# --------------------------------------------------------------------------- KTO


def fake_kto_trainer(**over) -> SimpleNamespace:
    ns = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=_accelerator(), calculate_KL=True,
        precompute_ref_logps=True, aux_loss_enabled=False, loss_type="kto", beta=0.1,
        desirable_weight=1.0, undesirable_weight=1.0, _metrics=_metrics(), _total_train_tokens=0,
        _tp_size=1, args=SimpleNamespace(gradient_checkpointing_kwargs=None))
    for k, v in over.items():
        setattr(ns, k, v)
    ns._compute_kl_logps = MethodType(KTOTrainer._compute_kl_logps, ns)  # TRL's own helper
    return ns


@pytest.mark.parametrize("kl_shift", [+2.0, -30.0], ids=["kl_positive", "kl_clamped"])
def test_kto_matches_trl(dpo_case, kl_shift):
    gen = torch.Generator().manual_seed(11)
    lm = dpo_case.lm
    n, k = 5, 5
    ids, attn, comp = make_rows(n, gen)
    kl_ids, kl_attn, kl_comp = make_rows(k, gen)
    labels = torch.tensor([True, False, True, True, False])
    ref = torch.randn(n, generator=gen, dtype=F64) * 3 - 8
    logps, lens = summed_logps(lm, ids, comp)
    kl_logps, _ = summed_logps(lm, kl_ids, kl_comp)
    ref_kl = kl_logps - kl_shift + torch.randn(k, generator=gen, dtype=F64) * 0.1  # mean log-ratio ≈ shift
    trainer = fake_kto_trainer(beta=0.4, desirable_weight=1.3, undesirable_weight=0.8)

    theirs = []
    for i in range(n):  # one example at a time, the same mismatched pairs each time -> same z
        inputs = {"input_ids": ids[[i]], "attention_mask": attn[[i]], "completion_mask": comp[[i]],
                  "KL_input_ids": kl_ids, "KL_attention_mask": kl_attn, "KL_completion_mask": kl_comp,
                  "label": labels[[i]], "ref_logps": ref[[i]], "ref_KL_logps": ref_kl}
        theirs.append(KTOTrainer._compute_loss(trainer, lm, inputs, False))
    theirs = torch.stack(theirs)

    b = L.UnpairedLogps(logps=logps, ref_logps=ref, lens=lens, labels=labels, kl_logps=kl_logps,
                        ref_kl_logps=ref_kl)
    p = L.LossParams(beta=0.4, kto_lambda_d=1.3, kto_lambda_u=0.8)
    mine = L.compute("kto", b, p)
    torch.testing.assert_close(mine, theirs, atol=ATOL, rtol=0)
    z = L.kto_reference_point(b).item()
    assert trainer._metrics["train"]["kl"][-1] == pytest.approx(z, abs=ATOL)
    assert (z > 1.0) if kl_shift > 0 else (z == 0.0)


# --------------------------------------------------------------------------- WPO weights


def _trl_weighted_and_plain(case, lm, beta=0.3):
    weighted = trl_dpo_per_pair(case, fake_dpo_trainer(beta=beta, use_weighting=True), lm)
    plain = trl_dpo_per_pair(case, fake_dpo_trainer(beta=beta, use_weighting=False), lm)
    return weighted, plain


def _our_log_weights(case, logits):
    """(log w_w, log w_l) from next-token logits of all rows (shifted as for a causal LM)."""
    lw = W.sequence_log_weights(logits[:, :-1], case.ids[:, 1:], case.comp[:, 1:], "sampled")
    return lw[: case.B], lw[case.B:]


def test_wpo_sampled_weights_match_trl_use_weighting(dpo_case):
    weighted, plain = _trl_weighted_and_plain(dpo_case, dpo_case.lm)
    lw_w, lw_l = _our_log_weights(dpo_case, dpo_case.lm.logits(dpo_case.ids))
    # TRL's weights, recovered as weighted / plain loss, in log space (weights span decades)
    torch.testing.assert_close(torch.log(weighted / plain), lw_w + lw_l, atol=1e-9, rtol=0)
    # and the weighted per-pair loss itself, with TRL's unclamped weights
    mine = W.apply_pair_weights(L.dpo(our_batch(dpo_case), L.LossParams(beta=0.3)),
                                W.pair_weights(lw_w, lw_l, "wpo", clamp_max=None))
    torch.testing.assert_close(mine, weighted, atol=ATOL, rtol=1e-9)


def test_wpo_sampled_weights_match_trl_fused_head_on_tiny_llama(dpo_case):
    """TRL's real fused LM head (its own log Σπ² kernel) on a random tiny Llama."""
    transformers = pytest.importorskip("transformers")
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    model = transformers.LlamaForCausalLM(cfg).to(F64).eval()
    with torch.no_grad():  # sharpen the near-uniform random head so the weights are far from 1
        model.lm_head.weight.mul_(30.0)
    add_fused_lm_head(model, outputs=("entropy", "log_sum_sq_probs", "mean_logits", "is_top1"))
    model.training = True  # what _compute_loss reads for its metrics' mode

    with torch.no_grad():
        logits = model(input_ids=dpo_case.ids, attention_mask=dpo_case.attn).logits  # un-fused path
        weighted, plain = _trl_weighted_and_plain(dpo_case, model)
    lw_w, lw_l = _our_log_weights(dpo_case, logits)
    assert (lw_w + lw_l).abs().max() > 1.0  # the weights are far from 1: a real check
    # the fused kernel computes in float32 whatever the model dtype: float32-level tolerance
    torch.testing.assert_close(torch.log(weighted / plain).to(F64), lw_w + lw_l, atol=1e-4, rtol=1e-5)
