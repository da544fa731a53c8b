"""Child-process hygiene for engine-owning processes (vLLM servers, vLLM workers, lm-eval workers).

vLLM starts its engine core as a child process that outlives an exiting parent, so every engine
owner runs in a process group of its own and the whole group is killed when it is done.

Children get an explicit environment (`child_env`) without unrelated secrets: API keys, tokens,
passwords and cloud credentials of the user's shell are none of a vLLM server's business, and
vLLM, lm-eval and their plugins log, report and forward environments. Only what a child needs
is kept (a Hugging Face token, so an engine can download a gated model).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterable, Mapping

# A name is secret when one of its `_`-separated words is one of these, or it contains one of
# the pairs (OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, DB_PASSWORD, ...). Words, not
# substrings: TOKENIZERS_PARALLELISM is a setting, not a token.
_SECRET_WORDS = {"TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PWD_HASH", "CREDENTIAL",
                 "CREDENTIALS", "APIKEY", "PASSPHRASE", "COOKIE"}
_SECRET_PAIRS = ("API_KEY", "ACCESS_KEY", "PRIVATE_KEY", "SECRET_KEY", "AUTH_KEY", "SESSION_KEY")
# What engine children need: vLLM and transformers download gated models with it.
ENGINE_KEEP: tuple[str, ...] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return bool(_SECRET_WORDS.intersection(re.split(r"[_\W]+", upper))) or any(p in upper for p in _SECRET_PAIRS)


def child_env(*, keep: Iterable[str] = ENGINE_KEEP, set_: Mapping[str, str] | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: `base` (default: ours) without secret-looking
    variables except those in `keep`, plus `set_`."""
    keep = set(keep)
    env = {k: v for k, v in (os.environ if base is None else base).items() if k in keep or not is_secret_name(k)}
    env.update(set_ or {})
    return env


def scrub_environ(keep: Iterable[str] = ENGINE_KEEP) -> None:
    """Drop secrets from this process's own environment: the first call in a spawned worker,
    whose environment (a multiprocessing spawn copies ours) we could not choose."""
    keep = set(keep)
    for name in [k for k in os.environ if k not in keep and is_secret_name(k)]:
        del os.environ[name]


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
