"""Tiny synthetic multimodal datasets and MMSSL builders for the model tests (CPU, seconds)."""

import logging

import numpy as np
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_mmssl.config import Config
from recbole_mmssl.data.dataset import MultimodalDataset
from recbole_mmssl.model.mmssl import MMSSL
from recbole_mmssl.trainer import MMSSLTrainer

N_USERS, N_ITEMS = 48, 40


def write_tiny_dataset(folder, name="tiny", modalities=("image", "text"), dims=None, n_users=N_USERS,
                       n_items=N_ITEMS, missing_items=(), seed=0):
    """Pre-split atomic files: each user has 3-7 train items, one valid and one test item.

    ``missing_items`` are left out of every feature file (for allow_missing_features).
    """
    rng = np.random.default_rng(seed)
    root = folder / name
    root.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "valid": [], "test": []}
    for user in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(5, 10)), replace=False)
        splits["train"] += [(user, i) for i in items[:-2]]
        splits["valid"].append((user, items[-2]))
        splits["test"].append((user, items[-1]))
    for split, pairs in splits.items():
        lines = ["user_id:token\titem_id:token"] + [f"u{u}\ti{i}" for u, i in pairs]
        (root / f"{name}.{split}.inter").write_text("\n".join(lines) + "\n")
    dims = dims or {m: 6 + 2 * k for k, m in enumerate(modalities)}
    for modality in modalities:
        features = rng.normal(size=(n_items, dims[modality])).astype(np.float32)
        lines = [f"item_id:token\t{modality}_feat:float_seq"]
        lines += [f"i{i}\t" + " ".join(f"{v:.6f}" for v in features[i]) for i in range(n_items) if i not in missing_items]
        (root / f"{name}.{modality}_feat").write_text("\n".join(lines) + "\n")
    return root


def tiny_config(folder, name="tiny", **overrides):
    """A plugin Config for MMSSL on the tiny dataset: small batches, CPU, no checkpoints folder clutter."""
    config_dict = {
        "data_path": str(folder),
        "benchmark_filename": ["train", "valid", "test"],
        "use_gpu": False,
        "seed": 7,
        "reproducibility": True,
        "train_batch_size": 16,
        "embedding_size": 8,
        "head_num": 2,
        "epochs": 2,
        "checkpoint_dir": str(folder / "saved"),
        "show_progress": False,
        "feature_cache": False,
        "eval_batch_size": 4096,
        "topk": [5, 10],
        "valid_metric": "Recall@10",
    }
    config_dict.update(overrides)
    return Config(model="MMSSL", dataset=name, config_dict=config_dict)


def build(folder, name="tiny", **overrides):
    """(config, (train, valid, test) loaders, model, trainer), seeded as quick_start does."""
    logging.getLogger().setLevel(logging.WARNING)
    config = tiny_config(folder, name, **overrides)
    init_seed(config["seed"], config["reproducibility"])
    dataset = MultimodalDataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = MMSSL(config, train_data._dataset).to(config["device"])
    trainer = MMSSLTrainer(config, model)
    return config, (train_data, valid_data, test_data), model, trainer


def batch(model, trainer):
    """One sampled batch: users, positives, negatives, training rows."""
    users, pos, neg = trainer.sampler.sample()
    return users, pos, neg, trainer.sampler.train_rows(users)


def empty_graphs(model):
    """Replace every modality graph by an empty one (the released schedule's usual state)."""
    empty = torch.zeros(0, dtype=torch.long)
    state = model.other_parameter()
    for name in model.modality_names:
        state[f"graph_{name}_users"], state[f"graph_{name}_items"] = empty, empty
        state[f"graph_{name}_values"] = torch.zeros(0)
    model.load_other_parameter(state)
