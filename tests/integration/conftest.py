"""Real components on loopback: the tiny local model, a peft LoRA adapter, a vLLM server (CPU build).

One server (base + adapter) is shared by the whole test session to keep CI fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def make_random_lora(base_dir: Path, out_dir: Path, seed: int = 0, r: int = 8) -> Path:
    """A peft LoRA adapter with non-zero random weights (so it changes the model's output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                     init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # make the change large enough to show in greedy decoding
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(20.0)
    peft_model.save_pretrained(out_dir)
    meta = json.loads((out_dir / "adapter_config.json").read_text())
    assert meta["base_model_name_or_path"]
    return out_dir


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    from evalbench.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def lora_adapter(tiny_model, tmp_path_factory) -> Path:
    return make_random_lora(tiny_model, tmp_path_factory.mktemp("adapter") / "lora_a")


@pytest.fixture(scope="session")
def lora_adapter_b(tiny_model, tmp_path_factory) -> Path:
    return make_random_lora(tiny_model, tmp_path_factory.mktemp("adapter") / "lora_b", seed=1)


@pytest.fixture(scope="session")
def vllm_server(tiny_model, lora_adapter, lora_adapter_b, tmp_path_factory):
    """Base "tiny" + adapters "lora_a" and "lora_b"."""
    from evalbench.config import AdapterSpec, ServerSpec
    from evalbench.serve.vllm_server import VLLMServer

    # The model's full context: a stratified --limit draws long AlpacaEval instructions too, whose
    # judge prompts pass 1024 tokens.
    spec = ServerSpec(model=str(tiny_model), served_name="tiny", dtype="float32", max_model_len=2048,
                      adapters=(AdapterSpec(name="lora_a", path=str(lora_adapter)),
                                AdapterSpec(name="lora_b", path=str(lora_adapter_b))), startup_timeout_s=300)
    with VLLMServer(spec, log_dir=tmp_path_factory.mktemp("server-logs")) as server:
        yield server
