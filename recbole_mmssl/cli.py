"""The one error path of every command (convert, features, run_recbole_mmssl.py, recommend, run_hyper.py).

``run_cli(main, argv)`` runs a command's ``main`` and turns what the user can fix into two lines and
an exit code, never a traceback:

* a :class:`~recbole_mmssl.errors.UserError` (bad file, key, value, checkpoint, command line):
  ``error: <file or key>: <problem>`` and ``fix: <what to do>``, exit code 2;
* an OSError about a named file (permission denied, disk full, not a directory): the same two lines;
* Ctrl-C: exit code 130, and SIGTERM (``kill``, a scheduler ending a job) the same way with exit code
  143; training has already printed the one warning with the command that continues the run,
  anything else prints one ``interrupted`` line. Every output is written under a temporary name, so
  nothing half-written is left either way;
* a full disk: the file that could not be written, exit code 2.

Any other exception is a programming error and keeps its traceback. ``--debug`` (any command) or
``RECBOLE_MMSSL_DEBUG=1`` prints the traceback of user errors too.
"""

import argparse
import errno
import os
import signal
import sys
import threading
import traceback

from recbole_mmssl.errors import UsageError, UserError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "RECBOLE_MMSSL_DEBUG"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops as on Ctrl-C: temporary files removed,
    a run's claimed-but-empty checkpoint released, the continue command printed."""

    what = "Terminated (SIGTERM)"


def _raise_terminated(signum, frame):
    raise Terminated()


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors routed through the commands' ``error:`` / ``fix:`` lines, and an
    option given twice with different values refused (argparse lets the last one win without a word:
    ``--model=MMSSL ... --model=LightGCN`` would train LightGCN)."""

    def error(self, message):
        raise UsageError(self.prog, message, f"see `{self.prog} --help`")

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        self._refuse_repeated_options(args)
        return super().parse_known_args(args, namespace)

    def _refuse_repeated_options(self, args):
        seen = {}
        subcommands = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
        for i, arg in enumerate(args):
            if arg == "--" or arg in subcommands:
                break  # after a subcommand, its own parser checks the rest
            option, has_value, value = arg.partition("=")
            action = self._option_string_actions.get(option)
            if action is None and len(arg) > 2 and arg[:2] in self._option_string_actions and arg[1] != "-":
                option, has_value, value, action = arg[:2], True, arg[2:], self._option_string_actions[arg[:2]]
            if action is None or isinstance(action, (argparse._AppendAction, argparse._CountAction,
                                                     argparse._HelpAction)):
                continue
            if not has_value and action.nargs != 0:
                value = args[i + 1] if i + 1 < len(args) else None
            earlier = seen.setdefault(action.dest, (option, value))
            if earlier[1] != value:
                raise UsageError(f"--{action.dest}", f"given twice with different values ({earlier[0]} {earlier[1]!r} "
                                                     f"and {option} {value!r}); the last would win without a word",
                                 "give it once")


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
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _run(main, argv, debug)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(main, argv, debug):
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
        terminated = isinstance(err, Terminated)
        if not getattr(err, "reported", False):
            print("terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except OSError as err:
        if err.filename is None and err.errno not in DISK_FULL:  # not about a file: a programming error
            raise
        if debug:
            traceback.print_exc()
        if err.errno in DISK_FULL:
            fix = "free space on that disk (or write to another one) and run the command again; what it wrote " \
                  "before is intact"
        else:
            fix = "check that the path exists, is of the right kind (file or folder) and that you may read or write it"
        print_error(err.filename or "disk", err.strerror or str(err), fix)
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


def check_not_an_input(output, option, inputs):
    """Refuse an output path that is one of the command's inputs, contains one or lies inside one.

    ``inputs`` maps an option (or a description) to the path it gives; None entries are skipped.
    A command writes only where it was told to write, and never over what it reads: ``recommend
    --users=X --out=X`` would replace the users file with the recommendations.
    """
    out = os.path.realpath(output)
    for where, path in inputs.items():
        if path is None:
            continue
        source = os.path.realpath(path)
        same = out == source or (os.path.exists(output) and os.path.exists(path) and os.path.samefile(output, path))
        if same:
            problem = f"{option} is the same file as {where}: writing it would destroy that input"
        elif source.startswith(out.rstrip(os.sep) + os.sep):
            problem = f"{option} contains {where} ({path}): writing it would mix with that input"
        elif out.startswith(source.rstrip(os.sep) + os.sep):
            problem = f"{option} lies inside {where} ({path})"
        else:
            continue
        raise UsageError(output, problem, f"pass {option} a path apart from what the command reads")
    return output
