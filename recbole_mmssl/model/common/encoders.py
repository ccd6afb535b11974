"""Modality feature encoders shared by the multimodal peers (VBPR, MMGCN, SLMRec, BM3, ...).

Every model projects each modality's item features (``inputs.modality_features``: (n_items, dim),
row 0 = RecBole's padding) to a common width. Items without a feature row (mask False) must not
receive a projection: here their projected rows are exactly zero (the output is multiplied by the
mask, so neither the weights, the bias nor a trainable feature row gets a gradient from them), as
MMSSL does with its masks.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ModalityProjection(nn.Module):
    """One ``nn.Linear(dim_m, out_dim)`` per modality, in the dataset's modality order.

    ``normalize``: L2-normalise each raw feature row first (SLMRec does). ``trainable_features``:
    the raw features become parameters fine-tuned with the model (BM3's ``from_pretrained(...,
    freeze=False)``); otherwise they are non-persistent buffers (data, not checkpointed state, but
    moved by ``.to(device)``). Modalities are held in lists, not dicts, so any modality name works.
    """

    def __init__(self, names, features, masks, out_dim, bias=True, normalize=False, trainable_features=False):
        super().__init__()
        self.names = list(names)
        self.linears = nn.ModuleList(nn.Linear(features[n].shape[1], out_dim, bias=bias) for n in self.names)
        for k, name in enumerate(self.names):
            mask = masks[name].float().unsqueeze(1)
            raw = features[name].float()
            if normalize:
                raw = F.normalize(raw, dim=1)
            raw = raw * mask  # rows of items without features are exactly zero
            if trainable_features:
                self.register_parameter(f"feature_{k}", nn.Parameter(raw.clone()))
            else:
                self.register_buffer(f"feature_{k}", raw, persistent=False)
            self.register_buffer(f"mask_{k}", mask, persistent=False)

    def __len__(self):
        return len(self.names)

    def feature(self, k):
        """The (n_items, dim_k) raw (or fine-tuned) features of modality k, missing rows zero."""
        return getattr(self, f"feature_{k}")

    def mask(self, k):
        """(n_items, 1) float mask of modality k: 1 where the item has a feature row."""
        return getattr(self, f"mask_{k}")

    def project(self, k, features=None):
        """Linear_k(features) with missing items' rows set to zero; ``features`` defaults to modality k's."""
        x = self.feature(k) if features is None else features
        return self.linears[k](x) * self.mask(k)

    def project_rows(self, k, rows):
        """``project(k)[rows]`` without projecting the other items."""
        return self.linears[k](self.feature(k)[rows]) * self.mask(k)[rows]

    def forward(self):
        """[(n_items, out_dim)] per modality."""
        return [self.project(k) for k in range(len(self.names))]


def concatenated_features(names, features, masks):
    """(n_items, sum of dims): the modalities side by side, rows of items without a modality zeroed.

    VBPR projects this concatenation; a projection without bias then gives a missing block exactly
    zero contribution.
    """
    return torch.cat([features[n].float() * masks[n].float().unsqueeze(1) for n in names], dim=1)
