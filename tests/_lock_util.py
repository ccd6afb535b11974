"""Run locks as recbole_mmssl/run_lock.py writes them, for the tests of a lock held by another process."""

import json
import socket
import subprocess
import sys
import time

import pytest


def write_lock(path, pid, host=None, start_ticks=None):
    """A lock file at ``path`` held by process ``pid`` on ``host`` (this machine by default), that
    process started at ``start_ticks`` (clock ticks since boot; None: unknown, as on a system without /proc)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = {"pid": pid, "host": host or socket.gethostname(), "time": time.time(), "start_ticks": start_ticks}
    path.write_text(json.dumps(marker))


@pytest.fixture
def live_process():
    """A process that lives through the test: the holder of a lock that must be respected."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()
