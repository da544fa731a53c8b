"""evalbench: did this checkpoint get better, and is the difference real?

The top-level import is deliberately light (no torch, vllm or lm-eval); heavy
dependencies are imported where they are used, with an error naming the extra.
"""

__version__ = "0.1.0"

from evalbench.errors import EvalbenchError, InputError, MissingExtra  # noqa: E402

__all__ = ["__version__", "EvalbenchError", "InputError", "MissingExtra"]
