"""Side-by-side comparison of MMSSL and RecBole baselines under one protocol, resumable.

    python benchmarks/compare.py --dataset=tiktok --data_path=DIR \
        --models=MMSSL,MMSSL:variant=released,LightGCN,SGL,NCL,BPR --seeds=2022,2023,2024

Every (model, seed) run trains on the train split, selects its epoch on validation Recall@20 only,
and is evaluated once on test (RecBole full ranking). Each run is a subprocess writing one json file
under results/runs/<dataset>/ when it ends (ok or failed), so an interrupted comparison resumes where
it stopped; the aggregate results/<dataset>.md|json|png are rewritten after every run.
A model spec is ``Name`` or ``Name:key=value;key=value`` (RecBole/MMSSL config overrides).
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import recbole_mmssl  # noqa: E402,F401  (thread wait settings before numpy/torch load: recbole_mmssl/threads.py)
from benchmarks.report import write_reports  # noqa: E402


def parse_model_spec(spec):
    """``MMSSL:variant=released;T=2`` -> ("MMSSL", {"variant": "released", "T": 2})."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(";")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"Bad model spec {spec!r}: overrides are key=value separated by ';'")
        overrides[key.strip()] = _literal(value.strip())
    return name.strip(), overrides


def _literal(text):
    import yaml

    return yaml.safe_load(text)


def run_id(label, seed):
    safe = label.replace(":", "__").replace(";", "_").replace("=", "-").replace("/", "-")
    return f"{safe}__seed{seed}"


def code_version():
    """The repository commit the code ran from (short hash; '+dirty' with uncommitted changes to the
    package or the benchmarks), or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "recbole_mmssl", "benchmarks"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def run_one(spec):
    """Child process: one training run; writes its json atomically (status ok or failed)."""
    import torch

    from recbole_mmssl import threads

    threads.apply()
    out_path = spec["out"]
    record = {k: spec[k] for k in ("label", "model", "overrides", "seed", "dataset")}
    record["code"] = code_version()
    record["threads"] = torch.get_num_threads()
    print(f"CODE {record['code']} THREADS {record['threads']}", flush=True)  # read back by finalize_interrupted
    started = time.time()
    try:
        from recbole_mmssl.checkpoint import plain_config
        from recbole_mmssl.quick_start import run_recbole_mmssl

        def progress(epoch_idx, valid_score):
            print(f"PROGRESS epoch {epoch_idx} valid {spec['valid_metric']}={valid_score:.4f}", flush=True)

        resume = spec.get("resume")
        if resume:
            record.update(resumed_from=resume["checkpoint"], resumed_at_epoch=resume["epoch"])
        result = run_recbole_mmssl(
            model=spec["model"], dataset=spec["dataset"], config_file_list=spec["config_files"],
            config_dict=_config_dict(spec), saved=True, callback_fn=progress, breakdown_k=spec.get("breakdown_k"),
            resume=resume["checkpoint"] if resume else None,
        )
        epochs = (resume["epochs"] if resume else []) + result["epochs"]
        scores = [e["valid_score"] for e in epochs]
        best = epochs[scores.index(max(scores))]["epoch"] if epochs else None
        train_seconds = [e["train_seconds"] for e in epochs if e["train_seconds"] is not None]
        record.update(
            status="ok",
            best_epoch=best,
            n_epochs=len(epochs),
            best_valid_result=result["best_valid_result"],
            test_result=result["test_result"],
            valid_curve=scores,
            seconds_per_epoch=statistics.median(train_seconds) if train_seconds else None,
            config=plain_config(result["config"]),
            checkpoint=result["saved_model_file"],
            breakdown=result["breakdown"],
        )
    except Exception as err:  # a failed run is reported, never dropped
        import traceback

        record.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    record["wall_seconds"] = time.time() - started
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, out_path)
    return record["status"] == "ok"


def _config_dict(spec):
    config = {"data_path": spec["data_path"], "seed": spec["seed"], "show_progress": False, **spec["overrides"]}
    if spec.get("checkpoint_dir"):
        config["checkpoint_dir"] = spec["checkpoint_dir"]
    return config


def log_curve(text):
    """(validation score per epoch, training seconds per epoch) from a run's log (PROGRESS lines and
    the trainers' epoch lines)."""
    scores = [float(v) for v in re.findall(r"^PROGRESS epoch \d+ valid \S+=([0-9.]+)", text, flags=re.M)]
    seconds = [float(v) for v in re.findall(r"epoch \d+ training \[time: ([0-9.]+)s", text)]
    return scores, seconds


def resumable(checkpoint_dir, log_path):
    """What an interrupted run left to continue from: its newest ``.last.pth`` in ``checkpoint_dir``
    (the run's own folder) and the per-epoch validation scores and times its log printed up to it.

    Returns None when there is nothing to continue (no folder, no last checkpoint).
    """
    from recbole_mmssl.checkpoint import load_checkpoint

    if not checkpoint_dir or not os.path.isdir(checkpoint_dir):
        return None
    lasts = [os.path.join(checkpoint_dir, n) for n in os.listdir(checkpoint_dir) if n.endswith(".last.pth")]
    if not lasts:
        return None
    last = max(lasts, key=os.path.getmtime)
    done = int(load_checkpoint(last)["epoch"]) + 1  # epochs finished before the interruption
    scores, seconds = log_curve(open(log_path).read() if os.path.exists(log_path) else "")
    epochs = [{"epoch": e, "valid_score": scores[e] if e < len(scores) else float("nan"),
               "train_seconds": seconds[e] if e < len(seconds) else None} for e in range(done)]
    return {"checkpoint": last, "epoch": done, "epochs": epochs}


def finalize_interrupted(spec, log_path):
    """Record a run that was stopped before early stopping (killed, session limit) from its log.

    The best-on-validation checkpoint it saved (RecBole's INFO line "Saving current: ...") is evaluated on test exactly as a finished run's
    would be; the record says ``status: interrupted`` and at which epoch it stopped, so the report
    can show it apart from finished runs. Returns False when the run saved no checkpoint.
    """
    from recbole_mmssl import threads
    from recbole_mmssl.checkpoint import load_checkpoint, plain_config
    from recbole_mmssl.quick_start import build

    threads.apply()
    with open(log_path) as f:
        text = f.read()
    saved = re.findall(r"Saving current: (\S+\.pth)", text)
    if not saved:
        return False
    checkpoint = os.path.join(spec["cwd"], saved[-1])
    curve, seconds = log_curve(text)
    config, (train_data, valid_data, test_data), _, trainer = build(
        spec["model"], spec["dataset"], spec["config_files"], _config_dict(spec))
    state = load_checkpoint(checkpoint)
    trainer.saved_model_file = checkpoint
    # the checkpoint holds the best result *before* it; its own validation result is re-measured
    valid_result = trainer.evaluate(valid_data, load_best_model=True, model_file=checkpoint)
    test_result = trainer.evaluate(test_data, load_best_model=True, model_file=checkpoint)
    groups = None
    if spec.get("breakdown_k"):
        from recbole_mmssl.breakdown import breakdown

        groups = breakdown(trainer, test_data, train_data._dataset, k=spec["breakdown_k"])
    record = {k: spec[k] for k in ("label", "model", "overrides", "seed", "dataset")}
    code = re.search(r"^CODE (\S+) THREADS (\d+)", text, flags=re.M)
    record["code"], record["threads"] = (code.group(1), int(code.group(2))) if code else (None, None)
    record.update(
        status="interrupted", best_epoch=state["epoch"], n_epochs=len(curve),
        best_valid_result={k: float(v) for k, v in valid_result.items()}, test_result={k: float(v) for k, v in test_result.items()},
        valid_curve=curve, seconds_per_epoch=statistics.median(seconds) if seconds else None,
        config=plain_config(config), checkpoint=checkpoint, breakdown=groups, wall_seconds=None, peak_rss_mb=None,
        note=f"stopped after {len(curve)} epochs, before early stopping; epoch selected on validation among those",
    )
    with open(spec["out"] + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(spec["out"] + ".tmp", spec["out"])
    return True


def _child_env(spec):
    """The child's environment: ``--threads`` pins its thread pools (recbole_mmssl/threads.py)."""
    env = dict(os.environ)
    if spec.get("threads"):
        env["RECBOLE_MMSSL_THREADS"] = str(spec["threads"])
    return env


def launch(spec, log_path):
    """Run one spec in a subprocess; stream its log to a file (appended to when the run continues an
    interrupted one) and its progress lines to stdout."""
    cmd = [sys.executable, os.path.abspath(__file__), "--one", json.dumps(spec)]
    with open(log_path, "a" if spec.get("resume") else "w") as log, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=spec["cwd"],
        env=_child_env(spec)
    ) as proc:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if line.startswith("PROGRESS"):
                print(f"    {spec['label']} seed {spec['seed']}: {line[9:].strip()}", flush=True)
    return proc.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset")
    parser.add_argument("--data_path")
    parser.add_argument("--models", default="MMSSL,LightGCN,SGL,NCL,BPR")
    parser.add_argument("--seeds", default="2022,2023,2024")
    parser.add_argument("--config_files", default=None, help="comma-separated yaml files applied to every run")
    parser.add_argument("--results", default=os.path.join(REPO, "results"))
    parser.add_argument("--threads", type=int, default=None,
                        help="pin each run's CPU threads (default: recbole_mmssl/threads.py decides at start)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also report test Recall/NDCG@20 by user activity and item popularity groups")
    parser.add_argument("--report-only", action="store_true", help="rewrite the reports from finished runs")
    parser.add_argument("--finalize-interrupted", action="store_true",
                        help="record runs that were stopped before early stopping (their log and best checkpoint "
                             "are still here) as 'interrupted', evaluating the saved best epoch on test")
    parser.add_argument("--checkpoint_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "recbole-mmssl",
                                                                 "checkpoints"),
                        help="where each run keeps its checkpoints (<dir>/<dataset>/<run>/), outside the checkout "
                             "so that a fresh clone can continue an interrupted run from its .last.pth")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        sys.exit(0 if run_one(json.loads(args.one)) else 1)
    if not args.dataset or not args.data_path:
        parser.error("--dataset and --data_path are required")

    runs_dir = os.path.join(args.results, "runs", args.dataset)
    os.makedirs(runs_dir, exist_ok=True)
    data_path = os.path.abspath(args.data_path)
    config_files = [os.path.abspath(p) for p in args.config_files.split(",")] if args.config_files else None
    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    # seed-major: one seed of every model first, so a partial comparison already covers every model
    todo = [(label, seed) for seed in seeds for label in labels]
    if not args.report_only:
        for n, (label, seed) in enumerate(todo, 1):
            out = os.path.join(runs_dir, run_id(label, seed) + ".json")
            if os.path.exists(out) and json.load(open(out)).get("status") == "ok":  # resume: keep finished runs
                print(f"[{n}/{len(todo)}] {label} seed {seed}: done earlier, kept", flush=True)
                continue
            model, overrides = parse_model_spec(label)
            spec = {
                "label": label, "model": model, "overrides": overrides, "seed": seed, "dataset": args.dataset,
                "data_path": data_path, "config_files": config_files, "out": out, "threads": args.threads,
                "valid_metric": "Recall@20", "cwd": os.getcwd(), "breakdown_k": 20 if args.breakdown else None,
                "checkpoint_dir": os.path.join(os.path.abspath(args.checkpoint_dir), args.dataset, run_id(label, seed)),
            }
            log_path = out[: -len(".json")] + ".log"
            if not args.finalize_interrupted:
                spec["resume"] = resumable(spec["checkpoint_dir"], log_path)
            if args.finalize_interrupted:
                if os.path.exists(log_path) and finalize_interrupted(spec, log_path):
                    print(f"[{n}/{len(todo)}] {label} seed {seed}: recorded as interrupted", flush=True)
                continue
            print(f"[{n}/{len(todo)}] {label} seed {seed}: "
                  + (f"continuing after epoch {spec['resume']['epoch'] - 1} ..." if spec["resume"] else "training ..."),
                  flush=True)
            started = time.time()
            code = launch(spec, log_path)
            if not os.path.exists(out):  # the child died before writing (killed, out of memory)
                with open(out, "w") as f:
                    json.dump({**{k: spec[k] for k in ("label", "model", "overrides", "seed", "dataset")},
                               "status": "failed", "error": f"process exited with {code} before writing a result"}, f)
            record = json.load(open(out))
            summary = (f"test Recall@20={record['test_result'].get('recall@20', float('nan')):.4f}"
                       if record["status"] == "ok" else record["error"])
            print(f"[{n}/{len(todo)}] {label} seed {seed}: {record['status']} in {time.time() - started:.0f}s; {summary}",
                  flush=True)
            write_reports(args.dataset, runs_dir, args.results, labels, seeds)
    paths = write_reports(args.dataset, runs_dir, args.results, labels, seeds)
    print("wrote", ", ".join(paths))


if __name__ == "__main__":
    main()
