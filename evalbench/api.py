"""`run(spec)`: the only module that wires the stages together and the only writer of run records.

    open the policy backend (evalbench.backends: vLLM server / in-process / endpoint / replay / fake)
    -> generate every suite x checkpoint x seed
    -> judge (same engine, a second vLLM server, or any endpoint)  ->  finalize (cross-checkpoint)
       (a judged unit is judged as soon as its answers are in, while the others generate, where
       the judge can be open during generation: `OverlappedScoring`, evalbench.serve.sharing)
    -> summarize per checkpoint x seed (pure, on the final records)  ->  aggregate  ->  summary.json

Suites return records; `RecordSink` appends those that are not stored yet. The run id defaults to
a hash of the spec, so the same command resumes the same run directory; every model call goes
through the cache, so a resumed run never pays twice for anything finished. Every command that
evaluates (`run`, `openllm`, `alpaca judge`, `mtbench judge`) builds a RunSpec and calls `run`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from evalbench.backends import BackendRequest, Engine, open_backend, policy_backend_name
from evalbench.cache import Cache
from evalbench.executors import make_executor
from evalbench.generate.backend import CachedBackend
from evalbench.paths import cache_path as default_cache_path
from evalbench.preflight import preflight_run
from evalbench.provenance import adapter_identity
from evalbench.runspec import ModelSpec, RunSpec, checkpoint_meta, expand_adapters
from evalbench.serve.sharing import judge_overlaps_generation
from evalbench.store import GenerationRecord, ResultsStore, Run, SampleRecord
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
def policy_engine(spec: RunSpec, run: Run, cache: Cache | None, *, serve: bool = True, suites: Sequence[Suite] = ()
                  ) -> Iterator[tuple[list[Checkpoint], Engine | None]]:
    """Open the policy's backend (`evalbench.backends`) and yield the checkpoints on it.

    With `serve=False` (no suite generates through evalbench) no vLLM engine starts and the
    checkpoints carry no backend.
    """
    m = spec.model
    adapters = expand_adapters(m)
    name = policy_backend_name(m)
    if not serve and name in ("vllm-server", "vllm-inprocess"):
        from evalbench.serve.vllm_server import check_adapter, check_model

        check_model(m.base)
        for a in adapters:
            check_adapter(a, m.base)
        base_name = m.served_name or Path(m.base).name or m.base
        checkpoints = [Checkpoint(base_name, None, m.base, None, checkpoint_meta(base_name, None))] \
            if m.include_base else []
        checkpoints += [Checkpoint(a.name, None, m.base, a.path, checkpoint_meta(a.name, a.path)) for a in adapters]
        yield checkpoints, None
        return
    request = BackendRequest(m, tuple(adapters), run.path / "logs",
                             replay_readers={s.name: s.read_replay for s in suites})
    # Replayed outputs are free, and one sample's saved answer must never be served for another's.
    policy_cache = None if name == "replay" else cache
    paths = {a.name: a.path for a in adapters}
    with open_backend(name, request) as engine:
        checkpoints = [Checkpoint(n, CachedBackend(engine.backend(n), policy_cache), m.base, paths.get(n),
                                  checkpoint_meta(n, paths.get(n))) for n in engine.names]
        yield checkpoints, engine


# A judge of kind `vllm` is a managed server of its own; `endpoint` any URL; `same` the policy's base.
JUDGE_BACKENDS = {"vllm": "vllm-server", "endpoint": "endpoint"}


@contextlib.contextmanager
def judge_backend(spec: RunSpec, run: Run, cache: Cache | None, policy: Engine | None) -> Iterator[CachedBackend | None]:
    j = spec.judge
    if j.kind == "fake":  # FakeJudge (evalbench.judge.fake) needs no backend
        yield None
        return
    if j.kind == "same":
        if policy is None or policy.served_name is None:
            from evalbench.errors import InputError

            raise InputError("judge 'same' needs a served policy model; give --judge vllm:MODEL or url=...",
                             field="--judge")
        yield CachedBackend(policy.backend(policy.served_name), cache)
        return
    if j.kind == "vllm":
        serving = j.serving.model_copy(update={"max_in_flight": j.concurrency}) if j.concurrency else j.serving
        model = ModelSpec(base=j.model or spec.model.base, served_name="judge", dtype=j.dtype,
                          max_model_len=j.max_model_len, serving=serving)
    else:
        assert j.endpoint is not None
        endpoint = j.endpoint.model_copy(update={"max_concurrency": j.concurrency}) if j.concurrency else j.endpoint
        model = ModelSpec(base=j.endpoint.model, endpoint=endpoint)
    with open_backend(JUDGE_BACKENDS[j.kind], BackendRequest(model, log_dir=run.path / "logs")) as engine:
        yield CachedBackend(engine.backend(engine.names[0]), cache)


# -- the driver: the only code that sequences stages and writes records ---------------------------

Unit = tuple[str, str, int]  # (suite, checkpoint, seed)


class RecordSink:
    """The driver's handle on the run's records; stages never get it.

    The store appends only records that are new or changed for their key (`Run.append_*`), so a
    resumed run writes only what the killed one had not finished, or what changed (a retried
    failure); readers keep the last record of a key.
    """

    def __init__(self, run: Run):
        self.run = run

    def add_header(self, header: Mapping[str, Any]) -> None:
        if header:
            self.run.update_header(**dict(header))

    def add_generations(self, records: Sequence[GenerationRecord]) -> int:
        return self.run.append_generations(records) if records else 0

    def add_samples(self, records: Sequence[SampleRecord]) -> int:
        return self.run.append_samples(records) if records else 0


# Units of a suite generating at once, one thread each; the engine bounds the requests in flight
# over all of them (ServingSpec.max_in_flight), so this only needs to cover a large grid.
MAX_UNIT_THREADS = 64


UnitDone = Callable[[Unit, list[GenerationRecord]], None]


def ranked(rank: int, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` with the engine's in-flight permits ranked for this unit (evalbench.generate.limits):
    with more requests than permits, units finish in order, and each can be judged meanwhile."""
    from evalbench.generate.limits import UNIT_RANK

    token = UNIT_RANK.set(rank)
    try:
        return fn(*args)
    finally:
        UNIT_RANK.reset(token)


def generate_stage(sink: RecordSink, suites: Sequence[Suite], checkpoints: Sequence[Checkpoint],
                   seeds: Sequence[int], ctx: SuiteContext, on_unit: UnitDone | None = None
                   ) -> dict[Unit, list[GenerationRecord]]:
    """Every checkpoint x seed of a suite generates together, so one engine batch holds them all.

    Records are written as units finish, then handed to `on_unit` (the overlapped judging). On a
    failure no new unit starts; the running ones finish and are written (their answers are cached
    either way), then the failure is raised.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    gens: dict[Unit, list[GenerationRecord]] = {}
    for suite in suites:
        units = [(suite.name, ck.name, seed) for ck in checkpoints for seed in seeds]
        by_name = {ck.name: ck for ck in checkpoints}
        with ThreadPoolExecutor(max_workers=max(1, min(len(units), MAX_UNIT_THREADS)),
                                thread_name_prefix="evalbench-generate") as pool:
            running = {pool.submit(ranked, rank, suite.generate, ctx, by_name[ck], seed): (s, ck, seed)
                       for rank, (s, ck, seed) in enumerate(units)}
            failure: BaseException | None = None
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    unit = running.pop(fut)
                    if fut.cancelled():
                        continue
                    if fut.exception() is not None:
                        failure = failure or fut.exception()
                        continue
                    gens[unit] = fut.result()
                    sink.add_generations(gens[unit])
                    if on_unit is not None:
                        on_unit(unit, gens[unit])
                if failure is not None:
                    for fut in running:
                        fut.cancel()
            if failure is not None:
                raise failure
    # Units in their canonical order (suite, checkpoint, seed), whatever order they finished in.
    return {unit: gens[unit] for unit in ((s.name, ck.name, seed) for s in suites for ck in checkpoints
                                          for seed in seeds) if unit in gens}


def score_stage(sink: RecordSink, suites: Sequence[Suite], checkpoints: Sequence[Checkpoint],
                seeds: Sequence[int], ctx: SuiteContext, gens: dict[Unit, list[GenerationRecord]],
                done: Mapping[Unit, list[SampleRecord]] | None = None) -> dict[Unit, list[SampleRecord]]:
    """Score every unit not in `done` (already scored while generating); all units' samples."""
    done = done or {}
    samples: dict[Unit, list[SampleRecord]] = {}
    for suite in suites:
        for ck in checkpoints:
            for seed in seeds:
                unit = (suite.name, ck.name, seed)
                if unit in done:
                    samples[unit] = list(done[unit])
                    continue
                samples[unit] = records = suite.score(ctx, ck, seed, gens.get(unit, []))
                sink.add_samples(records)
                sink.add_header(ctx.header)
    return samples


class OverlappedScoring:
    """Judged suites' units scored as their answers arrive, while the other units still generate.

    `submit` (the generate stage's `on_unit`) queues a unit of a suite that needs the judge; one
    scoring thread takes them in order of arrival, so the judge sees the configured concurrency of
    one unit at a time, exactly as in the score stage. Suites that score on this machine's own
    hardware (reward and embedding models) wait for the score stage: they would take the cores or
    GPU memory the engines are using. `close` waits for the queued units; `results` are the scored
    units, or the first scoring error.
    """

    def __init__(self, sink: RecordSink, suites: Sequence[Suite], checkpoints: Sequence[Checkpoint],
                 ctx: SuiteContext):
        from concurrent.futures import ThreadPoolExecutor

        self.sink, self.ctx = sink, ctx
        self.suites = {s.name: s for s in suites if s.needs_judge}
        self.checkpoints = {ck.name: ck for ck in checkpoints}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalbench-judge")
        self.futures: dict[Unit, Any] = {}

    def submit(self, unit: Unit, generations: list[GenerationRecord]) -> None:
        suite = self.suites.get(unit[0])
        if suite is not None:
            self.futures[unit] = self.pool.submit(self._score, suite, self.checkpoints[unit[1]], unit[2],
                                                  list(generations))

    def _score(self, suite: Suite, ck: Checkpoint, seed: int, generations: list[GenerationRecord]
               ) -> list[SampleRecord]:
        records = suite.score(self.ctx, ck, seed, generations)
        self.sink.add_samples(records)
        self.sink.add_header(self.ctx.header)
        return records

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def results(self) -> dict[Unit, list[SampleRecord]]:
        self.close()
        errors = [f.exception() for f in self.futures.values() if f.exception() is not None]
        if errors:
            raise errors[0]
        return {unit: f.result() for unit, f in self.futures.items()}


def finalize_stage(sink: RecordSink, suites: Sequence[Suite], checkpoints: Sequence[Checkpoint],
                   seeds: Sequence[int], ctx: SuiteContext, gens: dict[Unit, list[GenerationRecord]],
                   samples: dict[Unit, list[SampleRecord]]) -> dict[Unit, list[SampleRecord]]:
    """Cross-checkpoint work; its records replace those with the same key (the final samples)."""
    final = {unit: list(records) for unit, records in samples.items()}
    for suite in suites:
        own_gens = [r for unit, rs in gens.items() if unit[0] == suite.name for r in rs]
        own_samples = [r for unit, rs in final.items() if unit[0] == suite.name for r in rs]
        updated = suite.finalize(ctx, checkpoints, seeds, own_gens, own_samples)
        sink.add_samples(updated)
        for rec in updated:
            unit_records = final.setdefault((rec.suite, rec.checkpoint, rec.seed), [])
            at = next((i for i, r in enumerate(unit_records) if r.sample_id == rec.sample_id), None)
            if at is None:
                unit_records.append(rec)
            else:
                unit_records[at] = rec
    sink.add_header(ctx.header)
    return final


def drive(run: Run, suites: Sequence[Suite], checkpoints: Sequence[Checkpoint], seeds: Sequence[int],
          ctx: SuiteContext) -> dict[Unit, list[SampleRecord]]:
    """generate -> score -> finalize with a ready judge (`ctx.judge`); returns the final samples.

    `run` does the same with engines opened and closed between the stages; this is the driver
    for callers that hold their backends already (tests, notebooks).
    """
    sink = RecordSink(run)
    ctx.artifacts_dir = ctx.artifacts_dir or run.artifacts
    ctx.log_dir = ctx.log_dir or run.path / "logs"
    gens = generate_stage(sink, suites, checkpoints, seeds, ctx)
    samples = score_stage(sink, suites, checkpoints, seeds, ctx, gens)
    return finalize_stage(sink, suites, checkpoints, seeds, ctx, gens, samples)


def summarize_records(suites: Sequence[Suite], checkpoints: Sequence[Checkpoint], seeds: Sequence[int],
                      samples: dict[Unit, list[SampleRecord]], judge_name: str | None,
                      self_judged: bool = False) -> list[dict[str, Any]]:
    """summary.json `results` rows: `suite.summarize` (pure) on each unit's final samples.

    A unit without samples (MT-bench's pairwise baseline, which FastChat leaves out of the table)
    has no row.
    """
    rows = []
    for suite in suites:
        for ck in checkpoints:
            for seed in seeds:
                unit_samples = samples.get((suite.name, ck.name, seed), [])
                if not unit_samples:
                    continue
                metrics = suite.summarize(unit_samples)
                meta = ck.meta
                rows.append({
                    "suite": suite.name, "suite_version": suite.version, "checkpoint": ck.name,
                    "group": meta.get("group", ck.name), "train_seed": meta.get("train_seed"), "seed": seed,
                    "base_model": ck.base_model, "adapter": ck.adapter_path,
                    "adapter_sha256": adapter_identity(ck.name, ck.adapter_path)["sha256"] if ck.adapter_path else None,
                    "method": meta.get("method"), "judge": judge_name if suite.needs_judge else None,
                    # The policy's own base model judged (--judge same): numbers not comparable.
                    "self_judged": self_judged if suite.needs_judge else None,
                    "metrics": metrics, "n_samples": len(unit_samples),
                    "n_failed": sum(1 for s in unit_samples if s.error is not None)})
    return rows


def run(spec: RunSpec, *, run_id: str | None = None, use_cache: bool = True) -> Run:
    """Evaluate `spec` into its run directory (resumed when it exists) and return the run.

    `use_cache=False` neither reads nor writes the model-call cache (every call is made).
    """
    suites = build_suites(spec)
    data_files = [p for s in suites for p in s.data_files()]
    data_files += [p for p in spec.model.replay.values()]
    store = ResultsStore(spec.results_dir)
    run_id = run_id or default_run_id(spec)
    # Engine-free checks in seconds (model resolvable, adapters' base, endpoints answering): a
    # rejected run fails before any engine starts and leaves no run directory.
    preflight_run(spec)
    # Every input check that needs the model (lm-eval task files, chat template) before run.json exists.
    for suite in suites:
        suite.check(spec.model.base, store.runs_dir / run_id / "artifacts", spec.limit)
    handle = store.start(spec.model_dump(mode="json"), spec.spec_hash(), run_id=run_id,
                         data_files=data_files, kind="run")
    cache = Cache(spec.cache_path or default_cache_path()) if use_cache else None
    judge_name = spec.judge.name(spec.model.base) if any(s.needs_judge for s in suites) else None
    if judge_name is not None and spec.judge.self_judged:
        # Said now, before a long generation, and again when the judge is built.
        from evalbench.judge.base import SELF_JUDGED_WARNING

        log.warning(SELF_JUDGED_WARNING.format(model=judge_name))
    calls: dict[str, int] = {"generate": 0, "judge": 0, "cached": 0}
    serve = any(s.uses_policy_backend for s in suites) or spec.judge.kind == "same" and judge_name is not None
    with handle.recording():
        sink = RecordSink(handle)
        # Where the stages run (evalbench.executors: local, ray); records come back here either way.
        executor = make_executor(spec)
        with executor.policy_engine(spec, handle, cache, serve=serve, suites=suites) as (checkpoints, engine), \
                contextlib.ExitStack() as judge_scope:
            ctx = SuiteContext(judge=None, judge_name=judge_name, constrained_judge=spec.judge.is_constrained(),
                               limit=spec.limit, artifacts_dir=handle.artifacts, log_dir=handle.path / "logs")

            def open_judge() -> None:
                """The judge's backend (closed with `judge_scope`) and the Judge, built once for the run."""
                from evalbench.judge.build import make_judge
                from evalbench.serve.sharing import make_room_for_judge

                make_room_for_judge(spec, engine)  # a vLLM judge never starts while the policy holds its GPUs
                backend = judge_scope.enter_context(executor.judge_backend(spec, handle, cache, engine))
                ctx.judge = make_judge(spec.judge, backend, policy_base=spec.model.base)
                handle.update_header(judge=ctx.judge.id.to_json())

            overlapped: OverlappedScoring | None = None
            if judge_name is not None and judge_overlaps_generation(spec, engine):
                open_judge()
                overlapped = OverlappedScoring(sink, suites, checkpoints, ctx)
            try:
                gens = executor.generate(sink, suites, checkpoints, spec.seeds, ctx,
                                         on_unit=overlapped.submit if overlapped else None)
            finally:
                if overlapped is not None:  # units already judged are kept when generation fails
                    overlapped.close()
            calls["generate"] = sum(ck.backend.misses for ck in checkpoints if ck.backend)
            calls["cached"] = sum(ck.backend.hits for ck in checkpoints if ck.backend)
            if judge_name is not None and ctx.judge is None:
                # Judging after generation: a separate judge server starts only now. The policy engine
                # stays up (`same` judges on it) except where a vLLM judge needs its GPUs.
                open_judge()
            done = overlapped.results() if overlapped is not None else {}
            samples = executor.score(sink, suites, checkpoints, spec.seeds, ctx, gens, done=done)
            samples = finalize_stage(sink, suites, checkpoints, spec.seeds, ctx, gens, samples)
            if ctx.judge is not None:
                calls["judge"] = ctx.judge.misses
                calls["cached"] += ctx.judge.hits
        rows = summarize_records(suites, checkpoints, spec.seeds, samples, judge_name,
                                 self_judged=judge_name is not None and spec.judge.self_judged)
        from evalbench.aggregate.summarize import aggregate_results

        handle.write_results(rows, aggregate=aggregate_results(rows))
        handle.update_header(model_calls=handle.header().get("model_calls", []) + [calls])
    log.info("run %s finished: %s", handle.run_id, calls)
    return handle
