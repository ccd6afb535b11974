"""recbole_mmssl/run_lock.py: one process per run, dead holders' locks taken over."""

import json
import os
import socket
import time

import pytest

from recbole_mmssl import process_marker, run_lock
from tests._lock_util import live_process, write_lock  # noqa: F401  (live_process: a fixture)


def test_one_holder_at_a_time_and_release_leaves_another_holders_lock(tmp_path):
    folder = str(tmp_path / "run")
    path = run_lock.acquire(folder)
    with pytest.raises(run_lock.RunBusy, match="in use by process"):
        run_lock.acquire(folder)  # this process is alive: a second call of it waits like any other
    run_lock.release(path)
    assert not (tmp_path / "run.lock").exists()

    write_lock(tmp_path / "run.lock", pid=1)  # held by another (live) process
    run_lock.release(path)
    assert (tmp_path / "run.lock").exists()


def test_an_unreadable_lock_is_not_anyones_and_is_taken(tmp_path):
    (tmp_path / "run.lock").write_text("")
    path = run_lock.acquire(str(tmp_path / "run"))
    assert json.loads(open(path).read())["pid"] == os.getpid()


def test_a_lock_from_another_host_counts_as_held(tmp_path):
    write_lock(tmp_path / "run.lock", pid=1, host="another-host")
    with pytest.raises(run_lock.RunBusy, match="on another-host"):
        run_lock.acquire(str(tmp_path / "run"))


def test_a_lock_whose_pid_now_runs_another_process_is_taken_over(tmp_path, live_process):
    started = process_marker._start_time(live_process.pid)
    lock = tmp_path / "run.lock"
    write_lock(lock, pid=live_process.pid, start_ticks=started)
    with pytest.raises(run_lock.RunBusy):
        run_lock.acquire(str(tmp_path / "run"))  # the process that wrote it still runs
    lock.write_text(json.dumps({"pid": live_process.pid, "host": socket.gethostname(), "started": time.time()}))
    with pytest.raises(run_lock.RunBusy):
        run_lock.acquire(str(tmp_path / "run"))  # an earlier release's lock ("started": wall time) is judged by pid
    write_lock(lock, pid=live_process.pid, start_ticks=started - 1)  # written by an earlier process of that pid
    path = run_lock.acquire(str(tmp_path / "run"))
    assert json.loads(open(path).read())["pid"] == os.getpid()
