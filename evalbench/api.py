"""`run(spec)`: the only module that wires the stages together.

    serve policy engine (base + adapters, one start)  ->  generate every suite x checkpoint x seed
    -> judge (same engine, a second vLLM server, or any endpoint)  ->  finalize (cross-checkpoint)
    -> summarize per checkpoint x seed (pure)  ->  aggregate over seeds  ->  summary.json

The run id defaults to a hash of the spec, so the same command resumes the same run directory;
every model call goes through the cache, so a resumed run never pays twice for anything finished.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from evalbench.cache import Cache
from evalbench.config import ServerSpec
from evalbench.generate.backend import CachedBackend
from evalbench.paths import cache_path as default_cache_path
from evalbench.provenance import adapter_identity
from evalbench.runspec import RunSpec, checkpoint_meta, expand_adapters
from evalbench.store import ResultsStore, Run
from evalbench.suites.base import SUITES, Checkpoint, Suite, SuiteContext

log = logging.getLogger(__name__)


def build_suites(spec: RunSpec) -> list[Suite]:
    from evalbench.config import validate_spec

    suites = []
    unknown = set(spec.suite_options) - set(spec.suites)
    if unknown:
        from evalbench.errors import InputError

        raise InputError(f"options given for suites not in the run: {', '.join(sorted(unknown))}",
                         field="suite_options")
    for name in spec.suites:
        cls = SUITES.get(name)
        opts = dict(spec.suite_options.get(name, {}))
        if spec.limit is not None and "limit" in cls.Options.model_fields and "limit" not in opts:
            opts["limit"] = spec.limit
        suites.append(cls(validate_spec(cls.Options, opts, source=f"suite_options.{name}")))
    return suites


def default_run_id(spec: RunSpec) -> str:
    return f"run-{spec.spec_hash()[:12]}"


@contextlib.contextmanager
def policy_engine(spec: RunSpec, run: Run, cache: Cache, *, serve: bool = True
                  ) -> Iterator[tuple[list[Checkpoint], Any]]:
    """Start one engine for the base model with every adapter; yield the checkpoints on it.

    With `serve=False` (no suite generates through evalbench) no engine starts and the
    checkpoints carry no backend.
    """
    m = spec.model
    adapters = expand_adapters(m)
    if not serve and m.endpoint is None:
        from evalbench.serve.vllm_server import check_adapter, check_model

        check_model(m.base)
        for a in adapters:
            check_adapter(a, m.base)
        name = m.served_name or Path(m.base).name or m.base
        checkpoints = [Checkpoint(name, None, m.base, None, checkpoint_meta(name, None))] if m.include_base else []
        checkpoints += [Checkpoint(a.name, None, m.base, a.path, checkpoint_meta(a.name, a.path)) for a in adapters]
        yield checkpoints, None
        return
    if m.endpoint is not None:
        from evalbench.generate.client import OpenAICompatibleBackend

        e = m.endpoint
        checkpoints = []
        for name in m.served_models or (e.model,):
            backend = OpenAICompatibleBackend(e.base_url, name, api_key_env=e.api_key_env,
                                              max_concurrency=e.max_concurrency, timeout_s=e.timeout_s,
                                              max_retries=e.max_retries)
            checkpoints.append(Checkpoint(name, CachedBackend(backend, cache), m.base, None,
                                          checkpoint_meta(name, None)))
        yield checkpoints, None
        return
    server_spec = ServerSpec(model=m.base, served_name=m.served_name, adapters=tuple(adapters), dtype=m.dtype,
                             max_model_len=m.max_model_len, kv_cache_gib=m.kv_cache_gib)
    if m.engine == "inprocess":
        from evalbench.serve.inprocess import InProcessEngine

        engine_cm: Any = InProcessEngine(server_spec)
    else:
        from evalbench.serve.vllm_server import VLLMServer

        engine_cm = VLLMServer(server_spec, log_dir=run.path / "logs")
    with engine_cm as engine:
        checkpoints = []
        if m.include_base:
            checkpoints.append(Checkpoint(engine.served_name, CachedBackend(engine.backend(engine.served_name), cache),
                                          m.base, None, checkpoint_meta(engine.served_name, None)))
        for a in adapters:
            checkpoints.append(Checkpoint(a.name, CachedBackend(engine.backend(a.name), cache), m.base, a.path,
                                          checkpoint_meta(a.name, a.path)))
        yield checkpoints, engine


@contextlib.contextmanager
def judge_backend(spec: RunSpec, run: Run, cache: Cache, policy: Any) -> Iterator[CachedBackend | None]:
    j = spec.judge
    if j.kind == "same":
        if policy is None:
            from evalbench.errors import InputError

            raise InputError("judge 'same' needs a served policy model; give --judge vllm:MODEL or url=...",
                             field="--judge")
        yield CachedBackend(policy.backend(policy.served_name), cache)
    elif j.kind == "vllm":
        from evalbench.serve.vllm_server import VLLMServer

        server_spec = ServerSpec(model=j.model or spec.model.base, served_name="judge", dtype=j.dtype,
                                 max_model_len=j.max_model_len)
        with VLLMServer(server_spec, log_dir=run.path / "logs") as server:
            yield CachedBackend(server.backend("judge"), cache)
    else:
        from evalbench.generate.client import OpenAICompatibleBackend

        e = j.endpoint
        assert e is not None
        yield CachedBackend(OpenAICompatibleBackend(e.base_url, e.model, api_key_env=e.api_key_env,
                                                    max_concurrency=e.max_concurrency, timeout_s=e.timeout_s,
                                                    max_retries=e.max_retries), cache)


def summarize_run(run: Run, suites: Sequence[Suite], checkpoints: Sequence[Checkpoint], seeds: Sequence[int],
                  judge_name: str | None) -> list[dict[str, Any]]:
    rows = []
    for suite in suites:
        for ck in checkpoints:
            for seed in seeds:
                samples = run.samples(suite=suite.name, checkpoint=ck.name, seed=seed)
                metrics = suite.summarize(samples)
                meta = ck.meta
                rows.append({
                    "suite": suite.name, "suite_version": suite.version, "checkpoint": ck.name,
                    "group": meta.get("group", ck.name), "train_seed": meta.get("train_seed"), "seed": seed,
                    "base_model": ck.base_model, "adapter": ck.adapter_path,
                    "adapter_sha256": adapter_identity(ck.name, ck.adapter_path)["sha256"] if ck.adapter_path else None,
                    "method": meta.get("method"), "judge": judge_name if suite.needs_judge else None,
                    "metrics": metrics, "n_samples": len(samples),
                    "n_failed": sum(1 for s in samples if s.error is not None)})
    return rows


def run(spec: RunSpec, *, run_id: str | None = None) -> Run:
    suites = build_suites(spec)
    data_files = [p for s in suites for p in s.data_files()]
    store = ResultsStore(spec.results_dir)
    handle = store.start(spec.model_dump(mode="json"), spec.spec_hash(), run_id=run_id or default_run_id(spec),
                         data_files=data_files, kind="run")
    cache = Cache(spec.cache_path or default_cache_path())
    judge_name = spec.judge.name(spec.model.base) if any(s.needs_judge for s in suites) else None
    calls: dict[str, int] = {"generate": 0, "judge": 0, "cached": 0}
    serve = any(s.uses_policy_backend for s in suites) or spec.judge.kind == "same" and judge_name is not None
    with handle.recording():
        with policy_engine(spec, handle, cache, serve=serve) as (checkpoints, engine):
            ctx = SuiteContext(run=handle, judge=None, judge_name=judge_name,
                               constrained_judge=spec.judge.is_constrained(), limit=spec.limit)
            gens: dict[tuple[str, str, int], list] = {}
            for suite in suites:
                for ck in checkpoints:
                    for seed in spec.seeds:
                        gens[(suite.name, ck.name, seed)] = suite.generate(ctx, ck, seed)
            calls["generate"] = sum(ck.backend.misses for ck in checkpoints if ck.backend)
            calls["cached"] = sum(ck.backend.hits for ck in checkpoints if ck.backend)
            judge_cm = judge_backend(spec, handle, cache, engine) if judge_name else contextlib.nullcontext(None)
            # A separate judge server is started only after generation; the policy engine stays up
            # because `same` judges on it and cross-checkpoint suites may still generate.
            with judge_cm as judge:
                ctx.judge = judge
                for suite in suites:
                    for ck in checkpoints:
                        for seed in spec.seeds:
                            suite.score(ctx, ck, seed, gens[(suite.name, ck.name, seed)])
                for suite in suites:
                    suite.finalize(ctx, checkpoints, spec.seeds)
                if judge is not None:
                    calls["judge"] = judge.misses
                    calls["cached"] += judge.hits
        rows = summarize_run(handle, suites, checkpoints, spec.seeds, judge_name)
        from evalbench.aggregate.summarize import aggregate_results

        handle.write_results(rows, aggregate=aggregate_results(rows))
        handle.update_header(model_calls=handle.header().get("model_calls", []) + [calls])
    log.info("run %s finished: %s", handle.run_id, calls)
    return handle
