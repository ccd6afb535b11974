"""Benchmark: first (parse) vs second (parse cache) load of modality features by MultimodalDataset.

    python benchmarks/studies/parse_cache.py [--out results] [--work DIR] [--skip-recbole]

Cases: TikTok converted from ../shared/data/tiktok (6,710 x 128, image + audio), and a synthetic
7,050 x 4,096 float32 feature file (Amazon image size) with random interactions. Each load runs in
its own Python process so that its time and peak RSS are its own; the source files are made older
than the cache's racy window first, so the second load is the ordinary cached path. For reference,
RecBole's own float_seq parsing of the same file (as an additional feature file) is timed too.
Writes ``<out>/parse_cache.json`` and ``<out>/parse_cache.md``.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
SYNTH = (7050, 4096)


def _config(data_path, name, extra=None):
    from recbole.config import Config

    config_dict = {"data_path": data_path, "benchmark_filename": ["train", "valid", "test"],
                   "load_col": {"inter": ["user_id", "item_id"]}, "use_gpu": False,
                   "state": "ERROR", "show_progress": False}
    config_dict.update(extra or {})
    return Config(model="BPR", dataset=name, config_dict=config_dict)


def _memory_mb(key):
    """VmRSS / VmHWM of this process in MB (None where /proc is not available)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak_rss():
    """Start VmHWM afresh (Linux): ru_maxrss would include the parent's memory at fork time."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(mode, data_path, name, modality):
    """Run one load in this process; print its seconds and memory as JSON."""
    import logging

    from recbole.data.dataset import Dataset

    import recbole_mmssl.data.dataset as mm
    from recbole_mmssl.data.dataset import MultimodalDataset

    logging.disable(logging.WARNING)
    feature_seconds = []
    real_load = mm.load_feature_file

    def timed_load(*args, **kwargs):
        start = time.perf_counter()
        result = real_load(*args, **kwargs)
        feature_seconds.append(time.perf_counter() - start)
        return result

    mm.load_feature_file = timed_load
    if mode == "recbole":
        field = f"{modality}_feat"
        config = _config(data_path, name, {"additional_feat_suffix": [field],
                                           "load_col": {"inter": ["user_id", "item_id"],
                                                        field: ["item_id", field]},
                                           "alias_of_item_id": None})
    else:
        config = _config(data_path, name)
    exact_peak = _reset_peak_rss()
    rss_before = _memory_mb("VmRSS") if exact_peak else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    dataset = (Dataset if mode == "recbole" else MultimodalDataset)(config)
    seconds = time.perf_counter() - start
    if mode != "recbole":
        assert dataset.modality_names, "no modality loaded"
    peak = _memory_mb("VmHWM") if exact_peak else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "feature_seconds": sum(feature_seconds) or None,
                      "rss_before_mb": rss_before, "peak_rss_mb": peak}))


def run_child(mode, data_path, name, modality=""):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", mode, data_path,
                          name, modality], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def age_sources(folder, seconds):
    """Wait until every file in ``folder`` is older than ``seconds`` (the cache's racy window)."""
    newest = max(os.stat(os.path.join(folder, f)).st_mtime for f in os.listdir(folder))
    time.sleep(max(0.0, newest + seconds - time.time()))


def make_synthetic(data_path, name):
    """Random 7,050 x 4,096 features + random interactions (every item in train)."""
    from recbole_mmssl.data.atomic_io import write_feature_file, write_inter_file

    folder = os.path.join(data_path, name)
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    n_items, dim = SYNTH
    items = np.concatenate([np.arange(n_items), rng.integers(0, n_items, 3 * n_items)])
    users = rng.integers(0, 5000, len(items))
    for split, part in (("train", slice(0, 3 * n_items)), ("valid", slice(3 * n_items, None)),
                        ("test", slice(3 * n_items, None))):
        write_inter_file(os.path.join(folder, f"{name}.{split}.inter"), users[part], items[part])
    features = rng.standard_normal(SYNTH, dtype=np.float32)
    start = time.perf_counter()
    write_feature_file(os.path.join(folder, f"{name}.image_feat"), [str(i) for i in range(n_items)],
                       features, "image", progress=False)
    return time.perf_counter() - start


def measure(data_path, name, modality, with_recbole):
    from recbole_mmssl.data.cache import RACY_SECONDS

    folder = os.path.join(data_path, name)
    age_sources(folder, RACY_SECONDS + 0.5)
    first = run_child("multimodal", data_path, name)
    second = run_child("multimodal", data_path, name)
    row = {"first_load": first, "second_load": second,
           "speedup": first["seconds"] / second["seconds"],
           "feature_speedup": first["feature_seconds"] / second["feature_seconds"],
           "feature_bytes": sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                                if f.endswith("_feat") and not f.startswith("."))}
    if with_recbole:
        row["recbole_float_seq_load"] = run_child("recbole", data_path, name, modality)
    return row


def write_report(results, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "parse_cache.json"), "w") as f:
        json.dump(results, f, indent=2)
    lines = [
        "# Parse cache: first vs second load of modality features",
        "",
        f"Measured {results['date']} on {results['machine']} ({results['cpus']} CPUs, shared), "
        f"Python {results['python']}, numpy {results['numpy']}, torch {results['torch']}; load "
        f"average {results['load_average_at_start']:.1f} at the start (other jobs share the CPUs, "
        f"so absolute seconds vary by up to 2x between runs; the ratios are the point).",
        "Command: `python benchmarks/studies/parse_cache.py`. Each load is a fresh process constructing "
        "`MultimodalDataset`: 'dataset' is the whole constructor (RecBole's interaction loading "
        "included), 'features' the feature files alone (parse or cache). Imports are excluded. "
        "Peak RSS is the process's peak during the load (VmHWM reset after imports); 'before' is "
        "its RSS after imports. The last column is RecBole's own float_seq parsing of the same "
        "file (loaded as an additional feature file), for reference.",
        "",
        "| case | feature text | first load: dataset / features | second load: dataset / features "
        "| speedup: dataset / features | peak RSS first / second (before) | RecBole float_seq load |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, r in results["cases"].items():
        rb = r.get("recbole_float_seq_load")
        rb_text = f"{rb['seconds']:.1f} s, {rb['peak_rss_mb']:.0f} MB" if rb else "not run"
        lines.append(
            f"| {case} | {r['feature_bytes'] / 1e6:.0f} MB | {r['first_load']['seconds']:.2f} s / "
            f"{r['first_load']['feature_seconds']:.2f} s | {r['second_load']['seconds']:.2f} s / "
            f"{r['second_load']['feature_seconds']:.3f} s | {r['speedup']:.1f}x / "
            f"{r['feature_speedup']:.0f}x | "
            f"{r['first_load']['peak_rss_mb']:.0f} / {r['second_load']['peak_rss_mb']:.0f} "
            f"({r['first_load']['rss_before_mb']:.0f}) MB | {rb_text} |")
    if "synthetic_write_seconds" in results:
        lines += ["", f"Writing the synthetic 7,050 x 4,096 atomic feature file (vectorised "
                      f"formatting, 9 significant digits): {results['synthetic_write_seconds']:.1f} s."]
    lines += ["", "Target: second load at least 10x faster than the first. The cache is "
                  "`.<file>.cache.pt` beside each feature file, keyed by size, mtime_ns and the "
                  "separators (crc32-checked when written within 2 s of the source's mtime)."]
    with open(os.path.join(out, "parse_cache.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "results"))
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--skip-recbole", action="store_true", help="skip RecBole's own parser")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    import torch

    from recbole_mmssl.data.convert import convert

    work = args.work or tempfile.mkdtemp(prefix="parse_cache-")
    results = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "python": platform.python_version(),
               "numpy": np.__version__, "torch": torch.__version__,
               "load_average_at_start": os.getloadavg()[0], "cases": {}}
    try:
        convert("hkuds", os.path.join(SHARED, "tiktok"), "tiktok", work, modalities=["image"],
                progress=False)
        results["cases"]["TikTok image 6,710 x 128"] = measure(work, "tiktok", "image",
                                                               not args.skip_recbole)
        results["synthetic_write_seconds"] = make_synthetic(work, "synthetic")
        results["cases"]["synthetic 7,050 x 4,096"] = measure(work, "synthetic", "image",
                                                              not args.skip_recbole)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    write_report(results, args.out)
    with open(os.path.join(args.out, "parse_cache.md")) as f:
        print(f.read())


if __name__ == "__main__":
    main()
