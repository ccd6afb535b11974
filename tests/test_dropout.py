"""IntMaskDropout: nn.Dropout's law (keep 1 - p, scale 1 / (1 - p)) from a cheaper random stream."""

import math

import pytest
import torch
from torch import nn

from recbole_mmssl.model.common.dropout import IntMaskDropout


@pytest.mark.parametrize("p", [0.31, 0.5, 0.9])
def test_keeps_one_minus_p_and_scales_the_kept(p):
    torch.manual_seed(0)
    x = torch.rand(400, 500) + 0.5  # no zeros, so dropped entries are exactly the zeros
    out = IntMaskDropout(p).train()(x)
    kept = out != 0
    n = x.numel()
    sd = math.sqrt(n * p * (1 - p))
    assert abs(kept.sum().item() - n * (1 - p)) < 5 * sd
    assert torch.allclose(out[kept], x[kept] / (1 - p))


def test_gradient_is_the_mask_and_double_backward_runs():
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    out = IntMaskDropout(0.4).train()(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    mask = (out / x).detach()
    assert torch.allclose(grad, mask)
    y = torch.randn(64, 32, requires_grad=True)
    (IntMaskDropout(0.4).train()(y * y).sum()).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_eval_mode_and_edge_rates():
    x = torch.randn(10, 7)
    assert IntMaskDropout(0.5).eval()(x) is x
    assert IntMaskDropout(0.0).train()(x) is x
    assert torch.equal(IntMaskDropout(1.0).train()(x), torch.zeros_like(x))


def test_seeded_masks_repeat_and_state_dict_is_nn_dropouts():
    x = torch.ones(50, 50)
    torch.manual_seed(3)
    first = IntMaskDropout(0.3).train()(x)
    torch.manual_seed(3)
    assert torch.equal(IntMaskDropout(0.3).train()(x), first)
    assert isinstance(IntMaskDropout(0.3), nn.Dropout)
    assert IntMaskDropout(0.3).state_dict() == nn.Dropout(0.3).state_dict() == {}
