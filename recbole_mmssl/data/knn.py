"""k-NN item-item graphs of modality features, built and cached on the data side: chunked cosine
top-k, as sparse edge lists. The dataset hands them to models (``MultimodalDataset.modality_knn``);
LATTICE also calls :func:`cosine_topk` on its learned projections each epoch.

Neighbour rule, as both authors' code (``torch.topk`` over each item's full cosine row): every item
with features takes the k items with features most similar to it, **itself included** (its own
cosine, 1, is normally the largest). Two deliberate differences, both invisible on ordinary data:

* ties at the k-th place go to the lower item id (``torch.topk`` picks among ties arbitrarily), so
  a graph never depends on the BLAS, the device or the chunk size;
* items without a feature row (``modality_masks`` False, RecBole's padding item 0 too) get no
  edges and are nobody's neighbour; an item with an all-zero row has cosine 0 with every item
  (the authors' code divides by its zero norm and gets NaN). With fewer than k items with features,
  each takes all of them.

Nothing of size I x I is made: similarities are computed for ``chunk_rows`` items at a time
(about 16 M entries per chunk by default; at 23 k items the full matrix would be 530 M), and the
result is an edge list of I x k (row, column, cosine) triples.

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

from recbole_mmssl.data.atomic_io import feature_file_name
from recbole_mmssl.data.cache import load_keyed_cache, save_keyed_cache

#: Version of the neighbour rule above; part of the cache key.
KNN_RULE_VERSION = 1
#: Similarity entries computed at once by default (64 MiB of float32).
CHUNK_ENTRIES = 1 << 24
NORM_EPS = 1e-12


def inverse_norms(x):
    """1/max(||x_i||, 1e-12) per row (F.normalize's eps): an all-zero row has cosine 0, not NaN."""
    return 1.0 / x.norm(dim=1).clamp_min(NORM_EPS)


def _topk_ties_to_lower_ids(sim, k):
    """Column positions of each row's k largest entries; ties at the k-th place go to lower columns."""
    values, index = sim.topk(k, dim=1)
    boundary = values[:, -1:]
    tied = ((sim >= boundary).sum(dim=1) > k).nonzero().squeeze(1)
    if tied.numel():  # rare on real data: settle these rows with a stable sort
        index[tied] = torch.sort(sim[tied], dim=1, descending=True, stable=True).indices[:, :k]
    return index


@torch.no_grad()
def cosine_topk(features, mask, k, chunk_rows=None):
    """Edge list ``(rows, cols, cosine)`` of the k-NN graph of ``features`` over the items where ``mask``.

    Rows are grouped by item in increasing id order, each with min(k, #items with features) edges.
    Cosines are the product of the raw dot product with both inverse norms, so exact ties (e.g.
    duplicated rows) stay exact in any chunking. No gradient: see :func:`pair_cosine`.
    """
    if k < 1:
        raise ValueError(f"k-NN graphs need k >= 1, got k={k}.")
    valid = mask.nonzero().squeeze(1)
    n_valid = valid.numel()
    k_eff = min(int(k), n_valid)
    if k_eff == 0:
        empty = torch.zeros(0, dtype=torch.long, device=features.device)
        return empty, empty, torch.zeros(0, device=features.device)
    x = features[valid].float()
    inv = inverse_norms(x)
    chunk = int(chunk_rows) if chunk_rows else max(1, CHUNK_ENTRIES // n_valid)
    positions, cosines = [], []
    for start in range(0, n_valid, chunk):
        stop = min(start + chunk, n_valid)
        sim = (x[start:stop] @ x.t()) * inv[start:stop, None] * inv[None, :]
        index = _topk_ties_to_lower_ids(sim, k_eff)
        positions.append(index)
        cosines.append(sim.gather(1, index))
    rows = valid.repeat_interleave(k_eff)
    cols = valid[torch.cat(positions).reshape(-1)]
    return rows, cols, torch.cat(cosines).reshape(-1)


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
