"""Child-process hygiene for engine-owning processes (vLLM servers, vLLM workers, lm-eval workers).

vLLM starts its engine core as a child process that outlives an exiting parent, so every engine
owner runs in a process group of its own and the whole group is killed when it is done.
"""

from __future__ import annotations

import contextlib
import os
import signal


def start_own_group() -> None:
    """`preexec_fn` / first call in a worker: own process group, and die when our parent dies."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the parent, even on kill -9


def live_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that are not zombies (Linux /proc; [] where it is missing)."""
    from pathlib import Path

    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def kill_group(pgid: int, sig: int = signal.SIGKILL, wait_s: float = 10.0) -> None:
    """Signal every process left in the group (a no-op when none is).

    With SIGKILL, wait until no live member is left: the kill is asynchronous, and a caller that
    frees memory or checks for leftovers must not race the dying processes.
    """
    import time

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    if sig != signal.SIGKILL:
        return
    deadline = time.monotonic() + wait_s
    while live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
