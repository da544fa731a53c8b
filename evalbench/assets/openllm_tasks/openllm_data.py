"""Loaders that turn the offline OpenLLM files into the documents lm-eval's own task configs expect.

lm-eval imports this file by path (`custom_dataset: !function openllm_data.load_arc` in the task
YAMLs generated next to it), so it is self-contained: standard library plus `datasets`.

Each loader returns a `datasets.DatasetDict` whose split names match the generated YAML and whose
rows have the fields of the hub dataset that lm-eval's registry task reads (ARC, TruthfulQA), or
the fields the task's own functions read (HellaSwag, GSM8K, MMLU: the shared files already use
the hub schema; WinoGrande: the llm-foundry pieces, see the `winogrande_*` functions). A bad row
raises ValueError naming file, line and field.
"""

from __future__ import annotations

import functools
import gzip
import json
from typing import Any

ARC_LABELS = ("A", "B", "C", "D", "E", "F", "G", "H")


def _fail(path: str, line: int | None, field: str | None, message: str) -> ValueError:
    where = f"{path}:{line}" if line is not None else str(path)
    if field:
        where += f" [{field}]"
    return ValueError(f"{where}: {message}")


@functools.lru_cache(maxsize=8)
def _read_jsonl(path: str) -> tuple[tuple[int, dict], ...]:
    opener = gzip.open if str(path).endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(path, lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise _fail(path, lineno, None, "expected a JSON object")
            rows.append((lineno, obj))
    return tuple(rows)


def _need(path: str, lineno: int, row: dict, field: str, kind: type | tuple[type, ...]) -> Any:
    if field not in row:
        raise _fail(path, lineno, field, "missing field")
    value = row[field]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise _fail(path, lineno, field, f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _dataset_dict(splits: dict[str, list[dict]]):
    import datasets

    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


# ---------------------------------------------------------------------------------------------
# ARC-Challenge (llm-foundry: query "Question: ...", choices, gold) -> allenai/ai2_arc schema


def arc_row(path: str, lineno: int, row: dict, index: int) -> dict:
    query = _need(path, lineno, row, "query", str)
    choices = _need(path, lineno, row, "choices", list)
    gold = _need(path, lineno, row, "gold", int)
    prefix = "Question: "
    if not query.startswith(prefix):
        raise _fail(path, lineno, "query", f"expected it to start with {prefix!r}")
    if not 0 <= gold < len(choices) or len(choices) > len(ARC_LABELS):
        raise _fail(path, lineno, "gold", f"{gold} is not an index into {len(choices)} choices")
    labels = list(ARC_LABELS[: len(choices)])
    # The converted file has no ids or labels: letters A.. stand in (lm-eval only uses the index
    # of answerKey among the labels, which is `gold`).
    return {"id": f"arc_challenge_test_{index}", "question": query[len(prefix):],
            "choices": {"text": [str(c) for c in choices], "label": labels}, "answerKey": labels[gold]}


def load_arc(path: str, **_: Any):
    return _dataset_dict({"test": [arc_row(path, n, r, i) for i, (n, r) in enumerate(_read_jsonl(path))]})


# ---------------------------------------------------------------------------------------------
# HellaSwag (original rowanz fields; lm-eval's process_docs builds query/choices/gold)


def load_hellaswag(path: str, **_: Any):
    rows = []
    for lineno, row in _read_jsonl(path):
        for field, kind in (("activity_label", str), ("ctx_a", str), ("ctx_b", str), ("endings", list)):
            _need(path, lineno, row, field, kind)
        label = _need(path, lineno, row, "label", (int, str))
        # The hub dataset stores the label as a string; lm-eval converts it with int().
        rows.append({**row, "label": str(label)})
    return _dataset_dict({"test": rows})


# ---------------------------------------------------------------------------------------------
# WinoGrande (llm-foundry: context_options, continuation, gold)


def winogrande_row(path: str, lineno: int, row: dict) -> dict:
    options = _need(path, lineno, row, "context_options", list)
    continuation = _need(path, lineno, row, "continuation", str)
    gold = _need(path, lineno, row, "gold", int)
    if len(options) != 2 or not all(isinstance(o, str) for o in options):
        raise _fail(path, lineno, "context_options", "expected 2 strings")
    if gold not in (0, 1):
        raise _fail(path, lineno, "gold", f"expected 0 or 1, got {gold}")
    return {"context_options": options, "continuation": continuation, "gold": gold}


def load_winogrande(path: str, **_: Any):
    return _dataset_dict({"test": [winogrande_row(path, n, r) for n, r in _read_jsonl(path)]})


def winogrande_doc_to_text(doc: dict) -> int:
    """The gold option index: lm-eval's `doc_to_text` for WinoGrande returns it (multiple inputs)."""
    return int(doc["gold"])


def winogrande_doc_to_choice(doc: dict) -> list[str]:
    """One context per option: the sentence up to the blank with that option filled in."""
    return list(doc["context_options"])


def winogrande_doc_to_target(doc: dict) -> str:
    """The shared continuation after the blank, stripped (lm-eval adds the target delimiter ' ')."""
    return doc["continuation"].strip()


# ---------------------------------------------------------------------------------------------
# TruthfulQA (mc_task.json: {question, mc1_targets: {answer: 0/1}, mc2_targets: {...}})


def truthfulqa_row(path: str, index: int, row: Any) -> dict:
    if not isinstance(row, dict):
        raise _fail(path, None, f"[{index}]", "expected a JSON object")
    out: dict[str, Any] = {}
    question = row.get("question")
    if not isinstance(question, str):
        raise _fail(path, None, f"[{index}].question", "missing or not a string")
    out["question"] = question
    for key in ("mc1_targets", "mc2_targets"):
        targets = row.get(key)
        if not isinstance(targets, dict) or not targets:
            raise _fail(path, None, f"[{index}].{key}", "expected a non-empty {answer: 0/1} object")
        # The hub dataset keeps the answers in file order as parallel choices/labels lists.
        out[key] = {"choices": list(targets), "labels": [int(v) for v in targets.values()]}
    return out


def load_truthfulqa(path: str, **_: Any):
    with open(path, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise _fail(path, exc.lineno, None, f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise _fail(path, None, None, "expected a JSON list of questions")
    return _dataset_dict({"validation": [truthfulqa_row(path, i, r) for i, r in enumerate(data)]})


# ---------------------------------------------------------------------------------------------
# GSM8K (question, answer ending in '#### <number>': the hub schema)


def load_gsm8k(path: str, **_: Any):
    rows = []
    for lineno, row in _read_jsonl(path):
        rows.append({"question": _need(path, lineno, row, "question", str),
                     "answer": _need(path, lineno, row, "answer", str)})
    return _dataset_dict({"test": rows})


# ---------------------------------------------------------------------------------------------
# MMLU (subject, question, choices, answer: the cais/mmlu schema), one subject per task


def mmlu_rows(path: str, subject: str) -> list[dict]:
    rows = []
    for lineno, row in _read_jsonl(path):
        if _need(path, lineno, row, "subject", str) != subject:
            continue
        choices = _need(path, lineno, row, "choices", list)
        answer = _need(path, lineno, row, "answer", int)
        if len(choices) != 4 or not 0 <= answer < 4:
            raise _fail(path, lineno, "choices", "expected 4 choices and an answer in 0..3")
        rows.append({"question": _need(path, lineno, row, "question", str), "subject": subject,
                     "choices": [str(c) for c in choices], "answer": answer})
    return rows


def load_mmlu(test_path: str, dev_path: str, subject: str, **_: Any):
    test, dev = mmlu_rows(test_path, subject), mmlu_rows(dev_path, subject)
    for path, rows in ((test_path, test), (dev_path, dev)):
        if not rows:
            raise _fail(path, None, "subject", f"no rows for subject {subject!r}")
    return _dataset_dict({"test": test, "dev": dev})

