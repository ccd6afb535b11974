"""The MMSSL ablation on TikTok: what each part of the method is worth, on validation.

    python benchmarks/ablation.py run --data_path=DIR [--jobs=2 --threads=1 --time_budget=SECONDS]
    python benchmarks/ablation.py report

``run`` trains every row below through ``benchmarks/compare.py`` (seed 2022, patience 15, the epoch
cap and base of ``properties/ablation_cap.yaml``; resumable, so the same command continues stopped rows).
``report`` writes ``results/tiktok_ablation.md|json|png`` from the run files under
``results/runs/tiktok/``: one row per setting with its best validation Recall@20 and epoch, the test
metrics at that epoch, the epochs run, the seconds per epoch and where it ran, its commit, the
validation curves of all rows in one plot, and each row's difference from the default on validation.
Choices (the defaults) are read off validation only; test is reported, never used.
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from recbole_mmssl.atomic_write import atomic_file  # noqa: E402

SEED = 2022
CAP_FILE = os.path.join(REPO, "properties", "ablation_cap.yaml")

#: (labels that ran this setting, first found wins; what the row changes against the default).
ROWS = [
    (["MMSSL", "MMSSL:graph_window=40"], "the `paper` default the ablation started from (InfoNCE weight 0.03; graph "
                                         "window covering 99% of the users: 40 batches on TikTok)"),
    (["MMSSL:cl_rate=0"], "no cross-modal contrastive loss (InfoNCE weight 0)"),
    (["MMSSL:graph_window=1"], "modality graphs from the last batch only (11% of the users get edges)"),
    (["MMSSL:cl_rate=0;graph_window=1"], "both of the two rows above"),
    (["MMSSL:learning_rate=0.00027"], "half the learning rate"),
    (["MMSSL:G_rate=0"], "no adversarial term in the generator's loss (the critic still trains)"),
    (["MMSSL:real_rows=released"], "the released code's Gumbel real rows (dense, near uniform)"),
    (["MMSSL:attention=degenerate"], "the released code's attention (mean over modalities times the summed blocks)"),
    (["MMSSL:critic_slope=1.0"], "the released critic's identity activations (LeakyReLU slope 1)"),
    (["MMSSL:id_cat_rate=0"], "no modality ID views in the zero-order fusion"),
    (["MMSSL:graph_schedule=released"], "the released graph schedule (rebuilt every T batches, then emptied)"),
    (["MMSSL:variant=released"], "the released code as a whole (every quirk, faithful real rows)"),
    (["MMSSL:variant=released;critic_slope=0.2"], "the released code with a real LeakyReLU in the critic"),
]


def row_labels():
    """The label each row runs under when it is trained now (the first of its labels)."""
    return [labels[0] for labels, _ in ROWS]


def find_runs(runs_dir):
    """For every row, the seed-2022 run file that stands for it (finished first, else interrupted)."""
    records = {}
    for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        if name.endswith(".json"):
            with open(os.path.join(runs_dir, name)) as f:
                record = json.load(f)
            if record.get("seed") == SEED:
                records.setdefault(record["label"], []).append(record)
    found = []
    for labels, what in ROWS:
        candidates = [r for label in labels for r in records.get(label, []) if r["status"] in ("ok", "interrupted")]
        candidates.sort(key=lambda r: (r["status"] != "ok", labels.index(r["label"])))
        found.append((labels, what, candidates[0] if candidates else None))
    return found


def summarise(record):
    """The numbers of one run that the table shows."""
    valid, test = record["best_valid_result"], record["test_result"]
    curve = record["valid_curve"]
    config = record.get("config") or {}
    return {
        "label": record["label"], "status": record["status"], "best_epoch": record["best_epoch"],
        "valid_recall@20": valid.get("recall@20"), "test_recall@20": test.get("recall@20"),
        "test_ndcg@20": test.get("ndcg@20"), "epochs_run": len(curve), "valid_curve": curve,
        "seconds_per_epoch": record.get("seconds_per_epoch"), "hardware": record.get("hardware"),
        "threads": record.get("threads"), "code": record.get("code"),
        "stopping_step": config.get("stopping_step"), "epochs_cap": config.get("epochs"),
    }


def row_status(row):
    """What a row's run amounts to: ``early-stopped`` or ``reached the cap`` for a finished run whose epoch
    cap is known, else the run's status (``ok`` without a cap, ``interrupted``)."""
    if row["status"] == "ok" and row["epochs_cap"]:
        if row["epochs_run"] == row["epochs_cap"]:
            return "reached the cap"
        if row["epochs_run"] < row["epochs_cap"]:
            return "early-stopped"
    return row["status"]


def _f(value, places=4):
    return "-" if value is None else f"{value:.{places}f}"


def write_markdown(path, rows):
    default = rows[0][2]
    base = default["valid_recall@20"] if default else None
    lines = [
        "# MMSSL ablation on TikTok (validation decides, test reported)",
        "",
        "Produced by `python benchmarks/ablation.py report` (do not edit by hand) from the runs of "
        "`python benchmarks/ablation.py run`. Data: TikTok, HKUDS split (9,308 users x 6,710 items; train / "
        "validation / test 59,541 / 3,051 / 6,130 interactions), **image + audio** features. Protocol: RecBole "
        "full ranking, standard NDCG, seed 2022, early stopping on validation Recall@20 with the patience and "
        "epoch cap of each row (columns), the epoch of each row selected on validation only.",
        "",
        "| # | setting | what changes | status | best valid R@20 (epoch) | vs default | test R@20 | test NDCG@20 "
        "| epochs run | patience / cap | s/epoch | where it ran | commit |",
        "|---:|---|---|---|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for n, (labels, what, row) in enumerate(rows, 1):
        if row is None:
            lines.append(f"| {n} | {labels[0]} | {what} | not run yet | - | - | - | - | - | - | - | - | - |")
            continue
        status = row_status(row)
        delta = "-" if base is None or n == 1 else f"{row['valid_recall@20'] - base:+.4f}"
        where = f"{row['hardware'] or '2-core CPU'}, {row['threads'] or '-'} thread(s)"
        lines.append(
            f"| {n} | {row['label']} | {what} | {status} | {_f(row['valid_recall@20'])} ({row['best_epoch']}) | {delta} | "
            f"{_f(row['test_recall@20'])} | {_f(row['test_ndcg@20'])} | {row['epochs_run']} | "
            f"{row['stopping_step']} / {row['epochs_cap']} | {_f(row['seconds_per_epoch'], 0)} | {where} | {row['code'] or '-'} |")
    lines += ["", "## Reading (generated from the table)", ""]
    lines += reading(rows)
    lines += ["", "Seconds per epoch are wall seconds of runs that shared a 2-core machine with other jobs: they "
              "compare rows only roughly; `results/speed*.md` has the controlled measurements.",
              "Rows marked `interrupted` stopped before early stopping (their numbers are those of the best "
              "epoch so far) and do not decide anything yet."]
    _write(path, "\n".join(lines) + "\n")


def reading(rows):
    """One sentence per finished row: its validation difference from the default; then the best row."""
    default = rows[0][2]
    if default is None:
        return ["- The default row has not run yet: nothing to compare with."]
    base = default["valid_recall@20"]
    finished = [(what, row) for _, what, row in rows if row is not None and row["status"] == "ok"]
    out = []
    for what, row in finished:
        if row is default:
            continue
        diff = row["valid_recall@20"] - base
        effect = "raises" if diff > 0 else "lowers"
        out.append(f"- {row['label']} ({what}) {effect} validation Recall@20 by {abs(diff):.4f} "
                   f"({row['valid_recall@20']:.4f} against the default's {base:.4f}).")
    if finished:
        what, best = max(finished, key=lambda t: t[1]["valid_recall@20"])
        out.append(f"- Best finished row on validation: **{best['label']}** ({best['valid_recall@20']:.4f}; "
                   f"test Recall@20 at its epoch {best['test_recall@20']:.4f}).")
    pending = [row["label"] if row else labels[0] for labels, _, row in rows if row is None or row["status"] != "ok"]
    if pending:
        out.append(f"- Not finished yet: {', '.join(pending)}.")
    return out


def write_plot(path, rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5))
    for n, (_, _, row) in enumerate(rows):
        if row is None:
            continue
        style = "-" if row["status"] == "ok" else ":"
        ax.plot(row["valid_curve"], style, color=f"C{n % 10}", lw=2.2 if n == 0 else 1.2,
                label=f"{n + 1}. {row['label']}" + ("" if row["status"] == "ok" else " (interrupted)"))
        ax.plot([row["best_epoch"]], [row["valid_recall@20"]], "o", color=f"C{n % 10}", ms=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Recall@20")
    ax.set_title("MMSSL ablation on TikTok (image + audio), seed 2022: validation curves, best epoch marked")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def _write(path, text):
    with atomic_file(path, "w") as f:
        f.write(text)


def report(results):
    os.makedirs(results, exist_ok=True)
    found = find_runs(os.path.join(results, "runs", "tiktok"))
    rows = [(labels, what, summarise(r) if r else None) for labels, what, r in found]
    base = os.path.join(results, "tiktok_ablation")
    write_markdown(base + ".md", rows)
    _write(base + ".json", json.dumps({"seed": SEED, "rows": [
        {"labels": labels, "what": what, "run": row} for labels, what, row in rows]}, indent=1))
    write_plot(base + ".png", rows)
    return [base + ".md", base + ".json", base + ".png"]


def main(argv=None):
    from benchmarks import compare

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("run", "report"))
    parser.add_argument("--results", default=os.path.join(REPO, "results"))
    args, rest = parser.parse_known_args(argv)
    if args.mode == "report":
        print("wrote", ", ".join(report(args.results)))
        return 0
    code = compare.main(["--dataset=tiktok", f"--models={','.join(row_labels())}", f"--seeds={SEED}",
                         f"--config_files={CAP_FILE}", f"--results={args.results}", *rest])
    report(args.results)
    return code


if __name__ == "__main__":
    sys.exit(main())
