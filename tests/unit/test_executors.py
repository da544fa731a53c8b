"""Executors without a cluster: the registry, the spec fields, placement arithmetic, the driver-side
pieces of the Ray executor (shared cache, unit threads). A real Ray cluster: tests/integration."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from evalbench.cache import Cache
from evalbench.errors import EvalbenchError, MissingExtra
from evalbench.executors import EXECUTORS, make_executor
from evalbench.executors.local import LocalExecutor
from evalbench.executors.ray import (
    RayExecutor,
    SharedCachedBackend,
    chunk_size,
    import_ray,
    loopback_address,
    plan_engines,
)
from evalbench.generate.fake import FakeBackend
from evalbench.runspec import RunSpec
from evalbench.types import GenRequest


def _spec(**extra) -> RunSpec:
    return RunSpec(suites=("diversity",), model={"base": "m"}, **extra)


def test_registry_and_defaults():
    assert EXECUTORS.names() == ["local", "ray"]
    assert isinstance(make_executor(_spec()), LocalExecutor)
    ray_spec = _spec(executor="ray", ray_address="127.0.0.1:6379", ray_engines=2)
    executor = make_executor(ray_spec)
    assert isinstance(executor, RayExecutor) and executor.address == "127.0.0.1:6379"
    assert executor.requested_engines == 2
    with pytest.raises(ValueError, match="did you mean 'ray'"):
        _spec(executor="rey")


def test_the_executor_is_left_out_of_the_spec_hash():
    """How a run executes is not what it computes: a run resumes under either executor, and specs
    written before executors existed keep their hash (so their run ids)."""
    from evalbench.io import canonical_json, sha256_text

    local = _spec()
    assert _spec(executor="ray", ray_engines=3, ray_address="x:1").spec_hash() == local.spec_hash()
    assert _spec(overlap_judging=False).spec_hash() == local.spec_hash()
    before = {k: v for k, v in local.model_dump(mode="json").items()
              if k not in ("executor", "ray_address", "ray_engines", "overlap_judging")}
    # Serving options (parallelism, memory, in-flight bounds) are left out alike (issue 17 item 3).
    before["model"] = {k: v for k, v in before["model"].items() if k != "serving"}
    before["judge"] = {k: v for k, v in before["judge"].items() if k not in ("serving", "concurrency")}
    assert local.spec_hash() == sha256_text(canonical_json(before))
    assert _spec(seeds=(1,)).spec_hash() != local.spec_hash()


def test_cli_flags_reach_the_spec():
    import argparse

    from evalbench.cli.run import add_command, spec_from_args

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    args = parser.parse_args(["run", "--suite", "diversity", "--model", "m", "--executor", "ray",
                              "--ray-address", "127.0.0.1:6379", "--ray-engines", "2"])
    spec = spec_from_args(args)
    assert (spec.executor, spec.ray_address, spec.ray_engines) == ("ray", "127.0.0.1:6379", 2)
    assert spec_from_args(parser.parse_args(["run", "--suite", "diversity", "--model", "m"])).executor == "local"


def test_ray_is_imported_only_when_used():
    code = ("import sys, evalbench.api, evalbench.executors.ray, evalbench.cli.run; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError(name="ray")
    with pytest.raises(MissingExtra, match=r"evalbench\[ray\]"):
        import_ray()


@pytest.mark.parametrize(("kwargs", "expected"), [
    # GPUs: one engine per tensor-parallel group, after the judge's share.
    ({"gpus": 8, "cpus": 64, "nodes": 1}, (8, 1.0, 1.0, True)),
    ({"gpus": 8, "cpus": 64, "nodes": 2, "gpus_per_engine": 2}, (4, 2.0, 1.0, True)),
    ({"gpus": 8, "cpus": 64, "nodes": 1, "reserved_gpus": 1, "other_engines": 1}, (7, 1.0, 1.0, True)),
    ({"gpus": 4, "cpus": 64, "nodes": 1, "requested": 2}, (2, 1.0, 1.0, True)),
    # CPU only: one engine per node, CPU shares that let every engine (and a judge) start at once.
    ({"gpus": 0, "cpus": 16, "nodes": 2}, (2, 0.0, 1.0, False)),
    ({"gpus": 0, "cpus": 2, "nodes": 1, "requested": 2, "other_engines": 1}, (2, 0.0, 2 / 3, False)),
    # Fewer GPUs than one engine needs: CPU actors.
    ({"gpus": 1, "cpus": 4, "nodes": 1, "gpus_per_engine": 2}, (1, 0.0, 1.0, False)),
])
def test_plan_engines(kwargs, expected):
    plan = plan_engines(**kwargs)
    assert (plan.engines, plan.num_gpus, pytest.approx(plan.num_cpus), plan.placement_groups) == expected


def test_plan_engines_refuses_more_gpu_engines_than_fit():
    with pytest.raises(EvalbenchError, match="do not fit"):
        plan_engines(gpus=4, cpus=8, nodes=1, requested=5)


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1:6379", True), ("localhost:6379", True), ("[::1]:6379", True), ("localhost", True),
    ("10.0.0.5:6379", False), ("127.0.0.2:6379", False), ("auto", False), ("ray://127.0.0.1:10001", False),
    (None, False), ("", False),
])
def test_loopback_address(address, loopback):
    # A loopback address is kept as given (Ray would replace 127.0.0.1 with the outward address).
    assert loopback_address(address) is loopback


def test_chunk_size():
    assert chunk_size(10, 2) == 5 and chunk_size(1000, 2) == 64 and chunk_size(3, 8) == 1 and chunk_size(0, 1) == 1


def test_shared_cached_backend_pays_once_for_a_request_two_threads_send_at_once(tmp_path):
    def slow(body):
        time.sleep(0.2)
        return "answer to " + body["prompt"]

    inner = FakeBackend("m", responder=slow)
    backend = SharedCachedBackend(inner, Cache(tmp_path / "cache.sqlite"))
    requests = [GenRequest(prompt=f"p{i}") for i in range(3)]
    results: list = [None, None]

    def ask(slot: int) -> None:
        results[slot] = backend.generate(requests)

    threads = [threading.Thread(target=ask, args=(slot,)) for slot in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert [g.text for g in results[0]] == [g.text for g in results[1]] == [f"answer to p{i}" for i in range(3)]
    assert inner.calls == 3  # each prompt reached the model once, as in one thread
    assert (backend.misses, backend.hits) == (3, 3)


def test_unit_threads_write_every_finished_unit_before_raising():
    class Suite:
        def __init__(self, name):
            self.name = name

    class Ck:
        name = "ck"
        backend = None

    written: list[str] = []
    started = {"good": threading.Event(), "also": threading.Event()}

    def work(suite, ck, seed):
        if suite.name == "bad":
            assert all(e.wait(10) for e in started.values())
            raise RuntimeError("engine lost")
        if suite.name == "never":
            return [suite.name]
        started[suite.name].set()
        time.sleep(0.1)
        return [suite.name]

    units = [(Suite(n), Ck(), 0) for n in ("good", "bad", "also", "never")]
    with pytest.raises(RuntimeError, match="engine lost"):
        RayExecutor(_spec())._run_units(units, work, lambda suite, ck, seed, records: written.extend(records), threads=3)
    # Started before the failure: finished and written; not started (no free thread): never started.
    assert sorted(written) == ["also", "good"]
