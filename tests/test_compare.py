"""benchmarks/compare.py: one file per run, resumable, interrupted runs recorded apart."""

import json
import socket
import subprocess
import sys

import pytest

from benchmarks import compare
from tests._lead_util import SMALL_RUN, write_tiny_dataset
from tests._lock_util import live_process, write_lock  # noqa: F401  (live_process: a fixture)


@pytest.fixture
def setting(tmp_path, monkeypatch):
    import yaml

    write_tiny_dataset(tmp_path)
    config = tmp_path / "small.yaml"
    # SMALL_RUN logs warnings only: an interrupted run is recorded from its checkpoints, not from its log
    config.write_text(yaml.safe_dump({**SMALL_RUN, "checkpoint_dir": str(tmp_path / "saved")}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    results = tmp_path / "results"
    args = ["--dataset=tiny", f"--data_path={tmp_path}", "--models=BPR", "--seeds=5", "--threads=1",
            f"--config_files={config}", f"--results={results}", f"--checkpoint_dir={tmp_path / 'ckpt'}"]
    return args, results


def _change_config(args, **values):
    """Rewrite the setting's config file in place with ``values`` (the runs read it at their start)."""
    import yaml

    config_file = next(a for a in args if a.startswith("--config_files=")).partition("=")[2]
    yaml.safe_dump({**yaml.safe_load(open(config_file)), **values}, open(config_file, "w"))


def test_finished_runs_are_kept_and_reported(setting, capsys):
    args, results = setting
    compare.main(args)
    record = json.loads((results / "runs" / "tiny" / "BPR__seed5.json").read_text())
    assert record["status"] == "ok" and record["n_epochs"] == 2 and len(record["valid_curve"]) == 2
    report = (results / "tiny.md").read_text()
    assert f"| {record['test_result']['recall@20']:.4f} |" in report  # one seed: no sd
    assert record["code"] == compare.code_version()  # the commit the run trained with (None outside git)
    assert f"BPR {record['code'] or '-'}" in report
    assert record["threads"] == 1 and "BPR 1" in report  # --threads=1
    compare.main(args)
    assert "done earlier, kept" in capsys.readouterr().out


def test_a_run_recorded_with_other_settings_is_set_aside_and_trained_again(setting, capsys):
    args, results = setting
    compare.main(args)
    runs = results / "runs" / "tiny"
    before = (runs / "BPR__seed5.json").read_text()
    _change_config(args, learning_rate=0.0123)  # a default changed since
    compare.main(args)
    out = capsys.readouterr().out
    assert "recorded with other settings than its spec gives now (learning_rate" in out and "0.0123" in out
    assert (runs / "superseded" / "BPR__seed5.json").read_text() == before  # kept, not lost
    assert (runs / "superseded" / "BPR__seed5.log").exists()
    record = json.loads((runs / "BPR__seed5.json").read_text())
    assert record["status"] == "ok" and record["config"]["learning_rate"] == 0.0123
    compare.main(args)  # now current: kept
    assert "done earlier, kept" in capsys.readouterr().out


def test_only_settings_count_as_changes():
    from benchmarks.stale_runs import changed_settings

    recorded = {"learning_rate": 0.001, "topk": (10, 20), "gpu_id": "0", "data_path": "/a", "old_key": 1}
    current = {"learning_rate": 1e-3, "topk": [10, 20], "gpu_id": "", "data_path": "/b", "new_key": 2}
    assert changed_settings(recorded, current) == []
    assert changed_settings({**recorded, "reg_weight": 2.0}, {**current, "reg_weight": 0.1}) == [("reg_weight", 2.0, 0.1)]
    assert changed_settings(None, current) == []
    # NCL's num_clusters capped on small data (quick_start.adapt_to_dataset): recorded 94, spec default 1000
    assert changed_settings({**recorded, "num_clusters": 94}, {**current, "num_clusters": 1000}) == []


def test_an_interrupted_run_is_evaluated_from_its_best_checkpoint(setting):
    args, results = setting
    compare.main(args)
    run_file = results / "runs" / "tiny" / "BPR__seed5.json"
    finished = json.loads(run_file.read_text())
    run_file.unlink()  # as if the run had been killed after its last epoch
    compare.main(args + ["--finalize-interrupted"])
    record = json.loads(run_file.read_text())
    assert record["status"] == "interrupted" and record["best_epoch"] == finished["best_epoch"]
    assert (record["code"], record["threads"]) == (finished["code"], 1)  # read back from the run's log
    assert record["valid_curve"] == pytest.approx(finished["valid_curve"], abs=1e-4)
    assert record["test_result"] == pytest.approx(finished["test_result"], abs=1e-4)
    assert record["best_valid_result"] == pytest.approx(finished["best_valid_result"], abs=1e-4)
    report = (results / "tiny.md").read_text()
    assert "| BPR (interrupted) | 1/1 |" in report and "before early stopping" in report
    assert f"BPR (interrupted) {record['code'] or '-'}" in report and "BPR (interrupted) 1." in report


def test_long_override_labels_get_short_names_and_a_legend():
    from benchmarks.report import short_names

    long_a = "MMSSL:learning_rate=0.00108;D_lr=0.000126;G_rate=0.0001;n_layers=3"
    long_b = "MMSSL:D_lr=0.000126;G_rate=0.0001;cl_rate=0.01;T=16;n_layers=3"
    names = short_names(["MMSSL", "MMSSL:variant=released", long_a, "LightGCN", long_b,
                         long_a + " (interrupted)", "MMSSL:variant=released (interrupted)"])
    assert names == {"MMSSL": "MMSSL", "MMSSL:variant=released": "MMSSL:variant=released",
                     long_a: "MMSSL [a]", "LightGCN": "LightGCN", long_b: "MMSSL [b]",
                     long_a + " (interrupted)": "MMSSL [a] (interrupted)",
                     "MMSSL:variant=released (interrupted)": "MMSSL:variant=released (interrupted)"}


def test_the_plot_has_no_bar_for_a_setting_without_finished_runs(tmp_path, monkeypatch):
    import matplotlib.figure

    from benchmarks.report import aggregate, write_plot

    result = {"recall@20": 0.09, "ndcg@20": 0.04}
    runs = [{"label": "BPR", "seed": s, "status": "ok", "test_result": result, "best_valid_result": result,
             "best_epoch": 3, "seconds_per_epoch": 1.0, "peak_rss_mb": 100, "valid_curve": [0.05, 0.09]}
            for s in (1, 2)] + [{"label": "NCL", "seed": 1, "status": "failed", "error": "boom"}]
    labels = ["BPR", "NCL"]
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    write_plot("tiny", aggregate(runs, labels), runs, labels, tmp_path / "tiny.png")
    bars = saved[0].axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["BPR"]
    assert sorted(p.get_height() for p in bars.patches) == pytest.approx([0.04, 0.09])  # one bar per metric


def test_an_interrupted_run_continues_from_its_last_checkpoint(setting, tmp_path):
    """A run killed after epoch 0 of 2 continues from its .last.pth (kept outside the results) and
    ends like an uninterrupted run; the run file says it was resumed and from which epoch."""
    import yaml

    args, results = setting
    config = [a for a in args if a.startswith("--config_files=")][0].split("=", 1)[1]
    compare.main(args)
    run_file = results / "runs" / "tiny" / "BPR__seed5.json"
    uninterrupted = json.loads(run_file.read_text())
    run_file.unlink()

    one_epoch = tmp_path / "one_epoch.yaml"
    one_epoch.write_text(yaml.safe_dump({**yaml.safe_load(open(config)), "epochs": 1}))
    part = [a for a in args if not a.startswith(("--config_files=", "--checkpoint_dir="))]
    part.append(f"--checkpoint_dir={tmp_path / 'ckpt_part'}")
    compare.main(part + [f"--config_files={one_epoch}"])
    assert json.loads(run_file.read_text())["n_epochs"] == 1
    run_file.unlink()  # killed before its result was written: only the checkpoints and the log remain
    compare.main(part + [f"--config_files={config}"])
    record = json.loads(run_file.read_text())
    assert record["status"] == "ok" and record["resumed_at_epoch"] == 1
    assert record["resumed_from"].startswith(str(tmp_path / "ckpt_part" / "tiny" / "BPR__seed5"))
    assert record["n_epochs"] == 2 and record["best_epoch"] == uninterrupted["best_epoch"]
    assert record["valid_curve"] == pytest.approx(uninterrupted["valid_curve"], abs=1e-6)
    assert record["test_result"] == pytest.approx(uninterrupted["test_result"], abs=1e-6)


def _runs(results, dataset="tiny"):
    return {p.stem: json.loads(p.read_text()) for p in (results / "runs" / dataset).glob("*.json")}


def test_parallel_jobs_give_the_same_runs_as_one_at_a_time(setting, tmp_path):
    """--jobs=2 runs two seeds at once, each in its own process, with the numbers of a sequential run."""
    args, results = setting
    two_seeds = [a if not a.startswith("--seeds=") else "--seeds=5,6" for a in args]
    assert compare.main(two_seeds) == 0
    sequential = _runs(results)
    parallel_results = tmp_path / "parallel"
    parallel = [a for a in two_seeds if not a.startswith(("--results=", "--checkpoint_dir="))]
    parallel += [f"--results={parallel_results}", f"--checkpoint_dir={tmp_path / 'ckpt_parallel'}", "--jobs=2"]
    assert compare.main(parallel) == 0
    together = _runs(parallel_results)
    assert sorted(together) == ["BPR__seed5", "BPR__seed6"]
    for name, record in together.items():
        assert record["status"] == "ok" and record["threads"] == 1
        assert record["test_result"] == pytest.approx(sequential[name]["test_result"], abs=1e-6)
        assert record["valid_curve"] == pytest.approx(sequential[name]["valid_curve"], abs=1e-6)
        assert record["hardware"].startswith("CPU ")


def _six_long_epochs(setting, tmp_path):
    """The setting with six epochs and no early stop, in batches of 2: epochs long enough (about 120
    iterations) for a stop to land while the run trains. Returns (args, results, the run's log)."""
    import yaml

    args, results = setting
    config = [a for a in args if a.startswith("--config_files=")][0].split("=", 1)[1]
    six = tmp_path / "six_epochs.yaml"
    six.write_text(yaml.safe_dump({**yaml.safe_load(open(config)), "epochs": 6, "stopping_step": 100,
                                   "train_batch_size": 2}))
    args = [a if not a.startswith("--config_files=") else f"--config_files={six}" for a in args]
    return args, results, results / "runs" / "tiny" / "BPR__seed5.log"


def test_a_time_budget_stops_records_and_the_same_command_continues(setting, tmp_path, monkeypatch, capsys):
    """At the deadline every run is stopped, recorded from its best epoch so far (status interrupted)
    and keeps its .last.pth; the same command then continues it to the end an uninterrupted run reaches."""
    args, results, log = _six_long_epochs(setting, tmp_path)

    class AfterTwoEpochs(compare.Runner):
        """The budget runs out once the run has finished its second epoch (a deterministic deadline)."""

        def due(self):
            return log.exists() and "PROGRESS epoch 1 " in log.read_text()

    monkeypatch.setattr(compare, "Runner", AfterTwoEpochs)
    assert compare.main(args + ["--time_budget=3600"]) == 0
    out = capsys.readouterr().out
    assert "time budget reached" in out and "run the same command to continue" in out
    stopped = _runs(results)["BPR__seed5"]
    assert stopped["status"] == "interrupted" and 2 <= stopped["n_epochs"] < 6
    assert list((tmp_path / "ckpt" / "tiny" / "BPR__seed5").glob("*.last.pth"))
    assert "| BPR (interrupted) | 1/1 |" in (results / "tiny.md").read_text()

    monkeypatch.setattr(compare, "Runner", AfterTwoEpochs.__base__)
    assert compare.main(args) == 0
    continued = _runs(results)["BPR__seed5"]
    assert continued["status"] == "ok" and continued["resumed_at_epoch"] == stopped["n_epochs"]

    reference = tmp_path / "reference"
    plain = [a for a in args if not a.startswith(("--results=", "--checkpoint_dir="))]
    assert compare.main(plain + [f"--results={reference}", f"--checkpoint_dir={tmp_path / 'ckpt_ref'}"]) == 0
    uninterrupted = _runs(reference)["BPR__seed5"]
    assert continued["n_epochs"] == uninterrupted["n_epochs"] == 6
    assert continued["valid_curve"] == pytest.approx(uninterrupted["valid_curve"], abs=1e-6)
    assert continued["test_result"] == pytest.approx(uninterrupted["test_result"], abs=1e-6)


def test_a_spent_budget_starts_nothing(setting, capsys):
    args, results = setting
    assert compare.main(args + ["--time_budget=0.001"]) == 0
    assert "BPR seed 5: not started (time budget)" in capsys.readouterr().out
    assert not list((results / "runs" / "tiny").glob("*.json"))


@pytest.mark.parametrize("change, where", [
    ("--models=BPR,Foo", "Unknown model 'Foo'"),
    ("--models=BPR:learning_rat=0.01", "learning_rat"),
    ("--models=BPR:learning_rate=-1", "learning_rate"),
    ("--models=MMSSL:variant", "'variant' is not a key=value override"),
    ("--models=", "no model given"),
    ("--seeds=a,b", "not a comma-separated list of integers"),
    ("--threads=-1", "must be at least 1"),
    ("--jobs=0", "must be at least 1"),
    ("--data_path=/nonexistent/folder", "the data path is not a folder"),
])
def test_every_spec_is_checked_before_the_first_run(setting, capsys, change, where):
    """A bad spec anywhere in the list stops the comparison before any run, with error:/fix: lines."""
    args, results = setting
    option = change.split("=", 1)[0]
    bad = [a for a in args if not a.startswith(option + "=")] + [change]
    assert compare.main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and where in err and "\nfix: " in err and "Traceback" not in err
    assert not (results / "runs" / "tiny").exists() or not list((results / "runs" / "tiny").iterdir())


def test_a_failed_run_makes_the_comparison_exit_nonzero(setting, monkeypatch):
    args, results = setting
    monkeypatch.setattr(compare.Runner, "train", lambda self, spec, log: 1)  # the child died without a result
    assert compare.main(args) == 1
    record = _runs(results)["BPR__seed5"]
    assert record["status"] == "failed" and "exited with 1" in record["error"]


def test_reports_name_the_metric_each_run_selected_on():
    from benchmarks.report import metric_name, selection_metric

    assert metric_name("NDCG@10") == "NDCG@10" and metric_name("recall@20") == "Recall@20"
    sequential = [{"valid_metric": "NDCG@10"}, {"config": {"valid_metric": "ndcg@10"}}]
    assert selection_metric(sequential) == "NDCG@10"
    assert selection_metric([{"config": {}}]) == "Recall@20"  # runs recorded before the metric was stored


def test_a_damaged_last_checkpoint_fails_that_run_with_its_fix(setting, tmp_path, capsys):
    args, results = setting
    compare.main(args)
    run_file = results / "runs" / "tiny" / "BPR__seed5.json"
    run_file.unlink()  # as if killed: the checkpoints are what a continuation reads
    last = next((tmp_path / "ckpt" / "tiny" / "BPR__seed5").glob("*.last.pth"))
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    assert compare.main(args) == 1
    record = json.loads(run_file.read_text())
    assert record["status"] == "failed" and record["error"].startswith(f"cannot continue: {last}")
    assert "fix:" in record["error"] and "Traceback" not in capsys.readouterr().err


def test_the_table_says_how_each_row_was_tuned(tmp_path):
    from benchmarks.report import tuning_notes

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"BPR": {"spec": "BPR:learning_rate=0.0005", "finished": 8, "budget": 8,
                                           "space_file": "properties/search/BPR.test"}}))
    ablation = tmp_path / "tiktok_ablation.json"
    ablation.write_text(json.dumps({"seed": 2022, "rows": [{"labels": ["MMSSL", "MMSSL:graph_window=40"]},
                                                           {"labels": ["MMSSL:cl_rate=0"], "run": {
                                                               "status": "ok", "epochs_run": 23, "epochs_cap": 100}},
                                                           {"labels": ["MMSSL:G_rate=0"], "run": None},
                                                           {"labels": ["MMSSL:id_cat_rate=0"], "run": {
                                                               "status": "interrupted", "epochs_run": 5,
                                                               "epochs_cap": 100}},
                                                           {"labels": ["MMSSL:critic_slope=1.0"], "run": {
                                                               "status": "ok", "epochs_run": 100,
                                                               "epochs_cap": 100}}]}))
    labels = ["BPR:learning_rate=0.0005", "BPR:learning_rate=0.0005 (interrupted)", "BPR", "BPR:learning_rate=0.01",
              "MMSSL", "MMSSL:cl_rate=0", "MMSSL:cl_rate=0.5"]
    assert tuning_notes("tiktok", labels, summary, ablation) == {
        labels[0]: "8/8 trials, `properties/search/BPR.test`", labels[1]: "8/8 trials, `properties/search/BPR.test`",
        "BPR": "defaults", "BPR:learning_rate=0.01": "set by hand",
        "MMSSL": "defaults", "MMSSL:cl_rate=0": "ablation, 3 of 5 settings run, 1 to early "
                                              "stopping (seed 2022), "
                                              "`results/tiktok_ablation.md`",
        "MMSSL:cl_rate=0.5": "set by hand"}


def test_a_run_stopped_from_outside_is_recorded_and_continued(setting, tmp_path, monkeypatch, capsys):
    """A run's own process stopped by SIGTERM (kill, a scheduler), not by the time budget: the
    comparison records it from its best epoch (status interrupted, not failed) and the same command
    continues it from its .last.pth."""
    import signal
    import threading
    import time

    args, results, log = _six_long_epochs(setting, tmp_path)

    class KilledAfterTwoEpochs(compare.Runner):
        def train(self, spec, log_path):
            def kill_when_two_epochs_are_done():
                while not (log.exists() and "PROGRESS epoch 1 " in log.read_text()):
                    time.sleep(0.02)
                with self.lock:
                    for proc in self.procs.values():
                        proc.send_signal(signal.SIGTERM)

            threading.Thread(target=kill_when_two_epochs_are_done, daemon=True).start()
            return super().train(spec, log_path)

    monkeypatch.setattr(compare, "Runner", KilledAfterTwoEpochs)
    assert compare.main(args) == 0
    assert "stopped from outside (exit 130)" in capsys.readouterr().out
    stopped = _runs(results)["BPR__seed5"]
    assert stopped["status"] == "interrupted" and 2 <= stopped["n_epochs"] < 6
    assert "Traceback" not in log.read_text()

    monkeypatch.setattr(compare, "Runner", KilledAfterTwoEpochs.__base__)
    assert compare.main(args) == 0
    continued = _runs(results)["BPR__seed5"]
    assert continued["status"] == "ok" and continued["resumed_at_epoch"] == stopped["n_epochs"]
    assert continued["n_epochs"] == 6


def test_a_run_without_a_recorded_peak_rss_still_aggregates():
    """Runs recorded before peak RSS was kept (or finalised from a checkpoint) have it as null."""
    from benchmarks.report import aggregate

    run = {"label": "BPR", "status": "ok", "seed": 1, "test_result": {"recall@20": 0.1},
           "best_valid_result": {"recall@20": 0.2}, "best_epoch": 3, "seconds_per_epoch": 1.0}
    table = aggregate([{**run, "peak_rss_mb": None}, {**run, "seed": 2, "peak_rss_mb": 700.0}], ["BPR"])
    assert table["BPR"]["peak_rss_mb"] == 700.0 and table["BPR"]["seeds_ok"] == [1, 2]


def test_on_a_tie_the_best_epoch_is_the_one_recbole_kept(setting):
    """RecBole counts an equal validation score as an improvement and saves that (later) epoch."""
    from recbole_mmssl.checkpoint import load_checkpoint
    from recbole_mmssl.quick_start import best_epoch

    tied = [{"epoch": 0, "valid_score": 0.1}, {"epoch": 1, "valid_score": 0.2}, {"epoch": 2, "valid_score": 0.2},
            {"epoch": 3, "valid_score": 0.15}]
    assert best_epoch(tied) == 2 and best_epoch([]) is None
    args, results = setting
    _change_config(args, learning_rate=1e-12)  # every epoch scores the same (4 digits)
    compare.main(args)
    record = json.loads((results / "runs" / "tiny" / "BPR__seed5.json").read_text())
    assert record["valid_curve"][0] == record["valid_curve"][1]
    assert record["best_epoch"] == 1 == load_checkpoint(record["checkpoint"])["epoch"]


def _write_finished_run(runs_dir, label, seed):
    """A finished run's record as compare.py writes it (only the fields the reports read)."""
    result = {"recall@20": 0.09, "ndcg@20": 0.04}
    record = {"label": label, "seed": seed, "status": "ok", "test_result": result, "best_valid_result": result,
              "best_epoch": 1, "seconds_per_epoch": 1.0, "peak_rss_mb": 1, "valid_curve": [0.09]}
    (runs_dir / f"{label}__seed{seed}.json").write_text(json.dumps(record))


def test_report_rows_keep_their_order_when_a_call_adds_runs(tmp_path):
    """A shared results folder filled by several calls: a call for one model must not reorder the table;
    a report asked for by name (--report-only) puts its models first, in the order given."""
    from benchmarks.report import write_reports

    runs_dir = tmp_path / "runs" / "tiny"
    runs_dir.mkdir(parents=True)

    def rows():
        return list(json.loads((tmp_path / "tiny.json").read_text())["summary"])

    for label in ("NCL", "BPR"):
        _write_finished_run(runs_dir, label, 1)
    write_reports("tiny", str(runs_dir), str(tmp_path), ["NCL", "BPR"], [1])
    assert rows() == ["NCL", "BPR"]
    _write_finished_run(runs_dir, "LightGCN", 1)
    write_reports("tiny", str(runs_dir), str(tmp_path), ["BPR", "LightGCN"], [1])  # a later call, other order
    assert rows() == ["NCL", "BPR", "LightGCN"]
    _write_finished_run(runs_dir, "FREEDOM", 1)  # a run of another call, not named here: after the named rows, sorted
    write_reports("tiny", str(runs_dir), str(tmp_path), ["BPR"], [1])
    assert rows() == ["NCL", "BPR", "LightGCN", "FREEDOM"]
    write_reports("tiny", str(runs_dir), str(tmp_path), ["LightGCN", "BPR"], [1], labels_first=True)
    assert rows() == ["LightGCN", "BPR", "NCL", "FREEDOM"]
    table = (tmp_path / "tiny.md").read_text()
    assert table.index("| LightGCN |") < table.index("| NCL |")


def test_report_only_without_models_rewrites_the_table_as_it_stands(tmp_path):
    """Regenerating reports after adding runs must not reorder the table, drop a row whose runs were all
    set aside, or forget a seed; naming --models still puts those rows first."""
    from benchmarks.report import write_reports

    runs_dir = tmp_path / "runs" / "tiny"
    runs_dir.mkdir(parents=True)
    for label in ("NCL", "BPR", "VBPR"):
        _write_finished_run(runs_dir, label, 7)
    write_reports("tiny", str(runs_dir), str(tmp_path), ["VBPR", "NCL", "BPR"], [7, 8])
    (runs_dir / "NCL__seed7.json").unlink()  # set aside: the row stays, with no seed done

    def report_only(*extra):
        compare.main(["--dataset=tiny", "--data_path", str(tmp_path), "--results", str(tmp_path), "--report-only",
                      *extra])
        report = json.loads((tmp_path / "tiny.json").read_text())
        rows = report["summary"]
        return list(rows), report["seeds"], rows["NCL"]["seeds_ok"] if "NCL" in rows else None

    assert report_only() == (["VBPR", "NCL", "BPR"], [7, 8], [])
    assert "| NCL | 0/2 |" in (tmp_path / "tiny.md").read_text()
    assert report_only("--models=BPR", "--seeds=7") == (["BPR", "VBPR"], [7], None)


def test_a_restart_cut_early_keeps_the_longer_interrupted_record(setting, tmp_path, monkeypatch, capsys):
    """A run cut after six of twelve epochs loses its checkpoints (another machine) and starts over;
    cut again after its first epoch or so, its record stays the longer one (the earlier log set aside,
    not lost). The same command then finishes the restart, whose record replaces the earlier one (set
    aside too). Cuts land an epoch or two late on a fast machine: the margins allow for that."""
    import shutil

    args, results, log = _six_long_epochs(setting, tmp_path)
    _change_config(args, epochs=12)
    runs_dir = results / "runs" / "tiny"
    plain = compare.Runner

    class CutAfterSixEpochs(plain):
        def due(self):
            return log.exists() and "PROGRESS epoch 5 " in log.read_text()

    monkeypatch.setattr(compare, "Runner", CutAfterSixEpochs)
    assert compare.main(args + ["--time_budget=3600"]) == 0
    earlier = _runs(results)["BPR__seed5"]
    assert earlier["status"] == "interrupted" and 6 <= earlier["n_epochs"] < 12
    shutil.rmtree(tmp_path / "ckpt" / "tiny" / "BPR__seed5")  # the checkpoints are lost

    class CutAfterFirstCheckpoint(plain):  # the restart's first epoch saved (the old log still says more)
        def due(self):
            return any((tmp_path / "ckpt" / "tiny" / "BPR__seed5").glob("*.last.pth"))

    monkeypatch.setattr(compare, "Runner", CutAfterFirstCheckpoint)
    capsys.readouterr()
    assert compare.main(args + ["--time_budget=3600"]) == 0
    out = capsys.readouterr().out
    assert "starts over behind its interrupted record" in out and "kept the earlier interrupted record" in out
    assert _runs(results)["BPR__seed5"] == earlier
    assert "PROGRESS epoch 2 " in (runs_dir / "superseded" / "BPR__seed5.log").read_text()
    assert not list(runs_dir.glob("*.pending"))
    assert list((tmp_path / "ckpt" / "tiny" / "BPR__seed5").glob("*.last.pth"))  # the restart's progress

    monkeypatch.setattr(compare, "Runner", plain)
    assert compare.main(args + ["--finalize-interrupted"]) == 0  # recording the restart's .last.pth by hand
    assert "kept the earlier interrupted record" in capsys.readouterr().out
    assert _runs(results)["BPR__seed5"] == earlier

    assert compare.main(args) == 0
    assert "replaces the earlier interrupted record" in capsys.readouterr().out
    finished = _runs(results)["BPR__seed5"]
    assert finished["status"] == "ok" and finished["n_epochs"] == 12
    assert 1 <= finished["resumed_at_epoch"] < earlier["n_epochs"]
    assert json.loads((runs_dir / "superseded" / "BPR__seed5.json").read_text()) == earlier


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_that_a_live_process_holds_is_skipped_with_its_files_untouched(setting, tmp_path, live_process,
                                                                             capsys):
    args, results = setting
    folder = tmp_path / "ckpt" / "tiny" / "BPR__seed5"
    folder.mkdir(parents=True)
    (folder / "other.last.pth").write_bytes(b"the other process's checkpoint")
    lock = tmp_path / "ckpt" / "tiny" / "BPR__seed5.lock"
    write_lock(lock, live_process.pid)
    held = lock.read_text()

    assert compare.main(args) == 1
    out = capsys.readouterr().out
    assert f"BPR seed 5: skipped: in use by process {live_process.pid} on {socket.gethostname()}" in out
    assert str(lock) in out and "1 skipped (another process trains them)" in out
    assert lock.read_text() == held
    assert [p.name for p in folder.iterdir()] == ["other.last.pth"]
    assert (folder / "other.last.pth").read_bytes() == b"the other process's checkpoint"
    assert not list((results / "runs" / "tiny").glob("BPR*"))


def test_a_lock_left_by_a_dead_process_is_taken_over_and_given_back(setting, tmp_path):
    args, results = setting
    lock = tmp_path / "ckpt" / "tiny" / "BPR__seed5.lock"
    write_lock(lock, _dead_pid())

    assert compare.main(args) == 0
    assert json.loads((results / "runs" / "tiny" / "BPR__seed5.json").read_text())["status"] == "ok"
    assert not lock.exists()
    assert not list(lock.parent.glob("*.tmp"))


def test_an_interrupted_record_names_the_commit_and_threads_of_its_latest_start():
    """A run continued with other threads (or code) is recorded as its latest part ran, as a finished
    run's record is; the median seconds per epoch come mostly from the later, longer part."""
    log = "CODE abc1234 THREADS 1\nepoch 0 ...\nCODE def5678+dirty THREADS 2\nepoch 8 ...\n"
    assert compare.last_start(log) == ("def5678+dirty", 2)
    assert compare.last_start("no start line") == (None, None)
