"""MMSSL building blocks against the spec's formulas (docs/mmssl_spec.md 1.1, 1.3, 1.6)."""

import math

import pytest
import torch
import torch.nn.functional as F
from _model_util import multihead_attention_reference

from recbole_mmssl.model.common.graph_ops import bipartite_graphs, propagate, row_normalized
from recbole_mmssl.model.common.losses import info_nce
from recbole_mmssl.model.mmssl.attention import DegenerateModalityAttention, MultiHeadModalityAttention, layer_softmax_gnn


def released_attention_literal(views, w_q, w_cat, n_heads):
    """The released code's multi_head_self_attention, broadcast for broadcast (spec 1.3 step 4)."""
    q = torch.stack(views)  # (M, N, d); k = v = q
    v = q
    n_mod, n, d = q.shape
    d_h = d // n_heads
    Q = (q @ w_q).reshape(n_mod, n, n_heads, d_h).permute(2, 0, 1, 3)
    K = Q.reshape(n_mod, n, n_heads, d_h).permute(2, 0, 1, 3)  # the K = Q typo
    Q, K, V = Q.unsqueeze(2), K.unsqueeze(1), v.unsqueeze(1)
    att = (Q * K / math.sqrt(d_h)).sum(-1).unsqueeze(-1)  # (H, M, M, N, 1)
    att = torch.softmax(att, dim=2)
    Z = (att * V).sum(2)  # V broadcasts as the query's own modality
    Z = torch.cat(list(Z), -1) @ w_cat  # (M, N, d)
    return Z.mean(0)


def test_degenerate_attention_equals_literal_released_computation():
    torch.manual_seed(0)
    att = DegenerateModalityAttention(dim=8, n_heads=4)
    w_q = torch.nn.init.xavier_uniform_(torch.empty(8, 8))
    views = [torch.randn(5, 8), torch.randn(5, 8)]
    expected = released_attention_literal(views, w_q, att.w_cat.detach(), 4)
    torch.testing.assert_close(att(views), expected, rtol=1e-5, atol=1e-6)


def test_degenerate_attention_gives_each_wcat_block_the_same_gradient():
    torch.manual_seed(0)
    att = DegenerateModalityAttention(dim=4, n_heads=3)
    att([torch.randn(6, 4), torch.randn(6, 4)]).pow(2).sum().backward()
    blocks = att.w_cat.grad.view(3, 4, 4)
    assert blocks.abs().sum() > 0
    torch.testing.assert_close(blocks[0], blocks[1])
    torch.testing.assert_close(blocks[0], blocks[2])


def test_multihead_attention_mixes_modalities_and_degenerate_does_not():
    torch.manual_seed(0)
    views = [torch.randn(5, 8), torch.randn(5, 8)]
    changed = [views[0], views[1] + torch.randn(5, 8)]
    multi = MultiHeadModalityAttention(dim=8, n_heads=2)
    degenerate = DegenerateModalityAttention(dim=8, n_heads=2)
    # Modality 0's output depends on modality 1's view only when attention really mixes them.
    assert not torch.allclose(multi.per_modality(views)[0], multi.per_modality(changed)[0])
    torch.testing.assert_close(degenerate.per_modality(views)[0], degenerate.per_modality(changed)[0])
    weights = multi.attention_weights(torch.stack(views))
    assert weights.shape == (5, 2, 2, 2)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, 2, 2))


@pytest.mark.parametrize("n_mod,n_heads", [(2, 2), (3, 4)])
def test_multihead_attention_equals_per_head_reference(n_mod, n_heads):
    """Outputs, per-modality Z^m, attention weights and the gradients of W_q, W_k and W_cat equal a
    head-by-head, modality-by-modality computation (per-head Q/K slices, values from the key
    modality, softmax over the key modalities)."""
    torch.manual_seed(0)
    multi = MultiHeadModalityAttention(dim=8, n_heads=n_heads)
    with torch.no_grad():
        multi.w_q.mul_(4.0)  # sharper scores, so that the softmax is far from uniform
        multi.w_k.mul_(4.0)
    views = [torch.randn(6, 8, requires_grad=True) for _ in range(n_mod)]
    probe = torch.randn(6, 8)
    params = [multi.w_q, multi.w_k, multi.w_cat]
    want, want_per_modality = multihead_attention_reference(views, *params, n_heads)
    got = multi(views)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(multi.per_modality(views), torch.stack(want_per_modality), rtol=1e-5, atol=1e-5)
    weights = multi.attention_weights(torch.stack(views))  # (N, H, M_query, M_key)
    assert weights.shape == (6, n_heads, n_mod, n_mod)
    assert (weights.max(-1).values > 0.7).any()  # some head really prefers one modality
    got_grads = torch.autograd.grad((got * probe).sum(), params + views)
    want_grads = torch.autograd.grad((want * probe).sum(), params + views)
    for got_grad, want_grad in zip(got_grads, want_grads):
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-4, atol=1e-5)
    # W_q and W_k are live parameters here (the released attention's W_q is not)
    for grad in got_grads[:2]:
        assert grad.abs().max() > 1e-3 * got_grads[2].abs().max()


def test_multihead_attention_single_modality_reduces_to_summed_wcat():
    torch.manual_seed(0)
    multi = MultiHeadModalityAttention(dim=8, n_heads=4)
    view = torch.randn(3, 8)
    w_bar = multi.w_cat.view(4, 8, 8).sum(0)
    torch.testing.assert_close(multi([view]), view @ w_bar, rtol=1e-5, atol=1e-6)


def test_multihead_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="head_num"):
        MultiHeadModalityAttention(dim=10, n_heads=4)


def test_row_only_normalisation():
    rows = torch.tensor([0, 0, 1, 2, 2, 2])
    cols = torch.tensor([0, 2, 1, 0, 1, 2])
    graph = row_normalized(rows, cols, torch.ones(6), (4, 3))
    dense = torch.zeros(4, 3)
    dense[rows, cols] = 1.0
    expected = dense / (dense.sum(1, keepdim=True) + 1e-8).sqrt()  # rows only, +1e-8
    torch.testing.assert_close(graph.to_dense(), expected)
    assert graph.to_dense()[3].abs().sum() == 0  # empty row stays empty
    # columns are not normalised: column sums differ from what symmetric normalisation gives
    assert not torch.allclose(graph.to_dense(), dense / (dense.sum(0) + 1e-8).sqrt() / (dense.sum(1, keepdim=True) + 1e-8).sqrt())


def test_duplicate_pairs_are_summed_before_normalisation():
    users = torch.tensor([0, 0, 0, 1])
    items = torch.tensor([1, 1, 2, 2])
    g_ui, g_iu = bipartite_graphs(users, items, torch.ones(4), 2, 3)
    # C = [[0, 2, 1], [0, 0, 1]]: row 0 sum 3, so entries 2/sqrt(3) and 1/sqrt(3)
    expected_ui = torch.tensor([[0, 2, 1], [0, 0, 1]]) / torch.tensor([[3.0], [1.0]]).add(1e-8).sqrt()
    torch.testing.assert_close(g_ui.to_dense(), expected_ui)
    # item side: item 1 has count 2 from user 0 -> 2/sqrt(2); item 2 has counts 1, 1 -> 1/sqrt(2)
    expected_iu = torch.tensor([[0, 0], [2 / math.sqrt(2), 0], [1 / math.sqrt(2), 1 / math.sqrt(2)]])
    torch.testing.assert_close(g_iu.to_dense(), expected_iu, rtol=1e-6, atol=1e-6)


def test_propagate_over_empty_graph_is_exact_zero():
    empty = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (3, 4), check_invariants=True)
    out = propagate(empty, torch.randn(4, 5))
    assert out.shape == (3, 5) and out.abs().sum() == 0


def test_alternating_gnn_with_last_layer_softmax():
    torch.manual_seed(0)
    users, items = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2])
    g_ui, g_iu = bipartite_graphs(users, items, torch.ones(4), 3, 3)
    u0, i0 = torch.randn(3, 4), torch.randn(3, 4)
    u_bar, i_bar = layer_softmax_gnn(g_ui, g_iu, u0, i0, n_layers=2)
    a_ui, a_iu = g_ui.to_dense(), g_iu.to_dense()
    u1 = a_ui @ i0
    i1 = a_iu @ u1  # item layer from the new user layer
    u2 = torch.softmax(a_ui @ i1, dim=1)
    i2 = torch.softmax(a_iu @ u2, dim=1)
    torch.testing.assert_close(u_bar, (u0 + u1 + u2) / 3)
    torch.testing.assert_close(i_bar, (i0 + i1 + i2) / 3)


def test_info_nce_matches_formula():
    torch.manual_seed(0)
    z1, z2, tau = torch.randn(6, 4), torch.randn(6, 4), 0.5
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    expected = 0.0
    for i in range(6):
        refl = torch.exp(a[i] @ a.t() / tau)
        between = torch.exp(a[i] @ b.t() / tau)
        expected += -torch.log(between[i] / (refl.sum() + between.sum() - refl[i]) + 1e-8)
    torch.testing.assert_close(info_nce(z1, z2, tau), expected / 6)


def test_info_nce_of_zero_view_is_log_2b_minus_1_without_gradient():
    batch = 16
    z1 = torch.zeros(batch, 4, requires_grad=True)
    z2 = torch.randn(batch, 4, requires_grad=True)
    loss = info_nce(z1 * 1.0, z2, 0.5)
    assert loss.item() == pytest.approx(math.log(2 * batch - 1), abs=1e-5)
    loss.backward()
    assert z2.grad.abs().max() == 0


def test_propagate_through_csr_equals_the_dense_product_with_gradients():
    """The CSR product (and its backward through the transpose's CSR) is graph @ x, to second order."""
    gen = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, 30, (200,), generator=gen), torch.randint(0, 20, (200,), generator=gen)
    g_ui, _ = bipartite_graphs(users, items, torch.rand(200, generator=gen), 30, 20)
    x = torch.randn(20, 6, generator=gen, requires_grad=True)
    probe = torch.randn(30, 6, generator=gen)
    results = []
    for product in (lambda v: propagate(g_ui, v), lambda v: g_ui.to_dense() @ v):
        out = product(x)
        (grad,) = torch.autograd.grad((out.pow(2) * probe).sum(), x, create_graph=True)
        (second,) = torch.autograd.grad(grad.pow(2).sum(), x)  # through the backward's own backward
        results.append((out, grad, second))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
