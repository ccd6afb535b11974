"""Run locks as benchmarks/run_lock.py writes them, for the tests of a lock held by another process."""

import json
import socket
import time


def write_lock(path, pid, host=None):
    """A lock file at ``path`` held by process ``pid`` on ``host`` (this machine by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "time": time.time()}))
