"""The one error path of every command (convert, features, run_recbole_mmssl.py, recommend, run_hyper.py).

``run_cli(main, argv)`` runs a command's ``main`` and turns what the user can fix into two lines and
an exit code, never a traceback:

* a :class:`~recbole_mmssl.data.errors.UserError` (bad file, key, value, checkpoint, command line):
  ``error: <file or key>: <problem>`` and ``fix: <what to do>``, exit code 2;
* an OSError about a named file (permission denied, disk full, not a directory): the same two lines;
* Ctrl-C: exit code 130; training has already printed the one warning with the command that
  continues the run, anything else prints one ``interrupted`` line.

Any other exception is a programming error and keeps its traceback. ``--debug`` (any command) or
``RECBOLE_MMSSL_DEBUG=1`` prints the traceback of user errors too.
"""

import argparse
import os
import sys
import traceback

from recbole_mmssl.data.errors import UsageError, UserError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "RECBOLE_MMSSL_DEBUG"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors routed through the commands' ``error:`` / ``fix:`` lines."""

    def error(self, message):
        raise UsageError(self.prog, message, f"see `{self.prog} --help`")


def debug_requested(argv):
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def print_error(where, problem, fix):
    print(f"error: {where}: {problem}", file=sys.stderr)
    print(f"fix: {fix}", file=sys.stderr)


def run_cli(main, argv=None):
    """Run ``main(argv)`` (``--debug`` removed) and return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        code = main(argv)
        return 0 if code is None else int(code)
    except UserError as err:
        if debug:
            traceback.print_exc()
        print_error(err.where, err.problem, err.fix)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as err:
        if debug:
            traceback.print_exc()
        if not getattr(err, "reported", False):
            print("interrupted (Ctrl-C); nothing to continue from", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:
        if err.filename is None:  # not about a file the user named: a programming error
            raise
        if debug:
            traceback.print_exc()
        print_error(err.filename, err.strerror or str(err),
                    "check that the path exists, is of the right kind (file or folder) and that "
                    "you may read or write it")
        return EXIT_USER_ERROR


def config_overrides(extra_args, prog):
    """The RecBole-style ``--key=value`` overrides among the arguments argparse left over.

    Anything else (``--epochs 5``, a stray word) is refused: RecBole would drop it with a warning and
    run with the default, which is how a typo costs a week.
    """
    for arg in extra_args:
        if not arg.startswith("--") or "=" not in arg or arg.startswith("--="):
            if arg.startswith("--"):
                raise UsageError(prog, f"option {arg!r} has no value",
                                 f"write config overrides as {arg}=VALUE (one word, with '=')")
            raise UsageError(prog, f"unexpected argument {arg!r}",
                             "options are --key=value; see --help for the command's own options")
    return list(extra_args)


def _first_existing(path):
    probe = path
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return probe


def check_output_folder(folder, option):
    """Refuse, before any work, an output folder that is a file, lies under a file or cannot be written."""
    folder = os.path.abspath(folder)
    fix = f"pass {option} a folder you may write in (it is created if missing)"
    probe = _first_existing(folder)
    if not os.path.isdir(probe):
        where = "is a file" if probe == folder else f"lies under {probe}, which is a file"
        raise UsageError(folder, f"{option} {where}, not a folder", fix)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(folder, f"{option}: cannot write in {probe} (permission denied)", fix)
    return folder


def check_output_file(path, option, suffixes=None):
    """Refuse, before any work, an output file that is a folder, lies in no folder or cannot be written."""
    path = os.path.abspath(path)
    if suffixes and not path.endswith(tuple(suffixes)):
        raise UsageError(path, f"{option} must end with {' or '.join(suffixes)}",
                         f"pass {option} a file name ending with {' or '.join(suffixes)}")
    if os.path.isdir(path):
        raise UsageError(path, f"{option} is a folder, not a file", f"pass {option} a file name inside it")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        problem = "does not exist" if not os.path.lexists(folder) else "is a file, not a folder"
        raise UsageError(path, f"{option}: the folder {folder} {problem}",
                         f"create the folder first, or pass {option} a path in an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(path, f"{option}: cannot write there (permission denied)",
                         f"pass {option} a path you may write")
    return path
