"""Losses several models share: BPR, L2 terms, InfoNCE (formulas of docs/mmssl_spec.md 1.6).

The released code's conventions (F.normalize's 1e-12, the 1e-8 inside the InfoNCE log) are kept.
"""

import torch
import torch.nn.functional as F


def bpr_loss(user, pos, neg):
    """-mean log sigmoid(<u,p> - <u,n>) (spec 1.6d)."""
    return -F.logsigmoid((user * pos).sum(-1) - (user * neg).sum(-1)).mean()


def half_squared_norm(*tensors):
    """sum of 1/2 ||x||^2 over the tensors (the L2 terms of spec 1.6e and 1.6f)."""
    return sum(0.5 * t.pow(2).sum() for t in tensors)


def info_nce(z1, z2, tau):
    """One-directional GRACE-style InfoNCE of spec 1.6g, with the 1e-8 inside the log.

    Negatives are all other rows of both views; a zero vector has cosine 0 with everything, so an
    all-zero z1 gives exactly log(2B - 1) and no gradient.
    """
    z1n, z2n = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    refl = torch.exp(z1n @ z1n.t() / tau)
    between = torch.exp(z1n @ z2n.t() / tau)
    ratio = between.diagonal() / (refl.sum(1) + between.sum(1) - refl.diagonal())
    return -torch.log(ratio + 1e-8).mean()
