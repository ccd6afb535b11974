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

from recbole_mmssl.cli import ArgumentParser, check_output_folder, config_overrides, run_cli
from recbole_mmssl.config import Config
from recbole_mmssl.data.errors import ConfigError, DataError, read_utf8_text
from recbole_mmssl.quick_start import preflight, run_recbole_mmssl

KINDS = {"choice": None, "uniform": 2, "loguniform": 2, "quniform": 3}  # kind -> number of values


def _numbers(values):
    """YAML 1.1 reads 1e-4 (no dot) as a string: make such choices numbers, as RecBole would."""
    if not isinstance(values, list):
        return values
    out = []
    for v in values:
        try:
            out.append(float(v) if isinstance(v, str) else v)
        except ValueError:
            out.append(v)
    return out


def read_space(params_file, lines=None):
    """RecBole's hyper.test format: ``name type values`` per line (choice / uniform / loguniform / quniform).

    Every malformed line is a DataError naming the file and line. ``lines``, if given, receives
    {name: line number} (for the errors of later checks).
    """
    fix = "write one `name type values` line per parameter, e.g. `learning_rate choice [1e-3,5e-4]` or " \
          "`dropout uniform 0.1,0.5` (types: choice, uniform, loguniform, quniform)"
    text = read_utf8_text(params_file, "parameter file not found", "is a folder, not a parameter file", fix,
                          missing_fix="pass --params_file=FILE (e.g. hyper.test)", folder_fix="pass --params_file=FILE",
                          utf8_fix="save the parameter file as UTF-8")
    space, seen = {}, {} if lines is None else lines
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        where = f"{params_file} line {number}"
        if len(parts) < 3:
            raise DataError(where, f"{line.strip()!r} has no values", fix)
        name, kind, value = parts[0], parts[1], "".join(parts[2:])
        if kind not in KINDS:
            raise DataError(where, f"unknown type {kind!r}", fix)
        if name in space:
            raise DataError(where, f"`{name}` is already searched on line {seen[name]}", "keep one line per parameter")
        if kind == "choice":
            try:
                values = yaml.safe_load(value)
            except yaml.YAMLError as err:
                raise DataError(where, f"the choices are not a valid list ({getattr(err, 'problem', err)})",
                                "write the choices as a list, e.g. [0.1,0.2] or ['a','b']") from None
            if not isinstance(values, list) or not values:
                raise DataError(where, "choice needs a non-empty list", "write the choices as a list, e.g. [0.1,0.2]")
            space[name] = ("choice", _numbers(values))
        else:
            try:
                bounds = [float(v) for v in value.split(",")]
            except ValueError:
                raise DataError(where, f"{value!r} are not numbers", fix) from None
            if len(bounds) != KINDS[kind] or not all(math.isfinite(b) for b in bounds) or bounds[0] >= bounds[1]:
                expected = "low,high" if KINDS[kind] == 2 else "low,high,q"
                raise DataError(where, f"{kind} takes {expected} with low < high, got {value!r}", fix)
            space[name] = (kind, bounds)
        seen[name] = number
    if not space:
        raise DataError(params_file, "defines no parameter", fix)
    return space


def candidate_values(kind, value):
    """The values a search can draw that are worth checking: every choice, or both ends of a range."""
    if kind == "choice":
        return list(value)
    if kind == "loguniform":
        return [math.exp(value[0]), math.exp(value[1])]
    return [value[0], value[1]]


def check_search(space, lines, params_file, fixed):
    """Before any trial: every parameter is a known key and every value it can draw is accepted, and the
    fixed settings and data pass a run's own checks (errors name the parameter file's line)."""
    base = dict(fixed["config_dict"])
    for name, (kind, value) in space.items():
        for candidate in candidate_values(kind, value):
            try:
                Config(model=fixed["model"], dataset=fixed["dataset"], config_file_list=fixed["config_files"],
                       config_dict={**base, name: candidate}, cmd_args=fixed["cmd_args"])
            except ConfigError as err:
                if err.key != name:
                    raise
                raise ConfigError(name, err.problem, err.fix, f"{params_file} line {lines[name]}") from None
    first = {name: candidate_values(kind, value)[0] for name, (kind, value) in space.items()}
    preflight(fixed["model"], fixed["dataset"], fixed["config_files"], {**base, **first}, fixed["cmd_args"])


def run_trial(params, fixed):
    """One training run with ``params`` on top of ``fixed``; checkpoints go to a temporary folder."""
    checkpoint_dir = tempfile.mkdtemp(prefix="hyper-")
    try:
        config_dict = {**fixed["config_dict"], **params, "checkpoint_dir": checkpoint_dir, "show_progress": False}
        return run_recbole_mmssl(
            model=fixed["model"], dataset=fixed["dataset"], config_file_list=fixed["config_files"],
            config_dict=config_dict, callback_fn=fixed.get("callback"), cmd_args=fixed.get("cmd_args"),
        )
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


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
        result = run_trial(config_dict, fixed)
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


def search_ray(space, fixed, args):
    import ray
    from ray import tune
    from ray.air import session
    from ray.tune.schedulers import ASHAScheduler

    ray_space = {name: ray_domain(kind, value) for name, (kind, value) in space.items()}
    if args.ray_address:
        ray.init(address=args.ray_address)
    else:
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, ignore_reinit_error=True)

    def trainable(params):
        def report(epoch_idx, valid_score):
            session.report({"valid_score": valid_score, "epoch": epoch_idx})

        result = run_trial(params, {**fixed, "callback": report})
        row = _trial_row(params, result)
        session.report({"valid_score": result["best_valid_score"], "final": True, "row": row})

    scheduler = ASHAScheduler(max_t=args.max_epochs_asha, grace_period=args.grace_period, reduction_factor=2)
    analysis = tune.run(
        trainable, config=ray_space, num_samples=args.max_evals, scheduler=scheduler,
        metric="valid_score", mode="max", resources_per_trial={"cpu": args.cpus_per_trial},
        local_dir=os.path.abspath(os.path.join(args.output_dir, "ray")), verbose=1,
    )
    trials = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        if last.get("final"):
            trials.append(last["row"])
        else:  # stopped early by ASHA: its best validation score so far
            best = trial.metric_analysis.get("valid_score", {}).get("max")
            trials.append({**{k: trial.config[k] for k in space}, "valid_score": best,
                           "test_recall@20": None, "test_ndcg@20": None, "epochs": last.get("epoch"),
                           "status": "stopped early (ASHA)"})
    if not args.ray_address:
        ray.shutdown()
    return trials


def _trial_row(params, result):
    return {**params, "valid_score": result["best_valid_score"],
            "test_recall@20": result["test_result"].get("recall@20"),
            "test_ndcg@20": result["test_result"].get("ndcg@20"),
            "epochs": len(result["epochs"]), "status": "finished"}


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
    with open(os.path.join(output_dir, "best.yaml"), "w") as f:
        f.write(f"# best of {len(trials)} trials on validation recall@20 = {best['valid_score']:.4f}\n")
        yaml.safe_dump(best_config, f, sort_keys=False)
    columns = list(space) + ["valid_score", "test_recall@20", "test_ndcg@20", "epochs", "status"]
    with open(os.path.join(output_dir, "trials.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(trials)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for trial in sorted(trials, key=lambda t: -(t["valid_score"] or -1)):
        lines.append("| " + " | ".join(_cell(trial.get(c)) for c in columns) + " |")
    with open(os.path.join(output_dir, "trials.md"), "w") as f:
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
    parser.add_argument("--algo", default="random", help="hyperopt: exhaustive | random | bayes")
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
    args.output_dir = args.output_dir or os.path.join("results", "hyper", f"{args.model}-{args.dataset}-{args.tool}")
    check_output_folder(args.output_dir, "--output_dir")
    config_dict = {"data_path": os.path.abspath(args.data_path)}  # absolute: Ray trials run elsewhere
    if args.epochs:
        config_dict["epochs"] = args.epochs
    fixed = {
        "model": args.model, "dataset": args.dataset, "config_dict": config_dict, "cmd_args": cmd_args,
        "config_files": [os.path.abspath(p) for p in args.config_files.split(",") if p.strip()]
        if args.config_files else None,
    }
    lines = {}
    space = read_space(args.params_file, lines)
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
