"""Dropout whose masks come from 31-bit integer draws: torch's law, a cheaper random stream.

Why: MMSSL's critic draws eight dropout masks of 2B x I/4 and 2B x I/8 per iteration (each of its
four calls has its own), and on a CPU torch's ``bernoulli_`` is slow and single-threaded: on
TikTok's 2048 x 1677 block it took twice as long as drawing 31-bit integers and comparing them with
a threshold (``tests/test_dropout.py`` checks the law, ``benchmarks/speed.py`` the iteration). The
maths is nn.Dropout's: each entry is kept with probability 1 - p (to 2^-31) and scaled by
1 / (1 - p); only the random stream differs, so seeded runs still repeat exactly.
"""

import torch
from torch import Tensor, nn

#: ``random_()`` on int32 draws uniformly from [0, 2^31 - 1].
_INT_RANGE = 2.0**31


class IntMaskDropout(nn.Dropout):
    """nn.Dropout(p) with the mask drawn as ``int32.random_() < (1 - p) 2^31`` (same state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = 1.0 - self.p
        bits = torch.empty(x.shape, dtype=torch.int32, device=x.device).random_()
        mask = (bits < round(keep * _INT_RANGE)).to(x.dtype).mul_(1.0 / keep)
        if self.inplace:
            return x.mul_(mask)
        return x * mask
