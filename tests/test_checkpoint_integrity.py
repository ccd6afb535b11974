"""Checkpoints carry a digest of every tensor and of their data; a damaged one is refused on every load."""

import sys

import pytest
import torch

from recbole_mmssl import recommend
from recbole_mmssl.checkpoint import last_checkpoint_path, load_checkpoint
from recbole_mmssl.errors import DataError
from recbole_mmssl.quick_start import build, run_recbole_mmssl
from tests._data_util import damage_tensors
from tests._lead_util import tiny_config, write_tiny_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    write_tiny_dataset(root)
    argv, sys.argv = sys.argv, ["pytest"]
    try:
        result = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(root, epochs=1))
    finally:
        sys.argv = argv
    damaged = root / "damaged.pth"
    assert damage_tensors(result["saved_model_file"], damaged) > 0
    return root, result["saved_model_file"], damaged


def test_checkpoints_hold_a_digest_and_still_load_weights_only(trained):
    _, best, _ = trained
    state = torch.load(best, weights_only=True)
    assert state["digest"]["algorithm"] == "sha256"
    assert "state_dict/user_embedding.weight" in state["digest"]["tensors"]
    assert load_checkpoint(best)["epoch"] == 0


def test_changed_bytes_in_a_tensor_are_refused_naming_the_file_and_tensor(trained):
    _, _, damaged = trained
    with pytest.raises(DataError, match=r"damaged\.pth: is damaged or was changed after it was saved: tensor "):
        load_checkpoint(damaged)


def test_changed_settings_are_refused(trained, tmp_path):
    _, best, _ = trained
    state = torch.load(best, weights_only=True)
    state["epoch"] = 7
    torch.save(state, tmp_path / "edited.pth")
    with pytest.raises(DataError, match="its settings or counters do not match"):
        load_checkpoint(tmp_path / "edited.pth")


def test_a_checkpoint_without_a_digest_loads_with_a_warning(trained, tmp_path, caplog):
    _, best, _ = trained
    state = torch.load(best, weights_only=True)
    del state["digest"]
    torch.save(state, tmp_path / "old.pth")
    with caplog.at_level("WARNING"):
        assert load_checkpoint(tmp_path / "old.pth")["epoch"] == 0
    assert "carries no integrity digest" in caplog.text


def test_recommend_refuses_a_damaged_checkpoint(trained, tmp_path, capsys):
    _, _, damaged = trained
    code = recommend.main([f"--checkpoint={damaged}", f"--out={tmp_path / 'recs.csv'}"])
    assert code == 2 and f"error: {damaged}: is damaged" in capsys.readouterr().err
    assert not (tmp_path / "recs.csv").exists()


def test_resume_refuses_a_damaged_checkpoint(trained):
    root, best, damaged = trained
    with pytest.raises(DataError, match="is damaged"):
        run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(root, epochs=2), resume=str(damaged))


def test_load_best_model_refuses_a_damaged_checkpoint(trained, monkeypatch):
    root, best, damaged = trained
    monkeypatch.setattr(sys, "argv", ["pytest"])
    _, (_, _, test_data), _, trainer = build("BPR", "tiny", config_dict=tiny_config(root, epochs=1))
    with pytest.raises(DataError, match="is damaged"):
        trainer.evaluate(test_data, load_best_model=True, model_file=str(damaged))
    assert trainer.evaluate(test_data, load_best_model=True, model_file=best)  # the intact one loads
    assert last_checkpoint_path(best) != best



@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_stop_during_a_checkpoint_write_stops_after_the_file_is_whole(trained, tmp_path, monkeypatch, signum):
    """Ctrl-C or SIGTERM arriving while torch.save writes is held until the file is complete, then
    stops the program as it would have (torch's zip writer would otherwise turn it into a
    RuntimeError and exit 1, as a run stopped in mid-save once did)."""
    import os
    import signal

    from recbole_mmssl import checkpoint

    _, saved, _ = trained
    state = load_checkpoint(saved)
    state.pop("digest", None)
    received = []

    def stop(received_signum, frame):
        received.append(received_signum)
        raise KeyboardInterrupt(f"stopped by {signum}")

    real_save = torch.save

    def interrupted_save(obj, f):
        os.kill(os.getpid(), getattr(signal, signum))  # lands in the middle of the write
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", interrupted_save)
    previous = signal.signal(getattr(signal, signum), stop)
    path = tmp_path / "run.last.pth"
    try:
        with pytest.raises(KeyboardInterrupt, match=f"stopped by {signum}"):
            checkpoint.atomic_save(state, path)
    finally:
        signal.signal(getattr(signal, signum), previous)
    assert received == [getattr(signal, signum)]
    assert load_checkpoint(str(path))["epoch"] == state["epoch"]  # whole, digest verified
    assert [p.name for p in tmp_path.iterdir()] == ["run.last.pth"]  # no temporary file left
