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


def _filled(path, n=400):
    cache = Cache(path)
    for i in range(n):
        cache.put(f"k{i}", {"text": "x" * 200, "i": i})
    cache.close()  # the last connection checkpoints the WAL into the main file
    return path


def test_a_file_that_is_not_a_database_is_named_with_the_fix_at_open(tmp_path):
    import pytest

    from evalbench.cache import CacheCorrupt

    path = tmp_path / "cache.sqlite"
    path.write_text("hello, not sqlite")
    with pytest.raises(CacheCorrupt, match=rf"{path}: the cache file is corrupt \(not an SQLite database\).*"
                                           rf"evalbench cache clear --yes --cache {path}"):
        Cache(path)


def test_a_truncated_file_is_detected_at_open(tmp_path):
    import pytest

    from evalbench import cache as cache_mod
    from evalbench.cache import CacheCorrupt

    path = _filled(tmp_path / "cache.sqlite")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    cache_mod._HEADER_CHECKED.clear()  # as in a new process: this one has checked the file already
    with pytest.raises(CacheCorrupt, match="truncated"):
        Cache(path)


def test_verify_prune_clear_commands(tmp_path, capsys):
    from evalbench.cli import main

    path = _filled(tmp_path / "cache.sqlite", n=5)
    assert main(["cache", "verify", "--cache", str(path)]) == 0
    conn = sqlite3.connect(path)
    conn.execute("UPDATE entries SET value = ? WHERE key = 'k1'", ('{"i": 99}',))
    conn.commit()
    conn.close()
    assert main(["cache", "verify", "--cache", str(path)]) == 1
    out = capsys.readouterr().out
    assert '"corrupt_entries": 1' in out and f"evalbench cache prune --cache {path}" in out
    assert main(["cache", "prune", "--cache", str(path)]) == 0
    assert '"corrupt_removed": 1' in capsys.readouterr().out
    assert len(Cache(path)) == 4 and main(["cache", "verify", "--cache", str(path)]) == 0
    assert main(["cache", "prune", "--cache", str(path), "--older-than", "0"]) == 0
    assert len(Cache(path)) == 0
    assert main(["cache", "clear", "--cache", str(path)]) == 2  # needs --yes
    assert main(["cache", "clear", "--yes", "--cache", str(path)]) == 0 and not path.exists()
    path.write_text("garbage")
    assert main(["cache", "verify", "--cache", str(path)]) == 1
    assert main(["cache", "stats", "--cache", str(path)]) == 2  # CacheCorrupt: one line, exit 2
    assert "evalbench cache clear --yes" in capsys.readouterr().err


def test_concurrent_threads_pay_a_shared_request_once(tmp_path):
    # Units run in threads; a greedy request of seed 0 and seed 1 has one key: paid once, not twice.
    import threading
    import time

    from evalbench.config import SamplingSpec
    from evalbench.generate.backend import CachedBackend
    from evalbench.generate.fake import FakeBackend
    from evalbench.types import GenRequest

    def slow(body):
        time.sleep(0.2)
        return "answer"

    inner = FakeBackend("m", responder=slow)
    backend = CachedBackend(inner, Cache(tmp_path / "c.sqlite"))
    reqs = [GenRequest(prompt=f"q{i}", sampling=SamplingSpec(temperature=0.0)) for i in range(3)]
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(backend.generate(reqs))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inner.calls == 3 and backend.misses == 3 and backend.hits == 9
    assert all([g.text for g in gens] == ["answer"] * 3 for gens in out)
    # Repeats inside one call are sent as before (a scripted test may count them).
    again = CachedBackend(FakeBackend("m2"), None)
    again.generate([reqs[0], reqs[0]])
    assert again.inner.calls == 2
