"""Training cost of MISSRec and RecBole's sequential models on Amazon Scientific: seconds and memory.

    python benchmarks/sequential_speed.py --data_path=DIR [--dataset=scientific] [--epochs=2] [--threads=1]

Each setting runs in its own subprocess (so its peak RSS is its own): ``--epochs`` training epochs
(interest discovery included for MISSRec) and one validation pass, through the plugin's
``quick_start.build``. Wall seconds count other users' processes on a shared machine; CPU seconds are
this process's own, the better cost figure there. MISSRec also runs with ``length_buckets: False`` (one
batch padded to 50 items, the authors' layout): the before/after of encoding sequences in groups of
similar length. Writes results/<dataset>_speed.md and .json.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SETTINGS = [
    ("MISSRec", "MISSRec", {}),
    ("MISSRec, one padded batch", "MISSRec", {"length_buckets": False}),
    ("MISSRec (no IDs)", "MISSRec", {"train_stage": "inductive_ft"}),
    ("SASRec", "SASRec", {}),
    ("FDSA", "FDSA", {}),
    ("GRU4Rec", "GRU4Rec", {}),
    ("BERT4Rec", "BERT4Rec", {}),
]


def measure(spec):
    """Child process: train ``epochs`` epochs and validate once; return the measurements."""
    import torch

    from recbole_mmssl import threads

    threads.apply()
    from recbole_mmssl.quick_start import build

    config_dict = {"data_path": spec["data_path"], "show_progress": False, "state": "WARNING",
                   "checkpoint_dir": spec["checkpoint_dir"], **spec["overrides"]}
    _, (train_data, valid_data, _), model, trainer = build(spec["model"], spec["dataset"], config_dict=config_dict)
    trainer.eval_collector.data_collect(train_data)
    walls, cpus = [], []
    for epoch in range(spec["epochs"]):
        wall, cpu = time.perf_counter(), time.process_time()
        trainer._train_epoch(train_data, epoch)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer._valid_epoch(valid_data)
    return {
        "train_wall_s": walls, "train_cpu_s": cpus,
        "valid_wall_s": time.perf_counter() - wall, "valid_cpu_s": time.process_time() - cpu,
        "batches": len(train_data), "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def write_report(dataset, rows, path):
    from benchmarks.report import _hardware

    lines = [f"# {dataset}: training cost of the sequential models", "",
             "Produced by `benchmarks/sequential_speed.py` (do not edit by hand). Per setting: median over the "
             "measured training epochs (interest discovery included for MISSRec) and one validation pass "
             "(full ranking); CPU seconds are the process's own, wall seconds include waiting for the "
             "machine's other jobs.", "",
             "| setting | batches | parameters | train CPU s/epoch | train wall s/epoch | valid CPU s | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error']} | | | | | |")
            continue
        lines.append(f"| {name} | {row['batches']} | {row['parameters']:,} | {statistics.median(row['train_cpu_s']):.1f} | "
                     f"{statistics.median(row['train_wall_s']):.1f} | {row['valid_cpu_s']:.1f} | {row['peak_rss_mb']:.0f} |")
    lines += ["", f"Hardware: {_hardware()}; threads per run: "
              + ", ".join(sorted({str(r.get('threads')) for r in rows.values() if 'threads' in r})) + "."]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--dataset", default="scientific")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=os.path.join(REPO, "results"))
    parser.add_argument("--checkpoint_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "recbole-mmssl",
                                                                 "speed"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(json.loads(args.one))), flush=True)
        return
    rows = {}
    env = {**os.environ, "RECBOLE_MMSSL_THREADS": str(args.threads)}
    for name, model, overrides in SETTINGS:
        spec = {"model": model, "dataset": args.dataset, "data_path": os.path.abspath(args.data_path),
                "overrides": overrides, "epochs": args.epochs, "checkpoint_dir": args.checkpoint_dir}
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", json.dumps(spec)], env=env,
                              capture_output=True, text=True)
        found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        rows[name] = json.loads(found[-1][7:]) if found else {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        print(name, rows[name], flush=True)
    base = os.path.join(args.results, f"{args.dataset}_speed")
    with open(base + ".json", "w") as f:
        json.dump({"dataset": args.dataset, "epochs": args.epochs, "rows": rows}, f, indent=1)
    write_report(args.dataset, rows, base + ".md")
    print("wrote", base + ".md", base + ".json")


if __name__ == "__main__":
    main()
