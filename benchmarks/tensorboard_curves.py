"""Render the scalars of one TensorBoard run directory as a PNG grid (for README figures and reports).

    python benchmarks/tensorboard_curves.py log_tensorboard/MMSSL-tiktok-<time> --out results/tiktok_tensorboard.png

It reads the event files with TensorBoard's own EventAccumulator, so the curves are exactly what the
TensorBoard UI shows for that run; tags are chosen with ``--tags`` (prefixes; default: the loss parts,
graph sizes and validation metrics).
"""

import argparse
import math
import os

DEFAULT_TAGS = ("Loss/", "Graph/", "Valid/recall@20", "Valid/ndcg@20", "Vaild_score")


def read_scalars(log_dir, prefixes):
    """{tag: ([steps], [values])} for the tags that start with one of ``prefixes``, in that order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    if not tags:
        raise ValueError(f"{log_dir} holds no TensorBoard scalars; pass a run directory under log_tensorboard/.")
    chosen = [t for p in prefixes for t in sorted(tags) if t.startswith(p)]
    chosen = list(dict.fromkeys(chosen))  # a tag matched by two prefixes is drawn once
    return {t: ([e.step for e in events.Scalars(t)], [e.value for e in events.Scalars(t)]) for t in chosen}


def plot(scalars, title, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = math.ceil(len(scalars) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, (tag, (steps, values)) in zip(axes.flat, scalars.items()):
        ax.plot(steps, values, marker=".", color="tab:orange")
        ax.set_title(tag, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        if tag.endswith("d_penalty") and min(values) > 0:
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(scalars):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--tags", default=",".join(DEFAULT_TAGS), help="comma-separated tag prefixes")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.log_dir):
        parser.error(f"{args.log_dir} is not a directory (expected log_tensorboard/<Model>-<dataset>-<time>)")
    scalars = read_scalars(args.log_dir, args.tags.split(","))
    plot(scalars, args.title or f"TensorBoard scalars of {os.path.basename(os.path.normpath(args.log_dir))}",
         args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
