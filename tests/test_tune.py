"""benchmarks/tune.py: the same budget for every model, chosen on validation, and the space files."""

import csv
import json
import math
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from benchmarks import tune
from benchmarks.compare import parse_model_spec
from recbole_mmssl import tuning
from recbole_mmssl.checkpoint import load_checkpoint
from recbole_mmssl.config import Config
from recbole_mmssl.errors import DataError
from recbole_mmssl.hyper_space import candidate_values, check_values, read_space
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._lead_util import SMALL_RUN, write_tiny_dataset
from tests._lock_util import live_process, write_lock  # noqa: F401  (live_process: a fixture)

REPO = Path(__file__).resolve().parent.parent
SPACES = sorted((REPO / "properties" / "search").glob("*.test"))
COMPARED = {"BPR", "LightGCN", "SGL", "NCL", "VBPR", "MMGCN", "SLMRec", "LATTICE", "BM3", "FREEDOM"}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    write_tiny_dataset(tmp_path)
    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "BPR.test").write_text("learning_rate choice [0.05,0.0001]\nembedding_size choice [8,16]\n")
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(yaml.safe_dump({k: v for k, v in SMALL_RUN.items() if k not in ("epochs", "seed")}))
    monkeypatch.setattr(sys, "argv", ["tune.py"])
    monkeypatch.chdir(tmp_path)
    args = ["--dataset=tiny", f"--data_path={tmp_path}", "--models=BPR", "--trials=2", "--epochs=4",
            f"--spaces={spaces}", f"--out={tmp_path / 'out'}", f"--config_files={fixed}",
            f"--checkpoint_dir={tmp_path / 'trials'}"]
    return tmp_path, args, fixed


def test_a_two_trial_search_writes_the_config_of_the_best_trial_on_validation(tiny):
    tmp_path, args, fixed = tiny
    assert tune.main(args) == 0
    out = tmp_path / "out" / "tiny"
    with open(out / "BPR" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["status"] == "finished" for r in rows)
    assert not any("test" in column for column in rows[0])  # the selection never records test
    chosen = yaml.safe_load((out / "BPR.yaml").read_text())
    best = max(rows, key=lambda r: float(r["valid_score"]))
    assert chosen == {"learning_rate": float(best["learning_rate"]), "embedding_size": int(best["embedding_size"])}
    summary = json.loads((out / "summary.json").read_text())["BPR"]
    assert summary["trials"] == summary["budget"] == 2 and summary["values"] == chosen
    assert summary["spec"] == "BPR:" + ";".join(f"{k}={tuning.yaml_value(v)}" for k, v in chosen.items())
    assert summary["space_file"].endswith("spaces/BPR.test") and "valid Recall@20" in (out / "BPR.yaml").read_text()
    assert tune.compare_specs(out / "summary.json", ["BPR"]) == [summary["spec"]]
    values = ", ".join(f"{k}={tuning._cell(v)}" for k, v in chosen.items())
    assert f"| BPR | 2 / 2 | `{summary['space_file']}` | {values} | {summary['best_valid_score']:.4f} |" \
        in (out / "summary.md").read_text()  # the budget a reader of the comparison sees
    with pytest.raises(DataError, match="no tuned values for NCL"):
        tune.compare_specs(out / "summary.json", ["BPR", "NCL"])
    # the recorded score is the chosen configuration's own validation score, and the best of the trials
    result = run_recbole_mmssl(model="BPR", dataset="tiny", config_file_list=[str(fixed), str(out / "BPR.yaml")],
                               config_dict={"data_path": str(tmp_path), "seed": 2020, "epochs": 4}, saved=False)
    assert result["best_valid_score"] == pytest.approx(summary["best_valid_score"])
    assert summary["best_valid_score"] == max(float(r["valid_score"]) for r in rows)


def test_an_interrupted_search_continues_and_another_search_is_refused(tiny, monkeypatch):
    from recbole_mmssl import hyper

    tmp_path, args, _ = tiny
    real_local, real_trial = tuning.run_local, hyper.run_trial
    lines = tmp_path / "out" / "tiny" / "BPR" / "trials.jsonl"

    def first_trial_then_killed(drawn, fixed, store, log=print):
        real_local(drawn[:1], fixed, store, log)
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning, "run_local", first_trial_then_killed)
    assert tune.main(args) == 130 and len(lines.read_text().splitlines()) == 1
    monkeypatch.setattr(tuning, "run_local", real_local)
    ran = []
    monkeypatch.setattr(hyper, "run_trial", lambda params, fixed: ran.append(params) or real_trial(params, fixed))
    assert tune.main(args) == 0
    assert len(ran) == 1 and len(lines.read_text().splitlines()) == 2  # only the pending trial trained
    assert tune.main(args) == 0 and len(ran) == 1  # a finished search only rewrites its outputs
    other = [a if not a.startswith("--trials") else "--trials=3" for a in args]
    assert tune.main(other) == 2  # same folder, another budget: refused, nothing mixed


def test_a_trial_stopped_midway_continues_from_its_last_epoch_and_ends_as_if_never_stopped(tiny, monkeypatch):
    from recbole_mmssl import hyper

    tmp_path, args, _ = tiny
    args = [a if not a.startswith("--epochs") else "--epochs=6" for a in args]
    real_trial = hyper.run_trial
    other_folders = [a for a in args if not a.startswith(("--out=", "--checkpoint_dir="))]
    assert tune.main(other_folders + [f"--out={tmp_path / 'whole'}", f"--checkpoint_dir={tmp_path / 'whole_trials'}"]) == 0
    whole = [json.loads(line)["row"] for line in (tmp_path / "whole" / "tiny" / "BPR" / "trials.jsonl").open()]

    def stop_after_epoch_2(epoch_idx, valid_score):
        if epoch_idx == 2:
            raise KeyboardInterrupt

    stopped = []

    def first_trial_stopped(params, fixed):
        if not stopped:
            stopped.append(fixed["checkpoint_dir"])
            return real_trial(params, {**fixed, "callback": stop_after_epoch_2})
        return real_trial(params, fixed)

    monkeypatch.setattr(hyper, "run_trial", first_trial_stopped)
    assert tune.main(args) == 130
    kept = Path(stopped[0])
    (last,) = kept.glob("*.last.pth")
    assert kept.parent == tmp_path / "trials" / "tiny" / "BPR"
    assert [e["epoch"] for e in load_checkpoint(str(last))["history"]] == [0, 1, 2]  # what the trial goes on from
    trained = []
    monkeypatch.setattr(hyper, "run_trial", lambda params, fixed: real_trial(
        params, {**fixed, "callback": lambda epoch, score: trained.append(epoch)}))
    assert tune.main(args) == 0
    assert trained[:3] == [3, 4, 5]  # the stopped trial went on after its last epoch
    rows = [json.loads(line)["row"] for line in (tmp_path / "out" / "tiny" / "BPR" / "trials.jsonl").open()]
    for row, reference in zip(rows, whole):
        assert {k: row[k] for k in ("valid_score", "best_epoch", "epochs")} == \
            {k: reference[k] for k in ("valid_score", "best_epoch", "epochs")}
    assert not kept.exists()  # an ended trial leaves no checkpoints behind


def test_a_search_that_a_live_process_holds_is_skipped_with_its_files_untouched(tiny, live_process, capsys):
    tmp_path, args, _ = tiny
    lock = tmp_path / "out" / "tiny" / "BPR.lock"
    write_lock(lock, live_process.pid)
    held = lock.read_text()

    assert tune.main(args) == 1
    out = capsys.readouterr().out
    assert f"BPR: skipped: in use by process {live_process.pid}" in out and str(lock) in out
    assert lock.read_text() == held
    assert sorted(p.name for p in (tmp_path / "out" / "tiny").iterdir()) == ["BPR.lock"]  # nothing written
    assert not (tmp_path / "trials").exists()  # nothing trained


def test_a_trial_that_another_search_trains_is_skipped_and_run_once_it_is_free(tiny, live_process, capsys,
                                                                               monkeypatch):
    from recbole_mmssl import hyper

    tmp_path, args, _ = tiny
    real_trial, folders = hyper.run_trial, []
    monkeypatch.setattr(hyper, "run_trial", lambda params, fixed: folders.append(fixed["checkpoint_dir"])
                        or real_trial(params, fixed))
    elsewhere = [a for a in args if not a.startswith("--out=")] + [f"--out={tmp_path / 'elsewhere'}"]
    assert tune.main(elsewhere) == 0  # a search with another --out shares the trials' checkpoint folders
    first = Path(folders[0])
    first.mkdir()
    (first / "other.last.pth").write_bytes(b"the other search's checkpoint")
    write_lock(Path(str(first) + ".lock"), live_process.pid)
    capsys.readouterr()

    assert tune.main(args) == 1
    out = capsys.readouterr().out
    assert f"trial 1/2: skipped: in use by process {live_process.pid}" in out and "1 search(es) or trial(s)" in out
    assert folders[2:] == folders[1:2]  # only the free trial trained
    assert (first / "other.last.pth").read_bytes() == b"the other search's checkpoint"
    lines = tmp_path / "out" / "tiny" / "BPR" / "trials.jsonl"
    assert [json.loads(line)["index"] for line in lines.open()] == [1]
    assert json.loads((tmp_path / "out" / "tiny" / "summary.json").read_text())["BPR"]["trials"] == 1

    Path(str(first) + ".lock").unlink()
    (first / "other.last.pth").unlink()
    assert tune.main(args) == 0  # the other search has ended: the same command completes this one
    assert folders[3:] == folders[:1] and len(lines.read_text().splitlines()) == 2
    assert not list(tmp_path.rglob("*.lock"))  # every lock given back


def test_two_searches_ending_at_once_both_keep_their_summary_entry(tmp_path):
    from recbole_mmssl import run_lock

    summary = tmp_path / "summary.json"
    other_entry = {"BPR": {"values": {}, "spec": "BPR"}}  # what a search of BPR, ending now, writes
    search = {"folder": str(tmp_path / "LightGCN"), "model": "LightGCN", "dataset": "tiny", "space_file": "s.test",
              "seed": 2020, "stopping_step": 15, "epochs": 4, "n_trials": 1, "tool": "local"}
    (tmp_path / "LightGCN").mkdir()
    row = {"n_layers": 2, "valid_score": 0.1, "best_epoch": 3, "epochs": 4, "train_seconds": 1.0, "status": "finished"}
    held = run_lock.acquire(str(summary))  # the BPR search read the summary and is writing it
    writer = threading.Thread(target=tuning.write_outputs,
                              args=(search, ["n_layers"], [row], str(tmp_path / "LightGCN.yaml"), str(summary)))
    writer.start()
    time.sleep(0.5)
    summary.write_text(json.dumps(other_entry))
    run_lock.release(held)
    writer.join(timeout=30)
    assert sorted(json.loads(summary.read_text())) == ["BPR", "LightGCN"]


def test_draws_are_distinct_deterministic_and_cover_a_grid_of_the_budgets_size():
    space = {"a": ("choice", [1, 2]), "b": ("choice", [0.1, 0.2, 0.3, 0.4])}
    drawn = tuning.draw_trials(space, 8, seed=3)
    assert sorted((t["a"], t["b"]) for t in drawn) == sorted((a, b) for a in (1, 2) for b in (0.1, 0.2, 0.3, 0.4))
    assert drawn == tuning.draw_trials(space, 8, seed=3) and drawn != tuning.draw_trials(space, 8, seed=4)
    assert len({json.dumps(t, sort_keys=True) for t in tuning.draw_trials(space, 5, seed=0)}) == 5
    with pytest.raises(DataError, match="fewer than the 9 trials"):
        tuning.draw_trials(space, 9, seed=0)
    ranged = tuning.draw_trials({"lr": ("loguniform", [math.log(1e-4), math.log(1e-2)]), "a": ("choice", [1])},
                                8, seed=0)
    assert len({t["lr"] for t in ranged}) == 8 and all(1e-4 <= t["lr"] <= 1e-2 and t["a"] == 1 for t in ranged)
    assert all(type(v) in (int, float, str, bool) for t in drawn + ranged for v in t.values())


@pytest.mark.parametrize("value", [1e-05, 0.0001, 0.002, 0.0, 2, "ED", True])
def test_a_compare_spec_reads_back_the_chosen_values(value):
    name, overrides = parse_model_spec(tuning.compare_spec("SGL", {"key": value, "other": 3}))
    assert name == "SGL" and overrides == {"key": value, "other": 3} and type(overrides["key"]) is type(value)


def test_the_compared_models_all_have_a_space():
    assert {p.stem for p in SPACES} == COMPARED


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_each_space_parses_and_every_value_it_can_draw_is_valid_for_its_model(path, monkeypatch):
    """Every value alone (both ends of a range) and every drawn trial as a whole pass the model's own
    config checks; each space has at least the comparison's 8 distinct configurations."""
    monkeypatch.setattr(sys, "argv", ["pytest"])
    model, lines = path.stem, {}
    space = read_space(str(path), lines)
    fixed = {"model": model, "dataset": "tiktok", "config_dict": {"data_path": "/nonexistent"}, "cmd_args": [],
             "config_files": None}
    check_values(space, lines, str(path), fixed)
    for trial in tuning.draw_trials(space, 8, seed=0):
        config = Config(model=model, dataset="tiktok", config_dict={"data_path": "/nonexistent", **trial})
        for key, value in trial.items():
            assert config[key] == value and key in lines
    for name, (kind, value) in space.items():
        assert all(v is not None for v in candidate_values(kind, value)), name
