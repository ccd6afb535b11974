"""Early stopping does not count a model's warm-up epochs (NCL's warm_up_step), unless told to."""

import pytest
from _model_util import write_tiny_dataset
from _peer_util import build_peer
from recbole.trainer import Trainer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("patience")
    write_tiny_dataset(folder)
    return folder


@pytest.fixture
def falling_validation(monkeypatch):
    """Every validation scores below the one before, so only the patience decides when a run ends."""
    calls = []

    def valid_epoch(self, valid_data, show_progress=False):
        calls.append(1)
        return 1.0 - 0.01 * len(calls), {"recall@10": 1.0 - 0.01 * len(calls)}

    monkeypatch.setattr(Trainer, "_valid_epoch", valid_epoch)


def epochs_trained(data_dir, model, **settings):
    _, (train_data, valid_data, _), _, trainer = build_peer(data_dir, model, epochs=30, stopping_step=1, **settings)
    seen = []
    trainer.fit(train_data, valid_data, saved=False, callback_fn=lambda epoch, score: seen.append(epoch))
    return seen


@pytest.mark.parametrize("patience_after_warm_up, epochs", [(True, 6), (False, 3)])
def test_ncl_patience_starts_after_its_warm_up(data_dir, falling_validation, patience_after_warm_up, epochs):
    """Warm-up 4, patience 1, best epoch 0: epochs 0-3 do not count, 4 and 5 do (RecBole's count: 1, 2)."""
    seen = epochs_trained(data_dir, "NCL", warm_up_step=4, num_clusters=2,
                          patience_after_warm_up=patience_after_warm_up)
    assert seen == list(range(epochs))


def test_models_without_a_warm_up_stop_as_in_recbole(data_dir, falling_validation):
    assert epochs_trained(data_dir, "BPR") == [0, 1, 2]
