"""`InFlightLimit`: one bound on the requests in flight to an engine, shared by every thread.

The driver generates all checkpoints x seeds of a suite together, one thread (and one event loop)
per unit, and each unit's client keeps its own requests in flight. What the engine can usefully
batch is a property of the engine, not of a unit, so the bound lives here and every client of the
engine awaits the same permits, whichever thread and event loop it runs in. An `asyncio.Semaphore`
cannot do that (it belongs to one loop) and a blocking `threading.Semaphore` would stall the loop.

Waiters are served by unit rank (`UNIT_RANK`, set by the driver in each unit's thread: the unit's
position in the run), oldest first within a rank. The engine's throughput is the same in any order,
but with more requests than permits, ranked admission makes the units finish one after another
instead of all near the end, so judging (which starts on a unit as soon as it has generated) runs
during generation instead of after it. Requests of no unit (the judge's) have rank 0.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from contextvars import ContextVar

# The position of the unit (checkpoint x seed) this thread generates for; lower goes first.
UNIT_RANK: ContextVar[int] = ContextVar("evalbench_unit_rank", default=0)


class InFlightLimit:
    """At most `limit` permits out at once, across threads and event loops.

    `async with limit:` (or `await acquire(rank)` / `release()`). A released permit is handed straight
    to the waiter of the lowest rank, the oldest among equals (woken on its own loop), so no thread
    polls. A rank's waiters wait only for lower ranks, which are finite (a run's units).
    """

    def __init__(self, limit: int):
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"in-flight limit must be an integer >= 1, got {limit!r}")
        self.limit = limit
        self._out = 0
        self._lock = threading.Lock()
        # (rank, arrival, loop, future): a heap, so the next permit goes to the lowest (rank, arrival).
        self._waiters: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._arrivals = itertools.count()
        self.peak = 0  # most permits out at once (benchmarks and tests read it)

    @property
    def in_flight(self) -> int:
        return self._out

    async def acquire(self, rank: int = 0) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._out < self.limit and not self._waiters:
                self._take()
                return
            fut = loop.create_future()
            entry = (rank, next(self._arrivals), loop, fut)
            heapq.heappush(self._waiters, entry)
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove(entry)
                    heapq.heapify(self._waiters)
                    handed = False
                except ValueError:  # release() already chose us
                    handed = True
            # Chosen and woken (the permit is ours) but cancelled before running: pass it on. Chosen
            # while the future was being cancelled: `_wake` finds it done and passes it on itself.
            if handed and not fut.cancelled():
                self.release()
            raise

    def _take(self) -> None:
        self._out += 1
        self.peak = max(self.peak, self._out)

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                _, _, loop, fut = heapq.heappop(self._waiters)
                if loop.is_closed():
                    continue
                # The permit moves to the waiter: `_out` stays the same.
                loop.call_soon_threadsafe(_wake, fut, self)
                return
            self._out -= 1

    async def __aenter__(self) -> InFlightLimit:
        await self.acquire()
        return self

    async def __aexit__(self, *exc) -> None:
        self.release()


def _wake(fut: asyncio.Future, limit: InFlightLimit) -> None:
    # Runs on the waiter's loop. A waiter cancelled in between (already done, and no longer
    # queued) cannot take the permit, so it goes to the next one.
    if fut.done():
        limit.release()
    else:
        fut.set_result(None)
