"""MMSSL the model: variants, gradient flow, losses on empty graphs, features, modality counts."""

import math

import pytest
import torch
from _model_util import batch, build, empty_graphs, write_tiny_dataset
from recbole.data.interaction import Interaction

from recbole_mmssl.data.errors import DataError
from recbole_mmssl.model.mmssl import VARIANT_PRESETS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mmssl_model")
    write_tiny_dataset(folder)
    write_tiny_dataset(folder, name="three", modalities=("audio", "image", "text"))
    write_tiny_dataset(folder, name="one", modalities=("image",))
    write_tiny_dataset(folder, name="holes", missing_items=(3, 4, 5))
    write_tiny_dataset(folder, name="bare", modalities=())
    return folder


@pytest.fixture(scope="module")
def released(data_dir):
    return build(data_dir, variant="released")


@pytest.fixture(scope="module")
def paper(data_dir):
    return build(data_dir, variant="paper")


def test_variants_fill_their_switches_and_explicit_values_win(data_dir, released, paper):
    for (config, _, model, trainer), variant in ((released, "released"), (paper, "paper")):
        for key, value in VARIANT_PRESETS[variant].items():
            assert config[key] == value
        assert config["weight_decay"] == 0.01
        assert trainer.optimizer.__class__.__name__ == "AdamW"
        assert trainer.optimizer.defaults["weight_decay"] == 0.01
    assert released[2].graphs.layout == "tiled" and paper[2].graphs.layout == "aligned"
    assert released[2].topk == 0 and paper[2].topk == 1  # floor(40 * 1e-4) = 0, paper min_topk 1
    config = build(data_dir, variant="released", pair_layout="aligned", attention="multihead")[0]
    assert config["pair_layout"] == "aligned" and config["attention"] == "multihead"
    assert config["graph_schedule"] == "released"


def test_unknown_variant_is_an_error(data_dir):
    with pytest.raises(ValueError, match="variant"):
        build(data_dir, variant="improved")


def test_released_critic_activations_are_identity_and_paper_is_not(released, paper):
    x = torch.linspace(-3, 3, 13)
    for trainer, identity in ((released[3], True), (paper[3], False)):
        activations = [m for m in trainer.critic.modules() if isinstance(m, torch.nn.LeakyReLU)]
        assert len(activations) == 2
        for act in activations:
            assert torch.equal(act(x), x) is identity


def test_adversarial_and_feature_losses_reach_only_the_encoders(released):
    _, _, model, trainer = released
    model.train()
    assert model.graphs.nnz("image") > 0  # the initial graphs: the ID branch is live
    users, pos, neg, rows = batch(model, trainer)
    _, parts, _ = model.generator_loss(trainer.critic, users, pos, neg, rows)
    names, params = zip(*model.named_parameters())

    def reached(loss):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return {n for n, g in zip(names, grads) if g is not None and g.abs().sum() > 0}

    encoders = {n for n in names if n.startswith("encoders.")}
    assert reached(parts["g_adv"]) == encoders
    assert reached(parts["feat_l2"]) == encoders
    # BPR reaches everything the forward uses: IDs, attention, encoders (the check can fail)
    assert reached(parts["bpr"]) == set(names)


def test_empty_graphs_give_constant_infonce_without_gradient(data_dir):
    _, _, model, trainer = build(data_dir, variant="released")
    empty_graphs(model)
    model.train()
    users, pos, neg, rows = batch(model, trainer)
    _, parts, _ = model.generator_loss(trainer.critic, users, pos, neg, rows)
    constant = math.log(2 * users.numel() - 1)
    for name in model.modality_names:
        assert parts[f"infonce_{name}"].item() == pytest.approx(constant, abs=1e-5)
    grads = torch.autograd.grad(parts["infonce"], list(model.parameters()), allow_unused=True)
    assert all(g is None or g.abs().max() == 0 for g in grads)
    # u0 = E_u: the attention output is exactly zero
    out = model.forward()
    assert all(e.abs().max() == 0 for e in out.id_user)


def test_items_without_features_do_not_enter_the_encoders(data_dir):
    _, (train_data, _, _), model, _ = build(data_dir, name="holes", variant="released", allow_missing_features=True)
    model.eval()
    dataset = train_data._dataset
    missing = [dataset.token2id(dataset.iid_field, f"i{i}") for i in (3, 4, 5)]
    for name in model.modality_names:
        encoded = model.encode_features(name)
        assert encoded[missing].abs().max() == 0 and encoded[0].abs().max() == 0  # not the bias
        present = model.feature_masks[name].squeeze(1).bool()
        torch.testing.assert_close(encoded[present], model.encoders[name](model.features[name][present]))
        assert present.sum() == model.n_items - 1 - len(missing)


def test_one_and_three_modalities(data_dir):
    for name, variant, used in (("one", "paper", ["image"]), ("three", "paper", ["audio", "image", "text"]),
                                ("three", "released", ["audio", "image"]), ("one", "released", ["image"])):
        _, (train_data, _, _), model, trainer = build(data_dir, name=name, variant=variant)
        assert model.modality_names == used
        trainer._train_epoch(train_data, 0)
        assert math.isfinite(trainer.epoch_log["loss"]) and math.isfinite(trainer.epoch_log["d_loss"])
        assert all(f"infonce_{m}" in trainer.epoch_log for m in used)
        assert all(torch.isfinite(p).all() for p in model.parameters())  # no 1e12 gradient leaks (spec #30)


def test_dataset_without_modalities_is_a_clear_error(data_dir):
    with pytest.raises(DataError, match="modality"):
        build(data_dir, name="bare")


def test_predictions_are_consistent_and_the_cache_follows_the_graphs(data_dir):
    _, _, model, _ = build(data_dir, variant="paper")
    model.eval()
    users = torch.tensor([1, 2, 3])
    full = model.full_sort_predict(Interaction({"user_id": users})).view(3, model.n_items)
    items = torch.tensor([4, 5, 6])
    pairwise = model.predict(Interaction({"user_id": users, "item_id": items}))
    torch.testing.assert_close(full[torch.arange(3), items], pairwise)
    empty_graphs(model)  # graphs changed: cached embeddings must not be reused
    after = model.full_sort_predict(Interaction({"user_id": users})).view(3, model.n_items)
    assert not torch.allclose(full, after)


def test_calculate_loss_points_to_the_trainer(released):
    with pytest.raises(NotImplementedError, match="MMSSLTrainer"):
        released[2].calculate_loss(None)
