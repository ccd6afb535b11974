"""The one check of a device the user asks for (``--device`` of the runner and of ``recommend``).

Asking for a GPU on a machine without one is refused with the reason: RecBole would quietly train
on the CPU, and the user would learn of it hours later from the speed.
"""

import torch

from recbole_mmssl.errors import UsageError


def check_device(device):
    """The torch device for ``--device``, refused with a reason when this machine does not have it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"--device={device}", f"not a device ({err})", "use --device=cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device={device}", "CUDA is not available here (no GPU, or a CPU build of torch)",
                             "use --device=cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device={device}", f"this machine has {torch.cuda.device_count()} GPU(s)",
                             f"use --device=cuda:N with N < {torch.cuda.device_count()}")
    elif dev.type != "cpu":
        raise UsageError(f"--device={device}", f"device type {dev.type!r} is not supported", "use cpu or cuda")
    return dev
