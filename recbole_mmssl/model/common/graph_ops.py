"""Sparse user-item graphs shared by the plugin's models: row-normalised COO graphs and their products.

The released MMSSL code's conventions (row-only normalisation with +1e-8) are kept because they change
the numbers (docs/mmssl_spec.md 1.1); other models build their own normalisations from the same pieces.
"""

import warnings

import torch

DEGREE_EPS = 1e-8  # spec 1.1: diag(deg + 1e-8)^-1/2


def _coalesced(rows, cols, values, shape):
    """(indices, values, row sums) of the edge list with duplicates summed: what every normalisation starts from."""
    graph = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values.float(), shape, device=values.device, check_invariants=False
    ).coalesce()
    index, weight = graph.indices(), graph.values()
    return index, weight, torch.zeros(shape[0], device=values.device).index_add_(0, index[0], weight)


def _scaled(index, weight, shape):
    return torch.sparse_coo_tensor(index, weight, shape, is_coalesced=True, check_invariants=False)


def row_normalized(rows, cols, values, shape):
    """Sparse COO D^-1/2 A over the rows only (spec 1.1), duplicates summed first.

    The released code's ``csr_norm(mean_flag=True)``: each row is scaled by 1/sqrt(its own sum of
    values + 1e-8); columns are not scaled and empty rows stay empty.
    """
    index, weight, row_sum = _coalesced(rows, cols, values, shape)
    scale = (row_sum + DEGREE_EPS).pow(-0.5)
    return _scaled(index, weight * scale[index[0]], shape)


def bipartite_graphs(users, items, values, n_users, n_items):
    """(G_ui, G_iu): the user->item and item->user row-normalised graphs of one pair list."""
    g_ui = row_normalized(users, items, values, (n_users, n_items))
    g_iu = row_normalized(items, users, values, (n_items, n_users))
    return g_ui, g_iu


def _csr_pair(graph):
    """CSR copies of a coalesced COO graph and of its transpose, made once per graph object.

    Graphs are never changed in place (a rebuild makes a new tensor), so the copies stay valid.
    """
    pair = getattr(graph, "_csr_pair", None)
    if pair is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            pair = (graph.to_sparse_csr(), graph.t().coalesce().to_sparse_csr())
        graph._csr_pair = pair
    return pair


class _GraphProduct(torch.autograd.Function):
    """graph @ x through CSR, the backward through the transpose's own CSR.

    Why: torch's COO product and its backward (which transposes the graph on every call) were about
    3x and 1.4x slower than CSR products on TikTok's graphs, and MMSSL propagates 24 times per
    iteration. Same sums per row, values unaffected.
    """

    @staticmethod
    def forward(ctx, x, csr, csr_t):
        ctx.graphs = (csr, csr_t)
        return csr @ x

    @staticmethod
    def backward(ctx, grad):
        csr, csr_t = ctx.graphs
        return _GraphProduct.apply(grad.contiguous(), csr_t, csr), None, None


def propagate(graph, x):
    """graph @ x for a COO graph; an empty graph gives exact zeros without a sparse product (spec 5.4)."""
    if graph._nnz() == 0:
        return x.new_zeros(graph.shape[0], x.shape[1])
    return _GraphProduct.apply(x, *_csr_pair(graph))


def symmetric_normalized(rows, cols, values, shape):
    """Sparse COO D_r^-1/2 A D_c^-1/2 (LightGCN's normalisation), duplicates summed first.

    Zero-degree rows and columns stay empty (no division by zero).
    """
    index, weight, row_sum = _coalesced(rows, cols, values, shape)
    col_sum = torch.zeros(shape[1], device=values.device).index_add_(0, index[1], weight)
    row_scale = torch.where(row_sum > 0, row_sum.clamp_min(DEGREE_EPS).pow(-0.5), torch.zeros_like(row_sum))
    col_scale = torch.where(col_sum > 0, col_sum.clamp_min(DEGREE_EPS).pow(-0.5), torch.zeros_like(col_sum))
    return _scaled(index, weight * row_scale[index[0]] * col_scale[index[1]], shape)


def mean_normalized(rows, cols, values, shape):
    """Sparse COO D^-1 A (each row averages its entries), duplicates summed first; empty rows stay empty."""
    index, weight, row_sum = _coalesced(rows, cols, values, shape)
    return _scaled(index, weight / row_sum[index[0]], shape)


def bipartite_edges(users, items, n_users):
    """(rows, cols) of both directions of the user-item edges over the (U+I) nodes (items at U+i)."""
    return torch.cat([users, items + n_users]), torch.cat([items + n_users, users])


def user_item_adjacency(users, items, n_users, n_items, values=None):
    """The (U+I) x (U+I) symmetric-normalised bipartite adjacency of LightGCN-style models.

    Node ids: users 0..U-1, items U..U+I-1. ``values`` (default ones) weight the edges, e.g. after
    FREEDOM's degree-sensitive pruning.
    """
    if values is None:
        values = torch.ones(users.shape[0], device=users.device)
    rows, cols = bipartite_edges(users, items, n_users)
    n = n_users + n_items
    return symmetric_normalized(rows, cols, torch.cat([values, values]), (n, n))
