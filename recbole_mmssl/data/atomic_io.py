"""Reading and writing RecBole atomic files for interactions and per-modality item features.

One place for the on-disk format, shared by the converter, the text encoder and the dataset:

* interactions: ``user_id:token<TAB>item_id:token``, one pair per line;
* features: ``item_id:token<TAB><modality>_feat:float_seq``, floats separated by single spaces.

Floats are written with 9 significant digits, which round-trips every float32 exactly. Formatting
is vectorised with numpy (digits from integer arithmetic and a lookup table), because a 7,050 x 4,096
feature matrix is 29 M floats and per-float Python formatting takes tens of seconds. Parsing uses
numpy's C parser one row at a time, which keeps memory near the size of the result.
"""

import json
import os
import shutil
import tempfile
import uuid
import warnings
import zlib

import numpy as np
from tqdm import tqdm

from recbole_mmssl.atomic_write import atomic_file, umask_mode
from recbole_mmssl.errors import DataError, shown
from recbole_mmssl.process_marker import process_gone, process_marker

FEATURE_SUFFIX = "_feat"
_PAIRS = np.array(
    [[ord(c) for c in f"{i:02d}"] for i in range(100)], dtype=np.uint8
).view(np.uint16).ravel()  # two ASCII digits per entry, in native byte order
_POW10 = 10.0 ** np.arange(-70, 71)  # float64 powers of ten, index = exponent + 70
_CHUNK_FLOATS = 1 << 20  # rows are formatted in blocks of about this many floats
TEMP_MARKER = ".recbole-mmssl-tmp"  # inside every temporary folder this package makes
try:  # the strings pandas (and so RecBole's loader) reads as a missing value
    from pandas._libs.parsers import STR_NA_VALUES as MISSING_TOKENS
except ImportError:  # pragma: no cover - older/newer pandas layouts
    MISSING_TOKENS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}


def feature_field(modality):
    """RecBole field name of a modality's feature column (``image`` -> ``image_feat``)."""
    return f"{modality}{FEATURE_SUFFIX}"


def check_modality_name(name, path, fix):
    """Refuse a modality name the models cannot use: they name layers after it (a plain identifier)."""
    if not str(name).isidentifier():
        raise DataError(path, f"modality name {name!r} is not a plain name (letters, digits and underscores, not "
                              "starting with a digit)", fix)
    return name


def feature_file_name(dataset_name, modality):
    """File name of a modality's atomic feature file (``tiktok.image_feat``)."""
    return f"{dataset_name}.{feature_field(modality)}"


def make_temp_dir(parent, name):
    """A temporary sibling folder ``parent/.NAME.tmp-XXXX`` for building ``parent/NAME``.

    It holds a marker file (this process's id and host) so that a later run can tell a folder
    left by a killed run of this tool from anything else (see :func:`clean_stale_temp_dirs`).
    """
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    os.chmod(tmp, umask_mode(0o777))
    with open(os.path.join(tmp, TEMP_MARKER), "w") as f:
        json.dump(process_marker(), f)
    return tmp


def clean_stale_temp_dirs(parent, name):
    """Remove the ``parent/.NAME.tmp-*`` folders of earlier runs that were killed (SIGKILL, power loss).

    Only folders with this package's marker whose process is gone are removed (a folder of a run
    still going on, of another host, or without the marker is left alone). Returns the removed paths.
    """
    removed = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return removed
    for entry in entries:
        path = os.path.join(parent, entry)
        if not entry.startswith(f".{name}.tmp-") or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            with open(os.path.join(path, TEMP_MARKER)) as f:
                gone = process_gone(json.load(f))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if gone:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def replace_dir(tmp, final):
    """Move the finished ``tmp`` folder to ``final``, keeping the old ``final`` until it worked."""
    marker = os.path.join(tmp, TEMP_MARKER)
    if os.path.exists(marker):
        os.unlink(marker)
    old = None
    if os.path.exists(final):
        old = os.path.join(os.path.dirname(final),
                           f".{os.path.basename(final)}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_finite(features, tokens, path, fix):
    """Raise a DataError if any row holds NaN or inf, naming how many rows and the first one."""
    finite_rows = np.isfinite(features).all(axis=1)
    if finite_rows.all():
        return
    bad = np.flatnonzero(~finite_rows)
    raise DataError(
        path,
        f"{len(bad)} feature row(s) contain NaN or inf; the first is item {shown(tokens[bad[0]])} "
        f"(row {bad[0]})",
        fix,
    )


def format_float_rows(block):
    """Format a 2-D float array as bytes, one line per row, floats joined by single spaces.

    Each value is written as ``d.dddddddde+XX`` with trailing zeros of the mantissa dropped, ``0``
    for zeros and a leading ``-`` only when negative. Returns ``(data, row_ends)`` where
    ``row_ends[r]`` is the byte offset just past row r's newline.
    """
    x = np.ascontiguousarray(block, dtype=np.float32).astype(np.float64)
    n_rows, dim = x.shape
    x = x.ravel()
    a = np.abs(x)
    zero = a == 0
    exp = np.floor(np.log10(np.where(zero, 1.0, a))).astype(np.int64)
    mant = np.rint(a * _POW10[70 + 8 - exp]).astype(np.int64)  # 9 digits: 1e8 <= mant < 1e9
    for wrong, step in ((mant >= 1_000_000_000, 1), ((mant < 100_000_000) & ~zero, -1)):
        if wrong.any():  # log10 was off by one next to a power of ten
            exp[wrong] += step
            mant[wrong] = np.rint(a[wrong] * _POW10[70 + 8 - exp[wrong]]).astype(np.int64)
    mant[zero] = 0
    mant = mant.astype(np.int32)
    frac = mant % 100_000_000
    trailing_zeros = np.zeros(x.size, dtype=np.int8)
    for k in range(1, 9):
        trailing_zeros += (frac % (10**k)) == 0

    out_b = np.empty((x.size, 16), dtype=np.uint8)  # 16 bytes per value at most
    out_b[:, 0] = ord("-")
    out_b[:, 1] = mant // 100_000_000 + ord("0")
    out_b[:, 2] = ord(".")
    out_b[:, 3:11].view(np.uint16)[:] = np.stack(
        [_PAIRS[frac // 1_000_000], _PAIRS[frac // 10_000 % 100],
         _PAIRS[frac // 100 % 100], _PAIRS[frac % 100]], axis=1)
    out_b[:, 11] = ord("e")
    out_b[:, 12] = np.where(exp < 0, ord("-"), ord("+"))
    out_b[:, 13:15].view(np.uint16)[:, 0] = _PAIRS[np.abs(exp)]
    out_b[:, 15] = ord(" ")
    out_b.reshape(n_rows, dim, 16)[:, -1, 15] = ord("\n")

    keep = np.ones((x.size, 16), dtype=bool)
    keep[:, 0] = np.signbit(x)
    digits_kept = 8 - trailing_zeros
    keep[:, 2] = digits_kept > 0
    keep[:, 3:11] = np.arange(8)[None, :] < digits_kept[:, None]
    keep[zero, 2:15] = False
    row_ends = np.cumsum(keep.reshape(n_rows, -1).sum(axis=1))
    return out_b[keep].tobytes(), row_ends


def check_feature_dtype(array, path, fix):
    """Refuse arrays that are not real numbers (strings, complex, objects, dates): no silent casts."""
    kind = array.dtype.kind
    if kind in "biuf":
        return
    what = {"c": "complex numbers (the imaginary part would be dropped)", "U": "text strings",
            "S": "byte strings", "O": "Python objects", "M": "dates", "m": "time spans"}.get(kind, f"dtype {array.dtype}")
    raise DataError(path, f"the features are {what}, not real numbers (dtype {array.dtype})", fix)


def write_feature_file(path, tokens, features, modality, iid_field="item_id", progress=True):
    """Write one modality's atomic feature file atomically (temporary name, then rename).

    ``tokens[r]`` is the item token of ``features[r]``. Non-numeric, empty (zero-column) and NaN/inf
    features and tokens the atomic format cannot hold are refused. Shows a tqdm progress bar over rows
    when ``progress`` is true.
    """
    features = np.asarray(features)
    tokens = [str(t) for t in tokens]
    check_feature_dtype(features, path, "pass a float array (e.g. features.astype(np.float32))")
    if features.ndim != 2:
        raise DataError(path, f"features must be 2-D (items x dim), got shape {features.shape}",
                        "pass one row per item")
    if features.shape[1] == 0:
        raise DataError(path, f"features have 0 columns (shape {features.shape})",
                        "pass at least one feature value per item")
    if len(tokens) != features.shape[0]:
        raise DataError(path, f"{len(tokens)} item tokens for {features.shape[0]} feature rows",
                        "pass exactly one token per feature row")
    check_tokens(tokens, "item", path)
    check_finite(features, tokens, path, "clean the features (e.g. np.nan_to_num) and write again")
    chunk_rows = max(1, _CHUNK_FLOATS // max(1, features.shape[1]))
    with atomic_file(path) as f:
        f.write(f"{iid_field}:token\t{feature_field(modality)}:float_seq\n".encode())
        bar = tqdm(total=len(tokens), desc=f"writing {os.path.basename(path)}",
                   unit="item", disable=not progress)
        for start in range(0, len(tokens), chunk_rows):
            data, ends = format_float_rows(features[start:start + chunk_rows])
            starts = np.concatenate([[0], ends[:-1]])
            f.write(b"".join(
                tok.encode() + b"\t" + data[s:e]
                for tok, s, e in zip(tokens[start:start + chunk_rows], starts, ends)
            ))
            bar.update(min(chunk_rows, len(tokens) - start))
        bar.close()
    return path


def check_tokens(tokens, kind, path):
    """Refuse tokens that would break the tab-separated, line-based atomic format, tokens RecBole would
    read as another id (surrounding whitespace) or as the start of a quoted field (a leading double
    quote), and tokens that its loader (pandas) reads as a missing value: it would merge them into the
    padding id."""
    unique = set(map(str, tokens))
    bad = sorted(t for t in unique if "\t" in t or "\n" in t or "\r" in t)
    if bad:
        raise DataError(path, f"{len(bad)} {kind} token(s) contain a tab or line break, e.g. "
                              f"{shown(bad[0])}", "use ids without tabs or line breaks")
    padded = sorted(t for t in unique if t != t.strip() or t.startswith('"'))
    if padded:
        raise DataError(path, f"{len(padded)} {kind} token(s) start or end with whitespace or start with a double "
                              f"quote, e.g. {shown(padded[0])}: RecBole would read them as other ids (or swallow lines)",
                        f"strip the {kind} ids (and drop leading quotes)")
    missing = sorted(unique & set(MISSING_TOKENS))
    if missing:
        raise DataError(path, f"{kind} token(s) {', '.join(repr(t) for t in missing[:5])} would be read by RecBole as "
                              f"a missing value, and their interactions merged into the padding {kind}",
                        f"give every {kind} a real id (not empty, not NA/null/None/nan)")


def write_inter_file(path, users, items, uid_field="user_id", iid_field="item_id"):
    """Write an interaction atomic file ``user<TAB>item`` (tokens as strings)."""
    check_tokens(users, "user", path)
    check_tokens(items, "item", path)
    body = "".join(f"{u}\t{i}\n" for u, i in zip(users, items))
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(f"{uid_field}:token\t{iid_field}:token\n")
        f.write(body)
    return path


def _parse_header(path, header, field_sep, iid_field):
    """Check a feature file's header; return the modality name it declares."""
    columns = header.split(field_sep)
    expected = f"{iid_field}:token{field_sep}<modality>{FEATURE_SUFFIX}:float_seq"
    fix = f"the first line must be {expected!r}"
    if len(columns) != 2:
        raise DataError(path, f"header has {len(columns)} column(s) {columns!r}, expected 2", fix)
    id_col, feat_col = columns
    if id_col != f"{iid_field}:token":
        raise DataError(path, f"first column is {id_col!r}, expected '{iid_field}:token'", fix)
    name, _, ftype = feat_col.partition(":")
    if ftype != "float_seq" or not name.endswith(FEATURE_SUFFIX) or name == FEATURE_SUFFIX:
        raise DataError(path, f"second column is {feat_col!r}, expected "
                              f"'<modality>{FEATURE_SUFFIX}:float_seq'", fix)
    return name[: -len(FEATURE_SUFFIX)]


def _utf8(data, path, lineno, fix):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(path, f"line {lineno} is not UTF-8 text (byte {err.start} of the line)", fix) from None


def read_feature_file(path, iid_field="item_id", field_sep="\t", seq_sep=" "):
    """Parse an atomic feature file into ``(modality, tokens, float32 array, crc32)``.

    Validates the header, one tab per line, numeric values, equal row lengths, unique tokens and
    finite values; every failure is a DataError naming the file, the line and the fix. The crc32 of
    the file's bytes is returned for the parse cache.
    """
    path = str(path)
    regen = ("re-create the file with `python -m recbole_mmssl.data.convert` or "
             "`python -m recbole_mmssl.data.features`, or fix the named line")
    sep_b = field_sep.encode()
    tokens, rows = [], []
    with open(path, "rb") as f:
        header = f.readline()
        crc = zlib.crc32(header)
        modality = _parse_header(path, _utf8(header, path, 1, regen).rstrip("\r\n"), field_sep, iid_field)
        with warnings.catch_warnings():
            # np.fromstring only warns when it stops at a non-number; make that an error
            warnings.simplefilter("error", DeprecationWarning)
            for lineno, line in enumerate(f, start=2):
                crc = zlib.crc32(line, crc)
                line = line.rstrip(b"\r\n")
                if not line.strip():
                    continue
                token, found, values = line.partition(sep_b)
                if not found or sep_b in values:
                    raise DataError(path, f"line {lineno} does not have exactly two "
                                          f"{field_sep!r}-separated columns", regen)
                try:
                    row = np.fromstring(values, dtype=np.float32, sep=seq_sep)
                except (DeprecationWarning, ValueError):
                    raise DataError(path, f"line {lineno} (item {_utf8(token, path, lineno, regen)!r}) holds a "
                                          f"value that is not a number", regen) from None
                token = _utf8(token, path, lineno, regen)
                if token != token.strip() or not token:
                    raise DataError(path, f"line {lineno}: item token {token!r} is empty or has leading or trailing "
                                          "whitespace, so it matches no item of the interactions", regen)
                tokens.append(token)
                rows.append(row)
    if not rows:
        raise DataError(path, "the file has a header but no feature rows", regen)
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    dim = int(np.bincount(lengths).argmax())
    if (lengths != dim).any() or dim == 0:
        bad = int(np.flatnonzero(lengths != dim)[0]) if dim else 0
        raise DataError(
            path,
            f"rows have different lengths: {int((lengths == dim).sum())} of {len(rows)} rows have "
            f"{dim} values, but item {shown(tokens[bad])} has {int(lengths[bad])}",
            f"every row of a feature file must have the same dimension; {regen}",
        )
    features = np.stack(rows)
    del rows
    unique, counts = np.unique(np.asarray(tokens), return_counts=True)
    if (counts > 1).any():
        raise DataError(path, f"{int((counts > 1).sum())} item token(s) appear more than once, "
                              f"e.g. {shown(unique[counts > 1][0])}",
                        "keep exactly one feature row per item")
    check_finite(features, tokens, path,
                 "replace the NaN/inf values in the source features and convert again")
    return modality, tokens, features, crc
