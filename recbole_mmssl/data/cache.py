"""Parse cache for atomic feature files.

Parsing float_seq text is slow (about 10 s for 7,050 x 4,096 floats), so the parsed float32 matrix is
cached beside the source as ``.<file name>.cache.pt``. The cache is only a copy: it is keyed by the
source's size, mtime_ns and the parse settings, and any mismatch means "parse the source again".
File systems stamp mtimes with a coarse clock, so a source rewritten with the same size within one
tick of being cached would look unchanged; a cache written within ``RACY_SECONDS`` of the source's
mtime is therefore marked racy and is trusted only after the source's crc32 is checked again (the
same rule git uses for its index). Caches are written atomically and loaded with
``torch.load(weights_only=True)``, so a cache file can never run code.
"""

import os
import time
import zlib
from logging import getLogger

import torch

from recbole_mmssl.atomic_write import atomic_file, signals_held
from recbole_mmssl.data.atomic_io import read_feature_file

CACHE_VERSION = 1
RACY_SECONDS = 2.0
_CRC_BLOCK = 1 << 24


def cache_path_for(path):
    """Where the parse cache of ``path`` lives: a hidden file beside it."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.cache.pt")


def _crc32_of(path):
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(_CRC_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def _cache_key(stat, iid_field, field_sep, seq_sep):
    return {
        "version": CACHE_VERSION,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "iid_field": iid_field,
        "field_sep": field_sep,
        "seq_sep": seq_sep,
    }


def load_keyed_cache(cache_path, key, what):
    """The tensor-only dict saved at ``cache_path`` if its entries match ``key``, else None.

    A missing, truncated or foreign file is a stale cache (warned about, then rebuilt); ``what``
    names the cache and what happens instead, for the warning. Shared by every cache of the plugin.
    """
    if not os.path.isfile(cache_path):
        return None
    try:
        blob = torch.load(cache_path, weights_only=True)
    except Exception as exc:  # a truncated or foreign file is just a stale cache
        getLogger().warning(f"Ignoring unreadable {what.format(path=cache_path, error=exc)}.")
        return None
    if not isinstance(blob, dict) or any(blob.get(k) != v for k, v in key.items()):
        return None
    return blob


def _try_load(cache_path, key, source):
    """Return the cached (modality, tokens, features) if the cache matches ``key``, else None."""
    blob = load_keyed_cache(cache_path, key, "parse cache {path} ({error}); parsing again")
    if blob is None:
        return None
    if blob["racy"] and _crc32_of(source) != blob["crc32"]:
        return None
    return blob["modality"], list(blob["tokens"]), blob["features"].numpy()


def save_keyed_cache(cache_path, blob, what):
    """Write ``blob`` (tensors and plain data) atomically beside its source: temp file, then rename.

    A write that fails (read-only folder, full disk) only costs a rebuild next time: ``what`` says
    which cache and what, for the warning. Shared by every cache of the plugin.
    """
    try:
        with signals_held(), atomic_file(cache_path) as f:  # a stop in mid-write is a stop, not a failed write
            torch.save(blob, f)
    except (OSError, RuntimeError) as exc:  # torch reports some write failures as RuntimeError
        getLogger().warning(f"Could not write {what.format(path=cache_path, error=exc)}.")


def _try_save(cache_path, key, crc, modality, tokens, features):
    blob = dict(key, crc32=crc, modality=modality, tokens=list(tokens),
                features=torch.from_numpy(features),
                racy=(time.time_ns() - key["mtime_ns"]) < RACY_SECONDS * 1e9)
    save_keyed_cache(cache_path, blob,
                     "parse cache {path} ({error}); the feature file will be parsed again next time")


def load_feature_file(path, iid_field="item_id", field_sep="\t", seq_sep=" ", use_cache=True):
    """Read an atomic feature file through the parse cache.

    Returns ``(modality, tokens, features)`` with features a float32 numpy array. Without a valid
    cache the file is parsed (and validated) by ``read_feature_file`` and the cache is rewritten.
    """
    path = str(path)
    stat = os.stat(path)
    key = _cache_key(stat, iid_field, field_sep, seq_sep)
    cache_path = cache_path_for(path)
    if use_cache:
        cached = _try_load(cache_path, key, path)
        if cached is not None:
            getLogger().debug(f"Loaded {path} from its parse cache {cache_path}.")
            return cached
    modality, tokens, features, crc = read_feature_file(path, iid_field, field_sep, seq_sep)
    if use_cache:
        if _cache_key(os.stat(path), iid_field, field_sep, seq_sep) == key:
            _try_save(cache_path, key, crc, modality, tokens, features)
        else:
            getLogger().warning(f"{path} changed while it was parsed; not caching it.")
    return modality, tokens, features
