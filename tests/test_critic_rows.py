"""Relation rows: the structured first-layer product equals the dense formula, values and gradients."""

import math

import pytest
import torch
import torch.nn.functional as F
from _critic_util import grads, problem, rel_err

from recbole_mmssl.model.mmssl import relation_rows
from recbole_mmssl.model.mmssl.relation_rows import (
    DenseRows,
    RealRows,
    cat_rows,
    generated_rows,
    gumbel_noise,
    interpolate,
    real_rows,
    repeat_rows,
    softmax_positions,
    sparse_softmax_is_exact,
)

TOL = 1e-5


def _compare_linear(build, leaves, weight):
    """rows.linear(W) vs rows.to_dense() @ W.T: value and gradients of every leaf and of W."""
    probe = torch.randn(build().n_rows, weight.shape[0], generator=torch.Generator().manual_seed(7))
    fast = build().linear(weight)
    (fast * probe).sum().backward()
    fast_grads = grads(leaves + [weight])
    dense = build().to_dense() @ weight.t()
    (dense * probe).sum().backward()
    dense_grads = grads(leaves + [weight])
    assert rel_err(fast, dense) < TOL
    for got, want in zip(fast_grads, dense_grads):
        assert rel_err(got, want) < TOL


def test_generated_rows_literal_formula():
    users, items, train, mask = problem()
    want = F.normalize((users @ items.t()) * (~mask), dim=1)
    rows = generated_rows(users, items, train)
    assert torch.equal(rows.to_dense(), want)
    assert rows.n_rows == 12 and rows.n_items == 96
    assert rows.heavy.tolist() == [False, False, True] + [False] * 9  # the heavy user: dense row


@pytest.mark.parametrize("kind", ["generated", "cat", "repeat", "interpolate"])
def test_linear_matches_dense_with_gradients(kind):
    users, items, train, _ = problem(seed=3)
    users2, items2, train2, _ = problem(seed=4)
    weight = torch.randn(24, 96, requires_grad=True)
    alpha = torch.rand(24, 1)

    def build():
        first = generated_rows(users, items, train)
        second = generated_rows(users2, items2, train2)
        if kind == "generated":
            return first
        if kind == "cat":
            return cat_rows([first, second])
        if kind == "repeat":
            return repeat_rows(first, 3)
        return interpolate(repeat_rows(first, 2), cat_rows([first, second]), alpha)

    _compare_linear(build, [users, items, users2, items2] if kind != "generated" and kind != "repeat"
                    else [users, items], weight)


@pytest.mark.parametrize("tau_r,with_empty_row", [(0.005, True), (0.005, False), (1.0, True)])
def test_real_rows_linear_matches_dense(tau_r, with_empty_row):
    """With an empty user the softmax is dense on that row; without one it lies on the training items."""
    users, items, train, mask = problem(seed=5, grad=False)
    if not with_empty_row:
        mask[0, 7] = True
        train = mask.float().to_sparse().coalesce()
    weight = torch.randn(24, 96, requires_grad=True)
    fused = generated_rows(users, items, train)
    rows = real_rows(train, fused, tau_r, 1e-5, 100.0, generator=torch.Generator().manual_seed(0))
    assert isinstance(rows, RealRows if tau_r < 0.03 else DenseRows)
    assert not rows.to_dense().requires_grad
    _compare_linear(lambda: rows, [], weight)


def test_real_rows_detach_fused_gradients():
    users, items, train, _ = problem(seed=5)
    rows = real_rows(train, generated_rows(users, items, train), 0.005, 1e-5, 100.0)
    assert not rows.linear(torch.randn(4, 96)).requires_grad


def _dense_formula(mask, fused_dense, tau_r, eps, kappa, noise):
    soft = torch.softmax((mask.float() + eps * noise) / tau_r, dim=1)
    return F.normalize(soft + kappa * fused_dense, dim=1)


@pytest.mark.parametrize("tau_r", [0.002, 0.005, 0.02])
def test_sparse_real_rows_equal_dense_softmax_formula(tau_r):
    """Same uniforms at the sparse positions, any noise elsewhere: equal to float32 resolution."""
    users, items, train, mask = problem(n_rows=10, n_items=300, seed=6, grad=False)
    fused = generated_rows(users, items, train)
    assert sparse_softmax_is_exact(300, tau_r, 1e-5)
    rows = real_rows(train, fused, tau_r, 1e-5, 100.0, generator=torch.Generator().manual_seed(11))
    assert isinstance(rows, RealRows)
    pos_rows, pos_cols, _ = softmax_positions(train, 300)
    noise = gumbel_noise((10, 300), torch.Generator().manual_seed(99))
    noise[pos_rows, pos_cols] = gumbel_noise(pos_rows.shape, torch.Generator().manual_seed(11))
    want = _dense_formula(mask, fused.to_dense(), tau_r, 1e-5, 100.0, noise)
    got = rows.to_dense()
    assert (got - want).abs().max().item() <= 4 * 2.0**-24 * want.abs().max().item()
    # the Gumbel part alone: the user without training items gets a dense, nearly uniform row
    soft_want = torch.softmax((mask.float() + 1e-5 * noise) / tau_r, dim=1)
    soft_got = torch.zeros(10, 300).index_put((rows.rows, rows.cols), rows.soft)
    assert rel_err(soft_got, soft_want) < 4 * 2.0**-24
    assert (soft_got[0] > 0).all() and math.isclose(soft_got[0].sum().item(), 1.0, rel_tol=1e-6)
    assert (soft_got[1:][~mask[1:]] == 0).all()


def test_dense_fallback_engages_and_equals_formula():
    users, items, train, mask = problem(n_rows=10, n_items=300, seed=8, grad=False)
    fused = generated_rows(users, items, train)
    assert not sparse_softmax_is_exact(300, 1.0, 1e-5)
    assert not sparse_softmax_is_exact(6710, 0.05, 1e-5)
    assert sparse_softmax_is_exact(18357, 0.02, 1e-5)
    rows = real_rows(train, fused, 1.0, 1e-5, 100.0, generator=torch.Generator().manual_seed(3))
    assert isinstance(rows, DenseRows)
    noise = gumbel_noise((10, 300), torch.Generator().manual_seed(3))
    want = _dense_formula(mask, fused.to_dense(), 1.0, 1e-5, 100.0, noise)
    assert torch.equal(rows.to_dense(), want)
    from_tensor = real_rows(train, fused.to_dense(), 1.0, 1e-5, 100.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(from_tensor.to_dense(), want)  # a dense fused block is accepted as is


def test_zero_rows_follow_f_normalize():
    """A zero user and a user whose every item is a training item: rows are 0, gradients finite."""
    users, items, train, mask = problem(seed=9)
    with torch.no_grad():
        users[3] = 0.0
    mask[4] = True
    train = mask.float().to_sparse().coalesce()
    weight = torch.randn(24, 96, requires_grad=True)
    rows = generated_rows(users, items, train)
    assert (rows.to_dense()[[3, 4]] == 0).all()
    assert (rows.linear(weight)[[3, 4]] == 0).all()
    _compare_linear(lambda: generated_rows(users, items, train), [users, items], weight)
    rows.linear(weight).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (users, items, weight))


def test_row_norm_needs_float64():
    """Training items that carry almost all of a row's mass: the float32 Gram difference cancels."""
    users, items, train, mask = problem(seed=10, grad=False)
    items = items.clone()
    items[mask[5]] *= 1000.0
    masked = (users @ items.t()) * (~mask)
    want = masked.double().norm(dim=1)
    users32, items32 = users, items
    full32 = ((users32 @ (items32.t() @ items32)) * users32).sum(1)
    dots32 = (users32 @ items32.t()) * mask
    naive = (full32 - dots32.pow(2).sum(1)).clamp_min(0).sqrt()
    assert abs(naive[5].item() - want[5].item()) / want[5].item() > 10 * TOL
    got = 1.0 / generated_rows(users, items, train).inv_norm.double()
    assert rel_err(got, want) < 1e-6


def test_heavy_rows_go_dense(monkeypatch):
    """Same extreme row: low-rank minus sparse loses ~50x float32 precision, so it is formed densely."""
    users, items, train, mask = problem(seed=10, grad=False)
    items = items.clone()
    items[mask[5]] *= 1000.0
    weight = torch.randn(24, 96)
    rows = generated_rows(users, items, train)
    want = rows.to_dense() @ weight.t()
    assert rows.heavy[5]
    assert rel_err(rows.linear(weight)[5], want[5]) < TOL
    monkeypatch.setattr(relation_rows, "HEAVY_SHARE", 2.0)
    assert rel_err(generated_rows(users, items, train).linear(weight)[5], want[5]) > TOL


def test_bad_inputs_name_the_problem():
    users, items, train, mask = problem(grad=False)
    with pytest.raises(TypeError, match="sparse COO"):
        generated_rows(users, items, mask.float())
    with pytest.raises(ValueError, match=r"shape \(12, 95\)"):
        generated_rows(users, items, mask[:, :95].float().to_sparse())
    with pytest.raises(ValueError, match="ones at the training pairs"):
        generated_rows(users, items, (2 * mask.float()).to_sparse())
    fused = generated_rows(users, items, train)
    with pytest.raises(ValueError, match="tau_r > 0"):
        real_rows(train, fused, 0.0, 1e-5, 100.0)
    with pytest.raises(ValueError, match="repeat the real rows"):
        interpolate(fused, cat_rows([fused, fused]), torch.rand(24, 1))
    with pytest.raises(ValueError, match="same number of items"):
        cat_rows([fused, DenseRows(torch.zeros(2, 5))])


def test_masked_scores_keep_each_rows_order_and_zero_training_items():
    """The graph top-k reads masked_scores instead of the normalised rows: zeros at training items,
    a positive rescaling of every row of to_dense, so the same top-k per row."""
    users, items, train, mask = problem(grad=False)
    rows = generated_rows(users, items, train)
    scores, dense = rows.masked_scores(), rows.to_dense()
    assert torch.equal(scores[mask], torch.zeros(int(mask.sum())))
    assert rel_err(F.normalize(scores, dim=1), dense) < TOL
    assert torch.equal(torch.topk(scores, 5, dim=1).indices, torch.topk(dense, 5, dim=1).indices)


def _released_literal(u_ui, u_sim_f, log_log_scale, real_data_tau, ui_pre_scale, uniforms):
    """The released code's lines (main.py:350 and the fused injection), Python precedence and all."""
    U = uniforms
    u_ui = F.softmax(u_ui - log_log_scale * torch.log(-torch.log(U + 1e-8) + 1e-8) / real_data_tau, dim=1)
    return F.normalize(u_ui + ui_pre_scale * u_sim_f, dim=1)


@pytest.mark.parametrize("kappa", [0.0, 100.0])
def test_released_real_rows_equal_the_literal_released_expression(kappa):
    """Same uniforms (row-major over B x I), the released line itself as the reference."""
    users, items, train, mask = problem(n_rows=10, n_items=300, seed=6, grad=False)
    fused = generated_rows(users, items, train)
    rows = real_rows(train, fused, 0.002, 1e-5, kappa, generator=torch.Generator().manual_seed(5), form="released")
    uniforms = torch.rand((10, 300), generator=torch.Generator().manual_seed(5))
    want = _released_literal(mask.float(), fused.to_dense(), 1e-5, 0.002, kappa, uniforms)
    assert rel_err(rows.to_dense(), want) < 1e-6
    weight = torch.randn(7, 300, generator=torch.Generator().manual_seed(1))
    assert rel_err(rows.linear(weight), want @ weight.t()) < 1e-5


def test_released_real_rows_are_nearly_uniform_unlike_tempered():
    """Spec 1.6 (a): released rows put ~e/Z on each training item (Z ~ deg e + I - deg), tempered ~all mass."""
    users, items, train, mask = problem(n_rows=10, n_items=300, seed=6, grad=False)
    fused = generated_rows(users, items, train)
    gen = torch.Generator().manual_seed(2)
    released = real_rows(train, fused, 0.002, 1e-5, 0.0, generator=gen, form="released").to_dense()
    tempered = real_rows(train, fused, 0.002, 1e-5, 0.0, generator=gen, form="tempered").to_dense()
    # kappa = 0: normalised softmax rows; compare the softmax mass through the L1 share of the training items
    for user in range(1, 10):
        deg = int(mask[user].sum())
        share = released[user][mask[user]].sum() / released[user].sum()
        expected = deg * math.e / (deg * math.e + 300 - deg)
        assert abs(share.item() - expected) < 0.01 * expected
        assert tempered[user][~mask[user]].abs().max() == 0
    with pytest.raises(ValueError, match="real_rows must be one of"):
        real_rows(train, fused, 0.002, 1e-5, 100.0, form="paper")
