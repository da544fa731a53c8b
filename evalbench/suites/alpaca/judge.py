"""AlpacaEval 2's weighted pairwise judge, run through evalbench backends.

Behaviour of the `weighted_alpaca_eval_gpt4_turbo` annotator (tatsu-lab/alpaca_eval,
`evaluators_configs/weighted_alpaca_eval_gpt4_turbo/configs.yaml`; Dubois et al. 2024),
re-implemented here:

* Prompt: the annotator's ChatML file (`<|im_start|>role ... <|im_end|>`), read at run time from the
  installed `alpaca_eval` package; placeholders `{instruction}`, `{output_1}`, `{output_2}` are filled
  (alpaca_eval's `utils.make_prompts` syntax: `{name}` without whitespace) and the text is split into
  chat messages the way alpaca_eval's `openai_completions` does (`utils.prompt_to_chatml`: role on the
  first line, content stripped, `system name=x` becomes a system message with `name`).
* Order: output_1 is the reference and output_2 the candidate, presented in a random order chosen
  per instruction (alpaca_eval seeds on the instruction too), here `stable_hash(instruction, seed)`;
  the choice is stored as alpaca_eval's `is_switched_outputs` (True: the candidate is shown first,
  labelled `m`). Judge repeats (`repeat` r >= 1, `--judge-repeats`) alternate it: repeat r shows
  the pair the other way round from repeat r - 1, with a judge seed of its own (own cache key).
* Verdict: one token, temperature 0, `logprobs` with `top_logprobs=5`; the preference is
  `2 - P(m) / (P(m) + P(M))` over the top-5 candidates of that token
  (`evalbench.judge.logprob.parse_logprob_preference`), mapped back to "candidate vs reference".
  alpaca_eval samples this token at temperature 1 ("should make no effect" since only the
  log-probs are read); we decode greedily so a cached verdict is also the reproducible one.
* Identical outputs are a draw (1.5) without a judge call, as alpaca_eval's pairwise annotator does.
* Local judges: `constrained=True` adds vLLM `structured_outputs.choice = ["m", "M"]`, so the first
  token is always a label. (vLLM applies the grammar mask before it computes log-probs, so the top
  log-probs then hold exactly the two labels, renormalised.)

The calls go through `evalbench.judge.Judge.compare` (verdict format `logprob`), which owns the
decoding, the cache and the parsing; this module renders the pairs and keeps alpaca_eval's
annotation shape. A verdict that holds neither label, a judge reply without log-probs, or a failed
request is a `Judgment` with `preference=None` and the reason in `error`; it is counted, never dropped silently
or averaged in. Nothing here imports alpaca_eval (its import changes the root logger's level); the
prompt file is found with `importlib.resources` on the package's spec.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalbench.config import SamplingSpec
from evalbench.errors import InputError, MissingExtra
from evalbench.io import stable_hash
from evalbench.judge.base import PairItem, Preference, as_judge
from evalbench.judge.formats import JUDGE_TOP_LOGPROBS, logprob_sampling, parse_logprob_generation
from evalbench.judge.logprob import to_candidate_preference
from evalbench.judge.prompts import JudgePrompt, chatml_to_messages, fill_template, placeholders
from evalbench.judge.repeats import repeat_seed
from evalbench.types import Generation, GenRequest

log = logging.getLogger(__name__)

__all__ = [
    "ANNOTATOR",
    "JUDGE_TOP_LOGPROBS",
    "PLACEHOLDERS",
    "JudgePrompt",
    "Judgment",
    "Pair",
    "annotation_row",
    "build_item",
    "build_request",
    "candidate_first",
    "chatml_to_messages",
    "fill_template",
    "judge_pairs",
    "judgment_from_preference",
    "judge_sampling",
    "load_annotator_prompt",
    "load_prompt_file",
    "parse_judgment",
    "repeat_candidate_first",
    "resolve_prompt",
]

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
PLACEHOLDERS = ("instruction", "output_1", "output_2")


# ------------------------------------------------------------------------------------- prompts
# JudgePrompt, fill_template and chatml_to_messages live in evalbench.judge.prompts (one prompt
# type for every suite); they are re-exported here, where alpaca_eval's format is documented.


def _alpaca_eval_files():
    """The installed alpaca_eval package as an importlib.resources Traversable, without executing
    its `__init__` (which imports 2000 modules and sets the root logger to INFO)."""
    import importlib.resources
    import importlib.util

    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("alpaca_eval", "eval")
    return importlib.resources.files(importlib.util.module_from_spec(spec))


def load_annotator_prompt(annotator: str = ANNOTATOR) -> JudgePrompt:
    """The prompt of an alpaca_eval annotator config shipped in the installed package.

    Reads `evaluators_configs/<annotator>/configs.yaml`, follows its `prompt_template` (relative to
    `evaluators_configs/`) and validates the template.

    Raises:
        MissingExtra: alpaca-eval is not installed (the `eval` extra).
        InputError: unknown annotator, or a config/prompt that does not have the expected shape.
    """
    import yaml

    configs = _alpaca_eval_files() / "evaluators_configs"
    cfg_file = configs / annotator / "configs.yaml"
    if not cfg_file.is_file():
        raise InputError(f"alpaca_eval has no annotator config '{annotator}'", path=str(cfg_file))
    cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
    try:
        relpath = cfg[annotator]["prompt_template"]
    except (KeyError, TypeError):
        raise InputError(f"no {annotator}.prompt_template in the annotator config", path=str(cfg_file),
                         field="prompt_template") from None
    prompt_file = configs.joinpath(*Path(relpath).parts)
    if not prompt_file.is_file():
        raise InputError("the annotator's prompt file is missing from the installed alpaca_eval",
                         path=str(prompt_file))
    template = prompt_file.read_text(encoding="utf-8")
    _validate_template(template, str(prompt_file))
    return JudgePrompt(name=annotator, template=template, source=f"alpaca_eval:evaluators_configs/{relpath}",
                       style="chatml", type="pairwise")


def load_prompt_file(path: str | Path) -> JudgePrompt:
    """A judge prompt from a file in the same format (ChatML with {instruction}, {output_1}, {output_2})."""
    path = Path(path)
    if not path.is_file():
        raise InputError("judge prompt file not found", path=path, field="judge_prompt")
    template = path.read_text(encoding="utf-8")
    _validate_template(template, str(path))
    return JudgePrompt(name=f"custom:{path.stem}", template=template, source=str(path.resolve()),
                       style="chatml", type="pairwise")


def resolve_prompt(path: str | Path | None = None) -> JudgePrompt:
    """`path`'s prompt if given, else the weighted_alpaca_eval_gpt4_turbo annotator's."""
    return load_prompt_file(path) if path is not None else load_annotator_prompt()


def _validate_template(template: str, source: str) -> None:
    names = placeholders(template)
    for key in PLACEHOLDERS:
        if names.count(key) != 1:
            raise InputError(f"the judge prompt must contain {{{key}}} exactly once (found {names.count(key)})",
                             path=source, field=key)
    chatml_to_messages(template, source=source)


# ---------------------------------------------------------------------------------- requests

def candidate_first(instruction: str, seed: int = 0) -> bool:
    """Whether the candidate is presented first (labelled `m`); alpaca_eval's `is_switched_outputs`.

    Seeded by the instruction's content (as alpaca_eval's `random_seed_column: instruction`), so every
    checkpoint meets the reference in the same order on the same instruction.
    """
    return bool(stable_hash("alpaca/is_switched_outputs", instruction, seed) & 1)


def judge_sampling(constrained: bool = False) -> SamplingSpec:
    """The judge's decoding: `evalbench.judge.formats.logprob_sampling` (one token, top-5 log-probs)."""
    return logprob_sampling(constrained=constrained)


@dataclass(frozen=True)
class Pair:
    """One comparison: the candidate's output against the reference output for an instruction."""

    instruction: str
    reference: str  # alpaca_eval's output_1
    candidate: str  # alpaca_eval's output_2


def _clip(text: str, max_chars: int | None) -> str:
    return text if max_chars is None else text[:max_chars]


def repeat_candidate_first(instruction: str, seed: int = 0, repeat: int = 0) -> bool:
    """The presentation order of judge repeat `repeat`: the seeded order for repeat 0, then
    alternating (repeat r shows the pair the other way round from repeat r - 1), because position
    bias is the main noise of a pairwise judge and two repeats should see both orders."""
    return candidate_first(instruction, seed) != bool(repeat % 2)


def build_item(pair: Pair, prompt: JudgePrompt, *, seed: int = 0, max_output_chars: int | None = None,
               repeat: int = 0) -> PairItem:
    """The judge's comparison of `pair`: the filled prompt, shown in the seeded order.

    `max_output_chars` cuts each output shown to the judge (for small-context local judges); the
    leaderboard shows them whole (None). `repeat` >= 1 is a judge repeat: the opposite order of
    repeat - 1 and its own judge seed (`evalbench.judge.repeats`); repeat 0 is the item as before.
    """
    first = repeat_candidate_first(pair.instruction, seed, repeat)
    ref, cand = _clip(pair.reference, max_output_chars), _clip(pair.candidate, max_output_chars)
    shown_1, shown_2 = (cand, ref) if first else (ref, cand)
    messages, _ = prompt.render({"instruction": pair.instruction, "output_1": shown_1, "output_2": shown_2})
    return PairItem(messages, candidate_first=first, format="logprob", seed=repeat_seed(repeat))


def build_request(pair: Pair, prompt: JudgePrompt, *, seed: int = 0, constrained: bool = False,
                  max_output_chars: int | None = None) -> tuple[GenRequest, bool]:
    """The judge request for `pair` (as `Judge.compare` sends it) and whether the candidate is first."""
    item = build_item(pair, prompt, seed=seed, max_output_chars=max_output_chars)
    return GenRequest(messages=item.messages, sampling=judge_sampling(constrained)), item.candidate_first


# ---------------------------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class Judgment:
    """One verdict. `preference` is about the candidate: in [1, 2], 2 = the candidate wins, None on
    failure (then `error` says why). `judged` is False for identical outputs (a draw, no call)."""

    preference: float | None
    is_switched_outputs: bool
    raw_completion: dict[str, Any] | None = None
    error: str | None = None
    judged: bool = True
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.preference is not None


def _finite_or_none(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _raw_completion(gen: Generation) -> dict[str, Any] | None:
    """The judge's reply in the OpenAI chat-choice shape alpaca_eval stores as `raw_completion`."""
    if not gen.choices:
        return None
    choice = gen.choices[0]
    raw: dict[str, Any] = {"text": choice.text, "finish_reason": choice.finish_reason, "index": 0,
                           "message": {"role": "assistant", "content": choice.text}}
    if choice.logprobs is not None:
        raw["logprobs"] = {"content": [
            {"token": t.token, "logprob": _finite_or_none(t.logprob),
             "top_logprobs": [{"token": tok, "logprob": lp} for tok, lp in t.top]}
            for t in choice.logprobs]}
    else:
        raw["logprobs"] = None
    if gen.usage:
        raw["total_tokens"] = sum(v for v in gen.usage.values() if isinstance(v, int))
    return raw


def parse_judgment(gen: Generation, *, is_switched_outputs: bool) -> Judgment:
    """Turn the judge's reply into a Judgment (candidate-oriented preference or a failure reason)."""
    raw = _raw_completion(gen)
    if not gen.ok:
        return Judgment(None, is_switched_outputs, raw, f"judge call failed: {gen.error or 'no choices'}",
                        cached=gen.cached)
    parsed = parse_logprob_generation(gen)
    if parsed.value is None:
        return Judgment(None, is_switched_outputs, raw, parsed.error, cached=gen.cached)
    pref = to_candidate_preference(float(parsed.value), candidate_first=is_switched_outputs)  # type: ignore[arg-type]
    return Judgment(float(pref), is_switched_outputs, raw, cached=gen.cached)  # type: ignore[arg-type]


def judgment_from_preference(pref: Preference) -> Judgment:
    """alpaca_eval's annotation view of a Judge verdict (the reply kept as `raw_completion`)."""
    raw = _raw_completion(pref.reply) if pref.reply is not None else None
    return Judgment(pref.preference, pref.candidate_first, raw, pref.error, cached=pref.cached)


def judge_pairs(judge, pairs: Sequence[Pair], prompt: JudgePrompt, *, seed: int = 0, constrained: bool = False,
                max_output_chars: int | None = None, desc: str | None = None, repeat: int = 0) -> list[Judgment]:
    """Judge every pair with `judge.compare` (cached: a rerun makes zero judge calls).

    Args:
        judge: a `evalbench.judge.Judge`; a bare (cached) backend is wrapped in a ModelJudge with
            `constrained` (a Judge carries its own constrained setting).
        repeat: which judge repeat this is (`build_item`); 0 is the ordinary judgment.

    Returns one Judgment per pair, in order. Identical outputs are a draw without a call. Transport
    failures that survive the client's retries propagate (ServerError); verdicts received before
    are cached.
    """
    judge = as_judge(judge, constrained=constrained)
    out: list[Judgment | None] = [None] * len(pairs)
    items: list[PairItem] = []
    where: list[int] = []
    for i, pair in enumerate(pairs):
        if pair.candidate == pair.reference:
            out[i] = Judgment(1.5, repeat_candidate_first(pair.instruction, seed, repeat), None, None, judged=False)
            continue
        items.append(build_item(pair, prompt, seed=seed, max_output_chars=max_output_chars, repeat=repeat))
        where.append(i)
    if items:
        prefs = judge.compare(items, desc=desc or f"alpaca judge ({len(items)} pairs)")
        for i, pref in zip(where, prefs):
            out[i] = judgment_from_preference(pref)
    failed = [j for j in out if j is not None and not j.ok]
    if failed:
        log.warning("%d of %d judgments failed; first reason: %s", len(failed), len(pairs), failed[0].error)
    return out  # type: ignore[return-value]


def annotation_row(pair: Pair, judgment: Judgment, *, generator_1: str, generator_2: str,
                   dataset: str | None, annotator: str) -> dict[str, Any]:
    """One row of an alpaca_eval annotations.json (output_1 = reference, output_2 = candidate).

    `preference` is null for a failed judgment and `error` carries the reason, so the file keeps
    every row; alpaca_eval's own readers treat null as "no annotation".
    """
    row: dict[str, Any] = {"instruction": pair.instruction, "output_1": pair.reference, "generator_1": generator_1}
    if dataset is not None:
        row["dataset"] = dataset
    row.update({"output_2": pair.candidate, "generator_2": generator_2, "annotator": annotator,
                "preference": judgment.preference, "is_switched_outputs": judgment.is_switched_outputs,
                "raw_completion": judgment.raw_completion, "error": judgment.error})
    return row
