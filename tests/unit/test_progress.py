"""Progress off a terminal: periodic lines with done/total, rate and ETA; JSON lines with --log-json."""

from __future__ import annotations

import json
import logging
import time

from evalbench import progress
from evalbench.cli import main


def test_lines_at_every_tenth_with_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="evalbench.progress")
    with progress.track("judging", total=50) as task:
        for _ in range(50):
            task.advance()
    lines = [r.getMessage() for r in caplog.records if r.name == "evalbench.progress"]
    steps = [m for m in lines if "ETA" in m]
    assert len(steps) == 10  # 10 %, 20 %, ..., 100 %
    assert steps[0].startswith("judging: 5/50 (10%),") and "/s, ETA " in steps[0]
    assert lines[-1].startswith("judging: 50/50 done in")
    data = [r.data for r in caplog.records if getattr(r, "data", None) and "eta_s" in r.data]
    assert data[0]["done"] == 5 and data[0]["total"] == 50 and data[0]["rate"] > 0


def test_heartbeat_speaks_while_nothing_finishes(caplog, monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.2)
    caplog.set_level(logging.INFO, logger="evalbench.progress")
    with progress.track("generation", total=1000) as task:
        task.advance()
        time.sleep(1.5)  # one slow request: no item finishes, yet the log must not go silent
    beats = [r.getMessage() for r in caplog.records if r.getMessage().startswith("generation: 1/1000 (0%)")]
    assert len(beats) >= 2


def test_no_thread_left_behind():
    import threading

    with progress.track("x", total=3) as task:
        task.advance(3)
    assert not [t for t in threading.enumerate() if t.name == "evalbench-progress"]


def test_log_json_makes_the_final_error_json(tmp_path, capsys):
    code = main(["--log-json", "compare", str(tmp_path / "no-such-run")])
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    payload = json.loads(last)
    assert payload["level"] == "error" and payload["exit_code"] == 2 and "no-such-run" in payload["msg"]
