"""MMSSL's cross-modal attention (both readings of spec 1.3 step 4) and its layer-softmax GNN (1.3.6)."""

import math

import torch
import torch.nn as nn

from recbole_mmssl.model.common.graph_ops import propagate


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
