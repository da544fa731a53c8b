"""`executor: ray` on a real single-node Ray cluster bound to 127.0.0.1 (2 CPUs).

The fake-backend tests take seconds (engines are FakeBackends in Ray actors); the tiny-model test
serves the tiny model with vLLM (CPU build) in Ray actors and compares with the local executor.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from evalbench.api import run
from evalbench.cache import Cache
from evalbench.runspec import RunSpec

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def ray_cluster():
    """A private Ray cluster, loopback only: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 at import
    and then binds every server to 127.0.0.1 (the only way in Ray 2.x; `_node_ip_address` alone does not)."""
    import sys

    if "ray" not in sys.modules:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace="evalbench",
             object_store_memory=100 * 1024**2, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _summary_rows(handle) -> list[dict]:
    return handle.summary()["results"]


def _generations(handle) -> dict:
    rows = [json.loads(line) for line in (handle.path / "generations.jsonl").read_text().splitlines()]
    return {(r["suite"], r["checkpoint"], r["seed"], r["sample_id"], r["turn"]): r["outputs"] for r in rows}


def _fake_spec(tmp_path: Path, name: str, **extra) -> RunSpec:
    return RunSpec.model_validate({
        "suites": ["mtbench"], "seeds": [0, 1], "results_dir": str(tmp_path / name / "results"),
        "cache_path": str(tmp_path / name / "cache.sqlite"),
        "suite_options": {"mtbench": {"question_ids": [81, 82, 83], "max_new_tokens": 8}},
        "model": {"base": "fake-judge", "backend": "fake", "served_models": ["fake-judge", "pol_a", "pol_b"]},
        "judge": {"kind": "same"}, **extra})


def test_fake_run_is_the_same_through_both_executors(ray_cluster, tmp_path, data_dir):
    local = run(_fake_spec(tmp_path, "local"))
    distributed = run(_fake_spec(tmp_path, "ray", executor="ray", ray_engines=2))
    # Same summary rows, same records, same calls (the results directories differ, so the run ids do).
    assert _summary_rows(distributed) == _summary_rows(local)
    assert _generations(distributed) == _generations(local)
    assert distributed.header()["model_calls"] == local.header()["model_calls"]
    engines = distributed.header()["executor"]["engines"]
    assert [e["role"] for e in engines] == ["policy", "policy"]
    assert [e["engine_starts"] for e in engines] == [1, 1] and len({e["pid"] for e in engines}) == 2
    # Resumed through Ray: everything is cached in the driver, nothing is asked again.
    again = run(_fake_spec(tmp_path, "ray", executor="ray", ray_engines=2))
    assert again.header()["model_calls"][-1]["generate"] == 0
    assert again.header()["model_calls"][-1]["judge"] == 0


def _kill_and_wait(ray, actor, timeout: float = 60.0) -> None:
    """`ray.kill` returns before the actor is gone; wait until a call fails, so the test is not a race."""
    import time

    from ray.exceptions import GetTimeoutError, RayActorError

    ray.kill(actor)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get(actor.describe.remote(), timeout=10)
        except RayActorError:  # dead, as wanted (ActorDiedError is one)
            return
        except GetTimeoutError:
            pass
        time.sleep(0.2)
    raise AssertionError("the killed Ray actor still answers")


def test_remote_backend_moves_a_dead_workers_requests_and_stops_when_none_is_left(ray_cluster):
    from evalbench.executors.ray import EngineLost, EnginePool, EngineWorker, RemoteBackend
    from evalbench.runspec import ModelSpec
    from evalbench.types import GenRequest

    model = ModelSpec(base="fake", backend="fake")
    actors = [ray_cluster.remote(EngineWorker).options(num_cpus=0.1).remote("fake", model, ()) for _ in range(2)]
    infos = ray_cluster.get([a.describe.remote() for a in actors])
    pool = EnginePool("fake", actors, infos)
    remote = RemoteBackend(pool, "fake", ray_cluster.get(actors[0].who.remote("fake")), max_chunk=2)
    requests = [GenRequest(prompt=f"p{i}") for i in range(7)]
    _kill_and_wait(ray_cluster, actors[0])
    seen: list[int] = []
    gens = remote.generate_uncached(requests, on_result=lambda i, g: seen.append(i))
    assert [g.text for g in gens] == [f"echo: p{i}" for i in range(7)] and sorted(seen) == list(range(7))
    assert pool.dead == {0} and pool.live == 1
    _kill_and_wait(ray_cluster, actors[1])
    with pytest.raises(EngineLost, match="rerun the same command to resume"):
        remote.generate_uncached(requests)


# -- the tiny model on vLLM (CPU build) --------------------------------------------------------


def _tiny_spec(tmp_path: Path, name: str, tiny_model, adapter, *, seeds=(0,), **extra) -> RunSpec:
    # vLLM's floats depend on what the engine computed before (batch shapes, cached prefixes), and
    # on the random tiny model a last-bit difference flips sampled tokens. One in-process engine
    # gets one unit at a time in the local executor's order, so it computes the same batches.
    return RunSpec.model_validate({
        "suites": ["mtbench"], "seeds": list(seeds), "results_dir": str(tmp_path / name / "results"),
        "cache_path": str(tmp_path / name / "cache.sqlite"),
        "suite_options": {"mtbench": {"question_ids": [81, 82, 83], "max_new_tokens": 16}},
        "model": {"base": str(tiny_model), "served_name": "tiny", "engine": "inprocess", "dtype": "float32",
                  "max_model_len": 1024, "adapters": [{"name": "lora_a", "path": str(adapter)}]},
        "judge": {"kind": "fake"}, **extra})


def _kill_worker_when_cached(spec: RunSpec, at_least: int, timeout: float = 240) -> list[int]:
    """SIGKILL the run's Ray engine worker once its cache holds `at_least` answers; returns the
    process groups of its engine (vLLM's engine core), which must not outlive it."""
    runs = Path(spec.results_dir) / "runs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        headers = list(runs.glob("run-*/run.json"))
        engines = json.loads(headers[0].read_text()).get("executor", {}).get("engines") if headers else None
        if engines and Path(spec.cache_path).exists() and len(Cache(spec.cache_path)) >= at_least:
            os.kill(engines[0]["pid"], signal.SIGKILL)
            return engines[0]["engine_groups"]
        time.sleep(0.05)
    raise AssertionError(f"the cache never held {at_least} answers")


def _gone(groups: list[int], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for group in groups:
            try:
                os.killpg(group, 0)
                alive.append(group)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.2)
    return False


def test_tiny_model_through_ray_matches_local_and_resumes_after_a_killed_worker(ray_cluster, tiny_model,
                                                                               lora_adapter, tmp_path, data_dir):
    """Three engine starts: the local reference, a Ray attempt whose worker is SIGKILLed mid-run,
    and a Ray attempt that resumes it: the local executor's summary and texts, no generation paid
    twice, and the killed worker's vLLM engine does not outlive it."""
    ref = run(_tiny_spec(tmp_path, "local", tiny_model, lora_adapter))
    ref_calls = len(Cache(tmp_path / "local" / "cache.sqlite"))
    assert ref.header()["model_calls"][-1]["generate"] == ref_calls > 0

    spec = _tiny_spec(tmp_path, "ray", tiny_model, lora_adapter, executor="ray")
    failure: list[BaseException] = []

    def attempt() -> None:
        try:
            run(spec)
        except BaseException as exc:  # noqa: BLE001 - the killed attempt is expected to fail
            failure.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    engine_groups = _kill_worker_when_cached(spec, at_least=2)
    thread.join(timeout=300)
    assert not thread.is_alive() and failure, "the attempt did not stop when its only worker died"
    before = len(Cache(spec.cache_path))
    assert 0 < before < ref_calls
    assert engine_groups and _gone(engine_groups), "the killed worker's vLLM engine outlived it"

    resumed = run(spec)
    assert resumed.header()["status"] == "success"
    assert _summary_rows(resumed) == _summary_rows(ref)
    assert _generations(resumed) == _generations(ref)
    # The resumed attempt asked only for what the killed one had not brought back.
    assert resumed.header()["model_calls"][-1]["generate"] == ref_calls - before
    assert len(Cache(spec.cache_path)) == ref_calls
    assert resumed.header()["resumed"] == 1
    assert [e["engine_starts"] for e in resumed.header()["executor"]["engines"]] == [1]


@pytest.mark.slow
def test_tiny_model_uninterrupted_through_ray_is_the_local_run(ray_cluster, tiny_model, lora_adapter, tmp_path,
                                                               data_dir):
    """Two seeds x base + adapter, uninterrupted: the same summary rows, texts and model calls."""
    ref = run(_tiny_spec(tmp_path, "local", tiny_model, lora_adapter, seeds=(0, 1)))
    distributed = run(_tiny_spec(tmp_path, "ray", tiny_model, lora_adapter, seeds=(0, 1), executor="ray"))
    assert _summary_rows(distributed) == _summary_rows(ref)
    assert _generations(distributed) == _generations(ref)
    assert distributed.header()["model_calls"] == ref.header()["model_calls"]
    assert [e["engine_starts"] for e in distributed.header()["executor"]["engines"]] == [1]


def test_a_killed_workers_engine_groups_are_killed_by_its_watcher(ray_cluster):
    """Ray kills a dead actor's direct children, not their children in other process groups (vLLM's
    engine core); the watcher, detached so that Ray does not take it along, kills those groups."""
    import subprocess

    from evalbench.executors.ray import descendant_groups, start_reaper

    class Owner:  # an engine owner in miniature: a child in its own group, with a grandchild
        def __init__(self):
            self.child = subprocess.Popen(["bash", "-c", "sleep 600 & sleep 600"], start_new_session=True)
            time.sleep(0.5)
            self.groups = sorted(descendant_groups(os.getpid()))
            start_reaper(os.getpid(), set(self.groups))

        def groups_(self) -> list[int]:
            return self.groups

    owner = ray_cluster.remote(Owner).options(num_cpus=0.1).remote()
    groups = ray_cluster.get(owner.groups_.remote())
    assert groups
    ray_cluster.kill(owner)
    assert _gone(groups)
