"""Where does a model help? Test metrics broken down by user activity and item popularity.

User groups follow the MMSSL paper's Table 4: test users sorted by their number of training
interactions and cut into up to five groups of about equal size, never splitting users with the same
count (so groups are as equal as the ties allow). Item groups: test interactions by the
training popularity of their item (five groups of about equal numbers of items, by popularity rank),
plus, for multimodal data, test interactions whose item has no modality features.
Scores and masking are RecBole's own full-ranking ones (train and, for test, validation items masked),
and the metrics are standard Recall and NDCG, so the overall row equals RecBole's test result.
"""

import re

import numpy as np
import torch

N_GROUPS = 5
#: The name of an item popularity group row ("items P3"), as ``_item_rows`` writes it.
POPULARITY_GROUP = re.compile(r"items P\d+")


@torch.no_grad()
def ranked_hits(trainer, eval_data, k):
    """Per user of ``eval_data``: internal id, top-k items and hit matrix (n_users, k), test item lists."""
    trainer.model.eval()
    users, tops, hits, ground_truth = [], [], [], []
    for batched_data in eval_data:
        interaction, scores, positive_u, positive_i = trainer._full_sort_batch_eval(batched_data)
        top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
        batch_users = interaction[eval_data._dataset.uid_field].cpu().numpy()
        pos_u, pos_i = positive_u.cpu().numpy(), positive_i.cpu().numpy()
        for row in range(len(batch_users)):  # per-user bookkeeping on at most k items: not a hot path
            truth = pos_i[pos_u == row]
            users.append(batch_users[row])
            tops.append(top[row])
            hits.append(np.isin(top[row], truth))
            ground_truth.append(truth)
    return np.asarray(users), np.asarray(tops), np.asarray(hits), ground_truth


def user_metrics(hits, ground_truth, k):
    """Standard Recall@k and NDCG@k per user."""
    n_truth = np.array([len(t) for t in ground_truth])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recall = hits[:, :k].sum(1) / n_truth
    dcg = (hits[:, :k] * discounts).sum(1)
    ideal = np.array([discounts[: min(n, k)].sum() for n in n_truth])
    return recall, dcg / ideal


def equal_size_groups(values, n_groups=N_GROUPS):
    """Group index per element, 0..m-1 (m <= n_groups): sorted by value and cut into runs of about
    equal size, but never between two equal values.

    Why: on TikTok most test users have 1-3 training items, so cutting equal-size runs of the
    sorted users puts users with the same count into different groups. Here a run starts at the
    first element of its value: a group holds whole values, groups keep their order, and a value
    holding more than a group's share makes fewer, larger groups (renumbered without gaps).
    """
    values = np.asarray(values)
    if len(values) == 0:
        return np.zeros(0, dtype=int)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.searchsorted(ordered, ordered, side="left")  # rank of the first element of each value
    cut = first * n_groups // len(values)
    groups = np.empty(len(values), dtype=int)
    groups[order] = np.unique(cut, return_inverse=True)[1]
    return groups


def breakdown(trainer, test_data, train_dataset, k=20):
    """Rows of {group, range, count, recall, ndcg} for users and for items."""
    users, tops, hits, ground_truth = ranked_hits(trainer, test_data, k)
    recall, ndcg = user_metrics(hits, ground_truth, k)
    train = train_dataset.inter_matrix(form="csr")
    user_degree = np.diff(train.indptr)[users]
    rows = [_row("all users", "", recall, ndcg)]
    groups = equal_size_groups(user_degree)
    for g in range(groups.max() + 1 if len(groups) else 0):
        mask = groups == g
        if mask.any():
            span = f"{user_degree[mask].min()}-{user_degree[mask].max()} train interactions"
            rows.append(_row(f"users G{g + 1}", span, recall[mask], ndcg[mask]))
    item_rows = _item_rows(tops, ground_truth, train, train_dataset)
    return {"k": k, "users": rows, "items": item_rows}


def _row(name, span, recall, ndcg):
    return {"group": name, "range": span, "count": int(len(recall)),
            "recall": float(np.mean(recall)) if len(recall) else None,
            "ndcg": float(np.mean(ndcg)) if len(ndcg) else None}


def _item_rows(tops, ground_truth, train, train_dataset):
    """Recall of the test interactions grouped by their item: popularity groups and feature coverage."""
    popularity = np.asarray(train.sum(0)).ravel().astype(np.int64)
    item_groups = np.full(len(popularity), -1)
    item_groups[1:] = equal_size_groups(popularity[1:])
    items = np.concatenate(ground_truth)
    found = np.concatenate([np.isin(truth, top) for top, truth in zip(tops, ground_truth)])
    rows = [{"group": "all test interactions", "range": "", "count": int(len(items)), "recall": float(found.mean())}]
    for g in range(item_groups.max() + 1):
        members = item_groups[items] == g
        in_group = popularity[1:][item_groups[1:] == g]
        rows.append({"group": f"items P{g + 1}", "range": f"{in_group.min()}-{in_group.max()} train interactions",
                     "count": int(members.sum()), "recall": float(found[members].mean()) if members.any() else None})
    masks = getattr(train_dataset, "modality_masks", None)
    if masks:
        has_all = np.logical_and.reduce([m.cpu().numpy() for m in masks.values()])
        for name, keep in (("items with features", has_all[items]), ("items without features", ~has_all[items])):
            rows.append({"group": name, "range": "", "count": int(keep.sum()),
                         "recall": float(found[keep].mean()) if keep.any() else None})
    return rows


def tail_row(item_rows):
    """The long tail in one row: test interactions whose item lies outside the most popular group.

    Why: each tail group holds a few hundred test interactions, too few to compare models on alone.
    Derived from the stored groups, so it also serves runs recorded before it existed: each group's
    recall is its share of found interactions, hence the count-weighted mean is exact. None with
    fewer than three popularity groups (the tail would be one group, already a row).
    """
    groups = [r for r in item_rows if POPULARITY_GROUP.fullmatch(r["group"])]
    if len(groups) < 3:
        return None
    tail = groups[:-1]
    scored = [r for r in tail if r["recall"] is not None and r["count"]]
    scored_count = sum(r["count"] for r in scored)
    low = tail[0]["range"].split()[0].split("-")[0]
    high = tail[-1]["range"].split()[0].split("-")[-1]
    return {"group": f"items P1-P{len(tail)}", "range": f"{low}-{high} train interactions",
            "count": int(sum(r["count"] for r in tail)),
            "recall": sum(r["count"] * r["recall"] for r in scored) / scored_count if scored_count else None}


def _with_tail(item_rows):
    """Item rows with the tail row after the last popularity group (unchanged when there is none)."""
    row = tail_row(item_rows)
    if row is None:
        return list(item_rows)
    last = max(n for n, r in enumerate(item_rows) if POPULARITY_GROUP.fullmatch(r["group"]))
    return list(item_rows[: last + 1]) + [row] + list(item_rows[last + 1:])


def write_breakdown(result, path_prefix):
    """``<prefix>.md`` (tables) and ``<prefix>.png`` (bars) for one or more runs' breakdowns.

    ``result`` maps a run label to its ``breakdown(...)`` dict.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(result)
    k = next(iter(result.values()))["k"]
    lines = [f"# Test Recall@{k} / NDCG@{k} by user activity and item popularity", "",
             "Users: up to five groups of about equal size by number of training interactions (MMSSL paper, "
             "Table 4), cut only between distinct counts (users with the same count share a group). "
             "Items: test interactions grouped by the training popularity of their item (up to five groups of "
             "about equal numbers of items, cut only between distinct popularities, plus one row joining "
             "every group but the most popular: the long tail), and by whether the item "
             "has modality features. RecBole full ranking, "
             "train and validation items masked, standard NDCG.", ""]
    for part, metrics in (("users", ("recall", "ndcg")), ("items", ("recall",))):
        head = "| group | range | count | " + " | ".join(f"{lab} {m}@{k}" for lab in labels for m in metrics) + " |"
        lines += [head, "|" + "---|" * (3 + len(labels) * len(metrics))]
        rows_of = {lab: _with_tail(result[lab][part]) if part == "items" else result[lab][part] for lab in labels}
        first = rows_of[labels[0]]
        by_group = {lab: {r["group"]: r for r in rows_of[lab]} for lab in labels}
        for row in first:
            cells = []
            for lab in labels:
                other = by_group[lab].get(row["group"], {})
                cells += ["-" if other.get(m) is None else f"{other[m]:.4f}" for m in metrics]
            lines.append(f"| {row['group']} | {row['range']} | {row['count']} | " + " | ".join(cells) + " |")
        lines.append("")
    with open(path_prefix + ".md", "w") as f:
        f.write("\n".join(lines))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, part in zip(axes, ("users", "items")):
        groups = [r["group"] for r in result[labels[0]][part]]
        width = 0.8 / len(labels)
        for n, lab in enumerate(labels):
            rows = {r["group"]: r for r in result[lab][part]}
            values = [rows.get(g, {}).get("recall") or 0 for g in groups]
            ax.bar([x + n * width for x in range(len(groups))], values, width=width, label=lab)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(groups))])
        ax.set_xticklabels(groups, rotation=25, ha="right")
        ax.set_ylabel(f"test Recall@{k}")
        ax.set_title(f"by {'user activity' if part == 'users' else 'item popularity / features'}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path_prefix + ".png", dpi=110)
    plt.close(fig)
    return [path_prefix + ".md", path_prefix + ".png"]
