import multiprocessing as mp
import sqlite3
import threading

from evalbench.cache import Cache, cache_key
from evalbench.config import SamplingSpec
from evalbench.generate.backend import request_key
from evalbench.types import GenRequest

WHO = {"engine": "vllm", "base": {"sha256": "abc"}}


def test_key_covers_who_what_and_how():
    req = GenRequest(messages=({"role": "user", "content": "hi"},), sampling=SamplingSpec(seed=1))
    base = request_key(WHO, req)
    assert request_key(WHO, req) == base
    assert request_key({**WHO, "adapter": {"sha256": "x"}}, req) != base
    assert request_key(WHO, GenRequest(messages=({"role": "user", "content": "ho"},),
                                       sampling=SamplingSpec(seed=1))) != base
    assert request_key(WHO, GenRequest(messages=req.messages, sampling=SamplingSpec(seed=2))) != base
    assert request_key(WHO, GenRequest(messages=req.messages, sampling=SamplingSpec(seed=1, top_p=0.9))) != base


def test_roundtrip_and_corrupt_entry_is_dropped(tmp_path):
    cache = Cache(tmp_path / "c.sqlite")
    key = cache_key(WHO, {"q": 1}, {})
    cache.put(key, {"answer": 42}, who=WHO)
    assert cache.get(key) == {"answer": 42}
    # Corrupt the stored value behind the cache's back.
    conn = sqlite3.connect(tmp_path / "c.sqlite")
    conn.execute("UPDATE entries SET value = ? WHERE key = ?", ('{"answer": 43}', key))
    conn.commit()
    conn.close()
    assert cache.get(key) is None
    assert cache.corrupt_dropped == 1
    assert len(cache) == 0


def _writer(path, start, count):
    cache = Cache(path)
    for i in range(start, start + count):
        cache.put(f"k{i}", {"i": i})


def test_concurrent_writers_threads_and_processes(tmp_path):
    path = tmp_path / "c.sqlite"
    Cache(path)
    threads = [threading.Thread(target=_writer, args=(path, i * 50, 50)) for i in range(4)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, 1000 + i * 50, 50)) for i in range(2)]
    for t in threads + procs:
        t.start()
    for t in threads + procs:
        t.join()
    cache = Cache(path)
    assert len(cache) == 300
    assert cache.get("k1049") == {"i": 1049}
