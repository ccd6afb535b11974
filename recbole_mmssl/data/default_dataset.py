"""The embedded default dataset: MovieLens-100K with two item modalities, built offline.

RecBole's wheel ships ml-100k (``<recbole>/dataset_example/ml-100k``). On first use
``ensure_default_dataset(data_path)`` builds ``<data_path>/ml-100k/`` with

* ``ml-100k.inter`` and ``ml-100k.item``: copies of RecBole's files;
* ``ml-100k.text_feat``: the movie titles encoded with the packaged all-MiniLM-L6-v2 (384-d);
* ``ml-100k.genre_feat``: multi-hot genre vectors over the genre vocabulary (19-d).

It is built in a temporary sibling folder and renamed into place, so an interrupted build never
leaves a half-made dataset; when all four files exist it does nothing.
"""

import csv
import os
import shutil
import tempfile
import time
from logging import getLogger

import numpy as np
import pandas as pd
import recbole

from recbole_mmssl.data.atomic_io import feature_file_name, replace_dir, umask_mode, write_feature_file
from recbole_mmssl.data.features import encode_texts

DEFAULT_DATASET = "ml-100k"
DEFAULT_MODALITIES = ("text", "genre")
_COPIED = (f"{DEFAULT_DATASET}.inter", f"{DEFAULT_DATASET}.item")


def recbole_example_folder():
    """Where RecBole's wheel keeps its ml-100k atomic files."""
    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example", DEFAULT_DATASET)


def default_dataset_files():
    """File names that make up the prepared default dataset."""
    return list(_COPIED) + [feature_file_name(DEFAULT_DATASET, m) for m in DEFAULT_MODALITIES]


def read_items(path):
    """Item tokens, titles and genre lists of an ml-100k ``.item`` file."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    df.columns = [c.split(":")[0] for c in df.columns]
    return (df["item_id"].tolist(), df["movie_title"].tolist(),
            [g.split() for g in df["class"].tolist()])


def genre_multi_hot(genres):
    """Multi-hot float32 matrix over the sorted genre vocabulary; returns (matrix, vocabulary)."""
    vocabulary = sorted({g for gs in genres for g in gs})
    index = {g: k for k, g in enumerate(vocabulary)}
    rows = np.repeat(np.arange(len(genres)), [len(gs) for gs in genres])
    cols = np.fromiter((index[g] for gs in genres for g in gs), dtype=np.int64, count=len(rows))
    matrix = np.zeros((len(genres), len(vocabulary)), dtype=np.float32)
    matrix[rows, cols] = 1.0
    return matrix, vocabulary


def ensure_default_dataset(data_path, model_path=None, progress=False):
    """Build ``<data_path>/ml-100k`` with text and genre features unless it is complete already."""
    folder = os.path.join(os.path.abspath(data_path), DEFAULT_DATASET)
    if all(os.path.isfile(os.path.join(folder, f)) for f in default_dataset_files()):
        return folder
    log = getLogger()
    start = time.perf_counter()
    log.info(f"Building the default dataset {DEFAULT_DATASET} with text and genre features in "
             f"{folder} (once).")
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{DEFAULT_DATASET}.tmp-", dir=os.path.dirname(folder))
    try:
        os.chmod(tmp, umask_mode(0o777))
        for name in _COPIED:
            shutil.copyfile(os.path.join(recbole_example_folder(), name), os.path.join(tmp, name))
        tokens, titles, genres = read_items(os.path.join(tmp, f"{DEFAULT_DATASET}.item"))
        multi_hot, vocabulary = genre_multi_hot(genres)
        write_feature_file(os.path.join(tmp, feature_file_name(DEFAULT_DATASET, "genre")), tokens,
                           multi_hot, "genre", progress=progress)
        text = encode_texts(titles, model_path, progress=progress)
        write_feature_file(os.path.join(tmp, feature_file_name(DEFAULT_DATASET, "text")), tokens,
                           text, "text", progress=progress)
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(f"Built {folder}: {len(tokens)} items, text {text.shape[1]}-d, genre "
             f"{len(vocabulary)}-d, in {time.perf_counter() - start:.1f} s.")
    return folder
