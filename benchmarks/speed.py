"""MMSSL training speed and memory on TikTok, with the dense critic and LightGCN as yardsticks.

    python benchmarks/speed.py                       # converts ../shared/data/tiktok into a temp dir
    python benchmarks/speed.py --data_path=DIR --epochs=3 --dense_iters=8 --threads=2

Every measured setting runs in its own subprocess (so its peak RSS is its own), one after the other
in the same invocation:
  - MMSSL ``paper`` and ``released`` (TikTok values of spec 2.2, B = 1024): ``--epochs`` full training
    epochs (seconds per epoch: median; the trainer's per-part split), then one validation pass;
  - the same iterations with the fast and with the dense critic path (``critic_path``), ``--dense_iters``
    iterations each from the same seed: the dense path costs minutes per epoch here, so the ratio is
    taken per iteration, like for like, and the dense epoch is that times the epoch's iteration count;
    and the fast path once more on the critic BLAS ``critic_matmul: auto`` did not pick: the before/after
    of that choice;
  - RecBole's LightGCN: ``--epochs`` training epochs through the plugin's runner.
Wall seconds count other users' processes on a shared machine; CPU seconds are this process's own.
Writes results/speed.json and results/speed.md.

    python benchmarks/speed.py --device=cuda --epochs=3   # on a GPU: results/speed_gpu.json|md

On a GPU it measures MMSSL ``paper`` and ``released``, the six multimodal peers and LightGCN, each
for ``--epochs`` training epochs and one validation pass: seconds per epoch (the first epoch, with
CUDA's warm-up, reported apart), peak GPU memory allocated by torch, and peak host RSS.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIKTOK_SOURCE = os.path.join(os.path.dirname(REPO), "shared", "data", "tiktok")
TARGET_EPOCH_SECONDS = 120
TARGET_DENSE_RATIO = 4.0
TARGET_RSS_MB = 3 * 1024


FAST = "MMSSL paper, fast critic (short epoch)"
DENSE = "MMSSL paper, dense critic (short epoch)"
OTHER_BLAS = "MMSSL paper, fast critic, other BLAS (short epoch)"


def other_blas():
    """The critic BLAS that ``critic_matmul: auto`` does not pick on this machine."""
    from recbole_mmssl.model.mmssl.blas import resolve_backend

    picked = resolve_backend("auto", "cpu")
    return "torch" if picked == "numpy" else "numpy"


def settings(epochs, dense_iters):
    """(name, model, config overrides, what to measure) for every measured setting."""
    return [
        ("MMSSL paper", "MMSSL", {"variant": "paper"}, {"epochs": epochs}),
        ("MMSSL released", "MMSSL", {"variant": "released"}, {"epochs": epochs}),
        (FAST, "MMSSL", {"variant": "paper", "critic_path": "fast"}, {"iterations": dense_iters}),
        (DENSE, "MMSSL", {"variant": "paper", "critic_path": "dense"}, {"iterations": dense_iters}),
        # before/after of the BLAS choice (recbole_mmssl.model.mmssl.blas): the fast path on the BLAS auto did not pick
        (OTHER_BLAS, "MMSSL", {"variant": "paper", "critic_path": "fast", "critic_matmul": other_blas()},
         {"iterations": dense_iters}),
        ("LightGCN", "LightGCN", {}, {"epochs": epochs}),
    ]


GPU_PEERS = ("VBPR", "MMGCN", "SLMRec", "LATTICE", "BM3", "FREEDOM")


def gpu_settings(epochs):
    """(name, model, overrides, what) for the GPU table: MMSSL's two variants, the peers, LightGCN."""
    rows = [("MMSSL paper", "MMSSL", {"variant": "paper"}, {"epochs": epochs}),
            ("MMSSL released", "MMSSL", {"variant": "released"}, {"epochs": epochs})]
    rows += [(model, model, {}, {"epochs": epochs}) for model in GPU_PEERS]
    return rows + [("LightGCN", "LightGCN", {}, {"epochs": epochs})]


_SYNC = {"cuda": False}


def _clock():
    if _SYNC["cuda"]:
        import torch

        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def measure(spec):
    """Child process: build one setting, train and time it, return a json-able record."""
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    sys.path.insert(0, REPO)
    from recbole_mmssl.quick_start import build

    cuda = spec.get("device") == "cuda"
    _SYNC["cuda"] = cuda
    config_dict = {"data_path": spec["data_path"], "seed": 2022, "show_progress": False, "use_gpu": cuda,
                   **spec["overrides"]}
    config, (train_data, valid_data, _), model, trainer = build(spec["model"], spec["dataset"], config_dict=config_dict)
    if cuda and config["device"].type != "cuda":
        raise RuntimeError("--device=cuda: the run was built on the CPU (no CUDA device visible)")
    data = train_data._dataset
    record = {"name": spec["name"], "model": spec["model"], "overrides": spec["overrides"],
              "data": f"{data.user_num - 1:,} users x {data.item_num - 1:,} items, {data.inter_num:,} training "
                      f"interactions, modalities {getattr(data, 'modality_names', [])}",
              "train_batch_size": config["train_batch_size"], "threads": torch.get_num_threads(),
              "critic_matmul": getattr(getattr(trainer, "critic", None), "backend", None)}
    what = spec["what"]
    if "iterations" in what:
        # A short epoch of the first N iterations; iteration 1 is a warm-up and is not counted.
        n_full = trainer.sampler.iterations_per_epoch
        sampler_class = type(trainer.sampler)
        # One-iteration epochs, timed one by one (same sampler, same state otherwise).
        trainer.sampler.__class__ = type("OneIteration", (sampler_class,), {"iterations_per_epoch": 1})
        per_iteration = []
        for _ in range(what["iterations"]):
            (w0, c0) = _clock()
            trainer._train_epoch(train_data, 0)
            (w1, c1) = _clock()
            per_iteration.append({"wall": w1 - w0, "cpu": c1 - c0, "parts": dict(trainer.epoch_log)})
        counted = per_iteration[1:]
        record.update(
            iterations=len(counted), iterations_per_epoch=n_full,
            iteration_wall=statistics.median(i["wall"] for i in counted),
            iteration_cpu=statistics.median(i["cpu"] for i in counted),
            iteration_parts={k: statistics.median(i["parts"][k] for i in counted)
                             for k in counted[0]["parts"] if k.startswith("time_")},
        )
    else:
        epochs = []
        for epoch in range(what["epochs"]):
            (w0, c0) = _clock()
            trainer._train_epoch(train_data, epoch)
            (w1, c1) = _clock()
            log = getattr(trainer, "epoch_log", {}) if spec["model"] == "MMSSL" else {}
            epochs.append({"wall": w1 - w0, "cpu": c1 - c0,
                           "parts": {k: v for k, v in log.items() if k.startswith("time_")}})
        (w0, c0) = _clock()
        trainer._valid_epoch(valid_data, show_progress=False)
        (w1, c1) = _clock()
        record.update(
            epochs=epochs,
            epoch_wall=statistics.median(e["wall"] for e in epochs),
            epoch_cpu=statistics.median(e["cpu"] for e in epochs),
            epoch_parts=({k: statistics.median(e["parts"][k] for e in epochs) for k in epochs[0]["parts"]}
                         if epochs[0]["parts"] else {}),
            eval_wall=w1 - w0, eval_cpu=c1 - c0,
        )
        if spec["model"] == "MMSSL":
            record["iterations_per_epoch"] = trainer.sampler.iterations_per_epoch
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if cuda:
        record["gpu"] = torch.cuda.get_device_name(config["device"])
        record["peak_gpu_mb"] = torch.cuda.max_memory_allocated(config["device"]) / 2**20
    return record


def run_child(spec):
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", json.dumps({**spec, "out": out.name})]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{spec['name']} failed:\n{proc.stdout[-3000:]}")
        return json.load(open(out.name))


def code_version():
    """The commit measured (see benchmarks/compare.py)."""
    sys.path.insert(0, REPO)
    from benchmarks.compare import code_version as version

    return version()


def _fmt(x, places=1):
    return "-" if x is None else f"{x:.{places}f}"


def write_markdown(path, result):
    runs = {r["name"]: r for r in result["runs"]}
    fast, dense, other = runs[FAST], runs[DENSE], runs[OTHER_BLAS]
    lines = [
        f"# MMSSL training speed and memory on {result['dataset']}",
        "",
        "Produced by `python benchmarks/speed.py` (do not edit by hand). " + result["setting"],
        "",
        "| setting | threads | critic BLAS | s/epoch wall (median) | s/epoch CPU | eval s (valid, wall) | peak RSS MB | per-part s/epoch (wall) |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in result["runs"]:
        if "epoch_wall" not in r:
            continue
        parts = ", ".join(f"{k[5:]} {v:.1f}" for k, v in r["epoch_parts"].items()) or "-"
        lines.append(f"| {r['name']} | {r['threads']} | {r.get('critic_matmul') or '-'} | {_fmt(r['epoch_wall'])} | {_fmt(r['epoch_cpu'])} | "
                     f"{_fmt(r['eval_wall'], 2)} | {r['peak_rss_mb']:.0f} | {parts} |")
    lines += [
        "",
        f"## Fast vs dense critic path (same maths), {fast['iterations']} iterations each after one warm-up, median",
        "",
        "| path | critic BLAS | s/iteration wall | s/iteration CPU | critic (D) step s | generator step s | s/epoch wall (x{} iterations) | peak RSS MB |".format(
            fast["iterations_per_epoch"]),
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (fast, dense, other):
        p = r["iteration_parts"]
        lines.append(f"| {r['overrides']['critic_path']} | {r['critic_matmul']} | {r['iteration_wall']:.2f} | {r['iteration_cpu']:.2f} | "
                     f"{p['time_d_step']:.2f} | {p['time_g_step']:.2f} | "
                     f"{r['iteration_wall'] * r['iterations_per_epoch']:.0f} | {r['peak_rss_mb']:.0f} |")
    s = result["summary"]
    lines += [
        "",
        "## Against the targets",
        "",
        f"- MMSSL paper training epoch: **{s['paper_epoch_wall']:.0f} s** wall (target <= {TARGET_EPOCH_SECONDS} s): "
        f"{'met' if s['paper_epoch_wall'] <= TARGET_EPOCH_SECONDS else 'NOT met'}; released: {s['released_epoch_wall']:.0f} s.",
        f"- Dense / fast critic path, whole iteration: **{s['dense_over_fast_wall']:.2f}x** wall, "
        f"{s['dense_over_fast_cpu']:.2f}x CPU (target >= {TARGET_DENSE_RATIO:.0f}x): "
        f"{'met' if s['dense_over_fast_wall'] >= TARGET_DENSE_RATIO else 'NOT met'}.",
        f"- The critic BLAS `auto` picked ({s['auto_blas']}) against the other one ({s['other_blas']}), fast path, "
        f"whole iteration: **{s['blas_speedup_wall']:.2f}x** wall, {s['blas_speedup_cpu']:.2f}x CPU.",
        f"- Peak RSS of MMSSL: **{s['mmssl_peak_rss_mb']:.0f} MB** (target < {TARGET_RSS_MB} MB): "
        f"{'met' if s['mmssl_peak_rss_mb'] < TARGET_RSS_MB else 'NOT met'}.",
        f"- LightGCN (RecBole, same data, batch 2048) as the yardstick: {s['lightgcn_epoch_wall']:.1f} s/epoch; "
        f"MMSSL paper is {s['paper_over_lightgcn']:.0f}x that.",
    ]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def write_gpu_markdown(path, result):
    lines = [
        f"# Training speed and memory on a GPU: {result['dataset']}",
        "",
        "Produced by `python benchmarks/speed.py --device=cuda` (do not edit by hand). " + result["setting"],
        "",
        "| model | s/epoch (median of epochs 2+) | first epoch s | eval s (valid) | peak GPU MB (torch) | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} | | | | |")
            continue
        walls = [e["wall"] for e in r["epochs"]]
        steady = statistics.median(walls[1:]) if len(walls) > 1 else walls[0]
        lines.append(f"| {r['name']} | {steady:.2f} | {walls[0]:.2f} | {r['eval_wall']:.2f} | "
                     f"{r['peak_gpu_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    _write_text(path, "\n".join(lines) + "\n")


def _write_text(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def run_gpu(args, data_path, stem):
    """Every GPU setting in turn (one child each); a setting that fails is recorded, the rest still run.
    The files are rewritten after each setting, so a benchmark cut short keeps what it measured."""
    runs = []
    started = time.time()
    for name, model, overrides, what in gpu_settings(args.epochs):
        print(f"{name} ...", flush=True)
        spec = {"name": name, "model": model, "overrides": overrides, "what": what, "dataset": args.dataset,
                "data_path": os.path.abspath(data_path or "dataset"), "threads": args.threads, "device": "cuda"}
        try:
            runs.append(run_child(spec))
        except RuntimeError as err:
            runs.append({"name": name, "model": model, "error": str(err).splitlines()[-1][:200]})
        print(f"    {json.dumps({k: v for k, v in runs[-1].items() if k != 'epochs'})}", flush=True)
        result = gpu_result(args, runs, started)
        _write_text(stem + ".json", json.dumps(result, indent=1))
        write_gpu_markdown(stem + ".md", result)


def gpu_result(args, runs, started):
    import torch

    first = next((r for r in runs if "gpu" in r), {})
    return {
        "dataset": args.dataset,
        "setting": (
            f"Data: {args.dataset} ({first.get('data', '?')}), each model's property-file values (MMSSL: "
            f"B = {first.get('train_batch_size', '?')} users per iteration), seed 2022; {args.epochs} training epochs "
            f"and one validation pass per model, each in its own process, one after the other (the GPU was not "
            f"shared). Hardware: {first.get('gpu', '?')}, {os.cpu_count()} CPUs, {first.get('threads', '?')} "
            f"torch CPU thread(s); torch {torch.__version__}, CUDA {torch.version.cuda}. Peak GPU MB is "
            f"torch.cuda.max_memory_allocated (the caching allocator reserves more). Whole benchmark: "
            f"{time.time() - started:.0f} s for {len(runs)} of {len(gpu_settings(args.epochs))} settings; code {code_version()}."
        ),
        "runs": runs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--data_path", help="folder holding <dataset>/ (converted); default for tiktok: "
                        "convert ../shared/data/tiktok into a temporary folder")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dense_iters", type=int, default=4, help="iterations per critic path, warm-up included")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--results", default=os.path.join(REPO, "results"))
    parser.add_argument("--stem", help="output file name without extension (default: speed, or speed_<dataset>)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: the GPU table (results/speed_gpu.*) instead of the CPU one")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        spec = json.loads(args.one)
        record = measure(spec)
        with open(spec["out"], "w") as f:
            json.dump(record, f)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_path = args.data_path
        if not data_path and args.dataset == "tiktok":
            subprocess.run([sys.executable, "-m", "recbole_mmssl.data.convert", "hkuds", TIKTOK_SOURCE,
                            "--name", "tiktok", "--out", tmp], check=True, stdout=subprocess.DEVNULL)
            data_path = tmp
        if args.device == "cuda":
            os.makedirs(args.results, exist_ok=True)
            stem = os.path.join(args.results, args.stem or f"speed_gpu{'' if args.dataset == 'tiktok' else '_' + args.dataset}")
            run_gpu(args, data_path, stem)
            print("wrote", stem + ".json", stem + ".md")
            return
        started = time.time()
        runs = []
        for name, model, overrides, what in settings(args.epochs, args.dense_iters):
            print(f"{name} ...", flush=True)
            runs.append(run_child({"name": name, "model": model, "overrides": overrides, "what": what,
                                   "dataset": args.dataset,
                                   "data_path": os.path.abspath(data_path or "dataset"), "threads": args.threads}))
            print(f"    {json.dumps({k: v for k, v in runs[-1].items() if k not in ('epochs',)})}", flush=True)
    by_name = {r["name"]: r for r in runs}
    paper, released = by_name["MMSSL paper"], by_name["MMSSL released"]
    fast, dense, other = by_name[FAST], by_name[DENSE], by_name[OTHER_BLAS]
    lightgcn = by_name["LightGCN"]
    import torch

    load = os.getloadavg()
    result = {
        "dataset": args.dataset,
        "setting": (
            f"Data: {args.dataset} ({paper['data']}), MMSSL B = {paper['train_batch_size']} users per iteration, {paper['iterations_per_epoch']} "
            f"iterations per epoch, the dataset's property-file values (spec 2.2), seed 2022; {args.epochs} epochs per setting. "
            f"Hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU; "
            f"torch {torch.__version__}, {paper['threads']} torch thread(s); load average at the end "
            f"{load[0]:.1f} (a shared machine: wall seconds include other processes). "
            f"Whole benchmark: {time.time() - started:.0f} s; code {code_version()}."
        ),
        "runs": runs,
        "summary": {
            "paper_epoch_wall": paper["epoch_wall"],
            "released_epoch_wall": released["epoch_wall"],
            "dense_over_fast_wall": dense["iteration_wall"] / fast["iteration_wall"],
            "dense_over_fast_cpu": dense["iteration_cpu"] / fast["iteration_cpu"],
            "auto_blas": fast["critic_matmul"], "other_blas": other["critic_matmul"],
            "blas_speedup_wall": other["iteration_wall"] / fast["iteration_wall"],
            "blas_speedup_cpu": other["iteration_cpu"] / fast["iteration_cpu"],
            "mmssl_peak_rss_mb": max(paper["peak_rss_mb"], released["peak_rss_mb"]),
            "lightgcn_epoch_wall": lightgcn["epoch_wall"],
            "paper_over_lightgcn": paper["epoch_wall"] / lightgcn["epoch_wall"],
        },
    }
    os.makedirs(args.results, exist_ok=True)
    stem = args.stem or ("speed" if args.dataset == "tiktok" else f"speed_{args.dataset}")
    json_path = os.path.join(args.results, stem + ".json")
    with open(json_path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(json_path + ".tmp", json_path)
    write_markdown(os.path.join(args.results, stem + ".md"), result)
    print("wrote", json_path, os.path.join(args.results, stem + ".md"))


if __name__ == "__main__":
    main()
