"""Tune every model of the comparison with the same budget, on validation only.

    python benchmarks/tune.py --dataset=tiktok --data_path=DIR --models=BPR,VBPR,BM3,FREEDOM,LightGCN
    python benchmarks/tune.py --dataset=ml-100k --data_path=dataset --models=BPR,LightGCN --trials=8
    python benchmarks/tune.py ... --tool=ray [--ray_address=HOST:PORT] [--asha]

For each model: ``--trials`` distinct configurations drawn from ``properties/search/<Model>.test``
(RecBole's hyper-file format; MMRec's published grids for the multimodal peers, RecBole's tuning
ranges for the ID baselines), each trained with seed ``--seed`` to early stopping (patience
``--stopping_step``) or ``--epochs``, judged on validation Recall@20 (test is never recorded).
Writes, under ``--out/<dataset>/``:

* ``<Model>.yaml``: the best trial's values (pass it to compare.py with ``--config_files``), its
  header naming the budget, the space file and the selection score;
* ``<Model>/trials.md|csv|jsonl`` and ``search.json``: every trial, and what was searched;
* ``summary.json``: per model the space file, trials run, budget, chosen values, validation score,
  the config file and the equivalent compare spec (``Model:key=value;...``).

An interrupted search continues from ``trials.jsonl`` when run again with the same arguments; with
``--tool=local`` a trial stopped midway (Ctrl-C, SIGTERM, e.g. ``timeout``) also continues from its
last epoch, kept under ``--checkpoint_dir`` until the trial ends.
``--specs`` trains nothing: it prints the tuned models' compare specs from ``summary.json``, ready for
``compare.py --models=``.
One search per folder at a time: a second call that finds a model's search (``<out>/<dataset>/<Model>.lock``)
or a trial (``<trial folder>.lock`` under ``--checkpoint_dir``) held by a live process skips it, names
that process, leaves its files alone and exits 1; a lock whose process is gone is taken over.
Other ``--key=value`` arguments are config overrides for every trial. The search itself is
recbole_mmssl/tuning.py.
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SPACES = os.path.join(REPO, "properties", "search")
PROG = "benchmarks/tune.py"


def _relative(path):
    """``path`` relative to the repository when it lies inside it (summaries travel with the checkout)."""
    path = os.path.abspath(path)
    return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path


def parse_args(argv):
    from recbole_mmssl.cli import ArgumentParser, config_overrides

    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--models", default=None, help="comma-separated model names, each with a space file")
    parser.add_argument("--specs", action="store_true",
                        help="print the compare specs of the tuned models (of --models, else all) and exit")
    parser.add_argument("--trials", type=int, default=8, help="trials per model, the same for every model")
    parser.add_argument("--epochs", type=int, default=300, help="cap on each trial's epochs")
    parser.add_argument("--stopping_step", type=int, default=15, help="early-stopping patience of each trial")
    parser.add_argument("--seed", type=int, default=2020, help="training seed of every trial")
    parser.add_argument("--draw_seed", type=int, default=0, help="seed of the random draws of configurations")
    parser.add_argument("--spaces", default=SPACES, help="folder of <Model>.test search spaces")
    parser.add_argument("--config_files", default=None, help="yaml files applied to every trial")
    parser.add_argument("--out", default=os.path.join(REPO, "results", "tuning"))
    parser.add_argument("--checkpoint_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "recbole-mmssl",
                                                                 "tuning"),
                        help="--tool=local: each trial's checkpoints, kept while it is unfinished (a stopped "
                             "trial continues from its last epoch when the search runs again)")
    parser.add_argument("--threads", type=int, default=None, help="pin the CPU threads of every trial")
    parser.add_argument("--tool", choices=["local", "ray"], default="local",
                        help="local: trials one after another in this process; ray: as Ray Tune trials")
    parser.add_argument("--ray_address", default=None, help="HOST:PORT of a running Ray cluster (--tool=ray)")
    parser.add_argument("--ray_cpus", type=int, default=None, help="CPUs of a local Ray instance")
    parser.add_argument("--cpus_per_trial", type=float, default=1)
    parser.add_argument("--asha", action="store_true", help="--tool=ray: let ASHA stop weak trials early")
    parser.add_argument("--grace_period", type=int, default=10, help="ASHA: epochs before a trial can be stopped")
    parser.add_argument("--max_epochs_asha", type=int, default=1000, help="ASHA: its max_t")
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    args, extra = parser.parse_known_args(argv)
    args.cmd_args = config_overrides(extra, PROG)
    for option in ("trials", "epochs", "stopping_step", "grace_period", "max_epochs_asha"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, got {getattr(args, option)}")
    if args.ray_address and args.tool != "ray":
        parser.error("--ray_address needs --tool=ray")
    if not args.specs and not (args.data_path and args.models):
        parser.error("--data_path and --models are required (unless --specs)")
    return args


def compare_specs(summary_path, models=None):
    """The tuned models' compare specs (``Model:key=value;...``), in ``models``' order when given."""
    from recbole_mmssl.errors import DataError

    if not os.path.isfile(summary_path):
        raise DataError(summary_path, "no tuning summary", "run benchmarks/tune.py for this dataset first")
    with open(summary_path) as f:
        summary = json.load(f)
    missing = [m for m in models or [] if m not in summary]
    if missing:
        raise DataError(summary_path, f"has no tuned values for {', '.join(missing)}",
                        f"run benchmarks/tune.py --models={','.join(missing)} first")
    return [summary[m]["spec"] for m in (models or summary)]


def tune_model(model, args, log=print):
    """Search one model; returns its summary entry (None when nothing was written) and the number of
    searches or trials skipped because another live process holds them (their locks)."""
    from recbole_mmssl import tuning
    from recbole_mmssl.errors import DataError
    from recbole_mmssl.hyper_space import check_values, read_space
    from recbole_mmssl.quick_start import preflight
    from recbole_mmssl.run_lock import RunBusy, RunLocks

    space_file = os.path.join(args.spaces, f"{model}.test")
    if not os.path.isfile(space_file):
        raise DataError(space_file, f"no search space for {model}",
                        f"write one `name type values` line per key to tune in {space_file}")
    lines = {}
    space = read_space(space_file, lines)
    config_files = [os.path.abspath(p) for p in args.config_files.split(",") if p.strip()] \
        if args.config_files else None
    config_dict = {"data_path": os.path.abspath(args.data_path), "seed": args.seed, "epochs": args.epochs,
                   "stopping_step": args.stopping_step}
    fixed = {"model": model, "dataset": args.dataset, "config_dict": config_dict, "cmd_args": args.cmd_args,
             "config_files": config_files}
    if args.tool == "local":
        fixed["checkpoint_root"] = os.path.join(os.path.abspath(args.checkpoint_dir), args.dataset, model)
    check_values(space, lines, space_file, fixed)
    drawn = tuning.draw_trials(space, args.trials, args.draw_seed)
    preflight(model, args.dataset, config_files, {**config_dict, **drawn[0]}, args.cmd_args)
    folder = os.path.join(args.out, args.dataset, model)
    search = {
        "model": model, "dataset": args.dataset, "space_file": _relative(space_file),
        "space": {k: list(v) for k, v in space.items()}, "n_trials": args.trials, "draw_seed": args.draw_seed,
        "seed": args.seed, "epochs": args.epochs, "stopping_step": args.stopping_step,
        "overrides": args.cmd_args, "config_files": [_relative(p) for p in config_files or []],
    }
    with RunLocks() as locks:
        try:
            locks.take(folder)
        except RunBusy as err:
            log(f"{model}: skipped: {err}")
            return None, 1
        store = tuning.TrialStore(folder, search)
        skipped = 0
        if args.tool == "ray":
            args.output_dir = folder
            tuning.run_ray(drawn, fixed, store, args)
            tuning.clear_ray_folder(folder)
        else:
            skipped = tuning.run_local(drawn, fixed, store, log=lambda text: log(f"{model}: {text}"))
        rows = store.table(drawn)
        if skipped and not rows:
            log(f"{model}: no trial has ended yet, so nothing was written; run the same command again later")
            return None, skipped
        entry = tuning.write_outputs({**search, "folder": folder, "tool": args.tool}, list(space), rows,
                                     os.path.join(args.out, args.dataset, f"{model}.yaml"),
                                     os.path.join(args.out, args.dataset, "summary.json"), display=_relative)
    log(f"{model}: best {entry['values']} valid Recall@20 {entry['best_valid_score']:.4f} "
        f"({entry['finished']}/{entry['trials']} trials finished); wrote {entry['config_file']}")
    return entry, skipped


def _main(argv):
    args = parse_args(argv)
    models = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    if args.specs:
        print(",".join(compare_specs(os.path.join(args.out, args.dataset, "summary.json"), models or None)))
        return 0
    skipped = sum(tune_model(model, args)[1] for model in models)
    if skipped:
        print(f"{skipped} search(es) or trial(s) skipped: another process holds them", flush=True)
    return 1 if skipped else 0


def main(argv=None):
    """The command: returns its exit code (0, 2 for a user error, 130 for Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for arg in argv:  # the thread pools are sized when torch/numpy load (recbole_mmssl/threads.py)
        if arg.startswith("--threads=") and arg.split("=", 1)[1].isdigit():
            os.environ["RECBOLE_MMSSL_THREADS"] = arg.split("=", 1)[1]
    from recbole_mmssl.cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
