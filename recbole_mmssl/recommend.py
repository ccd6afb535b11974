"""Top-k recommendations from a trained checkpoint, as CSV or JSON.

    python -m recbole_mmssl.recommend --checkpoint=saved/MMSSL-xxx.pth --users=all --topk=20 --out=recs.csv
    python -m recbole_mmssl.recommend --checkpoint=saved/LightGCN-xxx.pth --users=users.txt --out=recs.json

The checkpoint (tensors and plain data, loaded with ``weights_only=True``) carries its config, so the
dataset and model are rebuilt exactly as trained; ``--data_path`` points at the data if it moved.
Each user's training items are excluded; a sequential model (e.g. MISSRec, SASRec) recommends the next
item after the user's whole history (all splits), and the history's items are excluded. Tokens are those of the dataset's atomic files.
CSV: ``user_id,rank,item_id,score`` one row per recommendation; JSON: ``{user_id: [[item_id, score], ...]}``.
Every option is checked before the data is loaded or anything is scored (the output folder must exist,
the device must be there), and data that differ from those the model was trained on are refused.
"""

import argparse
import csv
import json
import logging
import os
import sys

import numpy as np
import torch
from recbole.data import data_preparation
from recbole.data.interaction import Interaction

from recbole_mmssl.atomic_write import atomic_file
from recbole_mmssl.checkpoint import dataset_fingerprint, load_checkpoint
from recbole_mmssl.cli import ArgumentParser, check_not_an_input, check_output_file, run_cli
from recbole_mmssl.config import Config
from recbole_mmssl.devices import check_device
from recbole_mmssl.errors import DataError, UsageError, read_utf8_text
from recbole_mmssl.registry import get_model

logger = logging.getLogger(__name__)


def load_trained(checkpoint, data_path=None, device="cpu"):
    """(config, train dataset, model in eval mode) rebuilt from a plugin checkpoint.

    The data are checked against the checkpoint's fingerprint of the data it was trained on: a model
    scored on other interactions or features would give recommendations that look fine and are not.
    """
    device = check_device(device)
    state = load_checkpoint(checkpoint)
    saved = dict(state["config"])
    if data_path:
        saved["data_path"] = data_path
    # use_gpu picks the device (recbole_mmssl.config); gpu_id stays as trained: it sets CUDA_VISIBLE_DEVICES,
    # which check_device has already read for a CUDA device
    saved.update(use_gpu=device.type == "cuda", show_progress=False)
    negatives = saved.get("train_neg_sample_args")
    if isinstance(negatives, dict) and negatives.get("distribution") == "none":
        saved["train_neg_sample_args"] = None  # RecBole's resolved "no sampling" (CE models) is not a valid input
    config = Config(model=saved["model"], dataset=saved["dataset"], config_dict=saved, strict=False)
    config.final_config_dict["device"] = device
    from recbole_mmssl.quick_start import create_dataset

    dataset = create_dataset(config)
    trained_on = state.get("data")
    if trained_on:
        now = dataset_fingerprint(dataset)
        if now["sha256"] != trained_on["sha256"]:
            def counts(f):
                return f"{f['users']} users x {f['items']} items, {f['interactions']} interactions"

            raise DataError(
                config["data_path"],
                f"holds other data than {checkpoint} was trained on: {counts(now)} here, {counts(trained_on)} "
                f"there" + (" (same sizes, other ids, interactions or features)"
                            if counts(now) == counts(trained_on) else ""),
                "pass --data_path=DIR with the dataset the model was trained on, or train on these data",
            )
    train_data, _, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(device)
    try:
        model.load_state_dict(state["state_dict"])
        model.load_other_parameter(state["other_parameter"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise DataError(checkpoint, f"does not fit the model rebuilt from its config: {str(err).splitlines()[0]}",
                        "use the code version and data the checkpoint was trained with") from None
    model.eval()
    from recbole.model.abstract_recommender import SequentialRecommender

    # a sequential model continues each user's whole history: every split's rows, not only train's
    return config, (dataset if isinstance(model, SequentialRecommender) else train_data._dataset), model


def read_user_tokens(path):
    """User tokens of a ``--users`` file (one per line; a tab-separated first column is taken)."""
    fix = "give a UTF-8 text file with one user token per line, or --users=all"
    text = read_utf8_text(path, "--users file not found", "--users is a folder, not a file", fix)
    return [line.strip().split("\t")[0] for line in text.splitlines() if line.strip()]


def read_users(users_arg, dataset):
    """Internal ids of the requested user tokens; unknown tokens are warned about and skipped."""
    uid_field = dataset.uid_field
    if users_arg == "all":
        return np.arange(1, dataset.user_num)
    tokens = read_user_tokens(users_arg)
    if tokens and tokens[0].split(":")[0] == uid_field:
        tokens = tokens[1:]  # an atomic-style header line
    known = dataset.field2token_id[uid_field]
    unknown = [t for t in tokens if t not in known]
    if unknown:
        shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        logger.warning(f"{len(unknown)} user(s) of {users_arg} are not in the dataset and are skipped: {shown}")
    ids = [known[t] for t in tokens if t in known]
    if not ids:
        raise DataError(users_arg, f"none of its {len(tokens)} user token(s) is in the dataset: nothing to recommend",
                        f"list user tokens of {dataset.dataset_name}'s interaction files, or pass --users=all")
    return np.asarray(ids)


def model_inputs(model, dataset):
    """(inputs for a batch of user ids, CSR of each user's items to leave out) for the model's kind.

    General models get the user ids, and their training items are left out. Sequential models get
    each user's whole history (latest row and its target, :mod:`recbole_mmssl.data.sequences`), the
    next item after it is recommended, and the history's items are left out.
    """
    from recbole.model.abstract_recommender import SequentialRecommender

    if not isinstance(model, SequentialRecommender):
        return (lambda users: {dataset.uid_field: torch.as_tensor(users, dtype=torch.long)}), \
            dataset.inter_matrix(form="csr")
    from recbole_mmssl.data.sequences import history_matrix, latest_histories

    item_seq, item_len = latest_histories(dataset, model.max_seq_length)

    def inputs(users):
        users = torch.as_tensor(users, dtype=torch.long)
        return {dataset.uid_field: users, model.ITEM_SEQ: item_seq[users], model.ITEM_SEQ_LEN: item_len[users]}

    return inputs, history_matrix(item_seq, dataset.item_num)


@torch.no_grad()
def top_k(model, dataset, user_ids, k, batch_size=1024):
    """(items, scores) arrays of shape (n_users, k): best unseen items first, padding item excluded."""
    inputs, train = model_inputs(model, dataset)
    device = next(model.parameters()).device
    all_items, all_scores = [], []
    for start in range(0, len(user_ids), batch_size):
        users = user_ids[start : start + batch_size]
        interaction = Interaction(inputs(users)).to(device)
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
    if path.endswith(".json"):
        payload = {
            str(u): [[str(i), float(s)] for i, s, ok in zip(row_items, row_scores, row_ok) if ok]
            for u, row_items, row_scores, row_ok in zip(user_tokens, item_tokens, scores, finite)
        }
        with atomic_file(path, "w") as f:
            json.dump(payload, f)
    elif path.endswith(".csv"):
        with atomic_file(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user_id", "rank", "item_id", "score"])
            for u, row_items, row_scores, row_ok in zip(user_tokens, item_tokens, scores, finite):
                writer.writerows(
                    (u, rank, i, f"{s:.6g}")
                    for rank, (i, s, ok) in enumerate(zip(row_items, row_scores, row_ok), 1)
                    if ok
                )
    else:
        raise UsageError(path, "--out must end with .csv or .json", "pass --out=recs.csv or --out=recs.json")


PROG = "python -m recbole_mmssl.recommend"


def _main(argv):
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--users", default="all", help="'all' or a file with one user token per line")
    parser.add_argument("--topk", type=int, default=20)
    parser.add_argument("--out", required=True, help="recs.csv or recs.json")
    parser.add_argument("--data_path", default=None, help="where the dataset folder is now, if it moved")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    args = parser.parse_args(argv)
    # everything that can be checked without the data, before the data are loaded and scored
    if args.topk < 1:
        parser.error(f"--topk must be at least 1, got {args.topk}")
    check_output_file(args.out, "--out", suffixes=(".csv", ".json"))
    check_not_an_input(args.out, "--out", {"--users": None if args.users == "all" else args.users,
                                           "--checkpoint": args.checkpoint})
    if args.users != "all":
        read_user_tokens(args.users)
    if args.data_path is not None and not os.path.isdir(args.data_path):
        raise DataError(args.data_path, "--data_path is not a folder",
                        "pass the folder that holds the dataset's folder (RecBole's data_path)")
    check_device(args.device)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config, dataset, model = load_trained(args.checkpoint, args.data_path, args.device)
    users = read_users(args.users, dataset)
    if args.topk > dataset.item_num - 1:
        logger.warning(f"--topk={args.topk} exceeds the {dataset.item_num - 1} items: lists hold every unseen item")
    items, scores = top_k(model, dataset, users, args.topk)
    write_recommendations(args.out, dataset, users, items, scores)
    print(f"wrote top-{args.topk} recommendations for {len(users)} users to {args.out}")
    return 0


def main(argv=None):
    """The command: returns its exit code (0, 2 for a user error; ``--debug`` shows tracebacks)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
