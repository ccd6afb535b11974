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


# -- literal references (plain torch, dense) for the forward and loss tests ---------------------------


def multihead_attention_reference(views, w_q, w_k, w_cat, n_heads):
    """Paper attention across modalities (spec "Variants"), head by head and modality by modality.

    Head h of query modality m: q = (E^m W_q)[:, h-th slice], k_p = (E^p W_k)[:, h-th slice] for
    every key modality p, a = softmax_p(<q, k_p> / sqrt(d/H)), head = sum_p a_p E^p (the key
    modality's full view); the H heads concatenated times W_cat give Z^m; the output is mean_m Z^m.
    Returns (output (N, d), [Z^m]).
    """
    d = w_q.shape[0]
    d_h = d // n_heads
    per_modality = []
    for query in views:
        heads = []
        for h in range(n_heads):
            cols = slice(h * d_h, (h + 1) * d_h)
            q = query @ w_q[:, cols]
            scores = torch.stack([(q * (key @ w_k[:, cols])).sum(1) for key in views], dim=1) / d_h**0.5
            weights = torch.softmax(scores, dim=1)  # over the key modalities
            heads.append(sum(weights[:, p:p + 1] * key for p, key in enumerate(views)))
        per_modality.append(torch.cat(heads, dim=1) @ w_cat)
    return sum(per_modality) / len(per_modality), per_modality


def load_random_graphs(model, seed=0, n_pairs=150):
    """Give every modality its own count matrix: random (user, item) pairs over real ids, duplicates
    included (they are summed), some users and items left without edges."""
    gen = torch.Generator().manual_seed(seed)
    state = model.other_parameter()
    for k, name in enumerate(model.modality_names):
        users = torch.randint(1, model.n_users - 5, (n_pairs,), generator=gen)
        items = torch.randint(1, model.n_items - 3, (n_pairs,), generator=gen)
        users[:10], items[:10] = users[10:20], items[10:20]  # ten duplicated pairs
        state[f"graph_{name}_users"], state[f"graph_{name}_items"] = users, items
        state[f"graph_{name}_values"] = torch.ones(n_pairs)
    model.load_other_parameter(state)


def l2_rows(x):
    """F.normalize written out: x / max(||x||, 1e-12) per row."""
    return x / x.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12)


def literal_rows(user, item, train_mask):
    """S = norm((P_u P_i^T) * (1 - R)) (spec 1.4) on dense tensors."""
    return l2_rows((user @ item.t()) * (1.0 - train_mask))
