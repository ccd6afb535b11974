"""Graph maths on k-NN item-item edge lists (LATTICE, FREEDOM): the authors' degree normalisation,
sparse tensors, differentiable products and cosines.

The graphs of the raw features come from the dataset (``MultimodalDataset.modality_knn``, built and
cached by :mod:`recbole_mmssl.data.knn`); models never read or write files.
"""

import torch

from recbole_mmssl.cosine_knn import inverse_norms


def pair_cosine(features, rows, cols):
    """cos(features[rows], features[cols]) per edge, differentiable (LATTICE's learned graph values).

    The top-k is chosen without gradient by :func:`recbole_mmssl.cosine_knn.cosine_topk`; only the I x k chosen pairs are
    recomputed here, so the backward pass never holds an I x I matrix.
    """
    inv = inverse_norms(features)
    return (features[rows] * features[cols]).sum(dim=1) * inv[rows] * inv[cols]


def row_degree_normalized(rows, cols, values, n):
    """Values of D^-1/2 S D^-1/2 with D the row sums of S, as both authors normalise a k-NN graph.

    Duplicate (row, col) entries count as their sum. A row whose sum is not positive gets scale 0
    (its edges and the edges into it vanish) instead of the authors' inf/NaN.
    """
    degree = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, rows, values)
    scale = torch.where(degree > 0, degree.clamp_min(torch.finfo(values.dtype).tiny).rsqrt(), torch.zeros_like(degree))
    return values * scale[rows] * scale[cols]


def sparse_graph(rows, cols, values, n):
    """Coalesced n x n COO tensor of an edge list (duplicates summed), for ``graph_ops.propagate``."""
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce()


def edge_product(rows, cols, values, x):
    """S @ x for an edge list, differentiable in ``values`` and ``x`` (graph_ops.propagate is not in the values)."""
    return torch.zeros(x.shape[0], x.shape[1], dtype=x.dtype, device=x.device).index_add(
        0, rows, values.unsqueeze(1) * x[cols]
    )
