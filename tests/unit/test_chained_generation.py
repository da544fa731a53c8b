"""MT-bench's turn 2 chained to turn 1 (`CachedBackend.generate_chained`).

On the HTTP client a question's turn 2 is sent as soon as its turn 1 is back, in the same batch;
every other backend runs the two phases one after the other. Both paths must send the same
requests and give the same records, cache keys and counts.
"""

from __future__ import annotations

import json
import threading
from collections import deque

from evalbench.cache import Cache
from evalbench.config import SamplingSpec
from evalbench.generate import backend as backend_module
from evalbench.generate.backend import CachedBackend, chains_follow_ups
from evalbench.generate.client import OpenAICompatibleBackend
from evalbench.generate.fake import FakeBackend
from evalbench.serve.stub import StubServer, StubState
from evalbench.suites.base import Checkpoint, SuiteContext
from evalbench.suites.mtbench.suite import MTBench, MTBenchOptions
from evalbench.types import Generation, GenRequest

QIDS = (81, 82, 101, 111)  # writing x2 (sampled, seeded), reasoning and math (greedy)
HAWAII = "Hawaii"  # in question 81's first turn
GREEDY_MATH = "The vertices of a triangle"  # question 111's first turn


def policy_text(body) -> str:
    msgs = body["messages"]
    turn = (len(msgs) + 1) // 2  # [q1] -> turn 1; [q1, a1, q2] -> turn 2
    return f"<{body['model']}> turn{turn} seed {body.get('seed')} reply to: {msgs[-1]['content'][:30]}"


class ChainingFake(FakeBackend):
    """An in-process backend that takes follow-ups as the HTTP client does (answered after the batch)."""

    chains_follow_ups = True

    def generate_uncached(self, requests, *, on_result=None, desc=None, then=None):
        gens, follow_ups = [], deque()
        for i, req in enumerate(requests):
            gen = self._answer(req)
            gens.append(gen)
            if on_result is not None:
                on_result(i, gen)
            if then is not None:
                follow_ups.extend(then(i, gen))
        while follow_ups:
            req, receive = follow_ups.popleft()
            receive(self._answer(req))
        return gens


class Unchained:
    """The HTTP client without the follow-up hook: `generate_chained` falls back to two phases."""

    def __init__(self, inner):
        self.inner = inner

    @property
    def who(self):
        return self.inner.who

    def generate_uncached(self, requests, *, on_result=None, desc=None):
        return self.inner.generate_uncached(requests, on_result=on_result, desc=desc)


def _client(stub, model="pol_a", concurrency=4):
    return OpenAICompatibleBackend(stub.base_url, model, api_key="x", max_concurrency=concurrency)


def _generate(tmp_path, backend, **options):
    options.setdefault("question_ids", QIDS)
    options.setdefault("max_new_tokens", 16)
    suite = MTBench(MTBenchOptions(**options))
    ctx = SuiteContext(artifacts_dir=tmp_path / "artifacts")
    return suite.generate(ctx, Checkpoint("pol_a", backend, base_model="stub"), 0)


def _bodies(requests) -> list[str]:
    return sorted(json.dumps(b, sort_keys=True) for b in requests)


def _chat(text: str, **sampling) -> GenRequest:
    return GenRequest(messages=({"role": "user", "content": text},), sampling=SamplingSpec(**sampling))


def _follow(i: int, gen: Generation) -> list[GenRequest]:
    return [_chat(f"more after {gen.text}")] if gen.ok else []


def test_turn_2_is_sent_while_a_slow_turn_1_is_still_generating(tmp_path):
    others = len(QIDS) - 1
    arrived: set[str] = set()
    lock = threading.Lock()
    others_turn_2_arrived = threading.Event()
    released: list[bool] = []

    def slow_question_81(body):
        msgs = body["messages"]
        if len(msgs) == 3 and HAWAII not in msgs[0]["content"]:
            with lock:
                arrived.add(msgs[0]["content"])
                if len(arrived) == others:
                    others_turn_2_arrived.set()
        elif len(msgs) == 1 and HAWAII in msgs[0]["content"]:
            # Held until every other question's turn 2 reached the server: with a barrier after
            # turn 1 they never would, and the wait times out.
            released.append(others_turn_2_arrived.wait(10))
        return policy_text(body)

    with StubServer(models=("pol_a",), state=StubState(responder=slow_question_81)) as stub:
        records = _generate(tmp_path, CachedBackend(_client(stub), Cache(tmp_path / "c.sqlite")))
    assert released == [True]
    assert [(r.sample_id, r.turn) for r in records] == [(str(q), t) for t in (1, 2) for q in QIDS]
    assert all(r.error is None for r in records)


def test_chained_and_two_phase_give_the_same_requests_records_and_counts(tmp_path):
    with StubServer(models=("pol_a",), state=StubState(responder=policy_text)) as stub:
        chained = CachedBackend(_client(stub), Cache(tmp_path / "chained.sqlite"))
        two_phase = CachedBackend(Unchained(_client(stub)), Cache(tmp_path / "two_phase.sqlite"))
        assert chains_follow_ups(chained.inner) and not chains_follow_ups(two_phase.inner)
        got = _generate(tmp_path / "a", chained, num_choices=2)
        sent_chained = list(stub.state.requests)
        want = _generate(tmp_path / "b", two_phase, num_choices=2)
        sent_two_phase = stub.state.requests[len(sent_chained):]
    assert [r.model_dump() for r in got] == [r.model_dump() for r in want]
    assert _bodies(sent_chained) == _bodies(sent_two_phase)
    assert len(sent_chained) == len(QIDS) * 3  # turn 1 with n=2, then one turn-2 request per choice
    assert (chained.hits, chained.misses) == (two_phase.hits, two_phase.misses)
    assert not backend_module._INFLIGHT  # every claim was released


def test_rerun_is_served_from_the_cache(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    with StubServer(models=("pol_a",), state=StubState(responder=policy_text)) as stub:
        first = _generate(tmp_path, CachedBackend(_client(stub), cache), num_choices=2)
        paid = stub.request_count
        again = CachedBackend(_client(stub), cache)
        rerun = _generate(tmp_path, again, num_choices=2)
        assert stub.request_count == paid
    assert (again.hits, again.misses) == (paid, 0)
    assert [r.model_dump() for r in rerun] == [r.model_dump() for r in first]


def test_follow_ups_of_cached_first_requests_are_sent_in_the_batch(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    first = [_chat(f"q{i}") for i in range(3)]
    with StubServer(models=("m",)) as stub:
        CachedBackend(_client(stub, "m"), cache).generate(first[:2])
        backend = CachedBackend(_client(stub, "m"), cache)
        gens, follow_ups = backend.generate_chained(first, _follow)
        assert stub.request_count == 2 + 1 + 3  # earlier: q0, q1; now: q2 and every follow-up
    assert [g.text for g in gens] == ["echo: q0", "echo: q1", "echo: q2"]
    assert [[g.text for g in f] for f in follow_ups] == [[f"echo: more after echo: q{i}"] for i in range(3)]
    assert (backend.hits, backend.misses) == (2, 4)


def test_failed_turn_1_and_failed_choices_as_in_two_phases(tmp_path):
    def fail(body):
        msgs = body["messages"]
        if len(msgs) == 1 and GREEDY_MATH in msgs[0]["content"]:
            return "turn 1 refused"
        if len(msgs) == 3 and HAWAII in msgs[0]["content"] and body.get("seed") % 2:
            return "one turn-2 choice refused"
        return None

    chaining = ChainingFake("pol_a", responder=policy_text, fail=fail)
    plain = FakeBackend("pol_a", responder=policy_text, fail=fail)
    got = _generate(tmp_path / "a", CachedBackend(chaining, Cache(tmp_path / "a.sqlite")), num_choices=2)
    want = _generate(tmp_path / "b", CachedBackend(plain, Cache(tmp_path / "b.sqlite")), num_choices=2)
    assert [r.model_dump() for r in got] == [r.model_dump() for r in want]
    assert _bodies(chaining.requests) == _bodies(plain.requests)
    # Question 111's turn 1 failed: no turn-2 request, no turn-2 record, as before.
    assert [(r.sample_id, r.turn) for r in got if r.sample_id == "111"] == [("111", 1)]
    assert "turn 1 refused" in next(r.error for r in got if r.sample_id == "111")


def test_backend_without_the_hook_runs_turn_1_then_turn_2(tmp_path):
    plain = FakeBackend("pol_a", responder=policy_text)
    records = _generate(tmp_path, CachedBackend(plain, Cache(tmp_path / "c.sqlite")))
    turns = [(len(b["messages"]) + 1) // 2 for b in plain.requests]
    assert turns == [1] * len(QIDS) + [2] * len(QIDS)
    assert [(r.sample_id, r.turn) for r in records] == [(str(q), t) for t in (1, 2) for q in QIDS]


def test_follow_up_another_thread_is_generating_is_waited_for_not_paid_twice(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    fake = ChainingFake("m")
    backend = CachedBackend(fake, cache)
    first = [_chat("q0"), _chat("q1")]
    theirs = _follow(0, Generation.from_json({"choices": [{"text": "echo: q0"}]}))[0]
    key = backend.key(theirs)
    done = threading.Event()
    slot = (id(cache), key)
    backend_module._INFLIGHT[slot] = (-1, done)  # another thread owns it

    def the_other_thread_finishes() -> None:
        cache.put(key, Generation.from_json({"choices": [{"text": "theirs"}]}).to_json(), who=backend.who)
        del backend_module._INFLIGHT[slot]
        done.set()

    timer = threading.Timer(0.2, the_other_thread_finishes)
    timer.start()
    try:
        _, follow_ups = backend.generate_chained(first, _follow)
    finally:
        timer.join()
    assert [f[0].text for f in follow_ups] == ["theirs", "echo: more after echo: q1"]
    assert [b["messages"][0]["content"] for b in fake.requests] == ["q0", "q1", "more after echo: q1"]
    assert (backend.hits, backend.misses) == (1, 3)
