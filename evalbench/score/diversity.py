"""Output-diversity metrics: embedding similarity (PID/AID), distinct-n, self-BLEU, sequence entropy.

Pure functions: arrays and strings in, small typed results out; no file, model or network access
(embeddings are computed by `evalbench.score.embedders` and passed in).

Definitions (see /work/shared/notes/methods.md, "Diversity"):

* `D(O)` = mean pairwise cosine similarity of the sentence embeddings of a set of outputs `O`
  (lower = more diverse). ORPO (Hong et al. 2024, arXiv 2403.07691) §6.4 after Kirk et al. 2024.
  Eq. 13 as printed is 1/4 of this mean; the published numbers match the plain mean, which is what
  we compute.
* PID (per-input) = mean over prompts of `D(K samples of that prompt)`.
* AID (across-input) = `D(first sample of every prompt)`: a degree-2 U-statistic over pairs of
  prompts. Its per-prompt row means average to AID but are not independent across prompts, so they
  are no per-sample scores for significance tests; `across_input_similarity_resampled` recomputes
  AID under prompt-resampling weights (exactly, from the unit embeddings), and
  `across_input_pseudo_values` gives its first-order (Hoeffding) linearisation from the row means.
* PID's per-prompt value is a statistic of that prompt's own K samples only, so per-prompt PIDs are
  independent across prompts and PID is their plain mean: a legitimate per-prompt score (the same
  holds for per-prompt distinct-n, self-BLEU and entropy).
* Every similarity is reported together with its diversity `1 - similarity`.

Exclusions are counted, never silently averaged:

* a prompt with fewer than 2 (non-empty) samples has no pairwise similarity, distinct-n over a
  set, or self-BLEU; it is *excluded and counted* (`n_excluded`), and it is an error only when
  no prompt at all is left;
* an empty output (`text.strip() == ""`) is dropped from every metric by `diversity_summary` and
  counted in `n_empty`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from evalbench.errors import InputError, require

# Metric keys (snake_case constants, as in the leaderboard export).
PID_SIMILARITY = "pid_similarity"
PID_DIVERSITY = "pid_diversity"
AID_SIMILARITY = "aid_similarity"
AID_DIVERSITY = "aid_diversity"
SELF_BLEU = "self_bleu"
ENTROPY = "entropy"
ENTROPY_PER_TOKEN = "entropy_per_token"


def distinct_key(n: int) -> str:
    """Key of the per-prompt distinct-n mean, e.g. `distinct_2`."""
    return f"distinct_{n}"


def corpus_distinct_key(n: int) -> str:
    """Key of the corpus-level (all prompts pooled) distinct-n, e.g. `corpus_distinct_2`."""
    return f"corpus_distinct_{n}"


# Log-probs come from float32 softmaxes; allow rounding just above 0 but not real positive values.
_LOGPROB_TOLERANCE = 1e-4


# --------------------------------------------------------------------------- typed results


class NothingToMeasure(InputError):
    """Every prompt/sample was excluded (too few samples, no n-grams, all empty): no value exists."""


class Similarity(NamedTuple):
    """A mean cosine similarity, its diversity `1 - similarity`, and how it was aggregated.

    `per_prompt` maps each *used* prompt key to its value (for paired tests between checkpoints);
    `n_excluded` counts prompts that could not contribute (fewer than 2 samples).
    """

    similarity: float
    diversity: float
    per_prompt: dict[Hashable, float]
    n_prompts: int
    n_excluded: int


class DistinctN(NamedTuple):
    """distinct-n = `n_unique / n_total` n-grams; `value` is NaN when there is no n-gram at all."""

    value: float
    n_unique: int
    n_total: int


class PerPromptMean(NamedTuple):
    """A metric averaged over prompts, with the per-prompt values and the excluded-prompt count."""

    value: float
    per_prompt: dict[Hashable, float]
    n_prompts: int
    n_excluded: int


class EntropyEstimate(NamedTuple):
    """Monte-Carlo entropy estimate of one prompt's output distribution, in nats.

    `nats`: mean over samples of `-log p(y|x)`; `nats_per_token`: total `-log p` over total tokens.
    `n_excluded`: samples with no tokens (empty outputs), which were not used.
    """

    nats: float
    nats_per_token: float
    n_samples: int
    n_tokens: int
    n_excluded: int


# --------------------------------------------------------------------------- embedding similarity


def mean_pairwise_cosine(embeddings: np.ndarray | Sequence[Sequence[float]], *,
                         field: str = "embeddings") -> float:
    """`D(O)`: mean cosine similarity over the `m(m-1)/2` unordered pairs of rows of an (m, d) array.

    Rows need not be normalised (each is divided by its norm here). Raises NothingToMeasure for
    fewer than 2 rows, and InputError (naming `field`) for a non-2-D array, non-finite values or an
    all-zero row (cosine undefined).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    m = x.shape[0] if x.ndim else 0
    if m < 2:
        raise NothingToMeasure(f"need at least 2 embeddings for a pairwise similarity, got {m}",
                               field=field)
    if x.ndim != 2:
        raise InputError(f"expected a 2-D (samples, dim) array, got shape {x.shape}", field=field)
    if not np.all(np.isfinite(x)):
        raise InputError("embeddings contain NaN or inf", field=field)
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise InputError(f"embedding row {int(np.argmin(norms))} is all zeros; cosine is undefined",
                         field=field)
    unit = x / norms[:, None]
    gram = unit @ unit.T
    # Sum of the strict upper triangle = sum over unordered pairs; clip float error beyond [-1, 1].
    upper = gram[np.triu_indices(m, k=1)]
    return float(np.clip(upper.mean(), -1.0, 1.0))


def _items(by_prompt: Mapping[Hashable, object] | Sequence[object]) -> list[tuple[Hashable, object]]:
    """(key, value) pairs: a mapping's own keys, or a sequence's 0-based positions."""
    if isinstance(by_prompt, Mapping):
        return list(by_prompt.items())
    return list(enumerate(by_prompt))


def per_input_similarity(
        embeddings_by_prompt: Mapping[Hashable, np.ndarray] | Sequence[np.ndarray]) -> Similarity:
    """PID: mean over prompts of the mean pairwise cosine similarity of each prompt's K samples.

    Args:
        embeddings_by_prompt: prompt key -> (K, d) embeddings of that prompt's samples (or a sequence,
            keyed by position).

    Returns:
        Similarity with `per_prompt` for the prompts used. Prompts with K < 2 are *excluded and
        counted* in `n_excluded` (a single sample has no pair); if no prompt has K >= 2 this raises
        NothingToMeasure (an InputError) instead of returning a meaningless number.

    Source: ORPO §6.4 / Kirk et al. 2024 (plain mean; see module docstring on Eq. 13).
    """
    per_prompt: dict[Hashable, float] = {}
    excluded = 0
    for key, emb in _items(embeddings_by_prompt):
        arr = np.asarray(emb, dtype=np.float64)
        if arr.ndim != 2:
            raise InputError(f"expected (K, dim) embeddings, got shape {arr.shape}",
                             field=f"embeddings of prompt {key!r}")
        if arr.shape[0] < 2:
            excluded += 1
            continue
        per_prompt[key] = mean_pairwise_cosine(arr, field=f"embeddings of prompt {key!r}")
    if not per_prompt:
        raise NothingToMeasure(f"per-input similarity needs a prompt with at least 2 samples; all "
                               f"{excluded} prompts have fewer", field="embeddings")
    value = float(np.mean(list(per_prompt.values())))
    return Similarity(value, 1.0 - value, per_prompt, len(per_prompt), excluded)


def across_input_similarity(
        first_sample_embeddings: Mapping[Hashable, np.ndarray] | np.ndarray | Sequence[Sequence[float]]
) -> Similarity:
    """AID: mean pairwise cosine similarity of the first sample of every prompt.

    Args:
        first_sample_embeddings: a (P, d) array (keys = row positions) or prompt key -> (d,) vector.

    Returns:
        Similarity whose `per_prompt[k]` is prompt k's mean similarity to every *other* prompt's first
        sample. The mean of these row means equals AID exactly (each pair is counted once from each
        side), so they decompose AID for paired tests; note they are not independent across prompts.
        Raises NothingToMeasure (an InputError) for fewer than 2 prompts.
    """
    if isinstance(first_sample_embeddings, Mapping):
        keys = list(first_sample_embeddings)
        x = np.asarray([np.asarray(first_sample_embeddings[k], dtype=np.float64) for k in keys])
    else:
        x = np.asarray(first_sample_embeddings, dtype=np.float64)
        keys = list(range(len(x)))
    value = mean_pairwise_cosine(x)  # validates shape, finiteness, zero rows, P >= 2
    unit = x / np.linalg.norm(x, axis=1)[:, None]
    gram = unit @ unit.T
    p = len(keys)
    row_means = (gram.sum(axis=1) - np.diag(gram)) / (p - 1)
    per_prompt = {k: float(np.clip(v, -1.0, 1.0)) for k, v in zip(keys, row_means)}
    return Similarity(value, 1.0 - value, per_prompt, p, 0)


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    return v / np.linalg.norm(v)


def across_input_similarity_resampled(unit_embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AID recomputed under prompt weights: the weighted U-statistic over pairs of distinct prompts.

    For each weight row w, `sum_{i != j} w_i w_j s_ij / sum_{i != j} w_i w_j` with s_ij = e_i . e_j the
    cosine similarity of the prompts' (unit-norm) AID samples. With bootstrap counts, a prompt drawn
    k times pairs with every other draw but not with its own copies (a sample has no similarity to
    itself in AID), as a bootstrap of a U-statistic should; a row of ones gives AID exactly.
    Computed as ||sum_i w_i e_i||^2 - sum_i w_i^2 ||e_i||^2, which never forms the P x P matrix.

    Args:
        unit_embeddings: (P, d) unit-norm embeddings, one per prompt (rows are normalised again here).
        weights: (B, P) non-negative prompt weights (1-D: one row).

    Returns:
        (B,) similarities; NaN for a row with fewer than two draws.
    """
    e = np.asarray(unit_embeddings, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if e.ndim != 2 or w.ndim != 2 or w.shape[1] != e.shape[0]:
        raise InputError(f"weights {w.shape} do not match embeddings {e.shape}: expected (B, P) and (P, d)",
                         field="weights")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError("weights must be finite and non-negative", field="weights")
    norms = np.linalg.norm(e, axis=1)
    if not np.all(np.isfinite(e)) or np.any(norms == 0):
        raise InputError("embeddings must be finite and non-zero", field="embeddings")
    e = e / norms[:, None]
    summed = w @ e                                     # (B, d)
    num = (summed * summed).sum(axis=1) - (w * w).sum(axis=1)   # minus the i == j terms (e_i . e_i = 1)
    den = w.sum(axis=1) ** 2 - (w * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.clip(num / np.where(den > 0, den, 1.0), -1.0, 1.0), np.nan)


def across_input_pseudo_values(row_means: np.ndarray | Sequence[float]) -> np.ndarray:
    """First-order (Hoeffding / jackknife) pseudo-values of AID from its per-prompt row means.

    AID = U is a degree-2 U-statistic; U - theta ~ (2/P) sum_i (h1(X_i) - theta), where h1(x) is the
    expected similarity of x to another prompt's sample, estimated by prompt i's row mean r_i. Hence
    psi_i = 2 r_i - mean(r): their plain mean is AID, and a weighted mean `sum w_i psi_i / sum w_i`
    under prompt resampling has variance ~ 4 Var(r) / P ~ 4 zeta_1 / P, the U-statistic's leading
    variance term (Hoeffding 1948). The row means themselves would give a quarter of that. Use
    `across_input_similarity_resampled` when the embeddings are available (exact, also for small P).
    """
    r = np.asarray(row_means, dtype=np.float64)
    if r.ndim != 1 or len(r) < 2 or not np.all(np.isfinite(r)):
        raise InputError("need at least 2 finite AID row means", field="row_means")
    return 2.0 * r - r.mean()


# --------------------------------------------------------------------------- lexical diversity


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> DistinctN:
    """distinct-n over a set of texts: unique n-grams / total n-grams, pooled over all texts.

    Tokenisation is `str.split()` with no argument: runs of Unicode whitespace separate tokens;
    case and punctuation are kept as they are ("Hello," and "hello" are different tokens). N-grams
    never cross text boundaries. A text shorter than n contributes no n-gram. The denominator is the
    number of n-grams (the common implementation of Li et al. 2016, NAACL, "distinct-1/2"), not the
    number of words. When no text has an n-gram `value` is NaN (and `n_total` is 0).
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}", field="n")
    grams: list[tuple[str, ...]] = []
    for text in texts:
        grams.extend(_ngrams(text.split(), n))
    total = len(grams)
    unique = len(set(grams))
    return DistinctN(unique / total if total else math.nan, unique, total)


def distinct_n_per_prompt(texts_by_prompt: Mapping[Hashable, Sequence[str]] | Sequence[Sequence[str]],
                          n: int) -> PerPromptMean:
    """Mean over prompts of distinct-n of each prompt's samples (see `distinct_n`).

    A prompt is excluded and counted when it has fewer than 2 samples (distinct-n of one text
    measures repetition within it, not diversity across samples) or no n-gram at all. Raises
    NothingToMeasure (an InputError) when every prompt is excluded.
    """
    per_prompt: dict[Hashable, float] = {}
    excluded = 0
    for key, texts in _items(texts_by_prompt):
        texts = list(texts)  # type: ignore[arg-type]
        score = distinct_n(texts, n) if len(texts) >= 2 else None
        if score is None or score.n_total == 0:
            excluded += 1
            continue
        per_prompt[key] = score.value
    if not per_prompt:
        raise NothingToMeasure(f"distinct-{n} needs a prompt with at least 2 samples containing "
                               f"{n}-grams; all {excluded} prompts were excluded", field="texts")
    return PerPromptMean(float(np.mean(list(per_prompt.values()))), per_prompt, len(per_prompt), excluded)


def self_bleu(texts: Sequence[str], *, smooth_method: str = "exp") -> float:
    """Self-BLEU (Zhu et al. 2018, Texygen) of one set of samples, 0-100 (higher = less diverse).

    Exact variant: for each sample i, sacrebleu *sentence* BLEU of `texts[i]` against all the other
    samples as multiple references (`sacrebleu.sentence_bleu(texts[i], texts[:i] + texts[i+1:])`:
    13a tokeniser, case-sensitive, n-gram orders 1-4 with effective order, clipped counts against the
    max over references, brevity penalty from the closest reference length, smoothing
    `smooth_method`, default sacrebleu's sentence-level default "exp" = NIST/mteval method 3);
    the result is the plain mean over i. With no n-gram match at all sacrebleu returns exactly 0.

    Requires at least 2 texts (NothingToMeasure otherwise); callers drop empty outputs first.
    """
    sacrebleu = require("sacrebleu", "eval")
    texts = list(texts)
    if len(texts) < 2:
        raise NothingToMeasure(f"self-BLEU needs at least 2 samples, got {len(texts)}", field="texts")
    scores = [
        sacrebleu.sentence_bleu(hyp, texts[:i] + texts[i + 1:], smooth_method=smooth_method).score
        for i, hyp in enumerate(texts)
    ]
    return float(np.mean(scores))


def self_bleu_per_prompt(texts_by_prompt: Mapping[Hashable, Sequence[str]] | Sequence[Sequence[str]],
                         *, smooth_method: str = "exp") -> PerPromptMean:
    """Mean over prompts of `self_bleu` of each prompt's samples; prompts with < 2 samples are
    excluded and counted; NothingToMeasure when every prompt is excluded."""
    per_prompt: dict[Hashable, float] = {}
    excluded = 0
    for key, texts in _items(texts_by_prompt):
        texts = list(texts)  # type: ignore[arg-type]
        if len(texts) < 2:
            excluded += 1
            continue
        per_prompt[key] = self_bleu(texts, smooth_method=smooth_method)
    if not per_prompt:
        raise NothingToMeasure(f"self-BLEU needs a prompt with at least 2 samples; all {excluded} "
                               "prompts have fewer", field="texts")
    return PerPromptMean(float(np.mean(list(per_prompt.values()))), per_prompt, len(per_prompt), excluded)


# --------------------------------------------------------------------------- entropy


def sequence_entropy(logprobs_by_sample: Sequence[Sequence[float]], *,
                     field: str = "logprobs") -> EntropyEstimate:
    """Monte-Carlo estimate of the entropy of one prompt's output distribution from K samples.

    `H(Y|x) = E_{y~p}[-log p(y|x)]` is estimated by the mean over samples of `-sum_t log p(y_t|...)`
    (as in the f-divergence DPO study, Wang et al. 2023, arXiv 2309.16240). Per token, we report
    `sum over samples of -log p / total tokens` (a ratio of sums: every generated token weighs the
    same, the usual estimate of an entropy rate), not the mean of per-sample averages.

    Valid only when the samples were drawn from the very distribution the log-probs describe
    (temperature 1, no top-p/top-k truncation); otherwise it is a cross-entropy, not an entropy.

    Args:
        logprobs_by_sample: per sample, the log-probs (natural log) of its generated tokens.

    Returns:
        EntropyEstimate. Samples with no tokens are excluded and counted; raises NothingToMeasure
        when no sample has a token, and InputError (naming `field` and the sample index) when a
        log-prob is non-finite or positive.
    """
    nll: list[float] = []
    n_tokens = 0
    excluded = 0
    for i, sample in enumerate(logprobs_by_sample):
        lp = np.asarray(sample, dtype=np.float64).reshape(-1)
        if lp.size == 0:
            excluded += 1
            continue
        if not np.all(np.isfinite(lp)):
            raise InputError("log-prob is NaN or infinite", field=f"{field}[{i}]")
        if np.any(lp > _LOGPROB_TOLERANCE):
            raise InputError(f"log-prob {float(lp.max()):.4g} > 0 is not a log-probability",
                             field=f"{field}[{i}]")
        nll.append(float(-np.minimum(lp, 0.0).sum()))
        n_tokens += lp.size
    if not nll:
        raise NothingToMeasure(f"entropy needs at least one non-empty sample; all {excluded} samples "
                               "are empty", field=field)
    return EntropyEstimate(float(np.mean(nll)), float(np.sum(nll) / n_tokens), len(nll), n_tokens, excluded)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class DiversitySummary:
    """All diversity metrics of one run (one seed).

    Attributes:
        metrics: metric key -> value (keys are the module constants, `distinct_key(n)`,
            `corpus_distinct_key(n)`); a metric that could not be computed is absent, not NaN.
        per_prompt: metric key -> prompt key -> value, for paired tests between checkpoints
            (corpus-level distinct-n has none).
        n_excluded: metric key -> prompts excluded from it (too few non-empty samples / no n-grams).
        n_prompts: prompts given; n_samples: outputs given, empty included; n_empty: empty outputs,
            dropped from every metric.
        errors: metric key -> why it could not be computed at all.
        aid_embeddings: prompt key -> the unit-norm embedding of the sample AID used for it (its
            first non-empty one), for every prompt in AID: what `across_input_similarity_resampled`
            needs to recompute AID under prompt resampling.
    """

    n_prompts: int
    n_samples: int
    n_empty: int
    metrics: dict[str, float] = field(default_factory=dict)
    per_prompt: dict[str, dict[Hashable, float]] = field(default_factory=dict)
    n_excluded: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    aid_embeddings: dict[Hashable, np.ndarray] = field(default_factory=dict)


def _is_empty(text: str) -> bool:
    return not text.strip()


def diversity_summary(
        texts_by_prompt: Mapping[Hashable, Sequence[str]],
        *,
        embeddings_by_prompt: Mapping[Hashable, np.ndarray] | None = None,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
        logprobs_by_prompt: Mapping[Hashable, Sequence[Sequence[float]]] | None = None,
        ngram_orders: Sequence[int] = (1, 2),
        with_self_bleu: bool = True,
        bleu_smooth_method: str = "exp",
) -> DiversitySummary:
    """Compute PID/AID, distinct-n, self-BLEU and entropy for K samples per prompt.

    Args:
        texts_by_prompt: prompt key -> its samples in generation order (the first is used by AID).
        embeddings_by_prompt: prompt key -> (K, d) embeddings aligned with `texts_by_prompt[key]`.
        embed: alternatively, a function texts -> (n, d) embeddings (e.g. `Embedder.encode`); it is
            called once with every non-empty output. Give at most one of the two; with neither,
            PID/AID are skipped.
        logprobs_by_prompt: prompt key -> per-sample token log-probs aligned with the texts;
            with it, entropy metrics are added.
        ngram_orders: the n of distinct-n.
        with_self_bleu: self-BLEU costs K sentence-BLEUs per prompt; switch it off if not wanted.
        bleu_smooth_method: see `self_bleu`.

    Empty outputs (whitespace only) are dropped from every metric, consistently, and counted in
    `n_empty`; AID then uses the first *non-empty* sample of each prompt. Prompts left with too few
    samples are excluded per metric and counted. A metric with nothing left is recorded in `errors`.
    Shape mismatches between texts, embeddings and log-probs raise InputError.
    """
    if embeddings_by_prompt is not None and embed is not None:
        raise InputError("give embeddings_by_prompt or embed, not both", field="embed")
    keys = list(texts_by_prompt)
    kept_idx: dict[Hashable, list[int]] = {}
    kept_texts: dict[Hashable, list[str]] = {}
    n_samples = n_empty = 0
    for key in keys:
        texts = list(texts_by_prompt[key])
        n_samples += len(texts)
        idx = [i for i, t in enumerate(texts) if not _is_empty(t)]
        n_empty += len(texts) - len(idx)
        kept_idx[key] = idx
        kept_texts[key] = [texts[i] for i in idx]

    out = DiversitySummary(n_prompts=len(keys), n_samples=n_samples, n_empty=n_empty)

    def record(name: str, compute: Callable[[], PerPromptMean | Similarity]) -> None:
        try:
            res = compute()
        except NothingToMeasure as exc:  # bad data (NaN, zero rows, shapes) still raises
            out.errors[name] = str(exc)
            return
        if isinstance(res, Similarity):
            out.metrics[name] = res.similarity
        else:
            out.metrics[name] = res.value
        out.per_prompt[name] = res.per_prompt
        out.n_excluded[name] = res.n_excluded

    # Embedding similarity (PID / AID).
    emb_kept = _kept_embeddings(texts_by_prompt, kept_idx, kept_texts, embeddings_by_prompt, embed)
    if emb_kept is not None:
        record(PID_SIMILARITY, lambda: per_input_similarity(emb_kept))
        if PID_SIMILARITY in out.metrics:
            _add_diversity(out, PID_SIMILARITY, PID_DIVERSITY)
        firsts = {k: e[0] for k, e in emb_kept.items() if len(e)}
        no_first = sum(1 for e in emb_kept.values() if not len(e))
        record(AID_SIMILARITY, lambda: across_input_similarity(firsts))
        if AID_SIMILARITY in out.metrics:
            out.aid_embeddings.update({k: _unit(v) for k, v in firsts.items()})
            out.n_excluded[AID_SIMILARITY] = no_first
            _add_diversity(out, AID_SIMILARITY, AID_DIVERSITY)

    # Lexical diversity.
    for n in ngram_orders:
        record(distinct_key(n), lambda n=n: distinct_n_per_prompt(kept_texts, n))
        corpus = distinct_n([t for k in keys for t in kept_texts[k]], n)
        if corpus.n_total:
            out.metrics[corpus_distinct_key(n)] = corpus.value
        else:
            out.errors[corpus_distinct_key(n)] = f"no {n}-gram in any output"
    if with_self_bleu:
        record(SELF_BLEU, lambda: self_bleu_per_prompt(kept_texts, smooth_method=bleu_smooth_method))

    # Entropy.
    if logprobs_by_prompt is not None:
        _add_entropy(out, keys, texts_by_prompt, kept_idx, logprobs_by_prompt)
    return out


def _add_diversity(out: DiversitySummary, sim_key: str, div_key: str) -> None:
    out.metrics[div_key] = 1.0 - out.metrics[sim_key]
    out.per_prompt[div_key] = {k: 1.0 - v for k, v in out.per_prompt[sim_key].items()}
    out.n_excluded[div_key] = out.n_excluded[sim_key]


def _kept_embeddings(texts_by_prompt, kept_idx, kept_texts, embeddings_by_prompt, embed
                     ) -> dict[Hashable, np.ndarray] | None:
    """Embeddings of the non-empty outputs per prompt, or None when none were supplied."""
    if embeddings_by_prompt is not None:
        result: dict[Hashable, np.ndarray] = {}
        for key, idx in kept_idx.items():
            if key not in embeddings_by_prompt:
                raise InputError("no embeddings for this prompt", field=f"prompt {key!r}")
            arr = np.asarray(embeddings_by_prompt[key], dtype=np.float64)
            k = len(texts_by_prompt[key])
            if arr.ndim != 2 or arr.shape[0] != k:
                raise InputError(f"embeddings shape {arr.shape} does not match {k} samples",
                                 field=f"prompt {key!r}")
            result[key] = arr[idx]
        return result
    if embed is not None:
        flat = [t for key in kept_idx for t in kept_texts[key]]
        emb = np.asarray(embed(flat), dtype=np.float64) if flat else np.zeros((0, 1))
        if emb.ndim != 2 or emb.shape[0] != len(flat):
            raise InputError(f"embed returned shape {emb.shape} for {len(flat)} texts", field="embed")
        result, start = {}, 0
        for key in kept_idx:
            stop = start + len(kept_texts[key])
            result[key] = emb[start:stop]
            start = stop
        return result
    return None


def _add_entropy(out: DiversitySummary, keys, texts_by_prompt, kept_idx, logprobs_by_prompt) -> None:
    nats: dict[Hashable, float] = {}
    per_token: dict[Hashable, float] = {}
    excluded = 0
    for key in keys:
        if key not in logprobs_by_prompt:
            raise InputError("no log-probs for this prompt", field=f"prompt {key!r}")
        lps = list(logprobs_by_prompt[key])
        if len(lps) != len(texts_by_prompt[key]):
            raise InputError(f"{len(lps)} log-prob lists for {len(texts_by_prompt[key])} samples",
                             field=f"prompt {key!r}")
        # Same exclusion as the text metrics: an empty output is dropped even if it has tokens (EOS).
        kept = [lps[i] for i in kept_idx[key]]
        for i in kept_idx[key]:
            if len(lps[i]) == 0:
                raise InputError("non-empty output has no token log-probs",
                                 field=f"logprobs of prompt {key!r}[{i}]")
        if not kept:
            excluded += 1
            continue
        est = sequence_entropy(kept, field=f"logprobs of prompt {key!r}")
        nats[key], per_token[key] = est.nats, est.nats_per_token
    if not nats:
        out.errors[ENTROPY] = out.errors[ENTROPY_PER_TOKEN] = "no prompt has a non-empty sample"
        return
    for name, values in ((ENTROPY, nats), (ENTROPY_PER_TOKEN, per_token)):
        out.metrics[name] = float(np.mean(list(values.values())))
        out.per_prompt[name] = values
        out.n_excluded[name] = excluded
