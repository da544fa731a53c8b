"""The MT-bench suite: two-turn generation, single-answer grading, pairwise comparison, FastChat files.

Stages (the contract of `evalbench.suites.base`):

* `generate`: turn 1 of every question, and turn 2 (messages q1, a1, q2: the second turn sees
  the model's own first answer) of each question as soon as its turn 1 is back (on an HTTP
  server, as FastChat does; other backends run turn 1, then turn 2, as two batches).
  Temperatures per category (FastChat `temperature_config`: writing/roleplay 0.7,
  stem/humanities 0.1, others 0), at most 1024 new tokens, `num_choices` answers per question. The sampling seed of each request is
  `stable_hash(seed, question_id, turn)` (plus the choice index for later turn-2 choices); greedy
  requests (temperature 0) carry no seed, because the seed cannot change a greedy answer and
  leaving it out lets every generation seed share the cached greedy answers. Writes FastChat's
  `artifacts/mtbench/model_answer/<model>.jsonl`.
* `score`: single-answer grading of both turns by the judge (`ctx.judge`), reference-guided for
  math, reasoning and coding (FastChat NEED_REF_CATS, GPT-4 reference answers); temperature 0, at
  most 2048 tokens (`judge_max_tokens`); with `ctx.constrained_judge` the output is regex-
  constrained so that a rating always parses. A judgment without a rating is a failure with its
  reason: excluded from every mean, counted in `n_failed`, written as score −1 only in FastChat's
  `artifacts/mtbench/model_judgment/<judge>_single.jsonl`. With `judge_repeats` k > 1 every turn
  is rated k times (repeats r >= 1 at `judge_repeat_temperature` with a seed per repeat); the
  record's scores are the means, `data["judge_repeats"]` the values, the FastChat file repeat 0.
* `finalize`: pairwise comparisons across checkpoints (`pairwise: baseline | all`), both orders,
  per generation seed; `<judge>_pair.jsonl`; the radar plot `artifacts/mtbench/radar.png`.
  `finalize` returns the checkpoint's per-question SampleRecords with the pairwise scores merged
  in (same sample_id, extra score key `pairwise_win_rate`); they replace the single-grading
  records (the driver applies them; readers of the store keep the last record of a key).
* `summarize` (pure): `score` (FastChat's average over all valid ratings), `turn_1`, `turn_2`,
  `category/<name>`, `n_failed`, and with pairwise judging `pairwise_win_rate`
  (100 (wins + ties/2) / n: FastChat's win_rate_adjusted in percent), `pairwise_win_rate_strict`
  (FastChat's win_rate in percent), `pairwise_loss_rate` (percent) and the counts. Version 2: the
  rates were fractions in version 1 (docs/results-format.md, "Units").

Model names in FastChat files: a checkpoint's answers under generation seed 0 are named by the
checkpoint (`tiny.jsonl`), other seeds get a suffix (`tiny-seed1.jsonl`), so one-seed runs and
published answer files use FastChat's plain names. Judging runs in one batch per stage and
every judge call goes through the cache: a rerun makes zero judge calls.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import Field, model_validator

from evalbench.config import SamplingSpec, Spec
from evalbench.data import resolve
from evalbench.errors import InputError
from evalbench.generate.stage import Item, generate_chained_items, to_record
from evalbench.io import read_jsonl, stable_hash, write_text_atomic
from evalbench.judge.base import Judge, as_judge
from evalbench.judge.repeats import REPEAT_TEMPERATURE, merge_repeats, repeat_seed
from evalbench.sampling import describe_subset, stratified_subset
from evalbench.registry import did_you_mean
from evalbench.store import GenerationRecord, SampleRecord
from evalbench.suites.base import Checkpoint, Suite, SuiteContext
from evalbench.suites.mtbench import data as mt
from evalbench.suites.mtbench import judging as jg
from evalbench.suites.mtbench.scoring import single_scores
from evalbench.types import GenRequest, Generation

__all__ = ["MTBench", "MTBenchOptions", "Side", "fastchat_model_name", "select_questions",
           "answers_from_generations", "category_means", "judge_file_stem", "SUITE"]

log = logging.getLogger(__name__)

SUITE = "mtbench"
ARTIFACT_DIR = "mtbench"
# Seeds sent to servers stay below 2**31: vLLM adds the choice index to the seed for n > 1 and
# some OpenAI-compatible servers take only 32-bit seeds.
_SEED_MOD = 2 ** 31
PAIR_KEYS = ("pairwise_win_rate",)
# FastChat's judgment files are shared by every checkpoint x seed; units are scored in threads.
_FASTCHAT_FILES = threading.Lock()
_COUNTS = ("win", "loss", "tie", "failed", "inconsistent")  # per-question pairwise counts


class MTBenchOptions(Spec):
    """Options of the MT-bench suite (all recorded in the run spec)."""

    question_ids: tuple[int, ...] | None = None  # a subset by id (file order is kept)
    categories: tuple[str, ...] | None = None  # a subset by category
    limit: int | None = Field(None, ge=1)  # the first N selected questions
    num_choices: int = Field(1, ge=1)  # answers per question (FastChat --num-choices); choice 0 is judged
    max_new_tokens: int = Field(mt.MAX_NEW_TOKENS, ge=1)
    temperature: float | None = Field(None, ge=0.0)  # None: FastChat's per-category temperatures
    single: bool = True  # single-answer grading (1-10) of every turn
    pairwise: Literal["none", "baseline", "all"] = "none"
    # pairwise "baseline": a checkpoint of the run, or the model of baseline_answers
    baseline: str | None = None
    baseline_answers: str | None = None  # FastChat model_answer file of a baseline that is not in the run
    judge_max_tokens: int = Field(jg.JUDGE_MAX_TOKENS, ge=1)  # lower it for small local judges
    questions_file: str | None = None  # default: MT-bench question.jsonl
    reference_file: str | None = None  # default: FastChat's GPT-4 reference answers
    judge_prompts_file: str | None = None  # default: FastChat's judge_prompts.jsonl
    # Single grading: rate every turn this many times (judge noise; docs/statistics.md). Repeat 0
    # is FastChat's temperature-0 rating; repeats r >= 1 sample the judge at
    # judge_repeat_temperature with a seed per repeat (a greedy judge would repeat itself). The
    # record's scores are the means over repeats, the values are in data["judge_repeats"].
    judge_repeats: int = Field(1, ge=1)
    judge_repeat_temperature: float = Field(REPEAT_TEMPERATURE, gt=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> MTBenchOptions:
        if self.pairwise == "baseline" and not self.baseline and not self.baseline_answers:
            raise ValueError("pairwise 'baseline' needs baseline (a checkpoint name) or baseline_answers")
        if self.pairwise != "baseline" and (self.baseline or self.baseline_answers):
            raise ValueError("baseline / baseline_answers apply only to pairwise: baseline")
        if not self.single and self.pairwise == "none":
            raise ValueError("nothing to judge: single is false and pairwise is 'none'")
        if self.judge_repeats > 1 and not self.single:
            raise ValueError("judge_repeats re-judges single grading; pairwise judging already asks both "
                             "orders and is not repeated")
        return self


class Side(NamedTuple):
    """One model in a pairwise comparison: its run checkpoint, FastChat name and answers."""

    checkpoint: str
    model: str
    answers: Mapping[int, mt.ModelAnswer]


def fastchat_model_name(checkpoint: str, seed: int) -> str:
    """The model name in FastChat files: the checkpoint for seed 0, `<checkpoint>-seed<k>` otherwise."""
    return checkpoint if seed == 0 else f"{checkpoint}-seed{seed}"


def judge_file_stem(judge: str) -> str:
    """`<judge>` as FastChat puts it in `<judge>_single.jsonl`, made safe for a file name."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in judge) or "judge"


def select_questions(questions: Mapping[int, mt.Question], *, question_ids: Sequence[int] | None = None,
                     categories: Sequence[str] | None = None, limit: int | None = None,
                     source: str | Path | None = None) -> list[mt.Question]:
    """The questions to run, in file order: by id, then by category, then a stratified `limit`.

    The limited subset is seeded, stratified over categories and nested as the limit grows
    (`evalbench.sampling`): `--limit 8` runs one question of each of MT-bench's 8 categories.

    Raises:
        InputError: an id or category that the question file does not have.
    """
    chosen = list(questions.values())
    if question_ids is not None:
        unknown = [q for q in question_ids if q not in questions]
        if unknown:
            raise InputError(f"unknown question id(s) {unknown} (the file has ids "
                             f"{min(questions)}-{max(questions)})", path=source, field="question_ids")
        wanted = set(question_ids)
        chosen = [q for q in chosen if q.question_id in wanted]
    if categories is not None:
        known = sorted({q.category for q in questions.values()})
        for cat in categories:
            if cat not in known:
                raise InputError(f"unknown category '{cat}'{did_you_mean(cat, known)} "
                                 f"(known: {', '.join(known)})", path=source, field="categories")
        chosen = [q for q in chosen if q.category in set(categories)]
    if limit is not None and limit < len(chosen):
        strata = [q.category for q in chosen]
        picked = stratified_subset([q.question_id for q in chosen], strata, limit)
        log.info("mtbench: --limit %d: %s", limit, describe_subset(strata, picked, len(chosen)))
        chosen = [chosen[pos] for pos in picked]
    if not chosen:
        raise InputError("no questions selected", path=source, field="question_ids")
    return chosen


def _failed_choice(record: GenerationRecord, i: int) -> bool:
    # A merged turn-2 record marks a failed choice with an empty output and no finish reason.
    return record.error is not None and record.outputs[i] == "" and record.finish_reasons[i] is None


def answers_from_generations(generations: Sequence[GenerationRecord], *, checkpoint: str, seed: int,
                             model: str | None = None) -> tuple[dict[int, mt.ModelAnswer], dict[int, str]]:
    """Rebuild FastChat answers from a run's generation records of one checkpoint x seed.

    Returns:
        (answers by question id, failure reason by question id): a question whose choice 0 is
        missing either turn is a failure; other choices are kept only when both turns exist.
    """
    turns: dict[int, dict[int, GenerationRecord]] = {1: {}, 2: {}}
    for rec in generations:
        if rec.suite == SUITE and rec.checkpoint == checkpoint and rec.seed == seed and rec.turn in turns:
            turns[rec.turn][int(rec.sample_id)] = rec  # the last record of a key wins, as in the store
    answers: dict[int, mt.ModelAnswer] = {}
    failures: dict[int, str] = {}
    for qid, r1 in turns[1].items():
        if not r1.outputs:
            failures[qid] = f"turn 1 generation failed: {r1.error}"
            continue
        r2 = turns[2].get(qid)
        if r2 is None:
            failures[qid] = "no turn 2 generation"
            continue
        if not r2.outputs or _failed_choice(r2, 0):
            failures[qid] = f"turn 2 generation failed: {r2.error}"
            continue
        choices = tuple((r1.outputs[i], r2.outputs[i]) for i in range(min(len(r1.outputs), len(r2.outputs)))
                        if not _failed_choice(r2, i))
        answers[qid] = mt.ModelAnswer(qid, model or checkpoint, choices, model_id=checkpoint)
    return answers, failures


def _merge_record_repeats(per_repeat: Sequence[SampleRecord], turns: Mapping[int, mt.SingleJudgment]
                          ) -> SampleRecord:
    """One question's record over its judge repeats (`evalbench.judge.repeats.merge_repeats`).

    One repeat: that record, unchanged. Otherwise the scores are the means over the valid repeats
    and `data["judge_repeats"]` holds each repeat's values; the error names the turns that no
    repeat could rate (with repeat 0's reason, from `turns`), `data["judge_repeat_errors"]` every
    failed repeat.
    """
    first = per_repeat[0]
    if len(per_repeat) == 1:
        return first
    scores, data = merge_repeats([rec.scores for rec in per_repeat])
    errors = [f"repeat {r}: {rec.error}" for r, rec in enumerate(per_repeat) if rec.error]
    if errors:
        data["judge_repeat_errors"] = errors
    error = "; ".join(f"turn {t}: {turns[t].error or 'no rating'}" for t in sorted(turns)
                      if scores.get(f"turn_{t}") is None) or None
    return first.model_copy(update={"scores": scores, "error": error, "data": {**first.data, **data}})


def category_means(samples: Sequence[SampleRecord]) -> dict[str, dict[str, float]]:
    """Per checkpoint, the per-category MT-bench score averaged over its generation seeds (pure).

    Within one checkpoint x seed a category's score is FastChat's: the mean of all valid
    ratings of both turns of that category's questions.
    """
    by_unit: dict[tuple[str, int], list[SampleRecord]] = defaultdict(list)
    for s in samples:
        if s.suite == SUITE:
            by_unit[(s.checkpoint, s.seed)].append(s)
    per_ckpt: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (ckpt, _seed), recs in by_unit.items():
        for key, value in MTBench.summarize_samples(recs).items():
            if key.startswith("category/") and value is not None:
                per_ckpt[ckpt][key.removeprefix("category/")].append(float(value))
    return {c: {cat: sum(v) / len(v) for cat, v in cats.items()} for c, cats in per_ckpt.items()}


class MTBench(Suite):
    """MT-bench (Zheng et al. 2023): 80 two-turn questions graded 1-10 by an LLM judge.

    See the module docstring for the stages. `judge_answers` and `judge_pairs` also serve
    `evalbench mtbench judge`, which grades published FastChat answer files without generating.
    """

    name: ClassVar[str] = SUITE
    # 2: pairwise rates in percent (were fractions); compare refuses to mix the two.
    version: ClassVar[str] = "2"
    needs_judge: ClassVar[bool] = True
    Options: ClassVar[type[Spec]] = MTBenchOptions

    def __init__(self, options: MTBenchOptions | None = None):
        super().__init__(options)
        self.options: MTBenchOptions
        self._questions: dict[int, mt.Question] | None = None
        self._references: dict[int, mt.ModelAnswer] | None = None
        # The selection per limit: it is deterministic, and computed (and described in the log) once
        # per suite object rather than by every unit's generation and scoring.
        self._selected: dict[int | None, list[mt.Question]] = {}
        self._prompts: dict[str, mt.JudgePrompt] | None = None

    # -- data -----------------------------------------------------------------------------------

    def questions_path(self) -> Path:
        o = self.options
        return Path(o.questions_file) if o.questions_file else resolve(mt.QUESTIONS[0], hub=mt.QUESTIONS[1])

    def reference_path(self) -> Path:
        o = self.options
        return Path(o.reference_file) if o.reference_file else resolve(mt.REFERENCE_ANSWERS[0],
                                                                      hub=mt.REFERENCE_ANSWERS[1])

    def prompts_path(self) -> Path:
        o = self.options
        return Path(o.judge_prompts_file) if o.judge_prompts_file else resolve(mt.JUDGE_PROMPTS[0],
                                                                              hub=mt.JUDGE_PROMPTS[1])

    def data_files(self) -> list[Path]:
        files = [self.questions_path(), self.prompts_path()]
        if any(q.category in mt.NEED_REF_CATS for q in self.questions().values()):
            files.append(self.reference_path())
        if self.options.baseline_answers:
            files.append(Path(self.options.baseline_answers))
        return files

    def questions(self) -> dict[int, mt.Question]:
        """Every question of the question file (validated: two turns each)."""
        if self._questions is None:
            path = self.questions_path()
            questions = mt.load_questions(path)
            for q in questions.values():
                if len(q.turns) != 2:
                    raise InputError(f"question_id {q.question_id} has {len(q.turns)} turn(s); MT-bench "
                                     "questions have 2", path=path, field="turns")
            self._questions = questions
        return self._questions

    def selected(self, ctx: SuiteContext | None = None) -> list[mt.Question]:
        o = self.options
        limit = o.limit
        if ctx is not None and ctx.limit is not None:
            limit = ctx.limit if limit is None else min(limit, ctx.limit)
        if limit not in self._selected:
            self._selected[limit] = select_questions(self.questions(), question_ids=o.question_ids,
                                                     categories=o.categories, limit=limit,
                                                     source=self.questions_path())
        return list(self._selected[limit])

    def references(self, questions: Sequence[mt.Question]) -> dict[int, mt.ModelAnswer]:
        """GPT-4 reference answers, checked to cover every selected reference-guided question."""
        need = [q.question_id for q in questions if jg.needs_reference(q.category)]
        if not need:
            return {}
        if self._references is None:
            # Not checked against the question file: FastChat's reference file answers all 30 math,
            # reasoning and coding questions, so a subset questions_file meets ids it does not have
            # (FastChat ignores them too); the check below is what matters, a needed one missing.
            self._references = mt.load_reference_answers(self.reference_path())
        missing = [qid for qid in need if qid not in self._references]
        if missing:
            raise InputError(f"no reference answer for question_id(s) {missing}, which are judged against "
                             "a reference (math, reasoning, coding)", path=self.reference_path())
        return self._references

    def prompts(self, kinds: Sequence[Literal["single", "pair"]] = ("single",)) -> dict[str, mt.JudgePrompt]:
        """Judge prompts, checked to hold every prompt name the requested kinds use."""
        if self._prompts is None:
            self._prompts = mt.load_judge_prompts(self.prompts_path())
        names = [n for kind in kinds
                 for n in (mt.SINGLE_PROMPT_NAMES if kind == "single" else mt.PAIR_PROMPT_NAMES)]
        for name in names:
            if name not in self._prompts:
                raise InputError(f"judge prompt '{name}' is missing{did_you_mean(name, list(self._prompts))} "
                                 f"(the file has: {', '.join(sorted(self._prompts)) or 'none'})",
                                 path=self.prompts_path(), field="name")
        return self._prompts

    # -- generation -----------------------------------------------------------------------------

    def _sampling(self, q: mt.Question, seed: int, turn: int, choice: int, n: int) -> SamplingSpec:
        o = self.options
        temperature = o.temperature if o.temperature is not None else mt.generation_temperature(q.category)
        parts: tuple[Any, ...] = (seed, q.question_id, turn) + ((choice,) if choice else ())
        req_seed = None if temperature == 0 else stable_hash(*parts) % _SEED_MOD
        return SamplingSpec(temperature=temperature, max_tokens=o.max_new_tokens, n=n, seed=req_seed)

    def generate(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int) -> list[GenerationRecord]:
        """Both turns of every selected question: turn-1 records, then one turn-2 record per question.

        A question's turn 2 is sent as soon as its turn 1 is back (on an HTTP server; other
        backends get all of turn 1, then all of turn 2): with long-tailed answer lengths a barrier
        after turn 1 left the engine waiting on a few long answers (results/benchmarks.md).
        """
        questions = self.selected(ctx)
        n = self.options.num_choices
        name = checkpoint.name
        t1_items = [Item(str(q.question_id), GenRequest(messages=({"role": "user", "content": q.turns[0]},),
                                                        sampling=self._sampling(q, seed, 1, 0, n)), turn=1)
                    for q in questions]
        gens1, turn2 = generate_chained_items(
            checkpoint.backend, t1_items, lambda qi, g1: self._turn2_items(questions[qi], g1, seed),
            suite=SUITE, desc=f"mtbench turn 1 [{name} seed {seed}]", follow_desc=f"mtbench turn 2 [{name} seed {seed}]")
        records = [to_record(SUITE, name, seed, it, g, checkpoint.backend.key(it.request))
                   for it, g in zip(t1_items, gens1)]
        records += [self._turn2_record(name, seed, parts, checkpoint) for parts in turn2 if parts]

        answers, failures = answers_from_generations(records, checkpoint=name, seed=seed,
                                                     model=fastchat_model_name(name, seed))
        self._write_answers(ctx, fastchat_model_name(name, seed), answers)
        if failures:
            log.warning("mtbench [%s seed %d]: %d of %d questions have no complete answer (first: %s)", name,
                        seed, len(failures), len(questions), next(iter(failures.values())))
        return records

    def _turn2_items(self, q: mt.Question, g1: Generation, seed: int) -> list[Item]:
        """Turn 2 of `q`, one request per choice: choice c continues choice c's own first answer.

        Empty when turn 1 failed: the question then has no turn-2 record.
        """
        if not g1.ok:
            return []
        items = []
        for c, choice in enumerate(g1.choices):
            messages = ({"role": "user", "content": q.turns[0]},
                        {"role": "assistant", "content": choice.text},
                        {"role": "user", "content": q.turns[1]})
            request = GenRequest(messages=messages, sampling=self._sampling(q, seed, 2, c, 1))
            items.append(Item(str(q.question_id), request, turn=2))
        return items

    @staticmethod
    def _turn2_record(name: str, seed: int, parts: list[tuple[Item, Generation]],
                      checkpoint: Checkpoint) -> GenerationRecord:
        """One turn-2 record per question holding every choice (the store keys records by turn)."""
        first_item, first_gen = parts[0]
        key = checkpoint.backend.key(first_item.request)
        if len(parts) == 1:
            return to_record(SUITE, name, seed, first_item, first_gen, key)
        if not any(g.ok for _, g in parts):
            outputs: list[str] = []
            finish: list[str | None] = []
        else:
            outputs = [g.choices[0].text if g.ok else "" for _, g in parts]
            finish = [g.choices[0].finish_reason if g.ok else None for _, g in parts]
        errors = [f"choice {c}: {g.error or 'no output'}" for c, (_, g) in enumerate(parts) if not g.ok]
        base = to_record(SUITE, name, seed, first_item, first_gen, key)
        return base.model_copy(update={"outputs": outputs, "finish_reasons": finish,
                                       "error": "; ".join(errors) or None,
                                       "logprob_sums": None, "token_counts": None})

    def _write_answers(self, ctx: SuiteContext, model: str, answers: Mapping[int, mt.ModelAnswer]) -> None:
        path = ctx.artifacts / ARTIFACT_DIR / "model_answer" / f"{model}.jsonl"
        stamp = time.time()
        mt.write_model_answers(path, [dataclasses.replace(a, tstamp=stamp) for a in answers.values()])

    def read_replay(self, path: Path) -> dict[str, list[tuple[str, ...]]]:
        """A FastChat model_answer file for the replay backend: {question id: [choice turns, ...]}."""
        answers = mt.read_model_answers(Path(path), self.questions())
        return {str(qid): [tuple(c) for c in a.choices] for qid, a in answers.items()}

    # -- single-answer grading ------------------------------------------------------------------

    def _judge(self, ctx: SuiteContext) -> Judge:
        if ctx.judge is None:
            raise InputError("MT-bench needs a judge: give --judge (e.g. vllm:MODEL or url=URL,model=NAME)",
                             field="--judge")
        return as_judge(ctx.judge, name=ctx.judge_name, constrained=ctx.constrained_judge)  # type: ignore[return-value]

    @staticmethod
    def judge_name(ctx: SuiteContext) -> str:
        if isinstance(ctx.judge, Judge):
            return ctx.judge.name  # the judge's identity, computed once when it was built
        if ctx.judge_name:
            return ctx.judge_name
        who = ctx.judge.who if ctx.judge is not None else {}
        return str(who.get("model") or "judge")

    def judge_sampling(self, ctx: SuiteContext, kind: Literal["single", "pair"]) -> SamplingSpec:
        return jg.judge_sampling(kind, constrained=ctx.constrained_judge,
                                 max_tokens=self.options.judge_max_tokens)

    def score(self, ctx: SuiteContext, checkpoint: Checkpoint, seed: int,
              generations: Sequence[GenerationRecord]) -> list[SampleRecord]:
        """Single-answer grading of both turns; one SampleRecord per selected question."""
        if not self.options.single:
            return []
        model = fastchat_model_name(checkpoint.name, seed)
        answers, failures = answers_from_generations(generations, checkpoint=checkpoint.name, seed=seed,
                                                     model=model)
        wanted = {q.question_id for q in self.selected(ctx)}
        answers = {k: v for k, v in answers.items() if k in wanted}
        failures = {k: v for k, v in failures.items() if k in wanted}
        for qid in wanted - answers.keys() - failures.keys():
            failures[qid] = "no generation"
        return self.judge_answers(ctx, checkpoint.name, seed, answers, failures=failures, model=model)

    def judge_answers(self, ctx: SuiteContext, checkpoint: str, seed: int,
                      answers: Mapping[int, mt.ModelAnswer], *, failures: Mapping[int, str] | None = None,
                      model: str | None = None) -> list[SampleRecord]:
        """Grade turns 1 and 2 of every answer; write FastChat judgments; return SampleRecords.

        Args:
            checkpoint: the record's checkpoint name; `model` the FastChat model name (default: the same).
            answers: FastChat answers by question id (choice 0 is graded, as in FastChat).
            failures: question ids without a complete answer, with the reason; they get records
                with null scores so they count as failed.
        """
        judge = self._judge(ctx)
        judge_name = self.judge_name(ctx)
        model = model or checkpoint
        failures = dict(failures or {})
        questions = self.questions()
        prompts = self.prompts(("single",))
        chosen = [questions[qid] for qid in sorted(answers)]
        refs = self.references(chosen)
        jobs: list[tuple[int, int, jg.JudgeRequest]] = []
        for q in chosen:
            for turn in (1, 2):
                req = jg.build_single_request(q, answers[q.question_id], prompts, turn=turn,
                                              reference=refs.get(q.question_id))
                jobs.append((q.question_id, turn, req))
        k = self.options.judge_repeats
        stamp = time.time()
        # repeats[r]: the judgments of repeat r, in job order; repeat 0 is FastChat's own.
        repeats: list[list[mt.SingleJudgment]] = []
        for r in range(k):
            ratings = jg.rate_requests(
                judge, [req for _, _, req in jobs], max_tokens=self.options.judge_max_tokens,
                desc=f"mtbench single judge [{model}]" + (f" repeat {r + 1}/{k}" if k > 1 else ""),
                seed=repeat_seed(r), temperature=self.options.judge_repeat_temperature if r else None)
            repeats.append([jg.single_judgment_from_rating(qid, model, judge_name, req, rating, turn=turn,
                                                           tstamp=stamp)
                            for (qid, turn, req), rating in zip(jobs, ratings)])
        judgments = repeats[0]  # FastChat's file holds the reference (temperature-0) judgment
        self._merge_fastchat(ctx.artifacts / ARTIFACT_DIR / "model_judgment" /
                             f"{judge_file_stem(judge_name)}_single.jsonl",
                             [mt.single_judgment_to_fastchat(j) for j in judgments],
                             key=lambda r: (r["question_id"], r["model"], r["turn"], tuple(r["judge"])))
        by_q: list[dict[int, dict[int, mt.SingleJudgment]]] = [defaultdict(dict) for _ in range(k)]
        for r, rep in enumerate(repeats):
            for j in rep:
                by_q[r][j.question_id][j.turn] = j
        records = []
        for qid in sorted(set(by_q[0]) | set(failures)):
            q = questions.get(qid)
            if qid in by_q[0]:
                per_repeat = [self._single_record(checkpoint, seed, q, model, judge_name, b[qid]) for b in by_q]
                records.append(_merge_record_repeats(per_repeat, by_q[0][qid]))
            else:
                records.append(SampleRecord(
                    suite=SUITE, checkpoint=checkpoint, seed=seed, sample_id=str(qid),
                    scores={"score": None, "turn_1": None, "turn_2": None}, error=failures[qid],
                    data={"question_id": qid, "category": q.category if q else None, "model": model,
                          "judge": judge_name}))
        n_bad = sum(j.score is None for j in judgments)
        log.info("mtbench [%s]: %d ratings, %d failed, %d questions without answers", model, len(judgments),
                 n_bad, len(failures))
        return records

    @staticmethod
    def _single_record(checkpoint: str, seed: int, q: mt.Question | None, model: str, judge_name: str,
                       turns: Mapping[int, mt.SingleJudgment]) -> SampleRecord:
        t = {k: turns[k].score if k in turns else None for k in (1, 2)}
        valid = [s for s in t.values() if s is not None]
        errors = [f"turn {k}: {turns[k].error}" for k in (1, 2) if k in turns and turns[k].error]
        qid = next(iter(turns.values())).question_id
        return SampleRecord(
            suite=SUITE, checkpoint=checkpoint, seed=seed, sample_id=str(qid),
            scores={"score": sum(valid) / len(valid) if valid else None, "turn_1": t[1], "turn_2": t[2]},
            error="; ".join(errors) or None,
            data={"question_id": qid, "category": q.category if q else None, "model": model,
                  "judge": judge_name, "prompts": {str(k): turns[k].prompt_name for k in sorted(turns)}})

    @staticmethod
    def _merge_fastchat(path: Path, rows: list[dict[str, Any]], key) -> None:
        """Replace rows with the same key, keep the others, write atomically (a rerun never duplicates)."""
        if not rows:
            return
        new = {key(r) for r in rows}
        with _FASTCHAT_FILES:
            kept = [r for r in read_jsonl(path) if key(r) not in new] if path.exists() else []
            write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept + rows))

    # -- pairwise -------------------------------------------------------------------------------

    def finalize(self, ctx: SuiteContext, checkpoints: Sequence[Checkpoint], seeds: Sequence[int],
                 generations: Sequence[GenerationRecord], samples: Sequence[SampleRecord]) -> list[SampleRecord]:
        """Pairwise judging across checkpoints (per generation seed) and the radar plot.

        Returns each judged question's SampleRecord with its pairwise scores merged in (same key as
        the single-grading record of `samples`, which it replaces).
        """
        merged: list[SampleRecord] = []
        if self.options.pairwise != "none":
            names = [c.name for c in checkpoints]
            for seed in seeds:
                sides = []
                for name in names:
                    answers, failures = answers_from_generations(generations, checkpoint=name, seed=seed,
                                                                 model=fastchat_model_name(name, seed))
                    if not answers:
                        log.warning("mtbench pairwise: %s seed %d has no answers; left out", name, seed)
                        continue
                    sides.append(Side(name, fastchat_model_name(name, seed), answers))
                baseline = None
                if self.options.pairwise == "baseline":
                    baseline = self._baseline_side(sides, names, seed)
                    if baseline.checkpoint not in [s.checkpoint for s in sides]:
                        sides.append(baseline)
                pairs = self.pairs([s.checkpoint for s in sides], baseline.checkpoint if baseline else None)
                if pairs:
                    _, records = self.judge_pairs(ctx, seed, sides, pairs, samples=samples,
                                                  baseline=baseline.checkpoint if baseline else None)
                    merged += records
                else:
                    log.warning("mtbench pairwise: nothing to compare for seed %d (models: %s)", seed,
                                ", ".join(s.checkpoint for s in sides) or "none")
        self.write_radar(ctx, samples)
        return merged

    def _baseline_side(self, sides: list[Side], names: Sequence[str], seed: int) -> Side:
        o = self.options
        for side in sides:
            if side.checkpoint == o.baseline:
                return side
        if o.baseline_answers:
            path = Path(o.baseline_answers)
            model = o.baseline or mt.model_name_from_path(path)
            answers = mt.read_model_answers(path, self.questions(), model=model)
            return Side(model, model, answers)
        if o.baseline in names:
            raise InputError(f"baseline '{o.baseline}' has no complete answers for seed {seed}; see its "
                             "generation errors in generations.jsonl", field="baseline")
        raise InputError(f"baseline '{o.baseline}' is not a checkpoint of this run"
                         f"{did_you_mean(o.baseline or '', names)} (checkpoints: {', '.join(names)}); "
                         "give baseline_answers for a model outside the run", field="baseline")

    @staticmethod
    def pairs(names: Sequence[str], baseline: str | None) -> list[tuple[str, str]]:
        """(model_1, model_2) pairs: every model against the baseline, or all pairs in order (FastChat)."""
        if baseline is not None:
            return [(n, baseline) for n in names if n != baseline]
        return list(combinations(names, 2))

    def judge_pairs(self, ctx: SuiteContext, seed: int, sides: Sequence[Side],
                    pairs: Sequence[tuple[str, str]], *, samples: Sequence[SampleRecord] = (),
                    baseline: str | None = None) -> tuple[list[mt.PairJudgment], list[SampleRecord]]:
        """Judge every pair on both turns in both orders; write `<judge>_pair.jsonl`.

        Returns the judgments and, for each non-baseline side, its SampleRecords (seed `seed`) with
        per-question pairwise scores merged into the matching record of `samples`:
        `pairwise_win_rate` = 100 (wins + ties/2) / n over that question's valid comparisons
        (2 turns x opponents; percent, so its mean over questions is the summary's rate), and the
        counts in `data["pairwise"]`.
        """
        judge = self._judge(ctx)
        judge_name = self.judge_name(ctx)
        by_name = {s.checkpoint: s for s in sides}
        questions = self.questions()
        wanted = [q.question_id for q in self.selected(ctx)]
        prompts = self.prompts(("pair",))
        jobs: list[tuple[int, str, str, int, tuple[jg.JudgeRequest, jg.JudgeRequest]]] = []
        for c1, c2 in pairs:
            s1, s2 = by_name[c1], by_name[c2]
            common = [qid for qid in wanted if qid in s1.answers and qid in s2.answers]
            refs = self.references([questions[qid] for qid in common])
            for qid in common:
                for turn in (1, 2):
                    games = jg.build_pair_games(questions[qid], s1.answers[qid], s2.answers[qid], prompts,
                                                turn=turn, reference=refs.get(qid))
                    jobs.append((qid, c1, c2, turn, games))
        verdicts = jg.compare_games(judge, [job[4] for job in jobs], max_tokens=self.options.judge_max_tokens,
                                    desc=f"mtbench pairwise judge [seed {seed}]")
        stamp = time.time()
        judgments = [(c1, c2, jg.pair_judgment_from_preferences(qid, by_name[c1].model, by_name[c2].model,
                                                                judge_name, games, prefs, turn=turn,
                                                                tstamp=stamp))
                     for (qid, c1, c2, turn, games), prefs in zip(jobs, verdicts)]
        self._merge_fastchat(ctx.artifacts / ARTIFACT_DIR / "model_judgment" /
                             f"{judge_file_stem(judge_name)}_pair.jsonl",
                             [mt.pair_judgment_to_fastchat(j) for _, _, j in judgments],
                             key=lambda r: (r["question_id"], r["model_1"], r["model_2"], r["turn"],
                                            tuple(r["judge"])))
        records = self._merge_pair_samples(samples, seed, judgments, baseline, judge_name, by_name)
        return [j for _, _, j in judgments], records

    def _merge_pair_samples(self, samples: Sequence[SampleRecord], seed: int, judgments, baseline: str | None,
                            judge_name: str, by_name: Mapping[str, Side]) -> list[SampleRecord]:
        counts: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)

        def slot(ckpt: str, qid: int) -> dict[str, Any]:
            return counts[ckpt].setdefault(qid, {**dict.fromkeys(_COUNTS, 0), "opponents": [], "errors": []})

        for c1, c2, j in judgments:
            outcome = jg.combine_games(j.g1_winner, j.g2_winner)
            for me, other, my_slot in ((c1, c2, "model_1"), (c2, c1, "model_2")):
                if me == baseline:
                    continue  # FastChat leaves the baseline out of the table
                c = slot(me, j.question_id)
                if other not in c["opponents"]:
                    c["opponents"].append(other)
                if outcome.winner is None:
                    c["failed"] += 1
                    err = "; ".join(e for e in (j.g1_error, j.g2_error) if e)
                    c["errors"].append(f"turn {j.turn} vs {other}: {err}")
                elif outcome.winner == "tie":
                    c["tie"] += 1
                    c["inconsistent"] += outcome.consistent is False
                else:
                    c["win" if outcome.winner == my_slot else "loss"] += 1
        questions = self.questions()
        records = []
        for ckpt, per_q in counts.items():
            existing = {s.sample_id: s for s in samples
                        if (s.suite, s.checkpoint, s.seed) == (SUITE, ckpt, seed)}
            for qid, c in sorted(per_q.items()):
                n = c["win"] + c["loss"] + c["tie"]
                rate = 100.0 * (c["win"] + c["tie"] / 2) / n if n else None
                old = existing.get(str(qid))
                scores = {k: v for k, v in (old.scores.items() if old else []) if k not in PAIR_KEYS}
                scores["pairwise_win_rate"] = rate
                data = dict(old.data) if old else {"question_id": qid, "category": questions[qid].category,
                                                   "model": by_name[ckpt].model}
                data["pairwise"] = {**c, "judge": judge_name, "baseline": baseline}
                error = old.error if old else None
                if n == 0:
                    error = "; ".join(e for e in (error, "pairwise: no valid verdict") if e)
                records.append(SampleRecord(suite=SUITE, checkpoint=ckpt, seed=seed, sample_id=str(qid),
                                            scores=scores, error=error, data=data))
        return records

    # -- outputs --------------------------------------------------------------------------------

    def write_radar(self, ctx: SuiteContext, samples: Sequence[SampleRecord]) -> Path | None:
        """`artifacts/mtbench/radar.png`: per-category scores of every checkpoint (mean over seeds)."""
        means = category_means(samples)
        if not means:
            return None
        from evalbench.suites.mtbench.plots import radar_plot

        path = ctx.artifacts / ARTIFACT_DIR / "radar.png"
        radar_plot(means, path, title=f"MT-bench per-category scores (judge: {self.judge_name(ctx)})")
        return path

    def summarize(self, samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        return self.summarize_samples(samples)

    @staticmethod
    def summarize_samples(samples: Sequence[SampleRecord]) -> dict[str, float | int | None]:
        """Metrics of one checkpoint x seed (pure).

        Single grading follows FastChat's show_result: `score` is the mean of all valid ratings of
        both turns, `turn_1` / `turn_2` the per-turn means, `category/<c>` the mean of the valid
        ratings of category c; `n_failed` counts turns without a rating (judge failures and
        questions without a complete answer). The per-question `score` of the SampleRecords
        averages that question's valid turns, so its mean equals `score` when nothing failed.
        Pairwise, in percent: `pairwise_win_rate` = 100 (wins + ties/2) / n over all valid
        comparisons (FastChat's win_rate_adjusted x 100), `pairwise_win_rate_strict` = 100 wins / n
        (FastChat's win_rate x 100), `pairwise_loss_rate` = 100 losses / n, and counts.
        """
        recs = [s for s in samples if s.suite == SUITE]
        out: dict[str, float | int | None] = {"n_samples": len(recs)}
        judgments: list[mt.SingleJudgment] = []
        cats: dict[int, str] = {}
        for s in recs:
            qid = int(s.sample_id)
            if s.data.get("category"):
                cats[qid] = s.data["category"]
            for turn in (1, 2):
                key = f"turn_{turn}"
                if key in s.scores:
                    judgments.append(mt.SingleJudgment(qid, "m", "", "", turn, s.scores[key]))
        if judgments:
            complete = all(j.question_id in cats for j in judgments if j.score is not None)
            (sc,) = single_scores(judgments, cats if complete else None)
            out.update(score=sc.average, turn_1=sc.turn_1, turn_2=sc.turn_2, n_failed=sc.n_failed,
                       n_turn_1=sc.n_turn_1, n_turn_2=sc.n_turn_2)
            order = {c: i for i, c in enumerate(mt.CATEGORIES)}
            for cat in sorted(set(cats.values()), key=lambda c: (order.get(c, len(order)), c)):
                out[f"category/{cat}"] = sc.categories.get(cat)
        pair = [s.data["pairwise"] for s in recs if isinstance(s.data.get("pairwise"), dict)]
        if pair:
            tot = {k: sum(int(p.get(k, 0)) for p in pair) for k in _COUNTS}
            n = tot["win"] + tot["loss"] + tot["tie"]
            out.update({
                "pairwise_win_rate": 100.0 * (tot["win"] + tot["tie"] / 2) / n if n else None,
                "pairwise_win_rate_strict": 100.0 * tot["win"] / n if n else None,
                "pairwise_loss_rate": 100.0 * tot["loss"] / n if n else None,
                "n_pairwise": n, "n_pairwise_wins": tot["win"], "n_pairwise_losses": tot["loss"],
                "n_pairwise_ties": tot["tie"], "n_pairwise_failed": tot["failed"],
                "n_pairwise_inconsistent": tot["inconsistent"],
            })
        return out
