"""Check that a dataset has been prepared before RecBole touches it.

RecBole downloads unknown dataset folders on its own; for amazon-baby that would silently give the
ratings without any modality features. ``ensure_prepared`` runs first and either builds the embedded
default dataset (ml-100k) or stops with the exact command that prepares the missing one.
"""

import os

from recbole_mmssl.data.default_dataset import (
    DEFAULT_DATASET,
    ensure_default_dataset,
    recbole_example_folder,
)
from recbole_mmssl.errors import DataError

# dataset name -> (converter layout, where its source folder comes from)
KNOWN_SOURCES = {
    "tiktok": ("hkuds", "<path-to-HKUDS-tiktok-folder>"),
    "amazon-baby": ("hkuds", "<path-to-HKUDS-baby-folder>"),
    "amazon-sports": ("hkuds", "<path-to-HKUDS-sports-folder>"),
    "amazon-clothing": ("hkuds", "<path-to-HKUDS-clothing-folder>"),
    "allrecipes": ("hkuds", "<path-to-HKUDS-allrecipes-folder>"),
}


def convert_command(name, out):
    """The shell command that prepares dataset ``name`` into the data folder ``out``."""
    layout, src = KNOWN_SOURCES.get(name, ("hkuds|mmrec", "<path-to-source-folder>"))
    return f"python -m recbole_mmssl.data.convert {layout} {src} --name {name} --out {out}/"


def ensure_prepared(config):
    """Return the dataset folder, building the default dataset if needed, else raise DataError.

    ``config['data_path']`` is RecBole's per-dataset folder (``<data_path>/<dataset>``).
    """
    folder, name = os.path.normpath(config["data_path"]), config["dataset"]
    out = os.path.dirname(folder) or "."
    if name == DEFAULT_DATASET:
        if os.path.realpath(folder) == os.path.realpath(recbole_example_folder()):
            raise DataError(folder, "data_path points at RecBole's bundled ml-100k, which has no "
                                    "modality features",
                            "create the config with recbole_mmssl's Config, which keeps ml-100k "
                            "under the configured data_path")
        return ensure_default_dataset(out)
    benchmark = config["benchmark_filename"]
    required = [f"{name}.{split}.inter" for split in benchmark] if benchmark else [f"{name}.inter"]
    missing = [f for f in required if not os.path.isfile(os.path.join(folder, f))]
    if not missing:
        return folder
    fix = f"prepare it with: {convert_command(name, out)} (see dataset/README.md)"
    if not os.path.isdir(folder):
        problem = "dataset folder does not exist"
    else:
        problem = f"dataset folder lacks {missing}"
        if not benchmark and os.path.isfile(os.path.join(folder, f"{name}.train.inter")):
            fix = "the folder holds pre-split files: set `benchmark_filename: [train, valid, test]`"
    raise DataError(folder, f"{problem} (recbole_mmssl never downloads datasets: RecBole's own "
                            f"download would give interactions without modality features)", fix)
