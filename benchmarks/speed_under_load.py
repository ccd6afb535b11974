"""MMSSL's seconds per training iteration idle and beside background CPU burners, per thread setting.

    python benchmarks/speed_under_load.py                                   # ml-100k and TikTok
    python benchmarks/speed_under_load.py --datasets=tiktok --iterations=6 --settings=default,one_thread

Why: users' machines are never idle. A thread setting that is fastest alone can collapse when one
other process wants a core (16x on the earlier default), so every setting is measured under
each load of ``LOADS`` in the same invocation, and its ratio to its own idle figure is reported.

Each (dataset, setting, load) is one subprocess: the setting's environment is applied before torch is
imported (thread pools are sized at import), the model and trainer are built as ``run_recbole_mmssl``
builds them, one warm-up iteration runs, then ``--iterations`` one-iteration epochs are timed; the
median is reported. A burner is a single-threaded busy loop (``nice`` 0 or 19) that stops by itself
after ``--burner_seconds``; it is started before the child and killed after it. Measurements are
interleaved setting by setting, so slow drift of a shared machine spreads over all settings.
Writes results/speed_under_load.json and .md.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

#: name -> (environment for the child, config overrides, what it is)
SETTINGS = {
    "default": ({}, {}, "the plugin's default (recbole_mmssl/threads.py): threads = CPUs not kept busy at normal "
                        "priority at start, short OpenBLAS spin"),
    "legacy": ({"RECBOLE_MMSSL_THREADS": "legacy"}, {},
               "the earlier default: library defaults (torch and numpy's BLAS at the core count, spin-waiting workers)"),
    "one_thread": ({"RECBOLE_MMSSL_THREADS": "1"}, {}, "one thread pinned (RECBOLE_MMSSL_THREADS=1)"),
    "two_threads": ({"RECBOLE_MMSSL_THREADS": "2"}, {}, "two threads pinned, short OpenBLAS spin"),
    "legacy_numpy_blas": ({"RECBOLE_MMSSL_THREADS": "legacy"}, {"critic_matmul": "numpy"},
                          "legacy, critic products through numpy's OpenBLAS (what `critic_matmul: auto` picks "
                          "on AMD CPUs: the setting of the 16x report)"),
    "released": ({}, {"variant": "released"}, "variant released (real_rows released: dense first-layer product), "
                                              "default threads"),
    "default_numpy_blas": ({}, {"critic_matmul": "numpy"}, "the default policy, critic products through numpy"),
}
#: name -> list of (nice) of single-threaded burners
LOADS = {"idle": [], "1 burner nice 0": [0], "1 burner nice 19": [19], "2 burners nice 0": [0, 0]}
BURNER = "import time,sys\nend=time.time()+float(sys.argv[1])\nx=0\nwhile time.time()<end:\n    x+=1\n"


def child(spec):
    """Runs in the measuring subprocess: build, warm up, time one-iteration epochs, print json."""
    from recbole_mmssl.quick_start import build

    config_dict = {"seed": 2022, "show_progress": False, "state": "WARNING", **spec["overrides"]}
    if spec.get("data_path"):
        config_dict["data_path"] = spec["data_path"]
    config, (train_data, _, _), model, trainer = build(spec["model"], spec["dataset"], config_dict=config_dict)
    import torch

    if spec["model"] == "MMSSL":  # one-iteration epochs; other models: whole epochs of RecBole's Trainer
        sampler_class = type(trainer.sampler)
        trainer.sampler.__class__ = type("OneIteration", (sampler_class,), {"iterations_per_epoch": 1})
    trainer._train_epoch(train_data, 0)  # warm-up: allocations, CSR copies, thread pools
    walls = []
    for _ in range(spec["iterations"]):
        started = time.perf_counter()
        trainer._train_epoch(train_data, 0)
        walls.append(time.perf_counter() - started)
    from recbole_mmssl.threads import describe

    print(json.dumps({"walls": walls, "torch_threads": torch.get_num_threads(), "policy": describe()}))


def start_burners(nices, seconds):
    return [subprocess.Popen(["nice", "-n", str(n), sys.executable, "-c", BURNER, str(seconds)]) for n in nices]


def measure(dataset, data_path, setting, load, iterations, burner_seconds, model="MMSSL"):
    env_extra, overrides, _ = SETTINGS[setting]
    spec = {"dataset": dataset, "data_path": data_path, "overrides": overrides, "iterations": iterations,
            "model": model}
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT",
                        "RECBOLE_MMSSL_THREADS")}
    env.update(env_extra)
    burners = start_burners(LOADS[load], burner_seconds)
    try:
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=burner_seconds)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    if out.returncode != 0:
        raise RuntimeError(f"{setting}/{load} failed:\n{out.stderr[-3000:]}")
    record = json.loads(out.stdout.strip().splitlines()[-1])
    record.update(dataset=dataset, setting=setting, load=load, model=model,
                  s_per_iteration=statistics.median(record["walls"]))
    return record


def write_report(records, args, path_prefix):
    with open(path_prefix + ".json", "w") as f:
        json.dump({"machine": machine(), "args": vars(args), "records": records}, f, indent=1)
    lines = [
        f"# {args.model} training speed under load", "",
        f"`{args.command}` on {machine()}.",
        f"Median seconds per training {'iteration' if args.model == 'MMSSL' else 'epoch'} over {args.iterations} "
        f"timed {'iterations' if args.model == 'MMSSL' else 'epochs'} after one warm-up ({args.model}"
        f"{' `paper`' if args.model == 'MMSSL' else ''}, seed 2022, the dataset's own batch size). Load: single-threaded busy loops "
        "started before and stopped after each measurement. Ratio: to the same setting's idle figure of "
        "this run; 'vs 1 thread': to the one-thread setting under the same load.", "",
    ]
    for dataset in args.datasets.split(","):
        rows = [r for r in records if r["dataset"] == dataset]
        if not rows:
            continue
        lines += [f"## {dataset}", "", "| setting | threads (per load) | " + " | ".join(LOADS) + " |",
                  "|---|---|" + "---|" * len(LOADS)]
        for setting in args.settings.split(","):
            cells = []
            by_load = {r["load"]: r for r in rows if r["setting"] == setting}
            idle = by_load.get("idle", {}).get("s_per_iteration")
            for load in LOADS:
                r = by_load.get(load)
                if r is None:
                    cells.append("-")
                    continue
                one = next((x for x in rows if x["setting"] == "one_thread" and x["load"] == load), None)
                cell = f"{r['s_per_iteration']:.2f} s"
                if idle and load != "idle":
                    cell += f" ({r['s_per_iteration'] / idle:.2f}x idle"
                    if one and setting != "one_thread":
                        cell += f", {r['s_per_iteration'] / one['s_per_iteration']:.2f}x 1-thread"
                    cell += ")"
                cells.append(cell)
            lines.append(f"| {setting} | {_threads_chosen(by_load)} | " + " | ".join(cells) + " |")
        lines += ["", "Settings:", ""] + [f"- `{s}`: {SETTINGS[s][2]}" for s in args.settings.split(",")] + [""]
    with open(path_prefix + ".md", "w") as f:
        f.write("\n".join(lines))


def _threads_chosen(by_load):
    """Thread count per load as the run logged it, e.g. '2 / 1 / 2 / 1' (idle first)."""
    return " / ".join(str(by_load[load]["torch_threads"]) if load in by_load else "-" for load in LOADS)


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--datasets", default="ml-100k,tiktok")
    parser.add_argument("--data_path", default=None, help="folder holding prepared tiktok (ml-100k: the default)")
    parser.add_argument("--settings", default="default,legacy,one_thread,two_threads")
    parser.add_argument("--loads", default=",".join(LOADS))
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--burner_seconds", type=float, default=900)
    parser.add_argument("--out", default=os.path.join(REPO, "results", "speed_under_load"))
    parser.add_argument("--model", default="MMSSL", help="MMSSL (seconds per iteration) or any other model "
                        "(seconds per training epoch of RecBole's Trainer)")
    parser.add_argument("--report_only", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child))
    if args.report_only:
        with open(args.out + ".json") as f:
            saved = json.load(f)
        args.__dict__.update({k: v for k, v in saved["args"].items() if k not in ("report_only", "out")})
        return write_report(saved["records"], args, args.out)
    args.command = "python benchmarks/speed_under_load.py " + " ".join(sys.argv[1:])
    records = []
    for dataset in args.datasets.split(","):
        data_path = args.data_path if dataset != "ml-100k" else None
        for load in args.loads.split(","):
            for setting in args.settings.split(","):
                record = measure(dataset, data_path, setting, load, args.iterations, args.burner_seconds, args.model)
                print(f"{dataset:8s} {setting:18s} {load:18s} {record['s_per_iteration']:.3f} s/it "
                      f"{record['policy']}", flush=True)
                records.append(record)
                write_report(records, args, args.out)


if __name__ == "__main__":
    main()
