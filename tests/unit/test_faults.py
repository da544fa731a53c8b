"""Fault injection: a fault proxy in front of the stub server, for generators and judges.

Every fault kind on the chat and the completions endpoint is survived; answers that arrive but
cannot be used are retried and, past the budget, become failed items without losing the batch;
805 judgments and 805 generations at 30 % faults lose nothing, pay nothing twice and equal the
fault-free result.
"""

from __future__ import annotations

import pytest

from evalbench.config import SamplingSpec
from evalbench.generate.backend import CachedBackend
from evalbench.generate.client import OpenAICompatibleBackend
from evalbench.io import stable_hash
from evalbench.serve.stub import StubServer, StubState
from evalbench.types import GenRequest
from tests.faultproxy import FAULT_KINDS, FaultPlan, FaultProxy

N_ALPACA = 805
# Long enough that a loaded 2-core box never times out an honest request: a client that gives up
# cannot know whether the server did the work, so an honest timeout is paid twice (unavoidably).
CLIENT_TIMEOUT_S = 8.0


def _backend(url: str, model: str, **kw) -> OpenAICompatibleBackend:
    opts = {"api_key": "x", "max_concurrency": 16, "timeout_s": CLIENT_TIMEOUT_S, "max_retries": 12,
            "backoff_base_s": 0.01}
    return OpenAICompatibleBackend(url, model, **{**opts, **kw})


def _verdict_logprobs(body):
    # A deterministic verdict per prompt, so a retried request must give the same preference.
    h = stable_hash(body.get("messages") or body.get("prompt")) % 1000 / 1000
    return [("m", -0.1 - 3 * h), ("M", -0.1 - 3 * (1 - h)), ("x", -9.0)]


def _chat(i: int, **sampling) -> GenRequest:
    return GenRequest(messages=({"role": "user", "content": f"q{i}"},), sampling=SamplingSpec(**sampling))


def _completion(i: int, **sampling) -> GenRequest:
    return GenRequest(prompt=f"p{i}", sampling=SamplingSpec(**sampling))


@pytest.mark.parametrize("kind", FAULT_KINDS)
@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_every_fault_kind_is_retried_to_the_right_answer(kind, endpoint):
    state = StubState(top_logprobs=_verdict_logprobs)
    make = _chat if endpoint == "chat" else _completion
    with StubServer(models=("m",), state=state) as stub, \
            FaultProxy(stub.base_url, FaultPlan(script=[kind], stall_s=3.5)) as proxy:
        be = _backend(proxy.base_url, "m", timeout_s=2.5, max_concurrency=1)
        gen = CachedBackend(be, None).generate([make(0, logprobs=True, top_logprobs=3)])[0]
    assert gen.ok, gen.error
    assert gen.text == ("echo: q0" if endpoint == "chat" else "echo: p0")
    assert gen.choices[0].logprobs, "log-probs were asked for"
    assert proxy.stats.faults[kind] == 1 or (kind == "no_logprobs" and proxy.stats.faults["no_logprobs"] == 1)
    assert proxy.stats.upstream_posts == 1 and stub.request_count == 1  # paid once
    assert be.calls == 2


@pytest.mark.parametrize("kind", ["bad_json", "empty_choices", "no_logprobs"])
def test_unusable_answers_past_the_budget_are_failed_items_and_the_batch_is_kept(kind):
    # Concurrency 1: request 0 succeeds, request 1 meets the fault on both of its attempts, request 2 succeeds.
    plan = FaultPlan(script=[None, kind, kind])
    with StubServer(models=("m",), state=StubState(top_logprobs=_verdict_logprobs)) as stub, \
            FaultProxy(stub.base_url, plan) as proxy:
        be = _backend(proxy.base_url, "m", max_concurrency=1, max_retries=1)
        gens = CachedBackend(be, None).generate([_chat(i, logprobs=True) for i in range(3)])
    assert [g.ok for g in gens] == [True, False, True]
    assert gens[1].error.startswith("malformed response after 2 attempts")
    assert gens[2].text == "echo: q2"


def test_missing_logprobs_are_not_a_fault_when_none_were_asked_for():
    with StubServer(models=("m",)) as stub:
        gen = CachedBackend(_backend(stub.base_url, "m"), None).generate([_chat(0)])[0]
    assert gen.ok and gen.choices[0].logprobs is None


def _judge_pairs(url: str, pairs, cache=None, **kw):
    from evalbench.suites.alpaca.judge import JudgePrompt, judge_pairs

    prompt = JudgePrompt("test", "<|im_start|>user\nI: {instruction}\nm: {output_1}\nM: {output_2}\n<|im_end|>",
                         "test")
    backend = _backend(url, "judge", max_concurrency=32, **kw)
    return judge_pairs(CachedBackend(backend, cache), pairs, prompt), backend


def test_805_judgments_at_30_percent_faults_equal_the_fault_free_result():
    from evalbench.suites.alpaca.judge import Pair

    pairs = [Pair(f"instruction {i}", f"reference {i}", f"candidate {i}") for i in range(N_ALPACA)]
    state = StubState(top_logprobs=_verdict_logprobs)
    with StubServer(models=("judge",), state=state) as stub:
        clean, _ = _judge_pairs(stub.base_url, pairs)
        assert stub.request_count == N_ALPACA
        with FaultProxy(stub.base_url, FaultPlan(rate=0.3, seed=1, stall_s=CLIENT_TIMEOUT_S + 1)) as proxy:
            faulty, _ = _judge_pairs(proxy.base_url, pairs)
    assert all(j.ok for j in clean)
    assert len(faulty) == N_ALPACA and [j.error for j in faulty] == [None] * N_ALPACA  # none lost
    assert [j.preference for j in faulty] == [j.preference for j in clean]
    assert [j.is_switched_outputs for j in faulty] == [j.is_switched_outputs for j in clean]
    # Every fault kind was met, and each judgment was paid for exactly once upstream.
    assert set(proxy.stats.faults) == set(FAULT_KINDS)
    assert sum(proxy.stats.faults.values()) > 0.2 * N_ALPACA
    assert proxy.stats.upstream_posts == N_ALPACA and stub.request_count == 2 * N_ALPACA


def test_805_generations_at_30_percent_faults_into_a_run_lose_and_duplicate_nothing(tmp_path):
    from evalbench.cache import Cache
    from evalbench.generate.stage import Item, to_record
    from evalbench.store import ResultsStore

    def generate_into_run(backend, items, run):
        gens = backend.generate([it.request for it in items])
        run.append_generations(to_record("s", "pol", 0, it, g, backend.key(it.request)) for it, g in zip(items, gens))
        return gens

    items = [Item(str(i), _chat(i, max_tokens=16, seed=i)) if i % 2 else Item(str(i), _completion(i, max_tokens=16))
             for i in range(N_ALPACA)]
    with StubServer(models=("pol",)) as stub:
        clean = CachedBackend(_backend(stub.base_url, "pol"), None).generate([it.request for it in items])
        with FaultProxy(stub.base_url, FaultPlan(rate=0.3, seed=2, stall_s=CLIENT_TIMEOUT_S + 1)) as proxy:
            run = ResultsStore(tmp_path / "results").start({"t": 1}, "h" * 64, run_id="faults")
            backend = CachedBackend(_backend(proxy.base_url, "pol"), Cache(tmp_path / "cache.sqlite"))
            gens = generate_into_run(backend, items, run)
            upstream = stub.request_count
            # A rerun of the same batch is served from the cache: nothing paid twice.
            generate_into_run(backend, items, run)
            assert stub.request_count == upstream
    assert [g.text for g in gens] == [g.text for g in clean]
    assert proxy.stats.upstream_posts == N_ALPACA and upstream == 2 * N_ALPACA
    records = run.generations()
    assert sorted(int(r.sample_id) for r in records) == list(range(N_ALPACA))
    assert all(r.error is None for r in records)
    lines = (run.path / "generations.jsonl").read_text().splitlines()
    assert len(lines) == N_ALPACA  # the rerun appended nothing new


def test_a_rerun_retries_exactly_the_failed_items(tmp_path):
    from evalbench.cache import Cache

    plan = FaultPlan(script=[None, "empty_choices", "empty_choices", None, None])
    with StubServer(models=("m",)) as stub, FaultProxy(stub.base_url, plan) as proxy:
        cache = Cache(tmp_path / "cache.sqlite")
        be = _backend(proxy.base_url, "m", max_concurrency=1, max_retries=1)
        first = CachedBackend(be, cache).generate([_chat(i) for i in range(4)])
        assert [g.ok for g in first] == [True, False, True, True] and stub.request_count == 3
        again = CachedBackend(be, cache)
        second = again.generate([_chat(i) for i in range(4)])
    assert all(g.ok for g in second) and second[1].text == "echo: q1"
    assert stub.request_count == 4 and again.misses == 1  # only the failed one was asked again


def _alpaca_outputs(tmp_path, n):
    import json

    from evalbench.suites.alpaca.data import load_eval_set

    rows = [{"instruction": r.instruction, "output": f"answer {i}: {r.instruction[:30]}", "generator": "mine"}
            for i, r in enumerate(load_eval_set()[:n])]
    path = tmp_path / "model_outputs.json"
    path.write_text(json.dumps(rows))
    return path


def test_alpaca_judge_cli_through_faults_exits_3_on_failed_judgments_and_a_rerun_retries_them(
        tmp_path, capsys, monkeypatch):
    import json

    from evalbench.cli import main
    from evalbench.serve.stub import Fault

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    outputs = _alpaca_outputs(tmp_path, 40)
    # The upstream judge rejects its 5th request for good (HTTP 400: not retried): one failed judgment.
    state = StubState(responder=lambda b: "m", top_logprobs=_verdict_logprobs, faults=[Fault(at=5, status=400)])
    kinds = tuple(k for k in FAULT_KINDS if k != "timeout")  # the CLI's backoff is the real one: keep it short
    with StubServer(models=("judge",), state=state) as stub, \
            FaultProxy(stub.base_url, FaultPlan(rate=0.3, kinds=kinds, seed=3)) as proxy:
        argv = ["alpaca", "judge", "--outputs", str(outputs), "--judge-url", proxy.base_url, "--judge-model", "judge",
                "--judge-key-env", "NO_SUCH_KEY", "--out", str(tmp_path / "out"), "--json", "--max-retries", "12",
                "--concurrency", "8"]
        assert main(argv) == 3
        captured = capsys.readouterr()
        assert "1 item(s) failed" in captured.err and "rerun the same command" in captured.err
        metrics = json.loads(captured.out)
        assert metrics["n_failed"] == 1 and metrics["n_total"] == 39
        assert (tmp_path / "out" / "annotations.json").exists()  # the results are written all the same
        assert stub.request_count == 40
        assert main(argv + ["--max-failed", "5%"]) == 0
        assert stub.request_count == 41  # exactly the failed judgment was retried, and it succeeded
        assert json.loads(capsys.readouterr().out)["n_failed"] == 0
        assert main(argv) == 0 and stub.request_count == 41  # all cached now
    assert sum(proxy.stats.faults.values()) > 0


@pytest.mark.parametrize("option, value", [("--concurrency", "0"), ("--concurrency", "-3"), ("--timeout", "0"),
                                           ("--max-failed", "2")])
def test_alpaca_judge_cli_rejects_bad_option_values_in_one_line(option, value, tmp_path, capsys):
    from evalbench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["alpaca", "judge", "--outputs", str(tmp_path / "x.json"), "--judge-url", "http://127.0.0.1:1/v1",
              "--judge-model", "j", option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {option}: expected" in err


def _policy(body):
    text = body["messages"][-1]["content"]
    return f"answer {stable_hash(text) % 97}: {text[:25]}"


def _run_argv(tmp_path, name, policy_url, judge_url, *extra):
    return ["-q", "run", "--suite", "alpaca", "--limit", "30", "--model", "pol", "--model-url", policy_url,
            "--model-key-env", "NO_SUCH_KEY", "--judge", f"url={judge_url},model=judge,key_env=NO_SUCH_KEY",
            "--results", str(tmp_path / name), "--set", f"cache_path={tmp_path / name / 'cache.sqlite'}",
            "--set", "model.endpoint.max_retries=12", "--set", "judge.endpoint.max_retries=12", *extra]


def test_evalbench_run_with_a_faulty_generator_and_judge_equals_the_fault_free_run(tmp_path, capsys):
    from evalbench.cli import main
    from evalbench.serve.stub import Fault
    from evalbench.store import ResultsStore

    kinds = tuple(k for k in FAULT_KINDS if k != "timeout")  # the run's client timeout is the real one (120 s)
    with StubServer(models=("pol",), state=StubState(responder=_policy)) as pol, \
            StubServer(models=("judge",), state=StubState(responder=lambda b: "m",
                                                          top_logprobs=_verdict_logprobs)) as judge:
        assert main(_run_argv(tmp_path, "clean", pol.base_url, judge.base_url)) == 0
        paid = (pol.request_count, judge.request_count)
        with FaultProxy(pol.base_url, FaultPlan(rate=0.3, kinds=kinds, seed=4)) as pol_proxy, \
                FaultProxy(judge.base_url, FaultPlan(rate=0.3, kinds=kinds, seed=5)) as judge_proxy:
            assert main(_run_argv(tmp_path, "faulty", pol_proxy.base_url, judge_proxy.base_url)) == 0
        assert (pol.request_count, judge.request_count) == (2 * paid[0], 2 * paid[1])  # each paid once
        assert sum(pol_proxy.stats.faults.values()) and sum(judge_proxy.stats.faults.values())
    capsys.readouterr()

    def results(name):
        run = next(ResultsStore(tmp_path / name).runs())
        return [(r["checkpoint"], r["n_samples"], r["n_failed"], r["metrics"]) for r in run.summary()["results"]]

    assert results("faulty") == results("clean")
    assert results("clean")[0][1:3] == (30, 0)

    # A judge that rejects one request for good: the run writes its results and exits 3; a rerun
    # retries exactly that judgment, and with --max-failed the first run would have passed.
    state = StubState(responder=lambda b: "m", top_logprobs=_verdict_logprobs, faults=[Fault(at=3, status=400)])
    with StubServer(models=("pol",), state=StubState(responder=_policy)) as pol, \
            StubServer(models=("judge",), state=state) as judge:
        argv = _run_argv(tmp_path, "failing", pol.base_url, judge.base_url)
        assert main(argv) == 3
        out, err = capsys.readouterr()
        assert "1 of 30 items failed" in out and "above --max-failed 0" in err
        assert results("failing")[0][2] == 1
        import csv

        with open(tmp_path / "failing" / "leaderboard.csv", newline="") as fh:
            board = next(csv.DictReader(fh))
        assert board["n_failed"] == "1" and board["n_samples"] == "30"  # the leaderboard says so too
        calls = judge.request_count
        assert main(argv + ["--max-failed", "0.05"]) == 0
        assert judge.request_count == calls + 1 and pol.request_count == 30
    assert results("failing") == results("clean")


def _spawn(argv):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "evalbench.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _samples_lines(tmp_path, name):
    from evalbench.store import ResultsStore

    run = next(ResultsStore(tmp_path / name).runs())
    return (run.path / "samples.jsonl").read_text().splitlines()


def test_concurrent_identical_runs_pay_each_request_once(tmp_path):
    from evalbench.cli import main

    slow_judge = StubState(responder=lambda b: "m", top_logprobs=_verdict_logprobs, latency_s=0.05)
    with StubServer(models=("pol",), state=StubState(responder=_policy, latency_s=0.05)) as pol, \
            StubServer(models=("judge",), state=slow_judge) as judge:
        argv = _run_argv(tmp_path, "twice", pol.base_url, judge.base_url)
        first, second = _spawn(argv), _spawn(argv)
        codes = sorted([first.wait(timeout=240), second.wait(timeout=240)])
        errs = first.stderr.read() + second.stderr.read()
        if codes == [0, 0]:  # the second one started after the first had finished: it paid nothing
            assert (pol.request_count, judge.request_count) == (30, 30)
        else:
            # The holder is named when its pid is already written (it is, after a moment; an
            # immediate refusal may still find the file empty and say "another process").
            assert codes == [0, 75] and ("is in use by process" in errs or "is in use by another process" in errs)
        assert (pol.request_count, judge.request_count) == (30, 30)
        assert main(argv) == 0 and (pol.request_count, judge.request_count) == (30, 30)
    assert len(_samples_lines(tmp_path, "twice")) == 30


def test_kill_9_at_random_points_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    import random
    import signal
    import time

    from evalbench.cli import main
    from evalbench.store import ResultsStore

    rng = random.Random(7)
    slow_judge = StubState(responder=lambda b: "m", top_logprobs=_verdict_logprobs, latency_s=0.1)
    with StubServer(models=("pol",), state=StubState(responder=_policy, latency_s=0.1)) as pol, \
            StubServer(models=("judge",), state=slow_judge) as judge:
        assert main(_run_argv(tmp_path, "clean", pol.base_url, judge.base_url)) == 0
        with FaultProxy(pol.base_url, FaultPlan(rate=0.3, kinds=("429", "500", "drop", "bad_json"), seed=8)) as pp, \
                FaultProxy(judge.base_url, FaultPlan(rate=0.3, kinds=("429", "empty_choices", "truncated"),
                                                     seed=9)) as jp:
            argv = _run_argv(tmp_path, "killed", pp.base_url, jp.base_url)
            kills = 0
            for _ in range(6):
                proc = _spawn(argv)
                time.sleep(rng.uniform(1.0, 5.0))
                if proc.poll() is not None:
                    break
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
            assert main(argv) == 0
    capsys.readouterr()
    assert kills >= 1

    def results(name):
        run = next(ResultsStore(tmp_path / name).runs())
        return [(r["checkpoint"], r["n_samples"], r["n_failed"], r["metrics"]) for r in run.summary()["results"]]

    assert results("killed") == results("clean")
    # Resumes appended only what was new: one line per sample (no copies from the resumes).
    assert len(_samples_lines(tmp_path, "killed")) == 30


def test_an_endpoint_that_never_gives_logprobs_is_not_paid_for_every_retry():
    # A model that answers without log-probs, every time: after 3 requests spent their budget the
    # rest fail at their first answer (the fault is the endpoint's, not transient).
    with StubServer(models=("m",)) as stub:  # the stub sends no log-probs without a top_logprobs script
        be = _backend(stub.base_url, "m", max_concurrency=1, max_retries=2)
        gens = CachedBackend(be, None).generate([_chat(i, logprobs=True) for i in range(10)])
    assert not any(g.ok for g in gens)
    assert all("log-probs were asked for" in g.error for g in gens)
    assert stub.request_count == 3 * 3 + 7  # 3 requests x 3 attempts, then one attempt each
