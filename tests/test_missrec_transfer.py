"""MISSRec pre-training -> fine-tuning through a checkpoint, freezing, resume and recommend."""

import csv
import sys

import pytest
import torch

from recbole_mmssl import recommend
from recbole_mmssl.checkpoint import atomic_save, last_checkpoint_path, load_checkpoint
from recbole_mmssl.errors import DataError
from recbole_mmssl.model.missrec.transfer import freeze
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._seq_util import build_missrec, seq_config_dict, split_rows, user_histories, write_seq_dataset


@pytest.fixture(autouse=True)
def no_cli_args(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A pre-training run on one tiny domain and its checkpoint; a second domain to fine-tune on."""
    root = tmp_path_factory.mktemp("transfer")
    write_seq_dataset(root, name="source", seed=3)
    write_seq_dataset(root, name="target", seed=4, modalities=(("text", 8),))
    sys_argv, sys.argv = sys.argv, ["pytest"]
    try:
        result = run_recbole_mmssl("MISSRec", "source", config_dict=seq_config_dict(
            root, train_stage="pretrain", modalities=["text", "text_aug"], epochs=1, interest_ratio=0.2))
    finally:
        sys.argv = sys_argv
    return root, result["saved_model_file"]


def test_pretraining_checkpoint_loads_weights_only(pretrained):
    _, path = pretrained
    state = torch.load(path, weights_only=True)
    assert state["config"]["train_stage"] == "pretrain" and "item_embedding.weight" not in state["state_dict"]


def test_fine_tuning_starts_from_the_pretrained_weights_and_keeps_the_frozen_ones(pretrained):
    root, path = pretrained
    saved = load_checkpoint(path)["state_dict"]
    _, (train, valid, _), model, trainer = build_missrec(root, name="target", modalities=["text"], pretrained=path)
    own = dict(model.named_parameters())
    for name in ("trm_model.encoder.layers.0.linear1.weight", "position_embedding.weight", "adapters.text.weight"):
        assert torch.equal(own[name].detach(), saved[name])
    frozen = {n: p.detach().clone() for n, p in own.items() if n.startswith(("trm_model.", "position_embedding."))}
    assert frozen and all(not own[n].requires_grad for n in frozen)
    adapter = own["adapters.text.weight"].detach().clone()
    trainer.fit(train, valid, saved=False)
    for name, before in frozen.items():
        assert torch.equal(own[name].detach(), before), name  # bit-identical after training
    assert not torch.equal(own["adapters.text.weight"].detach(), adapter)
    assert own["item_embedding.weight"].requires_grad


def test_fine_tuning_without_freezing_trains_everything(pretrained):
    root, path = pretrained
    _, (train, valid, _), model, trainer = build_missrec(root, name="target", modalities=["text"], pretrained=path,
                                                         freeze=[])
    before = model.trm_model.encoder.layers[0].linear1.weight.detach().clone()
    trainer.fit(train, valid, saved=False)
    assert not torch.equal(model.trm_model.encoder.layers[0].linear1.weight.detach(), before)


def test_other_checkpoints_and_freeze_names_are_refused(pretrained, tmp_path):
    root, path = pretrained
    other = tmp_path / "other.pth"
    state = load_checkpoint(path)
    state["config"] = {**state["config"], "model": "SASRec"}
    atomic_save({k: v for k, v in state.items() if k != "digest"}, other)  # an intact checkpoint of another model
    with pytest.raises(DataError, match="not of MISSRec"):
        build_missrec(root, name="target", modalities=["text"], pretrained=str(other))
    _, _, model, _ = build_missrec(root, name="target", modalities=["text"])
    with pytest.raises(ValueError, match="not parts of the model"):
        freeze(model, ["encoder"])


def test_resume_finishes_like_an_uninterrupted_run(tmp_path):
    write_seq_dataset(tmp_path)
    full = run_recbole_mmssl("MISSRec", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=3))
    first = run_recbole_mmssl("MISSRec", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=1))
    resumed = run_recbole_mmssl("MISSRec", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=3),
                                resume=last_checkpoint_path(first["saved_model_file"]))
    assert [e["valid_score"] for e in resumed["epochs"]] == pytest.approx([e["valid_score"] for e in full["epochs"]])
    assert resumed["best_valid_score"] == pytest.approx(full["best_valid_score"])
    assert resumed["test_result"] == pytest.approx(full["test_result"])
    best = load_checkpoint(full["saved_model_file"])["state_dict"]
    assert "interest_centroids" in best and "interest_lookup" in best  # the epoch's interests travel with it


def test_recommend_continues_each_users_whole_history(tmp_path):
    write_seq_dataset(tmp_path)
    result = run_recbole_mmssl("MISSRec", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=1))
    out = tmp_path / "recs.csv"
    assert recommend.main([f"--checkpoint={result['saved_model_file']}", "--topk=5", f"--out={out}"]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    histories = user_histories()
    by_user = {}
    for row in rows:
        by_user.setdefault(row["user_id"], []).append(row["item_id"])
    assert set(by_user) == set(histories) and all(len(v) == 5 for v in by_user.values())
    for user, items in by_user.items():
        assert not set(items) & set(histories[user])  # the whole history (test target included) is left out


def test_recommend_scores_the_latest_history(tmp_path):
    """The history fed to the model is the test row's history plus its target."""
    from recbole_mmssl.data.sequences import latest_histories

    write_seq_dataset(tmp_path)
    result = run_recbole_mmssl("MISSRec", "tinyseq", config_dict=seq_config_dict(tmp_path, epochs=1))
    _, dataset, model = recommend.load_trained(result["saved_model_file"])
    seq, lengths = latest_histories(dataset, model.max_seq_length)
    histories = user_histories()
    token = dataset.field2id_token[dataset.iid_field]
    for user, items in histories.items():
        uid = dataset.field2token_id[dataset.uid_field][user]
        assert [token[i] for i in seq[uid, : lengths[uid]].tolist()] == items
    assert len(split_rows(histories)["test"]) == len(histories)
