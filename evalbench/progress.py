"""Progress display (rich) that turns itself off for quiet / JSON-log / non-terminal runs."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

_enabled = True


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
    """A counter with rate and ETA; renders through rich when enabled, else logs at the end."""

    def __init__(self, bar, task_id, description: str, total: int | None):
        self._bar = bar
        self._id = task_id
        self.description = description
        self.total = total
        self.completed = 0
        self._start = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.completed += n
        if self._bar is not None:
            self._bar.update(self._id, advance=n)

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._id, total=total)


@contextmanager
def track(description: str, total: int | None = None) -> Iterator[Task]:
    log = logging.getLogger("evalbench.progress")
    start = time.monotonic()
    if _enabled and sys.stderr.isatty():
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:
            task = Task(bar, bar.add_task(description, total=total), description, total)
            yield task
    else:
        task = Task(None, None, description, total)
        yield task
    elapsed = time.monotonic() - start
    rate = task.completed / elapsed if elapsed > 0 else float("nan")
    log.info("%s: %d%s done in %.1fs (%.2f/s)", description, task.completed,
             f"/{task.total}" if task.total is not None else "", elapsed, rate,
             extra={"data": {"stage": description, "done": task.completed, "total": task.total,
                             "seconds": round(elapsed, 3)}})
