"""MultimodalDataset: features aligned to RecBole's internal item ids, masks, and bad-input errors."""

import logging
import os

import numpy as np
import pytest
import torch

from recbole_mmssl.data.atomic_io import write_feature_file, write_inter_file
from recbole_mmssl.data.convert import convert
from recbole_mmssl.data.dataset import MultimodalDataset, require_modalities
from recbole_mmssl.errors import DataError
from tests._data_util import features, make_hkuds, recbole_config


@pytest.fixture
def toy(tmp_path):
    """Converted toy dataset with image (3-d) and audio (2-d); returns (data_path, image, audio)."""
    image, audio = features(dim=3, seed=1), features(dim=2, seed=2)
    src = make_hkuds(tmp_path / "src", feats={"image": image, "audio": audio})
    convert("hkuds", src, "toy", tmp_path / "data", progress=False)
    return tmp_path / "data", image, audio


def _feature_rows_by_token(dataset, name, tokens):
    ids = dataset.token2id(dataset.iid_field, tokens)
    return dataset.modality_features[name][ids].numpy()


def test_features_are_aligned_to_internal_item_ids(toy):
    data_path, image, audio = toy
    ds = MultimodalDataset(recbole_config(data_path, "toy"))
    assert ds.modality_names == ["audio", "image"]  # all files, sorted by name
    tokens = [str(i) for i in range(6)]
    assert np.array_equal(_feature_rows_by_token(ds, "image", tokens), image)
    assert np.array_equal(_feature_rows_by_token(ds, "audio", tokens), audio)
    for name, dim in (("image", 3), ("audio", 2)):
        assert ds.modality_features[name].shape == (ds.item_num, dim) == (7, dim)
        assert ds.modality_features[name].dtype == torch.float32
        assert not ds.modality_features[name][0].any()  # padding row
        assert ds.modality_masks[name].tolist() == [False] + [True] * 6


def test_config_modalities_choose_the_order(toy):
    ds = MultimodalDataset(recbole_config(toy[0], "toy", modalities=["image", "audio"]))
    assert ds.modality_names == ["image", "audio"]
    assert MultimodalDataset(recbole_config(toy[0], "toy", modalities=[])).modality_names == []


def test_features_survive_the_split_into_train_valid_test(toy):
    ds = MultimodalDataset(recbole_config(toy[0], "toy"))
    train, valid, test = ds.build()
    assert [len(train), len(valid), len(test)] == [9, 2, 3]
    for part in (train, valid, test):
        assert part.modality_names == ["audio", "image"]
        assert part.modality_features["image"] is ds.modality_features["image"]
    assert train.inter_matrix(form="csr").shape == (ds.user_num, ds.item_num)


def test_users_and_items_only_in_valid_or_test_are_kept_and_counted(toy, caplog):
    with caplog.at_level(logging.WARNING):
        ds = MultimodalDataset(recbole_config(toy[0], "toy"))
    assert ds.user_num == 6 and ds.item_num == 7  # 5 users / 6 items + padding
    assert "1 user(s) of the valid/test files of toy do not occur in its train file (e.g. user '4')" \
        in caplog.text
    assert "1 item(s) of the valid/test files of toy do not occur in its train file (e.g. item '5')" \
        in caplog.text


def test_config_modality_without_file_lists_the_files_found(toy):
    with pytest.raises(DataError, match=r"(?s)toy\.text_feat: config `modalities` names \['text'\] "
                                        r"but there is no such feature file; feature files found: "
                                        r"\['toy\.audio_feat', 'toy\.image_feat'\].*fix: set "
                                        r"`modalities`"):
        MultimodalDataset(recbole_config(toy[0], "toy", modalities=["image", "text"]))


def test_feature_token_that_is_not_an_item_is_an_error(toy):
    data_path = toy[0]
    write_feature_file(str(data_path / "toy" / "toy.extra_feat"), [str(i) for i in range(6)] + ["99"],
                       features(n_items=7), "extra", progress=False)
    with pytest.raises(DataError, match=r"(?s)toy\.extra_feat: 1 feature row\(s\) belong to items "
                                        r"that are not in the interactions of toy, e\.g\. item '99'"
                                        r".*fix: write feature rows only"):
        MultimodalDataset(recbole_config(data_path, "toy"))


def test_items_without_feature_row_error_by_default_and_are_masked_when_allowed(toy):
    data_path = toy[0]
    partial = features(n_items=4, seed=5)
    write_feature_file(str(data_path / "toy" / "toy.text_feat"), ["0", "1", "2", "3"], partial,
                       "text", progress=False)
    with pytest.raises(DataError, match=r"(?s)toy\.text_feat: 2 of 6 items have no feature row, "
                                        r"e\.g\. item '4'.*fix: .*`allow_missing_features: True`"):
        MultimodalDataset(recbole_config(data_path, "toy"))
    ds = MultimodalDataset(recbole_config(data_path, "toy", allow_missing_features=True))
    mask = ds.modality_masks["text"]
    ids_4_5 = ds.token2id("item_id", ["4", "5"])
    assert not mask[ids_4_5].any() and int(mask.sum()) == 4
    assert not ds.modality_features["text"][ids_4_5].any()
    assert np.array_equal(_feature_rows_by_token(ds, "text", ["0", "1", "2", "3"]), partial)
    assert ds.inter_num == 14  # the featureless items keep their interactions


def test_ragged_atomic_feature_file_is_reported_by_the_dataset(toy):
    path = toy[0] / "toy" / "toy.image_feat"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0]  # drop the last value of item '2'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"toy\.image_feat: rows have different lengths: 5 of 6 "
                                        r"rows have 3 values, but item '2' has 2"):
        MultimodalDataset(recbole_config(toy[0], "toy"))


def test_header_modality_must_match_the_file_name(toy):
    folder = toy[0] / "toy"
    os.rename(folder / "toy.audio_feat", folder / "toy.sound_feat")
    with pytest.raises(DataError, match=r"toy\.sound_feat: the header declares modality 'audio' "
                                        r"but the file name says 'sound'"):
        MultimodalDataset(recbole_config(toy[0], "toy"))


def test_empty_split_file_is_an_error(toy):
    write_inter_file(str(toy[0] / "toy" / "toy.test.inter"), [], [])
    with pytest.raises(DataError, match=r"(?s)toy\.test\.inter: the 'test' split has no "
                                        r"interactions.*fix: every split"):
        MultimodalDataset(recbole_config(toy[0], "toy"))


def test_single_inter_file_split_by_recbole_keeps_features_of_filtered_items_out(tmp_path):
    folder = tmp_path / "single"
    folder.mkdir()
    users = [str(u) for u in range(20) for _ in range(5)]
    items = [str((u * 7 + k) % 12) for u in range(20) for k in range(5)]
    write_inter_file(str(folder / "single.inter"), users + ["20"], items + ["12"])
    image = features(n_items=13, dim=4)
    write_feature_file(str(folder / "single.image_feat"), [str(i) for i in range(13)], image,
                       "image", progress=False)
    config = recbole_config(tmp_path, "single", benchmark=False,
                            user_inter_num_interval="[2,inf)")  # drops user 20 and so item 12
    ds = MultimodalDataset(config)
    assert ds.item_num == 13 and "12" not in ds.field2token_id["item_id"]
    tokens = [str(i) for i in range(12)]
    assert np.array_equal(_feature_rows_by_token(ds, "image", tokens), image[:12])
    train, valid, test = ds.build()
    assert len(train) + len(valid) + len(test) == 100
    assert train.modality_names == ["image"]


def test_require_modalities_names_the_folder_and_the_fix(tmp_path):
    src = make_hkuds(tmp_path / "src")
    convert("hkuds", src, "baby", tmp_path / "data", progress=False)
    ds = MultimodalDataset(recbole_config(tmp_path / "data", "baby"))
    assert ds.modality_names == []
    with pytest.raises(DataError, match=r"(?s)data/baby: dataset 'baby' has 0 modality feature "
                                        r"file\(s\) \(none: it is interactions-only\), but at least 1 "
                                        r"are needed.*fix: features are missing: convert a source"):
        require_modalities(ds, n_min=1)
    require_modalities(ds, n_min=0)


def test_interactions_only_folder_with_requested_modalities_says_what_runs_on_it(tmp_path):
    src = make_hkuds(tmp_path / "src")
    convert("hkuds", src, "baby", tmp_path / "data", progress=False)
    with pytest.raises(DataError, match=r"(?s)data/baby: no modality feature file .*baby holds interactions only.*"
                                        r"fix: convert a source with features.*--model=LightGCN\) run on this"):
        MultimodalDataset(recbole_config(tmp_path / "data", "baby", modalities=["image", "text"]))


def test_the_dataset_hands_models_device_tensors_and_cached_knn_graphs(toy):
    """What a multimodal model gets from the dataset: its features and masks as tensors on the model's
    device, and each modality's k-NN graph, built once and cached beside the feature files."""
    from recbole_mmssl.data.knn import cosine_topk

    data_path, image, _ = toy
    ds = MultimodalDataset(recbole_config(data_path, "toy"))
    names, feats, masks = ds.modality_tensors(torch.device("cpu"))
    assert names == ["audio", "image"]
    assert torch.equal(feats["image"], ds.modality_features["image"]) and masks["image"].dtype == torch.bool
    rows, cols, cosine = ds.modality_knn("image", 2, torch.device("cpu"))
    expected = cosine_topk(feats["image"], masks["image"], 2)
    assert all(torch.equal(a, b) for a, b in zip((rows, cols, cosine), expected))
    assert (data_path / "toy" / ".toy.image_feat.knn2.pt").is_file()

    empty = MultimodalDataset(recbole_config(data_path, "toy", modalities=[]))
    with pytest.raises(DataError, match="has 0 modality feature file"):
        empty.modality_tensors(torch.device("cpu"))


def test_a_model_given_a_dataset_without_modality_features_says_which_dataset_to_build(tmp_path):
    from types import SimpleNamespace

    from recbole_mmssl.model.common.inputs import modality_features

    plain = SimpleNamespace(dataset_path=str(tmp_path))  # what a plain RecBole Dataset offers here: no modality inputs
    with pytest.raises(DataError, match=r"(?s)dataset is a SimpleNamespace, which carries no modality features"
                                        r".*fix: build it with recbole_mmssl.data.dataset.MultimodalDataset"):
        modality_features(plain, torch.device("cpu"))
