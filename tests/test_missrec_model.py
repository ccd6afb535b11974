"""MISSRec: shapes and masking, the authors' regulariser, the fusion formula, inductive scoring, losses."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmssl.model.missrec import augment, fusion
from recbole_mmssl.registry import get_model, get_trainer
from tests._seq_util import NEW_ITEM, build_missrec, first_batch, item_id, no_dropout, write_seq_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("missrec")
    _, features = write_seq_dataset(root)
    return root, features


def test_registry_finds_missrec_and_its_trainer():
    assert get_model("MISSRec").__name__ == "MISSRec"
    assert get_trainer(None, "MISSRec").__name__ == "MISSRecTrainer"


def test_shapes_and_unit_user_vectors(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root)
    batch = first_batch(train)
    model.eval()
    with torch.no_grad():
        seq_output, regulariser = model.encode(batch["item_id_list"], batch["item_length"])
        scores = model.full_sort_predict(batch)
    assert seq_output.shape == (len(batch), 16) and regulariser.dim() == 0
    assert torch.allclose(seq_output.norm(dim=1), torch.ones(len(batch)))
    assert scores.shape == (len(batch), model.n_items) and torch.isfinite(scores).all()
    assert model.modality_names == ["text", "image"] and model.aug_names == {"text": "text_aug"}
    assert model.n_interests == math.ceil(2 * (model.n_items - 1) * 0.5)
    assert model.interest_lookup[:, 1:].min() >= 1 and model.interest_lookup[:, 0].eq(0).all()


def test_padding_and_other_rows_do_not_change_a_users_vector(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root)
    model.eval()
    batch = first_batch(train)
    seq, lengths = batch["item_id_list"], batch["item_length"]
    with torch.no_grad():
        together = model.forward(seq, lengths)
        wider = model.forward(F.pad(seq, (0, 7)), lengths)  # more padding columns
        alone = torch.cat([model.forward(seq[i:i + 1], lengths[i:i + 1]) for i in range(len(seq))])
        model.length_buckets = False
        one_padded_batch = model.forward(seq, lengths)
    for other in (wider, alone, one_padded_batch):
        assert torch.allclose(together, other, atol=1e-5)


def authors_regulariser(model, item_seq):
    """The authors' forward, literally: per-row torch.unique (a 0 kept where a row has padding),
    pad_sequence, the encoder over every slot, pooled = sum(memory x share of real slots)."""
    ids = model.interest_lookup[:, item_seq].permute(1, 0, 2).reshape(len(item_seq), -1)
    rows = [row.unique() for row in ids]
    tokens = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=0)
    mask = tokens == 0
    memory = model.trm_model.encoder(model.interest_centroids[tokens], src_key_padding_mask=mask)
    weight = (~mask).unsqueeze(-1).float().mean(1, keepdim=True)
    pooled = (memory * weight).sum(1)
    return (pooled * pooled).sum() / pooled.shape[1]


@pytest.mark.parametrize("buckets", [True, False])
def test_regulariser_is_the_authors_with_and_without_length_groups(data, buckets):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root, length_buckets=buckets)
    no_dropout(model).train()
    batch = first_batch(train)
    with torch.no_grad():
        _, regulariser = model.encode(batch["item_id_list"], batch["item_length"])
        expected = authors_regulariser(model, batch["item_id_list"])
    assert regulariser.item() == pytest.approx(expected.item(), rel=1e-4)


def test_fusion_formula_by_hand():
    seq = torch.tensor([[1.0, 0.0]])
    text, image = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]])  # cosines 1 and 0
    scores = fusion.modality_scores(seq, [text, image])
    assert scores.tolist() == [[[1.0, 0.0]]]
    alpha = torch.tensor(math.log(3.0))  # softmax(alpha x [1, 0]) = [3/4, 1/4]
    fused = fusion.fuse(scores, "dynamic_shared", alpha)
    assert fused.item() == pytest.approx(0.75)
    assert fusion.fuse(scores, "static").item() == pytest.approx(0.5)
    assert fusion.fuse(scores, "dynamic_shared", torch.tensor(0.0)).item() == pytest.approx(0.5)
    ids = torch.tensor([[1.0, 1.0]])  # cosine 1/sqrt(2)
    assert fusion.with_id_scores(fused, seq, ids).item() == pytest.approx((2 ** -0.5 + 2 * 0.75) / 3)
    per_item = fusion.fuse(scores, "dynamic_instance", torch.tensor([math.log(3.0)]))
    assert per_item.item() == pytest.approx(0.75)
    assert fusion.summed_scores(seq, [text, image]).item() == pytest.approx(2 / 13 ** 0.5)


def test_model_scores_follow_the_fusion_formula(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root)
    model.eval()
    with torch.no_grad():
        model.fusion_factor.fill_(1.7)
        batch = first_batch(train)
        seq_output = model.forward(batch["item_id_list"], batch["item_length"])
        text, image = model.adapted("text"), model.adapted("image")
        cos = torch.stack([seq_output @ F.normalize(v, dim=1).t() for v in (text, image)], -1)
        fused = (cos * torch.softmax(1.7 * cos, -1)).sum(-1)
        ids = seq_output @ F.normalize(model.item_embedding.weight, dim=1).t()
        expected = (ids + 2 * fused) / 3 / model.temperature
        assert torch.allclose(model.full_sort_predict(batch), expected, atol=1e-5)


@pytest.mark.parametrize("id_scoring", ["auto", "summed", "mixed"])
def test_one_modality_id_scoring_is_the_authors_sum_or_their_multimodal_mix(data, id_scoring):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root, modalities=["text"], id_scoring=id_scoring)
    model.eval()
    with torch.no_grad():
        batch = first_batch(train)
        seq_output = model.forward(batch["item_id_list"], batch["item_length"])
        text, ids = model.adapted("text"), model.item_embedding.weight
        if id_scoring == "mixed":
            cosine = (seq_output @ F.normalize(ids, dim=1).t() + 2 * seq_output @ F.normalize(text, dim=1).t()) / 3
        else:  # the authors' one-modality branch: one cosine against the summed vectors
            cosine = seq_output @ F.normalize(text + ids, dim=1).t()
        assert torch.allclose(model.full_sort_predict(batch), cosine / model.temperature, atol=1e-5)


def test_summed_id_scoring_with_two_modalities_sums_every_vector(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root, id_scoring="summed")
    model.eval()
    with torch.no_grad():
        batch = first_batch(train)
        seq_output = model.forward(batch["item_id_list"], batch["item_length"])
        total = model.adapted("text") + model.adapted("image") + model.item_embedding.weight
        expected = seq_output @ F.normalize(total, dim=1).t() / model.temperature
        assert torch.allclose(model.full_sort_predict(batch), expected, atol=1e-5)


def test_inductive_model_scores_an_item_never_seen_in_training_by_its_features(data):
    root, features = data
    _, (train, _, test), model, trainer = build_missrec(root, train_stage="inductive_ft", epochs=1)
    assert model.item_embedding is None
    trainer.fit(train, saved=False)
    dataset = train._dataset
    new = item_id(dataset, NEW_ITEM)
    trained_items = set(dataset.inter_feat["item_id"].tolist())
    for seq in dataset.inter_feat["item_id_list"]:
        trained_items.update(seq.tolist())
    assert new not in trained_items  # the item only occurs as a test target
    model.eval()
    batch = first_batch(test)[0]
    with torch.no_grad():
        seq_output = model.forward(batch["item_id_list"], batch["item_length"])
        raw = {m: torch.tensor(features[m][NEW_ITEM]).unsqueeze(0) for m in ("text", "image")}
        by_features = model.score_features(seq_output, raw)
        column = model.full_sort_predict(batch)[:, new : new + 1]
        assert torch.allclose(by_features, column, atol=1e-5)
        changed = {m: v * 0 + 1 for m, v in raw.items()}
        assert not torch.allclose(model.score_features(seq_output, changed), column)


def test_transductive_model_refuses_feature_only_scoring(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root)
    with pytest.raises(ValueError, match="inductive_ft"):
        model.score_features(torch.zeros(1, 16), {"text": torch.zeros(1, 8), "image": torch.zeros(1, 6)})


def test_fine_tuning_loss_falls(data):
    root, _ = data
    _, (train, _, _), model, trainer = build_missrec(root, learning_rate=0.01)
    losses = [float(trainer._train_epoch(train, epoch)) for epoch in range(5)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.95 * losses[0], losses


def test_one_modality_scores_against_the_normalised_sum(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root, modalities=["text"], train_stage="inductive_ft")
    assert model.fusion_factor is None
    model.eval()
    batch = first_batch(train)
    with torch.no_grad():
        seq_output = model.forward(batch["item_id_list"], batch["item_length"])
        expected = seq_output @ F.normalize(model.adapted("text"), dim=1).t() / model.temperature
        assert torch.allclose(model.full_sort_predict(batch), expected, atol=1e-5)


def test_item_drop_keeps_the_kept_items_in_order():
    torch.manual_seed(0)
    seq = torch.tensor([[4, 5, 6, 7, 8, 0, 0], [9, 3, 0, 0, 0, 0, 0]])
    out, lengths = augment.item_drop(seq, 0.5)
    for row, original, n in zip(out.tolist(), seq.tolist(), lengths.tolist()):
        kept = row[:n]
        assert kept[0] == original[0] and all(v != 0 for v in kept) and all(v == 0 for v in row[n:])
        positions = [original.index(v) for v in kept]
        assert positions == sorted(positions)
    assert augment.item_drop(seq, 0.0)[0].tolist() == seq.tolist()


def test_pretraining_loss_and_both_augmentations(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root, train_stage="pretrain")
    assert model.item_embedding is None
    batch = first_batch(train)
    seq, lengths = batch["item_id_list"], batch["item_length"]
    model.item_drop_coefficient = 1.0  # always item drop
    dropped, dropped_len, raw = model.augment(seq, lengths)
    assert raw is None and (dropped_len <= lengths).all()
    model.item_drop_coefficient = 0.0  # always word drop: the text takes its word-dropped twin somewhere
    same, same_len, raw = model.augment(seq, lengths)
    assert torch.equal(same, seq) and torch.equal(same_len, lengths) and set(raw) == {"text"}
    original, aug = model.feature("text")[seq], model.feature("text_aug")[seq]
    swapped = (raw["text"] == aug).all(-1) & ~(raw["text"] == original).all(-1)
    assert swapped.any() and ((raw["text"] == original).all(-1) | swapped).all()
    model.item_drop_coefficient = 0.9
    loss = model.calculate_loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.adapters["text"].weight.grad is not None


def test_evaluation_cache_is_dropped_when_training_resumes_or_weights_load(data):
    root, _ = data
    _, (train, _, _), model, _ = build_missrec(root)
    batch = first_batch(train)
    model.eval()
    with torch.no_grad():
        before = model.full_sort_predict(batch)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        model.adapters["text"].weight.mul_(2)
        model.train()
        model.eval()
        changed = model.full_sort_predict(batch)
        model.load_state_dict(state)
        assert not torch.allclose(changed, before)
        assert torch.allclose(model.full_sort_predict(batch), before)
