"""One process per run or search: a lock file beside the folder it works in.

Two comparisons that share a run (same dataset, model settings and seed: one checkpoint folder under
``--checkpoint_dir``, whatever their ``--results``) would both continue the same ``.last.pth``, overwrite
each other's checkpoints and record, and one could set the other's folder aside as stale; two tuning
searches of one folder would train the same trials into the same checkpoint folders. So
``benchmarks/compare.py`` takes ``<checkpoint folder>.lock`` for each run it plans, and
``benchmarks/tune.py`` takes ``<search folder>.lock`` for each search and ``<trial folder>.lock`` for
each trial, before touching any of their files, and gives them back when done (and a dataset's tuning
``summary.json``, which searches of several models update, is rewritten under ``summary.json.lock``). A
folder whose lock is held by a live process is left alone (its files untouched) and named with the
process and the lock file. A lock whose process is gone (killed, machine restarted) is taken over. The
lock sits beside the folder, not in it, because a stale run's folder is renamed while its lock is held.
"""

import json
import os
import socket
import time
from contextlib import contextmanager

from recbole_mmssl.process_marker import process_gone, process_marker

#: What a lock file's name adds to the folder (or file) it guards.
LOCK_SUFFIX = ".lock"


class RunBusy(Exception):
    """Another live process holds this run's (or search's) lock."""

    def __init__(self, lock_path, holder):
        self.lock_path, self.holder = lock_path, holder
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("time", 0)))
        super().__init__(f"in use by process {holder.get('pid')} on {holder.get('host')} since {since} "
                         f"(lock {lock_path}); run the same command when that one has ended, or delete the "
                         "lock file if that process is gone")


def lock_path(target):
    return target.rstrip(os.sep) + LOCK_SUFFIX


def acquire(target):
    """Take the lock of ``target`` (a run's checkpoint folder, a search folder, a shared file) and
    return its path; raise RunBusy when a live process holds it."""
    path = lock_path(target)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    mine = process_marker()
    for _ in range(2):  # the second try follows the removal of a dead process's lock
        if _create_with(path, mine):
            return path
        holder = _read(path)
        if holder is not None and _alive(holder):
            raise RunBusy(path, holder)
        _remove(path, holder)
    raise RunBusy(path, _read(path) or {})


@contextmanager
def held_briefly(target, timeout_s=60.0, poll_s=0.05):
    """Hold ``target``'s lock for a short read-modify-write of a file that several processes update
    (a dataset's tuning summary), waiting while another live process holds it; RunBusy after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            path = acquire(target)
            break
        except RunBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(poll_s)
    try:
        yield
    finally:
        release(path)


def release(path):
    """Give back a lock this process holds (a lock another process took over is left to it)."""
    holder = _read(path)
    if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        _remove(path, holder)


def _create_with(path, content):
    """Create ``path`` holding ``content`` in one step (a hard link of a written temporary file fails
    when the path exists), so that no reader ever sees a half-written lock."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(content, handle)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)


def _read(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: not written by this module, so no process holds it


def _alive(holder):
    """Whether the holder may still run (one on another host counts as running: the message says how
    to clear it). A lock without a readable process is no one's."""
    try:
        return not process_gone(holder)
    except (KeyError, TypeError, ValueError):
        return False


def _remove(path, expected):
    """Remove the lock if it is still the one read as ``expected`` (not a newer holder's)."""
    if _read(path) == expected:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class RunLocks:
    """The run locks one call holds, all given back when the call ends (also on error or Ctrl-C)."""

    def __init__(self):
        self.paths = []

    def take(self, checkpoint_dir):
        """Lock one run (RunBusy when a live process holds it)."""
        self.paths.append(acquire(checkpoint_dir))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for path in self.paths:
            release(path)
        self.paths = []
