"""The embedded default model: a tiny Llama built from scratch, offline, byte-for-byte reproducible.

`build_tiny_model(out_dir, seed)` trains a byte-level BPE tokenizer (`tokenizers`) on the local
corpus (`evalbench.models.corpus`), initialises a 2-layer Llama (hidden 128, 2 heads of 64), runs a
short causal-LM pre-training on the same corpus so that it writes word-like text and closes
assistant turns with `<|im_end|>`, and saves it with `save_pretrained` (float32 safetensors,
tokenizer files with a ChatML chat template, generation_config) plus `tiny_meta.json`.
The result loads with `AutoModelForCausalLM` / `AutoTokenizer` and serves on the vLLM CPU build.

Reproducibility: the same seed, step count, corpus and library versions give identical files on
the same machine (checked by a unit test that builds twice and compares sha256s). Floating-point
reductions may differ across CPU types or thread counts, so treat the bytes as a per-machine
property and `tiny_meta.json["recipe"]` as the portable identity.

torch / transformers / tokenizers are imported inside the functions that use them, so importing
this module (e.g. for `default_tiny_model_dir`) stays cheap.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from evalbench.errors import InputError
from evalbench.models.corpus import (
    CHAT_TEMPLATE, CORPUS_VERSION, END_OF_TEXT, IM_END, IM_START, SPECIAL_TOKENS, Corpus, build_corpus,
    data_dir_documents,
)

log = logging.getLogger(__name__)

META_FILE = "tiny_meta.json"
# Bump when the recipe changes in a way the other recipe fields do not capture.
META_FORMAT = 1
DEFAULT_SEED = 0
DEFAULT_PRETRAIN_STEPS = 200
VOCAB_SIZE = 1536

# head_dim = 128 / 2 = 64: the vLLM CPU attention backend supports it (docs/cpu-notes.md probe used
# exactly this shape); 2048 positions so `--max-model-len` up to 2048 is accepted.
MODEL_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "initializer_range": 0.02,
    "tie_word_embeddings": False,
}


class TrainSettings(NamedTuple):
    """Pre-training hyper-parameters (AdamW, linear warm-up then cosine decay to `min_lr_ratio`)."""

    batch_size: int = 16
    seq_len: int = 128
    peak_lr: float = 5e-3
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0


TRAIN = TrainSettings()


def default_tiny_model_dir(seed: int = DEFAULT_SEED, pretrain_steps: int = DEFAULT_PRETRAIN_STEPS,
                           home: str | Path | None = None) -> Path:
    """Cache location of the tiny model: `<home>/models/tiny-seed<S>[-steps<N>]`.

    `home` defaults to `$EVALBENCH_HOME`, else `~/.cache/evalbench` (read at call time).
    """
    from evalbench.paths import evalbench_home

    if home is None:
        home = evalbench_home()
    suffix = "" if pretrain_steps == DEFAULT_PRETRAIN_STEPS else f"-steps{pretrain_steps}"
    name = f"tiny-seed{seed}{suffix}"
    return Path(home).expanduser() / "models" / name


def lr_at(step: int, total_steps: int, peak_lr: float, warmup_steps: int, min_lr_ratio: float) -> float:
    """Learning rate at 0-based `step`: linear warm-up to `peak_lr`, then cosine down to
    `peak_lr * min_lr_ratio` at the last step (the nanoGPT schedule)."""
    if total_steps <= 0:
        return peak_lr
    warmup = min(warmup_steps, total_steps)
    if step < warmup:
        return peak_lr * (step + 1) / warmup
    decay_steps = max(total_steps - warmup - 1, 1)
    progress = min((step - warmup) / decay_steps, 1.0)
    floor = peak_lr * min_lr_ratio
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak_lr - floor)


def recipe(seed: int, pretrain_steps: int, corpus: Corpus) -> dict[str, Any]:
    """Everything that determines the model's bytes on a given machine and library versions."""
    return {
        "format": META_FORMAT,
        "seed": seed,
        "pretrain_steps": pretrain_steps,
        "corpus_sha256": corpus.sha256,
        "corpus_version": CORPUS_VERSION,
        "corpus_sources": list(corpus.sources),
        "vocab_size_target": VOCAB_SIZE,
        "model_config": dict(MODEL_CONFIG),
        "train": TRAIN._asdict(),
    }


# ---------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer(documents: Sequence[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer (GPT-2 style) trained on `documents`, wrapped for transformers.

    Special tokens: `<|endoftext|>` (pad, document separator), `<|im_start|>`, `<|im_end|>` (eos).
    No BOS is added (ChatML models such as Qwen2 do the same). The chat template is ChatML with
    `add_generation_prompt` support. BPE training in `tokenizers` is deterministic (checked across
    processes by the unit tests, which build in a subprocess).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # every byte: no unknown tokens
    # The markers become atomic special tokens; learning merges over their characters would only
    # waste vocabulary, so strip them from the tokenizer's training text.
    plain = (_strip_specials(d) for d in documents)
    tok.train_from_iterator(plain, trainer=trainer, length=len(documents))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=END_OF_TEXT, bos_token=None, unk_token=None,
        extra_special_tokens=[IM_START], model_max_length=MODEL_CONFIG["max_position_embeddings"],
        chat_template=CHAT_TEMPLATE, clean_up_tokenization_spaces=False)


def _strip_specials(text: str) -> str:
    for special in SPECIAL_TOKENS:
        text = text.replace(special, " ")
    return text


# ---------------------------------------------------------------------------------------------
# build


class _Deterministic:
    """Seed torch inside a forked RNG, use deterministic algorithms and one intra-op thread;
    restore all three after.

    One thread because float reductions split differently across thread counts, which would
    tie the bytes to the machine's core count; and because on a loaded 2-core box (CI, parallel
    test runs) two OpenMP threads were measured up to 10x slower per step than one.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        import torch

        self._rng = torch.random.fork_rng(devices=[])
        self._rng.__enter__()
        torch.manual_seed(self.seed)
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self._threads)
        torch.use_deterministic_algorithms(self._was_deterministic)
        return self._rng.__exit__(*exc)


def _pretrain(model, token_docs: Sequence[Sequence[int]], eot_id: int, steps: int, seed: int,
              settings: TrainSettings) -> list[float]:
    """Causal-LM training on windows that start at document starts; returns the per-step losses."""
    import torch
    import torch.nn.functional as F

    stream: list[int] = []
    starts: list[int] = []
    for ids in token_docs:
        starts.append(len(stream))
        stream.extend(ids)
        stream.append(eot_id)
    T = settings.seq_len
    # Windows start where a document starts (as at inference, where position 0 is `<|im_start|>`)
    # and run on into the following documents.
    starts = [s for s in starts if s + T <= len(stream)]
    if not starts:
        raise InputError(f"corpus too small for sequence length {T}")
    data = torch.tensor(stream, dtype=torch.long)
    start_t = torch.tensor(starts, dtype=torch.long)
    offsets = torch.arange(T)
    gen = torch.Generator().manual_seed(seed)

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=settings.peak_lr, betas=(0.9, 0.95), eps=1e-8)
    model.train()
    losses: list[float] = []
    for step in range(steps):
        lr = lr_at(step, steps, settings.peak_lr, settings.warmup_steps, settings.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        pick = start_t[torch.randint(len(starts), (settings.batch_size,), generator=gen)]
        batch = data[pick[:, None] + offsets[None, :]]
        logits = model(input_ids=batch).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == steps:
            log.info("tiny pre-training step %d/%d loss %.3f", step + 1, steps, losses[-1])
    model.eval()
    return losses


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a directory", path=out, field="--out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError("output directory exists and is not empty; pass --overwrite "
                         "(overwrite=True) to replace it", path=out, field="--out")


def _require_build_deps() -> None:
    """Fail early, with the extra to install, before any work is done."""
    from evalbench.errors import require

    for module in ("torch", "transformers", "tokenizers", "safetensors"):
        require(module, "train")


def _write_model(tmp: Path, seed: int, pretrain_steps: int, corpus: Corpus) -> dict[str, Any]:
    """Build everything into the empty directory `tmp`; returns the metadata written."""
    import json

    import tokenizers
    import torch
    import transformers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    from evalbench import __version__
    from evalbench.io import write_json_atomic

    t0 = time.perf_counter()
    tokenizer = train_tokenizer(corpus.documents)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    log.info("tiny tokenizer: %d tokens (%.1fs)", len(tokenizer), time.perf_counter() - t0)

    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=eos_id,
                         pad_token_id=pad_id, **MODEL_CONFIG)
    with _Deterministic(seed):
        model = LlamaForCausalLM(config).to(torch.float32)
        losses: list[float] = []
        if pretrain_steps > 0:
            token_docs = tokenizer(list(corpus.documents), add_special_tokens=False)["input_ids"]
            t1 = time.perf_counter()
            losses = _pretrain(model, token_docs, pad_id, pretrain_steps, seed, TRAIN)
            log.info("tiny pre-training: %d steps in %.1fs", pretrain_steps, time.perf_counter() - t1)
    # Stop on `<|im_end|>` (end of turn) and on `<|endoftext|>` (end of document, for plain
    # completions); vLLM reads these from generation_config.json.
    model.generation_config = GenerationConfig(eos_token_id=[eos_id, pad_id], pad_token_id=pad_id)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar is only noise
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    finally:
        if bars:
            hf_logging.enable_progress_bar()

    saved_config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
    tail = losses[-10:]
    meta = {
        "recipe": recipe(seed, pretrain_steps, corpus),
        "seed": seed,
        "pretrain_steps": pretrain_steps,
        "corpus": {"sha256": corpus.sha256, "documents": len(corpus.documents), "chars": corpus.n_chars,
                   "sources": list(corpus.sources)},
        "config": {k: v for k, v in saved_config.items() if k != "transformers_version"},
        "tokenizer": {"vocab_size": len(tokenizer), "eos_token": IM_END, "pad_token": END_OF_TEXT,
                      "special_tokens": list(SPECIAL_TOKENS)},
        "train": {**TRAIN._asdict(), "first_loss": losses[0] if losses else None,
                  "final_loss": sum(tail) / len(tail) if tail else None},
        "versions": {"evalbench": __version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
    }
    write_json_atomic(tmp / META_FILE, meta)
    # mkdtemp/mkstemp create owner-only modes; a model cache is meant to be readable by the
    # server processes of other users too.
    tmp.chmod(0o755)
    for path in tmp.iterdir():
        path.chmod(0o644)
    return meta


def _install(tmp: Path, out: Path) -> None:
    """Move the finished build `tmp` to `out`, replacing whatever is there, never half-visible."""
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, trash / out.name)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp, out)


def build_tiny_model(out_dir: str | Path, seed: int = DEFAULT_SEED,
                     pretrain_steps: int = DEFAULT_PRETRAIN_STEPS, overwrite: bool = False,
                     include_data_text: bool = False) -> Path:
    """Build the tiny Llama checkpoint into `out_dir` and return its path.

    Args:
        out_dir: target directory; must be absent or empty unless `overwrite`.
        seed: seeds weight initialisation and the pre-training batch order.
        pretrain_steps: causal-LM steps on the local corpus (0: random weights, trained tokenizer).
        overwrite: replace a non-empty `out_dir`.
        include_data_text: also train on the AlpacaEval instructions/reference answers from the
            data dir (if one is set); the corpus hash in `tiny_meta.json` records the difference.

    The build happens in a temporary sibling directory that is renamed into place at the end, so
    an interrupted build never leaves a half-written model behind.
    """
    if pretrain_steps < 0:
        raise InputError(f"pretrain_steps must be >= 0, got {pretrain_steps}", field="--pretrain-steps")
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out, overwrite)
    _require_build_deps()
    extra = data_dir_documents() if include_data_text else []
    corpus = build_corpus(extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        t0 = time.perf_counter()
        _write_model(tmp, seed, pretrain_steps, corpus)
        _check_out_dir(out, overwrite)  # someone may have filled it while we were building
        _install(tmp, out)
        log.info("tiny model written to %s (%.1fs)", out, time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_meta(model_dir: str | Path) -> dict[str, Any] | None:
    """The `tiny_meta.json` of a complete build, or None (missing, partial or unreadable)."""
    import json

    path = Path(model_dir) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_tiny_model(out_dir: str | Path | None = None, seed: int = DEFAULT_SEED,
                      pretrain_steps: int = DEFAULT_PRETRAIN_STEPS, home: str | Path | None = None) -> Path:
    """Return the tiny model directory, building it first if it is missing or from another recipe.

    Idempotent and safe when several processes race: each builds in its own temporary directory
    and renames it into place; a build finding a matching model already installed is discarded.
    Uses the built-in corpus only (hermetic), whatever the data dir.
    """
    if out_dir is None:
        out = default_tiny_model_dir(seed, pretrain_steps, home)
    else:
        out = Path(out_dir).expanduser()
    corpus = build_corpus()
    want = recipe(seed, pretrain_steps, corpus)
    meta = read_meta(out)
    if meta is not None and meta.get("recipe") == want:
        return out
    if meta is not None:
        log.warning("tiny model at %s was built from another recipe; rebuilding", out)
    elif out.is_dir() and any(out.iterdir()):
        raise InputError("directory exists, is not empty and holds no tiny model "
                         f"({META_FILE} missing); remove it or choose another directory", path=out)
    _require_build_deps()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        _write_model(tmp, seed, pretrain_steps, corpus)
        meta = read_meta(out)
        if meta is not None and meta.get("recipe") == want:  # another process won the race
            return out
        try:
            _install(tmp, out)
        except OSError:
            meta = read_meta(out)
            if meta is None or meta.get("recipe") != want:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
