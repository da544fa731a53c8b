"""The Ray executor: engines as Ray actors on a cluster, suites and records in the driver.

    driver (this process)                          Ray cluster
    suites, cache, RecordSink, run lock    --->    EngineWorker actor x N per base model
      unit threads: suite x checkpoint x seed        one engine each (vllm-server / vllm-inprocess
      RemoteBackend: chunks to the least busy        / fake), every adapter of the base on it
      engine, results cached as they arrive        EngineWorker for a `vllm:MODEL` judge (shared)

Only the engines move. The suites run in the driver in one thread per unit, so adapters and
seeds are spread over the engines and several units are in flight at once; every request goes
through the driver's `CachedBackend` (the same cache keys as the local executor: the worker
reports its engine's identity), and every record comes back to the driver's one `RecordSink`.
Workers never write the run (their engines log to a temporary directory on their node).

Placement (`plan_engines`): with GPUs, each engine is a placement group of
`tensor_parallel_size` GPUs (STRICT_PACK) and the base model gets as many engines as the GPUs
allow, after a `vllm:MODEL` judge took its share; on a CPU-only cluster each engine is a CPU
actor, one per node unless `ray_engines` says otherwise. A worker that dies mid-run loses only
its requests in flight: they go to the other engines of the same base, and when none is left the
run stops with one line; rerunning the same command resumes (finished requests are cached).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from evalbench.errors import EvalbenchError, MissingExtra
from evalbench.generate.backend import CachedBackend
from evalbench.types import Generation, GenRequest

log = logging.getLogger(__name__)

# Backends whose engine can live in a worker; an endpoint or replayed outputs have none to place.
PLACEABLE = ("vllm-server", "vllm-inprocess", "fake")
NAMESPACE = "evalbench"
# At most this many requests per chunk: results come back (and are cached) at least this often.
MAX_CHUNK = 64


def import_ray():
    """`ray`, or MissingExtra naming the `ray` extra."""
    try:
        import ray
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] != "ray":
            raise
        raise MissingExtra("ray", "ray") from None
    return ray


# Hosts that Ray on Linux replaces with the outward address (ray._common.network_utils.is_localhost).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def loopback_address(address: str | None) -> bool:
    """Whether a cluster address (`host:port`, `[v6]:port`) names this machine's loopback."""
    if not address or "://" in address:  # none, or a Ray client address (ray://...)
        return False
    if address.startswith("["):
        host = address[1:].partition("]")[0]
    else:
        host = address.split(":")[0] if address.count(":") <= 1 else address
    return host in LOOPBACK_HOSTS


def connect(address: str | None) -> Any:
    """Join the cluster at `address` (or this process's, or $RAY_ADDRESS); with none, start a
    private single-node cluster bound to loopback. Returns the `ray` module."""
    target = address or os.environ.get("RAY_ADDRESS")
    if "ray" not in __import__("sys").modules and (target is None or loopback_address(target)):
        # Read by Ray at import. Without it Ray on Linux replaces 127.0.0.1 with the machine's
        # outward address: a cluster we start for ourselves would listen on every interface, and a
        # cluster started on loopback (docs/executors.md) would be looked for where it is not.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False, "configure_logging": False}
        if address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs.update(include_dashboard=False)
        ray.init(address=address, **kwargs)
    return ray


# -- placement: pure ----------------------------------------------------------------------------


class EnginePlan(NamedTuple):
    """How many engines a base model gets and what each asks Ray for."""

    engines: int
    num_gpus: float  # per engine (its tensor-parallel GPUs); 0 on a CPU-only cluster
    num_cpus: float  # per engine
    placement_groups: bool  # one STRICT_PACK group per engine (GPU clusters)


def plan_engines(*, gpus: float, cpus: float, nodes: int, gpus_per_engine: int = 1, requested: int | None = None,
                 reserved_gpus: float = 0, other_engines: int = 0) -> EnginePlan:
    """Engines for one base model on a cluster with `gpus` / `cpus` / `nodes`.

    `reserved_gpus` are kept for other engines (a `vllm:MODEL` judge); `other_engines` is how
    many other actors share the CPUs on a CPU-only cluster. `requested` (RunSpec.ray_engines)
    overrides the count; on GPUs it must fit.
    """
    if gpus >= gpus_per_engine + reserved_gpus and gpus > 0:
        fit = int((gpus - reserved_gpus) // gpus_per_engine)
        if requested is not None and requested > fit:
            raise EvalbenchError(f"ray_engines={requested} engines of {gpus_per_engine} GPU(s) do not fit the "
                                 f"cluster's {gpus:g} GPUs ({reserved_gpus:g} kept for the judge)")
        return EnginePlan(requested or fit, float(gpus_per_engine), 1.0, True)
    count = requested or max(1, nodes)
    # vLLM's CPU build uses the cores it finds whatever Ray reserves: the share only has to let
    # every engine (and a judge) be scheduled at once on a small cluster.
    share = min(1.0, cpus / (count + other_engines)) if cpus > 0 else 0.0
    return EnginePlan(count, 0.0, share, False)


def chunk_size(n: int, engines: int, max_chunk: int = MAX_CHUNK) -> int:
    """Requests per chunk: every engine gets a share of one call, results return often."""
    return max(1, min(max_chunk, math.ceil(n / max(1, engines))))


# -- the worker ---------------------------------------------------------------------------------

# Watches the actor's process; when it is gone (killed: no cleanup ran), kills the engine's process
# groups. vLLM's engine core outlives its parent (docs/cpu-notes.md); Ray kills the actor and its direct
# children only.
_REAPER = """
import os, signal, sys, time
owner, groups = int(sys.argv[1]), [int(g) for g in sys.argv[2:]]
while True:
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
"""


def descendant_groups(pid: int) -> set[int]:
    """Process groups of `pid`'s descendants other than its own (Linux /proc; empty elsewhere)."""
    parent_of: dict[int, tuple[int, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state ppid pgrp ...
        except (OSError, IndexError):
            continue
        parent_of[int(stat.parent.name)] = (int(fields[1]), int(fields[2]))
    own_group = parent_of.get(pid, (0, os.getpgid(pid)))[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, (ppid, _) in parent_of.items() if ppid in frontier}
        found |= frontier
    return {parent_of[c][1] for c in found if c in parent_of} - {own_group}


def start_reaper(owner: int, groups: set[int]) -> None:
    """Start the watcher detached (a grandchild in its own session): Ray kills an actor's direct
    children when it dies, and would take a child watcher with it."""
    if groups:
        import subprocess
        import sys

        launch = ("import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True, "
                  "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")
        subprocess.run([sys.executable, "-c", launch, sys.executable, "-c", _REAPER, str(owner),
                        *map(str, sorted(groups))], check=False, timeout=60,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class EngineWorker:
    """One engine (an `evalbench.backends` provider) in a Ray actor; the driver calls `generate`."""

    def __init__(self, backend_name: str, model: Any, adapters: tuple[Any, ...], omp_threads: str | None = None):
        from evalbench.backends import BackendRequest, open_backend

        # Ray sets OMP_NUM_THREADS=1 in every actor: a CPU engine would run on one thread, slower
        # and with other floats than the local executor's. Engines get the driver's setting.
        if omp_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp_threads

        # Never the run directory: workers do not write the run (and may sit on another node).
        log_dir = Path(tempfile.mkdtemp(prefix="evalbench-ray-"))
        self._stack = contextlib.ExitStack()
        started = time.perf_counter()
        self.engine = self._stack.enter_context(open_backend(backend_name, BackendRequest(model, adapters, log_dir)))
        self.engine_start_s = time.perf_counter() - started
        self.engine_starts = 1
        self.serial = backend_name == "vllm-inprocess"
        self.engine_groups = sorted(descendant_groups(os.getpid()))
        start_reaper(os.getpid(), set(self.engine_groups))
        self._backends: dict[str, Any] = {}
        # The in-process engine talks to its vLLM child over one pipe: one batch at a time.
        self._serial = threading.Lock() if backend_name == "vllm-inprocess" else None

    def describe(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        return {"names": list(self.engine.names), "served_name": self.engine.served_name, "pid": os.getpid(),
                "node": ctx.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()],
                "engine_starts": self.engine_starts, "engine_groups": self.engine_groups, "serial": self.serial,
                "engine_start_s": round(self.engine_start_s, 2)}

    def _backend(self, name: str) -> Any:
        if name not in self._backends:
            self._backends[name] = self.engine.backend(name)
        return self._backends[name]

    def who(self, name: str) -> dict[str, Any]:
        return self._backend(name).who

    def generate(self, name: str, requests: Sequence[GenRequest]) -> list[Generation]:
        backend = self._backend(name)
        with self._serial or contextlib.nullcontext():
            return backend.generate_uncached(list(requests), desc=f"generate [{name}]")

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        self._stack.close()


class EngineLost(EvalbenchError):
    """Every engine of a pool died."""


class EnginePool:
    """The live engine actors of one model; hands out the least busy one (by requests in flight)."""

    def __init__(self, label: str, actors: Sequence[Any], infos: Sequence[dict[str, Any]]):
        self.label = label
        self.actors = list(actors)
        self.infos = list(infos)
        self.load = [0] * len(self.actors)
        self.dead: set[int] = set()
        self._lock = threading.Lock()
        # Engines that take one batch at a time (in-process vLLM): more units than engines only queue.
        self.serial = all(info.get("serial", False) for info in self.infos)

    def acquire(self, n: int) -> int:
        with self._lock:
            live = [i for i in range(len(self.actors)) if i not in self.dead]
            if not live:
                raise EngineLost(f"every Ray engine worker of {self.label} died ({len(self.actors)}); rerun the same "
                                 f"command to resume (finished requests are cached, none is paid twice)")
            i = min(live, key=lambda k: self.load[k])
            self.load[i] += n
            return i

    def release(self, i: int, n: int) -> None:
        with self._lock:
            self.load[i] -= n

    def mark_dead(self, i: int) -> None:
        with self._lock:
            if i not in self.dead:
                log.warning("Ray engine worker %d of %s died; its requests go to the others", i, self.label)
            self.dead.add(i)

    @property
    def live(self) -> int:
        return len(self.actors) - len(self.dead)


class RemoteBackend:
    """A Backend (evalbench.generate.backend) whose engine is a pool of Ray actors.

    A call is cut into chunks spread over the pool; each result is handed to `on_result` as its
    chunk returns, so the driver's cache keeps everything finished even if a worker dies later.
    """

    def __init__(self, pool: EnginePool, name: str, who: dict[str, Any], *, max_chunk: int = MAX_CHUNK):
        self.pool = pool
        self.name = name
        self._who = who
        self.max_chunk = max_chunk
        self.requests_sent = 0

    @property
    def who(self) -> dict[str, Any]:
        return self._who

    def generate_uncached(self, requests: Sequence[GenRequest], *,
                          on_result: Callable[[int, Generation], None] | None = None,
                          desc: str | None = None) -> list[Generation]:
        ray = import_ray()
        results: list[Generation | None] = [None] * len(requests)
        size = chunk_size(len(requests), self.pool.live, self.max_chunk)
        pending: dict[Any, tuple[list[int], int]] = {}

        def submit(idx: list[int]) -> None:
            i = self.pool.acquire(len(idx))
            ref = self.pool.actors[i].generate.remote(self.name, [requests[j] for j in idx])
            pending[ref] = (idx, i)
            self.requests_sent += len(idx)

        for start in range(0, len(requests), size):
            submit(list(range(start, min(len(requests), start + size))))
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            idx, i = pending.pop(ref)
            self.pool.release(i, len(idx))
            try:
                gens = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
                self.pool.mark_dead(i)
                submit(idx)  # raises EngineLost when no engine is left
                continue
            for j, gen in zip(idx, gens):
                results[j] = gen
                if on_result is not None:
                    on_result(j, gen)
        return results  # type: ignore[return-value]


class SharedCachedBackend(CachedBackend):
    """A `CachedBackend` for many driver threads: what one thread is asking the engine for, another
    waits for and then reads from the cache (a hit), as if the units had run one after another.

    Without it two units that send the same request at the same time (the same answer judged for
    two seeds) would both pay for it, and the run would pay more than the local executor.
    """

    def __init__(self, inner: Any, cache: Any):
        super().__init__(inner, cache)
        self._inflight: dict[str, threading.Event] = {}
        self._flight_lock = threading.Lock()

    def generate(self, requests: Sequence[GenRequest], *, desc: str | None = None) -> list[Generation]:
        if self.cache is None or not requests:
            return super().generate(requests, desc=desc)
        keys = [self.key(r) for r in requests]
        mine = threading.Event()
        with self._flight_lock:
            foreign = {k: self._inflight[k] for k in set(keys) if k in self._inflight}
            for k in keys:
                self._inflight.setdefault(k, mine)
        own = [i for i, k in enumerate(keys) if k not in foreign]
        later = [i for i, k in enumerate(keys) if k in foreign]
        results: list[Generation | None] = [None] * len(requests)
        try:
            # Ours first, then wait for the others': no thread waits while it holds keys.
            for i, gen in zip(own, super().generate([requests[i] for i in own], desc=desc)):
                results[i] = gen
        finally:
            with self._flight_lock:
                for k in keys:
                    if self._inflight.get(k) is mine:
                        del self._inflight[k]
            mine.set()
        for event in {id(e): e for e in foreign.values()}.values():
            event.wait()
        for i, gen in zip(later, super().generate([requests[i] for i in later], desc=desc)):
            results[i] = gen
        return results  # type: ignore[return-value]


# -- the executor -------------------------------------------------------------------------------


@dataclass
class _Placed:
    pool: EnginePool
    placement_groups: list[Any]


class RayExecutor:
    """`executor: ray`: engines on a Ray cluster, the run's suites, cache and records here."""

    def __init__(self, spec: Any):
        self.spec = spec
        self.address: str | None = getattr(spec, "ray_address", None)
        self.requested_engines: int | None = getattr(spec, "ray_engines", None)
        self.engine_log: list[dict[str, Any]] = []  # every engine started, for run.json and benchmarks

    # -- placement

    def _resources(self, ray) -> tuple[float, float, int]:
        res = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        return float(res.get("GPU", 0)), float(res.get("CPU", 0)), max(1, nodes)

    def _place(self, ray, label: str, role: str, backend_name: str, model: Any, adapters: tuple[Any, ...],
               plan: EnginePlan) -> _Placed:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        actor_cls = ray.remote(EngineWorker)
        # vllm-server answers concurrent HTTP calls from many unit threads; keep them all open.
        concurrency = 1 if backend_name == "vllm-inprocess" else 32
        actors, groups = [], []
        for _ in range(plan.engines):
            options: dict[str, Any] = {"num_cpus": plan.num_cpus, "num_gpus": plan.num_gpus,
                                       "max_concurrency": concurrency, "max_restarts": 0}
            if plan.placement_groups:
                group = ray.util.placement_group([{"GPU": plan.num_gpus, "CPU": plan.num_cpus}],
                                                 strategy="STRICT_PACK")
                groups.append(group)
                options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(placement_group=group)
            elif plan.engines > 1:
                options["scheduling_strategy"] = "SPREAD"
            actors.append(actor_cls.options(**options).remote(backend_name, model, adapters,
                                                              os.environ.get("OMP_NUM_THREADS")))
        try:
            infos = ray.get([a.describe.remote() for a in actors])  # engines start in parallel
        except Exception:
            for a in actors:
                ray.kill(a)
            for g in groups:
                ray.util.remove_placement_group(g)
            raise
        for info in infos:
            self.engine_log.append({"role": role, "model": label, "backend": backend_name, **info})
        log.info("%s: %d engine(s) on Ray (%s GPU, %.2f CPU each)", label, plan.engines, plan.num_gpus, plan.num_cpus)
        return _Placed(EnginePool(label, actors, infos), groups)

    def _release(self, ray, placed: _Placed) -> None:
        # All engines stop at once: one engine's shutdown can take its whole grace period (the
        # in-process engine's 30 s), and one after another those would add up.
        live = [actor for i, actor in enumerate(placed.pool.actors) if i not in placed.pool.dead]
        stops = [actor.stop.remote() for actor in live]
        deadline = time.monotonic() + 60
        for actor, stop in zip(live, stops):
            try:
                ray.get(stop, timeout=max(0.0, deadline - time.monotonic()))
            except (ray.exceptions.RayError, TimeoutError) as exc:  # dead or stuck: kill it
                log.debug("stopping a Ray engine worker: %s", exc)
            ray.kill(actor)
        for group in placed.placement_groups:
            ray.util.remove_placement_group(group)

    def _judge_engines(self, spec: Any) -> int:
        return 1 if spec.judge.kind == "vllm" else 0

    @contextlib.contextmanager
    def policy_engine(self, spec: Any, run: Any, cache: Any, *, serve: bool = True,
                      suites: Sequence[Any] = ()) -> Iterator[tuple[list[Any], Any]]:
        from evalbench.api import policy_engine
        from evalbench.backends import Engine, policy_backend_name
        from evalbench.runspec import checkpoint_meta, expand_adapters
        from evalbench.suites.base import Checkpoint

        m = spec.model
        name = policy_backend_name(m)
        if not serve or name not in PLACEABLE:
            if serve:
                log.info("executor ray: backend %r has no engine to place; the driver calls it directly", name)
            with policy_engine(spec, run, cache, serve=serve, suites=suites) as out:
                yield out
            return
        ray = connect(self.address)
        adapters = tuple(expand_adapters(m))
        gpus, cpus, nodes = self._resources(ray)
        tp = int(getattr(m, "tensor_parallel_size", 1) or 1)
        judges = self._judge_engines(spec)
        plan = plan_engines(gpus=gpus, cpus=cpus, nodes=nodes, gpus_per_engine=tp, requested=self.requested_engines,
                            reserved_gpus=judges * tp if gpus else 0, other_engines=judges)
        placed = self._place(ray, m.base, "policy", name, m, adapters, plan)
        try:
            pool = placed.pool
            names = pool.infos[0]["names"]
            whos = dict(zip(names, ray.get([pool.actors[0].who.remote(n) for n in names])))
            paths = {a.name: a.path for a in adapters}
            remotes = {n: RemoteBackend(pool, n, whos[n]) for n in names}
            checkpoints = [Checkpoint(n, SharedCachedBackend(remotes[n], cache), m.base, paths.get(n),
                                      checkpoint_meta(n, paths.get(n))) for n in names]
            self._record(run)
            yield checkpoints, Engine(names, remotes.__getitem__, pool.infos[0]["served_name"], pool)
        finally:
            self._release(ray, placed)

    @contextlib.contextmanager
    def judge_backend(self, spec: Any, run: Any, cache: Any, policy: Any) -> Iterator[Any]:
        from evalbench.api import judge_backend

        j = spec.judge
        if j.kind != "vllm":  # same (the policy's pool), endpoint (shared by nature), fake
            with judge_backend(spec, run, cache, policy) as backend:
                yield SharedCachedBackend(backend.inner, backend.cache) if isinstance(backend, CachedBackend) \
                    else backend
            return
        from evalbench.runspec import ModelSpec

        ray = connect(self.address)
        model = ModelSpec(base=j.model or spec.model.base, served_name="judge", dtype=j.dtype,
                          max_model_len=j.max_model_len)
        gpus, cpus, _ = self._resources(ray)
        # One shared judge engine; the policy's engines (kept up: cross-checkpoint suites may
        # still generate) hold the rest of the cluster.
        policy_pool = getattr(policy, "handle", None)
        plan = plan_engines(gpus=gpus, cpus=cpus, nodes=1, requested=1,
                            other_engines=policy_pool.live if isinstance(policy_pool, EnginePool) else 0)
        placed = self._place(ray, model.base, "judge", "vllm-server", model, (), plan)
        try:
            name = placed.pool.infos[0]["names"][0]
            who = ray.get(placed.pool.actors[0].who.remote(name))
            self._record(run)
            yield SharedCachedBackend(RemoteBackend(placed.pool, name, who), cache)
        finally:
            self._release(ray, placed)

    def _record(self, run: Any) -> None:
        # The driver writes run.json; workers never do.
        run.update_header(executor={"name": "ray", "engines": list(self.engine_log)})

    # -- the stages: units in threads, records written here as units finish

    def _units(self, suites, checkpoints, seeds) -> list[tuple[Any, Any, int]]:
        return [(suite, ck, seed) for suite in suites for ck in checkpoints for seed in seeds]

    def _threads(self, checkpoints: Sequence[Any]) -> int:
        """Units in flight: 4 per engine that batches concurrent calls (a vLLM server), 1 per engine
        that takes one batch at a time. With one in-process engine the units then reach it in the
        local executor's order, so it computes the same batches (and the same floats)."""
        pools = {id(ck.backend.inner.pool): ck.backend.inner.pool for ck in checkpoints
                 if ck.backend is not None and isinstance(ck.backend.inner, RemoteBackend)}
        if not pools:
            return 4
        return max(max(1, pool.live * (1 if pool.serial else 4)) for pool in pools.values())

    def _run_units(self, units, work: Callable[[Any, Any, int], list[Any]], write: Callable[[Any, Any, int, list[Any]], None],
                   threads: int) -> dict[tuple[str, str, int], list[Any]]:
        """`work` on every unit in `threads` threads; `write` (here, in order of completion) each
        result. On a failure no new unit starts; the running ones finish and are written, then the
        first error is raised, so a rerun resumes from everything finished."""
        out: dict[tuple[str, str, int], list[Any]] = {}
        first_error: BaseException | None = None
        todo = iter(units)
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(units))),
                                thread_name_prefix="evalbench-unit") as pool:
            # A unit is submitted only when a thread is free and nothing failed, so after a failure
            # no new unit starts.
            running: dict[Future, tuple[Any, Any, int]] = {}

            def submit_next() -> None:
                unit = next(todo, None)
                if unit is not None:
                    running[pool.submit(work, *unit)] = unit

            for _ in range(max(1, min(threads, len(units)))):
                submit_next()
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    suite, ck, seed = running.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        first_error = first_error or exc
                        continue
                    records = fut.result()
                    out[(suite.name, ck.name, seed)] = records
                    write(suite, ck, seed, records)
                    if first_error is None:
                        submit_next()
        if first_error is not None:
            raise first_error
        # The local executor's order, so everything downstream sees the same mapping.
        return {(s.name, ck.name, seed): out[(s.name, ck.name, seed)] for s, ck, seed in units}

    def generate(self, sink, suites, checkpoints, seeds, ctx, on_unit=None):
        if not any(ck.backend is not None and isinstance(ck.backend.inner, RemoteBackend) for ck in checkpoints):
            from evalbench.api import generate_stage  # nothing placed (an endpoint): the local stage

            return generate_stage(sink, suites, checkpoints, seeds, ctx, on_unit=on_unit)

        def write(suite, ck, seed, records):
            sink.add_generations(records)
            if on_unit is not None:  # judged here while the workers generate the other units
                on_unit((suite.name, ck.name, seed), records)

        return self._run_units(self._units(suites, checkpoints, seeds),
                               lambda suite, ck, seed: suite.generate(ctx, ck, seed), write, self._threads(checkpoints))

    def score(self, sink, suites, checkpoints, seeds, ctx, gens, done=None):
        done = done or {}

        def write(suite, ck, seed, records):
            sink.add_samples(records)
            sink.add_header(ctx.header)

        todo = [(s, ck, seed) for s, ck, seed in self._units(suites, checkpoints, seeds)
                if (s.name, ck.name, seed) not in done]
        scored = self._run_units(todo, lambda suite, ck, seed: suite.score(ctx, ck, seed,
                                                                          gens.get((suite.name, ck.name, seed), [])),
                                 write, self._threads(checkpoints)) if todo else {}
        # The local executor's order, so everything downstream sees the same mapping.
        units = [(s.name, ck.name, seed) for s, ck, seed in self._units(suites, checkpoints, seeds)]
        return {u: list(done[u]) if u in done else scored[u] for u in units}
