"""What the generated bad-input test shares: odd values users type, mutations of text files, and the
invariants every command must keep whatever it is given.

The invariants (``check``): the exit code is 0 or 2 (130/143 for an interrupt), there is no
traceback, an exit code of 2 comes with an ``error:`` and a ``fix:`` line, every file that existed
before and is not one of the command's named outputs is byte-identical afterwards (and every input
file is, even when the command line also names it as an output), and no temporary file (``*.tmp``,
``.NAME.tmp-*``, ``.NAME.old-*``) or empty checkpoint is left anywhere.
"""

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

from hypothesis import event, settings
from hypothesis import strategies as st

LEFTOVER = re.compile(r"(\.tmp$|\.tmp-|\.old-)")
CACHE = re.compile(r"^\..*\.(cache|knn\d+)\.pt$")  # the plugin's own parse / k-NN caches beside the data


def examples(n):
    """``n`` examples in the default profile, ten times as many under ``--hypothesis-profile=long``."""
    return n * (10 if settings.get_current_profile_name() == "long" else 1)


# ----------------------------------------------------------------------------- what users type

ODD = st.sampled_from([
    "", " ", "  ", "NA", "null", "None", "nan", "#N/A", '"', '"x', "x\"", "'", "\t", "\r", "\ufeff", "é", "a b",
    " 36", "36 ", "user_id:token", "item_id:token", "-1", "1e3", "0x10", "../x", "a/b", ".", "..", "1.5", "inf",
])
TOKENS = st.one_of(ODD, st.text(max_size=5), st.integers(-2, 60).map(str), st.sampled_from(["u1", "u7", "i3", "i70"]))
NUMBERS = st.one_of(st.integers(-3, 300), st.floats(allow_nan=True, allow_infinity=True, width=32),
                    st.sampled_from([0, 1, 1e-4, 0.01, 0.5, 0.99, 1.0, 2.0, 1e9, -0.1]))
VALUES = st.one_of(st.none(), st.booleans(), NUMBERS, TOKENS, st.lists(st.integers(-2, 60), max_size=3))

# one edit of a text file: (operation, where, what)
EDITS = st.lists(st.tuples(
    st.sampled_from(["insert", "delete", "repeat_header", "set_field", "add_field", "drop_field", "pad", "quote",
                     "bom", "crlf", "blank", "bad_bytes", "header_type", "truncate"]),
    st.integers(0, 10**6), TOKENS), min_size=1, max_size=3)


def edit_text(data, edits, sep="\t"):
    """``data`` (bytes of a line-based file) with ``edits`` applied, each at a position chosen by its index."""
    text = data.decode("utf-8", errors="surrogateescape")
    lines = text.split("\n")
    prefix, suffix = b"", b""
    for op, where, token in edits:
        lines = lines or [""]
        i = where % max(1, len(lines))
        body = 1 + where % max(1, len(lines) - 1)  # a line after the header
        if op == "insert":
            lines.insert(body, token)
        elif op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "repeat_header":
            lines.insert(body, lines[0])
        elif op in ("set_field", "add_field", "drop_field", "pad", "quote") and lines[body % len(lines)]:
            fields = lines[body % len(lines)].split(sep)
            k = where % len(fields)
            if op == "set_field":
                fields[k] = token
            elif op == "add_field":
                fields.insert(k, token)
            elif op == "drop_field":
                del fields[k]
            elif op == "pad":
                fields[k] = fields[k] + " "
            else:
                fields[k] = '"' + fields[k]
            lines[body % len(lines)] = sep.join(fields)
        elif op == "bom":
            prefix = b"\xef\xbb\xbf"
        elif op == "crlf":
            lines = [line + "\r" for line in lines]
        elif op == "blank":
            lines.insert(body, "")
        elif op == "bad_bytes":
            suffix = b"\xff\xfe"
        elif op == "header_type":
            lines[0] = lines[0].replace(":token", token, 1)
        elif op == "truncate":
            lines = lines[: where % (len(lines) + 1)]
    return prefix + "\n".join(lines).encode("utf-8", errors="surrogateescape") + suffix


# ----------------------------------------------------------------------------- running and checking

def snapshot(root):
    """{relative path: bytes} of every file under ``root``."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    files[os.path.relpath(path, root)] = f.read()
    return files


def leftovers(root):
    """Temporary files and empty checkpoints left under ``root``."""
    found = []
    for folder, dirs, names in os.walk(root):
        for name in names + dirs:
            path = os.path.join(folder, name)
            if LEFTOVER.search(name) or (name.endswith(".pth") and os.path.isfile(path) and not os.path.getsize(path)):
                found.append(os.path.relpath(path, root))
    return found


def run(main, argv, cwd):
    """(exit code, everything printed) of ``main(argv)`` run in ``cwd`` (in-process, as the console does)."""
    out = io.StringIO()
    before = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main([str(a) for a in argv])
    finally:
        os.chdir(before)
    return code, out.getvalue()


def check(code, text, before, root, is_output, codes=(0, 2), inputs=()):
    """Assert the invariants of the module docstring; ``is_output(relative path)`` names the outputs,
    ``inputs`` the files the command reads, which stay as they were even when also named as an output."""
    event(f"exit code {code}")  # shown by --hypothesis-show-statistics
    assert code in codes, f"exit code {code}\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    lines = text.splitlines()
    if code == 2:
        errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
        assert errors and any(line.startswith("fix: ") for line in lines[errors[-1] + 1:]), text[-3000:]
    after = snapshot(root)
    inputs = {os.path.relpath(p, root) if os.path.isabs(p) else p for p in map(str, inputs)}
    kept = [p for p in before if (p in inputs or not is_output(p)) and not CACHE.match(os.path.basename(p))]
    changed = sorted(p for p in kept if after.get(p) != before[p])
    assert not changed, f"changed or removed: {changed}\n{text[-2000:]}"
    assert not leftovers(root), leftovers(root)


def fresh_copy(template, root):
    """A fresh copy of the ``template`` folder's contents in ``root`` (faster than building it again)."""
    shutil.copytree(template, root, dirs_exist_ok=True)
    return Path(root)
