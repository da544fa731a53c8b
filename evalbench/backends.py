"""Backends by name: every way evalbench reaches a model, in one registry.

    vllm-server     a managed `vllm serve` of the base model with every adapter (the default)
    vllm-inprocess  vllm.LLM in a worker process (one engine, adapters as LoRA requests)
    endpoint        any OpenAI-compatible URL (OpenAI, a remote vLLM, a local server)
    replay          saved outputs served by sample id (alpaca_eval / FastChat files; `alpaca judge`,
                    `mtbench judge`)
    fake            deterministic echo answers in process (tests, dry runs; `evalbench.generate.fake`)

`open_backend(name, request)` is a context manager yielding an `Engine`: the checkpoints it serves
(`names`, in evaluation order) and `engine.backend(name)` for each. The policy of `evalbench run`
and a judge of kind `vllm` / `endpoint` are both opened here; `BACKENDS.get("vlm")` fails with a
did-you-mean. Adding a backend is one provider function plus one `BACKENDS.add` line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from evalbench.config import AdapterSpec
from evalbench.registry import Registry

__all__ = ["BACKENDS", "BackendRequest", "Engine", "open_backend", "policy_backend_name"]


@dataclass(frozen=True)
class BackendRequest:
    """What to open: a ModelSpec (evalbench.runspec) and the adapters it expands to."""

    model: Any  # ModelSpec; Any keeps this module below runspec in the import graph
    adapters: tuple[AdapterSpec, ...] = ()
    log_dir: Path | None = None
    # suite name -> reader of that suite's saved-output files (replay only)
    replay_readers: Mapping[str, Callable[[Path], Any]] = field(default_factory=dict)


@dataclass
class Engine:
    """Backends for the checkpoints one provider serves; `served_name` is the base model's name."""

    names: list[str]
    backend: Callable[[str], Any]
    served_name: str | None = None
    handle: Any = None  # the live server / in-process engine, if any


Provider = Callable[[BackendRequest], ContextManager[Engine]]
BACKENDS: Registry[Provider] = Registry("backend")


def policy_backend_name(model: Any) -> str:
    """The backend of a ModelSpec: `backend` when given, else from `endpoint` / `engine`."""
    if model.backend:
        return model.backend
    if model.endpoint is not None:
        return "endpoint"
    return "vllm-inprocess" if model.engine == "inprocess" else "vllm-server"


def open_backend(name: str, request: BackendRequest) -> ContextManager[Engine]:
    return BACKENDS.get(name)(request)


def _server_spec(request: BackendRequest):
    from evalbench.config import ServerSpec

    m = request.model
    return ServerSpec(model=m.base, served_name=m.served_name, adapters=tuple(request.adapters), dtype=m.dtype,
                      max_model_len=m.max_model_len, kv_cache_gib=m.kv_cache_gib, **dict(m.serving))


def _engine_names(served_name: str, request: BackendRequest) -> list[str]:
    return ([served_name] if request.model.include_base else []) + [a.name for a in request.adapters]


@contextlib.contextmanager
def _vllm_server(request: BackendRequest) -> Iterator[Engine]:
    from evalbench.serve.vllm_server import VLLMServer

    with VLLMServer(_server_spec(request), log_dir=request.log_dir) as server:
        yield Engine(_engine_names(server.served_name, request), server.backend, server.served_name, server)


@contextlib.contextmanager
def _vllm_inprocess(request: BackendRequest) -> Iterator[Engine]:
    from evalbench.serve.inprocess import InProcessEngine

    with InProcessEngine(_server_spec(request)) as engine:
        yield Engine(_engine_names(engine.served_name, request), engine.backend, engine.served_name, engine)


@contextlib.contextmanager
def _endpoint(request: BackendRequest) -> Iterator[Engine]:
    from evalbench.generate.client import OpenAICompatibleBackend
    from evalbench.generate.limits import InFlightLimit

    e = request.model.endpoint
    if e is None:
        from evalbench.errors import InputError

        raise InputError("backend 'endpoint' needs model.endpoint (--model-url URL)", field="model.endpoint")
    names = list(request.model.served_models or (e.model,))
    # One bound for the endpoint, shared by every checkpoint x seed generating at once.
    limit = InFlightLimit(e.max_concurrency)

    def backend(name: str):
        return OpenAICompatibleBackend(e.base_url, name, api_key_env=e.api_key_env,
                                       max_concurrency=e.max_concurrency, timeout_s=e.timeout_s,
                                       max_retries=e.max_retries, limit=limit)

    yield Engine(names, backend, e.model)


@contextlib.contextmanager
def _replay(request: BackendRequest) -> Iterator[Engine]:
    from evalbench.generate.replay import ReplayBackend

    files = dict(request.model.replay)
    if not files:
        from evalbench.errors import InputError

        raise InputError("backend 'replay' needs model.replay: {checkpoint: saved-output file}",
                         field="model.replay")
    backends = {name: ReplayBackend(name, path, request.replay_readers) for name, path in files.items()}
    yield Engine(list(files), backends.__getitem__)


@contextlib.contextmanager
def _fake(request: BackendRequest) -> Iterator[Engine]:
    from evalbench.generate.fake import FakeBackend

    m = request.model
    names = list(m.served_models or (m.served_name or m.base,))
    backends = {name: FakeBackend(name) for name in names}
    yield Engine(names, lambda name: backends.get(name) or FakeBackend(name), names[0])


for _name, _provider in {"vllm-server": _vllm_server, "vllm-inprocess": _vllm_inprocess, "endpoint": _endpoint,
                         "replay": _replay, "fake": _fake}.items():
    BACKENDS.add(_name, _provider)
