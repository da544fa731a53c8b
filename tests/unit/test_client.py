import time

import pytest

from evalbench.cache import Cache
from evalbench.config import SamplingSpec
from evalbench.errors import ServerError
from evalbench.generate.backend import CachedBackend
from evalbench.generate.client import OpenAICompatibleBackend, backoff_delay
from evalbench.serve.stub import Fault, StubServer, StubState
from evalbench.types import GenRequest


def _reqs(count, **sampling):
    return [GenRequest(messages=({"role": "user", "content": f"q{i}"},), sampling=SamplingSpec(**sampling))
            for i in range(count)]


def test_retries_on_429_and_500_then_succeeds(tmp_path):
    state = StubState(faults=[Fault(at=1, status=429, retry_after=0.2), Fault(at=2, status=500),
                              Fault(at=3, status=0)])
    with StubServer(models=("m",), state=state) as stub:
        be = OpenAICompatibleBackend(stub.base_url, "m", api_key="x", max_concurrency=1, max_retries=5)
        start = time.monotonic()
        gens = CachedBackend(be, None).generate(_reqs(2))
        assert time.monotonic() - start >= 0.2  # Retry-After honoured
    assert [g.text for g in gens] == ["echo: q0", "echo: q1"]
    assert be.calls == 5  # 3 faults + 2 successes


def test_client_error_is_a_failed_generation_not_a_crash():
    with StubServer(models=("m",)) as stub:
        be = OpenAICompatibleBackend(stub.base_url, "nope", api_key="x")
        gens = CachedBackend(be, None).generate(_reqs(1))
    assert not gens[0].ok and "404" in gens[0].error


def test_unreachable_endpoint_raises_one_line_error():
    from evalbench.serve.vllm_server import free_port

    be = OpenAICompatibleBackend(f"http://127.0.0.1:{free_port()}/v1", "m", api_key="x", max_retries=1)
    with pytest.raises(ServerError, match="failed after 2 attempts.*rerun to resume"):
        CachedBackend(be, None).generate(_reqs(1))


def test_second_run_makes_zero_calls_and_partial_results_are_kept(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    # Request 3 keeps failing past the retries: the batch aborts, the two finished answers are cached.
    state = StubState(faults=[Fault(at=3, status=503), Fault(at=4, status=503)])
    with StubServer(models=("m",), state=state) as stub:
        be = OpenAICompatibleBackend(stub.base_url, "m", api_key="x", max_concurrency=1, max_retries=1)
        with pytest.raises(ServerError):
            CachedBackend(be, cache).generate(_reqs(3))
        assert len(cache) == 2
        before = stub.request_count
        gens = CachedBackend(be, cache).generate(_reqs(3))
        assert stub.request_count == before + 1  # only the missing one
        again = CachedBackend(be, cache)
        assert [g.text for g in again.generate(_reqs(3))] == [g.text for g in gens]
        assert stub.request_count == before + 1 and again.misses == 0


def test_logprobs_and_n_and_structured_outputs_are_sent():
    state = StubState(responder=lambda b: "M", top_logprobs=lambda b: [("M", -0.1), ("m", -2.4)])
    with StubServer(models=("j",), state=state) as stub:
        be = OpenAICompatibleBackend(stub.base_url, "j", api_key="x")
        gen = CachedBackend(be, None).generate(
            _reqs(1, n=3, logprobs=True, top_logprobs=5, choice=("m", "M"), seed=7))[0]
        body = stub.state.requests[0]
    assert len(gen.choices) == 3
    assert gen.choices[0].logprobs[0].top == (("M", -0.1), ("m", -2.4))
    assert body["structured_outputs"] == {"choice": ["m", "M"]}
    assert body["top_logprobs"] == 5 and body["seed"] == 7 and body["n"] == 3
    assert "guided_regex" not in body and "guided_choice" not in body


def test_api_key_from_env_never_in_repr(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret")
    be = OpenAICompatibleBackend("http://127.0.0.1:1/v1", "m", api_key_env="MY_KEY")
    assert "sk-secret" not in repr(be) and "sk-secret" not in str(be.who)


def test_backoff_is_bounded_and_honours_retry_after():
    assert backoff_delay(0, retry_after=3.0) == 3.0
    assert all(0 <= backoff_delay(a) <= 30 for a in range(20))
