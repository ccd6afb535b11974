"""Matrix products for MMSSL's critic through numpy's BLAS where torch's is the slow one.

Why: the critic is GEMM-bound (its I x I/4 and I/4 x I/8 layers, the penalty's Gram). torch's CPU
wheels multiply with MKL, which takes a slow code path on non-Intel CPUs: on the 2-core AMD EPYC
machines of this project a 2048 x 1677 x 838 float32 product ran at about 19 GMAC/s through torch and
35 through numpy's OpenBLAS on the same core (a one-off micro-benchmark; ``benchmarks/speed.py``
measures the whole training iteration on both). Same maths:
results differ from torch's by summation-order rounding only.

``backend`` is ``torch`` (``@`` / ``torch.mm``) or ``numpy`` (CPU float32 only; anything else falls
back to torch); ``auto`` picks numpy on a CPU device when numpy's BLAS is OpenBLAS and the CPU is not
an Intel one (where MKL is the fast library), torch otherwise: measured here, OpenBLAS made a whole
training iteration 1.29x faster at one thread (results of an earlier commit) and 1.25x at two
(results/speed.md). The choice is fixed at construction (never timed at run time), so a seeded run
repeats exactly. Whatever the backend, the penalty's symmetric products go through numpy on a CPU
(``critic._gram``): numpy has a symmetric rank-k update (half a GEMM) and torch does not.
"""

import functools

import numpy as np
import torch
from torch import Tensor

BACKENDS = ("auto", "torch", "numpy")


@functools.lru_cache(maxsize=None)
def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@functools.lru_cache(maxsize=None)
def _numpy_blas_is_openblas() -> bool:
    from threadpoolctl import threadpool_info

    np.ones((2, 2), dtype=np.float32) @ np.ones((2, 2), dtype=np.float32)  # make sure BLAS is loaded
    return any(lib.get("internal_api") == "openblas" for lib in threadpool_info())


def resolve_backend(backend: str, device) -> str:
    """``auto`` -> ``numpy`` or ``torch`` for ``device`` (see the module docstring); checks the name."""
    if backend not in BACKENDS:
        raise ValueError(f"critic_matmul must be one of {list(BACKENDS)}, got {backend!r}.")
    device = torch.device(device)
    if backend == "numpy" and device.type != "cpu":
        return "torch"
    if backend != "auto":
        return backend
    mkl = torch.backends.mkl.is_available()
    if device.type == "cpu" and mkl and _cpu_vendor() != "GenuineIntel" and _numpy_blas_is_openblas():
        return "numpy"
    return "torch"


def _numpy_ready(a: Tensor, b: Tensor) -> bool:
    return a.device.type == "cpu" and a.dtype == torch.float32 and b.dtype == torch.float32 and b.device.type == "cpu"


def raw_mm(a: Tensor, b: Tensor, backend: str) -> Tensor:
    """a @ b without autograd (for hand-written backward passes)."""
    if backend == "numpy" and _numpy_ready(a, b):
        return torch.from_numpy(np.matmul(a.detach().numpy(), b.detach().numpy()))
    return a @ b


class _NumpyMatmul(torch.autograd.Function):
    """a @ b by numpy's BLAS; its backward calls ``matmul`` again, so double backward works."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return raw_mm(a, b, "numpy")

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = matmul(grad, b.t(), "numpy") if ctx.needs_input_grad[0] else None
        grad_b = matmul(a.t(), grad, "numpy") if ctx.needs_input_grad[1] else None
        return grad_a, grad_b


def matmul(a: Tensor, b: Tensor, backend: str) -> Tensor:
    """Differentiable a @ b (2-d) on the chosen backend."""
    if backend == "numpy" and _numpy_ready(a, b):
        return _NumpyMatmul.apply(a, b)
    return a @ b


def linear(x: Tensor, layer: torch.nn.Linear, backend: str) -> Tensor:
    """``layer(x)`` with its product on the chosen backend."""
    if backend == "torch":
        return layer(x)
    out = matmul(x, layer.weight.t(), backend)
    return out if layer.bias is None else out + layer.bias
