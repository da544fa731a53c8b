"""Reward models: the scalar read-out used in training (`rm`) and `evalbench reward score`.

A reward model here is the base LM loaded as `AutoModelForSequenceClassification(num_labels=1)`
plus a peft LoRA adapter (task type SEQ_CLS) whose `modules_to_save` carries the trained `score`
head. The reward of a (prompt, response) is the head's output at the last non-padding token of
`chat_template(prompt + [assistant: response])`, found from the attention mask, so it does not
depend on which token id the tokenizer pads with (Ouyang et al. 2022 read the final token too).

`score_file` reads JSONL rows `{prompt, response, [checkpoint], ...}` (prompt: a string or a
message list) and writes the same rows with `reward` added (and `error` when a row could not be
scored: `reward` is then null). `score_pairs_file` reads preference pairs (the trainer's paired
formats) and adds `reward_chosen`, `reward_rejected` and `reward_margin`; `pair_summary` gives
their pairwise accuracy and reward mean/std. Scores go through the evalbench cache, keyed by the reward
model's content hash, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalbench.errors import InputError

log = logging.getLogger(__name__)


def reward_scores(model, input_ids, attention_mask):
    """Scalar rewards (B,) at the last attended token of each row, as float32.

    Works for a plain `*ForSequenceClassification` model and for its peft wrapper (LoRA layers
    are inside the backbone; the `score` head is peft's modules_to_save copy).
    """
    import torch

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(inner, inner.base_model_prefix)
    head = getattr(inner, "score", None)
    if head is None:
        raise InputError(f"{type(inner).__name__} has no 'score' head; not a decoder reward model")
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (positions * attention_mask).argmax(-1)  # rightmost attended token, any padding side
    picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return head(picked).squeeze(-1).float()


@dataclass
class RewardModel:
    """A loaded reward model with the tokenization it was trained with."""

    model: Any
    tokenizer: Any
    renderer: Any
    max_length: int
    max_prompt_length: int
    device: Any
    who: dict[str, Any]

    def score(self, prompts: Sequence[Sequence[dict]], responses: Sequence[str], batch_size: int = 8,
              progress=None) -> list[float]:
        """Rewards for (prompt messages, response) pairs, in order."""
        return self.score_completions(prompts, [_as_completion(r) for r in responses], batch_size, progress)

    def score_completions(self, prompts: Sequence[Sequence[dict]], completions: Sequence[Sequence[dict]],
                          batch_size: int = 8, progress=None) -> list[float]:
        """Rewards for (prompt messages, completion messages) pairs, in order (the completion is
        one or more turns starting with the assistant's, as the chosen/rejected side of a pair)."""
        import torch

        from evalbench.train.batches import pad_batch

        texts = [self.renderer.render(p, c) for p, c in zip(prompts, completions)]
        heads = self.tokenizer([t[0] for t in texts], add_special_tokens=False)["input_ids"]
        tails = self.tokenizer([t[1] for t in texts], add_special_tokens=False)["input_ids"]
        rows = []
        for h, t in zip(heads, tails):
            h = h[-self.max_prompt_length:]  # same truncation as in training
            rows.append(list(h) + list(t)[:max(1, self.max_length - len(h))])
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                ids, att, _ = pad_batch(chunk, [[] for _ in chunk], self.tokenizer.pad_token_id, self.device)
                out.extend(reward_scores(self.model, ids, att).cpu().tolist())
                if progress is not None:
                    progress.advance(len(chunk))
        return out


def load_reward_model(path: str | Path, device: str = "auto") -> RewardModel:
    """Load a trained reward model: a `evalbench train --method rm` output directory (peft
    adapter + train_meta.json), or a full sequence-classification model with one label.

    Raises:
        InputError: not a reward model (e.g. a policy adapter), or files missing.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from evalbench.provenance import content_hash, model_identity
    from evalbench.train.layout import META_FILE
    from evalbench.train.model import load_tokenizer
    from evalbench.train.tokens import Renderer

    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputError("reward model directory not found", path=path, field="--model")
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    meta_file = path / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    data = (meta.get("spec") or {}).get("data") or {}
    adapter_cfg = path / "adapter_config.json"
    if adapter_cfg.exists():
        cfg = json.loads(adapter_cfg.read_text())
        if cfg.get("task_type") != "SEQ_CLS":
            method = meta.get("method", "?")
            raise InputError(f"not a reward model: the adapter's task type is {cfg.get('task_type')!r} "
                             f"(trained with method {method!r}; train one with --method rm)", path=adapter_cfg,
                             field="task_type")
        base = (meta.get("base_model") or {}).get("name_or_path") or cfg.get("base_model_name_or_path")
        if not base:
            raise InputError("the adapter names no base model", path=adapter_cfg, field="base_model_name_or_path")
        from peft import PeftModel

        tokenizer = load_tokenizer(base)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(model, str(path))
        who = {"reward_model": "peft", "base": model_identity(base),
               "adapter_sha256": content_hash(path / "adapter_model.safetensors")}
    elif (path / "config.json").exists():
        config = json.loads((path / "config.json").read_text())
        if config.get("num_labels", len(config.get("id2label") or {}) or 2) != 1:
            raise InputError("not a reward model: a sequence-classification model with one label is needed",
                             path=path / "config.json", field="num_labels")
        tokenizer = load_tokenizer(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
        who = {"reward_model": "full", "model": model_identity(str(path))}
    else:
        raise InputError("neither a peft adapter (adapter_config.json) nor a model (config.json)", path=path,
                         field="--model")
    model.to(dev).eval()
    renderer = Renderer(tokenizer, chat_template=data.get("chat_template", True),
                        system_prompt=data.get("system_prompt"))
    max_length = int(data.get("max_length") or 2048)
    max_prompt = int(data.get("max_prompt_length") or max_length // 2)
    who["tokenization"] = {"chat_template": renderer.use_template, "system_prompt": renderer.system_prompt,
                           "max_length": max_length, "max_prompt_length": max_prompt}
    return RewardModel(model, tokenizer, renderer, max_length, max_prompt, dev, who)


def _row_prompt(row: dict) -> tuple[dict, ...]:
    from evalbench.train.data import RowError, parse_prompt

    if "prompt" not in row or row["prompt"] is None:
        raise RowError("missing field", "prompt")
    return parse_prompt(row["prompt"])


def _parsed_rows(path: Path, skip_bad_rows: bool,
                 parse: Callable[[int, dict], Any]) -> list[tuple[int, dict, Any, str | None]]:
    """(line, row, parse(line, row) or None, error or None) for each JSONL row of `path`.

    A bad row is an InputError naming the file, line and field, or with `skip_bad_rows` a row kept
    with its error (scored as missing, never silently dropped).
    """
    from evalbench.train.data import RowError, jsonl_rows

    if not path.exists():
        raise InputError("file not found", path=path, field="--data")
    out = []
    for lineno, row in jsonl_rows(path):
        try:
            if isinstance(row, RowError):
                raise row
            parsed = parse(lineno, row)
        except RowError as exc:
            if not skip_bad_rows:
                raise InputError(f"{exc} (pass --skip-bad-rows to keep going)", path=path, line=lineno,
                                 field=exc.field) from None
            out.append((lineno, row if isinstance(row, dict) else {}, None, f"[{exc.field}] {exc}"))
            continue
        out.append((lineno, row, parsed, None))
    if not out:
        raise InputError("no rows to score; the file is empty", path=path, field="--data")
    return out


def read_score_rows(path: Path, skip_bad_rows: bool) -> list[tuple[int, dict, tuple | None, str | None]]:
    """(line, row, prompt messages or None, error or None) for each JSONL row."""
    from evalbench.train.data import RowError

    def parse(lineno: int, row: dict) -> tuple:
        prompt = _row_prompt(row)
        response = row.get("response")
        if not isinstance(response, str):
            raise RowError("missing field" if response is None else
                           f"response must be a string, got {type(response).__name__}", "response")
        return prompt

    return _parsed_rows(path, skip_bad_rows, parse)


def _as_completion(response: str) -> tuple[dict, ...]:
    return ({"role": "assistant", "content": response},)


def _item_key(prompt: Sequence[dict], completion: Sequence[dict]) -> dict[str, Any]:
    # a single assistant turn is keyed as a plain response, so `--pairs` and plain scoring share entries
    if len(completion) == 1 and completion[0].get("role") == "assistant":
        return {"prompt": list(prompt), "response": completion[0]["content"]}
    return {"prompt": list(prompt), "completion": list(completion)}


def score_items(rm: RewardModel, items: Sequence[tuple[Sequence[dict], Sequence[dict]]], *, batch_size: int = 8,
                cache=None) -> list[float]:
    """Rewards of (prompt messages, completion messages) items, through the cache when one is given."""
    from evalbench.cache import cache_key
    from evalbench.progress import track

    how = {"kind": "reward", **rm.who["tokenization"]}
    keys = [cache_key(rm.who, _item_key(p, c), how) for p, c in items]
    rewards: list[float | None] = [None] * len(items)
    todo = []
    for i, key in enumerate(keys):
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            rewards[i] = float(hit["reward"])
        else:
            todo.append(i)
    log.info("reward scoring: %d items, %d cached, %d to score", len(items), len(items) - len(todo), len(todo))
    with track("reward score", total=len(todo)) as bar:
        for start in range(0, len(todo), 64):  # write to the cache every 64 items: resumable
            chunk = todo[start:start + 64]
            scores = rm.score_completions([items[i][0] for i in chunk], [items[i][1] for i in chunk],
                                          batch_size=batch_size, progress=bar)
            for i, s in zip(chunk, scores):
                rewards[i] = s
                if cache is not None:
                    cache.put(keys[i], {"reward": s}, who=rm.who)
    done = [r for r in rewards if r is not None]
    assert len(done) == len(items)  # every item was cached or scored
    return done


def score_file(rm: RewardModel, data: Path, *, batch_size: int = 8, skip_bad_rows: bool = False,
               cache=None) -> list[dict]:
    """Rows of `data` with `reward` added (null + `error` for a bad row when skipping)."""
    rows = read_score_rows(data, skip_bad_rows)
    good = [i for i, r in enumerate(rows) if r[3] is None]
    scores = score_items(rm, [(rows[i][2], _as_completion(rows[i][1]["response"])) for i in good],
                         batch_size=batch_size, cache=cache)
    rewards: list[float | None] = [None] * len(rows)
    for i, s in zip(good, scores):
        rewards[i] = s
    out = []
    for (_, row, _, err), reward in zip(rows, rewards):
        new = dict(row)
        new["reward"] = reward
        if err is not None:
            new["error"] = err
        out.append(new)
    return out


# --------------------------------------------------------------------------- pairs


def read_pair_rows(path: Path, skip_bad_rows: bool) -> list[tuple[int, dict, Any, str | None]]:
    """(line, row, PreferencePair or None, error or None) for each JSONL row of preference pairs
    (every paired format the trainer reads: TRL, HH dialogues, UltraFeedback message lists)."""
    from evalbench.train.data import RowRef, parse_pair

    return _parsed_rows(path, skip_bad_rows, lambda lineno, row: parse_pair(row, RowRef(str(path), lineno))[1])


def score_pairs_file(rm: RewardModel, data: Path, *, batch_size: int = 8, skip_bad_rows: bool = False,
                     cache=None) -> list[dict]:
    """Rows of `data` with `reward_chosen`, `reward_rejected` and `reward_margin` (chosen − rejected)
    added; all three null with an `error` for a bad row when skipping."""
    rows = read_pair_rows(data, skip_bad_rows)
    good = [i for i, r in enumerate(rows) if r[2] is not None]
    items = []
    for i in good:
        pair = rows[i][2]
        items += [(pair.prompt, pair.chosen), (pair.prompt, pair.rejected)]
    scores = score_items(rm, items, batch_size=batch_size, cache=cache)
    by_row = {i: (scores[2 * k], scores[2 * k + 1]) for k, i in enumerate(good)}
    out = []
    for i, (_, row, _, err) in enumerate(rows):
        new = dict(row)
        chosen, rejected = by_row.get(i, (None, None))
        new["reward_chosen"], new["reward_rejected"] = chosen, rejected
        new["reward_margin"] = None if chosen is None else chosen - rejected
        if err is not None:
            new["error"] = err
        out.append(new)
    return out


def pair_summary(rows: Sequence[dict]) -> dict[str, Any]:
    """Pairwise accuracy and reward statistics of scored pairs (rows of `score_pairs_file`).

    accuracy: the fraction of pairs whose chosen reward is strictly higher (ties count as
    misses and are also reported); std values are population std (ddof = 0), as the trainer's
    `rewards/std`.
    """
    scored = [r for r in rows if r.get("reward_margin") is not None]
    n = len(scored)

    def mean_std(xs: Sequence[float]) -> tuple[float | None, float | None]:
        if not xs:
            return None, None
        m = sum(xs) / len(xs)
        return m, (sum((x - m) ** 2 for x in xs) / len(xs)) ** 0.5

    chosen = [r["reward_chosen"] for r in scored]
    rejected = [r["reward_rejected"] for r in scored]
    margins = [r["reward_margin"] for r in scored]
    everything = chosen + rejected
    return {
        "pairs": n, "failed": len(rows) - n,
        "accuracy": sum(m > 0 for m in margins) / n if n else None, "ties": sum(m == 0 for m in margins),
        "margin_mean": mean_std(margins)[0], "margin_std": mean_std(margins)[1],
        "chosen_mean": mean_std(chosen)[0], "rejected_mean": mean_std(rejected)[0],
        "reward_mean": mean_std(everything)[0], "reward_std": mean_std(everything)[1],
    }
