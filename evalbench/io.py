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
    """Open a text file, transparently gunzipping `*.gz`.

    Read modes return a file whose decoding and decompression errors (not UTF-8, not gzip, a cut
    gzip stream) are one-line `InputError`s naming the file and, where it can be found, the line.
    """
    path = Path(path)
    if path.suffix == ".gz":
        fh = gzip.open(path, mode, encoding="utf-8")
    else:
        fh = open(path, mode, encoding="utf-8")
    if "r" in mode and "+" not in mode:
        return _CheckedText(fh, path)
    return fh


# What a broken text file raises while it is read: bad UTF-8, a file that is not gzip, a gzip
# stream cut short (EOFError) or damaged inside (zlib.error).
def _decode_errors() -> tuple[type[BaseException], ...]:
    import zlib

    return (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error)


class _CheckedText:
    """A read-only text file that turns decoding/decompression errors into located InputErrors."""

    def __init__(self, fh, path: Path):
        self._fh = fh
        self._path = path
        self._line = 0

    def __enter__(self) -> _CheckedText:
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def close(self) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[str]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def readline(self, *args) -> str:
        try:
            line = self._fh.readline(*args)
        except _decode_errors() as exc:
            raise self._error(exc, self._line + 1) from None
        self._line += 1
        return line

    def read(self, *args) -> str:
        try:
            return self._fh.read(*args)
        except _decode_errors() as exc:
            raise self._error(exc, None) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def _error(self, exc: BaseException, line: int | None) -> InputError:
        return decode_error(self._path, exc, line)


def decode_error(path: Path, exc: BaseException, line: int | None = None) -> InputError:
    """The one-line InputError for a decoding or decompression failure while reading `path`."""
    if isinstance(exc, UnicodeDecodeError):
        # The text layer decodes ahead in blocks, so the line being read is not where the bad byte
        # is: find it in the raw bytes (this runs only on the error path).
        where = _first_non_utf8_line(path)
        return InputError(f"not UTF-8 text ({exc.reason} at byte 0x{exc.object[exc.start]:02x}); "
                          f"re-save the file as UTF-8", path=path, line=where)
    if isinstance(exc, gzip.BadGzipFile):
        return InputError(f"not a gzip file ({exc}); name it without .gz if it is plain text", path=path)
    if isinstance(exc, EOFError):
        return InputError("the gzip stream ends early (truncated file)", path=path)
    return InputError(f"corrupt gzip data ({exc})", path=path)


def _first_non_utf8_line(path: Path) -> int | None:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return lineno
    except (OSError, EOFError):
        return None
    return None


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
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            lines = fh.read().split(b"\n")
    except _decode_errors() as exc:
        raise decode_error(path, exc) from None
    # Lines are decoded one by one: a kill can cut the last line inside a multi-byte character.
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line.decode("utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if any(rest.strip() for rest in lines[lineno:]):
                raise InputError("invalid JSON or UTF-8 in the middle of an append-only log", path=path,
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
