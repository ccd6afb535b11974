"""Why does a model's validation curve peak at epoch 1-4? Per-epoch validation score next to how
popularity-bound and how collapsed its recommendations are.

    python benchmarks/studies/collapse_curve.py [--model=BM3] --dataset=tiktok --data_path=DIR --epochs=40

Written for BM3 (Zhou et al., WWW 2023), which trains without negative samples: only the predictor,
the stop-gradient and the dropout targets keep its representations from collapsing; it serves any
model with ``score_tables()`` (MMGCN's early TikTok peak, too). This trains ``--model`` with its property
file's values (plus ``--set key=value`` overrides) and after every epoch records, on validation only:

* ``valid``: Recall@20 (the early-stopping score of every run here);
* ``pop_share``: the share of the validation users' top-20 lists (training items masked) that lies
  in the 100 items with the most training interactions;
* ``user_cos``: the mean cosine between each user's scoring vector and the mean user vector
  (1.0 = every user gets the same list: a collapsed model ranks by one direction only);
* ``pop_valid``: Recall@20 of ranking every user's unseen items by training popularity, the
  same for every epoch (the reference a collapsed model falls back to).

Writes ``--out`` (.md and .json).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

TOPK = 20
POPULAR = 100


def validation_targets(valid_data):
    """{user: set of validation items} from RecBole's validation loader's dataset."""
    dataset = valid_data._dataset
    users = dataset.inter_feat[dataset.uid_field].numpy()
    items = dataset.inter_feat[dataset.iid_field].numpy()
    targets = {}
    for u, i in zip(users.tolist(), items.tolist()):
        targets.setdefault(u, set()).add(i)
    return targets


def top_lists(user_table, item_table, users, train_csr, k=TOPK):
    """Each user's top-k items by dot product, training items and the padding item masked."""
    scores = user_table[users] @ item_table.t()
    scores[:, 0] = -torch.inf
    for row, user in enumerate(users.tolist()):
        seen = train_csr[user].indices
        scores[row, torch.as_tensor(seen, dtype=torch.long)] = -torch.inf
    return scores.topk(k, dim=1).indices


def recall(lists, users, targets):
    hits = [len(targets[u] & set(row)) / len(targets[u]) for u, row in zip(users.tolist(), lists.tolist())]
    return float(np.mean(hits))


def popularity_lists(train_csr, users, n_items, k=TOPK):
    counts = torch.as_tensor(np.asarray(train_csr.sum(axis=0)).ravel(), dtype=torch.float32)
    return top_lists(torch.ones(int(users.max()) + 1, 1), counts[:n_items].unsqueeze(1), users, train_csr, k)


def diagnose(model, users, train_csr, targets, popular):
    model.eval()
    with torch.no_grad():
        user_table, item_table = model.score_tables()
    lists = top_lists(user_table, item_table, users, train_csr)
    vectors = user_table[users]
    mean = vectors.mean(0, keepdim=True)
    return {
        "valid": recall(lists, users, targets),
        "pop_share": float(torch.isin(lists, popular).float().mean()),
        "user_cos": float(torch.nn.functional.cosine_similarity(vectors, mean).mean()),
    }


def run_seed(args, seed):
    from benchmarks.compare import parse_model_spec
    from recbole_mmssl import threads
    from recbole_mmssl.quick_start import build

    threads.apply()
    overrides = parse_model_spec(f"{args.model}:" + ";".join(args.set))[1]  # values read as compare.py reads them
    config, (train_data, valid_data, _), model, trainer = build(
        args.model, args.dataset, None,
        {"data_path": os.path.abspath(args.data_path), "seed": seed, "show_progress": False, "state": "WARNING",
         "checkpoint_dir": os.path.join(os.path.expanduser("~"), ".cache", "recbole-mmssl", "collapse_curve"),
         **overrides})
    dataset = train_data._dataset
    train_csr = dataset.inter_matrix(form="csr")
    targets = validation_targets(valid_data)
    users = torch.as_tensor(sorted(targets), dtype=torch.long)
    counts = np.asarray(train_csr.sum(axis=0)).ravel()
    popular = torch.as_tensor(np.argsort(-counts)[:POPULAR], dtype=torch.long)
    pop_valid = recall(popularity_lists(train_csr, users, dataset.item_num), users, targets)
    rows = []
    for epoch in range(args.epochs):
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        row = {"epoch": epoch, "loss": float(sum(loss)) if isinstance(loss, tuple) else float(loss),
               **diagnose(model, users, train_csr, targets, popular)}
        rows.append(row)
        print(f"seed {seed} " + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in row.items()), flush=True)
    return {"seed": seed, "pop_valid": pop_valid, "overrides": overrides, "epochs": rows}


def provenance():
    """Commit, date, hardware and threads of this run, for the report's header."""
    from benchmarks.compare import code_version, hardware

    return {"code": code_version(), "date": time.strftime("%Y-%m-%d"), "hardware": hardware("cpu"),
            "threads": torch.get_num_threads()}


def write(out, runs, args, made):
    with open(out + ".json", "w") as f:
        json.dump({"model": args.model, "dataset": args.dataset, **made, "runs": runs}, f, indent=1)
    lines = [f"# {args.model} on {args.dataset}: validation Recall@20, popularity share and user collapse per epoch",
             "", "`python benchmarks/studies/collapse_curve.py " + " ".join(sys.argv[1:]) + "`", "",
             f"Commit {made['code']}, {made['date']}, {made['hardware']}, {made['threads']} thread(s); RecBole's "
             "split of the dataset's property file, validation only (the test split is never scored here).", "",
             f"pop_share: share of the top-{TOPK} lists in the {POPULAR} most popular training items; user_cos: "
             "mean cosine of the user vectors to their mean (1 = one list for everyone); pop valid: Recall@20 "
             "of ranking by training popularity.", ""]
    for run in runs:
        lines += [f"## seed {run['seed']} {run['overrides'] or ''} (pop valid {run['pop_valid']:.4f})", "",
                  "| epoch | loss | valid R@20 | pop_share | user_cos |", "|---|---|---|---|---|"]
        lines += [f"| {r['epoch']} | {r['loss']:.4f} | {r['valid']:.4f} | {r['pop_share']:.3f} | {r['user_cos']:.3f} |"
                  for r in run["epochs"]]
        lines.append("")
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="BM3")
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--seeds", default="2022,2023")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--set", action="append", default=[], help="key=value override (repeatable)")
    parser.add_argument("--out", default=os.path.join(REPO, "results", "bm3_tiktok_curve"))
    args = parser.parse_args(argv)
    runs = [run_seed(args, int(s)) for s in args.seeds.split(",")]
    write(args.out, runs, args, provenance())
    print("wrote", args.out + ".md")


if __name__ == "__main__":
    main()
