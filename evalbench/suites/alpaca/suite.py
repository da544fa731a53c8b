"""The AlpacaEval 2 suite: generate answers, judge them pairwise against gpt-4-1106-preview, summarise.

    generate  one chat request per instruction (the server applies the tokenizer's chat template),
              through `checkpoint.backend` (cached); writes alpaca_eval's model_outputs.json into
              run.artifacts/alpaca/<checkpoint>/seed<k>/ with the decoding parameters beside it.
    score     one weighted pairwise judgment per instruction through `ctx.judge` (cached; see
              `evalbench.suites.alpaca.judge`), the length-controlled GLM over the judged rows, one
              SampleRecord per instruction and alpaca_eval's annotations.json.
    summarize the leaderboard's columns from the SampleRecords (pure).

SampleRecord (sample_id = eval-set row index as a string) scores, chosen so that the mean over
samples is the summary metric (docs/results-format.md, "Paired tests"):
`win_rate` = 100·(preference − 1); `preference` (in [1, 2], 2 = the checkpoint wins); `length`
(characters of the output).

The length-controlled win rate is a GLM fitted to all instructions at once (Dubois et al. 2024), so
its per-instruction predictions are not independent observations and carry no per-sample score
(a paired test on them flagged 97.5 % of null comparisons). Each record's `data` keeps what the
summary and the resampler need: `lc_glm_preference` (the GLM's predicted preference for that
instruction at zero length difference, in [0, 1]; the LC win rate is 100 x their mean),
`lc_C` (the L1 strength cross-validation chose), `lc_coef` (the fitted coefficients),
`len_reference` and `instruction_difficulty`. Significance tests refit the GLM per prompt resample
(`evalbench.suites.alpaca.resample`, registered as the derived metric
`alpaca:length_controlled_winrate`). Records written before this change carried the prediction
as the score `length_controlled_winrate`; `summarize` and the resampler read both layouts.

Metric names and definitions are the leaderboard's (`evalbench.score.winrate`). A failed generation
or judgment is a SampleRecord with null scores and an `error`; it is counted in `n_failed` and left
out of `n_total` and of every average, as alpaca_eval leaves unannotated rows out. Empty outputs are
judged like any other answer (an empty answer should lose, not vanish) and counted in
`n_empty_outputs`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic import Field, field_validator

from evalbench.config import SamplingSpec, Spec
from evalbench.errors import EvalbenchError, InputError
from evalbench.generate.stage import Item, generate_items, to_record
from evalbench.io import stable_hash, write_json_atomic
from evalbench.sampling import describe_subset, stratified_subset
from evalbench.score.winrate import (
    LC_FEATURES,
    LC_METRICS,
    LEADERBOARD_METRICS,
    length_controlled_winrate,
    win_rate_metrics,
)
from evalbench.store import GenerationRecord, SampleRecord
from evalbench.suites.alpaca.data import ModelOutput, read_model_outputs, write_model_outputs
from evalbench.judge.base import Judge, as_judge
from evalbench.judge.repeats import merge_repeats
from evalbench.suites.alpaca.judge import (
    JudgePrompt,
    Judgment,
    Pair,
    annotation_row,
    judge_pairs,
    resolve_prompt,
)
from evalbench.suites.base import Checkpoint, Suite, SuiteContext
from evalbench.types import GenRequest

log = logging.getLogger(__name__)

__all__ = [
    "SUMMARY_KEYS",
    "AlpacaEval2",
    "AlpacaOptions",
    "EvalRow",
    "LcFit",
    "artifact_dir",
    "lc_predictions",
    "lc_values",
    "score_rows",
    "summarize_samples",
]

# Keys of `summarize`, in the leaderboard CSV's order plus our failure counts.
SUMMARY_KEYS: tuple[str, ...] = (*LEADERBOARD_METRICS, *LC_METRICS, "n_failed", "n_empty_outputs")


class AlpacaOptions(Spec):
    """Options of the alpaca suite (all recorded in the run's spec)."""

    # The first N instructions of the selection (positional, as the leaderboard scores positionally).
    limit: int | None = Field(None, ge=1)
    # Eval-set row indices (0-based) to evaluate instead of all of them, in this order.
    instructions: tuple[int, ...] | None = None
    # A model_outputs.json-format file of instructions + reference outputs replacing the AlpacaEval 2
    # set (gpt4_1106_preview). LC needs the instructions to be AlpacaEval 2's (matched by content).
    eval_set: str | None = None
    # Decoding of the evaluated checkpoint; greedy (0) ignores the generation seed.
    max_new_tokens: int = Field(2048, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # alpaca_eval strips leading/trailing whitespace of generated outputs (is_strip_output).
    strip_outputs: bool = True
    # A ChatML prompt file with {instruction}, {output_1}, {output_2}; default: the installed
    # alpaca_eval's weighted_alpaca_eval_gpt4_turbo prompt.
    judge_prompt: str | None = None
    # Cut each output shown to the judge to this many characters (small-context local judges);
    # None shows them whole, as the leaderboard does. Lengths for LC are always the full outputs.
    judge_max_output_chars: int | None = Field(None, ge=1)
    # Seed of the per-instruction presentation order; the same for every checkpoint and seed, so
    # order effects cancel in paired comparisons.
    judge_order_seed: int = 0
    # Judge every output this many times (judge noise; docs/statistics.md): repeat r >= 1 shows the
    # pair in the opposite order of repeat r - 1, with its own judge seed. The record's scores are
    # the means over repeats, the individual values are in data["judge_repeats"]. 1: one judgment.
    judge_repeats: int = Field(1, ge=1)

    @field_validator("instructions")
    @classmethod
    def _indices(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("instructions must list at least one index")
        if any(i < 0 for i in v):
            raise ValueError("instruction indices must be >= 0")
        if len(set(v)) != len(v):
            raise ValueError("instruction indices must not repeat")
        return v


@dataclass(frozen=True)
class EvalRow:
    """One instruction of the eval set with its reference output."""

    index: int                   # position in the eval set: the sample_id
    instruction: str
    reference: str
    dataset: str | None = None
    generator: str = "gpt4_1106_preview"


def artifact_dir(ctx: SuiteContext, checkpoint: str, seed: int) -> Path:
    """run.artifacts/alpaca/<checkpoint>/seed<k>/ (a '/' in a served name becomes '__')."""
    return ctx.artifacts / "alpaca" / checkpoint.replace("/", "__") / f"seed{seed}"


class LcFit(NamedTuple):
    """The `length_controlled_v1` GLM of one checkpoint x seed, per row of the eval selection."""

    glm_preference: np.ndarray  # predicted preference at zero length difference in [0, 1]; NaN: unjudged
    C: float                    # inverse L1 strength chosen by cross-validation
    coef: tuple[float, ...]     # fitted coefficients, in LC_FEATURES order


def lc_predictions(preferences: Sequence[float | None], len_model: Sequence[int], len_reference: Sequence[int],
                   difficulty: np.ndarray | None) -> tuple[LcFit | None, str | None]:
    """The LC GLM's per-row predictions (in [0, 1]) with its C and coefficients, or (None, reason).

    Rows with a None preference are left out of the fit and get NaN. The gamed-baseline rows come
    from the benchmark data (`load_gamed_rows`).
    """
    from evalbench.suites.alpaca.data import load_gamed_rows

    prefs = np.asarray([math.nan if p is None else p for p in preferences], dtype=float)
    out = np.full(len(prefs), math.nan)
    judged = ~np.isnan(prefs)
    if difficulty is None:
        return None, "no instruction difficulty for these instructions"
    if judged.sum() < 2:
        return None, "fewer than 2 judged rows"
    try:
        gamed = load_gamed_rows()
        res = length_controlled_winrate(prefs[judged], np.asarray(len_model, dtype=float)[judged],
                                        np.asarray(len_reference, dtype=float)[judged],
                                        np.asarray(difficulty, dtype=float)[judged], gamed)
    except (ValueError, EvalbenchError) as exc:
        return None, str(exc)
    out[judged] = res.glm_preference
    return LcFit(out, res.C, tuple(res.weights[k] for k in LC_FEATURES)), None


def score_rows(judge, rows: Sequence[EvalRow], outputs: Sequence[str | None], *, prompt: JudgePrompt,
               checkpoint: str, seed: int, difficulty: np.ndarray | None, generation_errors:
               Sequence[str | None] | None = None, constrained: bool = False, order_seed: int = 0,
               max_output_chars: int | None = None, annotator: str | None = None, judge_repeats: int = 1
               ) -> tuple[list[SampleRecord], list[dict[str, Any]]]:
    """Judge `outputs` (one per row; None = no output) against the rows' references.

    Returns the SampleRecords (one per row, failures included) and alpaca_eval annotation rows (one
    per row that has an output). `difficulty` is aligned with `rows` (None: LC is not derivable).

    With `judge_repeats` k > 1 every output is judged k times (`judge_pairs(repeat=r)`: alternating
    presentation order, a judge seed per repeat); a record's `preference` / `win_rate` are the means
    over its valid repeats (the LC GLM is fitted to those means), `data["judge_repeats"]` holds the
    k values of each, `data["judge_repeat_switched"]` the order of each repeat and
    `data["judge_repeat_errors"]` the reasons of failed ones. The annotation rows are repeat 0's,
    so annotations.json stays one alpaca_eval row per instruction.
    """
    errors = list(generation_errors) if generation_errors is not None else [None] * len(rows)
    todo = [i for i, out in enumerate(outputs) if out is not None]
    pairs = [Pair(rows[i].instruction, rows[i].reference, outputs[i]) for i in todo]  # type: ignore[arg-type]
    # repeats[r][i]: row i's judgment in repeat r (None: no output to judge).
    repeats: list[list[Judgment | None]] = []
    for r in range(judge_repeats):
        judged: list[Judgment | None] = [None] * len(rows)
        label = f" repeat {r + 1}/{judge_repeats}" if judge_repeats > 1 else ""
        for i, j in zip(todo, judge_pairs(judge, pairs, prompt, seed=order_seed, constrained=constrained,
                                          max_output_chars=max_output_chars, repeat=r,
                                          desc=f"alpaca judge [{checkpoint} seed {seed}{label}]")):
            judged[i] = j
        repeats.append(judged)
    judgments = repeats[0]
    merged = [_merge_row_repeats([rep[i] for rep in repeats]) for i in range(len(rows))]
    prefs = [m[0]["preference"] for m in merged]
    lengths = [len(o) if o is not None else 0 for o in outputs]
    lc, lc_error = lc_predictions(prefs, lengths, [len(r.reference) for r in rows], difficulty)
    if lc_error:
        log.warning("alpaca [%s seed %d]: no length-controlled win rate (%s)", checkpoint, seed, lc_error)
    samples: list[SampleRecord] = []
    annotations: list[dict[str, Any]] = []
    annotator = annotator or prompt.name
    for i, row in enumerate(rows):
        out, j = outputs[i], judgments[i]
        scores, repeat_data = merged[i]
        pref = scores["preference"]
        if out is None:
            error = f"no output: {errors[i] or 'generation missing'}"
        elif j is not None and pref is None:  # every repeat failed (with one repeat: it failed)
            error = f"judge: {j.error}"
        else:
            error = None
        data: dict[str, Any] = {"index": row.index, "dataset": row.dataset, "len_reference": len(row.reference),
                                "instruction_difficulty": None if difficulty is None else float(difficulty[i])}
        if lc is not None and not math.isnan(lc.glm_preference[i]):
            data.update(lc_glm_preference=float(lc.glm_preference[i]), lc_C=lc.C, lc_coef=list(lc.coef))
        if j is not None:
            data.update(is_switched_outputs=j.is_switched_outputs, judged=j.judged, judge_cached=j.cached,
                        empty_output=not out.strip())
        if lc_error:
            data["lc_error"] = lc_error
        data.update(repeat_data)
        samples.append(SampleRecord(
            suite="alpaca", checkpoint=checkpoint, seed=seed, sample_id=str(row.index),
            scores={"win_rate": scores["win_rate"], "preference": pref,
                    "length": None if out is None else float(len(out))},
            error=error, data=data))
        if out is not None and j is not None:
            annotations.append(annotation_row(Pair(row.instruction, row.reference, out), j,
                                              generator_1=row.generator, generator_2=checkpoint,
                                              dataset=row.dataset, annotator=annotator))
    return samples, annotations


def _merge_row_repeats(judgments: Sequence[Judgment | None]) -> tuple[dict[str, float | None], dict[str, Any]]:
    """One row's scores over its judge repeats (`evalbench.judge.repeats.merge_repeats`).

    The win rate of a repeat is computed from its own preference, so the mean win rate is exactly
    100 x (mean preference - 1). Rows without an output (all None) have no repeat data.
    """
    per_repeat = [{"preference": None if j is None else j.preference,
                   "win_rate": None if j is None or j.preference is None else 100.0 * (j.preference - 1.0)}
                  for j in judgments]
    scores, data = merge_repeats(per_repeat)
    if data and all(j is not None for j in judgments):
        data["judge_repeat_switched"] = [j.is_switched_outputs for j in judgments]  # type: ignore[union-attr]
        failed = [j.error for j in judgments if j is not None and j.error]
        if failed:
            data["judge_repeat_errors"] = failed
    elif data:  # no output: nothing was judged
        data = {}
    return scores, data


def _sem(values: np.ndarray) -> float | None:
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def summarize_samples(samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
    """The leaderboard columns (SUMMARY_KEYS) from one checkpoint x seed's SampleRecords. Pure.

    `win_rate` ... `avg_length` as `evalbench.score.winrate.win_rate_metrics` (failed rows left
    out; `avg_length` over every output, judged or not); `length_controlled_winrate` = 100 x the
    mean of the per-instruction GLM predictions (`data["lc_glm_preference"]`, or the per-sample score
    of records written before it moved there) and `lc_standard_error` their SEM x 100 (the library's
    definition); metrics that cannot be computed (no valid judgment, a single one for a standard
    error) are None.
    """
    out: dict[str, float | int | None] = {k: None for k in SUMMARY_KEYS}
    prefs = np.asarray([math.nan if s.scores.get("preference") is None else s.scores["preference"]
                        for s in samples], dtype=float)
    lengths = [s.scores["length"] for s in samples if s.scores.get("length") is not None]
    out["n_failed"] = sum(1 for s in samples if s.error is not None)
    out["n_empty_outputs"] = sum(1 for s in samples if s.data.get("empty_output"))
    out["n_total"] = int((~np.isnan(prefs)).sum())
    if out["n_total"] and lengths:
        metrics = win_rate_metrics(prefs, lengths)
        out.update({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()})
    lc = lc_values(samples)
    if len(lc):
        out["length_controlled_winrate"] = float(lc.mean())
        out["lc_standard_error"] = _sem(lc)
    return out


def lc_values(samples: Sequence[SampleRecord]) -> np.ndarray:
    """100 x each record's LC GLM prediction, for the records that have one (either record layout)."""
    values = [100.0 * s.data["lc_glm_preference"] if s.data.get("lc_glm_preference") is not None
              else s.scores.get("length_controlled_winrate") for s in samples]
    return np.asarray([v for v in values if v is not None], dtype=float)


class AlpacaEval2(Suite):
    """AlpacaEval 2 (Dubois et al. 2024): 805 instructions, weighted GPT-4-turbo-style judge vs gpt4_1106_preview."""

    name = "alpaca"
    version = "1"
    needs_judge = True
    Options = AlpacaOptions

    def __init__(self, options: AlpacaOptions | None = None):
        super().__init__(options)
        self.options: AlpacaOptions
        self._eval_set: list[ModelOutput] | None = None
        self._prompt: JudgePrompt | None = None
        self._difficulty: tuple[np.ndarray | None, str | None] | None = None
        self._described_limit: int | None = None
        self._said_partial = False  # "evaluating N of 805" once per suite object, not once per unit

    # -- data -----------------------------------------------------------------------------------

    def eval_set_path(self) -> Path:
        from evalbench.data import resolve
        from evalbench.suites.alpaca.data import EVAL_SET

        if self.options.eval_set is not None:
            path = Path(self.options.eval_set)
            if not path.exists():
                raise InputError("eval set file not found", path=path, field="eval_set")
            return path
        relpath, hub = EVAL_SET
        return resolve(relpath, hub=hub)

    def eval_set(self) -> list[ModelOutput]:
        if self._eval_set is None:
            self._eval_set = read_model_outputs(self.eval_set_path())
        return self._eval_set

    def data_files(self) -> list[Path]:
        from evalbench.data import resolve
        from evalbench.suites.alpaca.data import GAMED_ROWS, INSTRUCTION_DIFFICULTY

        files = [self.eval_set_path()]
        for relpath, hub in (INSTRUCTION_DIFFICULTY, GAMED_ROWS):
            try:
                files.append(resolve(relpath, hub=hub))
            except EvalbenchError as exc:  # LC inputs are optional: the run reports LC as None
                log.warning("alpaca: %s", exc)
        if self.options.judge_prompt is not None:
            files.append(Path(self.options.judge_prompt))
        return files

    def rows(self, limit: int | None = None) -> list[EvalRow]:
        """The selected instructions: `instructions` (or all), then a stratified `limit` of them.

        The effective limit is the smaller of the option and the run's `limit` argument; the subset
        is seeded, stratified over the eval set's sub-datasets and nested as the limit grows
        (`evalbench.sampling`), so a quick run covers every sub-dataset instead of the first one.
        """
        data = self.eval_set()
        indices = list(self.options.instructions) if self.options.instructions is not None else list(range(len(data)))
        bad = [i for i in indices if i >= len(data)]
        if bad:
            raise InputError(f"instruction index {bad[0]} is out of range (the eval set has {len(data)} rows)",
                             field="instructions")
        limits = [x for x in (limit, self.options.limit) if x is not None]
        if limits and min(limits) < len(indices):
            strata = [data[i].dataset or "all" for i in indices]
            chosen = stratified_subset(indices, strata, min(limits))
            if self._described_limit != min(limits):  # once per suite object, not per call
                self._described_limit = min(limits)
                log.info("alpaca: --limit %d: %s", min(limits), describe_subset(strata, chosen, len(indices)))
            indices = [indices[pos] for pos in chosen]
        return [EvalRow(i, data[i].instruction, data[i].output, data[i].dataset, data[i].generator) for i in indices]

    def prompt(self) -> JudgePrompt:
        if self._prompt is None:
            self._prompt = resolve_prompt(self.options.judge_prompt)
        return self._prompt

    def _official_difficulty(self) -> tuple[np.ndarray | None, str | None]:
        """Difficulty per eval-set row (by position), or None with the reason."""
        if self._difficulty is None:
            from evalbench.suites.alpaca.data import load_eval_set, load_instruction_difficulty

            try:
                table = load_instruction_difficulty()
                if self.options.eval_set is None:
                    self._difficulty = (table, None)
                else:  # a custom eval set: map its instructions to AlpacaEval 2's by content
                    where = {r.instruction: i for i, r in enumerate(load_eval_set())}
                    pos = [where.get(r.instruction) for r in self.eval_set()]
                    self._difficulty = (np.asarray([math.nan if p is None else table[p] for p in pos]), None)
            except EvalbenchError as exc:
                self._difficulty = (None, str(exc))
        return self._difficulty

    def difficulty(self, rows: Sequence[EvalRow]) -> np.ndarray | None:
        table, reason = self._official_difficulty()
        if table is None:
            log.warning("alpaca: no instruction difficulty (%s); LC will be None", reason)
            return None
        values = np.asarray([table[r.index] if r.index < len(table) else math.nan for r in rows], dtype=float)
        if np.isnan(values).any():
            log.warning("alpaca: %d instruction(s) are not AlpacaEval 2 instructions; LC will be None",
                        int(np.isnan(values).sum()))
            return None
        return values

    # -- stages ---------------------------------------------------------------------------------

    def sampling(self, seed: int, sample_id: str) -> SamplingSpec:
        """Decoding for one instruction; the sampling seed is derived from (seed, sample_id)."""
        o = self.options
        # Greedy decoding ignores the seed: leave it out so every seed shares one cache entry.
        derived = None if o.temperature == 0 else stable_hash("alpaca", seed, sample_id) % (2 ** 31 - 1)
        return SamplingSpec(temperature=o.temperature, top_p=o.top_p, max_tokens=o.max_new_tokens, seed=derived)

    def items(self, rows: Sequence[EvalRow], seed: int) -> list[Item]:
        # One user turn; the server applies the model's own chat template (tokenizer_config.json).
        return [Item(str(r.index), GenRequest(messages=({"role": "user", "content": r.instruction},),
                                              sampling=self.sampling(seed, str(r.index)))) for r in rows]

    def _output(self, record: GenerationRecord) -> str | None:
        if record.error is not None or not record.outputs:
            return None
        text = record.outputs[0]
        return text.strip() if self.options.strip_outputs else text

    def generate(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int) -> list[GenerationRecord]:
        """Answer every selected instruction (cached) and write model_outputs.json for this seed."""
        rows = self.rows(ctx.limit)
        n_all = len(self.eval_set())
        if len(rows) < n_all and not self._said_partial:
            self._said_partial = True
            log.warning("alpaca: evaluating %d of %d instructions; n_total will say so", len(rows), n_all)
        items = self.items(rows, seed)
        gens = generate_items(checkpoint.backend, items, suite=self.name, checkpoint=checkpoint.name, seed=seed,
                              desc=f"alpaca generate [{checkpoint.name} seed {seed}]")
        records = [to_record(self.name, checkpoint.name, seed, it, g, checkpoint.backend.key(it.request))
                   for it, g in zip(items, gens)]
        outdir = artifact_dir(ctx, checkpoint.name, seed)
        outputs = []
        failed = 0
        for row, rec in zip(rows, records):
            text = self._output(rec)
            if text is None:
                failed += 1
                continue
            outputs.append(ModelOutput(row.instruction, text, checkpoint.name, row.dataset))
        if failed:
            log.warning("alpaca [%s seed %d]: %d of %d generations failed (first: %s); they are left out of "
                        "model_outputs.json and counted as failed samples", checkpoint.name, seed, failed,
                        len(records), next(r.error for r in records if self._output(r) is None))
        write_model_outputs(outdir / "model_outputs.json", outputs)
        write_json_atomic(outdir / "generation_config.json", {
            "checkpoint": checkpoint.name, "base_model": checkpoint.base_model, "adapter": checkpoint.adapter_path,
            "seed": seed, "chat_template": "the model's tokenizer chat template, applied by the server",
            "sampling": items[0].request.sampling.model_dump(mode="json", exclude={"seed"}) if items else None,
            "sampling_seed": "stable_hash('alpaca', seed, sample_id) % (2**31 - 1); none when greedy",
            "strip_outputs": self.options.strip_outputs, "n_instructions": len(rows)})
        return records

    def _match_generations(self, rows: Sequence[EvalRow], generations: Sequence[GenerationRecord]
                           ) -> dict[str, GenerationRecord]:
        """Generations by sample_id, after checking each asked its row's instruction (by content)."""
        by_index = {str(r.index): r for r in rows}
        data = self.eval_set()
        found: dict[str, GenerationRecord] = {}
        mismatches: list[str] = []
        for rec in generations:
            messages = rec.request.get("messages") or []
            asked = messages[-1].get("content") if messages else rec.request.get("prompt")
            row = by_index.get(rec.sample_id)
            if row is None:
                if not rec.sample_id.isdigit() or int(rec.sample_id) >= len(data):
                    mismatches.append(f"sample {rec.sample_id!r} is not an eval-set row")
                elif data[int(rec.sample_id)].instruction != asked:
                    mismatches.append(f"sample {rec.sample_id}: asked {_short(asked)!r}, eval set has "
                                      f"{_short(data[int(rec.sample_id)].instruction)!r}")
                continue  # outside this selection (e.g. a larger --limit earlier): not scored here
            if asked != row.instruction:
                mismatches.append(f"sample {rec.sample_id}: asked {_short(asked)!r}, eval set has "
                                  f"{_short(row.instruction)!r}")
                continue
            found[rec.sample_id] = rec
        if mismatches:
            raise InputError(f"{len(mismatches)} generation(s) do not match the eval set's instructions "
                             f"(compared by content); first: " + "; ".join(mismatches[:5]),
                             path=self.eval_set_path(), field="instruction")
        return found

    def score(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int,
              generations: Sequence[GenerationRecord]) -> list[SampleRecord]:
        """Judge every answer against the reference (cached), write annotations.json beside
        model_outputs.json and return one SampleRecord per instruction."""
        if ctx.judge is None:
            raise EvalbenchError("the alpaca suite needs a judge: give --judge (e.g. vllm:MODEL or "
                                 "url=URL,model=NAME)")
        rows = self.rows(ctx.limit)
        found = self._match_generations(rows, [g for g in generations if g.turn == 1])
        outputs, errors = [], []
        for row in rows:
            rec = found.get(str(row.index))
            outputs.append(self._output(rec) if rec is not None else None)
            errors.append(None if rec is None else rec.error)
        prompt = self.prompt()
        judge = as_judge(ctx.judge, name=ctx.judge_name, constrained=ctx.constrained_judge)
        # The annotator names the judge by the identity it was built with (alpaca_eval's column).
        judge_name = judge.name if isinstance(ctx.judge, Judge) else ctx.judge_name
        annotator = f"{prompt.name}:{judge_name}" if judge_name else prompt.name
        samples, annotations = score_rows(
            judge, rows, outputs, prompt=prompt, checkpoint=checkpoint.name, seed=seed,
            difficulty=self.difficulty(rows), generation_errors=errors, constrained=ctx.constrained_judge,
            order_seed=self.options.judge_order_seed, max_output_chars=self.options.judge_max_output_chars,
            annotator=annotator, judge_repeats=self.options.judge_repeats)
        write_json_atomic(artifact_dir(ctx, checkpoint.name, seed) / "annotations.json", annotations)
        n_failed = sum(s.error is not None for s in samples)
        if n_failed:
            first = next(s.error for s in samples if s.error is not None)
            level = logging.ERROR if n_failed == len(samples) else logging.WARNING
            log.log(level, "alpaca [%s seed %d]: %d of %d samples failed (first: %s)", checkpoint.name, seed,
                    n_failed, len(samples), first)
        return samples

    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        return summarize_samples(samples)

    def read_replay(self, path: Path) -> dict[str, list[tuple[str]]]:
        """An alpaca_eval model_outputs.json for the replay backend: {eval-set index: [(output,)]}.

        Rows are matched to the eval set by instruction content (`match_instructions` names the
        first mismatches); the file must hold one generator.
        """
        from evalbench.suites.alpaca.data import match_instructions

        outputs = read_model_outputs(path)
        generators = sorted({o.generator for o in outputs})
        if len(generators) > 1:
            raise InputError(f"expected one generator per file, found {generators[:5]}", path=path,
                             field="generator")
        positions = match_instructions([o.instruction for o in outputs], self.eval_set(), path=path)
        return {str(int(p)): [(o.output,)] for p, o in zip(positions, outputs)}


def _short(text: str | None, width: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"
