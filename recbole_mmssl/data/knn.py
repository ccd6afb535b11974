"""k-NN item-item graphs of modality features, built and cached on the data side: chunked cosine
top-k, as sparse edge lists. The dataset hands them to models (``MultimodalDataset.modality_knn``).

The neighbour rule and the chunking are recbole_mmssl/cosine_knn.py's.

A modality's k-NN of the raw features does not change during training, so it is cached beside the
dataset's parse cache: ``.<dataset>.<modality>_feat.knn<k>.pt`` in the dataset folder. The cache
holds the top-k and its cosines *before* normalisation (each model normalises it in O(I k) after
loading), so LATTICE and FREEDOM share one file per k. It is keyed by a digest of the aligned
feature and mask bytes, their shape, k and the neighbour rule's version: anything else means
"build again". Files are written atomically and loaded with ``torch.load(weights_only=True)``;
``feature_cache: False`` switches the cache off.
"""

import hashlib
import os
import time
from logging import getLogger

import torch

from recbole_mmssl.cosine_knn import cosine_topk
from recbole_mmssl.data.atomic_io import feature_file_name
from recbole_mmssl.data.cache import load_keyed_cache, save_keyed_cache

#: Version of the neighbour rule (recbole_mmssl/cosine_knn.py); part of the cache key.
KNN_RULE_VERSION = 1


# -- the cache ------------------------------------------------------------------------------------
def feature_digest(features, mask):
    """blake2b of the aligned feature and mask bytes (and their shape): the cache's content key."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(repr((tuple(features.shape), str(features.dtype))).encode())
    digest.update(features.detach().contiguous().cpu().numpy().data)
    digest.update(mask.detach().to(torch.uint8).contiguous().cpu().numpy().data)
    return digest.hexdigest()


def knn_cache_path(folder, dataset_name, modality, k):
    """Where the k-NN cache of one modality lives: beside its feature file and parse cache."""
    return os.path.join(folder, f".{feature_file_name(dataset_name, modality)}.knn{int(k)}.pt")


def _cache_key(features, mask, k):
    return {"version": KNN_RULE_VERSION, "digest": feature_digest(features, mask), "k": int(k),
            "shape": list(features.shape)}


def _load(path, key):
    blob = load_keyed_cache(path, key, "k-NN cache {path} ({error}); building the graph again")
    return None if blob is None else (blob["rows"], blob["cols"], blob["cosine"])


def _save(path, key, rows, cols, cosine):
    blob = dict(key, rows=rows.cpu(), cols=cols.cpu(), cosine=cosine.cpu())
    save_keyed_cache(path, blob, "k-NN cache {path} ({error}); the graph will be built again next time")


def cached_knn(folder, dataset_name, modality, features, mask, k, use_cache=True, chunk_rows=None):
    """The cached :func:`cosine_topk` of one modality, on ``features``' device; the cache file lives in
    ``folder`` beside the modality's feature file (see the module docstring)."""
    path = knn_cache_path(folder, dataset_name, modality, k)
    logger = getLogger()
    key = _cache_key(features, mask, k) if use_cache else None
    if use_cache:
        cached = _load(path, key)
        if cached is not None:
            logger.info(f"k-NN graph of {modality!r} (k={k}) loaded from {path}.")
            return tuple(t.to(features.device) for t in cached)
    started = time.time()
    rows, cols, cosine = cosine_topk(features, mask, k, chunk_rows=chunk_rows)
    logger.info(f"k-NN graph of {modality!r} (k={k}): {rows.numel()} edges over {int(mask.sum())} items "
                f"built in {time.time() - started:.2f} s.")
    if use_cache:
        _save(path, key, rows, cols, cosine)
    return rows, cols, cosine
