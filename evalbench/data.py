"""Where benchmark files come from: a local data dir (tests, CI, offline users) or the HF hub.

The data dir is `--data-dir` or `EVALBENCH_DATA_DIR` (resolved by `evalbench.paths`), read when a file
is asked for (never at import). Paths inside it mirror ../shared/data: `mt_bench/question.jsonl`,
`alpaca_eval/gpt4_1106_preview/model_outputs.json`, `openllm/gsm8k/test.jsonl`, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalbench.errors import EvalbenchError, InputError
from evalbench.paths import DATA_DIR_ENV as ENV_VAR
from evalbench.paths import data_dir, set_data_dir

__all__ = ["ENV_VAR", "HubFile", "data_dir", "resolve", "set_data_dir"]


@dataclass(frozen=True)
class HubFile:
    """Where the same file lives on the Hugging Face hub."""

    repo_id: str
    filename: str
    repo_type: str = "dataset"
    revision: str | None = None


def resolve(relpath: str, hub: HubFile | None = None) -> Path:
    """Local path of a benchmark file: from the data dir if set, else downloaded from the hub."""
    root = data_dir()
    if root is not None:
        path = root / relpath
        if not path.exists():
            raise InputError(f"expected benchmark file is missing from the data dir ({ENV_VAR}={root})",
                             path=path)
        return path
    if hub is None:
        raise EvalbenchError(
            f"'{relpath}' has no hub location; set {ENV_VAR} or --data-dir to a folder holding it")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        from evalbench.errors import MissingExtra

        raise MissingExtra("huggingface_hub", "eval") from None
    try:
        return Path(hf_hub_download(hub.repo_id, hub.filename, repo_type=hub.repo_type,
                                    revision=hub.revision))
    except Exception as exc:  # offline, gated, missing: one line that says what to do
        raise EvalbenchError(
            f"could not fetch {hub.repo_id}/{hub.filename} from the hub ({type(exc).__name__}); "
            f"set {ENV_VAR} or --data-dir to a local copy") from None
