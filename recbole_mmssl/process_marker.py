"""Which process made a file, and whether it is gone: the marker behind stale-file cleanup.

A marker is ``{"pid", "host", "time"}``. Something a process leaves while it works (a converter's
temporary folder, a comparison's run lock) is another process's to remove only once that process is
gone; a process on another host (a shared home on a cluster) cannot be checked from here, so its
marker never counts as gone.
"""

import os
import socket
import time


def process_marker():
    """This process's marker."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}


def process_gone(marker):
    """Whether the process that wrote ``marker`` has ended (made on this host, its pid no longer
    running). A malformed marker raises KeyError, TypeError or ValueError: the caller decides."""
    return marker["host"] == socket.gethostname() and not _process_alive(int(marker["pid"]))


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's live process; a pid beyond any
        return True
    return True
