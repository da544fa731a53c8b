"""The files of a training output directory: names only, so every trainer module agrees on them.

    adapter_config.json, adapter_model.safetensors   the peft adapter (written last, atomically)
    train_meta.json     method, hyper-parameters, data hash, base identity, seed, versions, times
    metrics.jsonl       one row per optimiser step (`STEP_KEYS`) and one per held-out evaluation
                        (`EVAL_PREFIX` keys, `"split": "eval"`)
    training_curves.png loss and implicit rewards over steps (held-out values drawn next to them)
    checkpoints/step-NNNNNN/  adapter + trainer_state.pt (optimiser, RNG) + trainer_state.json
"""

from __future__ import annotations

META_FILE = "train_meta.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "training_curves.png"
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"
OPTIM_FILE = "trainer_state.pt"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
META_FORMAT = 1

# Keys of a metrics.jsonl training row (KTO adds `kl`; WPO adds `wpo/weight_mean`; the reward
# model adds `rewards/mean` and `rewards/std`; a value may be null when a batch has nothing to
# average, e.g. no undesirable example in a KTO batch).
STEP_KEYS = ("step", "epoch", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
             "rewards/accuracies", "logps/chosen", "logps/rejected", "beta", "lr", "grad_norm",
             "tokens_per_s", "step_time_s", "elapsed_s")

# A held-out evaluation row: {"step", "split": "eval", "eval/loss", "eval/rewards/accuracies", ...}.
EVAL_PREFIX = "eval/"
