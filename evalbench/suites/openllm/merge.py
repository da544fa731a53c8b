"""Merged copies of LoRA checkpoints: `$EVALBENCH_HOME/merged/<sha>/`, one per (base, adapter) content.

Why: on the vLLM CPU build, prompt log-probs with LoRA enabled crash the engine as soon as two
prompts share a step (`einsum(): subscript b has size 3 ...` in punica_cpu, docs/cpu-notes.md), and
every multiple-choice task is prompt log-prob work. A merged copy
(`PeftModel.from_pretrained(base, adapter).merge_and_unload()`) is an ordinary model: no LoRA,
no crash, full batching. The directory name hashes the contents of base and adapter, so a changed
adapter gets a new copy and an unchanged one is merged once. The merge runs in a subprocess
(`python -m evalbench.suites.openllm.merge BASE ADAPTER OUT`) so torch/peft never load into the
caller.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from evalbench.errors import EvalbenchError
from evalbench.io import canonical_json, sha256_text, write_json_atomic

log = logging.getLogger(__name__)

MARKER = "evalbench_merged.json"
# Files copied byte for byte from a local base model so tokenisation and templates are unchanged.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
                   "generation_config.json")


def merge_key(base_model: str, adapter_path: str) -> str:
    from evalbench.provenance import adapter_identity, model_identity

    return sha256_text(canonical_json({"base": model_identity(base_model),
                                       "adapter": adapter_identity("adapter", adapter_path)["sha256"]}))


def merged_path(base_model: str, adapter_path: str, home: Path) -> Path:
    return home / "merged" / merge_key(base_model, adapter_path)[:20]


def ensure_merged(base_model: str, adapter_path: str, home: Path, *, log_path: Path | None = None,
                  timeout_s: float = 3600) -> Path:
    """The merged copy of `adapter_path` on `base_model`, merging it first if needed."""
    out = merged_path(base_model, adapter_path, home)
    if (out / MARKER).exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "evalbench.suites.openllm.merge", base_model, str(adapter_path), str(out)]
    log.info("merging adapter %s into %s (once; cached under %s)", adapter_path, base_model, out)
    started = time.monotonic()
    from evalbench.serve.procs import child_env

    env = child_env(set_={"TOKENIZERS_PARALLELISM": "false"})
    with contextlib.ExitStack() as stack:
        logf = stack.enter_context(open(log_path, "ab")) if log_path else subprocess.DEVNULL
        proc = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT if log_path else subprocess.PIPE,
                              timeout=timeout_s, env=env, check=False)
    if proc.returncode != 0 or not (out / MARKER).exists():
        tail = _tail(log_path) if log_path else (proc.stderr or b"").decode(errors="replace")[-2000:]
        raise EvalbenchError(f"merging adapter {adapter_path} into {base_model} failed "
                             f"(exit {proc.returncode}):\n{tail}")
    log.info("merged in %.1fs", time.monotonic() - started)
    return out


def _tail(path: Path | None, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])  # type: ignore[arg-type]
    except OSError:
        return "(no log)"


def merge_adapter(base_model: str, adapter_path: str, out: str | Path) -> Path:
    """Merge in this process (torch, transformers, peft); written to a temp dir, then renamed."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto")
    dtype = str(base.dtype).removeprefix("torch.")
    with torch.no_grad():
        merged = PeftModel.from_pretrained(base, adapter_path).merge_and_unload()
    merged.save_pretrained(tmp, safe_serialization=True)
    base_dir = Path(base_model).expanduser()
    if base_dir.is_dir():
        for name in TOKENIZER_FILES:
            if (base_dir / name).is_file():
                shutil.copy2(base_dir / name, tmp / name)
    else:
        AutoTokenizer.from_pretrained(base_model).save_pretrained(tmp)
    write_json_atomic(tmp / MARKER, {"base_model": base_model, "adapter": str(Path(adapter_path).resolve()),
                                     "dtype": dtype, "key": merge_key(base_model, adapter_path)})
    if out.exists():  # another process won the race; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print("usage: python -m evalbench.suites.openllm.merge BASE ADAPTER OUT", file=sys.stderr)
        return 2
    merge_adapter(*argv)
    print(json.dumps({"merged": argv[2]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
