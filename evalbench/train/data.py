"""Preference data for the trainer: read rows and parse the known formats into examples.

Row formats (detected per row):
- TRL explicit prompt: `{prompt, chosen, rejected}`; each a string or a list of `{role, content}`
  messages. A string prompt is one user turn; a string completion is one assistant turn.
- UltraFeedback-binarized: `{prompt: str, chosen: [user, assistant], rejected: [...]}`: message
  lists that repeat the prompt; the repeated prefix is removed.
- TRL implicit prompt: `{chosen, rejected}` message lists sharing their first turns.
- Anthropic HH: `{chosen, rejected}` strings `"\\n\\nHuman: ...\\n\\nAssistant: ..."`; the prompt is
  every turn before the last `Assistant:` turn, which both sides must share.
- Unpaired (KTO): `{prompt, completion, label}` with a boolean (or 0/1) label. Paired rows give
  unpaired examples too (chosen = desirable, rejected = undesirable), TRL's convention.

A malformed row raises `InputError` naming the file, the row (1-based line for JSONL, 1-based
row number otherwise) and the field; with `skip_bad_rows` it is skipped and counted instead.

Tokenization (chat template, prompt masking, truncation) is `evalbench.train.tokens`.

Pure Python; no torch.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalbench.errors import EvalbenchError, InputError
from evalbench.io import open_text, sha256_file

log = logging.getLogger(__name__)

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}
# How many bad-row reasons are kept for the report (all are counted).
_KEEP_REASONS = 10


class RowError(ValueError):
    """A row that cannot be used; `field` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RowRef:
    """Where an example came from: file (or `hub_id[split]`) and 1-based row/line number."""

    source: str
    row: int

    def error(self, message: str, field: str | None = None) -> InputError:
        return InputError(message, path=self.source, line=self.row, field=field)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt (messages) with a preferred and a dispreferred completion (assistant turns)."""

    prompt: tuple[Message, ...]
    chosen: tuple[Message, ...]
    rejected: tuple[Message, ...]
    ref: RowRef


@dataclass(frozen=True)
class UnpairedExample:
    """A prompt with one completion labelled desirable (True) or undesirable (False)."""

    prompt: tuple[Message, ...]
    completion: tuple[Message, ...]
    label: bool
    ref: RowRef


@dataclass
class LoadReport:
    """What reading the data did: counts for train_meta.json and the log."""

    source: str
    sha256: str | None
    rows_read: int = 0
    bad_rows: int = 0
    bad_reasons: list[str] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    examples: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "rows_read": self.rows_read,
                "bad_rows_skipped": self.bad_rows, "bad_row_reasons": list(self.bad_reasons),
                "formats": dict(self.formats), "examples": self.examples}


# --------------------------------------------------------------------------- reading


def locate(path: str) -> tuple[str, Path | None]:
    """("file", path) for a local or data-dir file, ("hub", None) for a hub dataset id."""
    local = Path(path).expanduser()
    if local.exists():
        if local.is_dir():
            raise InputError("expected a data file, got a directory", path=local, field="data.path")
        return "file", local
    from evalbench.data import data_dir

    root = data_dir()
    if root is not None and (root / path).exists():
        return "file", root / path
    suffixes = {s for s in local.suffixes}
    if suffixes & {".jsonl", ".json", ".parquet", ".gz"} or path.startswith(("/", ".", "~")) or path.count("/") > 1:
        where = (f" (nor under the data dir {root})" if root is not None else
                 " (a relative path is also looked up under the data dir: set EVALBENCH_DATA_DIR or --data-dir)")
        raise InputError(f"data file not found{where}", path=path, field="data.path")
    return "hub", None


def _plain(obj: Any) -> Any:
    """numpy / arrow values -> plain Python (lists, dicts, str, bool, numbers)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _plain(obj.tolist())
    return obj


def iter_rows(spec) -> tuple[str, str | None, Iterator[tuple[int, dict | RowError]]]:
    """(source name, sha256 or fingerprint, iterator of (row number, row or RowError))."""
    kind, path = locate(spec.path)
    if kind == "hub":
        return _hub_rows(spec)
    assert path is not None
    name = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    readers = {".jsonl": jsonl_rows, ".jsonl.gz": jsonl_rows, ".json": _json_rows, ".json.gz": _json_rows,
               ".parquet": _parquet_rows}
    reader = readers.get(name.lower())
    if reader is None:
        raise InputError(f"unsupported data file type {name or '(none)'!r}; use .jsonl, .json or .parquet",
                         path=path, field="data.path")
    return str(path), sha256_file(path), reader(path)


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    """(line number, object or RowError) for each non-blank line of a JSONL file (.gz too)."""
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, RowError(f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            yield lineno, obj if isinstance(obj, dict) else RowError(
                f"expected a JSON object, got {type(obj).__name__}")


def _json_rows(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    try:
        with open_text(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno) from None
    if not isinstance(data, list):
        raise InputError("expected a JSON list of row objects (or use .jsonl)", path=path)
    for i, obj in enumerate(data, start=1):
        yield i, obj if isinstance(obj, dict) else RowError(f"expected a JSON object, got {type(obj).__name__}")


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    from evalbench.errors import require

    pq = require("pyarrow.parquet", "eval")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 -- arrow raises several types for a corrupt file
        raise InputError(f"cannot read parquet: {exc}", path=path) from None
    yield from enumerate(table.to_pylist(), start=1)


def _hub_rows(spec) -> tuple[str, str | None, Iterator[tuple[int, dict | RowError]]]:
    from evalbench.errors import require

    datasets = require("datasets", "eval")
    source = f"{spec.path}[{spec.split}]"
    try:
        ds = datasets.load_dataset(spec.path, spec.name, split=spec.split)
    except Exception as exc:  # noqa: BLE001 -- offline, unknown id, gated: one actionable line
        raise EvalbenchError(
            f"could not load hub dataset {spec.path!r} (split {spec.split!r}): {type(exc).__name__}: "
            f"{str(exc)[:200]}; pass a local .jsonl/.json/.parquet file instead") from None
    fingerprint = getattr(ds, "_fingerprint", None)
    return source, fingerprint, ((i, _plain(row)) for i, row in enumerate(ds, start=1))


# --------------------------------------------------------------------------- parsing


def _messages(value: Any, name: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise RowError("expected a non-empty list of {role, content} messages", name)
    out = []
    for i, msg in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(msg, dict):
            raise RowError(f"expected a message object, got {type(msg).__name__}", where)
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise RowError(f"role must be one of {', '.join(ROLES)}, got {role!r}", f"{where}.role")
        if not isinstance(content, str):
            raise RowError(f"content must be a string, got {type(content).__name__}", f"{where}.content")
        out.append({"role": role, "content": content})
    return tuple(out)


def parse_prompt(value: Any) -> tuple[Message, ...]:
    """A prompt (a string or a message list not ending with an assistant turn) as messages.

    Raises:
        RowError: empty, malformed, or ending with an assistant turn.
    """
    if isinstance(value, str):
        if not value.strip():
            raise RowError("prompt is empty", "prompt")
        return ({"role": "user", "content": value},)
    msgs = _messages(value, "prompt")
    if msgs[-1]["role"] == "assistant":
        raise RowError("the prompt ends with an assistant turn; the completion must answer it", "prompt")
    return msgs


def _completion(value: Any, name: str, prompt: tuple[Message, ...]) -> tuple[Message, ...]:
    if isinstance(value, str):
        if not value.strip():
            raise RowError("completion is empty", name)
        return ({"role": "assistant", "content": value},)
    msgs = _messages(value, name)
    # UltraFeedback-binarized repeats the prompt turns in chosen/rejected: drop that prefix.
    n = len(prompt)
    if len(msgs) > n and tuple(msgs[:n]) == prompt:
        msgs = msgs[n:]
    elif msgs[0]["role"] == "user" and len(prompt) == 1 and msgs[0]["content"].strip() == prompt[0]["content"].strip():
        msgs = msgs[1:]
    if not msgs:
        raise RowError("no assistant turn after the prompt", name)
    if msgs[0]["role"] != "assistant":
        raise RowError(f"the completion must start with an assistant turn, got {msgs[0]['role']!r}", name)
    if not any(m["content"].strip() for m in msgs):
        raise RowError("completion is empty", name)
    return msgs


def parse_hh(text: Any, name: str) -> tuple[Message, ...]:
    """An Anthropic HH dialogue string -> messages (Human -> user, Assistant -> assistant)."""
    if not isinstance(text, str):
        raise RowError(f"expected a dialogue string, got {type(text).__name__}", name)
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise RowError("text before the first '\\n\\nHuman:' turn", name)
    msgs = [{"role": _HH_ROLES[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts) - 1, 2)]
    if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
        raise RowError("an HH dialogue needs a Human turn followed by a final Assistant turn", name)
    return tuple(msgs)


def _is_hh(row: dict) -> bool:
    c = row.get("chosen")
    return isinstance(c, str) and "\n\nHuman:" in c and "\n\nAssistant:" in c


def parse_pair(row: dict, ref: RowRef) -> tuple[str, PreferencePair]:
    """(format name, pair) of one paired row; raises RowError."""
    for name in ("chosen", "rejected"):
        if name not in row or row[name] is None:
            raise RowError("missing field", name)
    if "prompt" in row and row["prompt"] is not None:
        prompt = parse_prompt(row["prompt"])
        chosen = _completion(row["chosen"], "chosen", prompt)
        rejected = _completion(row["rejected"], "rejected", prompt)
        fmt = "ultrafeedback" if isinstance(row["chosen"], list) and len(row["chosen"]) > len(chosen) else "trl"
    elif _is_hh(row):
        c, r = parse_hh(row["chosen"], "chosen"), parse_hh(row["rejected"], "rejected")
        prompt, chosen, rejected = c[:-1], c[-1:], r[-1:]
        if r[:-1] != prompt:
            raise RowError("chosen and rejected dialogues differ before their last Assistant turn "
                           "(not the same prompt)", "rejected")
        if not chosen[0]["content"]:
            raise RowError("the last Assistant turn is empty", "chosen")
        if not rejected[0]["content"]:
            raise RowError("the last Assistant turn is empty", "rejected")
        fmt = "hh"
    elif isinstance(row["chosen"], list) and isinstance(row["rejected"], list):
        c, r = _messages(row["chosen"], "chosen"), _messages(row["rejected"], "rejected")
        if c == r:
            raise RowError("chosen and rejected are identical", "rejected")
        n = 0
        while n < min(len(c), len(r)) and c[n] == r[n]:
            n += 1
        # The shared prompt must end right before an assistant turn that starts both completions.
        while n > 0 and (n >= len(c) or n >= len(r) or c[n]["role"] != "assistant"):
            n -= 1
        if n == 0:
            raise RowError("no 'prompt' field and no shared first turns in chosen/rejected", "prompt")
        prompt, chosen, rejected = c[:n], c[n:], r[n:]
        for name, msgs in (("chosen", chosen), ("rejected", rejected)):
            if not msgs or msgs[0]["role"] != "assistant":
                raise RowError("the completion must start with an assistant turn", name)
        fmt = "trl-implicit"
    else:
        raise RowError("no 'prompt' field, and chosen/rejected are neither HH dialogues "
                       "('\\n\\nHuman: ... \\n\\nAssistant: ...') nor message lists", "prompt")
    if chosen == rejected:
        raise RowError("chosen and rejected are identical", "rejected")
    return fmt, PreferencePair(prompt, chosen, rejected, ref)


def parse_unpaired(row: dict, ref: RowRef) -> UnpairedExample:
    for name in ("prompt", "completion", "label"):
        if name not in row or row[name] is None:
            raise RowError("missing field", name)
    label = row["label"]
    if isinstance(label, bool):
        pass
    elif isinstance(label, int) and label in (0, 1):
        label = bool(label)
    else:
        raise RowError(f"label must be true/false (or 1/0), got {label!r}", "label")
    prompt = parse_prompt(row["prompt"])
    return UnpairedExample(prompt, _completion(row["completion"], "completion", prompt), label, ref)


def _parse(row: dict, ref: RowRef) -> tuple[str, PreferencePair | UnpairedExample]:
    if "completion" in row and "label" in row and "chosen" not in row:
        return "unpaired", parse_unpaired(row, ref)
    if "chosen" in row or "rejected" in row:
        return parse_pair(row, ref)
    raise RowError("expected {prompt, chosen, rejected} (or HH {chosen, rejected}) or "
                   f"{{prompt, completion, label}}; got fields {sorted(row)[:8]}", "chosen")


def load_examples(spec, *, paired: bool) -> tuple[list[PreferencePair] | list[UnpairedExample], LoadReport]:
    """Read and parse `spec` (a DataSpec) into pairs (paired=True) or unpaired examples.

    Unpaired examples are also derived from pairs (each pair gives its chosen as desirable
    and its rejected as undesirable, in that order). Paired training on unpaired rows is an
    error naming the first such row.

    Raises:
        InputError: a bad row (unless `spec.skip_bad_rows`), no usable rows, a missing file.
    """
    source, sha, rows = iter_rows(spec)
    report = LoadReport(source=source, sha256=sha)
    out: list[Any] = []
    seen = used = 0
    for rowno, row in rows:
        report.rows_read += 1
        if seen < spec.offset:
            seen += 1
            continue
        ref = RowRef(source, rowno)
        try:
            if isinstance(row, RowError):
                raise row
            fmt, ex = _parse(row, ref)
            if paired and isinstance(ex, UnpairedExample):
                raise RowError("an unpaired {prompt, completion, label} row, but this method trains on "
                               "pairs {prompt, chosen, rejected}", "chosen")
        except RowError as exc:
            if not spec.skip_bad_rows:
                raise ref.error(f"{exc} (pass --skip-bad-rows to skip bad rows)", exc.field) from None
            report.bad_rows += 1
            if len(report.bad_reasons) < _KEEP_REASONS:
                report.bad_reasons.append(f"{source}:{rowno} [{exc.field}]: {exc}")
            continue
        report.formats[fmt] = report.formats.get(fmt, 0) + 1
        if not paired and isinstance(ex, PreferencePair):
            out.append(UnpairedExample(ex.prompt, ex.chosen, True, ex.ref))
            out.append(UnpairedExample(ex.prompt, ex.rejected, False, ex.ref))
        else:
            out.append(ex)
        used += 1
        if spec.limit is not None and used >= spec.limit:  # limit counts usable rows
            break
    report.examples = len(out)
    if report.bad_rows:
        log.warning("skipped %d bad row(s) of %s; first: %s", report.bad_rows, source, report.bad_reasons[0])
    if not out:
        why = f" ({report.bad_rows} bad row(s) skipped)" if report.bad_rows else ""
        raise InputError(f"no usable rows{why}; the dataset is empty", path=source, field="data.path")
    return out, report
