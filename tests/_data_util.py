"""Small on-disk datasets for the data-pipeline tests (HKUDS and MMRec layouts, atomic files)."""

import json
import logging
import os

import numpy as np
from recbole.config import Config

# 5 users, 6 items (ids 0..5); every split non-empty; user "4" and item 5 appear only in test.
TRAIN = {"0": [0, 1, 2], "1": [1, 3], "2": [2, 4], "3": [0, 4]}
VAL = {"0": [3], "2": [1]}
TEST = {"1": [4], "3": [1], "4": [5]}
N_ITEMS = 6


def features(n_items=N_ITEMS, dim=3, seed=0):
    """Random float32 features, one row per item id."""
    return np.random.default_rng(seed).standard_normal((n_items, dim)).astype(np.float32)


def make_hkuds(folder, train=TRAIN, val=VAL, test=TEST, feats=None):
    """Write an HKUDS folder (train/val/test.json + <modality>_feat.npy); returns its path."""
    os.makedirs(folder, exist_ok=True)
    for name, data in (("train", train), ("val", val), ("test", test)):
        with open(os.path.join(folder, f"{name}.json"), "w") as f:
            f.write(data if isinstance(data, str) else json.dumps(data))
    for modality, array in (feats or {}).items():
        np.save(os.path.join(folder, f"{modality}_feat.npy"), array)
    return str(folder)


def make_mmrec(folder, name, rows, feats=None, header="userID\titemID\tx_label"):
    """Write an MMRec folder: NAME.inter (rows of (user, item, x_label)) + <modality>_feat.npy."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{name}.inter"), "w") as f:
        f.write(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    for modality, array in (feats or {}).items():
        np.save(os.path.join(folder, f"{modality}_feat.npy"), array)
    return str(folder)


def recbole_config(data_path, name, benchmark=True, **extra):
    """A quiet CPU RecBole config for BPR on ``data_path/name`` (pre-split unless benchmark=False)."""
    logging.getLogger().setLevel(logging.WARNING)
    config_dict = {
        "data_path": str(data_path),
        "load_col": {"inter": ["user_id", "item_id"]},
        "use_gpu": False,
        "state": "WARNING",
        "show_progress": False,
    }
    if benchmark:
        config_dict["benchmark_filename"] = ["train", "valid", "test"]
    config_dict.update(extra)
    return Config(model="BPR", dataset=name, config_dict=config_dict)


def folder_snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (to prove nothing changed)."""
    snapshot = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                snapshot[os.path.relpath(path, folder)] = fh.read()
    return snapshot


def damage_tensors(src, dst, n_bytes=16):
    """Copy checkpoint ``src`` to ``dst`` with the first ``n_bytes`` of every tensor inverted.

    torch stores each tensor as an uncompressed zip entry and does not check the entries' CRC, so
    the damaged copy still loads: only the checkpoint's own digest can tell.
    """
    import shutil
    import struct
    import zipfile

    shutil.copy(src, dst)
    with zipfile.ZipFile(dst) as archive:
        entries = [e for e in archive.infolist() if "/data/" in e.filename and e.file_size >= n_bytes]
    with open(dst, "r+b") as f:
        for entry in entries:
            f.seek(entry.header_offset)
            name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
            f.seek(entry.header_offset + 30 + name_len + extra_len)
            data = f.read(n_bytes)
            f.seek(-n_bytes, 1)
            f.write(bytes(b ^ 0xFF for b in data))
    return len(entries)
