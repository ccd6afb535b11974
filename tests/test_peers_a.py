"""The multimodal peers VBPR, MMGCN, SLMRec and BM3 on tiny data: training, scoring, features, seeds."""

import sys

import pytest
import torch
from _model_util import write_tiny_dataset
from _peer_util import (
    assert_full_sort_scores_every_item_and_masks_training,
    assert_loss_falls,
    all_user_scores,
    build_peer,
    copy_with_new_features,
    epoch_losses,
    first_batch,
    peer_config_dict,
)

from recbole_mmssl.model.common.graph_ops import propagate, user_item_adjacency
from recbole_mmssl.model.common.lightgcn import lightgcn_propagate
from recbole_mmssl.model.mmgcn import mean_adjacency
from recbole_mmssl.quick_start import run_recbole_mmssl

MODELS = ["VBPR", "MMGCN", "SLMRec", "BM3"]
MISSING = (3, 4, 5)  # item tokens i3, i4, i5 have no feature row in the "holes" dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("peers_a")
    write_tiny_dataset(folder)
    copy_with_new_features(folder, "tiny", "refeat")
    write_tiny_dataset(folder, name="holes", missing_items=MISSING)
    write_tiny_dataset(folder, name="three", modalities=("audio", "image", "text"))
    return folder


def projection_parameters(name, model):
    """The parameters that map item features into each model's representation, one per modality."""
    if name == "VBPR":
        return [model.feature_projection.weight]
    if name == "MMGCN":  # in its reference layout only the image modality has a projection
        return [gcn.linear[0].weight for gcn in model.gcns]
    return [linear.weight for linear in model.projection.linears]


def projected_features(name, model):
    """(n_items, width) feature part of each item's representation, all modalities side by side."""
    if name == "VBPR":
        return model.feature_projection(model.item_features)
    if name == "MMGCN":
        return torch.cat(model.modality_inputs(), dim=1)
    return torch.cat(model.projection(), dim=1)


@pytest.mark.parametrize("name", MODELS)
def test_loss_falls_over_epochs_of_recboles_trainer(data_dir, name):
    _, (train_data, _, _), _, trainer = build_peer(data_dir, name, learning_rate=0.01)
    assert_loss_falls(trainer, train_data)


@pytest.mark.parametrize("name", MODELS)
def test_full_sort_scores_every_item_and_the_evaluator_masks_training_items(data_dir, name):
    _, (train_data, valid_data, _), model, trainer = build_peer(data_dir, name)
    epoch_losses(trainer, train_data, 1)
    assert_full_sort_scores_every_item_and_masks_training(model, trainer, train_data, valid_data)


@pytest.mark.parametrize("name", MODELS)
def test_features_reach_the_loss(data_dir, name):
    _, (train_data, _, _), model, _ = build_peer(data_dir, name, name="three")
    model.train()
    model.calculate_loss(first_batch(train_data)).backward()
    grads = [p.grad for p in projection_parameters(name, model)]
    assert len(grads) == (1 if name == "VBPR" else 3)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", MODELS)
def test_predictions_change_when_the_features_change(data_dir, name):
    """Same seed, same interactions, other feature values: same initial weights, other scores
    after one epoch (BM3 scores by IDs alone, so its features act through training only)."""
    runs = []
    for dataset_name in ("tiny", "refeat"):
        _, (train_data, _, _), model, trainer = build_peer(data_dir, name, name=dataset_name)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        epoch_losses(trainer, train_data, 1)
        runs.append((state, all_user_scores(model, train_data._dataset)))
    (state_a, scores_a), (state_b, scores_b) = runs
    same_init = [k for k in state_a if "feature" not in k]  # BM3 fine-tunes its features: they differ
    assert same_init and all(torch.equal(state_a[k], state_b[k]) for k in same_init)
    assert scores_a.shape == scores_b.shape
    assert (scores_a - scores_b).abs().max() > 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_items_without_features_get_no_feature_projection(data_dir, name):
    _, (train_data, _, _), model, trainer = build_peer(data_dir, name, name="holes", allow_missing_features=True)
    epoch_losses(trainer, train_data, 1)  # biases move away from zero
    internal = train_data._dataset.token2id(train_data._dataset.iid_field, [f"i{i}" for i in MISSING])
    with torch.no_grad():
        rows = projected_features(name, model)
    assert rows[internal].abs().sum() == 0
    present = [i for i in range(1, rows.shape[0]) if i not in set(internal.tolist())]
    assert (rows[present].abs().sum(1) > 0).all()


@pytest.mark.parametrize("name", MODELS)
def test_a_seeded_run_repeats_exactly(data_dir, name):
    runs = []
    for _ in range(2):
        _, (train_data, _, _), model, trainer = build_peer(data_dir, name)
        losses = epoch_losses(trainer, train_data, 2)
        runs.append((losses, {k: v.clone() for k, v in model.state_dict().items()}))
    (losses_a, state_a), (losses_b, state_b) = runs
    assert losses_a == losses_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.mark.parametrize("name", MODELS)
def test_runs_end_to_end_through_quick_start(data_dir, name, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    result = run_recbole_mmssl(model=name, dataset="tiny", config_dict=peer_config_dict(data_dir, epochs=2))
    assert [e["epoch"] for e in result["epochs"]] == [0, 1]
    assert set(result["test_result"]) >= {"recall@10", "ndcg@5"}
    saved = torch.load(result["saved_model_file"], weights_only=True)
    assert saved["config"]["model"] == name


@pytest.mark.parametrize("name", MODELS)
def test_eval_scores_follow_loaded_weights(data_dir, name):
    """Eval-mode scores are cached, and loading weights (best epoch, resume) refreshes them."""
    _, (train_data, _, _), model, trainer = build_peer(data_dir, name)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    before = all_user_scores(model, train_data._dataset)
    epoch_losses(trainer, train_data, 1)
    trained = all_user_scores(model, train_data._dataset)
    assert (trained - before).abs().max() > 1e-4
    model.load_state_dict(initial)
    assert torch.allclose(all_user_scores(model, train_data._dataset), before, atol=1e-6)


def test_lightgcn_propagate_is_the_mean_of_the_adjacency_powers():
    users, items = torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 1, 1, 0, 2])
    adjacency = user_item_adjacency(users, items, 3, 3)
    dense = adjacency.to_dense()
    x = torch.randn(6, 4)
    powers = [x, dense @ x, dense @ dense @ x, dense @ dense @ dense @ x]
    assert torch.allclose(lightgcn_propagate(adjacency, x, 3), torch.stack(powers).mean(0), atol=1e-6)
    assert lightgcn_propagate(adjacency, x, 0) is x
    halve = lambda e: e / 2  # noqa: E731 -- a per-layer transform (SLMRec's dropout views)
    expected = torch.stack([x, dense @ x / 2, dense @ (dense @ x / 2) / 2]).mean(0)
    assert torch.allclose(lightgcn_propagate(adjacency, x, 2, transform=halve), expected, atol=1e-6)


# -- model-specific behaviour ----------------------------------------------------------------------


def test_vbpr_has_no_item_bias_by_default_and_the_papers_on_request(data_dir):
    """MMRec's reference form by default (no popularity term); item_bias: True adds beta_i + beta'^T f_i."""
    _, _, default, _ = build_peer(data_dir, "VBPR")
    d = default.embedding_size
    assert not hasattr(default, "item_bias_embedding") and default.score_tables()[1].shape[1] == 2 * d
    _, (train_data, _, _), with_bias, trainer = build_peer(data_dir, "VBPR", item_bias=True)
    epoch_losses(trainer, train_data, 1)
    user, item = with_bias.score_tables()
    expected_bias = with_bias.item_bias_embedding.weight + with_bias.feature_bias(with_bias.item_features)
    assert user.shape[1] == item.shape[1] == 2 * d + 1 and torch.equal(user[:, -1], torch.ones(user.shape[0]))
    assert torch.allclose(item[:, -1:], expected_bias) and expected_bias.abs().sum() > 0


def test_mmgcn_reference_layout_projects_only_the_image_and_averages_the_modalities(data_dir):
    """The authors' code and MMRec: v_feat through a 256-wide Linear, the others at their own width;
    representation = the modality GCNs' outputs divided by their number."""
    _, _, model, _ = build_peer(data_dir, "MMGCN", name="three", dim_latent=12)
    assert model.modality_names == ["audio", "image", "text"] and model.projected == [False, True, False]
    widths = [gcn.preference.shape[1] for gcn in model.gcns]
    features = {n: model.modality_inputs()[k] for k, n in enumerate(model.modality_names)}
    assert widths == [features["audio"].shape[1], 12, features["text"].shape[1]] == [6, 12, 10]
    projection = model.projection.linears[0]
    assert projection.bias is not None and torch.allclose(features["image"], model.projection.project(0))
    model.eval()
    with torch.no_grad():
        outputs = [gcn(x, model.id_embedding, model.graph) for gcn, x in zip(model.gcns, model.modality_inputs())]
        assert torch.allclose(model.forward(), sum(outputs) / 3, atol=1e-6)


def test_mmgcn_projected_sum_layout_projects_every_modality_and_sums(data_dir):
    _, _, model, _ = build_peer(data_dir, "MMGCN", name="three", dim_latent=12, mmgcn_layout="projected_sum")
    assert model.projected == [True, True, True] and [g.preference.shape[1] for g in model.gcns] == [12, 12, 12]
    model.eval()
    with torch.no_grad():
        outputs = [gcn(x, model.id_embedding, model.graph) for gcn, x in zip(model.gcns, model.modality_inputs())]
        assert torch.allclose(model.forward(), sum(outputs), atol=1e-6)
    with pytest.raises(ValueError, match="mmgcn_layout"):
        build_peer(data_dir, "MMGCN", mmgcn_layout="concat")


def test_mmgcn_aggregation_is_the_neighbour_mean(data_dir):
    _, (train_data, _, _), model, _ = build_peer(data_dir, "MMGCN")
    train = train_data._dataset.inter_matrix(form="coo")
    n_users, n = model.n_users, model.n_users + model.n_items
    dense = torch.zeros(n, n)
    dense[train.row, train.col + n_users] = 1.0
    dense[train.col + n_users, train.row] = 1.0
    degree = dense.sum(1, keepdim=True)
    reference = torch.where(degree > 0, dense / degree.clamp_min(1), torch.zeros_like(dense))
    users, items = torch.as_tensor(train.row, dtype=torch.long), torch.as_tensor(train.col, dtype=torch.long)
    x = torch.randn(n, 3)
    assert torch.allclose(propagate(mean_adjacency(users, items, n_users, model.n_items), x), reference @ x, atol=1e-6)


def test_mmgcn_trains_its_id_embeddings_and_every_modalitys_preferences(data_dir):
    """The authors' code never updates them (non-leaf .cuda() copies outside the optimiser)."""
    _, (train_data, _, _), model, trainer = build_peer(data_dir, "MMGCN", name="three")
    before = [model.id_embedding.detach().clone()] + [g.preference.detach().clone() for g in model.gcns]
    epoch_losses(trainer, train_data, 1)
    after = [model.id_embedding] + [g.preference for g in model.gcns]
    assert len(after) == 4 and all(not torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("task", ["FD", "FM", "FD+FM"])
def test_slmrec_every_ssl_task_trains_the_feature_projections(data_dir, task):
    _, (train_data, _, _), model, trainer = build_peer(data_dir, "SLMRec", ssl_task=task, learning_rate=0.01)
    model.train()
    model.calculate_loss(first_batch(train_data)).backward()
    assert all(p.grad.abs().sum() > 0 for p in projection_parameters("SLMRec", model))
    losses = epoch_losses(trainer, train_data, 4)
    assert losses[-1] < losses[0], losses


def test_slmrec_fac_chain_widths_and_unknown_task(data_dir):
    _, _, model, _ = build_peer(data_dir, "SLMRec", name="three", embedding_size=8)
    # the authors' three-modality chain: id->iv (d), iv->iva (d), iva->ivat (d/2); fine heads to match
    assert [layer.out_features for layer in model.fac_coarse] == [8, 8, 4]
    assert [layer.out_features for layer in model.fac_fine] == [8, 8, 4]
    with pytest.raises(ValueError, match="ssl_task"):
        build_peer(data_dir, "SLMRec", ssl_task="XYZ")


def test_slmrec_and_bm3_train_on_positives_only(data_dir):
    """No sampled negatives: an epoch's batches are exactly the training interactions."""
    for name in ("SLMRec", "BM3"):
        _, (train_data, _, _), model, _ = build_peer(data_dir, name)
        batches = list(train_data)
        assert all(model.NEG_ITEM_ID not in b.interaction and "label" not in b.interaction for b in batches)
        pairs = sorted(zip(*(torch.cat([b[f] for b in batches]).tolist() for f in (model.USER_ID, model.ITEM_ID))))
        train = train_data._dataset.inter_feat
        assert pairs == sorted(zip(train[model.USER_ID].tolist(), train[model.ITEM_ID].tolist()))


def test_bm3_features_enter_only_through_the_alignment_losses_and_are_fine_tuned(data_dir):
    _, (train_data, _, _), model, _ = build_peer(data_dir, "BM3", cl_weight=0.0)
    model.train()
    model.calculate_loss(first_batch(train_data)).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in projection_parameters("BM3", model))
    _, (train_data, _, _), model, _ = build_peer(data_dir, "BM3", name="holes", allow_missing_features=True)
    model.train()
    batch = first_batch(train_data)
    model.calculate_loss(batch).backward()
    missing = train_data._dataset.token2id(train_data._dataset.iid_field, [f"i{i}" for i in MISSING])
    for k in range(len(model.projection)):
        grad = model.projection.feature(k).grad
        batch_items = set(batch[model.ITEM_ID].tolist()) - set(missing.tolist())
        assert grad[sorted(batch_items)].abs().sum() > 0  # raw features are fine-tuned (authors: freeze=False)
        assert grad[missing].abs().sum() == 0
