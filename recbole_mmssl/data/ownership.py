"""What the converter may replace in DIR/NAME: only the files it wrote there itself.

A conversion leaves a marker file in DIR/NAME that lists every file it wrote, with its sha256. A
later conversion into the same DIR/NAME replaces those files; anything else found there (a feature
file written later by ``python -m recbole_mmssl.data.features``, the parse caches of a run) is moved
unchanged into the new folder. Refused before any work, with the file named:

* a DIR/NAME that holds anything but carries no marker (made by hand, by another tool, or an older
  version of the converter);
* a file the marker lists that was changed after the conversion wrote it;
* a file of someone else's with the name of a file this conversion would write;
* a DIR/NAME that is, contains or lies inside the source folder.
"""

import hashlib
import json
import os

from recbole_mmssl.atomic_write import atomic_file
from recbole_mmssl.data.atomic_io import TEMP_MARKER, replace_dir
from recbole_mmssl.errors import DataError, UsageError

MARKER = ".recbole-mmssl-convert.json"
_BLOCK = 1 << 20


def file_digest(path):
    """sha256 of a file's bytes (read in blocks: feature files can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def write_marker(folder, source):
    """Record every file now in ``folder`` as written by the converter from ``source``."""
    files = {name: file_digest(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
             if name not in (MARKER, TEMP_MARKER) and os.path.isfile(os.path.join(folder, name))}
    with atomic_file(os.path.join(folder, MARKER), "w") as f:
        json.dump({"tool": "recbole_mmssl.data.convert", "source": os.path.abspath(source), "files": files}, f,
                  indent=1)


def _read_marker(folder):
    try:
        with open(os.path.join(folder, MARKER)) as f:
            marker = json.load(f)
        files = marker["files"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(os.path.join(folder, MARKER), "the converter's marker file is unreadable or damaged, so "
                                                      "what the converter wrote here cannot be told apart",
                        "move the folder away (or delete it) and convert again") from None
    if not isinstance(files, dict):
        raise DataError(os.path.join(folder, MARKER), "the converter's marker file is damaged",
                        "move the folder away (or delete it) and convert again")
    return files


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_apart_from_source(final, src):
    """Refuse an output folder that is, contains or lies inside the source folder."""
    out, source = os.path.realpath(final), os.path.realpath(src)
    if out == source:
        relation = "is the source folder SRC"
    elif _inside(source, out):
        relation = f"contains the source folder SRC ({src})"
    elif _inside(out, source):
        relation = f"lies inside the source folder SRC ({src})"
    else:
        return
    raise UsageError(final, f"the output folder DIR/NAME {relation}: converting would replace or mix with the "
                            "files it reads",
                     "pass --out (and --name) so that DIR/NAME is a folder apart from SRC, e.g. --out dataset/")


def files_to_keep(final, new_names):
    """The entries of an existing DIR/NAME to carry over into the new conversion (see the module doc).

    ``new_names`` are the files this conversion writes. Raises before anything is written when
    DIR/NAME holds something the converter may not replace.
    """
    if not os.path.lexists(final):
        return []
    if os.path.islink(final) or not os.path.isdir(final):
        kind = "a link" if os.path.islink(final) else "a file"
        raise UsageError(final, f"DIR/NAME is {kind}, not a folder the converter wrote",
                         "pass another --name or --out, or move it away first")
    entries = sorted(os.listdir(final))
    if not entries:
        return []
    written = _read_marker(final)
    if written is None:
        shown = ", ".join(entries[:3]) + (" ..." if len(entries) > 3 else "")
        raise UsageError(final, f"the folder exists and holds files the converter did not write ({shown}); "
                                "converting would replace them",
                         "convert into a new folder (another --name or --out), or move this one away first")
    for name, digest in written.items():
        path = os.path.join(final, name)
        if os.path.isfile(path) and file_digest(path) != digest:
            raise DataError(path, "was changed after the converter wrote it; converting again would replace "
                                  "your changes",
                            "move the file out of the folder (or delete it to let the converter rewrite it), "
                            "or convert into another --name")
    keep = [name for name in entries if name != MARKER and name not in written]
    clash = sorted(set(keep) & set(new_names))
    if clash:
        raise DataError(os.path.join(final, clash[0]), "was not written by the converter, and this conversion "
                                                       "writes a file of that name",
                        "move the file away, or leave that modality out with --modalities")
    return keep


def swap_in(tmp, final, keep):
    """Move the kept entries of ``final`` into the finished ``tmp``, then put ``tmp`` in place of
    ``final``; if that fails, the kept entries go back where they were."""
    moved = []
    try:
        for name in keep:
            os.rename(os.path.join(final, name), os.path.join(tmp, name))
            moved.append(name)
        replace_dir(tmp, final)
    except BaseException:
        for name in moved:
            os.rename(os.path.join(tmp, name), os.path.join(final, name))
        raise
