"""The multimodal peers LATTICE and FREEDOM on tiny data: training, scoring, features, graphs, seeds."""

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

from recbole_mmssl.model.common.graph_ops import user_item_adjacency
from recbole_mmssl.model.freedom import modality_graph_weights
from recbole_mmssl.model.lattice import mean_adjacency_with_self_loops
from recbole_mmssl.quick_start import run_recbole_mmssl

MODELS = ["LATTICE", "FREEDOM"]
MISSING = (3, 4, 5)  # item tokens i3, i4, i5 have no feature row in the "holes" dataset
SMALL = {"knn_k": 5, "feat_embed_dim": 8}  # embedding_size is 8 in the peer configs


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("peers_b")
    write_tiny_dataset(folder)
    copy_with_new_features(folder, "tiny", "refeat")
    write_tiny_dataset(folder, name="holes", missing_items=MISSING)
    write_tiny_dataset(folder, name="three", modalities=("audio", "image", "text"))
    return folder


def build(data_dir, model, **overrides):
    return build_peer(data_dir, model, **{**SMALL, **overrides})


def loss_of(model, batch):
    return sum(model.calculate_loss(batch))


def dense(rows, cols, values, n):
    return torch.zeros(n, n).index_put((rows, cols), values, accumulate=True)


def dense_knn(features, mask, k, binary=False):
    """Dense reference k-NN graph (self included) over the items where ``mask``: cosine or 1 weights."""
    x = features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = x @ x.t()
    sim[:, ~mask] = -float("inf")
    values, index = sim.topk(k, dim=1)
    graph = torch.zeros_like(sim).scatter(1, index, torch.ones_like(values) if binary else values)
    graph[~mask] = 0.0
    return graph


def row_sym(graph):
    degree = graph.sum(1)
    scale = torch.where(degree > 0, degree.clamp_min(1e-30).rsqrt(), torch.zeros_like(degree))
    return scale[:, None] * graph * scale[None, :]


def projection_weights(model):
    return [linear.weight for linear in model.projection.linears]


# -- every model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_loss_falls_over_epochs_of_recboles_trainer(data_dir, name):
    _, (train_data, _, _), _, trainer = build(data_dir, name, learning_rate=0.05)
    assert_loss_falls(trainer, train_data)


@pytest.mark.parametrize("name", MODELS)
def test_full_sort_scores_every_item_and_the_evaluator_masks_training_items(data_dir, name):
    _, (train_data, valid_data, _), model, trainer = build(data_dir, name)
    epoch_losses(trainer, train_data, 1)
    assert_full_sort_scores_every_item_and_masks_training(model, trainer, train_data, valid_data)


@pytest.mark.parametrize("name", MODELS)
def test_features_reach_the_loss(data_dir, name):
    _, (train_data, _, _), model, _ = build(data_dir, name, name="three")
    model.train()
    loss_of(model, first_batch(train_data)).backward()
    grads = [p.grad for p in projection_weights(model)]
    assert len(grads) == 3 and all(g is not None and g.abs().sum() > 0 for g in grads)
    features = [model.projection.feature(k) for k in range(3)]
    assert all(f.requires_grad and f.grad.abs().sum() > 0 for f in features)  # fine-tuned, as the authors


@pytest.mark.parametrize("name", MODELS)
def test_predictions_change_when_the_features_change(data_dir, name):
    """Same seed and interactions, other feature values: same initial ID weights, other scores
    (through the k-NN item graphs) before any training."""
    runs = []
    for dataset_name in ("tiny", "refeat"):
        _, (train_data, _, _), model, _ = build(data_dir, name, name=dataset_name)
        runs.append((model.state_dict(), all_user_scores(model, train_data._dataset)))
    (state_a, scores_a), (state_b, scores_b) = runs
    same_init = [k for k in state_a if "feature" not in k]
    assert same_init and all(torch.equal(state_a[k], state_b[k]) for k in same_init)
    assert (scores_a - scores_b).abs().max() > 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_items_without_features_get_no_item_graph_edges(data_dir, name):
    _, (train_data, _, _), model, trainer = build(data_dir, name, name="holes", allow_missing_features=True)
    missing = train_data._dataset.token2id(train_data._dataset.iid_field, [f"i{i}" for i in MISSING])
    epoch_losses(trainer, train_data, 1)
    with torch.no_grad():
        if name == "LATTICE":
            rows, cols, _ = model.item_graph()
        else:
            rows, cols = model.item_graph.indices()
    touched = set(rows.tolist()) | set(cols.tolist())
    assert not touched & set(missing.tolist()) and 0 not in touched
    assert touched == set(range(1, model.n_items)) - set(missing.tolist())
    assert torch.isfinite(all_user_scores(model, train_data._dataset)).all()


@pytest.mark.parametrize("name", MODELS)
def test_a_seeded_run_repeats_exactly(data_dir, name):
    runs = []
    for _ in range(2):
        _, (train_data, _, _), model, trainer = build(data_dir, name)
        losses = epoch_losses(trainer, train_data, 2)
        runs.append((losses, {k: v.clone() for k, v in model.state_dict().items()}))
    (losses_a, state_a), (losses_b, state_b) = runs
    assert losses_a == losses_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.mark.parametrize("name", MODELS)
def test_runs_end_to_end_through_quick_start_and_caches_the_knn_beside_the_parse_cache(data_dir, name, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    config = peer_config_dict(data_dir, epochs=2, feature_cache=True, **SMALL)
    result = run_recbole_mmssl(model=name, dataset="tiny", config_dict=config)
    assert [e["epoch"] for e in result["epochs"]] == [0, 1]
    assert set(result["test_result"]) >= {"recall@10", "ndcg@5"}
    saved = torch.load(result["saved_model_file"], weights_only=True)
    assert saved["config"]["model"] == name
    for modality in ("image", "text"):
        assert (data_dir / "tiny" / f".tiny.{modality}_feat.cache.pt").is_file()
        assert (data_dir / "tiny" / f".tiny.{modality}_feat.knn5.pt").is_file()


# -- LATTICE ----------------------------------------------------------------------------------------
def test_lattice_item_graph_is_the_papers_mix_of_learned_and_frozen_graphs(data_dir):
    _, (train_data, _, _), model, _ = build(data_dir, "LATTICE", name="three", lambda_coeff=0.7)
    dataset = train_data._dataset
    with torch.no_grad():
        model.modality_weight.copy_(torch.tensor([0.3, -0.2, 0.5]))
        weights = torch.softmax(model.modality_weight, 0)
        got = dense(*model.item_graph(), model.n_items)
        learned, frozen = 0, 0
        for k, name in enumerate(model.modality_names):
            mask = dataset.modality_masks[name].bool()
            learned = learned + weights[k] * dense_knn(model.projection.project(k), mask, 5)
            frozen = frozen + weights[k] * row_sym(dense_knn(dataset.modality_features[name], mask, 5))
        expected = 0.3 * row_sym(learned) + 0.7 * frozen
    assert torch.allclose(got, expected, atol=1e-5)
    assert (got[0] == 0).all() and (got[:, 0] == 0).all()


@pytest.mark.parametrize("update", ["epoch", "batch"])
def test_lattice_learned_graph_trains_on_each_epochs_first_batch_or_every_batch(data_dir, update):
    _, (train_data, _, _), model, _ = build(data_dir, "LATTICE", item_graph_update=update)
    batches = iter(train_data)
    model.train()
    loss_of(model, next(batches)).backward()
    assert all(p.grad.abs().sum() > 0 for p in projection_weights(model) + [model.modality_weight])
    model.zero_grad(set_to_none=True)
    loss_of(model, next(batches)).backward()
    learned = [p.grad for p in projection_weights(model) + [model.modality_weight]]
    assert model.item_id_embedding.weight.grad.abs().sum() > 0
    if update == "epoch":  # the authors' loop: the graph is used detached for the rest of the epoch
        assert all(g is None or g.abs().sum() == 0 for g in learned)
    else:
        assert all(g.abs().sum() > 0 for g in learned)


def test_lattice_rebuilds_its_graph_each_epoch_of_recboles_trainer(data_dir):
    _, (train_data, _, _), model, trainer = build(data_dir, "LATTICE", learning_rate=0.05)
    graphs = []
    for epoch in range(2):
        trainer._train_epoch(train_data, epoch)
        graphs.append(model._item_graph.to_dense())
    assert not torch.allclose(graphs[0], graphs[1])


def test_lattice_user_item_graphs(data_dir):
    _, (train_data, _, _), model, _ = build(data_dir, "LATTICE")
    train = train_data._dataset.inter_matrix(form="coo")
    users, items = torch.as_tensor(train.row, dtype=torch.long), torch.as_tensor(train.col, dtype=torch.long)
    n_users, n = model.n_users, model.n_users + model.n_items
    adjacency = model.ui_adjacency.to_dense()
    assert torch.equal(adjacency, mean_adjacency_with_self_loops(users, items, n_users, model.n_items).to_dense())
    degree = torch.bincount(users, minlength=n_users).float() + 1
    assert torch.allclose(adjacency[users, items + n_users], 1.0 / degree[users])
    assert torch.allclose(adjacency.diagonal()[1:n_users], 1.0 / degree[1:])
    real = [i for i in range(n) if i not in (0, n_users)]
    assert torch.allclose(adjacency[real].sum(1), torch.ones(len(real)))
    assert (adjacency[[0, n_users]] == 0).all() and (adjacency[:, [0, n_users]] == 0).all()
    _, _, symmetric, _ = build(data_dir, "LATTICE", ui_norm="symmetric")
    assert torch.equal(symmetric.ui_adjacency.to_dense(),
                       user_item_adjacency(users, items, n_users, model.n_items).to_dense())
    with pytest.raises(ValueError, match="ui_norm"):
        build(data_dir, "LATTICE", ui_norm="rows")


# -- FREEDOM ----------------------------------------------------------------------------------------
def test_freedom_frozen_item_graph_mixes_binary_knn_graphs_by_fixed_weights(data_dir):
    _, (train_data, _, _), model, _ = build(data_dir, "FREEDOM", name="three")
    dataset = train_data._dataset
    assert model.graph_weights == pytest.approx([0.45, 0.1, 0.45])  # audio, image, text
    expected = 0
    for weight, name in zip(model.graph_weights, model.modality_names):
        mask = dataset.modality_masks[name].bool()
        expected = expected + weight * row_sym(dense_knn(dataset.modality_features[name], mask, 5, binary=True))
    got = model.item_graph.to_dense()
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got[1:].sum(1), torch.ones(model.n_items - 1)) and (got[0] == 0).all()


def test_freedom_modality_weights_for_any_modalities():
    assert modality_graph_weights(["image", "text"], 0.1) == pytest.approx([0.1, 0.9])  # the authors' mix
    assert modality_graph_weights(["audio", "image", "text"], 0.1) == pytest.approx([0.45, 0.1, 0.45])
    assert modality_graph_weights(["audio", "text"], 0.1) == pytest.approx([0.5, 0.5])
    assert modality_graph_weights(["image"], 0.1) == pytest.approx([1.0])
    assert modality_graph_weights(["image", "text"], 0.1, {"image": 3, "text": 1}) == pytest.approx([0.75, 0.25])
    with pytest.raises(ValueError, match="missing \\['text'\\]"):
        modality_graph_weights(["image", "text"], 0.1, {"image": 1})
    with pytest.raises(ValueError, match="mm_image_weight"):
        modality_graph_weights(["image", "text"], 1.5)


def test_freedom_prunes_the_user_item_graph_by_degree_once_per_epoch(data_dir):
    _, (train_data, _, _), model, trainer = build(data_dir, "FREEDOM", dropout=0.5)
    n_edges = model.train_users.numel()
    batches = iter(train_data)
    model.train()
    model.calculate_loss(next(batches))
    pruned = model.pruned_adjacency
    assert pruned._nnz() == 2 * int(n_edges * 0.5)
    kept = pruned.indices()
    kept = kept[:, kept[0] < model.n_users]
    assert torch.equal(pruned.to_dense(), user_item_adjacency(kept[0], kept[1] - model.n_users, model.n_users,
                                                              model.n_items).to_dense())
    model.calculate_loss(next(batches))
    assert model.pruned_adjacency is pruned  # one sample per epoch
    graphs = []
    for epoch in range(2):  # RecBole's Trainer starts each epoch with model.train(): a new sample
        trainer._train_epoch(train_data, epoch)
        graphs.append(model.pruned_adjacency.indices())
    assert not torch.equal(graphs[0], graphs[1])
    model.eval()
    assert torch.allclose(model.score_tables()[0], model.forward(model.full_adjacency)[0])

    # edges of low-degree endpoints (large 1/sqrt(d_u d_i)) are kept more often
    kept_count = torch.zeros(n_edges)
    lookup = {(u, i): e for e, (u, i) in enumerate(zip(model.train_users.tolist(), model.train_items.tolist()))}
    for _ in range(200):
        model.prune_user_item_graph()
        index = model.pruned_adjacency.indices()
        for u, i in index[:, index[0] < model.n_users].t().tolist():
            kept_count[lookup[(u, i - model.n_users)]] += 1
    order = torch.argsort(model.edge_weights)
    quarter = n_edges // 4
    assert kept_count[order[-quarter:]].mean() > kept_count[order[:quarter]].mean() + 10


def test_freedom_checks_its_settings(data_dir):
    with pytest.raises(ValueError, match="dropout"):
        build(data_dir, "FREEDOM", dropout=1.0)
    with pytest.raises(ValueError, match="feat_embed_dim"):
        build(data_dir, "FREEDOM", feat_embed_dim=16)
    _, _, model, _ = build(data_dir, "FREEDOM", dropout=0.0)
    model.prune_user_item_graph()
    assert model.pruned_adjacency is model.full_adjacency
