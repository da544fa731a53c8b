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


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal every process left in the group (a no-op when none is)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
