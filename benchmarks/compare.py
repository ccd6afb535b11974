"""Side-by-side comparison of MMSSL and RecBole baselines under one protocol, resumable.

    python benchmarks/compare.py --dataset=tiktok --data_path=DIR \
        --models=MMSSL,MMSSL:variant=released,LightGCN,SGL,NCL,BPR --seeds=2022,2023,2024
    python benchmarks/compare.py ... --jobs=4 --time_budget=3600   # 4 runs at once, stop all after an hour

Every (model, seed) run trains on the train split, selects its epoch on validation only (the config's
``valid_metric``: Recall@20 in the shared protocol, NDCG@10 in the sequential one),
and is evaluated once on test (RecBole full ranking). Each run is a subprocess writing one json file
under results/runs/<dataset>/ when it ends (ok, interrupted or failed), so an interrupted comparison
resumes where it stopped; the aggregate results/<dataset>.md|json|png are rewritten after every run.
A model spec is ``Name`` or ``Name:key=value;key=value`` (RecBole/MMSSL config overrides).

Every spec is checked before the first run (model known, keys valid for that model, values in range,
data present and loadable): a typo fails in seconds, not when its turn comes hours later.
``--jobs=N`` runs up to N runs at once, each its own process; on a CPU each gets an equal share of the
free cores (pinned threads), on a GPU they share the device. ``--time_budget=S`` stops every run still
training S seconds after the start, records each from its best validation epoch so far (status
``interrupted``) and leaves its ``.last.pth``, so the same command continues them next time. A run
that must start over (its ``.last.pth`` gone) never loses a longer interrupted record: that record
stands until the restart passes it (benchmarks/earlier_records.py). A run that another comparison is
training (its lock beside the checkpoint folder: recbole_mmssl/run_lock.py) is skipped, its files left
alone. The command exits 1 when a run failed or was skipped, 2 on bad input, 0 otherwise.
"""

import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import recbole_mmssl  # noqa: E402,F401  (thread wait settings before numpy/torch load: recbole_mmssl/threads.py)
from benchmarks.earlier_records import PENDING, earlier_record_further_along, settle  # noqa: E402
from benchmarks.report import (OWNER_KEY, cpu_name, earlier_report, metric_name, report_rows,  # noqa: E402
                               report_seeds, write_reports)
from benchmarks.stale_runs import set_aside  # noqa: E402
from recbole_mmssl.checkpoint import newest_last_checkpoint  # noqa: E402
from recbole_mmssl.cli import ArgumentParser, check_output_folder, run_cli  # noqa: E402
from recbole_mmssl.errors import UsageError, UserError  # noqa: E402
from recbole_mmssl.run_lock import RunBusy, RunLocks  # noqa: E402

#: Seconds a stopped run gets to save and exit after SIGINT before it is killed.
STOP_GRACE_S = 60
#: A run's exit code when a signal (Ctrl-C, SIGINT/SIGTERM from outside) stopped it after its trainer
#: kept the .last.pth; the codes a child killed by those signals before Python could answer exits with.
STOPPED_EXIT = 130
STOPPED_EXIT_CODES = {STOPPED_EXIT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM}
#: What a training call compares when --models / --seeds are not given.
DEFAULT_MODELS = "MMSSL,LightGCN,SGL,NCL,BPR"
DEFAULT_SEEDS = "2022,2023,2024"


def parse_model_spec(spec):
    """``MMSSL:variant=released;T=2`` -> ("MMSSL", {"variant": "released", "T": 2})."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, (part.strip() for part in rest.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--models={spec}", f"{item!r} is not a key=value override",
                             "write a model spec as Name or Name:key=value;key=value, e.g. MMSSL:cl_rate=0")
        if key.strip() in overrides:
            raise UsageError(f"--models={spec}", f"`{key.strip()}` is given twice", "give each key once")
        overrides[key.strip()] = _literal(value.strip())
    if not name.strip():
        raise UsageError(f"--models={spec}", "no model name", "write a model spec as Name or Name:key=value")
    return name.strip(), overrides


def _literal(text):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


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


def hardware(device):
    """Where a run trained, for the table: the GPU's name, or the CPU model and its core count."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU {cpu_name()} ({os.cpu_count()} cores)"


def run_one(spec):
    """Child process: one training run; writes its json atomically (status ok or failed)."""
    import torch

    from recbole_mmssl import threads

    threads.apply()
    out_path = spec["out"]
    record = {k: spec[k] for k in ("label", "model", "overrides", "seed", "dataset", "valid_metric")}
    record["code"] = code_version()
    record["threads"] = torch.get_num_threads()
    print(f"CODE {record['code']} THREADS {record['threads']}", flush=True)  # read back by finalize_interrupted
    started = time.time()
    try:
        from recbole_mmssl.checkpoint import plain_config
        from recbole_mmssl.quick_start import best_epoch, run_recbole_mmssl

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
        epochs = result["epochs"]  # the whole run's, a resumed run's earlier epochs included
        scores = [e["valid_score"] for e in epochs]
        train_seconds = [e["train_seconds"] for e in epochs if e["train_seconds"] is not None]
        record.update(
            status="ok",
            best_epoch=best_epoch(epochs),
            n_epochs=len(epochs),
            best_valid_result=result["best_valid_result"],
            test_result=result["test_result"],
            valid_curve=scores,
            seconds_per_epoch=statistics.median(train_seconds) if train_seconds else None,
            config=plain_config(result["config"]),
            checkpoint=result["saved_model_file"],
            breakdown=result["breakdown"],
            hardware=hardware(result["config"]["device"]),
        )
    except Exception as err:  # a failed run is reported, never dropped
        import traceback

        record.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    record["wall_seconds"] = time.time() - started
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _write_json(out_path, record)
    return record["status"] == "ok"


def _write_json(path, record):
    from recbole_mmssl.atomic_write import atomic_file

    with atomic_file(path, "w") as f:
        json.dump(record, f, indent=1)


def _config_dict(spec):
    config = {"data_path": spec["data_path"], "seed": spec["seed"], "show_progress": False, **spec["overrides"]}
    if spec.get("checkpoint_dir"):
        config["checkpoint_dir"] = spec["checkpoint_dir"]
    return config


def resumable(checkpoint_dir):
    """What an interrupted run left to continue from: its newest ``.last.pth`` in ``checkpoint_dir``
    (the run's own folder; it carries the run's earlier epochs) and how many epochs it has trained.

    Returns None when there is nothing to continue (no folder, no last checkpoint).
    """
    from recbole_mmssl.checkpoint import load_checkpoint

    last = newest_last_checkpoint(checkpoint_dir)
    if last is None:
        return None
    return {"checkpoint": last, "epoch": int(load_checkpoint(last)["epoch"]) + 1}


def set_aside_if_stale(label, seed, out, checkpoint_dir, current, runs_dir):
    """A run recorded, or a checkpoint saved, with other settings than ``current`` (a default changed
    since) is set aside (benchmarks/stale_runs.py) so that it is trained again; True if it was."""
    from benchmarks.stale_runs import changed_settings, describe
    from recbole_mmssl.checkpoint import load_checkpoint

    recorded = json.load(open(out)).get("config") if os.path.exists(out) else None
    last = newest_last_checkpoint(checkpoint_dir) if recorded is None else None
    if last is not None:
        try:
            recorded = load_checkpoint(last).get("config")
        except UserError:
            recorded = None  # unreadable: the run itself reports it (resumable) and fails alone
    changed = changed_settings(recorded, current)
    if not changed:
        return False
    moved = set_aside([out, out[: -len(".json")] + ".log"], runs_dir, checkpoint_dir)
    print(f"{label} seed {seed}: recorded with other settings than its spec gives now ({describe(changed)}); "
          f"set aside ({', '.join(moved)}), training again", flush=True)
    return True


def last_start(log_text):
    """The commit and thread count of the run's latest start in its log (a continued run appends a
    start line each time): what a finished run's record says, and what the latest epochs ran with."""
    starts = re.findall(r"^CODE (\S+) THREADS (\d+)", log_text, flags=re.M)
    return (starts[-1][0], int(starts[-1][1])) if starts else (None, None)


def finalize_interrupted(spec, log_path):
    """Record a run that was stopped before early stopping (killed, session limit, time budget) from
    its newest ``.last.pth``: the epochs it trained and the best-on-validation checkpoint it names.

    That checkpoint is evaluated on test exactly as a finished run's would be; the record says
    ``status: interrupted`` and after how many epochs it stopped, so the report can show it apart from
    finished runs. Returns False when the run finished no epoch. The log gives only the commit and
    threads of its latest start (``last_start``).
    """
    from recbole_mmssl import threads
    from recbole_mmssl.checkpoint import load_checkpoint, plain_config
    from recbole_mmssl.epoch_history import EpochHistory
    from recbole_mmssl.quick_start import build

    threads.apply()
    last = newest_last_checkpoint(spec.get("checkpoint_dir"))
    if last is None:
        return False
    last_state = load_checkpoint(last)
    epochs = EpochHistory.from_checkpoint(last_state).entries
    curve = [e["valid_score"] for e in epochs]
    seconds = [e["train_seconds"] for e in epochs if e["train_seconds"] is not None]
    checkpoint = os.path.join(spec["cwd"], last_state["best_model_file"])
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
    record = {k: spec[k] for k in ("label", "model", "overrides", "seed", "dataset", "valid_metric")}
    record["code"], record["threads"] = last_start(open(log_path).read() if os.path.exists(log_path) else "")
    record.update(
        status="interrupted", best_epoch=state["epoch"], n_epochs=len(curve),
        best_valid_result={k: float(v) for k, v in valid_result.items()}, test_result={k: float(v) for k, v in test_result.items()},
        valid_curve=curve, seconds_per_epoch=statistics.median(seconds) if seconds else None,
        config=plain_config(config), checkpoint=checkpoint, breakdown=groups, wall_seconds=None, peak_rss_mb=None,
        hardware=hardware(config["device"]),
        note=f"stopped after {len(curve)} epochs, before early stopping; epoch selected on validation among those",
    )
    _write_json(spec["out"], record)
    return True


def _child_env(spec):
    """The child's environment: ``--threads`` (or the per-job share) pins its thread pools."""
    env = dict(os.environ)
    if spec.get("threads"):
        env["RECBOLE_MMSSL_THREADS"] = str(spec["threads"])
    return env


class Runner:
    """Runs specs in child processes, up to ``jobs`` at once, and stops them all at ``deadline``."""

    def __init__(self, jobs, deadline=None):
        self.jobs = jobs
        self.deadline = deadline
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.procs = {}

    def _child(self, args, spec, log, append=False, stoppable=True):
        """Run ``compare.py args`` as a child writing to ``log``; returns its exit code, None if it was stopped."""
        cmd = [sys.executable, os.path.abspath(__file__)] + args
        with open(log, "a" if append else "w") as out, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=spec["cwd"], env=_child_env(spec),
        ) as proc:
            if stoppable:
                with self.lock:
                    if self.stopping.is_set():  # started just as the budget ran out
                        proc.send_signal(signal.SIGINT)
                    self.procs[id(proc)] = proc
            try:
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                    if line.startswith("PROGRESS"):
                        print(f"    {spec['label']} seed {spec['seed']}: {line[9:].strip()}", flush=True)
            finally:
                with self.lock:
                    self.procs.pop(id(proc), None)
        return proc.returncode

    def train(self, spec, log_path):
        return self._child(["--one", json.dumps(spec)], spec, log_path, append=bool(spec.get("resume")))

    def finalize(self, spec, log_path):
        """Record a stopped run from its best checkpoint, in a child of its own (True if recorded)."""
        code = self._child(["--finalize-one", json.dumps({**spec, "log": log_path})], spec,
                           log_path[: -len(".log")] + ".finalize.log", stoppable=False)
        return code == 0

    def stop_all(self):
        """Ask every running child to stop (SIGINT: the trainer keeps its .last.pth), kill the ones
        that have not stopped within STOP_GRACE_S."""
        with self.lock:
            self.stopping.set()
            running = list(self.procs.values())
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        give_up = time.time() + STOP_GRACE_S
        for proc in running:
            try:
                proc.wait(timeout=max(1, give_up - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()

    def due(self):
        """Whether the time budget is spent."""
        return self.deadline is not None and time.time() >= self.deadline

    def map(self, work, items):
        """``work(item)`` for every item, ``jobs`` at a time, none started after the deadline."""
        queue = list(items)
        workers = []

        def worker():
            while True:
                with self.lock:
                    if not queue or self.stopping.is_set() or self.due():
                        return
                    item = queue.pop(0)
                work(item)

        for _ in range(min(self.jobs, len(queue))):
            thread = threading.Thread(target=worker, daemon=True)
            thread.start()
            workers.append(thread)
        while any(t.is_alive() for t in workers):
            if not self.stopping.is_set() and self.due():
                self.stopping.set()
                print(f"time budget reached: stopping {len(self.procs)} running run(s) "
                      "(each is recorded from its best epoch so far and continues next time)", flush=True)
                threading.Thread(target=self.stop_all, daemon=True).start()
            for t in workers:
                t.join(timeout=0.2)
        return queue  # never started


def threads_per_job(jobs, pinned):
    """Each run's CPU threads: ``--threads`` if given; with several jobs an equal share of the CPUs
    free at start (at least 1), so that jobs x threads never exceeds them; else the run decides."""
    if pinned or jobs == 1:
        return pinned
    from recbole_mmssl import threads

    free = max(1, threads.available_cpus() - int(round(threads.busy_cpus())))
    return max(1, free // jobs)


def check_specs(labels, dataset, data_path, config_files):
    """Every spec's model, keys and values, and the data, before the first run (UserError if not).

    Each spec is checked as its run will be built (recbole_mmssl.run_spec); the data are loaded once
    per kind of model (multimodal or not), as a run would load them. Returns each label's settings as
    plain data (recbole_mmssl.checkpoint.plain_config), its ``valid_metric`` among them (Recall@20 in
    the shared protocol, NDCG@10 in the sequential one).
    """
    from recbole_mmssl.checkpoint import plain_config
    from recbole_mmssl.registry import get_model
    from recbole_mmssl.run_spec import check_run_spec

    loaded, settings = set(), {}
    for label in labels:
        model, overrides = parse_model_spec(label)
        try:
            kind = bool(getattr(get_model(model), "requires_modalities", False))
        except ValueError:
            kind = None  # unknown: check_run_spec names it with the closest model
        config = check_run_spec(model, dataset, data_path, {**overrides, "show_progress": False}, config_files,
                                where=f"--models={label}", load_data=kind is not None and kind not in loaded)
        loaded.add(kind)
        settings[label] = plain_config(config)
    return settings


def _int_list(text, option):
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"{option}={text}", "not a comma-separated list of integers",
                         f"pass e.g. {option}=2022,2023,2024") from None
    if not values:
        raise UsageError(f"{option}={text}", "empty", f"pass e.g. {option}=2022,2023,2024")
    return values


def build_parser():
    parser = ArgumentParser(prog="benchmarks/compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--models", default=None,
                        help=f"comma-separated labels MODEL[:key=value;...] (default {DEFAULT_MODELS}; with "
                             "--report-only, the rows the table already has)")
    parser.add_argument("--seeds", default=None,
                        help=f"comma-separated seeds (default {DEFAULT_SEEDS}; with --report-only, the table's)")
    parser.add_argument("--config_files", default=None, help="comma-separated yaml files applied to every run")
    parser.add_argument("--results", default=os.path.join(REPO, "results"))
    parser.add_argument("--threads", type=int, default=None,
                        help="pin each run's CPU threads (default: recbole_mmssl/threads.py decides at start; "
                             "with --jobs, an equal share of the free CPUs)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each its own process (default 1)")
    parser.add_argument("--time_budget", type=float, default=None,
                        help="seconds: stop every run still training after this long, record it from its best "
                             "epoch so far and keep its .last.pth so that the same command continues it")
    parser.add_argument("--breakdown", action="store_true",
                        help="also report test Recall/NDCG@20 by user activity and item popularity groups")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the reports from the recorded runs: the table as it stands, or with --models "
                             "those rows first and in that order (a training call keeps the table's row order and "
                             "adds its new rows after it)")
    parser.add_argument("--finalize-interrupted", action="store_true",
                        help="record runs that were stopped before early stopping (their log and best checkpoint "
                             "are still here) as 'interrupted', evaluating the saved best epoch on test")
    parser.add_argument("--checkpoint_dir", default=os.path.join(os.path.expanduser("~"), ".cache", "recbole-mmssl",
                                                                 "checkpoints"),
                        help="where each run keeps its checkpoints (<dir>/<dataset>/<run>/), outside the checkout "
                             "so that a fresh clone can continue an interrupted run from its .last.pth")
    return parser


def _labels(text):
    labels = [m.strip() for m in text.split(",") if m.strip()]
    if not labels:
        raise UsageError("--models", "no model given", "pass --models=NAME[,NAME...], e.g. --models=MMSSL,LightGCN")
    return labels


def _report_only(args, runs_dir):
    """Rewrite the reports. Without --models the table keeps every row it has, in place (a row whose runs
    were all set aside stays, showing none), so regenerating after adding runs changes nothing else."""
    earlier = earlier_report(os.path.join(args.results, args.dataset + ".json"))
    labels = _labels(args.models) if args.models is not None else report_rows(earlier)
    seeds = _int_list(args.seeds, "--seeds") if args.seeds is not None else report_seeds(earlier)
    os.makedirs(runs_dir, exist_ok=True)
    _print_written(write_reports(args.dataset, runs_dir, args.results, labels, seeds, labels_first=True), args)
    return 0


def _print_written(paths, args):
    if paths:
        print("wrote", ", ".join(paths))
        return
    owner = earlier_report(os.path.join(args.results, args.dataset + ".json")).get(OWNER_KEY)
    print(f"{os.path.join(args.results, args.dataset)}.md|json|png: written by {owner}, left as they are; "
          f"run `python {owner}` to report these runs there")


def _summary(record):
    if record["status"] in ("ok", "interrupted"):
        return f"test Recall@20={record['test_result'].get('recall@20', float('nan')):.4f}"
    return record.get("error", "")


def _main(argv):
    args = build_parser().parse_args(argv)
    for option, value, low in (("--jobs", args.jobs, 1), ("--threads", args.threads, 1)):
        if value is not None and value < low:
            raise UsageError(f"{option}={value}", f"must be at least {low}", f"pass {option}=N with N >= {low}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise UsageError(f"--time_budget={args.time_budget}", "must be a positive number of seconds",
                         "pass --time_budget=SECONDS, e.g. 3600")
    check_output_folder(args.results, "--results")
    runs_dir = os.path.join(args.results, "runs", args.dataset)
    if args.report_only:
        return _report_only(args, runs_dir)
    with RunLocks() as locks:
        return _compare(args, runs_dir, locks)


def _compare(args, runs_dir, locks):
    """Train (or with --finalize-interrupted record) every planned run whose lock ``locks`` gets; a run
    another process holds is skipped with its files untouched."""
    labels = _labels(DEFAULT_MODELS if args.models is None else args.models)
    seeds = _int_list(DEFAULT_SEEDS if args.seeds is None else args.seeds, "--seeds")
    data_path = os.path.abspath(args.data_path)
    config_files = [os.path.abspath(p) for p in args.config_files.split(",")] if args.config_files else None
    started = time.time()
    settings = check_specs(labels, args.dataset, data_path, config_files)
    os.makedirs(runs_dir, exist_ok=True)
    threads = threads_per_job(args.jobs, args.threads)
    if args.jobs > 1:
        print(f"{args.jobs} runs at once, {threads} CPU thread(s) each", flush=True)

    # seed-major: one seed of every model first, so a partial comparison already covers every model
    todo = [(label, seed) for seed in seeds for label in labels]
    specs, busy = [], []
    for label, seed in todo:
        out = os.path.join(runs_dir, run_id(label, seed) + ".json")
        checkpoint_dir = os.path.join(os.path.abspath(args.checkpoint_dir), args.dataset, run_id(label, seed))
        try:
            locks.take(checkpoint_dir)
        except RunBusy as err:
            busy.append((label, seed))
            print(f"{label} seed {seed}: skipped: {err}", flush=True)
            continue
        stale = set_aside_if_stale(label, seed, out, checkpoint_dir, settings[label], runs_dir)
        if not stale and os.path.exists(out) and json.load(open(out)).get("status") == "ok":  # keep finished runs
            print(f"{label} seed {seed}: done earlier, kept", flush=True)
            continue
        model, overrides = parse_model_spec(label)
        specs.append({
            "label": label, "model": model, "overrides": overrides, "seed": seed, "dataset": args.dataset,
            "data_path": data_path, "config_files": config_files, "out": out, "threads": threads,
            "valid_metric": metric_name(settings[label]["valid_metric"]), "cwd": os.getcwd(),
            "breakdown_k": 20 if args.breakdown else None, "checkpoint_dir": checkpoint_dir,
        })
    runner = Runner(args.jobs, started + args.time_budget if args.time_budget else None)
    report_lock = threading.Lock()
    outcome = {}

    def run(spec):
        label, seed, out = spec["label"], spec["seed"], spec["out"]
        log_path = out[: -len(".json")] + ".log"
        if args.finalize_interrupted:
            if not os.path.exists(log_path):
                return
            try:
                resume = resumable(spec["checkpoint_dir"])
            except UserError:  # a damaged .last.pth: the finalizing child reports it, as it always did
                resume = None
            earlier = earlier_record_further_along(out, resume)
            if earlier:  # the .last.pth is a restart's, behind the record: write beside it
                spec["out"] = out + PENDING
            if runner.finalize(spec, log_path):
                settled = settle(out, earlier, runs_dir)[1] if earlier else "recorded as interrupted"
                print(f"{label} seed {seed}: {settled}", flush=True)
            return
        try:
            spec["resume"] = resumable(spec["checkpoint_dir"])
        except UserError as err:  # a damaged or foreign .last.pth: this run fails, the others go on
            _write_json(out, {**{k: spec[k] for k in ("label", "model", "overrides", "seed", "dataset")},
                              "status": "failed", "error": f"cannot continue: {err}"})
            outcome[(label, seed)] = "failed"
            print(f"{label} seed {seed}: failed: cannot continue: {err}", flush=True)
            return
        print(f"{label} seed {seed}: "
              + (f"continuing after epoch {spec['resume']['epoch'] - 1} ..." if spec["resume"] else "training ..."),
              flush=True)
        run_started = time.time()
        earlier = earlier_record_further_along(out, spec["resume"])
        if earlier:  # a restart behind an interrupted record: write beside it, settle afterwards
            spec["out"] = out + PENDING
            if spec["resume"] is None:  # the log is about to start afresh: keep the earlier run's
                moved = set_aside([log_path], runs_dir)
                print(f"{label} seed {seed}: starts over behind its interrupted record ({earlier['n_epochs']} "
                      f"epochs, kept until passed; its log set aside: {', '.join(moved) or 'none'})", flush=True)
        elif os.path.exists(out):
            os.unlink(out)  # an earlier failed record, or the interrupted one this run continues: replaced
        written = spec["out"]
        code = runner.train(spec, log_path)
        if not os.path.exists(written) and (runner.stopping.is_set() or code in STOPPED_EXIT_CODES):
            if code in STOPPED_EXIT_CODES and not runner.stopping.is_set():
                print(f"{label} seed {seed}: stopped from outside (exit {code}); recording it from its best "
                      "epoch so far", flush=True)
            if not runner.finalize(spec, log_path):
                outcome[(label, seed)] = "stopped"
                print(f"{label} seed {seed}: stopped before its first epoch was saved (nothing recorded)", flush=True)
                return
        if not os.path.exists(written):  # the child died before writing (killed, out of memory)
            _write_json(written, {**{k: spec[k] for k in ("label", "model", "overrides", "seed", "dataset")},
                                  "status": "failed", "error": f"process exited with {code} before writing a result"})
        if earlier:
            record, settled = settle(out, earlier, runs_dir)
            print(f"{label} seed {seed}: {settled}", flush=True)
        else:
            record = json.load(open(out))
        outcome[(label, seed)] = record["status"]
        print(f"{label} seed {seed}: {record['status']} in {time.time() - run_started:.0f}s; {_summary(record)}",
              flush=True)
        with report_lock:
            write_reports(args.dataset, runs_dir, args.results, labels, seeds)

    not_started = runner.map(run, specs)
    for spec in not_started:
        print(f"{spec['label']} seed {spec['seed']}: not started (time budget)", flush=True)
    _print_written(write_reports(args.dataset, runs_dir, args.results, labels, seeds), args)
    counts = {s: list(outcome.values()).count(s) for s in ("ok", "interrupted", "failed", "stopped")}
    print(f"{counts['ok']} finished, {counts['interrupted']} interrupted, {counts['failed']} failed, "
          f"{len(not_started)} not started" + (f", {len(busy)} skipped (another process trains them)" if busy else "")
          + ("; run the same command to continue" if counts["interrupted"] or not_started or busy else ""),
          flush=True)
    return 1 if counts["failed"] or busy else 0


def main(argv=None):
    return run_cli(_main, argv)


def _stop_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _child_main(argv):
    """The child modes: ``--one SPEC`` trains one run, ``--finalize-one SPEC`` records a stopped one."""
    # A comparison started in the background of a script inherits SIGINT ignored, and so would its
    # runs: the time budget's stop is a SIGINT, which the trainer turns into a kept .last.pth.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode, spec = argv[0], json.loads(argv[1])
    if mode == "--one":
        # SIGTERM (kill, a scheduler) stops a run as Ctrl-C does: the trainer keeps its .last.pth
        signal.signal(signal.SIGTERM, _stop_as_interrupt)
        try:
            return 0 if run_one(spec) else 1
        except KeyboardInterrupt:  # the trainer has kept its .last.pth and said so in the log
            print("STOPPED by a signal before the run finished", flush=True)
            return STOPPED_EXIT
    return 0 if finalize_interrupted(spec, spec["log"]) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--one", "--finalize-one"):
        sys.exit(_child_main(sys.argv[1:]))
    sys.exit(main())
