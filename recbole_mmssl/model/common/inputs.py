"""What every multimodal model reads from a MultimodalDataset: training pairs and modality features.

Models never read files (design.md: data flows one way); these helpers turn the dataset's arrays into
device tensors once, with RecBole's padding item 0 kept as a row so internal ids index directly.
"""

import numpy as np
import torch

from recbole_mmssl.data.dataset import require_modalities


def training_pairs(dataset, device):
    """(users, items) int64 tensors of the distinct training interactions, and the binary scipy CSR R."""
    train = dataset.inter_matrix(form="coo").tocsr()
    train.sum_duplicates()
    train.data[:] = 1.0  # R is binary even if a pair repeats in the train file
    coo = train.tocoo()
    users = torch.from_numpy(coo.row.astype(np.int64)).to(device)
    items = torch.from_numpy(coo.col.astype(np.int64)).to(device)
    return users, items, train


def modality_features(dataset, device, n_min=1):
    """(names, features, masks): per modality a float32 (n_items, dim) tensor and a bool (n_items,) mask.

    Row 0 is RecBole's padding item (zeros, mask False). A False mask marks an item without a feature
    row (``allow_missing_features``): models must keep such rows out of anything learned from features.
    """
    require_modalities(dataset, n_min=n_min)
    names = list(dataset.modality_names)
    features = {n: dataset.modality_features[n].float().to(device) for n in names}
    masks = {n: dataset.modality_masks[n].to(device).bool() for n in names}
    return names, features, masks
