"""The per-epoch learning-rate decay any model's config can name (LATTICE's 0.96 ** (epoch / 50))."""

import sys

import pytest
import torch
from _model_util import write_tiny_dataset
from _peer_util import build_peer, epoch_losses, peer_config_dict

from recbole_mmssl.checkpoint import last_checkpoint_path, load_checkpoint
from recbole_mmssl.errors import ConfigError
from recbole_mmssl.quick_start import build, run_recbole_mmssl

LATTICE_SMALL = {"knn_k": 5, "feat_embed_dim": 8}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lr_schedule")
    write_tiny_dataset(folder)
    return folder


def lr(trainer):
    return trainer.optimizer.param_groups[0]["lr"]


def test_lattice_decays_its_learning_rate_as_the_authors_code(data_dir):
    """LATTICE.yaml: lr * 0.96 ** (epoch / 50), stepped after each epoch of RecBole's own loop."""
    config, (train_data, _, _), _, trainer = build_peer(data_dir, "LATTICE", learning_rate=0.01, **LATTICE_SMALL)
    assert config["lr_decay"] == 0.96 and config["lr_decay_epochs"] == 50
    assert lr(trainer) == pytest.approx(0.01)
    epoch_losses(trainer, train_data, 3)
    assert lr(trainer) == pytest.approx(0.01 * 0.96 ** (3 / 50))


@pytest.mark.parametrize("model", ["BPR", "LightGCN", "VBPR"])
def test_any_model_can_name_a_decay_and_none_has_one_unless_named(data_dir, model):
    _, (train_data, _, _), _, plain = build_peer(data_dir, model, learning_rate=0.01)
    assert plain.lr_scheduler is None
    epoch_losses(plain, train_data, 2)
    assert lr(plain) == 0.01
    _, (train_data, _, _), _, decayed = build_peer(data_dir, model, learning_rate=0.01, lr_decay=0.5,
                                                   lr_decay_epochs=1)
    epoch_losses(decayed, train_data, 2)
    assert lr(decayed) == pytest.approx(0.01 * 0.25)


def test_mmssl_scheduler_step_uses_the_same_schedule(data_dir):
    from _model_util import build as build_mmssl

    config, (train_data, _, _), _, trainer = build_mmssl(data_dir, scheduler_step=True)
    assert (config["lr_decay"], config["lr_decay_epochs"]) == (0.96, 50)
    base = lr(trainer)
    trainer._train_epoch(train_data, 0)
    assert lr(trainer) == pytest.approx(base * 0.96 ** (1 / 50))
    assert "lr_scheduler" in trainer._checkpoint_state(0)["extra"]
    config, _, _, trainer = build_mmssl(data_dir)
    assert config["lr_decay"] is None and trainer.lr_scheduler is None


def test_a_continued_run_resumes_the_decay_where_it_stopped(data_dir, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    settings = peer_config_dict(data_dir, epochs=3, learning_rate=0.01, **LATTICE_SMALL)
    result = run_recbole_mmssl(model="LATTICE", dataset="tiny", config_dict=settings)
    last = last_checkpoint_path(result["saved_model_file"])
    state = load_checkpoint(last)
    assert state["extra"]["lr_scheduler"]["last_epoch"] == 3
    _, (train_data, _, _), _, trainer = build("LATTICE", "tiny", None, {**settings, "epochs": 5}, resume=last)
    assert lr(trainer) == pytest.approx(0.01 * 0.96 ** (3 / 50))
    trainer._train_epoch(train_data, 3)
    assert lr(trainer) == pytest.approx(0.01 * 0.96 ** (4 / 50))


@pytest.mark.parametrize("key, value", [("lr_decay", 1.5), ("lr_decay", 0), ("lr_decay_epochs", -1)])
def test_bad_decay_settings_are_refused_before_any_data_is_read(data_dir, key, value):
    with pytest.raises(ConfigError, match=key):
        build_peer(data_dir, "BPR", **{key: value})


def test_the_decay_is_a_true_lambda_of_the_epoch(data_dir):
    """lr at epoch e is lr0 * rate ** (e / period): not compounded per step beyond that."""
    _, (train_data, _, _), _, trainer = build_peer(data_dir, "BPR", learning_rate=1.0, lr_decay=0.9,
                                                   lr_decay_epochs=2)
    seen = []
    for epoch in range(4):
        seen.append(lr(trainer))
        trainer._train_epoch(train_data, epoch)
    assert seen == pytest.approx([0.9 ** (e / 2) for e in range(4)])
    assert torch.isfinite(torch.tensor(seen)).all()
