"""benchmarks/compare.py: one file per run, resumable, interrupted runs recorded apart."""

import json
import sys

import pytest

from benchmarks import compare
from tests._lead_util import SMALL_RUN, write_tiny_dataset


@pytest.fixture
def setting(tmp_path, monkeypatch):
    import yaml

    write_tiny_dataset(tmp_path)
    config = tmp_path / "small.yaml"
    # RecBole INFO lines (the default level) carry the saved checkpoints that --finalize-interrupted reads
    config.write_text(yaml.safe_dump({**SMALL_RUN, "state": "INFO", "checkpoint_dir": str(tmp_path / "saved")}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    results = tmp_path / "results"
    args = ["--dataset=tiny", f"--data_path={tmp_path}", "--models=BPR", "--seeds=5", "--threads=1",
            f"--config_files={config}", f"--results={results}", f"--checkpoint_dir={tmp_path / 'ckpt'}"]
    return args, results


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
