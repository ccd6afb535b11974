"""Critic: the fast first layer gives the dense reference's scores, penalty and every gradient."""

import copy

import pytest
import torch
from _critic_util import (
    DropoutMasks,
    assert_grads_match,
    critic_reference,
    grads,
    penalty_reference,
    perturb_critic,
    problem,
    rel_err,
)
from torch import nn

from recbole_mmssl.model.mmssl.critic import (
    Critic,
    cat_rows,
    generated_rows,
    interpolate,
    real_rows,
    repeat_rows,
    use_gram_for_penalty,
)

TOL = 1e-5
N_ITEMS = 96


def _twins(slope, seed=0, **kwargs):
    torch.manual_seed(seed)
    fast = Critic(N_ITEMS, slope=slope, fast=True, **kwargs)
    dense = copy.deepcopy(fast)
    dense.fast = False
    return fast.train(), dense.train()


def _assert_same_critic_state(fast, dense, tol=TOL):
    """Gradients and BN running statistics agree. A Linear bias feeding BN (slope 1) has a gradient
    that is mathematically 0 (BN removes the batch mean), so it is measured against its layer's scale."""
    dense_grads = {name: p.grad for name, p in dense.named_parameters()}
    for name, param in fast.named_parameters():
        want = dense_grads[name]
        scale = max(want.abs().max().item(), dense_grads[name.replace("bias", "weight")].abs().max().item())
        assert (param.grad - want).abs().max().item() < tol * scale, name
    for (name, a), b in zip(fast.named_buffers(), dense.buffers()):
        if a.dtype.is_floating_point:
            assert rel_err(a, b) < tol, name


@pytest.mark.parametrize("matmul", ["torch", "numpy"])
@pytest.mark.parametrize("slope,frozen", [(1.0, False), (0.2, False), (0.2, True)])
def test_generator_call_matches_dense(slope, frozen, matmul):
    """L_G = -mean D([S_v; S_t]) in train mode (same dropout masks from the same seed); also with the
    critic frozen during the generator backward (spec 5.5); on either BLAS backend."""
    fast, dense = _twins(slope, matmul=matmul)
    fast.requires_grad_(not frozen)
    dense.requires_grad_(not frozen)
    (users_v, items_v, train_v, _), (users_t, items_t, train_t, _) = problem(seed=1), problem(seed=2)
    leaves = [users_v, items_v, users_t, items_t]

    def rows_of():
        return cat_rows([generated_rows(users_v, items_v, train_v), generated_rows(users_t, items_t, train_t)])

    results = []
    for critic in (fast, dense):
        torch.manual_seed(123)
        scores = critic(rows_of())
        (-scores.mean()).backward()
        results.append((scores, grads(leaves)))
    (s_fast, g_fast), (s_dense, g_dense) = results
    assert s_fast.shape == (24,)
    assert rel_err(s_fast, s_dense) < TOL
    for a, b in zip(g_fast, g_dense):
        assert rel_err(a, b) < TOL
    if frozen:
        assert all(p.grad is None for p in fast.parameters())
    else:
        _assert_same_critic_state(fast, dense)


@pytest.mark.parametrize("matmul", ["torch", "numpy"])
@pytest.mark.parametrize("gp_method", ["gram", "dense"])
@pytest.mark.parametrize("slope,tau_r", [(1.0, 0.005), (0.2, 0.02), (0.2, 1.0)])
def test_discriminator_step_matches_dense(slope, tau_r, gp_method, matmul):
    """L_D = -mean D([X_r; X_r]) + mean D([S_v; S_t]) + GP(interpolates): value and critic grads."""
    fast, dense = _twins(slope, gp_method=gp_method, matmul=matmul)
    problems = [problem(seed=s, grad=False) for s in (3, 4, 5)]
    fused = generated_rows(*problems[0][:3])
    real = repeat_rows(real_rows(problems[0][2], fused, tau_r, 1e-5, 100.0,
                                 generator=torch.Generator().manual_seed(0)), 2)
    fake = cat_rows([generated_rows(*p[:3]) for p in problems[1:]])
    alpha = torch.rand(24, 1, generator=torch.Generator().manual_seed(1))
    losses = []
    for critic in (fast, dense):
        torch.manual_seed(321)
        gp = critic.gradient_penalty(interpolate(real, fake, alpha))
        loss = -critic(real).mean() + critic(fake).mean() + 0.3 * gp
        loss.backward()
        losses.append((loss, gp))
    assert rel_err(losses[0][1], losses[1][1]) < TOL
    assert rel_err(losses[0][0], losses[1][0]) < TOL
    _assert_same_critic_state(fast, dense)


def test_penalty_gradient_reaches_rows_with_grad():
    """GP on rows that carry gradient (not MMSSL's use, but the maths must still agree)."""
    fast, dense = _twins(0.2)
    users, items, train, _ = problem(seed=6)
    results = []
    for critic in (fast, dense):
        torch.manual_seed(5)
        critic.gradient_penalty(generated_rows(users, items, train)).backward()
        results.append(grads([users, items]))
    for a, b in zip(*results):
        assert rel_err(a, b) < TOL
    _assert_same_critic_state(fast, dense)


def test_penalty_methods_agree_and_rule_picks_by_size():
    fast, _ = _twins(0.2)
    g = torch.randn(30, N_ITEMS // 4)
    fast.gp_method = "gram"
    by_gram = fast.input_grad_norms(g)
    fast.gp_method = "dense"
    assert rel_err(by_gram, fast.input_grad_norms(g)) < TOL
    assert torch.equal(fast.input_grad_norms(torch.zeros(2, N_ITEMS // 4)), torch.zeros(2))
    assert use_gram_for_penalty(2048, 1677, 6710)  # TikTok
    assert not use_gram_for_penalty(2048, 4589, 18357)  # Sports


@pytest.mark.parametrize("matmul", ["torch", "numpy"])
def test_penalty_gram_route_at_blocked_size(matmul):
    """H >= 512 takes the symmetric block products (torch) or one product (numpy): value and
    gradients equal the dense route."""
    torch.manual_seed(0)
    critic = Critic(2100, slope=0.2, matmul=matmul)
    g = torch.randn(20, 525, requires_grad=True)
    results = []
    for method in ("gram", "dense"):
        critic.gp_method = method
        norms = critic.input_grad_norms(g)
        (norms - 1).pow(2).sum().backward()
        results.append((norms, *grads([g, critic.net[0].weight])))
    for a, b in zip(*results):
        assert rel_err(a, b) < TOL


def test_two_steps_with_an_update_match_dense():
    """W1 @ V products are reused across calls only while W1 and V are unchanged (an optimiser steps
    W1 in place): two D steps with an in-place SGD update between stay equal to the dense reference."""
    fast, dense = _twins(0.2)
    problems = [problem(seed=s, grad=False) for s in (3, 4)]
    fused = generated_rows(*problems[0][:3])
    real = repeat_rows(real_rows(problems[0][2], fused, 0.005, 1e-5, 100.0), 2)
    fake = cat_rows([fused, generated_rows(*problems[1][:3])])
    alpha = torch.rand(24, 1, generator=torch.Generator().manual_seed(1))
    scores = []
    for critic in (fast, dense):
        torch.manual_seed(8)
        for _ in range(2):
            critic.zero_grad()
            gp = critic.gradient_penalty(interpolate(real, fake, alpha))
            (-critic(real).mean() + critic(fake).mean() + 0.3 * gp).backward()
            with torch.no_grad():
                for param in critic.parameters():
                    param.sub_(0.05 * param.grad / param.grad.abs().max().clamp_min(1e-12))
        scores.append(critic(fake))
    assert rel_err(*scores) < TOL
    _assert_same_critic_state(fast, dense)


def test_deepcopy_after_a_generator_call():
    """The product cache holds tensors with grad; copies of the critic start without it."""
    critic = Critic(N_ITEMS).train()
    users, items, train, _ = problem(seed=2)
    critic(generated_rows(users, items, train)).mean().backward()
    twin = copy.deepcopy(critic)
    assert twin._products == {} and critic._products
    for a, b in zip(critic.parameters(), twin.parameters()):
        assert torch.equal(a, b) and a.stride() == b.stride()


def test_slope_one_is_linear_up_to_batch_norm():
    """The released LeakyReLU(True) has slope 1: the critic equals the network without activations."""
    critic = Critic(N_ITEMS, slope=1.0, drop1=0.0, drop2=0.0).train()
    net = critic.net
    plain = nn.Sequential(net[0], net[2], net[3], net[4], net[6], net[7], net[8], net[9])
    x = torch.randn(16, N_ITEMS)
    state = copy.deepcopy(critic.state_dict())
    want = plain(x).squeeze(-1) * 100
    critic.load_state_dict(state)
    assert torch.equal(critic(x), want)
    paper = Critic(N_ITEMS, slope=0.2, drop1=0.0, drop2=0.0).train()
    paper.load_state_dict(state)
    assert not torch.allclose(paper(x), want)


def test_architecture_and_init():
    critic = Critic(6710)
    widths = [(m.in_features, m.out_features) for m in critic.net if isinstance(m, nn.Linear)]
    assert widths == [(6710, 1677), (1677, 838), (838, 1)]
    assert sum(p.numel() for p in critic.parameters()) == pytest.approx(12.7e6, rel=0.01)
    first = critic.net[0].weight
    assert abs(first.std().item() - (2.0 / 6710) ** 0.5) < 0.01 * (2.0 / 6710) ** 0.5
    assert all((m.bias == 0).all() for m in critic.net if isinstance(m, nn.Linear))


def test_bad_inputs_name_the_problem():
    critic = Critic(N_ITEMS)
    with pytest.raises(ValueError, match="96 items got rows over 95 items"):
        critic(torch.zeros(4, 95))
    with pytest.raises(ValueError, match="at least 8 items"):
        Critic(7)
    with pytest.raises(ValueError, match="gp_method"):
        Critic(N_ITEMS, gp_method="fastest")


# -- both paths against a reference written without the Critic class -------------------------------


@pytest.mark.parametrize("path", ["fast", "dense"])
@pytest.mark.parametrize("slope,drop", [(1.0, 0.0), (0.2, 0.0), (1.0, None), (0.2, None)])
def test_scores_and_gradients_equal_a_plain_torch_reference(path, slope, drop):
    """D([S_v; S_t]) on structured rows (fast) or their dense block: scores, row-factor gradients and
    every critic gradient equal Linear -> LeakyReLU -> BN(train) -> Dropout -> ... -> 100 sigmoid in
    plain torch with the critic's weights and the masks it drew (drop None = the released rates)."""
    rates = {} if drop is None else {"drop1": drop, "drop2": drop}
    torch.manual_seed(0)
    critic = perturb_critic(Critic(N_ITEMS, slope=slope, fast=path == "fast", **rates)).train()
    (users_v, items_v, train_v, _), (users_t, items_t, train_t, _) = problem(seed=1), problem(seed=2)
    leaves = [users_v, items_v, users_t, items_t]
    rows = cat_rows([generated_rows(users_v, items_v, train_v), generated_rows(users_t, items_t, train_t)])
    with DropoutMasks(critic) as masks:
        torch.manual_seed(123)
        scores = critic(rows)
    (-scores.mean()).backward()
    if drop is None:  # the masks really drop (about 31% and 50% of the entries)
        assert 0.2 < (masks.calls[0] == 0).float().mean() < 0.42 and 0.38 < (masks.calls[1] == 0).float().mean() < 0.62
    params = list(critic.parameters())
    want = critic_reference(critic, rows.to_dense(), slope, masks.pair(0))
    want_grads = torch.autograd.grad(-want.mean(), leaves + params)
    assert scores.shape == (24,) and 0 < want.min() and want.max() < 100
    assert rel_err(scores, want) < 1e-5
    for got, ref in zip(grads(leaves), want_grads[:4]):
        assert rel_err(got, ref) < 1e-4
    assert_grads_match(critic, want_grads[4:], 1e-4)


@pytest.mark.parametrize("path", ["fast", "dense"])
@pytest.mark.parametrize("gp_method", ["gram", "dense"])
@pytest.mark.parametrize("slope,drop", [(1.0, None), (0.2, 0.0), (0.2, None)])
def test_gradient_penalty_equals_autograd_on_dense_rows(path, gp_method, slope, drop):
    """The WGAN-GP term on interpolates of [X_r; X_r] and [S_v; S_t] equals mean (||dD/dx|| - 1)^2
    with dD/dx from torch.autograd.grad through the plain-torch critic on the dense rows (same
    dropout masks), and so do the critic's gradients of it (the double backward)."""
    rates = {} if drop is None else {"drop1": drop, "drop2": drop}
    torch.manual_seed(0)
    critic = perturb_critic(Critic(N_ITEMS, slope=slope, fast=path == "fast", gp_method=gp_method, **rates))
    critic.train()
    problems = [problem(seed=s, grad=False) for s in (3, 4, 5)]
    fused = generated_rows(*problems[0][:3])
    real = repeat_rows(real_rows(problems[0][2], fused, 0.02, 1e-5, 100.0,
                                 generator=torch.Generator().manual_seed(0)), 2)
    fake = cat_rows([generated_rows(*p[:3]) for p in problems[1:]])
    alpha = torch.rand(24, 1, generator=torch.Generator().manual_seed(1))
    rows = interpolate(real, fake, alpha)
    with DropoutMasks(critic) as masks:
        torch.manual_seed(321)
        penalty = critic.gradient_penalty(rows)
    penalty.backward()
    dense = alpha * real.to_dense() + (1 - alpha) * fake.to_dense()
    want = penalty_reference(critic, dense, slope, masks.pair(0))
    assert want.item() > 1e-3  # the gradients are not all of norm 1: the check can fail
    assert rel_err(penalty, want) < 1e-5
    assert_grads_match(critic, torch.autograd.grad(want, list(critic.parameters())), 1e-4)
