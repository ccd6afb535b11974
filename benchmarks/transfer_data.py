"""Public text-bearing sequence data -> UniSRec folders, for MISSRec's transfer experiment.

MISSRec's own pre-training domains (five Amazon categories with CLIP features) were only ever on file
hosts. Two public substitutes with item titles, both on GitHub:

* MicroLens-50k (Ni et al. 2023; ``muhhpu/MUSER``, ``data/microlens/``): ``MicroLens-50k_pairs.tsv``
  (user<TAB>item item ..., chronological) and ``MicroLens-50k_titles.csv`` (item,title);
* Amazon-2018 Video Games as processed by UniSRec ("Games-6k" of ``RUCAIBox/LLMRank``,
  ``llmrank/dataset/Games-6k/``): its ``.test.inter`` rows hold each user's history and last item,
  ``.item`` the titles. Its ``.train.inter`` is not in the repository snapshot (too large), so the training rows are
  rebuilt from the test rows' histories (UniSRec's layout: one row per prefix).

Both become UniSRec folders (leave-one-out: last item test, the one before validation; histories capped
at 50 as UniSRec's), which ``python -m recbole_mmssl.data.convert unisrec`` then encodes:

    python benchmarks/transfer_data.py --microlens DIR --games DIR --out DIR [--train-rows longest]

``--train-rows longest`` keeps one training row per user (the longest prefix) instead of every prefix:
MISSRec's sequence-level contrastive pre-training then sees each user once per epoch, which makes an
epoch on two CPU cores about six times cheaper.
"""

import argparse
import csv
import os

MAX_LEN = 50
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def leave_one_out(histories, train_rows="all"):
    """{split: [(user, history, target)]} from {user: [items]} (users with fewer than 3 items are dropped)."""
    rows = {"train": [], "valid": [], "test": []}
    for user, items in histories.items():
        if len(items) < 3:
            continue
        prefixes = [(items[max(0, t - MAX_LEN):t], items[t]) for t in range(1, len(items) - 2)]
        if train_rows == "longest":
            prefixes = prefixes[-1:]
        rows["train"] += [(user, h, t) for h, t in prefixes]
        rows["valid"].append((user, items[-2 - MAX_LEN:-2], items[-2]))
        rows["test"].append((user, items[-1 - MAX_LEN:-1], items[-1]))
    return rows


def write_unisrec(folder, prefix, rows, titles):
    """A UniSRec folder: integer-token splits, .item2index, .user2index, .text (items without a title skipped)."""
    os.makedirs(folder, exist_ok=True)
    items = sorted({i for split in rows.values() for _, h, t in split for i in h + [t]}, key=_natural)
    users = sorted({u for split in rows.values() for u, _, _ in split}, key=_natural)
    item_index = {item: k for k, item in enumerate(items)}
    user_index = {user: k for k, user in enumerate(users)}
    for split, split_rows in rows.items():
        with open(os.path.join(folder, f"{prefix}.{split}.inter"), "w") as f:
            f.write(HEADER)
            f.writelines(f"{user_index[u]}\t{' '.join(str(item_index[i]) for i in h)}\t{item_index[t]}\n"
                         for u, h, t in split_rows)
    with open(os.path.join(folder, f"{prefix}.item2index"), "w") as f:
        f.writelines(f"{item}\t{k}\n" for item, k in item_index.items())
    with open(os.path.join(folder, f"{prefix}.user2index"), "w") as f:
        f.writelines(f"{user}\t{k}\n" for user, k in user_index.items())
    with open(os.path.join(folder, f"{prefix}.text"), "w") as f:
        f.write("item_id:token\ttext:token_seq\n")
        f.writelines(f"{item}\t{_clean(titles[item])}\n" for item in items if item in titles)
    return {"users": len(users), "items": len(items), **{split: len(r) for split, r in rows.items()}}


def _natural(token):
    return (0, int(token)) if token.isdigit() else (1, token)


def _clean(text):
    return " ".join(str(text).replace("\t", " ").split())


def microlens(folder):
    """({user: [items]}, {item: title}) of MicroLens-50k."""
    histories = {}
    with open(os.path.join(folder, "MicroLens-50k_pairs.tsv"), encoding="utf-8") as f:
        for line in f:
            user, _, items = line.rstrip("\n").partition("\t")
            if items.strip():
                histories[user.strip()] = items.split()
    with open(os.path.join(folder, "MicroLens-50k_titles.csv"), encoding="utf-8", newline="") as f:
        titles = {row["item"]: row["title"] for row in csv.DictReader(f)}
    return histories, titles


def games(folder):
    """({user: [items]}, {item: title}) of Games-6k: each test row's history followed by its target."""
    histories = {}
    with open(os.path.join(folder, "Games-6k.test.inter"), encoding="utf-8") as f:
        next(f)
        for line in f:
            user, history, target = line.rstrip("\n").split("\t")
            histories[user] = history.split() + [target]
    titles = {}
    with open(os.path.join(folder, "Games-6k.item"), encoding="utf-8") as f:
        next(f)
        for line in f:
            item, _, title = line.rstrip("\n").partition("\t")
            titles[item] = title
    return histories, titles


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--microlens", help="folder with MicroLens-50k_pairs.tsv and MicroLens-50k_titles.csv")
    parser.add_argument("--games", help="folder with Games-6k.test.inter and Games-6k.item")
    parser.add_argument("--out", required=True, help="where the UniSRec folders MicroLens/ and Games/ go")
    parser.add_argument("--train-rows", choices=("all", "longest"), default="all")
    args = parser.parse_args(argv)
    for name, reader, source in (("MicroLens", microlens, args.microlens), ("Games", games, args.games)):
        if not source:
            continue
        histories, titles = reader(source)
        summary = write_unisrec(os.path.join(args.out, name), name, leave_one_out(histories, args.train_rows), titles)
        print(f"{name}: {summary}")


if __name__ == "__main__":
    main()
