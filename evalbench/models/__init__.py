"""Local models: the embedded tiny default model (`evalbench model build-tiny`).

Import-light: `evalbench.models.tiny` imports torch/transformers only inside its build functions.
"""

from evalbench.models.tiny import build_tiny_model, default_tiny_model_dir, ensure_tiny_model

__all__ = ["build_tiny_model", "default_tiny_model_dir", "ensure_tiny_model"]
