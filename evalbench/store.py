"""The results store: one format that every command reads and writes.

    results/runs/<run_id>/
        run.json            header: schema version, status, validated spec + its hash, provenance
        generations.jsonl   append-only, one GenerationRecord per line
        samples.jsonl       append-only, one SampleRecord per line (per-sample scores, for paired tests)
        summary.json        small: per suite x checkpoint x seed metrics (+ aggregates)
        artifacts/          suite-specific files in their ecosystem's formats (FastChat, AlpacaEval, lm-eval)

The schema is documented in docs/results-format.md and versioned by SCHEMA_VERSION; a reader
refuses a newer major version. Appends are flushed and fsynced line by line; a torn last line
(the process was killed mid-write) is ignored on read and cut off before the next append.
An append writes only records that are new or changed for their key, so a resume that has
nothing left to do writes nothing. Headers and summaries are written atomically (temp file + rename).

A run directory is locked (`flock` on `<run>/.lock`) from `ResultsStore.start` until the
`Run.recording()` block ends, so two processes never work on one run: the second one waits up
to `lock_wait_s` and then refuses (`RunBusy`, exit code 75). The kernel drops the lock when its
process dies, so the lock of a killed run is taken over without any cleanup.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evalbench import __version__
from evalbench.errors import EvalbenchError, InputError
from evalbench.io import append_jsonl, canonical_json, read_json, read_jsonl_tolerant, write_json_atomic
from evalbench.paths import results_dir

log = logging.getLogger(__name__)
# The driver writes from several threads (units finish in threads; judging overlaps generation):
# each read-modify-write of run.json and each append is one step.
_WRITES = threading.RLock()

# Minor versions add or re-document fields and readers accept every 1.x; a major version is refused.
# 1.1: one unit convention (docs/results-format.md, "Units"): MT-bench's pairwise rates in percent.
SCHEMA_VERSION = "1.1"
RunStatus = Literal["started", "success", "error", "interrupted"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GenerationRecord(Record):
    """One model answer (all `n` choices) to one request of a suite."""

    suite: str
    checkpoint: str  # served name: the base model or an adapter
    seed: int
    sample_id: str
    turn: int = 1
    request: dict[str, Any]  # {"messages": [...]} or {"prompt": "..."}
    sampling: dict[str, Any]
    outputs: list[str]
    finish_reasons: list[str | None] = Field(default_factory=list)
    logprob_sums: list[float | None] | None = None
    token_counts: list[int | None] | None = None
    error: str | None = None
    cache_key: str | None = None


class SampleRecord(Record):
    """Per-sample scores of one checkpoint; the unit of paired significance tests."""

    suite: str
    checkpoint: str
    seed: int
    sample_id: str
    scores: dict[str, float | None]
    error: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


def new_run_id(prefix: str = "run") -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"


GENERATION_KEY = ("suite", "checkpoint", "seed", "sample_id", "turn")
SAMPLE_KEY = ("suite", "checkpoint", "seed", "sample_id")


class RunBusy(EvalbenchError):
    """Another live process works on this run directory."""

    exit_code = 75  # EX_TEMPFAIL: try again later


@dataclass
class Run:
    """A handle on one run directory."""

    path: Path
    # log name -> {record key: canonical JSON of the latest stored record}, filled on first append
    _stored: dict[str, dict[tuple, str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def header_path(self) -> Path:
        return self.path / "run.json"

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    def header(self) -> dict[str, Any]:
        header = read_json(self.header_path)
        check_schema(header, self.header_path)
        return header

    def update_header(self, **fields: Any) -> dict[str, Any]:
        with _WRITES:
            header = self.header()
            header.update(fields)
            header["updated_at"] = _now()
            write_json_atomic(self.header_path, header)
            return header

    # -- append-only logs ---------------------------------------------------------------------

    def append_generations(self, rows: Iterable[GenerationRecord]) -> int:
        """Append the records that are new or changed for their key; returns how many were written."""
        return self._append_new("generations.jsonl", rows, GENERATION_KEY)

    def append_samples(self, rows: Iterable[SampleRecord]) -> int:
        """Append the records that are new or changed for their key; returns how many were written."""
        return self._append_new("samples.jsonl", rows, SAMPLE_KEY)

    def _append_new(self, name: str, rows: Iterable[Any], key_fields: tuple[str, ...]) -> int:
        # A resumed run re-emits everything it finished before; writing it again would grow the
        # log by a full copy per resume (issue 15). Reads stay last-wins, so a changed record (a
        # retried failure) is appended and supersedes the old one.
        with _WRITES:
            return self._append_new_locked(name, rows, key_fields)

    def _append_new_locked(self, name: str, rows: Iterable[Any], key_fields: tuple[str, ...]) -> int:
        stored = self._stored.get(name)
        if stored is None:
            stored = {_row_key(r, key_fields): _content(r) for r in read_jsonl_tolerant(self.path / name)}
            self._stored[name] = stored
        fresh: dict[tuple, Any] = {}
        for row in rows:
            data = row.model_dump(mode="json") if isinstance(row, BaseModel) else dict(row)
            key, text = _row_key(data, key_fields), _content(data)
            if stored.get(key) != text:
                stored[key] = text
                fresh[key] = data
        return append_jsonl(self.path / name, fresh.values())

    @contextlib.contextmanager
    def lock(self, wait_s: float = 0.0) -> Iterator[Run]:
        """Hold this run's lock for the block (re-entrant within a process)."""
        acquire_run_lock(self.path, wait_s=wait_s)
        try:
            yield self
        finally:
            release_run_lock(self.path)

    def generations(self, **filters: Any) -> list[GenerationRecord]:
        return _dedupe([GenerationRecord.model_validate(r)
                        for r in read_jsonl_tolerant(self.path / "generations.jsonl")
                        if _match(r, filters)], ("suite", "checkpoint", "seed", "sample_id", "turn"))

    def samples(self, **filters: Any) -> list[SampleRecord]:
        return _dedupe([SampleRecord.model_validate(r) for r in read_jsonl_tolerant(self.path / "samples.jsonl")
                        if _match(r, filters)], ("suite", "checkpoint", "seed", "sample_id"))

    # -- summary ------------------------------------------------------------------------------

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.path / "summary.json", {"schema_version": SCHEMA_VERSION, "run_id": self.run_id,
                                                       **summary})

    def summary(self) -> dict[str, Any]:
        path = self.path / "summary.json"
        if not path.exists():
            raise InputError("run has no summary.json (not finished? rerun the same command to resume)",
                             path=path)
        data = read_json(path)
        check_schema(data, path)
        return data

    def finish(self, status: RunStatus, error: str | None = None) -> None:
        self.update_header(status=status, error=error, finished_at=_now())

    @contextlib.contextmanager
    def recording(self) -> Iterator[Run]:
        """Mark the run `success` when the block ends, `interrupted` or `error` when it raises.

        The run's lock (taken by `ResultsStore.start`) is released when the block ends.
        """
        try:
            try:
                yield self
            except KeyboardInterrupt:
                self.finish("interrupted", error="interrupted; rerun the same command to resume")
                raise
            except BaseException as exc:
                self.finish("error", error=f"{type(exc).__name__}: {exc}"[:1000])
                raise
            self.finish("success")
        finally:
            release_run_lock(self.path)

    def write_results(self, rows: list[dict[str, Any]], *, aggregate: list[dict[str, Any]], **extra: Any) -> None:
        """summary.json from per suite x checkpoint x seed rows and their across-seed `aggregate` rows.

        The caller computes `aggregate` (`evalbench.aggregate.summarize.aggregate_results(rows)`): the
        store is the bottom layer and imports nothing that reads runs back.
        """
        self.write_summary({"results": rows, "aggregate": aggregate, **extra})


def _content(row: dict[str, Any]) -> str:
    """What makes a record new: everything but flags about how this invocation got it (a resumed
    run finds in the cache what the first run computed: `data.judge_cached` flips, the record not)."""
    data = row.get("data")
    if isinstance(data, dict) and any(k.endswith("cached") for k in data):
        row = {**row, "data": {k: v for k, v in data.items() if not k.endswith("cached")}}
    return canonical_json(row)


def _row_key(row: dict[str, Any], key_fields: tuple[str, ...]) -> tuple:
    return tuple(row.get(f, 1 if f == "turn" else None) for f in key_fields)


# -- run locks ------------------------------------------------------------------------------------

# resolved run path -> (file descriptor, depth): a process may start (resume) its own run again.
_HELD_LOCKS: dict[Path, tuple[int, int]] = {}


def acquire_run_lock(run_path: Path, *, wait_s: float = 0.0) -> None:
    """Take `<run>/.lock` (flock), waiting up to `wait_s`; `RunBusy` names the holder otherwise.

    flock, not a pid file: the kernel releases it when the holder dies (kill -9 included), so a
    stale lock cannot outlive its process and is taken over without guessing about pids.
    """
    import fcntl

    key = Path(run_path).resolve()
    if key in _HELD_LOCKS:
        fd, depth = _HELD_LOCKS[key]
        _HELD_LOCKS[key] = (fd, depth + 1)
        return
    key.mkdir(parents=True, exist_ok=True)
    lock_path = key / ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _lock_holder(fd)
                os.close(fd)
                raise RunBusy(f"run {key.name} is in use by {holder}; wait for it to finish, then rerun the "
                              f"same command to resume (or give another --run-id)") from None
            time.sleep(min(0.5, max(0.01, deadline - time.monotonic())))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}).encode(), 0)
    _HELD_LOCKS[key] = (fd, 1)


def release_run_lock(run_path: Path) -> None:
    """Undo one `acquire_run_lock` of this process (a no-op when it holds none)."""
    key = Path(run_path).resolve()
    held = _HELD_LOCKS.get(key)
    if held is None:
        return
    fd, depth = held
    if depth > 1:
        _HELD_LOCKS[key] = (fd, depth - 1)
        return
    del _HELD_LOCKS[key]
    os.close(fd)  # closing the descriptor drops the flock


def _lock_holder(fd: int, attempts: int = 5) -> str:
    # The holder writes its pid just after taking the lock: a refusal in between reads an empty
    # file, so it looks again a few times (50 ms in all) before naming nobody.
    for attempt in range(attempts):
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"process {info['pid']} on {info['host']} (since {info['since']})"
        except (OSError, ValueError, KeyError):
            if attempt + 1 < attempts:
                time.sleep(0.01)
    return "another process"


def _dedupe(rows: list, key_fields: tuple[str, ...]) -> list:
    """The last record for a key wins: a resumed run may re-append what a killed run half-wrote."""
    latest: dict[tuple, Any] = {}
    for row in rows:
        latest[tuple(getattr(row, f) for f in key_fields)] = row
    return list(latest.values())


def _match(row: dict[str, Any], filters: dict[str, Any]) -> bool:
    return all(row.get(k) == v for k, v in filters.items())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def check_schema(data: dict[str, Any], path: Path) -> None:
    version = str(data.get("schema_version", ""))
    if not version:
        raise InputError("missing schema_version (not an evalbench results file?)", path=path,
                         field="schema_version")
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise InputError(f"results schema {version} is not readable by evalbench {__version__} "
                         f"(schema {SCHEMA_VERSION})", path=path, field="schema_version")


class ResultsStore:
    """`results/runs/` (or any directory): create, reopen and list runs."""

    def __init__(self, root: str | Path | None = None):
        self.root = results_dir(root)  # default ./results
        self.runs_dir = self.root / "runs"

    def start(self, spec: dict[str, Any], spec_hash: str, *, run_id: str | None = None,
              data_files: Iterable[str | Path] = (), kind: str = "run", lock_wait_s: float = 0.0) -> Run:
        """Create a run (or reopen one with the same id and spec hash, to resume it), locked.

        The lock is held until the run's `recording()` block ends (or the process exits).

        Raises:
            RunBusy: another live process holds the run's lock for longer than `lock_wait_s`.
            InputError: the run exists with a different spec.
        """
        run_id = run_id or new_run_id(kind)
        run = Run(self.runs_dir / run_id)
        acquire_run_lock(run.path, wait_s=lock_wait_s)
        try:
            return self._start_locked(run, spec, spec_hash, data_files=data_files, kind=kind)
        except BaseException:
            release_run_lock(run.path)
            raise

    def _start_locked(self, run: Run, spec: dict[str, Any], spec_hash: str, *, data_files: Iterable[str | Path],
                      kind: str) -> Run:
        from evalbench.provenance import data_hashes, git_state, hardware, package_versions

        run_id = run.run_id
        if run.header_path.exists():
            header = run.header()
            if header.get("spec_hash") != spec_hash:
                raise InputError(f"run '{run_id}' exists with a different spec (hash {header.get('spec_hash', '')[:12]}"
                                 f" vs {spec_hash[:12]}); use another --run-id", path=run.header_path,
                                 field="spec_hash")
            run.update_header(status="started", resumed=header.get("resumed", 0) + 1)
            log.info("resuming run %s", run_id)
            return run
        run.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run.header_path, {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "kind": kind,
            "status": "started",
            "created_at": _now(),
            "spec": spec,
            "spec_hash": spec_hash,
            "git": git_state(),
            "versions": package_versions(),
            "data_files": data_hashes(list(data_files)),
            "hardware": hardware(),
            "pid": os.getpid(),
        })
        return run

    def open(self, run: str | Path) -> Run:
        """A run by id (under runs/) or by directory path."""
        path = Path(run)
        if not (path / "run.json").exists():
            path = self.runs_dir / str(run)
        if not (path / "run.json").exists():
            raise InputError("not a run directory (no run.json)", path=run)
        return Run(path)

    def runs(self) -> Iterator[Run]:
        if not self.runs_dir.is_dir():
            return
        for path in sorted(self.runs_dir.iterdir()):
            if (path / "run.json").exists():
                yield Run(path)
