"""The critic's BLAS backends: numpy's products equal torch's, to every order of derivative used."""

import copy

import pytest
import torch
from _critic_util import grads, problem, rel_err

from recbole_mmssl.model.mmssl import blas
from recbole_mmssl.model.mmssl.critic import Critic, cat_rows, generated_rows, interpolate, real_rows, repeat_rows

TOL = 1e-5


def test_numpy_matmul_matches_torch_with_double_backward():
    """d/dx ||d(f(x W))/dx|| (the gradient penalty's shape of computation) on both backends."""
    gen = torch.Generator().manual_seed(0)
    x0, w0, v0 = torch.randn(7, 5, generator=gen), torch.randn(5, 6, generator=gen), torch.randn(6, 3, generator=gen)
    results = []
    for backend in ("torch", "numpy"):
        x, w, v = (t.clone().requires_grad_(True) for t in (x0, w0, v0))
        out = blas.matmul(torch.tanh(blas.matmul(x, w, backend)), v, backend).sum()
        (gx,) = torch.autograd.grad(out, x, create_graph=True)
        (gx.norm(dim=1) - 1).pow(2).sum().backward()
        results.append((out, gx, *grads([x, w, v])))
    for a, b in zip(*results):
        assert rel_err(a, b) < TOL


def test_numpy_backend_gives_torch_backend_critic():
    """One D step and one G call, fast path: scores, penalty and every critic gradient agree."""
    torch.manual_seed(0)
    on_torch = Critic(96, slope=0.2, matmul="torch").train()
    on_numpy = copy.deepcopy(on_torch)
    on_numpy.backend = "numpy"
    problems = [problem(seed=s, grad=False) for s in (3, 4, 5)]
    fused = generated_rows(*problems[0][:3])
    real = repeat_rows(real_rows(problems[0][2], fused, 0.005, 1e-5, 100.0), 2)
    fake = cat_rows([generated_rows(*p[:3]) for p in problems[1:]])
    alpha = torch.rand(24, 1, generator=torch.Generator().manual_seed(1))
    losses = []
    for critic in (on_torch, on_numpy):
        torch.manual_seed(321)
        loss = -critic(real).mean() + critic(fake).mean() + 0.3 * critic.gradient_penalty(interpolate(real, fake, alpha))
        loss.backward()
        losses.append(loss)
    assert rel_err(*losses) < TOL
    for (name, a), b in zip(on_numpy.named_parameters(), on_torch.parameters()):
        assert rel_err(a.grad, b.grad) < TOL or b.grad.abs().max() < 1e-6, name


def test_backend_resolution():
    assert blas.resolve_backend("torch", "cpu") == "torch"
    assert blas.resolve_backend("numpy", "cpu") == "numpy"
    assert blas.resolve_backend("numpy", "meta") == "torch"  # numpy multiplies CPU tensors only
    assert blas.resolve_backend("auto", "meta") == "torch"
    expected = "numpy" if blas._cpu_vendor() != "GenuineIntel" and blas._numpy_blas_is_openblas() else "torch"
    assert blas.resolve_backend("auto", "cpu") == (expected if torch.backends.mkl.is_available() else "torch")
    with pytest.raises(ValueError, match="critic_matmul must be one of"):
        blas.resolve_backend("fastest", "cpu")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        Critic(96, matmul="auto")


def test_non_float32_falls_back_to_torch():
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    assert torch.equal(blas.matmul(a, b, "numpy"), a @ b)


@pytest.mark.parametrize("weights", ["mixed", "positive", "negative", "zeros"])
def test_weighted_gram_by_symmetric_updates_equals_the_product(weights):
    """g^T diag(w) g through numpy's two symmetric rank-k updates (and through the symmetric
    blocks of the GPU route) equals the plain product."""
    from recbole_mmssl.model.mmssl.critic import _symmetric_blocks, _weighted_gram

    gen = torch.Generator().manual_seed(0)
    g = torch.randn(300, 600, generator=gen)  # H >= 512: the blocks engage
    w = {"mixed": torch.randn(300, generator=gen), "positive": torch.rand(300, generator=gen),
         "negative": -torch.rand(300, generator=gen), "zeros": torch.zeros(300)}[weights]
    w[::7] = 0.0
    want = g.double().t() @ (w.double()[:, None] * g.double())
    for got in (_weighted_gram(g, w), _symmetric_blocks(g, w[:, None] * g)):  # CPU route, GPU route
        assert (got - want).abs().max().item() <= TOL * max(want.abs().max().item(), 1.0)
