"""Files written whole or not at all: a temporary sibling, renamed over the target once complete.

Every file the commands write goes through :func:`atomic_file`, so that a crash, Ctrl-C, SIGTERM or
a full disk never leaves a truncated output or a stray temporary file behind, and an existing file
is only ever replaced by a complete new one. The temporary name is unique (``.NAME.XXXXXXXX.tmp``
beside the target), so it can never be a file of the user's.
"""

import os
import signal
import tempfile
import threading
from contextlib import contextmanager


def umask_mode(mode=0o666):
    """``mode`` limited by the process umask: mkstemp/mkdtemp create private files, we want normal ones."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextmanager
def atomic_file(path, mode="wb", **open_kwargs):
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path``.

    An OSError while writing (a full disk) names ``path``, so the commands report it as a file error.
    """
    path = str(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror, path) from err
        raise
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


@contextmanager
def signals_held(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold Ctrl-C and SIGTERM until the block has ended, then deliver them as they would have been.

    For writes that must not be cut: torch.save's zip writer turns a KeyboardInterrupt in mid-write
    into ``RuntimeError: ... unexpected pos``, so a run stopped while saving a checkpoint would exit
    with that error (and a cache write would swallow the stop as a failed write). Held, the write
    completes and the stop then happens as usual. Signals can only be caught in the main thread;
    elsewhere the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = {signum: signal.getsignal(signum) for signum in signums}
    for signum in signums:
        signal.signal(signum, lambda received, frame: pending.append(received))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
