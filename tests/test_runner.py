"""The plugin's quick start: built-in models unchanged, plugin config files, tensor-only checkpoints."""

import sys

import pytest
import torch

from recbole_mmssl.checkpoint import last_checkpoint_path, load_checkpoint
from recbole_mmssl.config import Config
from recbole_mmssl.errors import ConfigError
from recbole_mmssl.quick_start import results_table, run_recbole_mmssl
from tests._lead_util import tiny_config, write_tiny_dataset


@pytest.fixture(autouse=True)
def no_cli_args(monkeypatch):
    """RecBole's Config reads sys.argv; keep pytest's own arguments out of it."""
    monkeypatch.setattr(sys, "argv", ["pytest"])


def test_mmssl_block_of_dataset_file_applies_to_mmssl_only():
    lightgcn = Config(model="LightGCN", dataset="tiktok", config_dict={"data_path": "/nonexistent"})
    assert lightgcn["learning_rate"] == 0.001  # RecBole's default, not MMSSL's TikTok value
    assert lightgcn["MMSSL"] is None
    assert lightgcn["valid_metric"] == "Recall@20" and lightgcn["topk"] == [10, 20, 50]
    assert lightgcn["benchmark_filename"] == ["train", "valid", "test"]


def test_user_overrides_beat_dataset_file():
    config = Config(model="LightGCN", dataset="tiktok", config_dict={"data_path": "/x", "stopping_step": 3})
    assert config["stopping_step"] == 3


def test_ml_100k_reads_the_plugin_copy_not_recboles_example(tmp_path):
    config = Config(model="BPR", dataset="ml-100k", config_dict={"data_path": str(tmp_path)})
    assert config["data_path"] == str(tmp_path / "ml-100k")


def test_unknown_model_has_a_clear_error():
    with pytest.raises(ValueError, match="Unknown model 'NoSuchModel'"):
        Config(model="NoSuchModel", dataset="tiktok", config_dict={"data_path": "/x"})


def test_builtin_model_trains_and_checkpoints_load_weights_only(tmp_path):
    write_tiny_dataset(tmp_path)
    result = run_recbole_mmssl("LightGCN", "tiny", config_dict=tiny_config(tmp_path))
    assert set(result["test_result"]) >= {"recall@20", "ndcg@20", "precision@50"}
    assert [e["epoch"] for e in result["epochs"]] == [0, 1]
    best = torch.load(result["saved_model_file"], weights_only=True)
    assert best["config"]["model"] == "LightGCN"
    last = load_checkpoint(last_checkpoint_path(result["saved_model_file"]))
    assert last["epoch"] == 1
    table = results_table(result["best_valid_result"], result["test_result"])
    assert "recall@20" in table and f"{result['test_result']['recall@20']:.4f}" in table


def test_resume_continues_from_the_last_epoch(tmp_path):
    write_tiny_dataset(tmp_path)
    full = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=4))
    first = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=2))
    resumed = run_recbole_mmssl(
        "BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=4),
        resume=last_checkpoint_path(first["saved_model_file"]),
    )
    # the whole run's epochs, the two before the resume from its checkpoint
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1, 2, 3]
    assert [e["valid_score"] for e in resumed["epochs"]] == pytest.approx([e["valid_score"] for e in full["epochs"]])
    assert resumed["train_seconds"] > sum(e["wall_seconds"] for e in resumed["epochs"][:2]) > 0
    assert resumed["best_valid_score"] == pytest.approx(full["best_valid_score"])
    assert resumed["test_result"] == pytest.approx(full["test_result"])


def test_ctrl_c_leaves_the_last_epoch_and_resume_finishes_like_a_full_run(tmp_path, caplog):
    """KeyboardInterrupt after epoch 1 (as Ctrl-C during epoch 2): saved/X.last.pth holds epoch 1, the
    warning gives the --resume command, and resuming ends where an uninterrupted run ends."""
    write_tiny_dataset(tmp_path)
    full = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=4))

    def interrupt_after_epoch_1(epoch_idx, valid_score):
        if epoch_idx == 1:
            raise KeyboardInterrupt

    with caplog.at_level("WARNING"), pytest.raises(KeyboardInterrupt):
        run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=4),
                          callback_fn=interrupt_after_epoch_1)
    (last,) = [p for p in (tmp_path / "saved").glob("*.last.pth") if load_checkpoint(str(p))["epoch"] == 1]
    assert f"--resume={last}" in caplog.text
    resumed = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=4), resume=str(last))
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1, 2, 3]
    assert resumed["test_result"] == pytest.approx(full["test_result"])


def test_ncl_clusters_are_capped_on_small_data(tmp_path, caplog):
    write_tiny_dataset(tmp_path)
    result = run_recbole_mmssl("NCL", "tiny", config_dict=tiny_config(tmp_path, epochs=1, state="INFO"))
    assert result["config"]["num_clusters"] < 40
    assert "num_clusters=1000 exceeds" in caplog.text


def test_missing_prepared_dataset_names_the_convert_command(tmp_path):
    with pytest.raises(Exception, match="recbole_mmssl.data.convert"):
        run_recbole_mmssl("LightGCN", "amazon-baby", config_dict={"data_path": str(tmp_path)})


def test_looking_up_a_model_leaves_torchs_anomaly_detection_as_it_was():
    """RecBole's SINE module enables anomaly detection at import; a lookup that reaches it must not
    leak that into the process (it made later tests fail on masked NaN gradients, and runs slow)."""
    import torch

    from recbole_mmssl.registry import get_model

    assert not torch.is_anomaly_enabled()
    with pytest.raises(ValueError, match="Unknown model"):
        get_model("NoSuchModel")
    assert get_model("SINE").__name__ == "SINE"
    assert not torch.is_anomaly_enabled()


def test_device_cpu_is_applied_and_a_missing_gpu_refused(tmp_path):
    config = Config(model="BPR", dataset="tiny", config_dict={"data_path": str(tmp_path)}, cmd_args=["--device=cpu"])
    # gpu_id stays as RecBole set it (it also sets CUDA_VISIBLE_DEVICES from it): the device is what counts
    assert config["device"].type == "cpu" and config["use_gpu"] is False
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"`device` \(command line --device=cuda\): CUDA is not available"):
            Config(model="BPR", dataset="tiny", config_dict={"data_path": str(tmp_path)}, cmd_args=["--device=cuda"])
