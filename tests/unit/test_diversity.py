"""Diversity metrics (PID/AID, distinct-n, self-BLEU, entropy) and the embedder loader.

Expected numbers are hand computations, written out next to each assertion.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from evalbench.errors import InputError
from evalbench.io import sha256_dir
from evalbench.score import diversity as dv
from evalbench.score.diversity import (
    NothingToMeasure,
    across_input_similarity,
    distinct_n,
    distinct_n_per_prompt,
    diversity_summary,
    mean_pairwise_cosine,
    per_input_similarity,
    self_bleu,
    self_bleu_per_prompt,
    sequence_entropy,
)
from evalbench.score.embedders import DEFAULT_EMBEDDER, Embedder, load_embedder, resolve_embedder_path

SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- embedding similarity


def test_identical_samples_give_similarity_one():
    emb = np.array([[0.3, -1.2, 2.0]] * 4)
    res = per_input_similarity({"p": emb})
    assert res.similarity == pytest.approx(1.0, abs=1e-12)
    assert res.diversity == pytest.approx(0.0, abs=1e-12)
    assert res.per_prompt == {"p": pytest.approx(1.0)}


def test_orthogonal_embeddings_give_zero():
    res = per_input_similarity([np.eye(3)])
    assert res.similarity == pytest.approx(0.0, abs=1e-12)
    assert res.diversity == pytest.approx(1.0)
    assert across_input_similarity(np.eye(4) * 5.0).similarity == pytest.approx(0.0, abs=1e-12)


def test_three_vectors_hand_computed():
    # a=(1,0), b=(0,1), c=(1,1) (not unit length: normalisation is the function's job).
    # cos(a,b)=0, cos(a,c)=1/sqrt2, cos(b,c)=1/sqrt2 -> mean over the 3 pairs = (2/sqrt2)/3 = sqrt2/3 = 0.4714
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert mean_pairwise_cosine(x) == pytest.approx(SQRT2 / 3)
    # a=(1,0,0), b=(1,1,0), c=(-1,0,0): cos(a,b)=1/sqrt2, cos(a,c)=-1, cos(b,c)=-1/sqrt2 -> mean = -1/3
    y = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [-2.0, 0.0, 0.0]])
    assert mean_pairwise_cosine(y) == pytest.approx(-1.0 / 3)


def test_mean_pairwise_cosine_matches_sklearn_on_random_data():
    from sklearn.metrics.pairwise import cosine_similarity  # independent implementation

    x = np.random.default_rng(0).normal(size=(7, 16))
    sim = cosine_similarity(x)
    expected = sim[np.triu_indices(7, k=1)].mean()
    assert mean_pairwise_cosine(x) == pytest.approx(expected, abs=1e-12)


def test_pid_averages_prompts_and_counts_k_below_two():
    # prompt a: identical -> 1; prompt b: orthogonal -> 0; prompt c: one sample -> excluded.
    # PID = (1 + 0)/2 = 0.5, diversity 0.5, one prompt excluded.
    res = per_input_similarity({"a": np.ones((3, 2)), "b": np.eye(2), "c": np.ones((1, 2))})
    assert res.similarity == pytest.approx(0.5)
    assert res.diversity == pytest.approx(0.5)
    assert res.per_prompt == {"a": pytest.approx(1.0), "b": pytest.approx(0.0)}
    assert (res.n_prompts, res.n_excluded) == (2, 1)


def test_pid_with_no_usable_prompt_raises():
    with pytest.raises(NothingToMeasure, match="all 2 prompts"):
        per_input_similarity({"a": np.ones((1, 2)), "b": np.zeros((0, 2))})


def test_aid_per_prompt_row_means_decompose_aid():
    # Same a, b, c as above. Row means: a: (0 + 1/sqrt2)/2, b: (0 + 1/sqrt2)/2, c: (1/sqrt2 + 1/sqrt2)/2.
    # Their mean = (1/(2 sqrt2) * 2 + 1/sqrt2)/3 = sqrt2/3 = AID.
    res = across_input_similarity({"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 1.0]})
    assert res.similarity == pytest.approx(SQRT2 / 3)
    assert res.per_prompt["a"] == pytest.approx(1 / (2 * SQRT2))
    assert res.per_prompt["c"] == pytest.approx(1 / SQRT2)
    assert np.mean(list(res.per_prompt.values())) == pytest.approx(res.similarity)
    with pytest.raises(NothingToMeasure):
        across_input_similarity({"a": [1.0, 0.0]})


def test_aid_resampled_and_pseudo_values_by_hand():
    # a, b, c as above: cos(a, b) = 0, cos(a, c) = cos(b, c) = 1/sqrt2.
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = np.array([[1, 1, 1], [1, 1, 0], [2, 0, 1], [0, 0, 3], [1, 0, 0]], dtype=float)
    got = dv.across_input_similarity_resampled(emb, w)
    # ones: AID; {a, b}: 0; {a, a, c}: pairs a-c (x4 ordered), never a with its own copy; one prompt: NaN.
    assert got[:3] == pytest.approx([SQRT2 / 3, 0.0, 1 / SQRT2]) and np.isnan(got[3:]).all()
    assert dv.across_input_similarity_resampled(emb, np.ones(3)) == pytest.approx([SQRT2 / 3])
    rows = list(across_input_similarity(emb).per_prompt.values())
    psi = dv.across_input_pseudo_values(rows)
    assert psi.mean() == pytest.approx(SQRT2 / 3)                  # their mean is AID
    assert psi - psi.mean() == pytest.approx(2 * (np.array(rows) - np.mean(rows)))  # twice the row deviations
    with pytest.raises(InputError, match="weights"):
        dv.across_input_similarity_resampled(emb, np.ones((2, 4)))
    with pytest.raises(InputError, match="non-negative"):
        dv.across_input_similarity_resampled(emb, -np.ones(3))
    with pytest.raises(InputError, match="row means"):
        dv.across_input_pseudo_values([0.5])


def test_pid_per_prompt_values_depend_on_their_own_prompt_only():
    # Why PID keeps a per-prompt score (unlike AID): changing prompt b's samples leaves a's value alone.
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    one = per_input_similarity({"a": a, "b": np.array([[0.0, 1.0], [1.0, 0.0]])})
    two = per_input_similarity({"a": a, "b": np.array([[0.0, 1.0], [0.0, 2.0]])})
    assert one.per_prompt["a"] == two.per_prompt["a"] and one.per_prompt["b"] != two.per_prompt["b"]
    aid_one = across_input_similarity({"a": a[0], "b": [0.0, 1.0], "c": [1.0, 1.0]}).per_prompt
    aid_two = across_input_similarity({"a": a[0], "b": [1.0, 0.2], "c": [1.0, 1.0]}).per_prompt
    assert aid_one["c"] != aid_two["c"]  # AID's row mean of c moves with b's sample


def test_bad_embeddings_raise_located_errors():
    with pytest.raises(InputError, match="all zeros"):
        mean_pairwise_cosine([[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(InputError, match="NaN"):
        per_input_similarity({"q7": np.array([[1.0, np.nan], [1.0, 0.0]])})
    with pytest.raises(InputError, match="q7"):
        per_input_similarity({"q7": np.array([[1.0, 0.0], [0.0, 0.0]])})


# --------------------------------------------------------------------------- distinct-n


def test_distinct_n_hand_computed():
    texts = ["the cat sat", "the dog sat", "a cat ran"]
    # unigrams: the cat sat the dog sat a cat ran = 9; unique {the, cat, sat, dog, a, ran} = 6 -> 2/3
    assert distinct_n(texts, 1) == (pytest.approx(2 / 3), 6, 9)
    # bigrams: (the cat)(cat sat)(the dog)(dog sat)(a cat)(cat ran) = 6, all different -> 1
    assert distinct_n(texts, 2) == (1.0, 6, 6)
    # n-grams never cross texts: "sat the" is not a bigram; trigrams: one per text = 3, unique 3
    assert distinct_n(texts, 3) == (1.0, 3, 3)


def test_distinct_n_identical_samples_at_minimum():
    # K=3 copies of a text whose 3 unigrams / 2 bigrams are all different: unique = one copy's worth,
    # total = 3 copies -> 1/K, the smallest value K samples of that text can have.
    same = ["the cat sat"] * 3
    assert distinct_n(same, 1).value == pytest.approx(1 / 3)
    assert distinct_n(same, 2).value == pytest.approx(1 / 3)
    # One repeated token: 1 unique unigram out of 9 -> 1/9 = 1/total, the absolute minimum.
    assert distinct_n(["a a a"] * 3, 1) == (pytest.approx(1 / 9), 1, 9)


def test_distinct_n_tokenisation_is_whitespace_case_and_punctuation_sensitive():
    # tokens: "Hello," "world" | "hello" "world\t" -> split() strips the tab: Hello, world hello world
    # unique {Hello,, world, hello} = 3 of 4
    assert distinct_n(["Hello, world", "hello  world\t"], 1) == (0.75, 3, 4)


def test_distinct_n_without_ngrams_is_nan_and_bad_n_raises():
    res = distinct_n(["one", ""], 2)
    assert math.isnan(res.value) and res.n_total == 0
    with pytest.raises(InputError):
        distinct_n(["a b"], 0)


def test_distinct_n_per_prompt_excludes_and_counts():
    by_prompt = {
        "same": ["the cat sat"] * 3,                        # distinct-1 = 3/9 = 1/3
        "mixed": ["the cat sat", "the dog sat", "a cat ran"],  # distinct-1 = 6/9 = 2/3
        "single": ["only one sample"],                      # K < 2 -> excluded
    }
    res = distinct_n_per_prompt(by_prompt, 1)
    assert res.value == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert set(res.per_prompt) == {"same", "mixed"}
    assert (res.n_prompts, res.n_excluded) == (2, 1)
    with pytest.raises(NothingToMeasure):
        distinct_n_per_prompt({"x": ["one"], "y": ["a", "b"]}, 2)  # y has no bigram


# --------------------------------------------------------------------------- self-BLEU


def test_self_bleu_identical_and_disjoint():
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(100.0)
    # No n-gram in common at all: sacrebleu returns exactly 0 (no smoothing credit without a match).
    assert self_bleu(["alpha beta gamma delta", "one two three four", "red green blue black"]) == 0.0


def test_self_bleu_hand_computed():
    texts = ["the cat sat on mats", "the cat sat on rugs", "dogs run fast today now"]
    # hyp 1 vs refs {2, 3}: clipped matches / total n-grams, all from ref 2:
    #   1-grams 4/5, 2-grams 3/4, 3-grams 2/3, 4-grams 1/2; lengths 5 vs closest ref 5 -> BP = 1
    #   BLEU = 100 * (4/5 * 3/4 * 2/3 * 1/2) ** (1/4) = 100 * 0.2 ** 0.25 = 66.874
    # hyp 2 is symmetric (66.874); hyp 3 matches nothing -> 0.
    pair = 100 * 0.2 ** 0.25
    assert self_bleu(texts) == pytest.approx(2 * pair / 3, rel=1e-9)
    assert self_bleu(texts[:2]) == pytest.approx(pair, rel=1e-9)


def test_self_bleu_matches_direct_sacrebleu_calls():
    import sacrebleu

    texts = ["The cat sat on the mat.", "A cat was sitting on a mat!", "Dogs bark at night, loudly."]
    expected = np.mean([sacrebleu.sentence_bleu(t, [u for u in texts if u is not t]).score for t in texts])
    assert self_bleu(texts) == pytest.approx(expected)
    assert 0.0 < self_bleu(texts) < 100.0


def test_self_bleu_needs_two_samples():
    with pytest.raises(NothingToMeasure):
        self_bleu(["alone"])
    res = self_bleu_per_prompt({"a": ["x y z"] * 2, "b": ["solo"]})
    assert res.value == pytest.approx(100.0)
    assert (res.n_prompts, res.n_excluded) == (1, 1)


# --------------------------------------------------------------------------- entropy


def test_sequence_entropy_hand_case():
    # sample 1: -log p = 1 + 1 = 2 (2 tokens); sample 2: -log p = 4 (1 token)
    # nats = mean(2, 4) = 3; per token = (2 + 4) / 3 tokens = 2 (ratio of sums, not mean(1, 4) = 2.5)
    est = sequence_entropy([[-1.0, -1.0], [-4.0]])
    assert est.nats == pytest.approx(3.0)
    assert est.nats_per_token == pytest.approx(2.0)
    assert (est.n_samples, est.n_tokens, est.n_excluded) == (2, 3, 0)


def test_sequence_entropy_recovers_known_entropy():
    # Single-token outputs from p = (1/2, 1/4, 1/4): H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2 = 1.0397 nats.
    # sd of -log p is ln2/2 = 0.347, so with 20 000 samples the standard error is 0.0025; 0.02 is 8 SE.
    p = np.array([0.5, 0.25, 0.25])
    draws = np.random.default_rng(1).choice(3, size=20_000, p=p)
    est = sequence_entropy([[math.log(p[d])] for d in draws])
    assert est.nats == pytest.approx(1.5 * math.log(2), abs=0.02)


def test_sequence_entropy_exclusions_and_bad_values():
    est = sequence_entropy([[-2.0], [], [-4.0]])
    assert (est.nats, est.n_samples, est.n_excluded) == (pytest.approx(3.0), 2, 1)
    with pytest.raises(NothingToMeasure):
        sequence_entropy([[], []])
    with pytest.raises(InputError, match=r"logprobs\[1\]"):
        sequence_entropy([[-1.0], [-0.5, 0.3]])
    with pytest.raises(InputError, match="NaN"):
        sequence_entropy([[float("nan")]])


# --------------------------------------------------------------------------- summary


def _fixture():
    texts = {
        "p1": ["the cat sat", "", "the cat sat"],  # one empty output
        "p2": ["   ", "dogs run fast"],            # empty first sample; one left -> K < 2
        "p3": ["red fish", "blue fish"],
    }
    e = np.eye(4)
    emb = {
        # the empty output's embedding is orthogonal: if it leaked in, p1's similarity would drop below 1
        "p1": np.stack([e[0], e[1], e[0]]),
        "p2": np.stack([e[2], e[3]]),
        "p3": np.stack([e[0], e[3]]),
    }
    return texts, emb


def test_summary_drops_empty_outputs_and_counts_exclusions():
    texts, emb = _fixture()
    s = diversity_summary(texts, embeddings_by_prompt=emb, ngram_orders=(1,))
    assert (s.n_prompts, s.n_samples, s.n_empty) == (3, 7, 2)
    # PID: p1 -> cos(e0, e0) = 1; p3 -> cos(e0, e3) = 0; p2 excluded (1 non-empty sample) -> 0.5
    assert s.metrics[dv.PID_SIMILARITY] == pytest.approx(0.5)
    assert s.metrics[dv.PID_DIVERSITY] == pytest.approx(0.5)
    assert s.per_prompt[dv.PID_SIMILARITY] == {"p1": pytest.approx(1.0), "p3": pytest.approx(0.0)}
    assert s.n_excluded[dv.PID_SIMILARITY] == 1
    # AID: first non-empty samples e0 (p1), e3 (p2), e0 (p3): pairs 0, 1, 0 -> 1/3
    assert s.metrics[dv.AID_SIMILARITY] == pytest.approx(1 / 3)
    assert s.metrics[dv.AID_DIVERSITY] == pytest.approx(2 / 3)
    # distinct-1: p1 3/6 = 0.5, p3 {red, fish, blue} 3/4 = 0.75 -> 0.625; p2 excluded
    assert s.metrics[dv.distinct_key(1)] == pytest.approx(0.625)
    assert s.n_excluded[dv.distinct_key(1)] == 1
    # corpus distinct-1 over the 5 non-empty outputs: tokens the cat sat the cat sat dogs run fast red
    # fish blue fish = 13; unique {the cat sat dogs run fast red fish blue} = 9
    assert s.metrics[dv.corpus_distinct_key(1)] == pytest.approx(9 / 13)
    # self-BLEU: p1 identical -> 100. p3, "red fish" vs "blue fish" (and back): 1-grams 1/2 -> 50;
    # 2-grams 0/1 -> exp smoothing 100/(2*1) = 50; 3- and 4-grams do not exist (effective order 2);
    # BP = 1 -> BLEU = sqrt(50 * 50) = 50 for both hypotheses.
    assert s.per_prompt[dv.SELF_BLEU] == {"p1": pytest.approx(100.0), "p3": pytest.approx(50.0)}
    assert s.n_excluded[dv.SELF_BLEU] == 1
    assert not s.errors


def test_summary_embed_callable_gets_only_non_empty_outputs_once():
    texts, emb = _fixture()
    table = {}
    for key, rows in emb.items():
        for t, row in zip(texts[key], rows):
            if t.strip():
                table[t] = row
    calls = []

    def embed(batch):
        calls.append(list(batch))
        return np.stack([table[t] for t in batch])

    s = diversity_summary(texts, embed=embed, with_self_bleu=False)
    assert len(calls) == 1 and all(t.strip() for t in calls[0]) and len(calls[0]) == 5
    ref = diversity_summary(texts, embeddings_by_prompt=emb, with_self_bleu=False)
    assert s.metrics == ref.metrics


def test_summary_entropy_drops_the_same_empty_outputs():
    texts, _ = _fixture()
    logprobs = {
        "p1": [[-1.0, -1.0, -1.0], [-9.0], [-2.0, -2.0, -2.0]],  # the empty output's -9 must not count
        "p2": [[-5.0], [-1.0, -1.0, -1.0]],
        "p3": [[-1.0, -1.0], [-3.0, -1.0]],
    }
    s = diversity_summary(texts, logprobs_by_prompt=logprobs, with_self_bleu=False)
    # p1: NLL 3 and 6 -> 4.5, per token 9/6 = 1.5; p2: NLL 3 -> 3, per token 1; p3: NLL 2, 4 -> 3, 6/4 = 1.5
    assert s.per_prompt[dv.ENTROPY] == {"p1": 4.5, "p2": 3.0, "p3": 3.0}
    assert s.metrics[dv.ENTROPY] == pytest.approx((4.5 + 3.0 + 3.0) / 3)
    assert s.metrics[dv.ENTROPY_PER_TOKEN] == pytest.approx((1.5 + 1.0 + 1.5) / 3)
    bad = dict(logprobs, p3=[[-1.0]])  # 1 list for 2 samples
    with pytest.raises(InputError, match="p3"):
        diversity_summary(texts, logprobs_by_prompt=bad)


def test_summary_records_unmeasurable_metrics_instead_of_nan():
    texts = {"a": ["just one"], "b": ["", "another one"]}
    emb = {"a": np.ones((1, 3)), "b": np.ones((2, 3))}
    s = diversity_summary(texts, embeddings_by_prompt=emb)
    assert dv.PID_SIMILARITY not in s.metrics and dv.PID_SIMILARITY in s.errors
    assert dv.SELF_BLEU not in s.metrics and dv.SELF_BLEU in s.errors
    assert dv.distinct_key(2) not in s.metrics
    # AID still exists: 2 prompts, each with a non-empty first sample
    assert s.metrics[dv.AID_SIMILARITY] == pytest.approx(1.0)
    assert s.n_empty == 1
    assert not any(math.isnan(v) for v in s.metrics.values())


def test_summary_bad_inputs_raise():
    texts, emb = _fixture()
    with pytest.raises(InputError, match="not both"):
        diversity_summary(texts, embeddings_by_prompt=emb, embed=lambda t: np.ones((len(t), 2)))
    with pytest.raises(InputError, match="p2"):
        diversity_summary(texts, embeddings_by_prompt=dict(emb, p2=np.ones((3, 4))))
    with pytest.raises(InputError, match="NaN"):  # bad data is an error, not a silent exclusion
        diversity_summary(texts, embeddings_by_prompt=dict(emb, p1=np.full((3, 4), np.nan)))


# --------------------------------------------------------------------------- embedders


def test_importing_the_modules_is_light():
    code = ("import sys, evalbench.score.diversity, evalbench.score.embedders; "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'vllm', 'lm_eval', 'sacrebleu') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unknown_embedder_name_suggests_the_closest():
    with pytest.raises(InputError, match="did you mean 'all-MiniLM-L6-v2'"):
        load_embedder("all-MiniLM-L6-v3")


def test_alias_resolves_to_the_bundled_model():
    name, path = resolve_embedder_path("sentence-transformers/all-MiniLM-L6-v2")
    assert name == DEFAULT_EMBEDDER
    assert (path / "model.safetensors").is_file()


def test_uncached_hub_id_offline_is_an_input_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="cannot get embedder"):
        load_embedder("no-such-org-xyz/no-such-model-xyz")


def test_local_directory_and_content_hash(tmp_path):
    not_model = tmp_path / "empty"
    not_model.mkdir()
    with pytest.raises(InputError, match="not a sentence-transformers model"):
        load_embedder(str(not_model))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "modules.json").write_text("[]")
    (model_dir / "weights.bin").write_bytes(b"\x00\x01")
    emb = load_embedder(str(model_dir))
    first = emb.content_hash
    assert first == sha256_dir(model_dir) and len(first) == 64
    (model_dir / "weights.bin").write_bytes(b"\x00\x02")
    assert emb.content_hash == first                        # cached on the instance
    assert Embedder(emb.name, model_dir).content_hash != first  # a fresh hash sees the new weights
    assert emb.provenance()["content_hash"] == first


@pytest.fixture(scope="module")
def minilm():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: any download attempt would fail loudly
    return load_embedder()


def test_real_embedder_loads_offline_and_ranks_paraphrases(minilm):
    sentences = ["A man is playing a guitar.", "Someone plays the guitar.",
                 "The stock market fell sharply today."]
    emb = minilm.encode(sentences)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cos = emb @ emb.T
    assert cos[0, 1] > cos[0, 2] + 0.3 and cos[0, 1] > cos[1, 2] + 0.3
    assert minilm.name == DEFAULT_EMBEDDER and len(minilm.content_hash) == 64
    assert minilm.encode([]).shape == (0, 384)

    # End to end: a prompt with paraphrased samples has higher PID similarity than one with unrelated ones.
    s = diversity_summary(
        {"para": sentences[:2] + ["A person is strumming a guitar."],
         "mixed": [sentences[0], sentences[2], "Bake the bread for forty minutes."]},
        embed=minilm.encode, with_self_bleu=False)
    per = s.per_prompt[dv.PID_SIMILARITY]
    assert per["para"] > per["mixed"] + 0.3
