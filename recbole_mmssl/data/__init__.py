"""Data pipeline: source converters, atomic files, MultimodalDataset and dataset preparation."""

from recbole_mmssl.data.dataset import MultimodalDataset, require_modalities
from recbole_mmssl.data.default_dataset import DEFAULT_DATASET, ensure_default_dataset
from recbole_mmssl.errors import DataError
from recbole_mmssl.data.prepare import ensure_prepared

__all__ = [
    "DEFAULT_DATASET",
    "DataError",
    "MultimodalDataset",
    "ensure_default_dataset",
    "ensure_prepared",
    "require_modalities",
]
