"""Helpers for the critic tests: small random relation-row problems with awkward rows."""

import torch


def rel_err(a, b):
    """max |a - b| relative to max |b| (float32 entries near 0 have no meaningful elementwise error)."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def train_mask(n_rows, n_items, scores, seed=0, density=0.05):
    """Binary (B, I) training mask with a user without items (row 0), a user holding 60% of the items
    (row 1) and a 'heavy' user whose items are his highest-|score| half (row 2), rest ~density."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(n_rows, n_items, generator=gen) < density
    mask[0] = False
    mask[1] = torch.rand(n_items, generator=gen) < 0.6
    top = scores[2].abs().argsort(descending=True)[: n_items // 2]
    mask[2] = False
    mask[2, top] = True
    return mask


def problem(n_rows=12, n_items=96, dim=8, seed=0, grad=True):
    """(user_emb, item_emb, train_rows COO, dense mask) with leaf embeddings."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.randn(n_rows, dim, generator=gen)
    items = torch.randn(n_items, dim, generator=gen)
    mask = train_mask(n_rows, n_items, users @ items.t(), seed=seed + 1)
    train = mask.float().to_sparse().coalesce()
    return users.requires_grad_(grad), items.requires_grad_(grad), train, mask


def grads(tensors):
    out = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out


# -- a critic reference without the Critic class (plain torch, spec 1.2 and 1.6 (b)) ----------------

BN_EPS = 1e-5  # BatchNorm1d's default, as in the released critic


class DropoutMasks:
    """Records the mask of every dropout call inside ``module`` (a context manager).

    ``calls`` holds one mask per dropout forward, in call order (two per critic call): the entries
    kept are 1/(1-p), the dropped 0, read from the module's own input and output, so a reference can
    reuse the very masks drawn by the code without knowing its random stream. Each recorded call is
    checked to be an elementwise keep-and-rescale of its input.
    """

    def __init__(self, module):
        self.module, self.calls, self._handles = module, [], []

    def _hook(self, dropout, inputs, output):
        x = inputs[0].detach()
        if not dropout.training or dropout.p == 0.0:
            mask = torch.ones_like(x)
        else:
            mask = (output.detach() != 0).to(x.dtype).mul(1.0 / (1.0 - dropout.p))
        torch.testing.assert_close(output.detach(), x * mask, rtol=1e-6, atol=0.0)
        self.calls.append(mask)

    def __enter__(self):
        for sub in self.module.modules():
            if isinstance(sub, torch.nn.Dropout):
                self._handles.append(sub.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        return False

    def pair(self, call):
        """The two masks (after hidden layer 1 and 2) of the critic's ``call``-th forward."""
        return self.calls[2 * call], self.calls[2 * call + 1]


def _batch_norm_train(h, bn):
    """BatchNorm1d in train mode: the batch's mean and biased variance."""
    mean = h.mean(0)
    var = (h - mean).pow(2).mean(0)
    return (h - mean) / torch.sqrt(var + BN_EPS) * bn.weight + bn.bias


def critic_reference(critic, x, slope, masks=(None, None)):
    """D(x) of spec 1.2 in plain torch from the critic's weights: Linear -> LeakyReLU(slope) -> BN
    (train) -> Dropout -> Linear -> LeakyReLU -> BN -> Dropout -> Linear -> sigmoid, times 100.
    ``masks``: the two dropout masks (None = no dropout)."""
    lin1, _, bn1, _, lin2, _, bn2, _, lin3, _ = critic.net
    h = x @ lin1.weight.t() + lin1.bias
    for bn, mask, nxt in ((bn1, masks[0], lin2), (bn2, masks[1], lin3)):
        h = _batch_norm_train(torch.where(h >= 0, h, slope * h), bn)
        if mask is not None:
            h = h * mask
        h = h @ nxt.weight.t() + nxt.bias
    return torch.sigmoid(h).squeeze(-1) * 100.0


def penalty_reference(critic, x, slope, masks=(None, None)):
    """WGAN-GP term mean_n (||dD/dx_n||_2 - 1)^2 by torch.autograd.grad on dense rows (graph kept)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic_reference(critic, x, slope, masks).sum(), x, create_graph=True)
    return (grad.pow(2).sum(1).sqrt() - 1).pow(2).mean()


def perturb_critic(critic, seed=0):
    """Non-trivial BN affines and Linear biases (the init has them 1 and 0, which hides mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in critic.net:
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, torch.nn.Linear):
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
    return critic


def assert_grads_match(critic, reference_grads, tol):
    """Each critic parameter's .grad equals the reference gradient (same order as parameters()),
    measured against its layer's scale: a Linear bias feeding BN with slope 1 has a gradient that is
    mathematically 0, so only rounding is left of it."""
    names = [name for name, _ in critic.named_parameters()]
    want = dict(zip(names, reference_grads))
    for name, param in critic.named_parameters():
        scale = max(want[name].abs().max().item(), want[name.replace("bias", "weight")].abs().max().item())
        assert (param.grad - want[name]).abs().max().item() < tol * scale, name
