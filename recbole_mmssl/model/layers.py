"""Small pieces of MMSSL with one job each: row-normalised graphs, propagation, attention, losses.

Every formula here follows docs/mmssl_spec.md (section numbers in the docstrings); the released
code's conventions (row-only normalisation with +1e-8, F.normalize's 1e-12, the 1e-8 inside the
InfoNCE log) are kept because they change the numbers.
"""

import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

DEGREE_EPS = 1e-8  # spec 1.1: diag(deg + 1e-8)^-1/2


def row_normalized(rows, cols, values, shape):
    """Sparse COO D^-1/2 A over the rows only (spec 1.1), duplicates summed first.

    The released code's ``csr_norm(mean_flag=True)``: each row is scaled by 1/sqrt(its own sum of
    values + 1e-8); columns are not scaled and empty rows stay empty.
    """
    device = values.device
    graph = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), values.float(), shape, device=device, check_invariants=False
    ).coalesce()
    index, weight = graph.indices(), graph.values()
    row_sum = torch.zeros(shape[0], device=device).index_add_(0, index[0], weight)
    scale = (row_sum + DEGREE_EPS).pow(-0.5)
    return torch.sparse_coo_tensor(
        index, weight * scale[index[0]], shape, is_coalesced=True, check_invariants=False
    )


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


class DegenerateModalityAttention(nn.Module):
    """The released code's "multi-head self-attention" as it really computes (spec 1.3 step 4).

    Its softmax weights sum out, so modality m gives E^m W_bar with W_bar the sum of the H row
    blocks of W_cat, and the mean over modalities is mean_m(E^m) W_bar. The (H*d) x d parameter is
    kept and summed inside the graph: every block then receives the same gradient and AdamW steps
    each block, as in the released code (a single d x d matrix would step H times slower).
    """

    def __init__(self, dim, n_heads):
        super().__init__()
        self.dim, self.n_heads = dim, n_heads
        self.w_cat = nn.Parameter(torch.empty(n_heads * dim, dim))
        nn.init.xavier_uniform_(self.w_cat)

    def w_bar(self):
        return self.w_cat.view(self.n_heads, self.dim, self.dim).sum(0)

    def per_modality(self, views):
        """Z^m = E^m W_bar for each modality: (M, N, d)."""
        return torch.stack(views) @ self.w_bar()

    def forward(self, views):
        """views: list of M tensors (N, d) -> (N, d), the mean over modalities (one product)."""
        return torch.stack(views).mean(0) @ self.w_bar()


class MultiHeadModalityAttention(nn.Module):
    """Attention across modalities as the paper describes it (variant ``paper``).

    Per head h: queries and keys are head slices of E^m W_q and E^m' W_k, the softmax runs over
    the key modality m', and the value is the key modality's view E^m' (full width, as the released
    code's values). The H head outputs (N, d) each are concatenated and mapped by W_cat; the result
    is averaged over the query modalities, as in the released code.
    """

    def __init__(self, dim, n_heads):
        super().__init__()
        if dim % n_heads:
            raise ValueError(
                f"MMSSL: embedding_size={dim} is not divisible by head_num={n_heads}; "
                "choose head_num dividing embedding_size."
            )
        self.dim, self.n_heads = dim, n_heads
        self.w_q = nn.Parameter(torch.empty(dim, dim))
        self.w_k = nn.Parameter(torch.empty(dim, dim))
        self.w_cat = nn.Parameter(torch.empty(n_heads * dim, dim))
        for weight in (self.w_q, self.w_k, self.w_cat):
            nn.init.xavier_uniform_(weight)

    def attention_weights(self, x):
        """x: (M, N, d) -> (N, H, M_query, M_key) softmax weights."""
        n_mod, n, _ = x.shape
        head_dim = self.dim // self.n_heads
        q = (x @ self.w_q).view(n_mod, n, self.n_heads, head_dim)
        k = (x @ self.w_k).view(n_mod, n, self.n_heads, head_dim)
        scores = torch.einsum("mnhe,pnhe->nhmp", q, k) / math.sqrt(head_dim)
        return torch.softmax(scores, dim=-1)

    def per_modality(self, views):
        """Z^m for each query modality m: (M, N, d)."""
        x = torch.stack(views)  # (M, N, d)
        weights = self.attention_weights(x)
        # Head h of query m mixes the key views: sum_p a[n,h,m,p] x[p,n,:]; the H heads, concatenated,
        # are mapped by W_cat, i.e. summed through its H row blocks.
        mixed = torch.einsum("nhmp,pnd->mnhd", weights, x)
        return torch.einsum("mnhd,hde->mne", mixed, self.w_cat.view(self.n_heads, self.dim, self.dim))

    def forward(self, views):
        """views: list of M tensors (N, d) -> (N, d), the mean over query modalities."""
        return self.per_modality(views).mean(0)


ATTENTIONS = {"degenerate": DegenerateModalityAttention, "multihead": MultiHeadModalityAttention}


def layer_softmax_gnn(g_ui, g_iu, user0, item0, n_layers):
    """Alternating propagation with a softmax on the last layer, then the layer mean (spec 1.3.6).

    Item layer l is computed from the new user layer l; the last layer of each side is softmaxed
    over the embedding coordinates.
    """
    users, items = [user0], [item0]
    u, i = user0, item0
    for layer in range(1, n_layers + 1):
        u = propagate(g_ui, i)
        if layer == n_layers:
            u = torch.softmax(u, dim=-1)
        i = propagate(g_iu, u)
        if layer == n_layers:
            i = torch.softmax(i, dim=-1)
        users.append(u)
        items.append(i)
    return torch.stack(users).mean(0), torch.stack(items).mean(0)


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
