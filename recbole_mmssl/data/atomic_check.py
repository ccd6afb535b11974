"""Check the atomic files RecBole is about to read, for every model, before it reads them.

RecBole's loader takes each file's header on trust and every value as written: a header column
without ``:type`` is a traceback, ``36 `` (a trailing space) becomes an item of its own, a header
line repeated in the middle becomes an interaction of user ``user_id:token``, a line with one field
too many shifts its values into the wrong columns, a value that starts with a double quote swallows
the lines after it, a header with no line break after it loses its last character (``item_id:toke``),
and an empty or ``NA`` id is merged into RecBole's padding id. None of that raises.
:func:`check_atomic_files` reads the same files first (the interaction files, ``.user``, ``.item``
and any ``additional_feat_suffix``, as the config selects them) and refuses each of these with the
file, the line and the fix.
"""

import codecs
import os
import re

from recbole.utils import FeatureType

from recbole_mmssl.data.atomic_io import MISSING_TOKENS
from recbole_mmssl.errors import DataError

TYPES = tuple(t.value for t in FeatureType)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # Python's universal newlines, which RecBole's reader uses
_FIX = "correct the named line (or re-create the file with `python -m recbole_mmssl.data.convert`)"


def files_to_check(config, folder, token):
    """[(path, source)] of the atomic files a RecBole Dataset loads for ``config`` from ``folder``."""
    load_col = config["load_col"]
    benchmark = config["benchmark_filename"]
    names = [(f"{token}.{b}.inter", "inter") for b in benchmark] if benchmark else [(f"{token}.inter", "inter")]
    names += [(f"{token}.{s}", s) for s in ("user", "item")]
    names += [(f"{token}.{s}", s) for s in (config["additional_feat_suffix"] or [])]
    return [(os.path.join(folder, name), source) for name, source in names
            if os.path.isfile(os.path.join(folder, name)) and (load_col is None or source in load_col)]


def _loaded(config, source, names):
    load_col, unload_col = config["load_col"], config["unload_col"]
    wanted = load_col.get(source) if load_col is not None else "*"
    loaded = set(names) if wanted == "*" else set(wanted or [])
    if unload_col and source in unload_col:
        loaded -= set(unload_col[source])
    return loaded


def _decode(path, raw, encoding):
    if raw.startswith(codecs.BOM_UTF8):
        raise DataError(path, "starts with a UTF-8 byte-order mark: RecBole would read the first column's name with "
                              "it (as '\\ufeff' + the name)", "save the file as UTF-8 without BOM")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}", f"not {encoding} text (byte {err.start})",
                        f"save the file as {encoding} (RecBole's `encoding` setting)") from None
    except LookupError:
        raise DataError(path, f"`encoding` {encoding!r} is not a text encoding Python knows",
                        "set `encoding` to e.g. utf-8") from None


def _header(path, line, sep):
    """[(name, type)] of a header line; refused unless every column is ``name:type`` once."""
    fix = (f"the first line names every column as name:type, separated by {sep!r}, with type one of "
           f"{', '.join(TYPES)} (e.g. user_id:token{sep}item_id:token)")
    columns = []
    for column in line.split(sep):
        name, colon, ftype = column.partition(":")
        if not colon or not name or ftype not in TYPES:
            problem = "has no ':type'" if not colon else f"has type {ftype!r}" if name else "has no name"
            raise DataError(f"{path} line 1", f"header column {column!r} {problem}", fix)
        columns.append((name, ftype))
    names = [name for name, _ in columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"{path} line 1", f"header names column {twice[0]!r} twice", "keep one column of each name")
    return columns


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_value(value, name, ftype, is_id, seq_sep):
    """The problem with one value (None if it is fine)."""
    if value.startswith('"'):
        return f"{name} {value!r} starts with a double quote, which makes RecBole's reader swallow the lines after it"
    if is_id and (value in MISSING_TOKENS or not value.strip()):
        return (f"empty or missing {name} {value!r}: RecBole reads it as missing and would merge the row into its "
                "padding id")
    if ftype == "token" and value != value.strip():
        return f"{name} {value!r} has leading or trailing whitespace, which RecBole keeps: it would be another id"
    if ftype == "float" and value.strip() and value not in MISSING_TOKENS and not _is_number(value):
        return f"{name} {value!r} is not a number"
    if ftype == "float_seq":
        bad = [v for v in value.split(seq_sep) if v.strip() and not _is_number(v)]
        if bad:
            return f"{name} holds {bad[0]!r}, which is not a number"
    return None


def check_atomic_file(path, source, config):
    """Refuse the first line of one atomic file that RecBole would misread (see the module doc)."""
    sep = config["field_separator"] or "\t"
    seq_sep = config["seq_separator"] or " "
    with open(path, "rb") as f:
        text = _decode(path, f.read(), config["encoding"] or "utf-8")
    lines = _LINE_BREAK.split(text)
    columns = _header(path, lines[0], sep)
    if len(lines) == 1:  # RecBole reads the header as f.readline()[:-1]: it assumes the line break
        last = lines[0].split(sep)[-1]
        raise DataError(f"{path} line 1", f"the header line does not end with a line break, so RecBole would read "
                                          f"it without its last character ({last!r} as {last[:-1]!r}), and the file "
                                          "has no rows", "end the header line with a newline and put the rows after it")
    if source == "inter" and not any(lines[1:]):
        split = next((b for b in config["benchmark_filename"] or [] if path.endswith(f".{b}.inter")), None)
        if split is None:
            raise DataError(path, "has a header and no interactions", "give the file its interactions, one per line")
        raise DataError(path, f"the {split!r} split has no interactions (RecBole would stop in torch's sampler "
                              "or evaluate nothing)",
                        "every split of a pre-split benchmark needs interactions: check the source split (e.g. its "
                        "test.json) and convert again")
    names = [name for name, _ in columns]
    loaded = _loaded(config, source, names)
    id_fields = {config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]} if source == "inter" else \
        {config["USER_ID_FIELD"] if source == "user" else config["ITEM_ID_FIELD"]} if source in ("user", "item") \
        else set()
    for field in sorted(id_fields):
        if field not in loaded or dict(columns).get(field) != "token":
            found = dict(columns).get(field)
            problem = f"has no column {field} (columns: {', '.join(names)})" if found is None else \
                f"its {field} column is of type {found}, not token" if found != "token" else \
                f"its {field} column is not loaded (`load_col` / `unload_col`)"
            raise DataError(path, problem, f"name the id column {field}:token (RecBole's USER_ID_FIELD / ITEM_ID_FIELD)"
                                           f" and load it")
    checked = [(i, name, ftype, name in id_fields) for i, (name, ftype) in enumerate(columns) if name in loaded]
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split(sep)
        if fields == lines[0].split(sep):
            raise DataError(f"{path} line {number}", "repeats the header line; RecBole would read it as a row",
                            "keep the header on line 1 only (files joined with cat keep every file's header)")
        if len(fields) != len(columns):
            raise DataError(f"{path} line {number}", f"has {len(fields)} field(s), the header {len(columns)}: RecBole "
                                                     "would shift or leave out values",
                            f"give every line one value per header column, separated by {sep!r}")
        for i, name, ftype, is_id in checked:
            problem = _check_value(fields[i], name, ftype, is_id, seq_sep)
            if problem:
                raise DataError(f"{path} line {number}", problem, _FIX)


def check_atomic_files(config, folder=None, token=None):
    """Check every atomic file the dataset of ``config`` loads (recbole_mmssl's and RecBole's models)."""
    folder = folder or config["data_path"]
    token = token or config["dataset"]
    for path, source in files_to_check(config, folder, token):
        check_atomic_file(path, source, config)
