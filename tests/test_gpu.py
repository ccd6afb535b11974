"""The GPU path: the same code on CUDA gives the CPU's numbers (marked ``gpu``; skipped without CUDA).

Run them on a GPU machine with ``python -m pytest -m gpu``. ``RECBOLE_MMSSL_TEST_DEVICE=cpu`` runs the
same checks with the CPU in the GPU's place (a dry run of the tests themselves on a machine without one).
"""

import csv
import os
import sys

import pytest
import torch
from _model_util import build, write_tiny_dataset
from _peer_util import peer_config_dict

from recbole_mmssl import recommend
from recbole_mmssl.quick_start import run_recbole_mmssl
from recbole_mmssl.registry import PLUGIN_MODELS

DEVICE = os.environ.get("RECBOLE_MMSSL_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="CUDA is not available"),
]
ON_DEVICE = {"use_gpu": DEVICE == "cuda"}
# No randomness inside an iteration (dropout, Gumbel noise, penalty mixing): the CPU and the GPU draw
# different random numbers, everything else must agree.
NO_NOISE = {"variant": "paper", "drop_rate": 0.0, "G_drop1": 0.0, "G_drop2": 0.0, "log_log_scale": 0.0, "gp_rate": 0}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu")
    write_tiny_dataset(folder)
    return folder


@pytest.fixture(autouse=True)
def no_cli_args(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])


def _step(model, trainer, users, positives, negatives):
    """One critic step and one generator step on the given batch; (losses, parameters after)."""
    train_rows = trainer.sampler.train_rows(users)
    d_parts = trainer._critic_step(users, train_rows)
    g_parts, _ = trainer._generator_step(users, positives, negatives, train_rows)
    # the penalty's interpolation weights are random draws (weight 0 here, so they change nothing else)
    losses = {k: float(v.detach()) for k, v in {**d_parts, **g_parts}.items() if k != "d_penalty"}
    # parameters only: the critic's batch-norm statistics also saw the penalty's random interpolates
    params = {k: v.detach().cpu() for k, v in model.named_parameters()}
    params.update({f"critic.{k}": v.detach().cpu() for k, v in trainer.critic.named_parameters()})
    return losses, params


def test_mmssl_forward_loss_and_one_step_on_the_gpu_equal_the_cpu(data_dir):
    _, _, cpu_model, cpu_trainer = build(data_dir, **NO_NOISE)
    config, _, gpu_model, gpu_trainer = build(data_dir, **NO_NOISE, **ON_DEVICE)
    assert config["device"].type == DEVICE and next(gpu_model.parameters()).device.type == DEVICE
    users, positives, negatives = cpu_trainer.sampler.sample()
    with torch.no_grad():
        cpu_out, gpu_out = cpu_model.forward(), gpu_model.forward()
    torch.testing.assert_close(gpu_out.user.cpu(), cpu_out.user, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu_out.item.cpu(), cpu_out.item, rtol=1e-4, atol=1e-5)
    device = config["device"]
    cpu_losses, cpu_params = _step(cpu_model, cpu_trainer, users, positives, negatives)
    gpu_losses, gpu_params = _step(gpu_model, gpu_trainer, users.to(device), positives.to(device), negatives.to(device))
    assert gpu_losses == pytest.approx(cpu_losses, rel=1e-3, abs=1e-5)
    assert gpu_params.keys() == cpu_params.keys()
    for name, value in cpu_params.items():
        lr = config["D_lr"] if name.startswith("critic.") else config["learning_rate"]
        assert_same_step(gpu_params[name], value, lr, name)


def assert_same_step(gpu, cpu, lr, name):
    """Parameters after one Adam(W) step agree; a gradient at rounding level (|g| near Adam's eps) may
    take a step of up to lr the other way on one device, so a few elements are allowed that far apart."""
    diff = (gpu - cpu).abs()
    far = diff > 1e-5 + 1e-3 * cpu.abs()
    assert float(diff.max()) <= 2 * lr + 1e-5, name
    assert int(far.sum()) <= max(1, int(0.005 * cpu.numel())), f"{name}: {int(far.sum())} of {cpu.numel()} differ"


@pytest.mark.parametrize("model", sorted(PLUGIN_MODELS))
def test_one_epoch_of_every_plugin_model_on_the_gpu(data_dir, model):
    # small widths the tiny data allow (the peers' own tests use the same)
    overrides = {"head_num": 2} if model == "MMSSL" else {"knn_k": 5, "feat_embed_dim": 8}
    result = run_recbole_mmssl(model, "tiny", config_dict=peer_config_dict(
        data_dir, epochs=1, checkpoint_dir=str(data_dir / f"saved_{model}"), **ON_DEVICE, **overrides))
    assert result["config"]["device"].type == DEVICE
    assert next(result["trainer"].model.parameters()).device.type == DEVICE
    assert len(result["epochs"]) == 1
    assert all(0 <= v <= 1 for v in result["test_result"].values())


def test_recommend_on_the_gpu_gives_the_cpu_recommendations(data_dir, tmp_path):
    result = run_recbole_mmssl("MMSSL", "tiny", config_dict=peer_config_dict(
        data_dir, epochs=1, embedding_size=8, head_num=2, use_gpu=False, checkpoint_dir=str(tmp_path)))
    lists = {}
    for device in ("cpu", DEVICE):
        out = tmp_path / f"recs_{device}.csv"
        assert recommend.main([f"--checkpoint={result['saved_model_file']}", "--topk=5", f"--out={out}",
                               f"--device={device}"]) in (None, 0)
        with open(out) as f:
            lists[device] = list(csv.DictReader(f))
    cpu, gpu = lists["cpu"], lists[DEVICE]
    assert [(r["user_id"], r["rank"]) for r in gpu] == [(r["user_id"], r["rank"]) for r in cpu]
    assert [float(r["score"]) for r in gpu] == pytest.approx([float(r["score"]) for r in cpu], rel=1e-4, abs=1e-5)
    same = sum(g["item_id"] == c["item_id"] for g, c in zip(gpu, cpu))
    assert same >= 0.98 * len(cpu)  # a tie broken the other way may swap two neighbours
