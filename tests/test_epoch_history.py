"""recbole_mmssl/epoch_history.py: the epochs a checkpoint carries, and those it lacks."""

import math

import pytest

from recbole_mmssl.checkpoint import last_checkpoint_path, load_checkpoint
from recbole_mmssl.epoch_history import EpochHistory
from recbole_mmssl.quick_start import best_epoch, run_recbole_mmssl
from tests._lead_util import tiny_config, write_tiny_dataset


def _entry(epoch, score):
    return {"epoch": epoch, "valid_score": score, "train_seconds": 1.0, "wall_seconds": 1.5}


def test_every_checkpoint_carries_the_epochs_before_it(tmp_path):
    write_tiny_dataset(tmp_path)
    result = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=3))
    last = load_checkpoint(last_checkpoint_path(result["saved_model_file"]))
    assert last["history"] == result["epochs"] and [e["epoch"] for e in last["history"]] == [0, 1, 2]
    assert all(e["train_seconds"] > 0 and e["wall_seconds"] >= e["train_seconds"] for e in last["history"])
    best = load_checkpoint(result["saved_model_file"])  # saved before its own epoch is recorded
    assert [e["epoch"] for e in best["history"]] == list(range(best["epoch"]))
    restored = EpochHistory.from_checkpoint(best).entries
    assert [e["epoch"] for e in restored] == list(range(best["epoch"] + 1))
    assert restored[-1]["valid_score"] == pytest.approx(best["best_valid_score"])


def test_a_checkpoint_without_history_gives_its_best_epoch_and_unknown_others():
    # written before the history was kept: 5 epochs, the best (0.31) two validations before the last
    state = {"epoch": 4, "cur_step": 2, "best_valid_score": 0.31, "config": {"eval_step": 1}}
    entries = EpochHistory.from_checkpoint(state).entries
    assert [e["epoch"] for e in entries] == [0, 1, 2, 3, 4]
    assert [e["valid_score"] for e in entries][2] == 0.31
    assert sum(math.isnan(e["valid_score"]) for e in entries) == 4
    assert best_epoch(entries) == 2  # unknown scores are passed over
    # validated every second epoch (1, 3, 5): the best one cur_step validations back is epoch 3
    entries = EpochHistory.from_checkpoint({**state, "epoch": 5, "cur_step": 1, "config": {"eval_step": 2}}).entries
    assert [(e["epoch"], e["valid_score"]) for e in entries if not math.isnan(e["valid_score"])] == [(3, 0.31)]
    assert [e["epoch"] for e in entries] == [1, 3, 5]


def test_a_partial_history_keeps_what_it_has_and_an_epoch_trained_again_replaces_its_entry():
    state = {"epoch": 2, "cur_step": 0, "best_valid_score": 0.4, "config": {},
             "history": [_entry(0, 0.2), _entry(1, 0.3), _entry(7, 0.9)]}  # 7: beyond the checkpoint, dropped
    history = EpochHistory.from_checkpoint(state)
    assert [(e["epoch"], e["valid_score"]) for e in history.entries] == [(0, 0.2), (1, 0.3), (2, 0.4)]
    assert history.wall_seconds() == 3.0
    history.record(1, 0.35)  # the run went back to epoch 1 (continued from an earlier checkpoint)
    assert [(e["epoch"], e["valid_score"]) for e in history.entries] == [(0, 0.2), (1, 0.35)]
