"""`evalbench run --executor ray --ray-address ADDR` against a cluster started with the `ray` CLI:
two nodes (raylets) on this machine, every socket bound to 127.0.0.1.

Ray on Linux replaces a node address of 127.0.0.1 (`--node-ip-address`, `--address`) with the
machine's outward address and then listens on every interface. With
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 it keeps 127.0.0.1 and listens there only, but its CLI then
refuses to add a second node ("Multi-node Ray clusters are not supported on Windows and OSX").
So the head is started with the `ray` CLI as it is, and the second node with the same CLI entry
point with only that refusal lifted (`_WORKER_CLI`). The driver (`evalbench run`) gets no such
variable: `executors.ray.connect` must keep a loopback address as given. The tests check that
every socket the cluster, its workers and the driver listen on is on loopback.

Not tested here: nodes on different machines (real networking, evalbench and the model files on
every node), GPUs and placement groups.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

RAY_CLI = Path(sys.executable).with_name("ray")

# `ray start --address=...` on loopback (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0): the CLI's refusal to
# add a node reads `ray_constants` through the CLI module, so only that check sees the flag on; node
# addresses are still resolved by `ray._private.services` with the flag off (127.0.0.1 stays).
_WORKER_CLI = """
import sys, types
import ray.scripts.scripts as cli
cli.ray_constants = types.SimpleNamespace(**{**vars(cli.ray_constants), "ENABLE_RAY_CLUSTER": True})
sys.argv[0] = "ray"
sys.exit(cli.main())
"""

# Waits until `n` nodes are alive; prints {node id: "head" | "worker"}.
_NODES = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
deadline = time.monotonic() + 60
while True:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) >= int(sys.argv[2]) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
print(json.dumps({n["NodeID"]: "head" if "node:__internal_head__" in n["Resources"] else "worker" for n in nodes}))
"""


@dataclass
class Cluster:
    address: str
    env: dict[str, str]  # for drivers: the cluster's token; no RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
    groups: list[int] = field(default_factory=list)  # process groups of the `ray start` daemons
    nodes: dict[str, str] = field(default_factory=dict)  # node id -> head / worker
    logs: Path = Path()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(cluster: Cluster, cmd: list[str], env: dict[str, str], name: str) -> None:
    log = cluster.logs / f"{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    cluster.groups.append(proc.pid)  # the daemons it starts stay in its process group
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:  # e.g. a worker that cannot reach the head waits forever
        rc = None
    if rc != 0:
        raise RuntimeError(f"ray start ({name}) failed, rc={rc}:\n{log.read_text()[-3000:]}")


def _members(groups: list[int]) -> dict[int, str]:
    """pid -> command name of every live process in `groups` and of their descendants."""
    parent, group, name = {}, {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()  # state ppid pgrp ...
        if fields[0] == "Z":
            continue
        pid = int(stat.parent.name)
        parent[pid], group[pid], name[pid] = int(fields[1]), int(fields[2]), head.split("(", 1)[1]
    found = {pid for pid, g in group.items() if g in groups}
    frontier = found
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return {pid: name[pid] for pid in found}


def _address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address of /proc/net/tcp{,6}: little-endian 32-bit words in hex."""
    raw = bytes.fromhex(hex_addr)
    addr = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
    return getattr(addr, "ipv4_mapped", None) or addr


def _listening(groups: list[int]) -> list[tuple[str, str]]:
    """(command, address:port) of every TCP socket that these processes listen on (IPv4-mapped
    IPv6 addresses as IPv4)."""
    owner: dict[str, str] = {}
    for pid, name in _members(groups).items():
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        owner[target[8:-1]] = name
    out = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in owner:  # LISTEN
                host, port = cols[1].split(":")
                out.append((owner[cols[9]], f"{_address(host)}:{int(port, 16)}"))
    return out


def _not_loopback(listening: list[tuple[str, str]]) -> list[tuple[str, str]]:
    def loopback(hostport: str) -> bool:
        return ipaddress.ip_address(hostport.rsplit(":", 1)[0]).is_loopback

    return [(name, a) for name, a in listening if not loopback(a)]


def _stop(groups: list[int], timeout: float = 30) -> None:
    """SIGKILL every process of the cluster (never `ray stop`: it stops every Ray on the machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = _members(groups)
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ray_cli_cluster():
    """Head + one worker node, 1 CPU each, started with the `ray` CLI, bound to 127.0.0.1."""
    # Not imported here: test_ray_executor.py sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER before Ray's import.
    if importlib.util.find_spec("ray") is None or not RAY_CLI.exists():
        pytest.skip(f"needs the ray extra and its CLI ({RAY_CLI})")
    # Not under tmp_path: Ray's Unix sockets (<temp-dir>/session_<date>_<pid>/sockets/plasma_store)
    # must stay under 108 bytes.
    temp = Path(tempfile.mkdtemp(prefix="ebray-"))
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # A token for this cluster only (Ray enables token auth); no ~/.ray/auth_token is written.
    base.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    nodes_env = {**base, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cluster = Cluster(address=f"127.0.0.1:{port}", env=base, logs=temp)
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats",
              f"--object-store-memory={100 * 1024**2}"]
    try:
        _ray_start(cluster, [str(RAY_CLI), "start", "--head", f"--port={port}", "--include-dashboard=false",
                             f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
                             f"--temp-dir={temp / 'h'}", *common], nodes_env, "head")
        _ray_start(cluster, [sys.executable, "-c", _WORKER_CLI, "start", f"--address={cluster.address}",
                             f"--dashboard-agent-listen-port={_free_port()}", f"--temp-dir={temp / 'w'}", *common],
                   nodes_env, "worker")
        probe = subprocess.run([sys.executable, "-c", _NODES, cluster.address, "2"], env=nodes_env,
                               capture_output=True, text=True, timeout=120, check=True)
        cluster.nodes = json.loads(probe.stdout.strip().splitlines()[-1])
        assert sorted(cluster.nodes.values()) == ["head", "worker"], cluster.nodes
        yield cluster
    finally:
        _stop(cluster.groups)
        shutil.rmtree(temp, ignore_errors=True)


def test_cluster_listens_on_loopback_only(ray_cli_cluster):
    listening = _listening(ray_cli_cluster.groups)
    assert {name for name, _ in listening} >= {"gcs_server", "raylet"}
    assert len([name for name, _ in listening if name == "raylet"]) >= 2  # both nodes
    assert not _not_loopback(listening)


# -- the tiny model on vLLM (CPU build), one engine per node ------------------------------------


class _Run:
    """`evalbench run` on the tiny model + adapter in a subprocess (its own process group)."""

    def __init__(self, tmp_path: Path, name: str, tiny_model, adapter, env: dict[str, str], *extra: str):
        self.name, self.results, self.log = name, tmp_path / name / "results", tmp_path / f"{name}.log"
        cmd = [sys.executable, "-m", "evalbench", "-q", "run", "--suite", "mtbench", "--model", str(tiny_model),
               "--adapter", f"lora_a={adapter}", "--engine", "inprocess", "--dtype", "float32",
               "--max-model-len", "1024", "--judge", "fake", "--seeds", "0", "--results", str(self.results),
               "--set", f"cache_path={tmp_path / name / 'cache.sqlite'}",
               "--set", "suite_options.mtbench.question_ids=[81,82,83]",
               "--set", "suite_options.mtbench.max_new_tokens=16", *extra]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = time.monotonic()

    def wait(self, *, watch: list[int] | None = None, timeout: float = 600) -> tuple[Path, list[tuple[str, str]]]:
        """The run directory and, with `watch`, every socket that those process groups and this run's
        processes listened on while it ran."""
        listening: set[tuple[str, str]] = set()
        try:
            while self.proc.poll() is None:
                if time.monotonic() - self.started > timeout:
                    raise AssertionError(f"evalbench run ({self.name}) did not finish in {timeout:g} s:\n"
                                         f"{self.log.read_text()[-3000:]}")
                if watch is not None:
                    listening.update(_listening([*watch, self.proc.pid]))
                time.sleep(0.5)
        finally:
            self.kill()
        assert self.proc.returncode == 0, \
            f"evalbench run ({self.name}) exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
        (run_dir,) = (self.results / "runs").glob("run-*")
        return run_dir, sorted(listening)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _generations(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
    return {(r["suite"], r["checkpoint"], r["seed"], r["sample_id"], r["turn"]): r["outputs"] for r in rows}


def test_run_through_a_ray_cli_cluster_places_one_engine_per_node_and_matches_local(
        ray_cli_cluster, tiny_model, lora_adapter, tmp_path, data_dir):
    cluster = ray_cli_cluster
    env = {**cluster.env, "EVALBENCH_DATA_DIR": str(data_dir)}
    # Side by side: the engines' start-up is mostly one-core work (imports, loading).
    local = _Run(tmp_path, "local", tiny_model, lora_adapter, env)
    try:
        distributed, listening = _Run(tmp_path, "ray", tiny_model, lora_adapter, env, "--executor", "ray",
                                      "--ray-address", cluster.address, "--ray-engines", "2"
                                      ).wait(watch=cluster.groups)
        reference, _ = local.wait()
    finally:
        local.kill()
    header = json.loads((distributed / "run.json").read_text())
    assert header["status"] == "success"
    engines = header["executor"]["engines"]
    assert header["executor"]["name"] == "ray"
    assert [e["role"] for e in engines] == ["policy", "policy"]
    assert [e["engine_starts"] for e in engines] == [1, 1] and len({e["pid"] for e in engines}) == 2
    # One engine on each node of the cluster: the head and the worker.
    assert sorted(cluster.nodes[e["node"]] for e in engines) == ["head", "worker"]
    # Ray's processes, the engine workers and the driver listened on loopback only.
    assert listening and not _not_loopback(listening)

    summary = json.loads((distributed / "summary.json").read_text())["results"]
    assert summary == json.loads((reference / "summary.json").read_text())["results"]
    assert _generations(distributed) == _generations(reference)
    assert header["model_calls"] == json.loads((reference / "run.json").read_text())["model_calls"]
