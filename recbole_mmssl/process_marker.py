"""Which process made a file, and whether it is gone: the marker behind stale-file cleanup.

A marker is ``{"pid", "host", "time", "start_ticks"}``. Something a process leaves while it works (a
converter's temporary folder, a run or search lock) is another process's to remove only once that
process is gone; a process on another host (a shared home on a cluster) cannot be checked from here,
so its marker never counts as gone. ``start_ticks`` is the process's start time as the kernel counts it
(Linux ``/proc``; None elsewhere): after a crash or a restart the pid can belong to a new process,
and a marker whose pid runs with another start time is gone too.
"""

import os
import socket
import time


def process_marker():
    """This process's marker."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "time": time.time(), "start_ticks": _start_time(pid)}


def process_gone(marker):
    """Whether the process that wrote ``marker`` has ended (made on this host, its pid no longer
    running, or running with another start time: a reused pid). A malformed marker raises KeyError,
    TypeError or ValueError: the caller decides."""
    if marker["host"] != socket.gethostname():
        return False
    pid = int(marker["pid"])
    if not _process_alive(pid):
        return True
    started, now = marker.get("start_ticks"), _start_time(pid)
    return started is not None and now is not None and started != now


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's live process; a pid beyond any
        return True
    return True


def _start_time(pid):
    """The process's start time in clock ticks since boot (field 22 of ``/proc/PID/stat``), or None
    where there is no such file (not Linux, the process gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
        return int(text[text.rindex(")") + 2:].split()[19])  # after the command name, which may hold spaces
    except (OSError, ValueError, IndexError):
        return None
