"""Builders for the multimodal peer models' tests (VBPR, MMGCN, SLMRec, BM3, LATTICE, FREEDOM).

Small data comes from ``_model_util.write_tiny_dataset``; models and trainers are built the way
``recbole_mmssl.quick_start`` builds them (plugin Config, registry lookup, same seeding).
"""

import logging
import shutil

import numpy as np
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_mmssl.config import Config
from recbole_mmssl.data.dataset import MultimodalDataset
from recbole_mmssl.registry import get_model, get_trainer

# Small widths, CPU, no clutter; each model's own yaml gives the rest.
PEER_RUN = {
    "use_gpu": False,
    "seed": 7,
    "reproducibility": True,
    "benchmark_filename": ["train", "valid", "test"],
    "train_batch_size": 64,
    "embedding_size": 8,
    "epochs": 2,
    "show_progress": False,
    "feature_cache": False,
    "eval_batch_size": 4096,
    "topk": [5, 10],
    "valid_metric": "Recall@10",
    "state": "WARNING",
}


def peer_config_dict(folder, **overrides):
    """Config dict for the tiny data under ``folder`` (checkpoints inside it)."""
    return {"data_path": str(folder), "checkpoint_dir": str(folder / "saved"), **PEER_RUN, **overrides}


def peer_config(folder, model, name="tiny", **overrides):
    """A plugin Config for ``model`` on the tiny dataset ``name`` under ``folder``."""
    return Config(model=model, dataset=name, config_dict=peer_config_dict(folder, **overrides))


def build_peer(folder, model, name="tiny", **overrides):
    """(config, (train, valid, test) loaders, model, trainer), seeded as quick_start does."""
    logging.getLogger().setLevel(logging.WARNING)
    config = peer_config(folder, model, name, **overrides)
    init_seed(config["seed"], config["reproducibility"])
    dataset = MultimodalDataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    net = get_model(model)(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], model)(config, net)
    return config, (train_data, valid_data, test_data), net, trainer


def epoch_losses(trainer, train_data, epochs):
    """Mean training loss of each of ``epochs`` epochs of RecBole's Trainer."""
    losses = []
    for epoch in range(epochs):
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        losses.append(float(sum(loss)) if isinstance(loss, tuple) else float(loss))
    return losses


def first_batch(train_data):
    """The first training batch (an Interaction), as RecBole's Trainer would feed it."""
    return next(iter(train_data))


def all_user_scores(model, dataset):
    """(n_users, n_items) full_sort_predict scores in eval mode (for tiny data only)."""
    model.eval()
    users = torch.arange(dataset.user_num)
    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({dataset.uid_field: users}))
    return scores.view(dataset.user_num, -1)


def copy_with_new_features(folder, source, name, seed=1):
    """Dataset ``name``: ``source``'s interactions with other feature values of the same shapes."""
    rng = np.random.default_rng(seed)
    src, dst = folder / source, folder / name
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        suffix = path.name[len(source):]
        if path.name.endswith("_feat"):
            lines = path.read_text().splitlines()
            rows = [line.split("\t") for line in lines[1:]]
            dim = len(rows[0][1].split())
            new = [f"{item}\t" + " ".join(f"{v:.6f}" for v in rng.normal(size=dim)) for item, _ in rows]
            (dst / f"{name}{suffix}").write_text("\n".join([lines[0]] + new) + "\n")
        else:
            shutil.copy(path, dst / f"{name}{suffix}")
    return dst


def assert_loss_falls(trainer, train_data, epochs=6):
    """The training loss of RecBole's Trainer is finite and falls by at least 5% over ``epochs``."""
    losses = epoch_losses(trainer, train_data, epochs)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.95 * losses[0], losses


def assert_full_sort_scores_every_item_and_masks_training(model, trainer, train_data, valid_data):
    """full_sort_predict scores every item (and agrees with predict); RecBole's evaluator masks each
    user's training items and the padding item, and every validation user is checked."""
    dataset = train_data._dataset
    n_items = dataset.item_num
    train = dataset.inter_matrix(form="csr")
    result = trainer.evaluate(valid_data, load_best_model=False)  # also sets the trainer's item count
    assert 0.0 <= result["recall@10"] <= 1.0
    model.eval()
    checked = 0
    with torch.no_grad():
        for batch in valid_data:
            interaction = batch[0]
            users = interaction[dataset.uid_field]
            raw = model.full_sort_predict(interaction)
            assert raw.shape == (len(users) * n_items,) and torch.isfinite(raw).all()
            pairs = interaction.repeat_interleave(n_items)
            pairs.update(type(interaction)({dataset.iid_field: torch.arange(n_items).repeat(len(users))}))
            assert torch.allclose(model.predict(pairs), raw, atol=1e-5)
            _, scores, _, _ = trainer._full_sort_batch_eval(batch)
            for row, user in enumerate(users.tolist()):
                seen = train[user].indices.tolist()
                assert seen and torch.isinf(scores[row, seen]).all() and torch.isinf(scores[row, 0])
                assert torch.isfinite(scores[row]).sum() == n_items - 1 - len(seen)
                checked += 1
    assert checked == len(set(valid_data._dataset.inter_feat[dataset.uid_field].tolist()))
