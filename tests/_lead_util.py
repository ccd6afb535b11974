"""A tiny pre-split dataset in RecBole atomic files, with two modalities, for end-to-end tests."""

import numpy as np

SMALL_RUN = {
    "epochs": 2,
    "train_batch_size": 64,
    "eval_batch_size": 100000,
    "show_progress": False,
    "seed": 7,
    "state": "WARNING",
    "benchmark_filename": ["train", "valid", "test"],
    "load_col": {"inter": ["user_id", "item_id"]},
}


def write_tiny_dataset(root, name="tiny", n_users=40, n_items=80, per_user=6, modalities=(("image", 8), ("text", 5)),
                       seed=0):
    """Users 0..n_users-1 each with ``per_user`` distinct items: 4 train, 1 valid, 1 test."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "valid": [], "test": []}
    for user in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        splits["train"] += [(user, i) for i in items[:-2]]
        splits["valid"].append((user, items[-2]))
        splits["test"].append((user, items[-1]))
    # every item appears in train at least once so that the item set is fixed by the train split
    splits["train"] += [(n % n_users, i) for n, i in enumerate(range(n_items))]
    for split, pairs in splits.items():
        with open(folder / f"{name}.{split}.inter", "w") as f:
            f.write("user_id:token\titem_id:token\n")
            f.writelines(f"u{u}\ti{i}\n" for u, i in sorted(set(pairs)))
    for modality, dim in modalities:
        values = rng.normal(size=(n_items, dim)).astype(np.float32)
        with open(folder / f"{name}.{modality}_feat", "w") as f:
            f.write(f"item_id:token\t{modality}_feat:float_seq\n")
            f.writelines(f"i{i}\t{' '.join(repr(float(v)) for v in row)}\n" for i, row in enumerate(values))
    return folder


def tiny_config(tmp_path, **overrides):
    """Config dict for the tiny dataset under ``tmp_path`` with checkpoints inside ``tmp_path``."""
    return {"data_path": str(tmp_path), "checkpoint_dir": str(tmp_path / "saved"), **SMALL_RUN, **overrides}
