"""Pre-flight: every check of a run spec that needs no engine, in seconds, before anything starts.

A hub id that vLLM cannot load (offline, a typo, a gated repository) otherwise fails after about a
minute of engine start-up with a long traceback; an adapter trained on another base is otherwise
only caught in vLLM's log; an unreachable judge otherwise fails after all the generation was paid
for. Each failure here is one `InputError` line (exit code 2), raised before the run directory
exists, so a rejected run leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from evalbench.config import EndpointSpec
from evalbench.errors import InputError

log = logging.getLogger(__name__)

ENDPOINT_TIMEOUT_S = 5.0


def looks_like_local_path(model: str) -> bool:
    """A path (absolute, relative with a dot, home, or existing) rather than an `org/name` hub id."""
    return model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_base_model(model: str, *, field: str = "--model") -> None:
    """The model is a local directory with config.json, or a hub id this machine can load.

    A hub id counts as loadable when its config.json is in the local Hugging Face cache; otherwise,
    unless the hub is marked offline, the hub is asked (short timeout) whether the repository
    exists and can be read.
    """
    if looks_like_local_path(model):
        path = Path(model).expanduser()
        if not path.is_dir():
            raise InputError("model directory not found", path=model, field=field)
        if not (path / "config.json").is_file():
            raise InputError("not a model directory (no config.json)", path=model, field=field)
        return
    try:
        import huggingface_hub as hub
    except ImportError:  # vLLM would resolve it; without the hub client there is nothing to ask
        log.debug("huggingface_hub not installed: cannot pre-check hub id %s", model)
        return
    cached = hub.try_to_load_from_cache(repo_id=model, filename="config.json")
    if isinstance(cached, str):
        return
    fetch = f"fetch it first (huggingface-cli download {model}) or pass a local model directory"
    if _hub_offline():
        raise InputError(f"'{model}' is not a local directory and not in the Hugging Face cache, and the hub "
                         f"is offline (HF_HUB_OFFLINE); {fetch}", field=field)
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    # The hub client's transport errors: requests' derive from OSError, httpx's from HTTPError.
    unreachable: tuple[type[BaseException], ...] = (OSError, HfHubHTTPError, OfflineModeIsEnabled, TimeoutError)
    try:
        import httpx

        unreachable += (httpx.HTTPError,)
    except ImportError:
        pass
    try:
        hub.HfApi().model_info(model, timeout=ENDPOINT_TIMEOUT_S)
    except GatedRepoError:
        raise InputError(f"'{model}' is a gated repository: accept its licence on the hub and log in "
                         "(huggingface-cli login), or pass a local model directory", field=field) from None
    except RepositoryNotFoundError:
        raise InputError(f"'{model}' is neither a local directory nor a model on the hub (a typo?)",
                         field=field) from None
    except unreachable as exc:  # connection refused, DNS, timeout: the hub cannot be reached
        raise InputError(f"'{model}' is not in the local Hugging Face cache and the hub cannot be reached "
                         f"({type(exc).__name__}); {fetch}", field=field) from None


def check_endpoint(endpoint: EndpointSpec, *, what: str, field: str) -> None:
    """The endpoint answers `GET /models` within a few seconds (a wrong URL or a dead server)."""
    import httpx

    headers = {}
    key = os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = f"{endpoint.base_url}/models"
    try:
        response = httpx.get(url, headers=headers, timeout=ENDPOINT_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise InputError(f"the {what} endpoint {url} does not answer ({type(exc).__name__}: {exc})",
                         field=field) from None
    if response.status_code in (401, 403):
        env = endpoint.api_key_env or "the key variable"
        raise InputError(f"the {what} endpoint {url} refused the key (HTTP {response.status_code}); "
                         f"check {env}", field=field)
    if response.status_code >= 400:
        raise InputError(f"the {what} endpoint {url} answered HTTP {response.status_code}", field=field)


def preflight_run(spec) -> None:
    """Every engine-free check of a `RunSpec`: policy model, adapters, generator and judge endpoints."""
    from evalbench.runspec import expand_adapters
    from evalbench.serve.vllm_server import check_adapter
    from evalbench.suites.base import SUITES

    model = spec.model
    if model.endpoint is not None:
        check_endpoint(model.endpoint, what="generator", field="--endpoint")
    elif (model.backend or "") not in ("replay", "fake"):
        check_base_model(model.base)
        for adapter in expand_adapters(model):
            check_adapter(adapter, model.base)
    if not any(SUITES.get(name).needs_judge for name in spec.suites):
        return
    judge = spec.judge
    if judge.kind == "vllm" and judge.model:
        check_base_model(judge.model, field="--judge")
    elif judge.kind == "endpoint" and judge.endpoint is not None:
        check_endpoint(judge.endpoint, what="judge", field="--judge")
