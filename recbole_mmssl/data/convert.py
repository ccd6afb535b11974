"""Convert HKUDS/MMSSL, MMRec or UniSRec dataset folders into RecBole atomic files.

    python -m recbole_mmssl.data.convert hkuds SRC --name NAME --out DIR [--modalities image,audio]
    python -m recbole_mmssl.data.convert mmrec SRC --name NAME --out DIR [--modalities image,text]
    python -m recbole_mmssl.data.convert unisrec SRC [SRC ...] --name NAME --out DIR [--word-drop 0.15]

* ``hkuds``: ``train.json``, ``val.json``, ``test.json`` = ``{"<user>": [item ids]}`` (MMSSL, DiffMM).
* ``mmrec``: one ``*.inter`` TSV with columns ``userID``, ``itemID``, ``x_label`` (0/1/2 = train/
  valid/test), as in MMRec.
* ``unisrec``: sequential data of UniSRec and MISSRec (rows of history and target), for sequential
  models such as MISSRec and RecBole's SASRec; see :mod:`recbole_mmssl.data.unisrec`.

Both take every ``<modality>_feat.npy`` of SRC (row i = item i). The output DIR/NAME/ holds
``NAME.{train,valid,test}.inter`` (read through RecBole's ``benchmark_filename``) and one
``NAME.<modality>_feat`` per modality. Everything is written into a temporary sibling folder that
replaces DIR/NAME only once complete, so a failed run never leaves a half-written or clobbered dataset;
the temporary folders of runs that were killed are removed by the next run (they carry a marker).
A conversion replaces only what an earlier conversion wrote (recbole_mmssl/data/ownership.py): files
added to DIR/NAME later are kept, and a DIR/NAME it did not make, or one that overlaps SRC, is refused.
The name, the output folder and what it holds are checked before any work.
"""

import glob
import json
import os
import shutil
import sys
from logging import getLogger

import numpy as np
import pandas as pd

from recbole_mmssl.cli import ArgumentParser, check_output_folder, run_cli
from recbole_mmssl.data.atomic_io import (
    check_feature_dtype,
    check_finite,
    check_modality_name,
    check_tokens,
    clean_stale_temp_dirs,
    feature_file_name,
    make_temp_dir,
    write_feature_file,
    write_inter_file,
)
from recbole_mmssl.errors import DataError, UsageError, shown
from recbole_mmssl.data.ownership import check_apart_from_source, files_to_keep, swap_in, write_marker

SPLITS = ("train", "valid", "test")
HKUDS_FILES = {"train": "train.json", "valid": "val.json", "test": "test.json"}
MMREC_COLUMNS = ("userID", "itemID", "x_label")
NPY_SUFFIX = "_feat.npy"
LAYOUTS = ("hkuds", "mmrec", "unisrec")
MAX_JSON_ID = np.iinfo(np.int64).max
MAX_EXACT_FLOAT_ID = 2**53  # MMRec ids are parsed as numbers; above this a float cannot hold them exactly


def check_name(name):
    """Refuse, before any work, a dataset name that is not one plain folder name."""
    fix = "use a plain folder name such as tiktok or amazon-baby (it names DIR/NAME and its files)"
    if not name or not name.strip():
        raise UsageError("--name", "the dataset name is empty", fix)
    if name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"--name={name}", "is a path or a hidden name, not a dataset name", fix)
    if any(ord(c) < 32 for c in name):
        raise UsageError(f"--name={name!r}", "holds a control character (tab, line break)", fix)
    return name


# ----------------------------------------------------------------------------- sources

class _DuplicateKey(ValueError):
    def __init__(self, key, lost):
        super().__init__(key)
        self.key, self.lost = key, lost


def _refuse_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key, len(seen[key]) if isinstance(seen[key], list) else 1)
        seen[key] = value
    return seen


def read_split_json(path):
    """Read one HKUDS split ``{"<user>": [item ids]}``; return (user tokens, int item ids)."""
    fix = 'the file must be one JSON object {"<user id>": [<item id>, ...], ...} with integer item ids'
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(path, "file not found (an HKUDS folder has train.json, val.json and "
                              "test.json)", "point SRC at the folder that holds the three files") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, f"not UTF-8 text (byte {exc.start}, line {line})",
                        "save the file as UTF-8 (JSON files are UTF-8)") from None
    try:
        data = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_refuse_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc})", fix) from None
    except _DuplicateKey as dup:
        raise DataError(path, f"user {dup.key!r} appears twice; JSON keeps only the last of the two lists, so "
                              f"{dup.lost} interaction(s) would be dropped without a word",
                        "merge the two lists of that user into one") from None
    if not isinstance(data, dict):
        raise DataError(path, f"found a JSON {type(data).__name__}, not an object of users", fix)
    users, items = [], []
    for user, its in data.items():
        if not isinstance(its, list):
            raise DataError(path, f"user {user!r} maps to a {type(its).__name__} "
                                  f"({json.dumps(its)[:60]}), not a list of item ids", fix)
        bad = [i for i in its if not isinstance(i, int) or isinstance(i, bool) or i < 0]
        if bad:
            raise DataError(path, f"user {user!r} has a non-integer or negative item id "
                                  f"{json.dumps(bad[0])[:60]}", fix)
        huge = [i for i in its if i > MAX_JSON_ID]
        if huge:
            raise DataError(path, f"user {user!r} has item id {huge[0]}, larger than 2**63 - 1",
                            "item ids are row numbers of the feature .npy files: renumber the items 0..n-1")
        users.extend([user] * len(its))
        items.extend(its)
    return np.asarray(users, dtype=object), np.asarray(items, dtype=np.int64)


def read_hkuds(src):
    """Read an HKUDS folder into ({split: (user tokens, item ids)}, {split: source file})."""
    sources = {split: os.path.join(src, HKUDS_FILES[split]) for split in SPLITS}
    return {split: read_split_json(path) for split, path in sources.items()}, sources


def _find_mmrec_inter(src, name):
    own = os.path.join(src, f"{name}.inter")
    if os.path.isfile(own):
        return own
    found = sorted(glob.glob(os.path.join(glob.escape(src), "*.inter")))
    if len(found) == 1:
        return found[0]
    raise DataError(src, f"expected one MMRec interaction file <name>.inter, found "
                         f"{[os.path.basename(p) for p in found] or 'none'}",
                    "name the output after the source (--name X for X.inter) or keep one .inter")


def read_mmrec(src, name):
    """Read an MMRec folder (``*.inter`` with userID, itemID, x_label) like ``read_hkuds``."""
    path = _find_mmrec_inter(src, name)
    fix = f"MMRec's .inter is a TSV with columns {', '.join(MMREC_COLUMNS)} (x_label 0/1/2 = " \
          f"train/valid/test) and integer item ids"
    try:
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot be read as a TSV ({exc})", fix) from None
    missing = [c for c in MMREC_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {list(df.columns)}", fix)
    labels = pd.to_numeric(df["x_label"], errors="coerce")
    bad = ~labels.isin([0, 1, 2])
    if bad.any():
        raise DataError(path, f"{int(bad.sum())} row(s) have an x_label other than 0/1/2, e.g. "
                              f"{shown(df['x_label'][bad].iloc[0])} (line {int(np.flatnonzero(bad)[0]) + 2})",
                        fix)
    items = pd.to_numeric(df["itemID"], errors="coerce")
    bad = items.isna() | (items < 0) | (items != np.floor(items))
    if bad.any():
        raise DataError(path, f"{int(bad.sum())} row(s) have a non-integer or negative itemID, "
                              f"e.g. {shown(df['itemID'][bad].iloc[0])}", fix)
    huge = items >= MAX_EXACT_FLOAT_ID
    if huge.any():
        raise DataError(path, f"{int(huge.sum())} row(s) have an itemID of 2**53 or more, e.g. "
                              f"{shown(df['itemID'][huge].iloc[0])} (line {int(np.flatnonzero(huge)[0]) + 2})",
                        "item ids are row numbers of the feature .npy files: renumber the items 0..n-1")
    users = df["userID"].to_numpy(dtype=object)
    items = items.to_numpy(dtype=np.int64)
    splits = {split: (users[labels.to_numpy() == k], items[labels.to_numpy() == k])
              for k, split in enumerate(SPLITS)}
    return splits, {split: path for split in SPLITS}


def find_npy_features(src, modalities=None):
    """Map modality -> .npy path for SRC's ``<modality>_feat.npy`` files (optionally selected)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(src), f"*{NPY_SUFFIX}"))):
        found[os.path.basename(path)[: -len(NPY_SUFFIX)]] = path
    if modalities is None:
        for name, path in found.items():
            check_modality_name(name, path, "rename the file to <modality>_feat.npy with a plain name (letters, "
                                            "digits, underscores), move it out of SRC, or choose the modalities "
                                            "to convert with --modalities")
        return found
    missing = [m for m in modalities if m not in found]
    if missing:
        raise DataError(os.path.join(src, f"{missing[0]}{NPY_SUFFIX}"),
                        f"--modalities asks for {missing} but SRC has no such file; found "
                        f"{[os.path.basename(p) for p in found.values()] or 'no *_feat.npy'}",
                        f"choose --modalities among {list(found)} or leave it out")
    return {m: found[m] for m in modalities}


def load_npy_features(path, n_items):
    """Load a (items x dim) .npy as float32 and check its dtype, shape and values."""
    fix = "save the features with np.save(path, float_array)"
    if os.path.getsize(path) == 0:
        raise DataError(path, "is an empty file (0 bytes), not a .npy array", fix)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(path, f"not a plain numeric .npy ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                        fix) from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive (np.savez) whatever its name
        names = list(getattr(array, "files", []))
        array.close()
        raise DataError(path, f"is an .npz archive of {len(names)} array(s) {names[:5]} (np.savez), not one .npy "
                              "array", "save one array per modality with np.save(path, features)")
    check_feature_dtype(array, path, f"{fix} (a float array)")
    if array.ndim != 2:
        raise DataError(path, f"feature array is {array.ndim}-D with shape {array.shape}, "
                              f"expected 2-D (items x dim)",
                        "save one row per item: np.save(path, features.reshape(n_items, -1))")
    if array.shape[0] != n_items:
        relation = "fewer" if array.shape[0] < n_items else "more"
        raise DataError(path, f"{array.shape[0]} feature rows, {relation} than the {n_items} items "
                              f"of the interactions (item ids 0..{n_items - 1}; row i = item i)",
                        "use the .npy that belongs to these split files, with exactly one row "
                        "per item id")
    if array.shape[1] == 0:
        raise DataError(path, f"feature array has 0 columns (shape {array.shape})",
                        "save at least one feature value per item, or leave the file out")
    features = np.asarray(array, dtype=np.float32)
    check_finite(features, [str(i) for i in range(n_items)], path,
                 "replace the NaN/inf rows in the .npy (e.g. by the mean vector, as LATTICE does) "
                 "and convert again")
    return features


# ----------------------------------------------------------------------------- checks

def check_splits(splits, sources, src):
    """Refuse empty splits; warn about valid/test users or items that train does not have.

    ``sources[split]`` is the file the split came from (named in errors).
    """
    log = getLogger()
    for split, (users, _) in splits.items():
        check_tokens(users, "user", sources[split])
        if len(users) == 0:
            raise DataError(sources[split], f"the {split!r} split has no interactions",
                            "every split needs interactions: check the source split files")
    train_users, train_items = splits["train"]
    rest_users = np.concatenate([splits[s][0] for s in SPLITS[1:]])
    rest_items = np.concatenate([splits[s][1] for s in SPLITS[1:]])
    n_users = len(np.setdiff1d(rest_users.astype(str), train_users.astype(str)))
    n_items = len(np.setdiff1d(rest_items, train_items))
    if n_users or n_items:
        log.warning(f"{n_users} user(s) and {n_items} item(s) of the valid/test splits of {src} "
                    f"are not in its train split; they are kept (RecBole gives them ids, and they "
                    f"get no training interactions).")
    pairs = pd.DataFrame({"u": np.concatenate([splits[s][0] for s in SPLITS]).astype(str),
                          "i": np.concatenate([splits[s][1] for s in SPLITS])})
    n_dup = int(pairs.duplicated().sum())
    if n_dup:
        log.warning(f"{n_dup} user-item pair(s) of {src} occur more than once across or within "
                    f"splits; they are kept as they are.")


# ----------------------------------------------------------------------------- writing

def output_names(name, modalities):
    """The files a conversion writes into DIR/NAME."""
    return [f"{name}.{split}.inter" for split in SPLITS] + [feature_file_name(name, m) for m in modalities]


def write_dataset(splits, sources, feature_paths, name, out, src, progress=True):
    """Validate sources and write DIR/NAME atomically, keeping what others added there; return a summary."""
    check_splits(splits, sources, src)
    all_items = np.concatenate([items for _, items in splits.values()])
    n_items = int(all_items.max()) + 1
    present = np.unique(all_items)
    features = {m: load_npy_features(p, n_items) for m, p in feature_paths.items()}
    if features and len(present) < n_items:
        getLogger().info(f"{n_items - len(present)} item id(s) below {n_items} have no interaction "
                         f"in any split; their feature rows are not written.")
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    for stale in clean_stale_temp_dirs(out, name):
        getLogger().info(f"Removed {stale}, left by a conversion that was killed.")
    tmp = make_temp_dir(out, name)
    try:
        for split in SPLITS:
            users, items = splits[split]
            write_inter_file(os.path.join(tmp, f"{name}.{split}.inter"), users, items)
        tokens = [str(i) for i in present]
        for modality, array in features.items():
            write_feature_file(os.path.join(tmp, feature_file_name(name, modality)), tokens,
                               array[present], modality, progress=progress)
        write_marker(tmp, src)
        final = os.path.join(out, name)
        keep = files_to_keep(final, output_names(name, features))  # again: DIR/NAME may have changed meanwhile
        swap_in(tmp, final, keep)
        for kept in keep:
            getLogger().info(f"Kept {os.path.join(final, kept)}: the converter did not write it.")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    all_users = np.unique(np.concatenate([u for u, _ in splits.values()]).astype(str))
    return {
        "folder": os.path.join(out, name),
        "users": int(len(all_users)),
        "items": int(len(present)),
        "interactions": {split: int(len(splits[split][0])) for split in SPLITS},
        "modalities": {m: int(a.shape[1]) for m, a in features.items()},
    }


def convert(layout, src, name, out, modalities=None, progress=True):
    """Convert SRC (``layout`` 'hkuds' or 'mmrec') into DIR/NAME; return the summary dict."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown source layout {layout!r}; expected one of {LAYOUTS}")
    check_name(name)
    check_output_folder(out, "--out")
    if not os.path.isdir(src):
        raise DataError(src, "source folder not found", "pass the folder that holds the source files")
    final = os.path.join(os.path.abspath(out), name)
    check_apart_from_source(final, src)
    feature_paths = find_npy_features(src, modalities)
    files_to_keep(final, output_names(name, feature_paths))
    splits, sources = read_hkuds(src) if layout == "hkuds" else read_mmrec(src, name)
    if not feature_paths:
        getLogger().info(f"No *{NPY_SUFFIX} in {src}: writing interactions only (enough for "
                         f"baselines; MMSSL needs at least one modality).")
    return write_dataset(splits, sources, feature_paths, name, out, src, progress)


def format_summary(summary):
    """One line for the user: counts per split and the modalities written."""
    inter = ", ".join(f"{k} {v:,}" for k, v in summary["interactions"].items())
    mods = ", ".join(f"{m} {d}-d" for m, d in summary["modalities"].items()) or "none"
    return (f"wrote {summary['folder']}: {summary['users']:,} users x {summary['items']:,} items; "
            f"interactions: {inter}; modalities: {mods}")


def _main(argv):
    parser = ArgumentParser(prog="python -m recbole_mmssl.data.convert", description=__doc__.split("\n\n")[0],
                            allow_abbrev=False)
    parser.add_argument("layout", choices=LAYOUTS)
    parser.add_argument("src", nargs="+", help="source folder (unisrec: one or more, merged)")
    parser.add_argument("--name", required=True, help="dataset name (output folder and file prefix)")
    parser.add_argument("--out", required=True, help="RecBole data_path, e.g. dataset/")
    parser.add_argument("--modalities", help="comma-separated modalities to keep, in this order")
    parser.add_argument("--word-drop", type=float, default=None,
                        help="unisrec: also encode the texts with each word dropped with this probability "
                             "(pre-training augmentation; UniSRec uses 0.15)")
    parser.add_argument("--text-model", default=None,
                        help="unisrec: local sentence-transformers folder (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    args = parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.layout == "unisrec":
        return _main_unisrec(parser, args)
    if len(args.src) > 1:
        parser.error(f"{args.layout} converts one SRC folder; only unisrec merges several")
    if args.word_drop is not None:
        parser.error("--word-drop is an option of the unisrec layout")
    args.src = args.src[0]
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] \
        if args.modalities else None
    summary = convert(args.layout, args.src, args.name, args.out, modalities, progress=not args.no_progress)
    print(format_summary(summary))
    return 0


def _main_unisrec(parser, args):
    from recbole_mmssl.data.unisrec import convert_unisrec, format_summary as unisrec_summary

    if args.modalities:
        parser.error("--modalities is an option of the hkuds and mmrec layouts (unisrec writes every modality; "
                     "pick them with the `modalities` config key)")
    if args.word_drop is not None and not 0 < args.word_drop < 1:
        parser.error(f"--word-drop must be between 0 and 1, got {args.word_drop}")
    check_name(args.name)
    check_output_folder(args.out, "--out")
    for src in args.src:
        if not os.path.isdir(src):
            raise DataError(src, "source folder not found", "pass the folder that holds the UniSRec files")
    summary = convert_unisrec(args.src, args.name, args.out, args.word_drop, args.text_model,
                              progress=not args.no_progress)
    print(unisrec_summary(summary))
    return 0


def main(argv=None):
    """The command: returns its exit code (0, 2 for bad input with `error:` / `fix:` lines)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
