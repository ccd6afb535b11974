"""Hyper-parameter search (the code behind run_hyper.py; inside the package so Ray workers import it)
for MMSSL (or any RecBole model) with Ray Tune or RecBole's HyperTuning.

    python run_hyper.py --model=MMSSL --dataset=tiktok --data_path=DIR --params_file=hyper.test --tool=ray
    python run_hyper.py --model=MMSSL --dataset=tiktok --data_path=DIR --params_file=hyper.test --tool=hyperopt
    python run_hyper.py ... --tool=ray --ray_address=HOST:PORT      # join a running Ray cluster

Trials are selected on validation (``valid_metric``, Recall@20) only; test numbers are recorded for
information. Ray Tune stops weak trials early with ASHA from the per-epoch validation reports.
Writes ``<output_dir>/best.yaml`` (pass it back with ``--config_files``) and ``trials.md``/``trials.csv``.
Other ``--key=value`` arguments are config overrides for every trial. Before the first trial, the
parameter file, every value it can draw, the fixed settings and the data are checked, so a typo is an
``error:`` line naming the file and line, not a search of trials that all fail (or all ignore it).
"""

import argparse
import csv
import math
import os
import shutil
import sys
import tempfile

import yaml

from recbole_mmssl import compat
from recbole_mmssl.atomic_write import atomic_file
from recbole_mmssl.checkpoint import newest_last_checkpoint
from recbole_mmssl.cli import ArgumentParser, check_not_an_input, check_output_folder, config_overrides, run_cli
from recbole_mmssl.errors import DataError
from recbole_mmssl.hyper_space import ALGOS, check_algo, check_ray_address, check_search, read_space
from recbole_mmssl.quick_start import run_recbole_mmssl
from recbole_mmssl.tuning import TRIAL_FAILURES, failure_status

OUTPUT_FILES = ("best.yaml", "trials.md", "trials.csv")
def run_trial(params, fixed):
    """One training run with ``params`` on top of ``fixed``.

    Checkpoints go to a temporary folder, removed at the end; or, when ``fixed`` names the trial's own
    ``checkpoint_dir`` (benchmarks/tune.py), to that folder, kept when the trial is interrupted
    (Ctrl-C, SIGTERM) so that the same call continues it from its ``.last.pth``, and removed once the
    trial has ended. The result's ``epochs`` and ``train_seconds`` then cover the whole trial (the
    checkpoint carries the earlier epochs: recbole_mmssl/epoch_history.py).
    """
    kept = fixed.get("checkpoint_dir")
    if kept is None:
        checkpoint_dir = tempfile.mkdtemp(prefix="hyper-")
        try:
            return _train(params, fixed, checkpoint_dir, fixed.get("callback"))
        finally:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    try:
        result = _train(params, fixed, kept, fixed.get("callback"), resume=newest_last_checkpoint(kept))
    except Exception:  # the trial has ended (failed): nothing to continue
        shutil.rmtree(kept, ignore_errors=True)
        raise
    shutil.rmtree(kept, ignore_errors=True)
    return result


def _train(params, fixed, checkpoint_dir, callback, resume=None):
    config_dict = {**fixed["config_dict"], **params, "checkpoint_dir": checkpoint_dir, "show_progress": False}
    return run_recbole_mmssl(
        model=fixed["model"], dataset=fixed["dataset"], config_file_list=fixed["config_files"],
        config_dict=config_dict, callback_fn=callback, cmd_args=fixed.get("cmd_args"), resume=resume,
    )


def search_hyperopt(space, fixed, args):
    from hyperopt import hp
    from recbole.trainer import HyperTuning

    hp_space = {}
    for name, (kind, value) in space.items():
        if kind == "choice":
            hp_space[name] = hp.choice(name, value)
        elif kind == "quniform":
            hp_space[name] = hp.quniform(name, *value)
        else:
            hp_space[name] = getattr(hp, kind)(name, *value)
    trials = []

    def objective(config_dict, config_file_list):
        try:
            result = run_trial(config_dict, fixed)
        except TRIAL_FAILURES as err:
            trials.append(_failed_row(config_dict, err))
            print(f"trial {config_dict}: {trials[-1]['status']}", flush=True)
            # the worst score there is, so that the search goes on (RecBole's tuner takes every result as ok)
            return {"model": fixed["model"], "best_valid_score": -math.inf, "valid_score_bigger": True,
                    "best_valid_result": {}, "test_result": {}}
        trials.append(_trial_row(config_dict, result))
        return {key: result[key] for key in ("model", "best_valid_score", "valid_score_bigger",
                                             "best_valid_result", "test_result")}

    tuner = HyperTuning(objective, space=hp_space, algo=args.algo, max_evals=args.max_evals,
                        fixed_config_file_list=fixed["config_files"])
    tuner.run()
    return trials


def ray_domain(kind, value):
    """The Ray Tune domain of one hyper.test line. RecBole's loguniform bounds are exponents
    (hyperopt's convention: exp(low)..exp(high)); Ray's take the values themselves."""
    from ray import tune

    if kind == "choice":
        return tune.choice(value)
    if kind == "loguniform":
        low, high = value
        return tune.loguniform(math.exp(low), math.exp(high))
    return getattr(tune, kind)(*value)


def ray_report():
    """How a trial reports its metrics to Ray Tune: ``ray.tune.report(metrics)`` in the Ray releases
    of Python 3.12+, ``ray.air.session.report(metrics)`` in Ray 2.6.3 (Python 3.11, RecBole's pin),
    whose ``tune.report`` is the older keyword-argument API."""
    import inspect

    from ray import tune

    if "metrics" in inspect.signature(tune.report).parameters:
        return tune.report
    from ray.air import session

    return session.report


def search_ray(space, fixed, args, drawn=None, row=None):
    """Ray Tune over ``space`` (``args.max_evals`` random draws), or over the given ``drawn`` parameter
    dicts, one trial each. ASHA stops weak trials from their per-epoch validation scores unless
    ``args.asha`` is False. ``row(params, result)`` makes a finished trial's table row."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    row = row or _trial_row
    if drawn is None:
        ray_space, samples = {name: ray_domain(kind, value) for name, (kind, value) in space.items()}, args.max_evals
    else:  # the trial's index into ``drawn``: Ray runs each drawn configuration once
        ray_space, samples = {"trial_index": tune.grid_search(list(range(len(drawn))))}, 1
    # Each Ray worker applies recbole_mmssl.compat before it unpickles a trial: Ray 2.6.3 reads a
    # NumPy 1.x name when ray.tune loads there, before any code of ours would run otherwise.
    runtime_env = {"worker_process_setup_hook": compat.apply}
    if args.ray_address:
        ray.init(address=args.ray_address, runtime_env=runtime_env)
    else:
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, ignore_reinit_error=True, runtime_env=runtime_env)

    def params_of(config):
        return dict(drawn[config["trial_index"]]) if drawn is not None else {k: config[k] for k in space}

    def trainable(config):
        params = params_of(config)
        tune_report = ray_report()

        def report(epoch_idx, valid_score):
            tune_report({"valid_score": valid_score, "epoch": epoch_idx})

        result = run_trial(params, {**fixed, "callback": report})
        tune_report({"valid_score": result["best_valid_score"], "final": True, "row": row(params, result)})

    scheduler = None
    if getattr(args, "asha", True):
        scheduler = ASHAScheduler(max_t=args.max_epochs_asha, grace_period=args.grace_period, reduction_factor=2)
    analysis = tune.run(
        trainable, config=ray_space, num_samples=samples, scheduler=scheduler,
        metric="valid_score", mode="max", resources_per_trial={"cpu": args.cpus_per_trial},
        storage_path=os.path.abspath(os.path.join(args.output_dir, "ray")), verbose=1,
        raise_on_failed_trial=False,  # a failed trial (e.g. a diverging learning rate) is a row of the table
    )
    trials = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        if last.get("final"):
            trials.append(last["row"])
        else:  # stopped early by ASHA (or failed): its best validation score so far
            best = trial.metric_analysis.get("valid_score", {}).get("max")
            trials.append({**params_of(trial.config), "valid_score": best,
                           "test_recall@20": None, "test_ndcg@20": None, "epochs": last.get("epoch"),
                           "status": "stopped early (ASHA)" if trial.status == "TERMINATED" else "failed"})
    if not args.ray_address:
        ray.shutdown()
    return trials


def _trial_row(params, result):
    return {**params, "valid_score": result["best_valid_score"],
            "test_recall@20": result["test_result"].get("recall@20"),
            "test_ndcg@20": result["test_result"].get("ndcg@20"),
            "epochs": len(result["epochs"]), "status": "finished"}


def _failed_row(params, err):
    return {**params, "valid_score": None, "test_recall@20": None, "test_ndcg@20": None, "epochs": None,
            "status": failure_status(err)}


def write_outputs(trials, space, fixed, output_dir):
    """best.yaml (the fixed settings + the best trial's parameters) and the table of all trials."""
    os.makedirs(output_dir, exist_ok=True)
    scored = [t for t in trials if t["valid_score"] is not None]
    if not scored:
        raise DataError(output_dir, f"none of the {len(trials)} trial(s) produced a validation score, so nothing "
                                    "was written", "read the trials' errors in the log above")
    best = max(scored, key=lambda t: t["valid_score"])
    best_config = {"model": fixed["model"], "dataset": fixed["dataset"], **fixed["config_dict"],
                   **{name: _plain(best[name]) for name in space}}
    with atomic_file(os.path.join(output_dir, "best.yaml"), "w") as f:
        f.write(f"# best of {len(trials)} trials on validation recall@20 = {best['valid_score']:.4f}\n")
        yaml.safe_dump(best_config, f, sort_keys=False)
    columns = list(space) + ["valid_score", "test_recall@20", "test_ndcg@20", "epochs", "status"]
    with atomic_file(os.path.join(output_dir, "trials.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(trials)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for trial in sorted(trials, key=lambda t: -(t["valid_score"] or -1)):
        lines.append("| " + " | ".join(_cell(trial.get(c)) for c in columns) + " |")
    with atomic_file(os.path.join(output_dir, "trials.md"), "w") as f:
        f.write(f"# {fixed['model']} on {fixed['dataset']}: {len(trials)} trials, selected on validation\n\n")
        f.write("\n".join(lines) + "\n")
    return best


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


PROG = "run_hyper.py"


def _main(argv):
    parser = ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            allow_abbrev=False)
    parser.add_argument("--model", default="MMSSL")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", default="dataset/")
    parser.add_argument("--params_file", default="hyper.test")
    parser.add_argument("--config_files", default=None)
    parser.add_argument("--tool", choices=["ray", "hyperopt"], default="ray")
    parser.add_argument("--algo", default=None, choices=ALGOS, help="hyperopt: exhaustive | random | bayes "
                        "(default random; Ray Tune always samples at random)")
    parser.add_argument("--max_evals", type=int, default=10, help="number of trials")
    parser.add_argument("--epochs", type=int, default=None, help="cap on epochs per trial")
    parser.add_argument("--ray_address", default=None, help="HOST:PORT of a running Ray cluster")
    parser.add_argument("--ray_cpus", type=int, default=None, help="CPUs for a local Ray instance")
    parser.add_argument("--cpus_per_trial", type=float, default=1)
    parser.add_argument("--grace_period", type=int, default=5, help="ASHA: epochs before a trial can be stopped")
    parser.add_argument("--max_epochs_asha", type=int, default=1000, help="ASHA: max epochs (its max_t)")
    parser.add_argument("--output_dir", default=None)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    args, extra = parser.parse_known_args(argv)
    cmd_args = config_overrides(extra, PROG)
    for option in ("max_evals", "grace_period", "max_epochs_asha"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, got {getattr(args, option)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    if args.cpus_per_trial <= 0:
        parser.error(f"--cpus_per_trial must be positive, got {args.cpus_per_trial}")
    config_files = [os.path.abspath(p.strip()) for p in (args.config_files or "").split(",") if p.strip()]
    args.output_dir = args.output_dir or os.path.join("results", "hyper", f"{args.model}-{args.dataset}-{args.tool}")
    check_output_folder(args.output_dir, "--output_dir")
    inputs = {"--params_file": args.params_file, **{f"--config_files ({p})": p for p in config_files}}
    for name in OUTPUT_FILES:
        check_not_an_input(os.path.join(args.output_dir, name), "--output_dir", inputs)
    config_dict = {"data_path": os.path.abspath(args.data_path)}  # absolute: Ray trials run elsewhere
    if args.epochs:
        config_dict["epochs"] = args.epochs
    fixed = {
        "model": args.model, "dataset": args.dataset, "config_dict": config_dict, "cmd_args": cmd_args,
        "config_files": config_files or None,
    }
    if args.ray_address and args.tool != "ray":
        parser.error("--ray_address applies to --tool=ray only")
    lines = {}
    space = read_space(args.params_file, lines)
    args.algo = check_algo(args.algo, args.tool, space, lines, args.params_file)
    if args.ray_address:
        check_ray_address(args.ray_address)
    check_search(space, lines, args.params_file, fixed)
    trials = (search_ray if args.tool == "ray" else search_hyperopt)(space, fixed, args)
    best = write_outputs(trials, space, fixed, args.output_dir)
    print(f"best validation score {best['valid_score']:.4f} with", {k: best[k] for k in space})
    print(f"wrote {args.output_dir}/best.yaml, trials.md, trials.csv")
    return 0


def main(argv=None):
    """The command: returns its exit code (0, 2 for a user error, 130 for Ctrl-C)."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
