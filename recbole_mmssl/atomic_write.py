"""Files written whole or not at all: a temporary sibling, renamed over the target once complete.

Every file the commands write goes through :func:`atomic_file`, so that a crash, Ctrl-C, SIGTERM or
a full disk never leaves a truncated output or a stray temporary file behind, and an existing file
is only ever replaced by a complete new one. The temporary name is unique (``.NAME.XXXXXXXX.tmp``
beside the target), so it can never be a file of the user's.
"""

import os
import tempfile
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
