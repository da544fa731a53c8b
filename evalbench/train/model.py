"""Model loading: the device, the precision, the tokenizer, and the base model with a fresh LoRA adapter.

`load_model` freezes the base (optionally 4-bit NF4 for QLoRA) and adds the LoRA matrices (and a
scalar `score` head for a reward model); `eval_mode` is the no-grad pass mode that keeps
bitsandbytes 4-bit layers trainable (see its docstring).
"""

from __future__ import annotations

import contextlib
from typing import Any

from evalbench.errors import InputError
from evalbench.train.spec import TrainSpec


def load_tokenizer(base: str):
    """The base model's tokenizer, with the eos token as pad when it has no pad token."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(base)
    except OSError as exc:
        raise InputError(f"cannot load the tokenizer: {exc}".splitlines()[0][:300], path=base,
                         field="base") from None
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise InputError("the tokenizer has neither a pad nor an eos token", path=base, field="base")
        tok.pad_token = tok.eos_token  # padding is masked out everywhere, so any id works
    return tok


def device_for(spec: TrainSpec):
    """The torch device a run trains on: CUDA when asked for or available under `auto`."""
    import torch

    if spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def precision_for(spec: TrainSpec, device) -> str:
    """The mixed-precision mode: the spec's, or bf16 on a CUDA GPU that supports it, else fp32."""
    if spec.precision != "auto":
        return spec.precision
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"  # CPU autocast to bf16 is slower than fp32 on most CPUs


def autocast(device, precision: str):
    """torch autocast for bf16/fp16; a no-op context for fp32."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def load_model(spec: TrainSpec, base: str, tokenizer, device, precision: str):
    """Base model (4-bit NF4 for QLoRA) + a fresh LoRA adapter; for `rm` a scalar value head too.

    Trainable: the LoRA matrices (and the `score` head of a reward model, saved through peft's
    `modules_to_save`). Everything else is frozen.
    """
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    reward = spec.info.model == "reward_model"
    # Frozen base weights in the compute precision (half the memory under bf16/fp16); the
    # trainable LoRA / head parameters are kept in float32 below (mixed-precision training).
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec.quantization == "nf4":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if precision == "bf16" else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": "cpu" if device.type == "cpu" else (device.index or 0)}
    cls = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    if reward:
        kwargs["num_labels"] = 1
    try:
        model = cls.from_pretrained(base, **kwargs)
    except OSError as exc:
        raise InputError(f"cannot load the base model: {str(exc).splitlines()[0][:300]}", path=base,
                         field="base") from None
    model.config.use_cache = False
    if reward:
        model.config.pad_token_id = tokenizer.pad_token_id
    gc_kwargs = {"use_reentrant": False}
    if spec.quantization == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=gc_kwargs)
    elif spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
        model.enable_input_require_grads()
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in spec.lora.target_modules if m not in present]
    if missing:
        raise InputError(f"LoRA target modules {missing} are not in the model (linear layers include: "
                         f"{', '.join(sorted(n for n in present if n.endswith('proj'))[:12])})",
                         field="lora.target_modules")
    config = LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                        target_modules=list(spec.lora.target_modules), bias=spec.lora.bias,
                        task_type="SEQ_CLS" if reward else "CAUSAL_LM",
                        modules_to_save=["score"] if reward else None)
    model = get_peft_model(model, config)
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()  # AdamW state and updates in fp32
    if spec.quantization != "nf4":
        model.to(device)
    return model


def trainable_params(model) -> list:
    """The parameters the optimiser updates (LoRA matrices, a reward head)."""
    return [p for p in model.parameters() if p.requires_grad]


def _bnb_4bit_modules(model) -> list:
    import sys

    bnb = sys.modules.get("bitsandbytes")  # not imported: no 4-bit layer can exist
    if bnb is None:
        return []
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode (no dropout) for a no-grad pass, except bitsandbytes 4-bit layers.

    bitsandbytes 0.50 on a CPU with AVX512-BF16 repacks a `Linear4bit` weight for its inference
    kernel on the first forward in eval mode without grad, and never packs it back: later
    training forwards then run `gemv_4bit`, which has no autograd, and every gradient upstream
    of a 4-bit layer is silently zero (seen here: LoRA B stayed exactly 0). Those layers hold no
    dropout, so keeping them in training mode changes nothing else.
    """
    was = model.training
    model.eval()
    for module in _bnb_4bit_modules(model):
        module.train()
    try:
        yield
    finally:
        model.train(was)
