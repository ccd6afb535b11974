"""Helpers for the critic tests: small random relation-row problems with awkward rows."""

import torch


def rel_err(a, b):
    """max |a - b| relative to max |b| (float32 entries near 0 have no meaningful elementwise error)."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def train_mask(n_rows, n_items, scores, seed=0, density=0.05):
    """Binary (B, I) training mask with a user without items (row 0), a user holding 60% of the items
    (row 1) and a 'heavy' user whose items are his highest-|score| half (row 2), rest ~density."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(n_rows, n_items, generator=gen) < density
    mask[0] = False
    mask[1] = torch.rand(n_items, generator=gen) < 0.6
    top = scores[2].abs().argsort(descending=True)[: n_items // 2]
    mask[2] = False
    mask[2, top] = True
    return mask


def problem(n_rows=12, n_items=96, dim=8, seed=0, grad=True):
    """(user_emb, item_emb, train_rows COO, dense mask) with leaf embeddings."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(n_rows, dim, generator=gen)
    items = torch.randn(n_items, dim, generator=gen)
    mask = train_mask(n_rows, n_items, users @ items.t(), seed=seed + 1)
    train = mask.float().to_sparse().coalesce()
    return users.requires_grad_(grad), items.requires_grad_(grad), train, mask


def grads(tensors):
    out = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out
