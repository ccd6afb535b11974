"""LightGCN propagation (He et al., SIGIR 2020) over the (U+I) x (U+I) normalised adjacency.

Shared by the LightGCN-backbone peers (SLMRec, BM3, LATTICE, FREEDOM): E^(l+1) = A E^(l), and the
output is the mean of layers 0..L, as LightGCN and these models' public code do. The products go
through ``graph_ops.propagate`` (CSR with autograd), so the adjacency stays sparse.
"""

import torch

from recbole_mmssl.model.common.graph_ops import propagate


def lightgcn_propagate(adjacency, embeddings, n_layers, transform=None):
    """Mean over layers 0..n_layers of E^(l+1) = f(A E^(l)), for a sparse COO ``adjacency``.

    ``adjacency`` is e.g. ``graph_ops.user_item_adjacency`` (users first, then items) and
    ``embeddings`` the (U+I, d) stack in the same order. ``transform`` (default identity) is applied
    to each propagated layer before the next hop: SLMRec's feature-dropout views pass a dropout.
    n_layers = 0 returns ``embeddings`` unchanged.
    """
    if n_layers < 0:
        raise ValueError(f"n_layers must be >= 0, got {n_layers}.")
    if n_layers == 0:
        return embeddings
    layers = [embeddings]
    current = embeddings
    for _ in range(n_layers):
        current = propagate(adjacency, current)
        if transform is not None:
            current = transform(current)
        layers.append(current)
    return torch.stack(layers, dim=0).mean(dim=0)


def split_users_items(embeddings, n_users):
    """(user rows, item rows) of a (U+I, d) stack."""
    return embeddings[:n_users], embeddings[n_users:]
