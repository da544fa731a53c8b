"""Persistent content-addressed cache for generations and judgments (SQLite, WAL).

Key = sha256(canonical JSON of {who, what, how}):
  who  - engine + version, base model identity (revision or content hash), adapter name + hash
  what - messages or prompt
  how  - every sampling parameter, seed included
Values carry a checksum; an entry that fails it (or does not parse) is deleted and recomputed,
never returned. Concurrent writers (threads or processes) are safe: SQLite serialises them.

A cache *file* that is damaged (not an SQLite database, truncated, a malformed page) is
detected when it is opened, or at the first read that meets the damage, and reported as one
line naming the file and the command that fixes it (`CacheCorrupt`), never as a raw
`sqlite3.DatabaseError`. `evalbench cache verify | prune | clear` inspect and repair it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from evalbench.errors import EvalbenchError
from evalbench.io import canonical_json, sha256_text

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    checksum TEXT NOT NULL,
    who TEXT NOT NULL,
    created REAL NOT NULL
);
"""


_SQLITE_MAGIC = b"SQLite format 3\x00"


class CacheCorrupt(EvalbenchError):
    """The cache file itself is damaged; the message names it and the command that fixes it."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        super().__init__(f"{path}: the cache file is corrupt ({reason}); run `evalbench cache verify --cache {path}` "
                         f"for details, or `evalbench cache clear --yes --cache {path}` to start a fresh cache "
                         f"(finished work is paid for again)")


def cache_key(who: dict[str, Any], what: dict[str, Any], how: dict[str, Any]) -> str:
    return sha256_text(canonical_json({"who": who, "what": what, "how": how}))


def file_problem(path: Path) -> str | None:
    """Why `path` cannot be an intact SQLite database (None when its header looks sound).

    Cheap: reads the 100-byte header only. A file shorter than the page count its header states
    was truncated (a copy cut short, a full disk); SQLite itself would only notice at the first
    read of a missing page, deep inside a run.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None  # SQLite initialises an empty file
    with open(path, "rb") as fh:
        header = fh.read(100)
    if not header.startswith(_SQLITE_MAGIC):
        return "not an SQLite database"
    if len(header) < 100:
        return f"truncated: {size} bytes, not even a header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The in-header size is valid only when "version-valid-for" equals the change counter.
    if header[92:96] == header[24:28] and pages and size < pages * page_size:
        return f"truncated: {size} bytes, the header says {pages * page_size}"
    return None


# Paths whose header this process has checked. Only the first open in a process reads the header
# with plain open()/close(): closing *any* descriptor of a file drops every POSIX lock the process
# holds on it, SQLite's own included ("How To Corrupt An SQLite Database File", 2.2), so once a
# connection may exist the file is left to SQLite alone.
_HEADER_CHECKED: set[Path] = set()
_HEADER_LOCK = threading.Lock()


def _check_file_once(path: Path) -> None:
    key = path.resolve()
    with _HEADER_LOCK:  # held until the check is done: no thread connects while it reads
        if key in _HEADER_CHECKED:
            return
        problem = file_problem(path)
        if problem is not None:
            raise CacheCorrupt(path, problem)
        _HEADER_CHECKED.add(key)


def _is_damage(exc: sqlite3.Error) -> bool:
    """A damaged file, as opposed to a busy or read-only one (OperationalError), which is not ours to judge."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class Cache:
    """A thread- and process-safe key -> JSON store. Open one per process; share it across threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.corrupt_dropped = 0
        _check_file_once(self.path)
        try:
            with self._conn() as conn:
                conn.executescript(_SCHEMA)
                conn.execute("SELECT key FROM entries LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            self.close()
            raise CacheCorrupt(self.path, str(exc)) from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._conn().execute(sql, params)
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            raise CacheCorrupt(self.path, str(exc)) from None

    def get(self, key: str) -> Any | None:
        row = self._execute("SELECT value, checksum FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, checksum = row
        try:
            if sha256_text(value) != checksum:
                raise ValueError("checksum mismatch")
            return json.loads(value)
        except (ValueError, TypeError) as exc:
            log.warning("cache entry %s is corrupt (%s); dropping it and recomputing", key[:12], exc)
            self._execute("DELETE FROM entries WHERE key = ?", (key,))
            self.corrupt_dropped += 1
            return None

    def put(self, key: str, value: Any, who: dict[str, Any] | None = None) -> None:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        self._execute(
            "INSERT OR REPLACE INTO entries (key, value, checksum, who, created) VALUES (?, ?, ?, ?, ?)",
            (key, text, sha256_text(text), canonical_json(who or {}), time.time()))

    def __len__(self) -> int:
        return self._execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def stats(self) -> dict[str, Any]:
        rows = self._execute("SELECT who, COUNT(*) FROM entries GROUP BY who").fetchall()
        return {"path": str(self.path), "entries": len(self), "by_who": {w: n for w, n in rows}}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# -- maintenance: `evalbench cache verify | prune | clear` ------------------------------------------


def verify(path: str | Path) -> dict[str, Any]:
    """A report on the cache file: file-level damage, SQLite's integrity check, and entries that fail
    their checksum or do not parse. Reads only; never raises for damage (it reports it)."""
    path = Path(path)
    report: dict[str, Any] = {"path": str(path), "exists": path.exists(), "file_problem": None,
                              "integrity": None, "entries": 0, "corrupt_entries": 0, "ok": True}
    if not path.exists():
        return report
    problem = file_problem(path)
    if problem is not None:
        report.update(file_problem=problem, ok=False)
        return report
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            report["integrity"] = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check").fetchall())
            for value, checksum in conn.execute("SELECT value, checksum FROM entries"):
                report["entries"] += 1
                if not _entry_ok(value, checksum):
                    report["corrupt_entries"] += 1
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        report["file_problem"] = str(exc)
    report["ok"] = (report["file_problem"] is None and report["integrity"] == "ok"
                    and report["corrupt_entries"] == 0)
    return report


def prune(path: str | Path, *, older_than_s: float | None = None) -> dict[str, int]:
    """Delete entries that fail their checksum or do not parse, and those older than `older_than_s`
    seconds when given; then reclaim the space. A damaged file raises CacheCorrupt (use clear)."""
    cache = Cache(path)
    conn = cache._conn()
    bad = [key for key, value, checksum in cache._execute("SELECT key, value, checksum FROM entries")
           if not _entry_ok(value, checksum)]
    for key in bad:
        cache._execute("DELETE FROM entries WHERE key = ?", (key,))
    old = 0
    if older_than_s is not None:
        old = cache._execute("DELETE FROM entries WHERE created < ?", (time.time() - older_than_s,)).rowcount
    conn.execute("VACUUM")
    left = len(cache)
    cache.close()
    return {"corrupt_removed": len(bad), "old_removed": old, "entries": left}


def clear(path: str | Path) -> list[Path]:
    """Delete the cache file and its WAL/shared-memory siblings; returns what was removed."""
    path = Path(path)
    with _HEADER_LOCK:
        _HEADER_CHECKED.discard(path.resolve())
    removed = []
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists():
            p.unlink()
            removed.append(p)
    return removed


def _entry_ok(value: str, checksum: str) -> bool:
    try:
        if sha256_text(value) != checksum:
            return False
        json.loads(value)
        return True
    except (ValueError, TypeError):
        return False
