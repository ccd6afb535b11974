"""MISSRec and RecBole's sequential models on Amazon Scientific: one report over both folders and the transfer.

    python benchmarks/sequential_report.py [--results results]

Reads the per-run json files that ``benchmarks/compare.py`` wrote under ``results/runs/scientific/``
(full/, text only), ``results/runs/scientific-mm/`` (the multimodal subset) and, for the transfer
experiment, ``results/runs/pretrain-text/`` (the pre-training run), and writes
``results/scientific.md``, ``.json`` and ``.png``. Test metrics are mean +- sd over the seeds that
finished; every number comes from those run files, except the authors' reference row, which is quoted
from MISSRec's own logs and says so.
"""

import argparse
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.compare import parse_model_spec  # noqa: E402
from benchmarks.report import INTERRUPTED, OWNER_KEY, REPORTED, _hardware, load_runs  # noqa: E402

FOLDERS = {
    "scientific": "full/ (8,442 users x 4,385 items; item text only, all-MiniLM-L6-v2)",
    "scientific-mm": "mm_subset/ (2,928 users x 1,585 items; CLIP text + image)",
}
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg") for k in (10, 20, 50)]
# MISSRec's reference_log for Scientific_mm_full (CLIP text + image, test, full ranking; hit = recall here)
AUTHORS = {
    "MISSRec (IDs)": {"recall@10": 0.1282, "ndcg@10": 0.0711, "recall@50": 0.2376, "ndcg@50": 0.0946},
    "MISSRec (IDs), pre-trained": {"recall@10": 0.1360, "ndcg@10": 0.0753, "recall@50": 0.2431, "ndcg@50": 0.0983},
    "MISSRec (no IDs)": {"recall@10": 0.1269, "ndcg@10": 0.0659, "recall@50": 0.2354, "ndcg@50": 0.0891},
}
BASELINES = ("SASRec", "FDSA", "GRU4Rec", "BERT4Rec")


def display_name(label):
    """A readable name for a compare.py label (an interrupted row keeps its suffix)."""
    base = label.removesuffix(INTERRUPTED)
    if base != label:
        return display_name(base) + INTERRUPTED
    if label == "MISSRec:train_stage=inductive_ft":
        return "MISSRec (no IDs)"
    if label != "MISSRec" and not label.startswith("MISSRec:"):
        return label
    over = parse_model_spec(label)[1]
    if set(over) - {"pretrained", "id_scoring"} or over.get("id_scoring", "auto") not in ("auto", "mixed"):
        return label
    name = "MISSRec (IDs, mixed ID score)" if over.get("id_scoring") == "mixed" else "MISSRec (IDs)"
    return name + (", pre-trained" if "pretrained" in over else "")


def _scratch_label(label):
    """The from-scratch row a pre-trained row is compared with: the same label without ``pretrained``."""
    rest = [f"{k}={v}" for k, v in parse_model_spec(label)[1].items() if k != "pretrained"]
    return "MISSRec" + (":" + ";".join(rest) if rest else "")


def scratch_id_rows(table):
    """Labels of the finished from-scratch MISSRec-with-IDs rows (one per ID scoring run)."""
    return [label for label, row in table.items() if row["name"].startswith("MISSRec (IDs")
            and not row["name"].endswith(("pre-trained", INTERRUPTED)) and row["valid_ndcg@10"][0] is not None]


def chosen_id_row(table):
    """The from-scratch MISSRec-with-IDs row with the best mean validation NDCG@10 (never chosen on test)."""
    return max(scratch_id_rows(table), key=lambda label: table[label]["valid_ndcg@10"][0], default=None)


def summarise(runs):
    """{label: row} with mean/sd per metric over finished runs, epochs, cost (a row of interrupted runs,
    labelled so by load_runs, over those runs' best epochs so far)."""
    table = {}
    for label in dict.fromkeys(r["label"] for r in runs):
        ok = [r for r in runs if r["label"] == label and r["status"] in REPORTED]
        row = {"label": label, "name": display_name(label), "seeds": sorted(r["seed"] for r in ok),
               "failed": [r["seed"] for r in runs if r["label"] == label and r["status"] not in REPORTED]}
        for metric in METRICS:
            row[metric] = _mean_sd([r["test_result"][metric] for r in ok if metric in r["test_result"]])
        row["valid_ndcg@10"] = _mean_sd([r["best_valid_result"]["ndcg@10"] for r in ok])
        row["best_epoch"] = [r["best_epoch"] for r in sorted(ok, key=lambda r: r["seed"])]
        per_epoch = [r["seconds_per_epoch"] for r in ok if r.get("seconds_per_epoch")]
        row["seconds_per_epoch"] = statistics.median(per_epoch) if per_epoch else None
        row["peak_rss_mb"] = max((r["peak_rss_mb"] for r in ok if r.get("peak_rss_mb")), default=None)
        row["per_seed_recall@10"] = {r["seed"]: r["test_result"]["recall@10"] for r in ok}
        row["code"] = sorted({str(r.get("code")) for r in ok})
        table[label] = row
    return table


def _mean_sd(values):
    if not values:
        return [None, None]
    return [statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None]


def _fmt(value):
    mean, sd = value
    if mean is None:
        return "-"
    return f"{mean:.4f}" if sd is None else f"{mean:.4f} ± {sd:.4f}"


def _order(table):
    first = ["MISSRec", "MISSRec:id_scoring=mixed", "MISSRec:train_stage=inductive_ft"]
    pretrained = [label for label in table if display_name(label).endswith("pre-trained")]
    rest = [label for label in table if label not in first and label not in pretrained]
    return [label for label in first + pretrained + rest if label in table]


def table_lines(table):
    head = "| model | seeds | " + " | ".join(m.replace("recall", "R").replace("ndcg", "N") for m in METRICS) \
           + " | valid N@10 | best epoch | s/epoch | peak RSS MB |"
    lines = [head, "|" + "---|" * (len(METRICS) + 6)]
    for label in _order(table):
        row = table[label]
        cost = f"{row['seconds_per_epoch']:.1f}" if row["seconds_per_epoch"] else "-"
        rss = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "-"
        lines.append(f"| {row['name']} | {len(row['seeds'])} | " + " | ".join(_fmt(row[m]) for m in METRICS)
                     + f" | {_fmt(row['valid_ndcg@10'])} | {row['best_epoch'] or '-'} | {cost} | {rss} |")
    return lines


def goal_lines(tables):
    """Plain statements about the issue's goals, computed from the tables. Where several from-scratch
    ID rows exist (the two ID scorings), the one with the best validation NDCG@10 speaks for MISSRec."""
    lines = []
    full = tables.get("scientific", {})
    chosen = chosen_id_row(full)
    if chosen:
        ids = full[chosen]
        others = [label for label in scratch_id_rows(full) if label != chosen]
        scores = ", ".join(f"{full[lab]['valid_ndcg@10'][0]:.4f}" for lab in [chosen] + others)
        why = (f" ({ids['name']}: the better of {len(others) + 1} ID scorings on validation NDCG@10, {scores})"
               if others else "")
        ratio = ids["recall@10"][0] / AUTHORS["MISSRec (IDs)"]["recall@10"]
        lines.append(f"- MISSRec with IDs from scratch on full/{why}: test R@10 {ids['recall@10'][0]:.4f}, "
                     f"{ratio:.1%} of the authors' 0.1282 ({'within' if abs(ratio - 1) <= 0.05 else 'not within'} "
                     "5%; theirs with CLIP text + image, ours with MiniLM text only).")
    for dataset, table in tables.items():
        label = chosen_id_row(table)
        if not label:
            continue
        ours = table[label]
        for base in ("SASRec", "FDSA"):
            other = table.get(base)
            if not other or other["recall@10"][0] is None:
                continue
            common = sorted(set(ours["per_seed_recall@10"]) & set(other["per_seed_recall@10"]))
            wins = sum(ours["per_seed_recall@10"][s] > other["per_seed_recall@10"][s] for s in common)
            lines.append(f"- {dataset}: {ours['name']} R@10 {ours['recall@10'][0]:.4f} vs {base} "
                         f"{other['recall@10'][0]:.4f} (mean); higher on {wins} of {len(common)} common seeds.")
    for dataset, table in tables.items():
        for label in [label for label in table if table[label]["name"].endswith("pre-trained")]:
            row, scratch = table[label], table.get(_scratch_label(label))
            if row["recall@10"][0] is None or not scratch or scratch["recall@10"][0] is None:
                continue
            delta = row["recall@10"][0] - scratch["recall@10"][0]
            lines.append(f"- {dataset}: {row['name']} R@10 {row['recall@10'][0]:.4f} vs from scratch "
                         f"{scratch['recall@10'][0]:.4f} ({delta:+.4f}); N@10 {row['ndcg@10'][0]:.4f} vs "
                         f"{scratch['ndcg@10'][0]:.4f}.")
    return lines


def pretraining_lines(runs):
    lines = []
    for run in runs:
        if run["status"] != "ok":
            continue
        config = run.get("config", {})
        capped = "; the last epoch of its cap: still improving" if run["best_epoch"] == run["n_epochs"] - 1 else ""
        lines.append(f"- {run['label']} seed {run['seed']} on {run['dataset']}: {run['n_epochs']} epochs "
                     f"(best {run['best_epoch']} on its own validation NDCG@10 {run['best_valid_result'].get('ndcg@10')}{capped}), "
                     f"{run.get('seconds_per_epoch') or 0:.0f} s/epoch, batch {config.get('train_batch_size')}, "
                     f"interest_ratio {config.get('interest_ratio')}; its best checkpoint is what a pre-trained row "
                     "fine-tunes from (`pretrained:`)")
    return lines


def write_plot(tables, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(6.5 * len(tables), 4.6), squeeze=False)
    for ax, (dataset, table) in zip(axes[0], tables.items()):
        labels = [label for label in _order(table) if table[label]["recall@10"][0] is not None]
        xs = range(len(labels))
        for offset, metric, colour in ((-0.2, "recall@10", "tab:blue"), (0.2, "ndcg@10", "tab:orange")):
            ax.bar([x + offset for x in xs], [table[lab][metric][0] for lab in labels], width=0.4,
                   yerr=[table[lab][metric][1] or 0 for lab in labels], capsize=3, label=metric, color=colour)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([table[lab]["name"] for lab in labels], rotation=25, ha="right")
        ax.set_title(f"{dataset}: test (mean ± sd over seeds)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(REPO, "results"))
    args = parser.parse_args(argv)
    runs_root = os.path.join(args.results, "runs")
    tables, all_runs = {}, {}
    for dataset in FOLDERS:
        folder = os.path.join(runs_root, dataset)
        runs = load_runs(folder) if os.path.isdir(folder) else []
        all_runs[dataset] = runs
        tables[dataset] = summarise(runs)
    pre_folder = os.path.join(runs_root, "pretrain-text")
    pre_runs = load_runs(pre_folder) if os.path.isdir(pre_folder) else []

    lines = ["# Amazon Scientific: MISSRec and RecBole's sequential models", "",
             "Produced by `benchmarks/sequential_report.py` from the run files of `benchmarks/compare.py` "
             "(do not edit by hand). Test metrics: mean ± sd over the seeds that finished; each run's epoch "
             "selected on validation NDCG@10 only (MISSRec's protocol).", ""]
    for dataset, description in FOLDERS.items():
        lines += [f"## {dataset}: {description}", ""] + table_lines(tables[dataset]) + [""]
    lines += ["## MISSRec's own numbers (quoted, not measured here)", "",
              "MISSRec's reference logs on its Scientific_mm_full split (the same 8,442 x 4,385 data as full/), "
              "with CLIP text + image features: " + "; ".join(
                  f"{name}: R@10 {v['recall@10']}, N@10 {v['ndcg@10']}, R@50 {v['recall@50']}, N@50 {v['ndcg@50']}"
                  for name, v in AUTHORS.items()) + ". Our full/ has no CLIP features (text only), so these are an "
              "anchor, not a target to match digit for digit.", ""]
    goals = goal_lines(tables)
    if goals:
        lines += ["## Against the goals", ""] + goals + [""]
    pre = pretraining_lines(pre_runs)
    if pre:
        lines += ["## Pre-training run", ""] + pre + [""]
    lines += ["## Setting", "",
              "- Data: `../shared/data/scientific/` converted by `python -m recbole_mmssl.data.convert unisrec` "
              "(leave-one-out as UniSRec/MISSRec: last item test, the one before validation, one training row per "
              "earlier prefix; histories capped at 50).",
              "- Protocol: RecBole 1.2.1 full ranking over all items (a user's earlier items are not masked, as in "
              "RecBole's and MISSRec's sequential evaluation), Recall and NDCG at 10/20/50 over test users (Recall "
              "equals MISSRec's Hit with one target), early stopping on validation NDCG@10 with patience 10, at most "
              "300 epochs, softmax cross-entropy over all items for every model.",
              "- Hyper-parameters: MISSRec the authors' (`recbole_mmssl/properties/model/MISSRec.yaml`); SASRec, "
              "GRU4Rec, BERT4Rec, FDSA RecBole 1.2.1's defaults, unchanged (FDSA's features: category path and brand).",
              f"- Hardware: {_hardware()}; one torch thread per run, runs niced beside other jobs on the same two "
              "cores, so s/epoch (median training seconds of an epoch, validation excluded) is a cost under load, "
              "not an idle speed; peak RSS of the run's process.",
              "- Code: " + "; ".join(f"{dataset}: " + ", ".join(sorted({c for row in t.values() for c in row['code']}))
                                     for dataset, t in tables.items() if t) + "."]
    path = os.path.join(args.results, "scientific")
    with open(path + ".md.tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".md.tmp", path + ".md")
    with open(path + ".json.tmp", "w") as f:
        json.dump({OWNER_KEY: "benchmarks/sequential_report.py", "tables": tables, "authors": AUTHORS,
                   "runs": all_runs, "pretraining": pre_runs}, f, indent=1)
    os.replace(path + ".json.tmp", path + ".json")
    write_plot(tables, path + ".png")
    print("wrote", ", ".join(path + ext for ext in (".md", ".json", ".png")))


if __name__ == "__main__":
    main()
