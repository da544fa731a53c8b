"""Small file helpers shared by every stage: located errors, atomic writes, stable hashes."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from evalbench.errors import InputError


def open_text(path: str | Path, mode: str = "rt"):
    """Open a text file, transparently gunzipping `*.gz`."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    try:
        with open_text(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno) from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for each non-blank line; bad JSON names file and line."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path,
                                 line=lineno) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno)
            yield lineno, obj


def read_jsonl(path: str | Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def read_jsonl_tolerant(path: str | Path) -> list[dict]:
    """Read an append-only log whose last line may be torn by a crash: a bad *last* line is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows: list[dict] = []
    with open_text(path) as fh:
        lines = fh.read().split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[lineno:]):
                raise InputError("invalid JSON in the middle of an append-only log", path=path,
                                 line=lineno) from None
    return rows


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write JSON via a temp file + rename so readers never see half a file."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=_json_default) + "\n")


def _umask_file_mode() -> int:
    """The mode `open()` gives a new file under the process umask (0o644 under umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# Read once: changing the umask is process-wide and racy, so it is not done on every write.
FILE_MODE = _umask_file_mode()


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    # mkstemp creates 0600 files; a results file is meant to be read like any other the user writes.
    os.fchmod(fd, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Append rows, one JSON object per line, flushed and fsynced; returns the count.

    A torn last line (a writer killed mid-line) is cut off first: appending after it would glue
    the first new record onto the fragment and turn it into a bad line in the middle of the log.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(_to_jsonable(r), ensure_ascii=False, default=_json_default) for r in rows]
    if not lines:
        return 0
    _cut_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return len(lines)


def _cut_torn_tail(path: Path, chunk: int = 1 << 16) -> None:
    """Truncate `path` after its last newline (a no-op when it ends with one or does not exist)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        end = size
        while end > 0:
            start = max(0, end - chunk)
            fh.seek(start)
            block = fh.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                fh.truncate(start + cut + 1)
                return
            end = start
        fh.truncate(0)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) for hashing."""
    return json.dumps(_to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_dir(path: str | Path, *, suffixes: tuple[str, ...] | None = None) -> str:
    """Hash of the relative names and contents of every file below `path` (sorted)."""
    root = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        if suffixes and file.suffix not in suffixes:
            continue
        h.update(str(file.relative_to(root)).encode())
        h.update(b"\0")
        h.update(sha256_file(file).encode())
    return h.hexdigest()


def stable_hash(*parts: Any) -> int:
    """A 64-bit integer hash of `parts` that is the same in every process (unlike hash())."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


def _json_default(obj: Any) -> Any:
    converted = _to_jsonable(obj)
    if converted is not obj:
        return converted
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
