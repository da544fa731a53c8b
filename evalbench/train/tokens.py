"""Tokenization of preference data: chat template, prompt masking, truncation, and data identity.

Follows TRL: prompt and completion are rendered with the tokenizer's chat template
(`completion = render(prompt + completion) - render(prompt, add_generation_prompt=True)`),
tokenized separately and concatenated, so the prompt mask is exact. The prompt keeps its last
`max_prompt_length` tokens (TRL's `keep_end`); a completion longer than what is left of
`max_length` is cut, skipped or rejected (`DataSpec.overlong`). Every cut is counted.

Input: the parsed examples of `evalbench.train.data`. Pure Python apart from the tokenizer object
passed in; no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evalbench.errors import EvalbenchError, InputError
from evalbench.io import canonical_json, sha256_text
from evalbench.train.data import Message, PreferencePair, RowRef, UnpairedExample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizedPair:
    prompt: tuple[int, ...]
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    ref: RowRef


@dataclass(frozen=True)
class TokenizedUnpaired:
    prompt: tuple[int, ...]
    completion: tuple[int, ...]
    label: bool
    ref: RowRef


@dataclass
class TruncationReport:
    """Counts of what truncation did (for train_meta.json and the log)."""

    max_length: int
    max_prompt_length: int
    examples: int = 0
    prompts_truncated: int = 0
    completions_truncated: int = 0
    skipped_overlong: int = 0
    longest_tokens: int = 0
    total_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "max_prompt_length": self.max_prompt_length,
                "examples": self.examples, "prompts_truncated": self.prompts_truncated,
                "completions_truncated": self.completions_truncated, "skipped_overlong": self.skipped_overlong,
                "longest_tokens_after_truncation": self.longest_tokens,
                "mean_tokens": round(self.total_tokens / max(1, self.examples), 2)}


class Renderer:
    """Prompt / completion texts through the chat template (or plain text without one)."""

    def __init__(self, tokenizer, *, chat_template: bool = True, system_prompt: str | None = None):
        self.tok = tokenizer
        self.use_template = chat_template and bool(getattr(tokenizer, "chat_template", None))
        if chat_template and not self.use_template:
            log.warning("the tokenizer has no chat template; prompts and completions are joined as "
                        "plain text with EOS after each completion")
        self.system_prompt = system_prompt
        self.eos = tokenizer.eos_token or ""
        self.bos = tokenizer.bos_token if not self.use_template else None

    def _with_system(self, prompt: Sequence[Message]) -> list[Message]:
        msgs = [dict(m) for m in prompt]
        if self.system_prompt and (not msgs or msgs[0]["role"] != "system"):
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs

    def render(self, prompt: Sequence[Message], completion: Sequence[Message]) -> tuple[str, str]:
        msgs = self._with_system(prompt)
        if not self.use_template:
            text = "\n\n".join(m["content"] for m in msgs)
            return (self.bos or "") + text + "\n\n", "\n\n".join(m["content"] for m in completion) + self.eos
        head = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        full = self.tok.apply_chat_template(msgs + [dict(m) for m in completion], tokenize=False)
        if not full.startswith(head):
            raise EvalbenchError(
                "the tokenizer's chat template does not render the prompt (with the generation prompt) "
                "as a prefix of the full conversation, so completion tokens cannot be masked exactly; "
                "set data.chat_template=false or fix the template")
        return head, full[len(head):]

    def render_prompt(self, prompt: Sequence[Message]) -> str:
        return self.render(prompt, ({"role": "assistant", "content": ""},))[0]


def _encode(tokenizer, texts: list[str]) -> list[tuple[int, ...]]:
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [tuple(x) for x in ids]


def _fit(prompt: tuple[int, ...], completions: list[tuple[int, ...]], names: list[str], ref: RowRef, spec,
         report: TruncationReport) -> tuple[tuple[int, ...], list[tuple[int, ...]]] | None:
    """Apply the truncation policy to one example; None = skipped."""
    if len(prompt) > spec.max_prompt_length:
        prompt = prompt[-spec.max_prompt_length:]  # keep the end: the last turn is what is answered
        report.prompts_truncated += 1
    room = spec.max_length - len(prompt)
    fitted = []
    for name, comp in zip(names, completions):
        if not comp:
            raise ref.error("the completion is empty after tokenization", name)
        if len(comp) > room:
            if spec.overlong == "error":
                raise ref.error(f"{len(prompt) + len(comp)} tokens after prompt truncation exceed "
                                f"max_length={spec.max_length} (data.overlong=error; use truncate or skip)", name)
            if spec.overlong == "skip":
                report.skipped_overlong += 1
                return None
            comp = comp[:room]
            report.completions_truncated += 1
        fitted.append(comp)
    for comp in fitted:
        n = len(prompt) + len(comp)
        report.longest_tokens = max(report.longest_tokens, n)
        report.total_tokens += n
    report.examples += 1
    return prompt, fitted


def tokenize_pairs(pairs: Sequence[PreferencePair], tokenizer, spec) -> tuple[list[TokenizedPair], TruncationReport]:
    """Pairs -> token ids (prompt, chosen completion, rejected completion), truncated per `spec`."""
    r = Renderer(tokenizer, chat_template=spec.chat_template, system_prompt=spec.system_prompt)
    texts = [(r.render(p.prompt, p.chosen), r.render(p.prompt, p.rejected)) for p in pairs]
    prompts = _encode(tokenizer, [c[0] for c, _ in texts])
    chosen = _encode(tokenizer, [c[1] for c, _ in texts])
    rejected = _encode(tokenizer, [rj[1] for _, rj in texts])
    report = TruncationReport(spec.max_length, spec.max_prompt_length)
    out = []
    for pair, (c_text, r_text), p_ids, c_ids, r_ids in zip(pairs, texts, prompts, chosen, rejected):
        if c_text[0] != r_text[0]:  # a system prompt or template quirk made the prompts differ
            raise pair.ref.error("chosen and rejected render to different prompts", "prompt")
        fitted = _fit(p_ids, [c_ids, r_ids], ["chosen", "rejected"], pair.ref, spec, report)
        if fitted is None:
            continue
        p, (c, rj) = fitted
        if c == rj:
            raise pair.ref.error("chosen and rejected are identical after truncation to "
                                 f"max_length={spec.max_length}", "rejected")
        out.append(TokenizedPair(p, c, rj, pair.ref))
    _log_truncation(report)
    if not out:
        raise InputError(f"every example is longer than max_length={spec.max_length} (all skipped)",
                         field="data.max_length")
    return out, report


def tokenize_unpaired(examples: Sequence[UnpairedExample], tokenizer, spec
                      ) -> tuple[list[TokenizedUnpaired], TruncationReport]:
    r = Renderer(tokenizer, chat_template=spec.chat_template, system_prompt=spec.system_prompt)
    texts = [r.render(e.prompt, e.completion) for e in examples]
    prompts = _encode(tokenizer, [t[0] for t in texts])
    comps = _encode(tokenizer, [t[1] for t in texts])
    report = TruncationReport(spec.max_length, spec.max_prompt_length)
    out = []
    for ex, p_ids, c_ids in zip(examples, prompts, comps):
        fitted = _fit(p_ids, [c_ids], ["completion"], ex.ref, spec, report)
        if fitted is not None:
            out.append(TokenizedUnpaired(fitted[0], fitted[1][0], ex.label, ex.ref))
    _log_truncation(report)
    if not out:
        raise InputError(f"every example is longer than max_length={spec.max_length} (all skipped)",
                         field="data.max_length")
    return out, report


def _log_truncation(report: TruncationReport) -> None:
    if report.prompts_truncated or report.completions_truncated or report.skipped_overlong:
        log.info("truncation (max_length=%d, max_prompt_length=%d): %d prompt(s) cut, %d completion(s) cut, "
                 "%d example(s) skipped, of %d", report.max_length, report.max_prompt_length,
                 report.prompts_truncated, report.completions_truncated, report.skipped_overlong,
                 report.examples + report.skipped_overlong)


def kl_partners(examples: Sequence[TokenizedUnpaired]) -> list[int] | None:
    """For KTO's reference point: for each example, the index of a completion to mismatch with its prompt.

    The next example (cyclically) whose prompt differs, fixed per dataset as TRL's KL dataset is
    (it rotates completions once at preprocessing). None when every prompt is the same.
    """
    n = len(examples)
    out = []
    for i in range(n):
        j = next((k % n for k in range(i + 1, i + n) if examples[k % n].prompt != examples[i].prompt), None)
        if j is None:
            return None
        out.append(j)
    return out


def tokenized_hash(examples: Sequence[TokenizedPair] | Sequence[TokenizedUnpaired]) -> str:
    """sha256 of the token ids (and labels) of every example: the identity of the training data."""
    rows = []
    for e in examples:
        if isinstance(e, TokenizedPair):
            rows.append([e.prompt, e.chosen, e.rejected])
        else:
            rows.append([e.prompt, e.completion, e.label])
    return sha256_text(canonical_json(rows))

