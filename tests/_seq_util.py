"""Tiny sequential datasets for MISSRec's tests: RecBole atomic files and UniSRec source folders.

Every user has a history of 4-9 items; rows follow UniSRec's leave-one-out layout (one training row
per prefix, then a validation and a test row). Item ``i_new`` occurs only as the target of one test
row, never in a training row: an inductive model must still score it by its features.
"""

import logging

import numpy as np
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_mmssl.config import Config
from recbole_mmssl.data.dataset import MultimodalSequentialDataset
from recbole_mmssl.registry import get_model, get_trainer

HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
NEW_ITEM = "i_new"


def user_histories(n_users=30, n_items=40, seed=0):
    """{user token: [item tokens]} with the last user's last item the never-trained ``i_new``."""
    rng = np.random.default_rng(seed)
    histories = {}
    for u in range(n_users):
        length = int(rng.integers(4, 10))
        histories[f"u{u}"] = [f"i{i}" for i in rng.choice(n_items, size=length, replace=False)]
    histories[f"u{n_users - 1}"][-1] = NEW_ITEM
    return histories


def split_rows(histories):
    """{split: [(user, history, target)]} in UniSRec's leave-one-out layout."""
    rows = {"train": [], "valid": [], "test": []}
    for user, items in histories.items():
        for t in range(1, len(items) - 2):
            rows["train"].append((user, items[:t], items[t]))
        rows["valid"].append((user, items[:-2], items[-2]))
        rows["test"].append((user, items[:-1], items[-1]))
    return rows


def write_seq_dataset(root, name="tinyseq", modalities=(("text", 8), ("image", 6), ("text_aug", 8)), seed=0,
                      histories=None):
    """Atomic files of a tiny sequential dataset under ``root/name``; returns (folder, features)."""
    histories = histories or user_histories(seed=seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in split_rows(histories).items():
        with open(folder / f"{name}.{split}.inter", "w") as f:
            f.write(HEADER)
            f.writelines(f"{u}\t{' '.join(h)}\t{t}\n" for u, h, t in rows)
    items = sorted({i for h in histories.values() for i in h})
    rng = np.random.default_rng(seed + 1)
    features = {}
    for modality, dim in modalities:
        values = rng.normal(size=(len(items), dim)).astype(np.float32)
        features[modality] = dict(zip(items, values))
        with open(folder / f"{name}.{modality}_feat", "w") as f:
            f.write(f"item_id:token\t{modality}_feat:float_seq\n")
            f.writelines(f"{i}\t{' '.join(repr(float(v)) for v in row)}\n" for i, row in zip(items, values))
    return folder, features


SEQ_RUN = {
    "use_gpu": False,
    "seed": 7,
    "reproducibility": True,
    "benchmark_filename": ["train", "valid", "test"],
    "alias_of_item_id": ["item_id_list"],
    "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
    "train_neg_sample_args": None,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
    "metrics": ["Recall", "NDCG"],
    "topk": [5, 10],
    "valid_metric": "NDCG@10",
    "MAX_ITEM_LIST_LENGTH": 12,
    "modalities": ["text", "image", "text_aug"],
    "hidden_size": 16,
    "inner_size": 32,
    "n_heads": 2,
    "train_batch_size": 16,
    "eval_batch_size": 64,
    "epochs": 2,
    "show_progress": False,
    "feature_cache": False,
    "state": "WARNING",
}


def seq_config_dict(root, **overrides):
    """Config dict for the tiny sequential data under ``root`` (checkpoints inside it)."""
    return {"data_path": str(root), "checkpoint_dir": str(root / "saved"), **SEQ_RUN, **overrides}


def build_missrec(root, name="tinyseq", **overrides):
    """(config, (train, valid, test) loaders, model, trainer), seeded as quick_start builds them."""
    logging.getLogger().setLevel(logging.WARNING)
    config = Config(model="MISSRec", dataset=name, config_dict=seq_config_dict(root, **overrides))
    init_seed(config["seed"], config["reproducibility"])
    dataset = MultimodalSequentialDataset(config)
    loaders = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("MISSRec")(config, loaders[0]._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "MISSRec")(config, model)
    return config, loaders, model, trainer


def first_batch(loader):
    return next(iter(loader))


def item_id(dataset, token):
    return int(dataset.field2token_id[dataset.iid_field][token])


def no_dropout(model):
    """Set every dropout probability of ``model`` to 0 (train-mode code paths, deterministic)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(module, torch.nn.MultiheadAttention):
            module.dropout = 0.0
    return model


def write_unisrec_source(folder, prefix="Toy", histories=None, feats=(("feat1CLS", 4), ("feat3CLS", 3)), seed=0):
    """A UniSRec folder: integer-token split files, .item2index, .user2index, .text and raw .feat<N>CLS."""
    histories = histories or {"A1": ["B1", "B2", "B3", "B4"], "A2": ["B2", "B5", "B3", "B6", "B1"],
                              "A3": ["B6", "B4", "B5", "B2"]}
    folder.mkdir(parents=True, exist_ok=True)
    items = sorted({i for h in histories.values() for i in h})
    item_index = {item: k for k, item in enumerate(items)}
    user_index = {user: k for k, user in enumerate(histories)}
    for split, rows in split_rows(histories).items():
        with open(folder / f"{prefix}.{split}.inter", "w") as f:
            f.write(HEADER)
            f.writelines(f"{user_index[u]}\t{' '.join(str(item_index[i]) for i in h)}\t{item_index[t]}\n"
                         for u, h, t in rows)
    (folder / f"{prefix}.item2index").write_text("".join(f"{i}\t{k}\n" for i, k in item_index.items()))
    (folder / f"{prefix}.user2index").write_text("".join(f"{u}\t{k}\n" for u, k in user_index.items()))
    (folder / f"{prefix}.text").write_text(
        "item_id:token\ttext:token_seq\n"
        + "".join(f"{i}\tThe {i} gadget, {k} inch. Industrial & Scientific Tools Cat{k % 2}. Brand{k % 3}. \n"
                  for i, k in item_index.items()))
    rng = np.random.default_rng(seed)
    arrays = {}
    for suffix, dim in feats:
        arrays[suffix] = rng.normal(size=(len(items), dim)).astype(np.float32)
        arrays[suffix].tofile(folder / f"{prefix}.{suffix}")
    return folder, item_index, arrays
