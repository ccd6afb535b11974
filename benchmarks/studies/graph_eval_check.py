"""Do MMSSL's modality graphs help or hurt at evaluation? One checkpoint, three graph states.

    python benchmarks/studies/graph_eval_check.py --checkpoint=saved/MMSSL-<time>.pth [--data_path=DIR]

A ``paper`` model evaluates with whatever modality graphs its last training batches left.
This re-evaluates one trained checkpoint on validation (never test) with
  (a) the graphs saved in the checkpoint,
  (b) empty graphs (no modality ID views: u0 = E_u),
  (c) graphs rebuilt for every user from the model's own top-k (k as trained, training items excluded),
and writes ``--out`` (.md and .json) with Recall/NDCG@20 and the share of users with edges.
"""

import argparse
import json
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)


def coverage(model):
    """Share of the users with training items that have modality edges, per modality."""
    return {name: model.graphs.coverage(name)[0] / model.n_active_users for name in model.modality_names}


def set_graphs(model, pairs):
    """Replace every modality graph by the given (users, items) pairs (internal item ids)."""
    for name, (users, items) in pairs.items():
        model.graphs.counts[name] = (users, items, torch.ones(users.shape[0], device=users.device))
        model.graphs._rebuild(name)
    model.drop_eval_cache()


@torch.no_grad()
def topk_for_all_users(model, sampler, chunk=1024):
    """Each active user's top-k items per modality from the model's own relation rows (eval mode)."""
    from recbole_mmssl.model.mmssl.graphs import topk_pairs

    model.eval()
    out = model.forward()
    active = torch.nonzero(torch.as_tensor(sampler.degree) > 0).flatten()
    pairs = {name: ([], []) for name in model.modality_names}
    for start in range(0, active.shape[0], chunk):
        users = active[start:start + chunk]
        train_rows = sampler.train_rows(users)
        for name, h_u, h_i in zip(model.modality_names, out.feat_user, out.feat_item):
            scores = model.relation_rows(h_u, h_i, users, train_rows).masked_scores()
            pair_users, cols = topk_pairs(users, scores, model.topk, "aligned", train_rows)
            pairs[name][0].append(pair_users)
            pairs[name][1].append(cols + 1)
    return {name: (torch.cat(u), torch.cat(i)) for name, (u, i) in pairs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--out", default=os.path.join(REPO, "results", "tiktok_graph_eval_check"))
    args = parser.parse_args(argv)

    from recbole_mmssl.checkpoint import load_checkpoint
    from recbole_mmssl.quick_start import build

    state = load_checkpoint(args.checkpoint)
    config_dict = dict(state["config"])
    if args.data_path:
        config_dict["data_path"] = args.data_path
    config_dict.update(show_progress=False, state="WARNING")
    keep = {k: v for k, v in config_dict.items() if k in ("data_path", "seed", "show_progress", "state", "variant",
                                                          "graph_window", "graph_coverage", "T", "m_topk_rate")}
    config, (train_data, valid_data, _), model, trainer = build(config_dict["model"], config_dict["dataset"],
                                                                config_dict=keep)
    trainer.load_model_from(args.checkpoint)
    saved = {n: model.graphs.counts[n][:2] for n in model.modality_names}
    rows = []

    def evaluate(label):
        model.drop_eval_cache()
        result = trainer.evaluate(valid_data, load_best_model=False)
        rows.append({"graphs": label, "valid_recall@20": float(result["recall@20"]),
                     "valid_ndcg@20": float(result["ndcg@20"]), "users_with_edges": coverage(model)})
        print(rows[-1], flush=True)

    evaluate("(a) saved in the checkpoint")
    empty = torch.zeros(0, dtype=torch.long, device=model.device)
    set_graphs(model, {n: (empty, empty) for n in model.modality_names})
    evaluate("(b) empty")
    set_graphs(model, topk_for_all_users(model, trainer.sampler))
    evaluate(f"(c) rebuilt for every user from its own top-{model.topk}")
    set_graphs(model, saved)

    with open(args.out + ".json", "w") as f:
        json.dump({"checkpoint": args.checkpoint, "epoch": int(state["epoch"]), "rows": rows}, f, indent=1)
    lines = [f"# MMSSL ({config['variant']}) validation with three modality-graph states", "",
             f"`python benchmarks/studies/graph_eval_check.py --checkpoint=...` on the checkpoint of epoch {int(state['epoch'])} "
             f"of the run described in the README (TikTok image + audio, RecBole full ranking, validation only).", "",
             "| graphs | valid Recall@20 | valid NDCG@20 | users with edges |", "|---|---|---|---|"]
    for row in rows:
        share = ", ".join(f"{n} {v:.1%}" for n, v in row["users_with_edges"].items())
        lines.append(f"| {row['graphs']} | {row['valid_recall@20']:.4f} | {row['valid_ndcg@20']:.4f} | {share} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
