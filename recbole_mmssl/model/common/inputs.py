"""What every multimodal model reads from its dataset: training pairs, modality features, k-NN graphs.

Models never read files (design.md: data flows one way): the dataset hands them device tensors
(``recbole_mmssl.data.dataset.ModelInputs``), with RecBole's padding item 0 kept as a row so internal
ids index directly; these helpers are the one place a model asks, and say what to do when the
dataset has no modalities.
"""

import numpy as np
import torch

from recbole_mmssl.errors import NotMultimodalError


def training_pairs(dataset, device):
    """(users, items) int64 tensors of the distinct training interactions, and the binary scipy CSR R."""
    train = dataset.inter_matrix(form="coo").tocsr()
    train.sum_duplicates()
    train.data[:] = 1.0  # R is binary even if a pair repeats in the train file
    coo = train.tocoo()
    users = torch.from_numpy(coo.row.astype(np.int64)).to(device)
    items = torch.from_numpy(coo.col.astype(np.int64)).to(device)
    return users, items, train


def modality_features(dataset, device):
    """(names, features, masks) of a MultimodalDataset on ``device`` (``ModelInputs.modality_tensors``);
    a DataError naming the fix for a dataset without modalities."""
    return _multimodal(dataset).modality_tensors(device)


def modality_knn(dataset, modality, k, device, use_cache=True):
    """The k-NN edge list (rows, cols, cosine) of one modality's raw features (``ModelInputs.modality_knn``)."""
    return _multimodal(dataset).modality_knn(modality, k, device, use_cache=use_cache)


def _multimodal(dataset):
    """The dataset, if it hands out modality inputs (one without feature files says so itself)."""
    if not hasattr(dataset, "modality_tensors"):
        raise NotMultimodalError(dataset)  # a plain RecBole Dataset
    return dataset
