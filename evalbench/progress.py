"""Progress: a rich bar on a terminal; elsewhere (CI logs, pipes, --log-json) periodic log lines.

Without a terminal a bar cannot redraw, and a stage that logged only when it ended would leave a
40-minute generation silent for 40 minutes. So off a TTY each tracked stage logs `done/total`,
the rate and the ETA at every 10 % step and at least every `HEARTBEAT_S` seconds (a background
thread speaks even while no item finishes), and once when it ends. With --log-json these lines
are JSON like every other log line (`JsonLogFormatter`), with the numbers as fields.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_enabled = True
_bar_free = threading.Lock()  # held while a rich bar is on screen
# Off a terminal: a progress line at least this often, and at every STEP of the total.
HEARTBEAT_S = 30.0
STEP = 0.10


def configure(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                   "logger": record.name, "msg": record.getMessage()}
        extra = getattr(record, "data", None)
        if isinstance(extra, dict):
            payload.update(extra)
        return json.dumps(payload, ensure_ascii=False)


class Task:
    """A counter with rate and ETA; renders through rich on a terminal, else through `LineReporter`."""

    def __init__(self, bar, task_id, description: str, total: int | None):
        self._bar = bar
        self._id = task_id
        self.description = description
        self.total = total
        self.completed = 0
        self._start = time.monotonic()
        self.reporter: LineReporter | None = None

    def advance(self, n: int = 1) -> None:
        self.completed += n
        if self._bar is not None:
            self._bar.update(self._id, advance=n)
        if self.reporter is not None:
            self.reporter.on_advance()

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._id, total=total)

    def elapsed(self) -> float:
        return time.monotonic() - self._start


def _eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class LineReporter:
    """Logs a task's progress at every `STEP` of its total and at least every `HEARTBEAT_S` seconds."""

    def __init__(self, task: Task, log: logging.Logger):
        self.task = task
        self.log = log
        self._lock = threading.Lock()
        self._last_line = time.monotonic()
        self._last_step = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="evalbench-progress", daemon=True)
        self._thread.start()

    def on_advance(self) -> None:
        total = self.task.total
        step = int(self.task.completed / total / STEP) if total else 0
        if step > self._last_step or time.monotonic() - self._last_line >= HEARTBEAT_S:
            self._emit(step)

    def _heartbeat(self) -> None:
        while not self._stop.wait(min(HEARTBEAT_S, 1.0)):
            if time.monotonic() - self._last_line >= HEARTBEAT_S:
                self._emit(self._last_step)

    def _emit(self, step: int) -> None:
        with self._lock:
            self._last_line = time.monotonic()
            self._last_step = max(self._last_step, step)
            done, total, elapsed = self.task.completed, self.task.total, self.task.elapsed()
            rate = done / elapsed if elapsed > 0 else 0.0
            remaining = (total - done) / rate if total and rate > 0 else float("nan")
            share = f" ({100 * done / total:.0f}%)" if total else ""
            self.log.info("%s: %d%s%s, %.2f/s, ETA %s", self.task.description, done,
                          f"/{total}" if total is not None else "", share, rate, _eta(remaining),
                          extra={"data": {"stage": self.task.description, "done": done, "total": total,
                                          "rate": round(rate, 4), "elapsed_s": round(elapsed, 3),
                                          "eta_s": None if math.isnan(remaining) else round(remaining, 1)}})

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@contextmanager
def track(description: str, total: int | None = None) -> Iterator[Task]:
    log = logging.getLogger("evalbench.progress")
    start = time.monotonic()
    # rich allows one live display at a time; units generating in parallel threads (api.generate_stage)
    # each track a stage, so only the first gets the bar and the others log lines.
    if _enabled and sys.stderr.isatty() and _bar_free.acquire(blocking=False):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:
                task = Task(bar, bar.add_task(description, total=total), description, total)
                yield task
        finally:
            _bar_free.release()
    else:
        task = Task(None, None, description, total)
        # Lines only where someone reads INFO logs (not under -q, where the level hides them).
        if log.isEnabledFor(logging.INFO):
            task.reporter = LineReporter(task, log)
        try:
            yield task
        finally:
            if task.reporter is not None:
                task.reporter.close()
    elapsed = time.monotonic() - start
    rate = task.completed / elapsed if elapsed > 0 else float("nan")
    log.info("%s: %d%s done in %.1fs (%.2f/s)", description, task.completed,
             f"/{task.total}" if task.total is not None else "", elapsed, rate,
             extra={"data": {"stage": description, "done": task.completed, "total": task.total,
                             "seconds": round(elapsed, 3)}})
