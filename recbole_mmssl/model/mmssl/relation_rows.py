"""MMSSL relation rows (spec 1.4, 1.6 (a)) in an exact structured form.

Why: the critic's first layer (I -> I/4) dominates MMSSL on a CPU. Every row the critic sees is a
masked low-rank product (generated rows), a value-sparse Gumbel softmax plus such a product (the
``tempered`` real rows; the ``released`` ones are dense and stay a dense block), or a row-wise linear combination of those (concatenation, repetition, interpolation). So the
product X @ W1^T can be formed from the factors without ever materialising the N x I block
(spec "Speed"). ``to_dense()`` always evaluates the literal formula and is the reference.

All rows are over the I real items (RecBole's padding item 0 removed: column j <-> internal id j+1).
"""

import functools
import math
import warnings
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from recbole_mmssl.model.mmssl.blas import raw_mm

#: F.normalize's eps: a row is divided by max(||row||, NORM_EPS).
NORM_EPS = 1e-12
#: Rows whose masked (training-item) squared mass exceeds this share of the unmasked squared mass
#: are formed densely: the low-rank-minus-sparse difference would lose up to
#: sqrt(1 / (1 - share)) of float32 precision there (a 2x loss at 0.75).
HEAVY_SHARE = 0.75
#: Bounds of the released Gumbel noise g = -log(-log(U + 1e-8) + 1e-8) for U in [0, 1) (float32
#: torch.rand never returns 1): g in [-log(-log(1e-8) + 1e-8), -log(1e-8)] = [-2.9135, 18.4207],
#: widened by a margin for float32 rounding.
GUMBEL_MIN, GUMBEL_MAX = -3.0, 18.5
#: float32 unit roundoff: mass below this share of a row cannot change its float32 values.
FLOAT32_RESOLUTION = 2.0**-24


def _check_train_rows(train_rows, n_rows, n_items):
    """Validate the batch users' training rows (binary sparse COO, (n_rows, n_items)) and coalesce."""
    if not isinstance(train_rows, Tensor) or train_rows.layout != torch.sparse_coo:
        raise TypeError(
            "train_rows must be a torch sparse COO tensor (the batch users' training items, shape "
            f"(B, I)); got {type(train_rows).__name__} with layout "
            f"{getattr(train_rows, 'layout', None)}. Build it with torch.sparse_coo_tensor(...).coalesce()."
        )
    if tuple(train_rows.shape) != (n_rows, n_items):
        raise ValueError(
            f"train_rows has shape {tuple(train_rows.shape)} but the rows need ({n_rows}, {n_items}) "
            "(batch users x real items, padding item 0 removed)."
        )
    train_rows = train_rows.coalesce()
    if train_rows._nnz() and not bool((train_rows.values() == 1).all()):
        raise ValueError(
            "train_rows must hold ones at the training pairs (binary R); found other values. "
            "Build it from the interaction pattern with float32 ones."
        )
    return train_rows


class Terms:
    """Rows as placed pieces: X = sum of low-rank blocks U V^T, sparse entries and dense rows.

    Every piece names the output rows it adds to, so concatenation shifts row ids and a row-wise
    scale multiplies U rows, entry values or dense rows: linear combinations stay exact and cheap.
    """

    def __init__(self, low_rank=(), sparse=(), dense=()):
        self.low_rank = list(low_rank)  # (rows (n,), U (n, d), V (I, d))
        self.sparse = list(sparse)  # (rows (nnz,), cols (nnz,), vals (nnz,))
        self.dense = list(dense)  # (rows (n,), values (n, I))

    def __add__(self, other):
        return Terms(self.low_rank + other.low_rank, self.sparse + other.sparse, self.dense + other.dense)

    def shifted(self, offset):
        return Terms(
            [(r + offset, u, v) for r, u, v in self.low_rank],
            [(r + offset, c, x) for r, c, x in self.sparse],
            [(r + offset, x) for r, x in self.dense],
        )

    def scaled(self, coef):
        """Multiply output row n by coef[n]."""
        return Terms(
            [(r, u * coef[r, None], v) for r, u, v in self.low_rank],
            [(r, c, x * coef[r]) for r, c, x in self.sparse],
            [(r, x * coef[r, None]) for r, x in self.dense],
        )


def _weight_times(weight, factor, cache, backend="torch"):
    """W @ V (H x d), a constant of the forward, reused while W and V are unchanged.

    The cache holds the tensors themselves (identity, not addresses) and their versions, so an
    in-place update of W (an optimiser step) or of V invalidates the entry.
    """
    key = ("wv", id(weight), id(factor))
    stamp = (weight._version, factor._version)
    if cache is not None and key in cache:
        held_w, held_v, held_stamp, product = cache[key]
        if held_w is weight and held_v is factor and held_stamp == stamp:
            return product
    with torch.no_grad():
        product = raw_mm(weight, factor, backend)
    if cache is not None:
        cache[key] = (weight, factor, stamp, product)
    return product


class _StructuredLinear(torch.autograd.Function):
    """X @ W^T from placed pieces with hand-written gradients: one (I x H) weight-gradient buffer.

    Inputs: weight_t = W^T (I x H, contiguous: the critic stores W item-major), users (N x K) with
    the placed U blocks side by side, items (I x K) the matching V blocks, wv = W @ items (constant),
    vals at the row-sorted sparse entries (rows, cols), dense (n x I) rows placed at dense_rows.
    Sparse products go through CSR kernels (SpMM, SDDMM): no nnz x H temporaries.
    """

    @staticmethod
    def forward(ctx, weight_t, users, items, vals, dense, wv, rows, cols, dense_rows, backend):
        n_rows, n_items = users.shape[0], weight_t.shape[0]
        out = raw_mm(users, wv.t(), backend)
        if vals.numel():
            out.addmm_(_csr(rows, cols, vals, n_rows, n_items), weight_t)
        if dense.numel():
            out.index_add_(0, dense_rows, raw_mm(dense, weight_t, backend))
        ctx.save_for_backward(weight_t, users, items, vals, dense, wv, rows, cols, dense_rows)
        ctx.backend = backend
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        weight_t, users, items, vals, dense, wv, rows, cols, dense_rows = ctx.saved_tensors
        mm = functools.partial(raw_mm, backend=ctx.backend)
        need_w, need_u, need_v, need_vals, need_dense = ctx.needs_input_grad[:5]
        n_rows, n_items = users.shape[0], weight_t.shape[0]
        grad = grad.contiguous()
        g_w = g_u = g_v = g_vals = g_dense = None
        if need_w or need_v:
            d_wv = mm(grad.t(), users)  # H x K
        if need_w:
            g_w = mm(items, d_wv.t())  # I x H
            if vals.numel():
                order = torch.argsort(cols * n_rows + rows)
                g_w.addmm_(_csr(cols[order], rows[order], vals[order], n_items, n_rows), grad)
            if dense.numel():
                g_w += mm(dense.t(), grad[dense_rows])
        if need_u:
            g_u = mm(grad, wv)
        if need_v:
            g_v = mm(weight_t, d_wv)
        if need_vals:
            if vals.numel():
                pattern = _csr(rows, cols, torch.ones_like(vals), n_rows, n_items)
                g_vals = torch.sparse.sampled_addmm(pattern, grad, weight_t.t(), beta=0.0).values()
            else:
                g_vals = torch.zeros_like(vals)
        if need_dense:
            g_dense = mm(grad[dense_rows], weight_t.t())
        return g_w, g_u, g_v, g_vals, g_dense, None, None, None, None, None


def _csr(rows, cols, vals, n_rows, n_cols):
    """CSR matrix from entries sorted by (row, col)."""
    counts = torch.bincount(rows, minlength=n_rows)
    crow = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, vals, (n_rows, n_cols), check_invariants=False)


def structured_linear(terms: Terms, n_rows: int, n_items: int, weight: Tensor, cache=None,
                      backend: str = "torch") -> Tensor:
    """X @ W^T (N x H) for the rows ``terms`` describe.

    Low-rank pieces sharing a V become one block (V once in W @ V); sparse entries are merged per
    (row, item) into one CSR product; dense rows into one GEMM. Fastest when W is stored
    item-major (W.t() contiguous), as the Critic keeps it; otherwise W^T is copied once per call.
    """
    weight_t = weight.t() if weight.t().is_contiguous() else weight.t().contiguous()
    dtype, device = weight_t.dtype, weight_t.device
    blocks = {}  # one column block per distinct item factor V: (V, [rows], [U])
    for rows, users, items in terms.low_rank:
        held = blocks.setdefault(id(items), (items, [], []))
        held[1].append(rows)
        held[2].append(users)
    placed = []
    for items, rows, users in blocks.values():
        users = torch.cat(users)
        placed.append(users.new_zeros(n_rows, users.shape[1]).index_add(0, torch.cat(rows), users))
    blocks = {key: (items, block) for (key, (items, _, _)), block in zip(blocks.items(), placed)}
    if blocks:
        items_cat = torch.cat([v for v, _ in blocks.values()], dim=1)
        users_cat = torch.cat([u for _, u in blocks.values()], dim=1)
        wv = torch.cat([_weight_times(weight, v, cache, backend) for v, _ in blocks.values()], dim=1)
    else:
        items_cat = weight_t.new_zeros(n_items, 0)
        users_cat = weight_t.new_zeros(n_rows, 0)
        wv = weight_t.new_zeros(weight_t.shape[1], 0)
    if terms.sparse:
        keys = torch.cat([r * n_items + c for r, c, _ in terms.sparse])
        merged, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        raw = torch.cat([x.to(dtype) for _, _, x in terms.sparse])
        vals = raw.new_zeros(merged.numel()).index_add(0, inverse, raw)
        rows, cols = merged // n_items, merged % n_items
    else:
        vals = weight_t.new_zeros(0)
        rows = cols = torch.zeros(0, dtype=torch.long, device=device)
    if terms.dense:
        dense_rows = torch.cat([r for r, _ in terms.dense])
        dense = torch.cat([x for _, x in terms.dense])
    else:
        dense_rows = torch.zeros(0, dtype=torch.long, device=device)
        dense = weight_t.new_zeros(0, n_items)
    return _StructuredLinear.apply(weight_t, users_cat, items_cat, vals, dense, wv, rows, cols, dense_rows, backend)


class RelationRows(ABC):
    """N rows over I items, stored by their factors; ``to_dense`` gives the literal N x I block."""

    n_rows: int
    n_items: int

    @abstractmethod
    def to_dense(self) -> Tensor:
        """The (N, I) block by the literal formula (differentiable): the reference path."""

    @abstractmethod
    def terms(self) -> Terms:
        """The rows as placed low-rank, sparse and dense pieces (exact; differentiable)."""

    @abstractmethod
    def detach(self) -> "RelationRows":
        """The same rows cut from the autograd graph."""

    def linear(self, weight: Tensor, cache: dict | None = None, backend: str = "torch") -> Tensor:
        """Exact X @ weight.T, (N, H), without the N x I block; ``cache`` keeps weight @ V products;
        ``backend`` is the BLAS of ``recbole_mmssl.model.mmssl.blas``."""
        return structured_linear(self.terms(), self.n_rows, self.n_items, weight, cache, backend)

    def sq_norms(self) -> Tensor:
        """Squared L2 norm of each row (N,). Generic form through the dense block."""
        return self.to_dense().pow(2).sum(1)

    def values_at(self, rows: Tensor, cols: Tensor) -> Tensor:
        """Entries X[rows, cols]. Generic form through the dense block."""
        return self.to_dense()[rows, cols]


def _all_rows(n_rows, device):
    return torch.arange(n_rows, device=device)


class DenseRows(RelationRows):
    """Rows held as a plain (N, I) tensor (e.g. the dense fallback of the real rows)."""

    def __init__(self, values: Tensor):
        if values.dim() != 2:
            raise ValueError(f"DenseRows needs a 2-d (N, I) tensor, got shape {tuple(values.shape)}.")
        self.values = values
        self.n_rows, self.n_items = values.shape

    def to_dense(self):
        return self.values

    def terms(self):
        return Terms(dense=[(_all_rows(self.n_rows, self.values.device), self.values)])

    def detach(self):
        return DenseRows(self.values.detach())

    def sq_norms(self):
        return self.values.pow(2).sum(1)

    def values_at(self, rows, cols):
        return self.values[rows, cols]


class GeneratedRows(RelationRows):
    """S = norm((P_u P_i^T) * (1 - R)) (spec 1.4): a low-rank product minus its training entries.

    X W^T = diag(1/||row||) (P_u (W P_i)^T - Sp W^T) with Sp the scores at the training entries.
    The row norms come from the d x d Gram P_i^T P_i minus the masked squares, in float64 because
    that difference cancels when the training items carry most of a row's mass. Rows where the
    masked share passes HEAVY_SHARE are formed densely (one 1 x I row each).
    """

    def __init__(self, user_emb: Tensor, item_emb: Tensor, train_rows: Tensor):
        if user_emb.dim() != 2 or item_emb.dim() != 2 or user_emb.shape[1] != item_emb.shape[1]:
            raise ValueError(
                f"generated_rows needs user_emb (B, d) and item_emb (I, d); got {tuple(user_emb.shape)} "
                f"and {tuple(item_emb.shape)}."
            )
        self.user_emb, self.item_emb = user_emb, item_emb
        self.n_rows, self.n_items = user_emb.shape[0], item_emb.shape[0]
        self.train_rows = _check_train_rows(train_rows, self.n_rows, self.n_items)
        self.rows, self.cols = self.train_rows.indices()
        users64, items64 = user_emb.double(), item_emb.double()
        dots64 = (users64[self.rows] * items64[self.cols]).sum(1)
        full = ((users64 @ (items64.t() @ items64)) * users64).sum(1)
        masked = full.new_zeros(self.n_rows).index_add(0, self.rows, dots64.pow(2))
        sq = (full - masked).clamp_min(0.0)
        # sqrt(max(sq, eps^2)) = max(||row||, eps) with F.normalize's zero gradient below eps.
        norm = sq.clamp_min(NORM_EPS**2).sqrt()
        self.dots = dots64.to(user_emb.dtype)
        self.inv_norm = (1.0 / norm).to(user_emb.dtype)
        self._sq_norms = (sq / norm.pow(2)).to(user_emb.dtype)
        self.heavy = (masked.detach() > HEAVY_SHARE * full.detach())

    def to_dense(self):
        mask = 1.0 - self.train_rows.to_dense()
        return F.normalize((self.user_emb @ self.item_emb.t()) * mask, dim=1)

    def masked_scores(self) -> Tensor:
        """(P_u P_i^T) * (1 - R) without the row scaling: the same order within every row as
        ``to_dense`` (the scale is positive), at one GEMM and a sparse write. For top-k only."""
        scores = self.user_emb @ self.item_emb.t()
        scores[self.rows, self.cols] = 0.0
        return scores

    def _dense_subset(self, subset):
        """Literal rows for a few row ids (the heavy rows), scaled by the shared norms."""
        position = torch.full((self.n_rows,), -1, dtype=torch.long, device=subset.device)
        position[subset] = torch.arange(subset.numel(), device=subset.device)
        keep = torch.ones(subset.numel(), self.n_items, dtype=self.user_emb.dtype, device=subset.device)
        hit = position[self.rows] >= 0
        keep[position[self.rows[hit]], self.cols[hit]] = 0.0
        scores = self.user_emb[subset] @ self.item_emb.t()
        return scores * keep * self.inv_norm[subset, None]

    def terms(self):
        light = torch.nonzero(~self.heavy).flatten()
        heavy = torch.nonzero(self.heavy).flatten()
        entries = ~self.heavy[self.rows]
        rows, cols = self.rows[entries], self.cols[entries]
        terms = Terms(
            low_rank=[(light, self.user_emb[light] * self.inv_norm[light, None], self.item_emb)],
            sparse=[(rows, cols, -self.dots[entries] * self.inv_norm[rows])],
        )
        if heavy.numel():
            terms.dense.append((heavy, self._dense_subset(heavy)))
        return terms

    def detach(self):
        twin = object.__new__(GeneratedRows)
        twin.__dict__.update(
            {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        )
        return twin

    def sq_norms(self):
        return self._sq_norms

    def values_at(self, rows, cols):
        keys = self.rows * self.n_items + self.cols
        query = rows * self.n_items + cols
        where = torch.searchsorted(keys, query).clamp_max(max(keys.numel() - 1, 0))
        is_train = (keys[where] == query) if keys.numel() else torch.zeros_like(query, dtype=torch.bool)
        scores = (self.user_emb[rows] * self.item_emb[cols]).sum(1) * self.inv_norm[rows]
        return scores.masked_fill(is_train, 0.0)


class RealRows(RelationRows):
    """X_r = norm(A + kappa * S_f) (spec 1.6 (a)) with A the value-sparse Gumbel softmax.

    A's entries lie on the training items (all items for a user without training items), where
    S_f is exactly 0, so the norm needs no N x I work; X W^T = (A W^T + kappa S_f W^T) / ||row||.
    """

    def __init__(self, rows, cols, soft, fused: RelationRows, kappa: float):
        self.rows, self.cols, self.soft = rows, cols, soft
        self.fused, self.kappa = fused, float(kappa)
        self.n_rows, self.n_items = fused.n_rows, fused.n_items
        soft64 = soft.double()
        sq = soft64.new_zeros(self.n_rows).index_add(0, rows, soft64.pow(2))
        cross = soft64.new_zeros(self.n_rows).index_add(0, rows, soft64 * fused.values_at(rows, cols).double())
        sq = (sq + self.kappa**2 * fused.sq_norms().double() + 2.0 * self.kappa * cross).clamp_min(0.0)
        norm = sq.clamp_min(NORM_EPS**2).sqrt()
        self.inv_norm = (1.0 / norm).to(soft.dtype)
        self._sq_norms = (sq / norm.pow(2)).to(soft.dtype)

    def _soft_dense(self):
        dense = self.soft.new_zeros(self.n_rows, self.n_items)
        return dense.index_put((self.rows, self.cols), self.soft)

    def to_dense(self):
        return F.normalize(self._soft_dense() + self.kappa * self.fused.to_dense(), dim=1)

    def terms(self):
        soft = Terms(sparse=[(self.rows, self.cols, self.soft * self.inv_norm[self.rows])])
        return soft + self.fused.terms().scaled(self.kappa * self.inv_norm)

    def detach(self):
        return self  # built without gradient

    def sq_norms(self):
        return self._sq_norms


class CatRows(RelationRows):
    """[X_1; X_2; ...]: row concatenation."""

    def __init__(self, parts):
        if not parts:
            raise ValueError("cat_rows needs at least one RelationRows.")
        widths = {p.n_items for p in parts}
        if len(widths) != 1:
            raise ValueError(f"cat_rows: all parts must have the same number of items, got {sorted(widths)}.")
        self.parts = list(parts)
        self.n_items = widths.pop()
        self.n_rows = sum(p.n_rows for p in parts)

    def to_dense(self):
        return torch.cat([p.to_dense() for p in self.parts])

    def terms(self):
        terms, offset = Terms(), 0
        for part in self.parts:
            terms = terms + part.terms().shifted(offset)
            offset += part.n_rows
        return terms

    def detach(self):
        return CatRows([p.detach() for p in self.parts])

    def sq_norms(self):
        return torch.cat([p.sq_norms() for p in self.parts])


class RepeatRows(RelationRows):
    """[X; X; ...] (times copies)."""

    def __init__(self, base: RelationRows, times: int):
        if int(times) < 1:
            raise ValueError(f"repeat_rows needs times >= 1, got {times}.")
        self.base, self.times = base, int(times)
        self.n_rows, self.n_items = base.n_rows * self.times, base.n_items

    def to_dense(self):
        return self.base.to_dense().repeat(self.times, 1)

    def terms(self):
        base, terms = self.base.terms(), Terms()
        for copy in range(self.times):
            terms = terms + base.shifted(copy * self.base.n_rows)
        return terms

    def linear(self, weight, cache=None, backend="torch"):
        return self.base.linear(weight, cache, backend).repeat(self.times, 1)

    def detach(self):
        return RepeatRows(self.base.detach(), self.times)

    def sq_norms(self):
        return self.base.sq_norms().repeat(self.times)


class InterpolatedRows(RelationRows):
    """alpha * real + (1 - alpha) * fake, row-wise alpha (N, 1): the WGAN-GP interpolates."""

    def __init__(self, real: RelationRows, fake: RelationRows, alpha: Tensor):
        if (real.n_rows, real.n_items) != (fake.n_rows, fake.n_items):
            raise ValueError(
                f"interpolate: real rows are {real.n_rows} x {real.n_items} but fake rows are "
                f"{fake.n_rows} x {fake.n_items}; repeat the real rows to match (repeat_rows)."
            )
        if tuple(alpha.shape) != (real.n_rows, 1):
            raise ValueError(f"interpolate: alpha must have shape ({real.n_rows}, 1), got {tuple(alpha.shape)}.")
        self.real, self.fake, self.alpha = real, fake, alpha
        self.n_rows, self.n_items = real.n_rows, real.n_items

    def to_dense(self):
        return self.alpha * self.real.to_dense() + (1 - self.alpha) * self.fake.to_dense()

    def terms(self):
        alpha = self.alpha[:, 0]
        return self.real.terms().scaled(alpha) + self.fake.terms().scaled(1 - alpha)

    def detach(self):
        return InterpolatedRows(self.real.detach(), self.fake.detach(), self.alpha.detach())


def generated_rows(user_emb: Tensor, item_emb: Tensor, train_rows: Tensor) -> RelationRows:
    """S = norm((user_emb @ item_emb.T) * (1 - R)) for the batch users (spec 1.4); gradients flow."""
    return GeneratedRows(user_emb, item_emb, train_rows)


def gumbel_noise(shape, generator=None, device=None) -> Tensor:
    """Released Gumbel noise g = -log(-log(U + 1e-8) + 1e-8), U ~ Unif[0, 1) (float32)."""
    uniform = torch.rand(shape, generator=generator, device=device)
    return -torch.log(-torch.log(uniform + 1e-8) + 1e-8)


def sparse_softmax_is_exact(n_items: int, tau_r: float, eps: float) -> bool:
    """Whether softmax((R + eps*g)/tau_r) is its training-item part to float32 resolution.

    A non-training logit trails every training logit of its row by at least
    (1 - eps*(GUMBEL_MAX - GUMBEL_MIN)) / tau_r, so all non-training entries together hold less than
    I * exp(-(1 - eps*(g_max - g_min)) / tau_r) of the row's mass. Below float32's unit roundoff
    (2^-24) dropping them and renormalising moves no entry by more than rounding does.
    Shipped tau_r (0.002 - 0.02), eps = 1e-5: I up to ~1e16 passes; tau_r >~ 0.04 at I = 6710 fails.
    """
    gap = 1.0 - eps * (GUMBEL_MAX - GUMBEL_MIN)
    if gap <= 0:
        return False
    return math.log(max(n_items, 1)) - gap / tau_r < math.log(FLOAT32_RESOLUTION)


def softmax_positions(train_rows: Tensor, n_items: int):
    """Row-sorted entries that carry the sparse softmax: each user's training items, and every item
    for a user with none (there the softmax of pure noise is dense). Returns (rows, cols, is_train)."""
    rows, cols = train_rows.indices()
    n_rows = train_rows.shape[0]
    degree = torch.bincount(rows, minlength=n_rows)
    empty = torch.nonzero(degree == 0).flatten()
    if empty.numel() == 0:
        return rows, cols, torch.ones_like(rows, dtype=torch.bool)
    all_items = torch.arange(n_items, device=rows.device)
    rows = torch.cat([rows, empty.repeat_interleave(n_items)])
    cols = torch.cat([cols, all_items.repeat(empty.numel())])
    is_train = torch.cat([
        torch.ones(train_rows._nnz(), dtype=torch.bool, device=rows.device),
        torch.zeros(empty.numel() * n_items, dtype=torch.bool, device=rows.device),
    ])
    order = torch.argsort(rows * n_items + cols)
    return rows[order], cols[order], is_train[order]


def segment_softmax(logits: Tensor, rows: Tensor, n_rows: int) -> Tensor:
    """Softmax of each row's entries (max-subtracted like torch.softmax)."""
    top = logits.new_full((n_rows,), -math.inf).scatter_reduce(0, rows, logits, "amax", include_self=True)
    expo = torch.exp(logits - top[rows])
    total = expo.new_zeros(n_rows).index_add(0, rows, expo)
    return expo / total[rows]


#: Forms of the Gumbel-perturbed "real" rows (spec 1.6 (a)); the ``real_rows`` config key.
REAL_ROW_FORMS = ("released", "tempered")


def real_rows(train_rows: Tensor, fused: RelationRows, tau_r: float, eps: float, kappa: float,
              generator=None, form: str = "tempered") -> RelationRows:
    """X_r = norm(A + kappa * S_f) with A the Gumbel-perturbed training rows (spec 1.6 (a)), detached.

    ``form`` chooses A:

    - ``released``: A = softmax_row(R + (eps / tau_r) * g), the released code's line as Python's
      precedence evaluates it (main.py:350): R at temperature 1, nearly uniform and dense, no
      low-rank structure. Formed literally (B x I), so the critic's first layer is a dense product.
    - ``tempered``: A = softmax_row((R + eps * g) / tau_r), the temperature on the whole logit as the
      paper's Eq. 5 reads: its mass sits on the training items, value-sparse (exact in float32 when
      ``sparse_softmax_is_exact``; else formed densely for this call), so it takes the structured path.

    Uniforms are drawn row-major over the B x I block for ``released`` (the released code's
    ``torch.rand`` of the same shape), and one per entry of ``softmax_positions`` for ``tempered``.
    """
    if form not in REAL_ROW_FORMS:
        raise ValueError(f"real_rows must be one of {REAL_ROW_FORMS}, got {form!r}.")
    if tau_r <= 0 or eps < 0:
        raise ValueError(f"real_rows needs tau_r > 0 and eps >= 0, got tau_r={tau_r}, eps={eps}.")
    with torch.no_grad():
        fused = DenseRows(fused) if isinstance(fused, Tensor) else fused.detach()
        train_rows = _check_train_rows(train_rows, fused.n_rows, fused.n_items)
        device = train_rows.device
        if form == "released":
            noise = gumbel_noise((fused.n_rows, fused.n_items), generator, device)
            soft = torch.softmax(train_rows.to_dense() + (eps / tau_r) * noise, dim=1)
            return DenseRows(F.normalize(soft + kappa * fused.to_dense(), dim=1))
        if sparse_softmax_is_exact(fused.n_items, tau_r, eps):
            rows, cols, is_train = softmax_positions(train_rows, fused.n_items)
            noise = gumbel_noise(rows.shape, generator, device)
            soft = segment_softmax((is_train.float() + eps * noise) / tau_r, rows, fused.n_rows)
            return RealRows(rows, cols, soft, fused, kappa)
        noise = gumbel_noise((fused.n_rows, fused.n_items), generator, device)
        soft = torch.softmax((train_rows.to_dense() + eps * noise) / tau_r, dim=1)
        return DenseRows(F.normalize(soft + kappa * fused.to_dense(), dim=1))


def cat_rows(rows: list) -> RelationRows:
    """Row concatenation [X_1; X_2; ...]."""
    return CatRows(rows)


def repeat_rows(rows: RelationRows, times: int) -> RelationRows:
    """[X; X; ...] with ``times`` copies (the real rows duplicated to match the fake ones)."""
    return RepeatRows(rows, times)


def interpolate(real: RelationRows, fake: RelationRows, alpha: Tensor) -> RelationRows:
    """alpha * real + (1 - alpha) * fake with one alpha per row, alpha of shape (N, 1)."""
    return InterpolatedRows(real, fake, alpha)
