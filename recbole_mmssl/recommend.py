"""Top-k recommendations from a trained checkpoint, as CSV or JSON.

    python -m recbole_mmssl.recommend --checkpoint=saved/MMSSL-xxx.pth --users=all --topk=20 --out=recs.csv
    python -m recbole_mmssl.recommend --checkpoint=saved/LightGCN-xxx.pth --users=users.txt --out=recs.json

The checkpoint (tensors and plain data, loaded with ``weights_only=True``) carries its config, so the
dataset and model are rebuilt exactly as trained; ``--data_path`` points at the data if it moved.
Each user's training items are excluded. Tokens are those of the dataset's atomic files.
CSV: ``user_id,rank,item_id,score`` one row per recommendation; JSON: ``{user_id: [[item_id, score], ...]}``.
"""

import argparse
import csv
import json
import logging
import os

import numpy as np
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction

from recbole_mmssl.checkpoint import load_checkpoint
from recbole_mmssl.config import Config
from recbole_mmssl.registry import get_model

logger = logging.getLogger(__name__)


def load_trained(checkpoint, data_path=None, device="cpu"):
    """(config, train dataset, model in eval mode) rebuilt from a plugin checkpoint."""
    state = load_checkpoint(checkpoint, device)
    saved = dict(state["config"])
    if data_path:
        saved["data_path"] = data_path
    saved.update(gpu_id="" if device == "cpu" else saved.get("gpu_id", "0"), show_progress=False)
    config = Config(model=saved["model"], dataset=saved["dataset"], config_dict=saved)
    from recbole_mmssl.quick_start import create_dataset

    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state["other_parameter"])
    model.eval()
    return config, train_data._dataset, model


def read_users(users_arg, dataset):
    """Internal ids of the requested user tokens; unknown tokens are warned about and skipped."""
    uid_field = dataset.uid_field
    if users_arg == "all":
        return np.arange(1, dataset.user_num)
    with open(users_arg) as f:
        tokens = [line.strip().split("\t")[0] for line in f if line.strip()]
    if tokens and tokens[0].split(":")[0] == uid_field:
        tokens = tokens[1:]  # an atomic-style header line
    known = dataset.field2token_id[uid_field]
    unknown = [t for t in tokens if t not in known]
    if unknown:
        shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        logger.warning(f"{len(unknown)} user(s) of {users_arg} are not in the dataset and are skipped: {shown}")
    ids = [known[t] for t in tokens if t in known]
    if not ids:
        raise ValueError(f"None of the users in {users_arg} is in the dataset: nothing to recommend.")
    return np.asarray(ids)


@torch.no_grad()
def top_k(model, dataset, user_ids, k, batch_size=1024):
    """(items, scores) arrays of shape (n_users, k): best unseen items first, padding item excluded."""
    train = dataset.inter_matrix(form="csr")
    device = next(model.parameters()).device
    all_items, all_scores = [], []
    for start in range(0, len(user_ids), batch_size):
        users = user_ids[start : start + batch_size]
        interaction = Interaction({dataset.uid_field: torch.as_tensor(users, dtype=torch.long)}).to(device)
        scores = model.full_sort_predict(interaction).view(len(users), -1).float()
        scores[:, 0] = -torch.inf
        rows = train[users].tocoo()
        scores[torch.as_tensor(rows.row, dtype=torch.long), torch.as_tensor(rows.col, dtype=torch.long)] = -torch.inf
        best = torch.topk(scores, min(k, scores.shape[1] - 1), dim=1)
        all_items.append(best.indices.cpu().numpy())
        all_scores.append(best.values.cpu().numpy())
    return np.concatenate(all_items), np.concatenate(all_scores)


def write_recommendations(path, dataset, user_ids, items, scores):
    """CSV or JSON by extension, written to a temporary name then renamed."""
    user_tokens = dataset.id2token(dataset.uid_field, user_ids)
    item_tokens = dataset.id2token(dataset.iid_field, items.reshape(-1)).reshape(items.shape)
    finite = np.isfinite(scores)  # users with fewer unseen items than k
    tmp = f"{path}.tmp"
    if path.endswith(".json"):
        payload = {
            str(u): [[str(i), float(s)] for i, s, ok in zip(row_items, row_scores, row_ok) if ok]
            for u, row_items, row_scores, row_ok in zip(user_tokens, item_tokens, scores, finite)
        }
        with open(tmp, "w") as f:
            json.dump(payload, f)
    elif path.endswith(".csv"):
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user_id", "rank", "item_id", "score"])
            for u, row_items, row_scores, row_ok in zip(user_tokens, item_tokens, scores, finite):
                writer.writerows(
                    (u, rank, i, f"{s:.6g}")
                    for rank, (i, s, ok) in enumerate(zip(row_items, row_scores, row_ok), 1)
                    if ok
                )
    else:
        raise ValueError(f"--out {path}: use a .csv or .json file name")
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--users", default="all", help="'all' or a file with one user token per line")
    parser.add_argument("--topk", type=int, default=20)
    parser.add_argument("--out", required=True, help="recs.csv or recs.json")
    parser.add_argument("--data_path", default=None, help="where the dataset folder is now, if it moved")
    parser.add_argument("--device", default="cpu")
    args, _ = parser.parse_known_args(argv)
    if not args.out.endswith((".csv", ".json")):
        parser.error(f"--out {args.out}: use a .csv or .json file name")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config, dataset, model = load_trained(args.checkpoint, args.data_path, args.device)
    users = read_users(args.users, dataset)
    items, scores = top_k(model, dataset, users, args.topk)
    write_recommendations(args.out, dataset, users, items, scores)
    print(f"wrote top-{args.topk} recommendations for {len(users)} users to {args.out}")


if __name__ == "__main__":
    main()
