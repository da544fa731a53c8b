"""The Python half of benchmarks/gpu_check.sh: build local models, train QLoRA steps. Nothing is downloaded.

    python benchmarks/gpu_check.py build --out DIR [--size 1b|small|tiny] [--device cuda|cpu]
    python benchmarks/gpu_check.py qlora --model DIR [--steps 10]

`build` writes, from random initialisation (torch, transformers, peft, tokenizers only; no evalbench
dependency beyond its tokenizer recipe, so it runs on a bare GPU image):

    DIR/model           a Llama (`--size 1b`: hidden 2048, 22 layers, GQA 32/4 heads, ~1B parameters;
                        `small`: ~20M, for CPU throughput checks; `tiny`: a few MB, for a CPU test),
                        bf16 on CUDA, with a ChatML byte-level BPE tokenizer
    DIR/adapters/r16    a LoRA adapter of rank 16 on every projection, non-zero (so it changes outputs)
    DIR/adapters/r32    another of rank 32 (evalbench's max_lora_rank default must take the larger)
    DIR/prompts.txt     64 prompts, one per line
    DIR/embedder        a random sentence-transformers model (the diversity suite's embedder, offline)

`qlora` loads DIR with bitsandbytes 4-bit (nf4, bf16 compute), adds a LoRA adapter and trains
`--steps` steps of causal-LM loss on random token batches; it checks that the loss is finite and
that LoRA weights changed. Each command prints one `gpu_check: ...` line.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
           "num_key_value_heads": 4, "max_position_embeddings": 2048},
    # ~20M parameters: decoding dominates the per-token overheads on a CPU (generation_overhead.py).
    "small": {"hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 6, "num_attention_heads": 8,
              "num_key_value_heads": 4, "max_position_embeddings": 2048},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
             "num_key_value_heads": 1, "max_position_embeddings": 2048},
}
TOPICS = ["the sea", "a city at night", "breakfast", "mountains", "a small dog", "rain", "music", "trains"]
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _corpus(n: int = 2000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ["the", "a", "of", "to", "and", "in", "is", "it", "you", "that", "was", "for", "on", "are", "with", "as", "be", "at", "one", "have", "this", "from", "by", "hot", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which", "do", "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would", "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look", "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people", "my", "over", "know", "water", "than", "call", "first", "who", "may", "down", "side", "been", "now", "find", "sea", "city", "night", "breakfast", "mountain", "small", "dog", "rain", "music", "train"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + "." for _ in range(n)]


def build_tokenizer(max_len: int):
    from evalbench.models.tiny import train_tokenizer

    tok = train_tokenizer(_corpus(), vocab_size=1024)
    tok.model_max_length = max_len
    return tok


def build(out: Path, size: str, device: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    torch.manual_seed(0)
    shape = SIZES[size]
    tok = build_tokenizer(shape["max_position_embeddings"])
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
                         tie_word_embeddings=False, rms_norm_eps=1e-5, **shape)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad)
    model_dir = out / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    n_params = sum(p.numel() for p in model.parameters())
    adapters = {}
    for rank in (16, 32):
        lora = get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, target_modules=LORA_TARGETS,
                                                init_lora_weights=False, task_type="CAUSAL_LM"))
        # Small B so outputs change but stay finite (init_lora_weights=False makes B random too).
        with torch.no_grad():
            for name, p in lora.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.01)
        path = out / "adapters" / f"r{rank}"
        lora.save_pretrained(path)
        cfg_file = path / "adapter_config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg["base_model_name_or_path"] = str(model_dir.resolve())
        cfg_file.write_text(json.dumps(cfg, indent=2))
        adapters[f"r{rank}"] = str(path)
        model = lora.unload()  # the plain base again, for the next adapter
    (out / "prompts.txt").write_text("\n".join(f"Write a few sentences about {TOPICS[i % len(TOPICS)]} "
                                               f"(prompt {i})." for i in range(64)) + "\n")
    embedder = build_embedder(out / "embedder")
    return {"model": str(model_dir), "parameters": n_params, "adapters": adapters, "embedder": embedder,
            "seconds": time.perf_counter() - t0, "device": device, "dtype": str(dtype).removeprefix("torch.")}


def build_embedder(path: Path) -> str | None:
    """A random BERT behind sentence-transformers mean pooling; None when sentence-transformers is missing."""
    try:
        from sentence_transformers import SentenceTransformer, models
    except ImportError:
        return None
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    wp = Tokenizer(WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(_corpus(500), trainers.WordPieceTrainer(
        vocab_size=512, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=256)
    raw = path / "bert"
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=256)).save_pretrained(raw)
    tok.save_pretrained(raw)
    word = models.Transformer(str(raw), max_seq_length=256)
    SentenceTransformer(modules=[word, models.Pooling(getattr(word, "get_embedding_dimension", None) and word.get_embedding_dimension() or word.get_word_embedding_dimension())]).save(str(path))
    return str(path)


def qlora(model_dir: Path, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    t0 = time.perf_counter()
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                             bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map={"": 0} if torch.cuda.is_available() else None)
    model = prepare_model_for_kbit_training(model)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    losses = []
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, vocab, (4, 256), generator=gen).to(model.device)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    changed = sum(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if n in before)
    return {"steps": steps, "first_loss": losses[0], "last_loss": losses[-1],
            "finite": all(math.isfinite(x) for x in losses), "lora_tensors_changed": changed,
            "lora_tensors": len(before), "seconds": time.perf_counter() - t0,
            "memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--size", choices=sorted(SIZES), default="1b")
    b.add_argument("--device", choices=["cuda", "cpu"], default=None)
    q = sub.add_parser("qlora")
    q.add_argument("--model", type=Path, required=True)
    q.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    if args.command == "build":
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        info = build(args.out, args.size, device)
        (args.out / "build.json").write_text(json.dumps(info, indent=2))
        print(f"gpu_check: build: ok ({info['parameters'] / 1e9:.2f}B parameters, {info['dtype']} on {device}, "
              f"adapters r16+r32, embedder {'yes' if info['embedder'] else 'skipped: no sentence-transformers'}, "
              f"{info['seconds']:.0f} s)")
        return 0
    info = qlora(args.model, args.steps)
    ok = info["finite"] and info["lora_tensors_changed"] == info["lora_tensors"]
    print(f"gpu_check: qlora: {'ok' if ok else 'FAILED'} ({info['steps']} steps, loss {info['first_loss']:.3f} -> "
          f"{info['last_loss']:.3f}, {info['lora_tensors_changed']}/{info['lora_tensors']} LoRA tensors changed, "
          f"{info['seconds']:.0f} s"
          + (f", peak {info['memory_gib']:.1f} GiB" if info["memory_gib"] is not None else "") + ")")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
