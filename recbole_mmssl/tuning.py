"""One tuning protocol for every model of the comparison (the code behind benchmarks/tune.py).

Every model gets the same budget: ``n`` distinct configurations drawn at random from its search
space (a RecBole hyper file, ``properties/search/<Model>.test``), each trained with the same fixed
settings (one seed, early stopping on validation Recall@20 at the protocol's patience, an epoch cap)
and judged on validation Recall@20 only; test is never read. The best trial's values are written as a
small yaml the comparison passes with ``--config_files`` (or as a compare spec), with the budget, the
space file and the selection score in its header and in the dataset's ``summary.json``.

Why distinct random draws and not hyperopt's TPE: with a budget of 8-10 trials TPE is random search
anyway (hyperopt draws its first 20 suggestions at random), and hyperopt's random draws repeat
configurations of small grids (BM3's and FREEDOM's grids have 8 points: 8 draws with replacement
miss 3 of them on average). Drawing without replacement gives every model exactly ``n`` different
trials, and the whole grid when it has ``n`` points. With ``tool="ray"`` the same drawn trials run as
Ray Tune trials (a local instance or ``ray_address``), optionally with ASHA.

Finished trials are appended to ``trials.jsonl`` as they end, so an interrupted search continues
where it stopped (the draws depend only on the space, ``n`` and the search seed).
"""

import csv
import hashlib
import json
import math
import os
import shutil
import time

import numpy as np
import yaml

from recbole_mmssl.atomic_write import atomic_file
from recbole_mmssl.errors import DataError, UserError
from recbole_mmssl.run_lock import RunBusy, RunLocks, held_briefly

SELECTION = "valid Recall@20"


# ----------------------------------------------------------------------------- drawing trials

def space_size(space):
    """Number of configurations of an all-choice space; None when a dimension is continuous."""
    if any(kind != "choice" for kind, _ in space.values()):
        return None
    return math.prod(len(values) for _, values in space.values())


def _plain(value):
    """Python scalars only (yaml- and json-safe): numpy numbers become int/float."""
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, (np.integer, int)):
        return int(value)
    return float(value)


def _draw(kind, value, rng):
    if kind == "choice":
        return _plain(value[int(rng.integers(len(value)))])
    if kind == "loguniform":
        return float(math.exp(rng.uniform(value[0], value[1])))
    if kind == "uniform":
        return float(rng.uniform(value[0], value[1]))
    low, high, q = value  # quniform
    return float(round(rng.uniform(low, high) / q) * q)


def draw_trials(space, n, seed):
    """``n`` distinct parameter dicts from ``space``: without replacement from an all-choice grid,
    else independent draws per dimension (repeats redrawn). Deterministic for (space, n, seed)."""
    rng = np.random.default_rng(seed)
    names = list(space)
    size = space_size(space)
    if size is not None:
        if size < n:
            raise DataError("search space", f"has {size} configuration(s), fewer than the {n} trials of the budget",
                            "widen the space (more values, or a range) so that every model gets the same budget")
        trials = []
        for index in rng.choice(size, size=n, replace=False).tolist():
            params = {}
            for name in names:  # mixed-radix digits of the index, first name fastest
                values = space[name][1]
                params[name] = _plain(values[index % len(values)])
                index //= len(values)
            trials.append(params)
        return trials
    trials, seen = [], set()
    for _ in range(1000 * n):
        params = {name: _draw(*space[name], rng) for name in names}
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            trials.append(params)
            if len(trials) == n:
                return trials
    raise DataError("search space", f"gave fewer than {n} distinct configurations in {1000 * n} draws",
                    "widen the space")


# ----------------------------------------------------------------------------- one trial

def trial_row(params, result):
    """A finished trial's row: its values and validation results only (test is never recorded)."""
    from recbole_mmssl.quick_start import best_epoch

    epochs = result["epochs"]
    return {**params, "valid_score": float(result["best_valid_score"]), "best_epoch": best_epoch(epochs),
            "epochs": len(epochs), "train_seconds": round(float(result["train_seconds"]), 1), "status": "finished"}


#: How a trial fails while training (a diverging learning rate: RecBole's "Training loss is nan"); such a
#: trial is a failed row and the search goes on. User errors (bad data or settings) stop the search.
TRIAL_FAILURES = (ValueError, RuntimeError, FloatingPointError)


def failure_status(err):
    """A failed trial's ``status`` cell: the error's type and first line."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"failed: {type(err).__name__}: {first}"


def failed_row(params, err):
    return {**params, "valid_score": None, "best_epoch": None, "epochs": None, "train_seconds": None,
            "status": failure_status(err)}


# ----------------------------------------------------------------------------- the search's folder

class TrialStore:
    """``<folder>/search.json`` (what was searched) and ``trials.jsonl`` (one line per ended trial).

    A folder holding another search (other model, dataset, space, budget, seed or fixed settings)
    is refused rather than mixed.
    """

    def __init__(self, folder, identity):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "search.json")
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            if saved != identity:
                differs = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
                raise DataError(folder, f"holds another search (differs in: {', '.join(differs)})",
                                "pass another --output_dir, or remove that folder to start over")
        else:
            _atomic_json(path, identity)
        self.rows = {}
        lines_path = os.path.join(folder, "trials.jsonl")
        if os.path.exists(lines_path):
            with open(lines_path) as f:
                for line in f:
                    if line.strip():
                        entry = json.loads(line)
                        self.rows[entry["index"]] = entry

    def done(self, index, params):
        entry = self.rows.get(index)
        return entry is not None and entry["params"] == params

    def add(self, index, params, row):
        entry = {"index": index, "params": params, "row": row}
        self.rows[index] = entry
        with open(os.path.join(self.folder, "trials.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")

    def table(self, drawn):
        return [self.rows[i]["row"] for i in range(len(drawn)) if self.done(i, drawn[i])]


def _atomic_json(path, value):
    with atomic_file(path, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")


# ----------------------------------------------------------------------------- running

def trial_folder(root, index, params, fixed):
    """A trial's own checkpoint folder under ``root``: named by its index and a digest of everything
    that defines its training, so that only the same trial of the same search continues from it."""
    identity = {key: fixed.get(key) for key in ("model", "dataset", "config_dict", "config_files", "cmd_args")}
    digest = hashlib.sha256(json.dumps([identity, params], sort_keys=True, default=str).encode()).hexdigest()[:12]
    return os.path.join(root, f"trial{index}-{digest}")


def run_local(drawn, fixed, store, log=print):
    """Each pending trial in this process, one after the other; every end is stored at once.

    With ``fixed["checkpoint_root"]`` each trial keeps its checkpoints in its own folder there: a trial
    stopped by Ctrl-C or SIGTERM (a deadline) continues from its last epoch when the search is run again.
    A trial that a live process is training (another search sharing that root: the trial folder's lock)
    is skipped with its files untouched. Returns the number of trials skipped so.
    """
    from recbole_mmssl.hyper import run_trial

    root = fixed.get("checkpoint_root")
    skipped = 0
    for index, params in enumerate(drawn):
        if store.done(index, params):
            continue
        trial_fixed = fixed if root is None else {**fixed, "checkpoint_dir": trial_folder(root, index, params, fixed)}
        with RunLocks() as locks:
            if root is not None:
                try:
                    locks.take(trial_fixed["checkpoint_dir"])
                except RunBusy as err:
                    log(f"trial {index + 1}/{len(drawn)}: skipped: {err}")
                    skipped += 1
                    continue
            log(f"trial {index + 1}/{len(drawn)}: {params}")
            started = time.time()
            try:
                row = trial_row(params, run_trial(params, trial_fixed))
            except UserError:  # bad data or settings: every trial would fail alike
                raise
            except KeyboardInterrupt:
                if root is not None:
                    log(f"trial {index + 1}/{len(drawn)}: stopped; its last epoch is kept in "
                        f"{trial_fixed['checkpoint_dir']}: the same command continues it")
                raise
            except TRIAL_FAILURES as err:
                row = failed_row(params, err)
            store.add(index, params, row)
        log(f"trial {index + 1}/{len(drawn)}: {row['status']}, valid {row['valid_score']}, "
            f"{time.time() - started:.0f}s")
    return skipped


def run_ray(drawn, fixed, store, args):
    """The pending trials as Ray Tune trials (``args``: ray_address, ray_cpus, cpus_per_trial, asha,
    grace_period, max_epochs_asha, output_dir); rows are stored when Ray returns."""
    from recbole_mmssl.hyper import search_ray

    pending = [(i, p) for i, p in enumerate(drawn) if not store.done(i, p)]
    if not pending:
        return
    rows = search_ray({}, fixed, args, drawn=[p for _, p in pending], row=trial_row)
    for index, params in pending:
        match = [r for r in rows if {k: r.get(k) for k in params} == params]
        row = match[0] if match else failed_row(params, RuntimeError("Ray returned no result"))
        row.setdefault("best_epoch", None)
        row.setdefault("train_seconds", None)
        store.add(index, params, row)


# ----------------------------------------------------------------------------- outputs

def best_trial(rows):
    """The trial with the highest validation score (the first drawn among equals), or None."""
    scored = [r for r in rows if r.get("valid_score") is not None]
    return max(scored, key=lambda r: r["valid_score"]) if scored else None


def yaml_value(value):
    """A value as the config file and a compare spec write it (YAML 1.1 reads 1e-05 as text: 1.0e-05)."""
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].strip()
    return text


def compare_spec(model, values):
    """``Model:key=value;key=value`` for benchmarks/compare.py's --models."""
    return model + (":" + ";".join(f"{k}={yaml_value(v)}" for k, v in values.items()) if values else "")


def write_outputs(search, space_names, rows, config_path, summary_path, display=os.path.abspath):
    """trials.md / trials.csv in the search folder, the tuned config and the dataset's summary entry
    (``display`` writes the paths the summary records, e.g. relative to the repository)."""
    folder = search["folder"]
    columns = list(space_names) + ["valid_score", "best_epoch", "epochs", "train_seconds", "status"]
    with atomic_file(os.path.join(folder, "trials.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    best = best_trial(rows)
    if best is None:
        raise DataError(folder, f"none of the {len(rows)} trial(s) produced a validation score, so no config "
                                "was written", "read the trials' errors in trials.md")
    values = {name: best[name] for name in space_names}
    budget = (f"{len(rows)} trials drawn from {search['space_file']}, seed {search['seed']}, early stopping at "
              f"patience {search['stopping_step']}, at most {search['epochs']} epochs")
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(rows, key=lambda r: -(r["valid_score"] if r["valid_score"] is not None else -1)):
        table.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    with atomic_file(os.path.join(folder, "trials.md"), "w") as f:
        f.write(f"# {search['model']} on {search['dataset']}: {budget}, selected on {SELECTION}\n\n"
                f"Best: {values} (valid Recall@20 {best['valid_score']:.4f}, epoch {best['best_epoch']}). "
                "Test results are not recorded: the selection never sees them.\n\n" + "\n".join(table) + "\n")
    os.makedirs(os.path.dirname(os.path.abspath(config_path)), exist_ok=True)
    with atomic_file(config_path, "w") as f:
        f.write(f"# {search['model']} on {search['dataset']}: the best of {budget}, selected on {SELECTION} "
                f"({best['valid_score']:.4f}).\n"
                f"# Trials: {os.path.relpath(folder, os.path.dirname(os.path.abspath(config_path)))}/trials.md\n")
        f.write("\n".join(f"{k}: {yaml_value(v)}" for k, v in values.items()) + "\n")
    entry = {
        "space_file": search["space_file"], "trials": len(rows),
        "finished": sum(r["status"] == "finished" for r in rows), "budget": search["n_trials"],
        "tool": search["tool"], "seed": search["seed"], "stopping_step": search["stopping_step"],
        "epochs_cap": search["epochs"], "selection": SELECTION, "best_valid_score": best["valid_score"],
        "best_epoch": best["best_epoch"], "values": values, "config_file": display(config_path),
        "trials_table": display(os.path.join(folder, "trials.md")), "spec": compare_spec(search["model"], values),
    }
    with held_briefly(summary_path):  # searches of other models may end at the same moment
        summary = {}
        if os.path.exists(summary_path):
            with open(summary_path) as f:
                summary = json.load(f)
        summary[search["model"]] = entry
        _atomic_json(summary_path, summary)
        write_summary_markdown(search["dataset"], summary, os.path.splitext(summary_path)[0] + ".md")
    return entry


def write_summary_markdown(dataset, summary, path):
    """The dataset's tuning in one table (summary.md beside summary.json): the budget of every model,
    so a reader of a comparison sees how each row was tuned."""
    lines = [f"# Tuning on {dataset}: one budget for every model",
             "",
             "Produced by `benchmarks/tune.py` (do not edit by hand). Each trial trains to early stopping on "
             f"{SELECTION}; the best trial's values are the model's tuned config. Test results are never recorded.",
             "",
             "| model | trials (finished / budget) | space | chosen values | valid Recall@20 | best epoch "
             "| patience / cap | seed | tool |",
             "|---|---|---|---|---:|---:|---|---:|---|"]
    for model in sorted(summary):
        e = summary[model]
        values = ", ".join(f"{k}={_cell(v)}" for k, v in e["values"].items())
        lines.append(f"| {model} | {e['finished']} / {e['budget']} | `{e['space_file']}` | {values} | "
                     f"{e['best_valid_score']:.4f} | {e['best_epoch']} | {e['stopping_step']} / {e['epochs_cap']} | "
                     f"{e['seed']} | {e['tool']} |")
    with atomic_file(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def clear_ray_folder(folder):
    """Ray's own per-trial folders are bulky and only needed while it runs."""
    shutil.rmtree(os.path.join(folder, "ray"), ignore_errors=True)
