"""UniSRec / MISSRec dataset folders -> RecBole atomic files for sequential models.

    python -m recbole_mmssl.data.convert unisrec SRC [SRC ...] --name NAME --out DIR [--word-drop 0.15]

A UniSRec folder (Hou et al., KDD 2022; the format MISSRec, Wang et al., MM 2023, ships) holds
``P.train.inter``, ``P.valid.inter``, ``P.test.inter`` (``user_id:token  item_id_list:token_seq
item_id:token``: one row per target, the history before it, leave-one-out), ``P.item2index`` /
``P.user2index`` (original id -> integer token), ``P.text`` (original item id -> title, categories,
brand) and optionally ``P.feat<N>CLS`` (raw float32, one row per integer token: MISSRec's CLIP text
``feat1CLS`` and image ``feat3CLS``). The output DIR/NAME/ holds

* ``NAME.{train,valid,test}.inter`` with the same rows and split, tokens mapped back to the original
  ids (so recommendations name real items), read through ``benchmark_filename`` by RecBole's
  SequentialDataset (``alias_of_item_id: [item_id_list]``);
* ``NAME.text_feat``: the ``.text`` encoded offline by the packaged all-MiniLM-L6-v2
  (``recbole_mmssl.data.features``), and with ``--word-drop P`` also ``NAME.text_aug_feat``: the same
  texts with each word dropped with probability P before encoding (UniSRec's ``feat2CLS``, used by
  MISSRec's pre-training augmentation; UniSRec's pre-training data use P = 0.15);
* ``NAME.<modality>_feat`` for every ``feat<N>CLS`` (``feat1CLS`` -> ``clip_text``, ``feat2CLS`` ->
  ``clip_text_aug``, ``feat3CLS`` -> ``image``, others ``feat<N>``); all-zero rows are MISSRec's
  "missing modality" and are left out (the dataset's masks say so);
* ``NAME.item``: each item's category path and brand as RecBole ``token`` attributes, parsed from
  UniSRec's Amazon text layout ("title. categories. brand."), for RecBole's feature-aware sequential
  models (FDSA, GRU4RecF), which read ``item_feat`` (a 384-d ``float_seq`` there would be embedded as
  a (batch, length, 384, width) tensor: tens of GB);
* ``NAME.convert.json``: what was converted from where. A DIR/NAME that lacks it was not written by
  this converter and is never replaced (that covers converting a folder into itself).

Several SRC folders are merged into one pre-training dataset, as MISSRec's five-domain ``FHCKM``:
user and item tokens become ``<k>-<token>`` (k = the folder's position), so domains never share ids.
Everything is written into a temporary sibling folder that replaces DIR/NAME only once complete.
"""

import glob
import json
import os
import random
import shutil
from logging import getLogger

import numpy as np

from recbole_mmssl.data.atomic_io import (
    check_finite,
    clean_stale_temp_dirs,
    feature_file_name,
    make_temp_dir,
    replace_dir,
    write_feature_file,
)
from recbole_mmssl.errors import DataError, UsageError

SPLITS = ("train", "valid", "test")
INTER_HEADER = ("user_id:token", "item_id_list:token_seq", "item_id:token")
TEXT_HEADER = ("item_id:token", "text:token_seq")
FEAT_NAMES = {"feat1CLS": "clip_text", "feat2CLS": "clip_text_aug", "feat3CLS": "image"}
MANIFEST = "convert.json"  # NAME.convert.json: marks a folder this converter wrote
TEXT_MODALITY = "text"
AUG_SUFFIX = "_aug"  # <modality>_aug: a word-dropped version of <modality> (pre-training augmentation)
_FIX_INTER = ("a UniSRec split file is a TSV with the header 'user_id:token<TAB>item_id_list:token_seq<TAB>"
              "item_id:token' and one row per target item")


class Source:
    """One UniSRec folder, read and checked: its rows, id maps, texts and raw feature arrays."""

    def __init__(self, folder, prefix, splits, item_ids, user_ids, texts, feats):
        self.folder, self.prefix = folder, prefix
        self.splits = splits  # split -> list of (user token, [history tokens], target token)
        self.item_ids = item_ids  # integer token -> original item id
        self.user_ids = user_ids  # integer token -> original user id (or the token itself)
        self.texts = texts  # original item id -> text
        self.feats = feats  # modality -> (n_items, dim) float32, row = integer token


def find_prefix(folder):
    """The file prefix P of a UniSRec folder (the one name with P.train.inter)."""
    found = sorted(os.path.basename(p)[: -len(".train.inter")]
                   for p in glob.glob(os.path.join(glob.escape(folder), "*.train.inter")))
    if len(found) != 1:
        raise DataError(folder, f"expected one UniSRec split set P.train.inter, found {found or 'none'}",
                        "point SRC at one UniSRec dataset folder (P.train.inter, P.valid.inter, P.test.inter, "
                        "P.item2index, P.text)")
    return found[0]


def _read_lines(path, what):
    if not os.path.isfile(path):
        raise DataError(path, f"file not found (a UniSRec folder has {what})",
                        "point SRC at a complete UniSRec dataset folder")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}", f"not UTF-8 text (byte {err.start})", "save the file as UTF-8") from None
    return text.splitlines()


def _check_token(token, path, lineno, kind):
    if not token or token != token.strip() or " " in token:
        raise DataError(f"{path} line {lineno}", f"{kind} token {token!r} is empty or holds a space",
                        "tokens of a token_seq are separated by single spaces: give ids without spaces")


def read_id_map(path, what):
    """``original id<TAB>integer token`` lines -> list indexed by the integer token."""
    pairs = {}
    for lineno, line in enumerate(_read_lines(path, what), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise DataError(f"{path} line {lineno}", f"expected 'original id<TAB>integer index', got {line[:60]!r}",
                            "keep the .item2index / .user2index files as UniSRec writes them")
        original, index = parts[0], int(parts[1])
        _check_token(original, path, lineno, "original")
        if index in pairs:
            raise DataError(f"{path} line {lineno}", f"index {index} is given twice ({pairs[index]!r} and "
                                                     f"{original!r})", "give every index once")
        pairs[index] = original
    if sorted(pairs) != list(range(len(pairs))):
        missing = sorted(set(range(len(pairs))) - set(pairs))[:3]
        raise DataError(path, f"indices are not 0..{len(pairs) - 1} (e.g. {missing} missing)",
                        "the integer tokens of the split files must be 0..n-1, as UniSRec writes them")
    return [pairs[i] for i in range(len(pairs))]


def read_split(path):
    """Rows ``(user, [history], target)`` of one split file, every problem naming file and line."""
    lines = _read_lines(path, "P.train.inter, P.valid.inter and P.test.inter")
    if not lines or tuple(lines[0].split("\t")) != INTER_HEADER:
        raise DataError(f"{path} line 1", f"header is {lines[0][:80] if lines else ''!r}", _FIX_INTER)
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(f"{path} line {lineno}", f"{len(parts)} tab-separated column(s), expected 3", _FIX_INTER)
        user, history, target = parts
        seq = history.split(" ") if history else []
        for token, kind in [(user, "user"), (target, "item")] + [(t, "item") for t in seq]:
            _check_token(token, path, lineno, kind)
        if not seq:
            raise DataError(f"{path} line {lineno}", "the history (item_id_list) is empty",
                            "every row predicts its target from at least one earlier item")
        rows.append((user, seq, target))
    if not rows:
        raise DataError(path, "the split has no rows", "every split needs rows: check the source files")
    return rows


def read_texts(path):
    """``original item id -> text`` of a UniSRec ``.text`` file."""
    lines = _read_lines(path, "P.text (item texts)")
    if not lines or tuple(lines[0].split("\t")) != TEXT_HEADER:
        raise DataError(f"{path} line 1", f"header is {lines[0][:80] if lines else ''!r}",
                        "a UniSRec .text is a TSV with the header 'item_id:token<TAB>text:token_seq'")
    texts = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        item, sep, text = line.partition("\t")
        if not sep or "\t" in text:
            raise DataError(f"{path} line {lineno}", "expected two tab-separated columns (item id, text)",
                            "remove tabs from the texts")
        if item in texts:
            raise DataError(f"{path} line {lineno}", f"item {item!r} has a second text", "keep one text per item")
        texts[item] = text.strip()
    return texts


def read_feat(path, n_items):
    """A raw float32 ``.feat<N>CLS`` array, one row per integer item token."""
    size = os.path.getsize(path)
    if size == 0 or size % (4 * n_items):
        raise DataError(path, f"{size} bytes is not a whole number of float32 rows for the {n_items} items",
                        "a .feat<N>CLS file is np.float32 rows, one per item index, written with ndarray.tofile")
    array = np.fromfile(path, dtype=np.float32).reshape(n_items, -1)
    check_finite(array, [str(i) for i in range(n_items)], path, "replace the NaN/inf rows and convert again")
    return array


def read_source(folder):
    """Read and check one UniSRec folder (every item token must be a row of ``.item2index``)."""
    if not os.path.isdir(folder):
        raise DataError(folder, "source folder not found", "pass the UniSRec dataset folder")
    prefix = find_prefix(folder)
    base = os.path.join(folder, prefix)
    splits = {split: read_split(f"{base}.{split}.inter") for split in SPLITS}
    item_ids = read_id_map(f"{base}.item2index", "P.item2index")
    user_path = f"{base}.user2index"
    user_ids = read_id_map(user_path, "P.user2index") if os.path.isfile(user_path) else None
    n_items = len(item_ids)
    for split, rows in splits.items():
        for k, (user, seq, target) in enumerate(rows):
            for token in seq + [target]:
                if not token.isdigit() or int(token) >= n_items:
                    raise DataError(f"{base}.{split}.inter", f"row {k + 1} names item {token!r}, which is not an "
                                                             f"index of {prefix}.item2index (0..{n_items - 1})",
                                    "use the split files and the .item2index that belong together")
            if user_ids is not None and (not user.isdigit() or int(user) >= len(user_ids)):
                raise DataError(f"{base}.{split}.inter", f"row {k + 1} names user {user!r}, which is not an index "
                                                         f"of {prefix}.user2index",
                                "use the split files and the .user2index that belong together")
    texts = read_texts(f"{base}.text")
    feats = {}
    for path in sorted(glob.glob(f"{glob.escape(base)}.feat*CLS")):
        suffix = path[len(base) + 1:]
        feats[FEAT_NAMES.get(suffix, suffix[: -len("CLS")])] = read_feat(path, n_items)
    return Source(folder, prefix, splits, item_ids, user_ids, texts, feats)


# ----------------------------------------------------------------------------- writing

def word_drop(texts, ratio, seed):
    """Each word of each text dropped with probability ``ratio`` (UniSRec's feat2CLS augmentation)."""
    rng = random.Random(seed)
    return [" ".join(w for w in text.split(" ") if rng.random() > ratio) for text in texts]


def check_destination(out, name):
    """Refuse a DIR/NAME this converter did not write (a user's folder, or the source itself)."""
    final = os.path.join(out, name)
    if os.path.exists(final) and not os.path.isfile(os.path.join(final, f"{name}.{MANIFEST}")):
        raise UsageError(final, f"exists and was not written by this converter (no {name}.{MANIFEST}); "
                                "it is never replaced", "pass another --out or --name, or move that folder away")
    return final


def _write_split(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(INTER_HEADER) + "\n")
        f.writelines(f"{user}\t{' '.join(seq)}\t{target}\n" for user, seq, target in rows)


def amazon_attributes(text):
    """(category path, brand) of a UniSRec Amazon text, or None.

    UniSRec's ``process_amazon.py`` writes an item's text as its cleaned title, category path and brand,
    each ending with a full stop: the last two ". "-separated parts are the category path and the brand.
    """
    parts = text.strip().rstrip(".").rsplit(". ", 2)
    if len(parts) != 3:
        return None
    return tuple(part.strip() or "unknown" for part in parts[1:])


def _write_item_file(path, tokens, attributes):
    """RecBole ``NAME.item``: ``item_id:token  category:token  brand:token`` (RecBole's feature-aware
    sequential models, e.g. FDSA, read these as item attributes)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("item_id:token\tcategory:token\tbrand:token\n")
        f.writelines(f"{token}\t{category}\t{brand}\n" for token, (category, brand) in zip(tokens, attributes))


def merged_rows(sources):
    """Every split's rows with tokens mapped to original ids (prefixed ``<k>-`` when merging)."""
    many = len(sources) > 1
    out = {split: [] for split in SPLITS}
    items = {}  # output item token -> (source, integer token)
    for k, src in enumerate(sources):
        tag = f"{k}-" if many else ""

        def item(token):
            return f"{tag}{src.item_ids[int(token)]}"

        def user(token):
            return f"{tag}{src.user_ids[int(token)] if src.user_ids is not None else token}"

        for split in SPLITS:
            for u, seq, target in src.splits[split]:
                out[split].append((user(u), [item(t) for t in seq], item(target)))
        for index, original in enumerate(src.item_ids):
            items[f"{tag}{original}"] = (k, index)
    return out, items


def convert_unisrec(srcs, name, out, word_drop_ratio=None, model_path=None, seed=2020, progress=True):
    """Convert UniSRec folder(s) ``srcs`` into DIR/NAME; return the summary dict (see module docstring)."""
    from recbole_mmssl.data.features import encode_texts

    log = getLogger()
    sources = [read_source(src) for src in srcs]
    names = [set(s.feats) for s in sources]
    if any(n != names[0] for n in names):
        raise DataError(srcs[1], f"its feature files {sorted(names[1])} differ from those of {srcs[0]} "
                                 f"({sorted(names[0])})", "merge folders with the same .feat<N>CLS files")
    out = os.path.abspath(out)
    final = check_destination(out, name)  # before the (minutes of) encoding
    rows, items = merged_rows(sources)
    tokens = list(items)
    missing_text = [t for t, (k, i) in items.items() if sources[k].item_ids[i] not in sources[k].texts]
    if missing_text:
        log.warning(f"{len(missing_text)} item(s) have no text (e.g. {missing_text[0]!r}); their text feature row "
                    "is left out (set `allow_missing_features: True` to train on them)")
    with_text = [t for t in tokens if t not in set(missing_text)]
    texts = [sources[items[t][0]].texts[sources[items[t][0]].item_ids[items[t][1]]] for t in with_text]
    vectors = {TEXT_MODALITY: encode_texts(texts, model_path, progress=progress)}
    if word_drop_ratio:
        vectors[TEXT_MODALITY + AUG_SUFFIX] = encode_texts(word_drop(texts, word_drop_ratio, seed), model_path,
                                                           progress=progress)
    row_tokens = {m: with_text for m in vectors}
    for modality in sorted(names[0]):
        stacked = np.concatenate([s.feats[modality] for s in sources])
        present = ~(stacked == 0).all(axis=1)
        if not present.all():
            log.info(f"{int((~present).sum())} item(s) have an all-zero {modality} row (MISSRec's missing "
                     "modality); it is left out")
        vectors[modality] = stacked[present]
        row_tokens[modality] = [t for t, keep in zip(tokens, present) if keep]

    os.makedirs(out, exist_ok=True)
    check_destination(out, name)  # again: the folder may have appeared while encoding
    for stale in clean_stale_temp_dirs(out, name):
        log.info(f"Removed {stale}, left by a conversion that was killed.")
    tmp = make_temp_dir(out, name)
    try:
        for split in SPLITS:
            _write_split(os.path.join(tmp, f"{name}.{split}.inter"), rows[split])
        for modality, array in vectors.items():
            write_feature_file(os.path.join(tmp, feature_file_name(name, modality)), row_tokens[modality], array,
                               modality, progress=progress)
        attributes = [amazon_attributes(text) for text in texts] if not missing_text else [None]
        if all(a is not None for a in attributes):
            _write_item_file(os.path.join(tmp, f"{name}.item"), with_text, attributes)
        else:
            log.info("The texts are not all 'title. categories. brand.' (UniSRec's Amazon layout): no NAME.item "
                     "of item attributes is written")
        summary = {
            "folder": final,
            "sources": [os.path.abspath(s.folder) for s in sources],
            "users": len({u for split in SPLITS for u, _, _ in rows[split]}),
            "items": len(tokens),
            "rows": {split: len(rows[split]) for split in SPLITS},
            "modalities": {m: int(a.shape[1]) for m, a in vectors.items()},
            "word_drop": word_drop_ratio,
        }
        with open(os.path.join(tmp, f"{name}.{MANIFEST}"), "w") as f:
            json.dump(summary, f, indent=1)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def format_summary(summary):
    rows = ", ".join(f"{k} {v:,}" for k, v in summary["rows"].items())
    mods = ", ".join(f"{m} {d}-d" for m, d in summary["modalities"].items())
    return (f"wrote {summary['folder']}: {summary['users']:,} users x {summary['items']:,} items; rows: {rows}; "
            f"modalities: {mods}")
