"""MMSSL's discriminator (critic) with an exact fast first layer (spec 1.2, 1.6 (b)(c), "Speed").

Wei et al., "Multi-Modal Self-Supervised Learning for Recommendation", WWW 2023.

The critic is Linear(I, I/4) -> LeakyReLU -> BN -> Dropout -> Linear(I/4, I/8) -> LeakyReLU -> BN ->
Dropout -> Linear(I/8, 1) -> sigmoid, times 100. Its first layer costs O(N * I^2 / 4) on dense rows
and dominates MMSSL's training on a CPU. With ``fast=True`` it is evaluated from the structured
relation rows (see ``relation_rows``): same maths, same gradients, no N x I block. ``fast=False``
materialises the rows and runs the plain ``nn.Sequential``: the reference.
"""

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from recbole_mmssl.model.mmssl.blas import linear, matmul, raw_mm
from recbole_mmssl.model.common.dropout import IntMaskDropout
from recbole_mmssl.model.mmssl.relation_rows import (
    REAL_ROW_FORMS,
    DenseRows,
    RelationRows,
    cat_rows,
    generated_rows,
    interpolate,
    real_rows,
    repeat_rows,
)

__all__ = [
    "Critic",
    "RelationRows",
    "REAL_ROW_FORMS",
    "generated_rows",
    "real_rows",
    "cat_rows",
    "repeat_rows",
    "interpolate",
    "use_gram_for_penalty",
]

#: Output scale of the released critic (100 * sigmoid).
SCORE_SCALE = 100.0
#: W1 @ V products kept between calls (a D step uses three item factors, a G step two).
_MAX_PRODUCTS = 8


def use_gram_for_penalty(n_rows: int, hidden: int, n_items: int) -> bool:
    """Whether ||W1^T g|| for the penalty is cheaper through the Gram W1 W1^T than densely.

    Multiply-adds with backward: dense g @ W1 is 3 N H I (product, and its two gradients); the Gram
    route (``_GramQuadratic``) is 2 H^2 I (Gram, and its gradient 2 dG W1) + 2 N H^2 (g G and dG).
    TikTok (N 2048, H 1677, I 6710) and Baby favour the Gram (~0.7x); Sports (H 4589) the dense one.
    """
    return 2 * hidden * hidden * n_items + 2 * n_rows * hidden * hidden < 3 * n_rows * hidden * n_items


def _syrk_available(t: Tensor) -> bool:
    """Whether numpy can take a symmetric product of ``t`` (CPU float32): numpy's matmul turns
    ``a.T @ a`` into a symmetric rank-k update (half a GEMM), which torch does not have."""
    return t.device.type == "cpu" and t.dtype == torch.float32


def _symmetric_blocks(left: Tensor, right: Tensor, blocks: int = 4) -> Tensor:
    """left^T @ right for a product known to be symmetric, from its upper block triangle.

    (blocks + 1) / (2 blocks) of the multiply-adds of one GEMM (5/8 for 4 blocks); the lower
    blocks are transposed copies. The torch route (GPU) of ``_gram`` and ``_weighted_gram``.
    """
    size = left.shape[1]
    if size < 512:
        return left.t() @ right
    edges = [round(i * size / blocks) for i in range(blocks + 1)]
    out = left.new_empty(size, size)
    for a in range(blocks):
        rows = slice(edges[a], edges[a + 1])
        for b in range(a, blocks):
            cols = slice(edges[b], edges[b + 1])
            block = left[:, rows].t() @ right[:, cols]
            out[rows, cols] = block
            if b > a:
                out[cols, rows] = block.t()
    return out


def _gram(left: Tensor) -> Tensor:
    """left^T left: on a CPU by numpy's symmetric rank-k update whatever the critic's BLAS
    backend (0.30 s for TikTok's W1 W1^T on one core, against 0.37-0.68 s for torch's blocks),
    else the symmetric blocks."""
    if _syrk_available(left):
        return raw_mm(left.t(), left, "numpy")
    return _symmetric_blocks(left, left)


def _weighted_gram(g: Tensor, weights: Tensor) -> Tensor:
    """g^T diag(weights) g (H x H) for the penalty's weight gradient.

    On a CPU as A^T A - B^T B with A, B the rows of positive and negative weight scaled by
    sqrt(|weight|): two symmetric rank-k updates (``_gram``), together half of one g^T (w g)
    product (96 against 166 ms for TikTok's 2048 x 1677 on one core). Elsewhere the symmetric blocks.
    """
    if not _syrk_available(g):
        return _symmetric_blocks(g, weights[:, None] * g)
    out = g.new_zeros(g.shape[1], g.shape[1])
    for sign in (1.0, -1.0):
        rows = torch.nonzero(sign * weights > 0).flatten()
        if rows.numel():
            out.add_(_gram(g[rows] * (sign * weights[rows]).sqrt()[:, None]), alpha=sign)
    return out


class _GramQuadratic(torch.autograd.Function):
    """q_n = ||W g_n||^2 = g_n^T (W W^T) g_n for W = weight_t^T (I x H given), with the gradients
    2 q' (g G) (reusing the forward's g G) and 2 W (g^T diag(q') g): one I x H^2 product each way
    (the forward's a symmetric rank-k update on a CPU, half of it)."""

    @staticmethod
    def forward(ctx, g, weight_t, backend="torch"):
        projected = raw_mm(g, _gram(weight_t), backend)
        ctx.save_for_backward(g, weight_t, projected)
        ctx.backend = backend
        return (projected * g).sum(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        g, weight_t, projected = ctx.saved_tensors
        grad_g = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_g = 2.0 * grad[:, None] * projected
        if ctx.needs_input_grad[1]:
            grad_w = raw_mm(weight_t, _weighted_gram(g, 2.0 * grad), ctx.backend)
        return grad_g, grad_w, None


def _safe_sqrt(q: Tensor) -> Tensor:
    """sqrt with gradient 0 at 0 (the subgradient torch's vector norm uses), never inf/NaN."""
    positive = q > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, q, torch.ones_like(q))), torch.zeros_like(q))


class Critic(nn.Module):
    """MMSSL discriminator D: relation rows (N x I) -> scores in [0, 100], shape (N,).

    Args:
        n_items: I, the number of real items (padding excluded).
        slope: LeakyReLU negative slope; 1.0 is the released ``nn.LeakyReLU(True)`` (identity),
            0.2 the paper variant.
        drop1, drop2: dropout after the first and second hidden layer (G_drop1, G_drop2).
        fast: evaluate the first layer from the row factors (exact) instead of dense rows.
        gp_method: "auto" (cost rule ``use_gram_for_penalty``), "gram" or "dense": how the fast
            path forms ||W1^T g|| in the gradient penalty. Same value either way.
        matmul: "torch" or "numpy": which BLAS multiplies the critic's products on a CPU
            (``recbole_mmssl.model.mmssl.blas``; resolve "auto" with ``blas.resolve_backend``). Both paths.
    """

    def __init__(self, n_items, slope=1.0, drop1=0.31, drop2=0.5, fast=True, gp_method="auto", matmul="torch"):
        super().__init__()
        hidden1, hidden2 = n_items // 4, n_items // 8
        if hidden2 < 1:
            raise ValueError(f"Critic needs at least 8 items (widths I/4, I/8), got n_items={n_items}.")
        if gp_method not in ("auto", "gram", "dense"):
            raise ValueError(f"gp_method must be 'auto', 'gram' or 'dense', got {gp_method!r}.")
        if matmul not in ("torch", "numpy"):
            raise ValueError(f"Critic matmul must be 'torch' or 'numpy' (resolve 'auto' first), got {matmul!r}.")
        self.n_items, self.fast, self.gp_method, self.backend = n_items, fast, gp_method, matmul
        self.net = nn.Sequential(
            nn.Linear(n_items, hidden1),
            nn.LeakyReLU(slope),
            nn.BatchNorm1d(hidden1),
            IntMaskDropout(drop1),
            nn.Linear(hidden1, hidden2),
            nn.LeakyReLU(slope),
            nn.BatchNorm1d(hidden2),
            IntMaskDropout(drop2),
            nn.Linear(hidden2, 1),
            nn.Sigmoid(),
        )
        # W1 is stored item-major (an (I, H) buffer seen as the usual (H, I) weight): the sparse
        # entries of the fast path read and write whole rows of W1^T. Values are unaffected.
        first = self.net[0]
        first.weight = nn.Parameter(first.weight.detach().t().contiguous().t())
        for module in self.net:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)
        self._products = {}  # W1 @ V per item factor V, reused while W1 and V are unchanged

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_products"] = {}
        return state

    @property
    def first(self) -> nn.Linear:
        return self.net[0]

    def _check(self, rows):
        width = rows.n_items if isinstance(rows, RelationRows) else rows.shape[-1]
        if width != self.n_items:
            raise ValueError(
                f"Critic built for {self.n_items} items got rows over {width} items; relation rows "
                "must span the real items only (padding item 0 removed)."
            )

    def _uses_fast(self, rows) -> bool:
        return self.fast and isinstance(rows, RelationRows) and not isinstance(rows, DenseRows)

    def _head(self, h1: Tensor) -> Tensor:
        """Everything after the first Linear: (N, H) pre-activations -> (N,) scores."""
        out = h1
        for module in list(self.net)[1:]:
            out = linear(out, module, self.backend) if isinstance(module, nn.Linear) else module(out)
        return out.squeeze(-1) * SCORE_SCALE

    def _first_layer(self, rows: RelationRows) -> Tensor:
        while len(self._products) > _MAX_PRODUCTS:
            self._products.pop(next(iter(self._products)))
        return rows.linear(self.first.weight, cache=self._products, backend=self.backend) + self.first.bias

    def forward(self, rows) -> Tensor:
        """Scores (N,) for RelationRows or a dense (N, I) tensor."""
        self._check(rows)
        if self._uses_fast(rows):
            return self._head(self._first_layer(rows))
        dense = rows.to_dense() if isinstance(rows, RelationRows) else rows
        return self._head(linear(dense, self.first, self.backend))

    def input_grad_norms(self, g: Tensor) -> Tensor:
        """||W1^T g_n|| per row: the norm of dD/dx_n given g = dD/dh1 (N, H)."""
        weight = self.first.weight
        gram = self.gp_method == "gram" or (
            self.gp_method == "auto" and use_gram_for_penalty(g.shape[0], weight.shape[0], weight.shape[1])
        )
        if gram:
            return _safe_sqrt(_GramQuadratic.apply(g, weight.t(), self.backend))
        return matmul(g, weight, self.backend).norm(2, dim=1)

    def gradient_penalty(self, rows) -> Tensor:
        """mean_n (||grad_x D(x_n)||_2 - 1)^2 with the graph kept for the double backward.

        Runs the critic forward on ``rows`` (train-mode BN statistics and dropout as any call). The
        0.3 * gp_rate factor is the caller's. dD/dx_n = W1^T dD/dh1_n whatever the rows' structure,
        so the fast path differentiates only up to h1.
        """
        self._check(rows)
        if self._uses_fast(rows):
            h1 = self._first_layer(rows)
            if not h1.requires_grad:
                h1 = h1.detach().requires_grad_(True)
            g = torch.autograd.grad(self._head(h1).sum(), h1, create_graph=True)[0]
            norms = self.input_grad_norms(g)
        else:
            x = rows.to_dense() if isinstance(rows, RelationRows) else rows
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            scores = self._head(linear(x, self.first, self.backend))
            norms = torch.autograd.grad(scores.sum(), x, create_graph=True)[0].norm(2, dim=1)
        return (norms - 1).pow(2).mean()
