"""The `reward` suite: K sampled continuations per prompt, each scored by a reward source, plus the
diversity of the same K samples.

The IMDB experiment of the DPO paper (Rafailov et al. 2023, §6.1) and the f-divergence DPO study
(Wang et al. 2023, arXiv 2309.16240) plot a sentiment reward of sampled continuations against their
per-prompt entropy: reward and diversity must come from the *same* samples, so this suite samples
once and measures both.

Prompt sets (`prompts`): packaged sets found through `evalbench.resources.asset("prompts", ...)`:

* `imdb`: 64 review openings ("The movie was", ...), completion-style: the raw text is sent as a
  completion prompt (no chat template) and the model continues the review;
* `movie_chat`: 64 chat prompts "Tell me what you think about the movie / film / book /
  restaurant number i." (the prompts of /work/shared/notes/demo-signal.md);
* `alpaca`, `mtbench`: the diversity suite's sets (chat);
* or a prompt file (JSONL with a `prompt` / `instruction` field and an optional `id`, a JSON list,
  or plain text; read by `evalbench.suites.diversity.read_prompt_file`, whose errors name the file,
  line and field). Files are chat prompts unless `prompt_style: completion`.

Stages (the contract of `evalbench.suites.base`):

* `generate`: one request per prompt with `n = k`, seeded `stable_hash(seed, prompt_id) % 2**31`
  exactly as the diversity suite (`request_seed`), so a generation seed gives the same samples every
  run and the cache serves a rerun; `one_request_per_sample` sends k requests with n = 1 instead.
* `score`: every sample is scored by the reward source (`scorer`, see `evalbench.score.rewards`);
  a text-only scorer reads the response, or prompt + response for completion prompts
  (`score_text: auto`), as the IMDB classifier reward reads the whole review. One SampleRecord per
  prompt: `scores[<reward metric>]` is the mean reward of its k samples, and the per-prompt
  diversity metrics of the diversity suite (computed by `evalbench.score.diversity`, the same
  functions): `distinct_<n>`, `entropy` / `entropy_per_token` (token log-probs), optionally
  `self_bleu` and, with an `embedder`, `pid_similarity` / `pid_diversity`. Each is a statistic of
  that prompt's own samples, so the summary (their mean over prompts) is a plain mean of
  independent per-prompt scores and the paired / hierarchical tests of `compare` apply directly.
  `data["rewards"]` keeps the k per-sample rewards (for `evalbench show`), `data["reward_errors"]`
  the reasons of unscored samples.
* `summarize` (pure): means over prompts, plus counts.

Exclusions are counted, never averaged in silently: every sample is rewarded, empty ones included
(an empty continuation is a sample of the policy, and dropping it would flatter it); diversity drops
empty outputs as the diversity suite does (`n_empty_outputs`). A prompt whose generation failed has
every score None and an `error`. AID (across prompts) is the diversity suite's; run both suites in one
run for it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from evalbench.config import SamplingSpec, Spec
from evalbench.errors import EvalbenchError, InputError, require
from evalbench.io import sha256_text
from evalbench.registry import Registry
from evalbench.score.rewards import REWARD, RewardItem, RewardScorer, RewardSpec, Scored
from evalbench.store import GenerationRecord, SampleRecord
from evalbench.suites.base import Checkpoint, Suite, SuiteContext
from evalbench.suites.diversity import PROMPT_SETS as DIVERSITY_PROMPT_SETS
from evalbench.suites.diversity import (
    Prompt,
    PromptSet,
    read_prompt_file,
    request_seed,
    select_prompts,
)
from evalbench.types import Generation, GenRequest

log = logging.getLogger(__name__)

SUITE = "reward"
N_PROMPTS = "n_prompts"
N_FAILED = "n_failed"
N_OUTPUTS = "n_outputs"
N_EMPTY = "n_empty_outputs"
N_UNSCORED = "n_unscored"
PromptStyle = Literal["chat", "completion"]


# --------------------------------------------------------------------------- prompt sets


def _packaged(name: str, file: str, style: PromptStyle):
    def load() -> tuple[PromptSet, PromptStyle]:
        from evalbench.resources import asset

        ps = read_prompt_file(asset("prompts", file))
        return PromptSet(name, ps.prompts, ps.files), style

    return load


def _diversity_set(name: str):
    def load() -> tuple[PromptSet, PromptStyle]:
        return DIVERSITY_PROMPT_SETS.get(name)(), "chat"

    return load


# name -> loader() -> (prompts, style). Anything else is read as a prompt file.
REWARD_PROMPT_SETS: Registry[Any] = Registry("prompt set")
REWARD_PROMPT_SETS.add("imdb", _packaged("imdb", "imdb_openings.jsonl", "completion"))
REWARD_PROMPT_SETS.add("movie_chat", _packaged("movie_chat", "movie_chat.jsonl", "chat"))
for _name in DIVERSITY_PROMPT_SETS.names():
    if _name not in REWARD_PROMPT_SETS:  # a set both suites name keeps its entry here (with its style)
        REWARD_PROMPT_SETS.add(_name, _diversity_set(_name))


def load_reward_prompts(source: str, style: PromptStyle | None = None) -> tuple[PromptSet, PromptStyle]:
    """A registered set (its own style unless `style` overrides it) or a prompt file (chat by default)."""
    if source in REWARD_PROMPT_SETS:
        prompts, own = REWARD_PROMPT_SETS.get(source)()
        return prompts, style or own
    if not Path(source).expanduser().is_file() and "/" not in source and "." not in source:
        from evalbench.registry import did_you_mean

        raise InputError(f"unknown prompt set '{source}'{did_you_mean(source, REWARD_PROMPT_SETS.names())} "
                         f"(known: {', '.join(REWARD_PROMPT_SETS.names())}; or give a prompt file)",
                         field="prompts")
    return read_prompt_file(source), style or "chat"


# --------------------------------------------------------------------------- options


class RewardOptions(Spec):
    """Options of the reward suite.

    Attributes:
        prompts: a prompt set (`imdb`, `movie_chat`, `alpaca`, `mtbench`) or a prompt file.
        prompt_style: `chat` or `completion`; default: the set's own (files: chat).
        n_prompts: how many prompts to draw with `prompt_seed` (None: all).
        k: samples per prompt (distinct-n, self-BLEU and PID need k >= 2).
        temperature, top_p, max_tokens: sampling; temperature 1 and top_p 1 keep the entropy valid.
        logprobs: ask for token log-probs (entropy metrics).
        one_request_per_sample: k requests with n = 1 and per-sample seeds, for endpoints that ignore n.
        system_prompt: a system message before each chat prompt.
        scorer: the reward source (`evalbench.score.rewards.RewardSpec`, or its shorthand string
            `vader`, `rm:PATH`, `classifier:PATH`).
        score_text: what a text-only scorer reads: `response`, `prompt_response`, or `auto`
            (prompt + response for completion prompts, the response for chat prompts).
        ngram_orders: the n of distinct-n; self_bleu: add per-prompt self-BLEU.
        embedder: a sentence embedder (as the diversity suite's) for PID; None: no PID.
    """

    prompts: str = "imdb"
    prompt_style: PromptStyle | None = None
    n_prompts: int | None = Field(None, ge=1)
    prompt_seed: int = 42
    k: int = Field(4, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(48, ge=1)
    logprobs: bool = True
    one_request_per_sample: bool = False
    system_prompt: str | None = None
    scorer: RewardSpec = RewardSpec()
    score_text: Literal["auto", "response", "prompt_response"] = "auto"
    ngram_orders: tuple[int, ...] = (1, 2)
    self_bleu: bool = False
    embedder: str | None = None
    embed_batch_size: int = Field(64, ge=1)

    @field_validator("ngram_orders")
    @classmethod
    def _orders(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(n < 1 for n in v) or len(set(v)) != len(v):
            raise ValueError(f"ngram_orders must be distinct integers >= 1, got {list(v)}")
        return v


def diversity_metric_names(options: RewardOptions) -> list[str]:
    """The per-prompt diversity metrics this suite reports (keys of the diversity suite)."""
    from evalbench.score import diversity as dv

    names: list[str] = []
    if options.embedder:
        names += [dv.PID_SIMILARITY, dv.PID_DIVERSITY]
    names += [dv.distinct_key(n) for n in options.ngram_orders]
    if options.self_bleu:
        names.append(dv.SELF_BLEU)
    if options.logprobs:
        names += [dv.ENTROPY, dv.ENTROPY_PER_TOKEN]
    return names


# --------------------------------------------------------------------------- helpers


def _merge(parts: Sequence[Generation]) -> Generation:
    """One Generation holding the choices of K single-sample answers; failed if any part failed."""
    errors = [g.error or "no outputs" for g in parts if not g.ok]
    if errors:
        return Generation(error=f"{len(errors)} of {len(parts)} samples failed: {errors[0]}")
    return Generation(choices=tuple(g.choices[0] for g in parts), cached=all(g.cached for g in parts))


def record_entropy(rec: GenerationRecord) -> tuple[float, float] | None:
    """(nats, nats per token) of a prompt's non-empty samples from the record's log-prob sums and
    token counts, by `evalbench.score.diversity.sequence_entropy` (as the diversity suite: each sample
    is handed over as `count` equal per-token values `sum / count`, the same sum and count); None when
    no sample is non-empty or a non-empty one has no log-probs."""
    from evalbench.score.diversity import NothingToMeasure, sequence_entropy

    kept = [i for i, t in enumerate(rec.outputs) if t.strip()]
    sums, counts = rec.logprob_sums, rec.token_counts
    if not kept or sums is None or counts is None or len(sums) != len(rec.outputs) \
            or len(counts) != len(rec.outputs) or any(sums[i] is None or not counts[i] for i in kept):
        return None
    try:
        est = sequence_entropy([[sums[i] / counts[i]] * int(counts[i]) for i in kept],
                               field=f"logprobs of prompt {rec.sample_id!r}")
    except NothingToMeasure:
        return None
    return est.nats, est.nats_per_token


# --------------------------------------------------------------------------- the rm source


class BradleyTerryScorer(RewardScorer):
    """An evalbench-trained reward model (`evalbench.train.reward`), on the chat-rendered
    (prompt, response), with the tokenization it was trained with."""

    def __init__(self, spec: RewardSpec):
        require("torch", "train")
        if not spec.model:
            raise InputError("reward source 'rm' needs a model: scorer: rm:PATH (an evalbench train --method rm "
                             "output directory)", field="scorer.model")
        if spec.read_out != "prob" or spec.label is not None or spec.contrast_label is not None:
            raise InputError("label / read_out / contrast_label apply to source 'classifier', not 'rm' "
                             "(a reward model has one scalar head)", field="scorer")
        from evalbench.train.reward import load_reward_model

        self.spec = spec
        self.rm = load_reward_model(spec.model, device=spec.device)
        self.metric = spec.metric or REWARD

    def identity(self) -> dict[str, Any]:
        return {"source": "rm", "metric": self.metric, **self.rm.who}

    def score(self, items: Sequence[RewardItem]) -> Scored:
        from evalbench.train.reward import score_items

        pairs = [(list(it.prompt), ({"role": "assistant", "content": it.response},)) for it in items]
        values = score_items(self.rm, pairs, batch_size=self.spec.batch_size)
        return Scored([float(v) for v in values])


def bradley_terry_scorer(spec: RewardSpec) -> BradleyTerryScorer:
    return BradleyTerryScorer(spec)


# --------------------------------------------------------------------------- the suite


class RewardSuite(Suite):
    """Reward (and diversity) of K samples per prompt; see the module docstring.

    Args:
        options: RewardOptions.
        scorer: a ready RewardScorer instead of building `options.scorer` (tests, or one shared
            between suites).
        embedder: a ready embedder (`encode`, `provenance`) instead of loading `options.embedder`.
    """

    name = SUITE
    version = "1"
    needs_judge = False
    Options = RewardOptions

    def __init__(self, options: RewardOptions | None = None, *, scorer: RewardScorer | None = None,
                 embedder: Any | None = None):
        super().__init__(options)
        self.options: RewardOptions
        self._scorer = scorer
        self._embedder = embedder
        self._prompts: tuple[PromptSet, PromptStyle] | None = None
        o = self.options
        if o.logprobs and (o.temperature != 1.0 or o.top_p != 1.0):
            log.warning("reward: temperature=%s top_p=%s: the log-prob 'entropy' is a cross-entropy, not an "
                        "entropy estimate (use temperature 1.0 and top_p 1.0)", o.temperature, o.top_p)

    # -- inputs ---------------------------------------------------------------------------------

    @property
    def prompt_set(self) -> PromptSet:
        return self._load_prompts()[0]

    @property
    def style(self) -> PromptStyle:
        return self._load_prompts()[1]

    def _load_prompts(self) -> tuple[PromptSet, PromptStyle]:
        if self._prompts is None:
            self._prompts = load_reward_prompts(self.options.prompts, self.options.prompt_style)
        return self._prompts

    def prompts(self, limit: int | None = None) -> list[Prompt]:
        o = self.options
        chosen = select_prompts(self.prompt_set.prompts, o.n_prompts, o.prompt_seed)
        return chosen[:limit] if limit is not None else chosen

    @property
    def scorer(self) -> RewardScorer:
        """The reward scorer, built on first use (loads its model) and kept for this suite instance."""
        if self._scorer is None:
            from evalbench.score.rewards import build_scorer

            self._scorer = build_scorer(self.options.scorer)
        return self._scorer

    @property
    def metric(self) -> str:
        """The reward metric key (the source's default unless `scorer.metric` renames it)."""
        if self._scorer is not None:
            return self._scorer.metric
        from evalbench.score.rewards import REWARD, REWARD_PROB, VADER_COMPOUND

        s = self.options.scorer
        return s.metric or {"vader": VADER_COMPOUND, "rm": REWARD}.get(
            s.source, REWARD_PROB if s.read_out == "prob" and s.source == "classifier" else REWARD)

    @property
    def embedder(self):
        if self._embedder is None and self.options.embedder:
            from evalbench.score.embedders import load_embedder

            self._embedder = load_embedder(self.options.embedder, batch_size=self.options.embed_batch_size)
        return self._embedder

    def data_files(self) -> list[Path]:
        """The prompt file, and the reward model's files when it is a local directory."""
        files = list(self.prompt_set.files)
        model = self.options.scorer.model
        if model and Path(model).expanduser().is_dir():
            files += sorted(p for p in Path(model).expanduser().rglob("*") if p.is_file())
        return files

    def check(self, model: str, artifacts: Path, limit: int | None = None) -> None:
        """Before any engine starts: the prompts load, and the reward source is known and has its
        model (the model itself loads at scoring, after generation)."""
        from evalbench.registry import did_you_mean
        from evalbench.score.rewards import REWARD_SOURCES

        if not self.prompts(limit):
            raise InputError(f"prompt set {self.prompt_set.name} selects no prompts", field="prompts")
        s = self.options.scorer
        if s.source not in REWARD_SOURCES:
            raise InputError(f"unknown reward source '{s.source}'{did_you_mean(s.source, REWARD_SOURCES.names())} "
                             f"(known: {', '.join(REWARD_SOURCES.names())})", field="suite_options.reward.scorer")
        if s.source in ("rm", "classifier") and not s.model:
            raise InputError(f"reward source '{s.source}' needs a model: scorer: {s.source}:PATH",
                             field="suite_options.reward.scorer.model")

    def provenance(self) -> dict[str, Any]:
        chosen = self.prompts()
        return {"scorer": self.scorer.identity(), "prompt_style": self.style,
                "prompts": {"source": self.prompt_set.name, "n_selected": len(chosen),
                            "ids": [p.id for p in chosen],
                            "sha256": sha256_text("\n".join(f"{p.id}\t{p.text}" for p in chosen))}}

    def request(self, prompt: Prompt, n: int, seed: int) -> GenRequest:
        """The GenRequest of one prompt: a completion of the raw text, or a chat turn."""
        o = self.options
        sampling = SamplingSpec(temperature=o.temperature, top_p=o.top_p, max_tokens=o.max_tokens, n=n,
                                seed=seed, logprobs=o.logprobs)
        if self.style == "completion":
            return GenRequest(prompt=prompt.text, sampling=sampling)
        msgs = [{"role": "user", "content": prompt.text}]
        if o.system_prompt:
            msgs.insert(0, {"role": "system", "content": o.system_prompt})
        return GenRequest(messages=tuple(msgs), sampling=sampling)

    # -- stage 1: generate ----------------------------------------------------------------------

    def generate(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int) -> list[GenerationRecord]:
        """K samples per selected prompt; one GenerationRecord per prompt."""
        from evalbench.generate.stage import Item, to_record

        prompts = self.prompts(ctx.limit)
        o = self.options
        desc = f"{SUITE} [{checkpoint.name} seed {seed}]"
        backend = checkpoint.backend
        if backend is None:
            raise EvalbenchError(f"{SUITE}: checkpoint {checkpoint.name} has no backend to generate with")
        if not o.one_request_per_sample or o.k == 1:
            items = [Item(p.id, self.request(p, o.k, request_seed(seed, p.id))) for p in prompts]
            gens = backend.generate([it.request for it in items], desc=desc)
            records = [to_record(SUITE, checkpoint.name, seed, it, g, backend.key(it.request))
                       for it, g in zip(items, gens)]
        else:
            requests = [self.request(p, 1, request_seed(seed, p.id, j)) for p in prompts for j in range(o.k)]
            gens = backend.generate(requests, desc=desc)
            records = []
            for i, p in enumerate(prompts):
                first = requests[i * o.k]
                rec = to_record(SUITE, checkpoint.name, seed, Item(p.id, first), _merge(gens[i * o.k:(i + 1) * o.k]),
                                backend.key(first))
                sampling = {k: v for k, v in rec.sampling.items() if k != "seed"}
                records.append(rec.model_copy(update={
                    "sampling": {**sampling, "seeds": [request_seed(seed, p.id, j) for j in range(o.k)]},
                    "cache_key": None}))
        failed = sum(r.error is not None for r in records)
        if failed:
            log.warning("%s: %d of %d prompts failed to generate (rerun to retry them)", desc, failed, len(records))
        return records

    # -- stage 2: score -------------------------------------------------------------------------

    def _item(self, prompt: Prompt, response: str) -> RewardItem:
        mode = self.options.score_text
        if mode == "auto":
            mode = "prompt_response" if self.style == "completion" else "response"
        # A completion continues the opening, so the review is the plain concatenation.
        text = prompt.text + response if mode == "prompt_response" else response
        return RewardItem(prompt=({"role": "user", "content": prompt.text},), response=response, text=text)

    def score(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int,
              generations: Sequence[GenerationRecord]) -> list[SampleRecord]:
        """Per-prompt mean reward and diversity of one checkpoint x seed.

        Raises InputError for generation records of another suite / checkpoint / seed or of a
        prompt that is not among the selected ones.
        """
        from evalbench.score import diversity as dv

        o = self.options
        prompts = self.prompts(ctx.limit)
        by_prompt = {p.id: p for p in prompts}
        by_id: dict[str, GenerationRecord] = {}
        for rec in generations:
            if (rec.suite, rec.checkpoint, rec.seed) != (SUITE, checkpoint.name, seed):
                raise InputError(f"generation record of ({rec.suite}, {rec.checkpoint}, seed {rec.seed}) "
                                 f"given to score ({SUITE}, {checkpoint.name}, seed {seed})", field="generations")
            if rec.sample_id not in by_prompt:
                raise InputError(f"generation for prompt id {rec.sample_id!r}, which is not among the "
                                 f"{len(prompts)} selected prompts (options changed since generation?)",
                                 field="generations")
            by_id[rec.sample_id] = rec
        texts = {pid: list(rec.outputs) for pid, rec in by_id.items() if rec.error is None and rec.outputs}

        # Rewards: one batch for every sample of the unit.
        flat = [(pid, j) for pid in texts for j in range(len(texts[pid]))]
        scored = self.scorer.score([self._item(by_prompt[pid], texts[pid][j]) for pid, j in flat]) if flat else None
        rewards: dict[str, list[float | None]] = {pid: [None] * len(t) for pid, t in texts.items()}
        reward_errors: dict[str, list[str]] = {}
        if scored is not None:
            if len(scored.values) != len(flat):
                raise EvalbenchError(f"reward scorer returned {len(scored.values)} scores for {len(flat)} samples")
            for i, ((pid, j), v) in enumerate(zip(flat, scored.values)):
                rewards[pid][j] = v
                if i in scored.errors:
                    reward_errors.setdefault(pid, []).append(f"sample {j}: {scored.errors[i]}")

        # Diversity of the same samples, with the diversity suite's functions.
        div_names = diversity_metric_names(o)
        summary = None
        entropy: dict[str, tuple[float, float]] = {}
        if texts and div_names:
            embeddings = self._embed(texts) if o.embedder else None
            summary = dv.diversity_summary(texts, embeddings_by_prompt=embeddings, ngram_orders=o.ngram_orders,
                                           with_self_bleu=o.self_bleu)
            if o.logprobs:
                entropy = {pid: e for pid in texts if (e := record_entropy(by_id[pid])) is not None}

        metric = self.scorer.metric
        names = [metric, *div_names]
        records = []
        for p in prompts:
            rec = by_id.get(p.id)
            if p.id not in texts:
                why = "no generation for this prompt" if rec is None else \
                    f"generation failed: {rec.error or 'no outputs'}"
                records.append(SampleRecord(suite=SUITE, checkpoint=checkpoint.name, seed=seed, sample_id=p.id,
                                            scores={m: None for m in names}, error=why,
                                            data={N_OUTPUTS: 0, N_EMPTY: 0}))
                continue
            outs = texts[p.id]
            got = [v for v in rewards[p.id] if v is not None]
            scores: dict[str, float | None] = {metric: float(np.mean(got)) if got else None}
            for m in div_names:
                if m in (dv.ENTROPY, dv.ENTROPY_PER_TOKEN):
                    pair = entropy.get(p.id)
                    scores[m] = None if pair is None else pair[0 if m == dv.ENTROPY else 1]
                else:
                    scores[m] = summary.per_prompt.get(m, {}).get(p.id) if summary is not None else None
            data: dict[str, Any] = {"rewards": rewards[p.id], "reward_metric": metric, N_OUTPUTS: len(outs),
                                    N_EMPTY: sum(1 for t in outs if not t.strip())}
            if p.id in reward_errors:
                data["reward_errors"] = reward_errors[p.id]
            error = None if got else "no sample could be scored: " + "; ".join(reward_errors.get(p.id, [])[:2])
            records.append(SampleRecord(suite=SUITE, checkpoint=checkpoint.name, seed=seed, sample_id=p.id,
                                        scores=scores, error=error, data=data))
        ctx.header.setdefault("reward", {"scorer": self.scorer.identity(), "prompt_style": self.style,
                                         "prompts": self.prompt_set.name})
        return records

    def _embed(self, texts: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
        """(K, d) embeddings per prompt; empty outputs get zero rows (diversity_summary drops them)."""
        flat = [(pid, i, t) for pid, outs in texts.items() for i, t in enumerate(outs) if t.strip()]
        emb = np.asarray(self.embedder.encode([t for _, _, t in flat]), dtype=np.float64) if flat else np.zeros((0, 1))
        dim = emb.shape[1] if emb.ndim == 2 and len(emb) else 1
        out = {pid: np.zeros((len(outs), dim)) for pid, outs in texts.items()}
        for (pid, i, _), row in zip(flat, emb):
            out[pid][i] = row
        return out

    # -- stage 3: summarize ---------------------------------------------------------------------

    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        """Mean over prompts of every per-prompt score (None where no prompt has one), plus counts:
        `n_prompts`, `n_failed` (records with an error), `n_outputs`, `n_empty_outputs`,
        `n_unscored` (samples the reward source could not score). Pure."""
        units = {(s.suite, s.checkpoint, s.seed) for s in samples}
        if len(units) > 1:
            raise InputError(f"summarize one suite x checkpoint x seed at a time, got {sorted(units, key=str)}",
                             field="samples")
        # The metric the records were scored under (a programmatic source names its own).
        metric = next((s.data["reward_metric"] for s in samples if s.data.get("reward_metric")), self.metric)
        keys = list(dict.fromkeys([metric, *diversity_metric_names(self.options),
                                   *sorted({k for s in samples for k in s.scores})]))
        out: dict[str, float | int | None] = {}
        for key in keys:
            values = [v for s in samples if (v := s.scores.get(key)) is not None and math.isfinite(v)]
            out[key] = float(np.mean(values)) if values else None
        out[N_PROMPTS] = len(samples)
        out[N_FAILED] = sum(s.error is not None for s in samples)
        out[N_OUTPUTS] = int(sum(int(s.data.get(N_OUTPUTS, 0)) for s in samples))
        out[N_EMPTY] = int(sum(int(s.data.get(N_EMPTY, 0)) for s in samples))
        out[N_UNSCORED] = int(sum(sum(1 for v in s.data.get("rewards", []) if v is None) for s in samples
                                  if s.error is None))
        return out


__all__ = ["REWARD_PROMPT_SETS", "SUITE", "BradleyTerryScorer", "RewardOptions", "RewardSuite", "bradley_terry_scorer",
           "diversity_metric_names",
           "load_reward_prompts"]
