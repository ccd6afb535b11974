"""Chunked cosine top-k item graphs: the neighbour rule that the dataset's cached k-NN graphs
(recbole_mmssl/data/knn.py) and LATTICE's learned graphs share; it sits below both data/ and model/.

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
"""

import torch

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
