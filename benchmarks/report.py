"""Aggregate per-run json files into results/<dataset>.md, .json and .png (mean +- sd over seeds)."""

import glob
import json
import os
import platform
import statistics

from benchmarks.ablation import row_status

#: Run states whose numbers are reported: finished runs, and runs stopped before early stopping
#: (benchmarks/compare.py --finalize-interrupted), which get a row of their own.
REPORTED = ("ok", "interrupted")
INTERRUPTED = " (interrupted)"  # suffix of an interrupted run's label
#: The key under which another script's report of a dataset names that script (e.g. Amazon Scientific's,
#: written by benchmarks/sequential_report.py over several run folders): write_reports leaves it alone.
OWNER_KEY = "produced_by"
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg", "precision") for k in (10, 20, 50)]

DATASET_NOTES = {
    "tiktok": (
        "TikTok micro-videos, HKUDS/MMSSL split (as circulated with HKUDS/DiffMM): 9,308 users x 6,710 items; "
        "train 59,541 / validation 3,051 / test 6,130 interactions. Modalities: **image + audio** (128-d each); "
        "the paper's 768-d text features are not available, so MMSSL here has one modality fewer than in the paper."
    ),
    "amazon-baby": (
        "Amazon Baby 5-core, LATTICE/HKUDS split: 19,445 users x 7,050 items; train 118,551 / validation 21,682 / "
        "test 20,559 interactions."
    ),
    "ml-100k": "MovieLens-100k (RecBole's copy), random 8:1:1 split per user; modalities: title text (MiniLM) + genres.",
}

PAPER_NOTE = {
    "tiktok": (
        "The MMSSL paper reports on TikTok Recall@20 / NDCG@20 = 0.0921 / 0.0392 for MMSSL and 0.0653 / 0.0282 "
        "for LightGCN, 0.0603 / 0.0238 for SGL, 0.0658 / 0.0269 for NCL. Those numbers are not directly comparable "
        "with this table: (1) they use image + audio + **text** features; (2) their NDCG normalises by the ideal DCG "
        "of the hits found in the top 50, not by min(|test items|, K), so it is higher than the standard NDCG used "
        "here; (3) at test time the released code masks training items only, not validation items; (4) until "
        "2023-03-29 the released code selected the best epoch on the **test** set, most likely the protocol behind "
        "the paper's numbers (spec sections 1.8 and 4). The paper's baselines were also far from tuned: RecBole's "
        "LightGCN with default settings reaches 0.0900 / 0.0425 on this split."
    ),
}


def load_runs(runs_dir):
    runs = []
    for path in sorted(glob.glob(os.path.join(runs_dir, "*.json"))):
        with open(path) as f:
            run = json.load(f)
        if run["status"] == "interrupted":
            run["label"] += INTERRUPTED
        runs.append(run)
    return runs


def _mean_sd(values):
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)  # no sd of one run


def aggregate(runs, labels):
    """Per model label: mean/sd of each test metric over ok runs, cost, failures."""
    table = {}
    for label in labels:
        mine = [r for r in runs if r["label"] == label]
        ok = [r for r in mine if r["status"] in REPORTED]
        row = {"label": label, "seeds_ok": [r["seed"] for r in ok], "failed": [
            {"seed": r["seed"], "error": r.get("error")} for r in mine if r["status"] not in REPORTED]}
        for metric in METRICS:
            row[metric] = _mean_sd([r["test_result"][metric] for r in ok if metric in r["test_result"]])
        row["valid_recall@20"] = _mean_sd([r["best_valid_result"].get("recall@20") for r in ok])
        row["best_epoch"] = [r["best_epoch"] for r in ok]
        per_epoch = [r["seconds_per_epoch"] for r in ok if r.get("seconds_per_epoch")]
        row["seconds_per_epoch"] = statistics.median(per_epoch) if per_epoch else None
        # runs recorded from a checkpoint after the fact (interrupted ones) have no peak RSS of their own
        row["peak_rss_mb"] = max((r["peak_rss_mb"] for r in ok if r.get("peak_rss_mb") is not None), default=None)
        table[label] = row
    return table


def _fmt(mean_sd):
    mean, sd = mean_sd
    if mean is None:
        return "-"
    return f"{mean:.4f}" if sd is None else f"{mean:.4f} ± {sd:.4f}"


def cpu_name():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu


def _hardware():
    """This machine, for runs that did not record where they trained."""
    import torch

    return f"{cpu_name()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}, Python {platform.python_version()}"


def _hyper_parameters(runs, labels):
    """The config values that define each model (its yaml keys plus the training ones), from one run."""
    import yaml

    lines = []
    names = short_names(labels)
    for label in labels:
        run = next((r for r in runs if r["label"] == label and r.get("config")), None)
        if run is None:
            continue
        config = run["config"]
        keys = ["learning_rate", "train_batch_size", "epochs", "stopping_step", "weight_decay"]
        for folder in _model_yaml_dirs():
            path = os.path.join(folder, f"{run['model']}.yaml")
            if os.path.isfile(path):
                with open(path) as f:
                    keys += [k for k in (yaml.safe_load(f) or {}) if k not in keys]
        values = ", ".join(f"{k}={config[k]}" for k in keys if k in config)
        lines.append(f"- **{names[label]}**: {values}")
    return lines


def _distinct(runs, label, key):
    """Distinct values of ``key`` over a setting's runs, in seed order ('-' where a run has none)."""
    values = []
    for run in sorted((r for r in runs if r["label"] == label), key=lambda r: r["seed"]):
        value = str(run.get(key) or "-")
        if value not in values:
            values.append(value)
    return ", ".join(values) or "-"


def _config_values(runs, label, key):
    """Distinct values of a config key over a setting's runs ('-' where not recorded)."""
    values = []
    for run in sorted((r for r in runs if r["label"] == label), key=lambda r: r["seed"]):
        value = str((run.get("config") or {}).get(key, "-"))
        if value not in values:
            values.append(value)
    return ", ".join(values) or "-"


def _model_yaml_dirs():
    import recbole

    import recbole_mmssl

    return [
        os.path.join(os.path.dirname(recbole.__file__), "properties", "model"),
        os.path.join(os.path.dirname(recbole_mmssl.__file__), "properties", "model"),
    ]


#: Labels longer than this are shown as "Model [a]" with their overrides in a legend under the table.
MAX_LABEL = 32


def short_names(labels):
    """label -> display name: long override lists become "Model [a]", "Model [b]", ... (legend below);
    a setting's interrupted row keeps its letter and says "(interrupted)"."""
    names, letters = {}, iter("abcdefghijklmnopqrstuvwxyz")
    for label in labels:
        base = label.removesuffix(INTERRUPTED)
        if base not in names:
            names[base] = base if len(base) <= MAX_LABEL else f"{base.partition(':')[0]} [{next(letters)}]"
        names[label] = names[base] + label[len(base):]
    return names


def metric_name(metric):
    """RecBole's ``recall@20`` / ``NDCG@10`` as the reports write it: ``Recall@20``, ``NDCG@10``."""
    name, _, k = str(metric).partition("@")
    name = {"ndcg": "NDCG", "mrr": "MRR", "map": "MAP", "hit": "Hit"}.get(name.lower(), name.capitalize())
    return f"{name}@{k}" if k else name


def tuning_notes(dataset, labels, summary_path=None, ablation_path=None):
    """Per label, how its values were chosen: the tuning budget of benchmarks/tune.py when the label is
    the tuned spec in ``results/tuning/<dataset>/summary.json``; the ablation when it is one of the
    settings of ``results/<dataset>_ablation.json`` (MMSSL's tuning: benchmarks/ablation.py); else
    ``defaults`` for a bare model name and ``set by hand`` for other overrides."""
    results = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
    summary_path = summary_path or os.path.join(results, "tuning", dataset, "summary.json")
    ablation_path = ablation_path or os.path.join(results, f"{dataset}_ablation.json")
    summary, ablation = {}, {"rows": []}
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    if os.path.isfile(ablation_path):
        with open(ablation_path) as f:
            ablation = json.load(f)
    by_spec = {entry["spec"]: entry for entry in summary.values()}
    ablated = {label for row in ablation["rows"] for label in row["labels"]}
    runs = [row["run"] for row in ablation["rows"] if row.get("run")]
    stopped = sum(1 for run in runs if row_status(run) == "early-stopped")
    ablation_note = (f"ablation, {len(runs)} of {len(ablation['rows'])} settings run, {stopped} to early stopping "
                     f"(seed {ablation.get('seed')}), `results/{os.path.basename(ablation_path)[:-len('.json')]}.md`")
    notes = {}
    for label in labels:
        base = label.removesuffix(INTERRUPTED)
        entry = by_spec.get(base)
        if entry:
            notes[label] = f"{entry['finished']}/{entry['budget']} trials, `{entry['space_file']}`"
        elif ":" not in base:
            notes[label] = "defaults"
        elif base in ablated:
            notes[label] = ablation_note
        else:
            notes[label] = "set by hand"
    return notes


def selection_metric(runs):
    """The validation metric the runs selected their epoch on (runs recorded before it was stored used
    the shared protocol's Recall@20)."""
    names = {r.get("valid_metric") or (r.get("config") or {}).get("valid_metric") or "Recall@20" for r in runs}
    return " / ".join(sorted({metric_name(n) for n in names})) or "Recall@20"


def write_markdown(dataset, table, runs, labels, seeds, path):
    names = short_names(labels)
    selected_on = selection_metric(runs)
    lines = [f"# {dataset}: MMSSL, its multimodal peers and RecBole baselines", ""]
    lines += ["Produced by `benchmarks/compare.py` (do not edit by hand). Test metrics are mean ± sd over the "
              f"seeds that finished; each run's epoch is selected on validation {selected_on} only.", ""]
    head = "| model | seeds | " + " | ".join(METRICS) + " | valid R@20 | best epoch | s/epoch | peak RSS MB | tuning |"
    lines += [head, "|" + "---|" * (len(METRICS) + 7)]
    tuned = tuning_notes(dataset, labels)
    for label in labels:
        row = table[label]
        cells = [_fmt(row[m]) for m in METRICS]
        per_epoch = f"{row['seconds_per_epoch']:.1f}" if row["seconds_per_epoch"] else "-"
        rss = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "-"
        lines.append(f"| {names[label]} | {len(row['seeds_ok'])}/{len(seeds)} | " + " | ".join(cells)
                     + f" | {_fmt(row['valid_recall@20'])} | {row['best_epoch'] or '-'} | {per_epoch} | {rss} "
                     f"| {tuned[label]} |")
    bases = dict.fromkeys(label.removesuffix(INTERRUPTED) for label in labels)
    legend = [f"- {names[base]}: {base.partition(':')[0]} with {base.partition(':')[2].replace(';', ', ')}"
              for base in bases if names[base] != base]
    if legend:
        lines += [""] + legend
    ranked = sorted((table[lab]["recall@20"][0], names[lab]) for lab in labels if table[lab]["recall@20"][0] is not None)
    if ranked:
        best_value, best_label = ranked[-1]
        lines += ["", f"Highest mean test Recall@20: **{best_label}** ({best_value:.4f}). "
                  + "; ".join(f"{lab}: {value:.4f}" for value, lab in reversed(ranked[:-1])) + "."]
    failed = [(label, f) for label in labels for f in table[label]["failed"]]
    interrupted = [r for r in runs if r["status"] == "interrupted"]
    stopped = {(r["label"], r["seed"]) for r in interrupted}
    missing = [(label, s) for label in labels for s in seeds
               if s not in table[label]["seeds_ok"] and s not in [f["seed"] for f in table[label]["failed"]]
               and (f"{label}{INTERRUPTED}", s) not in stopped and not label.endswith(INTERRUPTED)]
    if failed or missing or interrupted:
        lines += ["", "## Runs that did not finish", ""]
        lines += [f"- {names.get(r['label'], r['label'])} seed {r['seed']}: {r['note']} (best epoch {r['best_epoch']}); its numbers are "
                  "in the table above, on their own row, and are not those of a run to early stopping"
                  for r in interrupted]
        lines += [f"- {names[label]} seed {f['seed']}: failed: {f['error']}" for label, f in failed]
        lines += [f"- {names[label]} seed {s}: not run yet" for label, s in missing]
    lines += ["", "## Setting", ""]
    lines.append(f"- Data: {DATASET_NOTES.get(dataset, dataset)}")
    lines.append("- Protocol: RecBole 1.2.1 full ranking over all items; training items masked for validation, "
                 "training and validation items masked for test; standard NDCG (ideal DCG over min(|test items|, K)); "
                 "Recall, NDCG, Precision at 10/20/50 averaged over test users; early stopping on validation "
                 f"{selected_on} with the patience (`stopping_step`: stop at the (N+1)-th epoch without improvement) "
                 "and epoch cap (`epochs`) of each row: "
                 + "; ".join(f"{names[label]} {_config_values(runs, label, 'stopping_step')} / "
                             f"{_config_values(runs, label, 'epochs')}" for label in labels) + ".")
    lines.append(f"- Seeds: {', '.join(map(str, seeds))} (RecBole `seed`, reproducibility on).")
    lines.append("- Hardware each row trained on ('-' = not recorded: the 2-core CPUs of the runs before hardware was "
                 f"recorded; reports written on {_hardware()}): "
                 + "; ".join(f"{names[label]} {_distinct(runs, label, 'hardware')}" for label in labels)
                 + ". Seconds per epoch = median training time of an epoch (validation excluded); runs that shared "
                 "a machine (several at once) are slower than alone, and GPU and CPU seconds are not comparable.")
    lines.append("- Code: the repository commit each run trained with (`code` in its json; '-' = recorded "
                 "before commits were: an earlier commit of this repository): "
                 + "; ".join(f"{names[label]} {_distinct(runs, label, 'code')}" for label in labels) + ".")
    lines.append("- Torch threads per run ('-' = not recorded: one thread for the runs of this repository before "
                 "threads were recorded): "
                 + "; ".join(f"{names[label]} {_distinct(runs, label, 'threads')}" for label in labels) + ".")
    lines.append("- Hyper-parameters (RecBole defaults for the baselines unless overridden; MMSSL from the plugin's "
                 "property files, spec section 2.2):")
    lines += ["  " + line for line in _hyper_parameters(runs, labels)]
    if dataset in PAPER_NOTE:
        lines += ["", "## The paper's numbers", "", PAPER_NOTE[dataset]]
    _atomic_write(path, "\n".join(lines) + "\n")


def _atomic_write(path, text):
    from recbole_mmssl.atomic_write import atomic_file

    with atomic_file(path, "w") as f:
        f.write(text)


def write_plot(dataset, table, runs, labels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(13, 4.8))
    # a setting with no finished run has no bar (a zero-height one would read as a score of 0); the table lists it
    measured = [lab for lab in labels if table[lab]["recall@20"][0] is not None]
    xs = range(len(measured))
    for offset, metric, colour in ((-0.2, "recall@20", "tab:blue"), (0.2, "ndcg@20", "tab:orange")):
        means = [table[lab][metric][0] for lab in measured]
        sds = [table[lab][metric][1] or 0 for lab in measured]
        bars.bar([x + offset for x in xs], means, width=0.4, yerr=sds, capsize=3, label=metric, color=colour)
    bars.set_xticks(list(xs))
    names = short_names(labels)
    bars.set_xticklabels([names[lab] for lab in measured], rotation=20, ha="right")
    bars.set_title(f"{dataset}: test metrics (mean ± sd over seeds)")
    bars.legend()
    for label in labels:
        for n, run in enumerate(r for r in runs if r["label"] == label and r["status"] in REPORTED):
            curves.plot(run["valid_curve"], color=f"C{labels.index(label)}", alpha=0.8,
                        label=names[label] if n == 0 else None)
    curves.set_xlabel("epoch")
    curves.set_ylabel(f"validation {selection_metric(runs)}")
    curves.set_title("training curves (one line per seed)")
    if curves.lines:
        curves.legend()
    fig.tight_layout()
    from recbole_mmssl.atomic_write import atomic_file

    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_reports(dataset, runs_dir, results_dir, labels, seeds, labels_first=False):
    """Reports over every run in ``runs_dir`` (several comparisons may fill it).

    Rows keep the order the table already has, so a call that adds one model's seeds to a shared folder
    does not reorder it; ``labels`` not yet in the table follow, then any other runs' labels, sorted.
    ``labels_first`` (a report asked for by name) puts ``labels`` first, in the order given.
    Writes nothing, and returns no paths, where another script owns the dataset's report (its json names
    it under ``OWNER_KEY``).
    """
    base = os.path.join(results_dir, dataset)
    earlier = earlier_report(base + ".json")
    if earlier.get(OWNER_KEY):  # another script's report of this dataset: not replaced
        return []
    runs = load_runs(runs_dir)
    labels = row_order(report_rows(earlier), labels, {r["label"] for r in runs}, labels_first)
    seeds = sorted(set(seeds) | {r["seed"] for r in runs})
    table = aggregate(runs, labels)
    write_markdown(dataset, table, runs, labels, seeds, base + ".md")
    _atomic_write(base + ".json", json.dumps({"dataset": dataset, "seeds": seeds, "summary": table, "runs": runs},
                                             indent=1))
    write_plot(dataset, table, runs, labels, base + ".png")
    paths = [base + ".md", base + ".json", base + ".png"]
    groups = seed_mean_breakdowns(runs, labels)
    if groups:
        from recbole_mmssl.breakdown import write_breakdown

        paths += write_breakdown(groups, base + "_breakdown")
    return paths


def earlier_report(json_path):
    """The json of a report written earlier, read once for its rows, seeds and owner (empty if absent
    or unreadable)."""
    try:
        with open(json_path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def report_rows(report):
    """The row labels of an earlier report (``earlier_report``), in its order."""
    return list(report.get("summary", {}))


def report_seeds(report):
    """The seeds of an earlier report (none if it lists none readable)."""
    try:
        return [int(seed) for seed in report.get("seeds", [])]
    except (TypeError, ValueError):
        return []


def row_order(existing, labels, found, labels_first=False):
    """Report rows: the table's rows in place, then this call's new ``labels``, then the rest sorted.

    A row is kept only while it has runs (``found``) or is one of ``labels``.
    """
    kept = [label for label in existing if label in found or label in labels]
    order = list(dict.fromkeys(list(labels) + kept if labels_first else kept + list(labels)))
    return order + sorted(set(found) - set(order))


def seed_mean_breakdowns(runs, labels):
    """Per model label, its runs' breakdown rows with recall/ndcg averaged over seeds."""
    merged = {}
    for label in labels:
        parts = [r["breakdown"] for r in runs if r["label"] == label and r["status"] in REPORTED and r.get("breakdown")]
        if not parts:
            continue
        mean = {"k": parts[0]["k"]}
        for part in ("users", "items"):
            mean[part] = []
            for n, row in enumerate(parts[0][part]):
                averaged = dict(row)
                for metric in ("recall", "ndcg"):
                    values = [p[part][n].get(metric) for p in parts if p[part][n].get(metric) is not None]
                    if metric in row:
                        averaged[metric] = statistics.mean(values) if values else None
                mean[part].append(averaged)
        merged[label] = mean
    return merged
