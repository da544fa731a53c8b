"""Persistent content-addressed cache for generations and judgments (SQLite, WAL).

Key = sha256(canonical JSON of {who, what, how}):
  who  - engine + version, base model identity (revision or content hash), adapter name + hash
  what - messages or prompt
  how  - every sampling parameter, seed included
Values carry a checksum; an entry that fails it (or does not parse) is deleted and recomputed,
never returned. Concurrent writers (threads or processes) are safe: SQLite serialises them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

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


def cache_key(who: dict[str, Any], what: dict[str, Any], how: dict[str, Any]) -> str:
    return sha256_text(canonical_json({"who": who, "what": what, "how": how}))


class Cache:
    """A thread- and process-safe key -> JSON store. Open one per process; share it across threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.corrupt_dropped = 0
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> Any | None:
        row = self._conn().execute("SELECT value, checksum FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, checksum = row
        try:
            if sha256_text(value) != checksum:
                raise ValueError("checksum mismatch")
            return json.loads(value)
        except (ValueError, TypeError) as exc:
            log.warning("cache entry %s is corrupt (%s); dropping it and recomputing", key[:12], exc)
            self._conn().execute("DELETE FROM entries WHERE key = ?", (key,))
            self.corrupt_dropped += 1
            return None

    def put(self, key: str, value: Any, who: dict[str, Any] | None = None) -> None:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        self._conn().execute(
            "INSERT OR REPLACE INTO entries (key, value, checksum, who, created) VALUES (?, ?, ?, ?, ?)",
            (key, text, sha256_text(text), canonical_json(who or {}), time.time()))

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def stats(self) -> dict[str, Any]:
        rows = self._conn().execute("SELECT who, COUNT(*) FROM entries GROUP BY who").fetchall()
        return {"path": str(self.path), "entries": len(self), "by_who": {w: n for w, n in rows}}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
