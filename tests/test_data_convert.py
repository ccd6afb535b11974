"""Converters: HKUDS and MMRec folders -> RecBole atomic files, atomically, with clear errors."""

import logging
import os

import numpy as np
import pytest

from recbole_mmssl.data.atomic_io import read_feature_file
from recbole_mmssl.data.convert import convert, main
from recbole_mmssl.errors import DataError
from recbole_mmssl.data.ownership import MARKER
from tests._data_util import TRAIN, features, folder_snapshot, make_hkuds, make_mmrec


def _inter_rows(path):
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "user_id:token\titem_id:token"
    return [tuple(line.split("\t")) for line in lines[1:]]


def test_hkuds_writes_split_files_and_features_by_item_token(tmp_path):
    image, audio = features(dim=3, seed=1), features(dim=2, seed=2)
    src = make_hkuds(tmp_path / "src", feats={"image": image, "audio": audio})
    summary = convert("hkuds", src, "toy", tmp_path / "out", progress=False)
    folder = tmp_path / "out" / "toy"
    assert sorted(os.listdir(folder)) == [MARKER, "toy.audio_feat", "toy.image_feat", "toy.test.inter",
                                          "toy.train.inter", "toy.valid.inter"]
    assert _inter_rows(folder / "toy.train.inter") == [
        (u, str(i)) for u, items in TRAIN.items() for i in items]
    assert _inter_rows(folder / "toy.valid.inter") == [("0", "3"), ("2", "1")]
    modality, tokens, feats, _ = read_feature_file(folder / "toy.image_feat")
    assert modality == "image" and tokens == [str(i) for i in range(6)]
    assert np.array_equal(feats, image)
    assert summary == {"folder": str(folder), "users": 5, "items": 6,
                       "interactions": {"train": 9, "valid": 2, "test": 3},
                       "modalities": {"audio": 2, "image": 3}}


def test_modalities_option_selects_and_orders(tmp_path):
    src = make_hkuds(tmp_path / "src", feats={"image": features(), "audio": features()})
    summary = convert("hkuds", src, "toy", tmp_path / "out", modalities=["image"], progress=False)
    assert list(summary["modalities"]) == ["image"]
    assert not (tmp_path / "out" / "toy" / "toy.audio_feat").exists()
    with pytest.raises(DataError, match=r"(?s)text_feat\.npy.*--modalities asks for \['text'\].*"
                                        r"found \['audio_feat\.npy', 'image_feat\.npy'\]"):
        convert("hkuds", src, "toy", tmp_path / "out", modalities=["image", "text"], progress=False)


def test_json_only_source_gives_interactions_only_with_a_note(tmp_path, caplog):
    src = make_hkuds(tmp_path / "src")
    with caplog.at_level(logging.INFO):
        summary = convert("hkuds", src, "toy", tmp_path / "out", progress=False)
    assert summary["modalities"] == {}
    assert "No *_feat.npy" in caplog.text and "interactions only" in caplog.text
    assert sorted(os.listdir(tmp_path / "out" / "toy")) == [
        MARKER, "toy.test.inter", "toy.train.inter", "toy.valid.inter"]


def test_users_and_items_missing_from_train_are_kept_with_a_counted_warning(tmp_path, caplog):
    src = make_hkuds(tmp_path / "src")
    with caplog.at_level(logging.WARNING):
        convert("hkuds", src, "toy", tmp_path / "out", progress=False)
    assert "1 user(s) and 1 item(s) of the valid/test splits" in caplog.text
    assert ("4", "5") in _inter_rows(tmp_path / "out" / "toy" / "toy.test.inter")


def test_mmrec_layout_splits_by_x_label(tmp_path):
    rows = [(0, 0, 0), (0, 1, 0), (1, 2, 0), (1, 1, 1), (2, 0, 2), (2, 2, 0)]
    image = features(n_items=3)
    src = make_mmrec(tmp_path / "src", "baby", rows, feats={"image": image})
    summary = convert("mmrec", src, "amazon-baby", tmp_path / "out", progress=False)
    folder = tmp_path / "out" / "amazon-baby"
    assert _inter_rows(folder / "amazon-baby.train.inter") == [("0", "0"), ("0", "1"), ("1", "2"),
                                                               ("2", "2")]
    assert _inter_rows(folder / "amazon-baby.valid.inter") == [("1", "1")]
    assert _inter_rows(folder / "amazon-baby.test.inter") == [("2", "0")]
    assert summary["interactions"] == {"train": 4, "valid": 1, "test": 1}
    assert np.array_equal(read_feature_file(folder / "amazon-baby.image_feat")[2], image)


def test_mmrec_bad_columns_and_labels(tmp_path):
    src = make_mmrec(tmp_path / "a", "x", [(0, 0, 0)], header="user\titemID\tx_label")
    with pytest.raises(DataError, match=r"(?s)x\.inter: missing column\(s\) \['userID'\].*fix: "
                                        r"MMRec's \.inter is a TSV"):
        convert("mmrec", src, "x", tmp_path / "out")
    src = make_mmrec(tmp_path / "b", "x", [(0, 0, 0), (0, 1, 5)])
    with pytest.raises(DataError, match=r"1 row\(s\) have an x_label other than 0/1/2, e\.g\. '5' "
                                        r"\(line 3\)"):
        convert("mmrec", src, "x", tmp_path / "out")


@pytest.mark.parametrize("n_rows, relation", [(5, "fewer"), (7, "more")])
def test_npy_rows_must_match_the_items(tmp_path, n_rows, relation):
    src = make_hkuds(tmp_path / "src", feats={"image": features(n_items=n_rows)})
    with pytest.raises(DataError, match=rf"(?s)image_feat\.npy: {n_rows} feature rows, {relation} "
                                        rf"than the 6 items.*fix: use the \.npy that belongs"):
        convert("hkuds", src, "toy", tmp_path / "out", progress=False)


def test_npy_with_nan_names_rows_and_first_item(tmp_path):
    image = features()
    image[2, 1] = np.nan
    image[4, 0] = np.inf
    src = make_hkuds(tmp_path / "src", feats={"image": image})
    with pytest.raises(DataError, match=r"(?s)image_feat\.npy: 2 feature row\(s\) contain NaN or "
                                        r"inf; the first is item '2'.*fix: replace the NaN/inf rows"):
        convert("hkuds", src, "toy", tmp_path / "out", progress=False)


def test_npy_must_be_2d(tmp_path):
    src = make_hkuds(tmp_path / "src", feats={"image": np.zeros((6, 2, 2), dtype=np.float32)})
    with pytest.raises(DataError, match=r"image_feat\.npy: feature array is 3-D with shape "
                                        r"\(6, 2, 2\), expected 2-D"):
        convert("hkuds", src, "toy", tmp_path / "out", progress=False)


def test_empty_split_is_refused(tmp_path):
    src = make_hkuds(tmp_path / "src", test={"1": []})
    with pytest.raises(DataError, match=r"(?s)test\.json: the 'test' split has no interactions.*"
                                        r"fix: every split needs interactions"):
        convert("hkuds", src, "toy", tmp_path / "out", progress=False)


@pytest.mark.parametrize("content, found", [
    ("[[0, 1], [2]]", r"found a JSON list, not an object of users"),
    ('{"0": {"items": [1]}}', r"user '0' maps to a dict"),
    ('{"0": [1, "2"]}', r"user '0' has a non-integer or negative item id \"2\""),
    ('{"0": [1,', r"not valid JSON"),
])
def test_json_that_is_not_users_to_item_lists(tmp_path, content, found):
    src = make_hkuds(tmp_path / "src", val=content)
    with pytest.raises(DataError, match=rf"(?s)val\.json: {found}.*fix: the file must be one JSON "
                                        rf"object"):
        convert("hkuds", src, "toy", tmp_path / "out", progress=False)


def test_failed_conversion_leaves_existing_dataset_byte_identical(tmp_path, monkeypatch):
    good = make_hkuds(tmp_path / "good", feats={"image": features()})
    convert("hkuds", good, "toy", tmp_path / "out", progress=False)
    before = folder_snapshot(tmp_path / "out")
    bad_rows = features()
    bad_rows[5, 0] = np.nan  # rejected while reading the sources
    with pytest.raises(DataError):
        convert("hkuds", make_hkuds(tmp_path / "bad", feats={"image": bad_rows}), "toy",
                tmp_path / "out", progress=False)
    assert folder_snapshot(tmp_path / "out") == before

    def disk_full(*args, **kwargs):  # fails after the interaction files were written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("recbole_mmssl.data.convert.write_feature_file", disk_full)
    other = make_hkuds(tmp_path / "other", train={"0": [0, 1], "1": [2, 3, 4]},
                       feats={"image": features()})
    with pytest.raises(OSError, match="No space left"):
        convert("hkuds", other, "toy", tmp_path / "out", progress=False)
    assert folder_snapshot(tmp_path / "out") == before
    assert sorted(os.listdir(tmp_path / "out")) == ["toy"]  # no temporary folder left behind


def test_successful_conversion_replaces_the_old_dataset(tmp_path):
    convert("hkuds", make_hkuds(tmp_path / "a", feats={"image": features()}), "toy",
            tmp_path / "out", progress=False)
    convert("hkuds", make_hkuds(tmp_path / "b", feats={"text": features()}), "toy",
            tmp_path / "out", progress=False)
    assert sorted(os.listdir(tmp_path / "out")) == ["toy"]
    assert "toy.text_feat" in os.listdir(tmp_path / "out" / "toy")
    assert "toy.image_feat" not in os.listdir(tmp_path / "out" / "toy")


def test_cli_prints_summary_and_returns_2_on_bad_input(tmp_path, capsys):
    src = make_hkuds(tmp_path / "src", feats={"image": features()})
    assert main(["hkuds", src, "--name", "toy", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "5 users x 6 items; interactions: train 9, valid 2, test 3; modalities: image 3-d" \
        in capsys.readouterr().out
    assert main(["hkuds", str(tmp_path / "nowhere"), "--name", "toy", "--out", str(tmp_path)]) == 2
    assert "source folder not found" in capsys.readouterr().err


def test_mmrec_empty_split_names_the_inter_file(tmp_path):
    src = make_mmrec(tmp_path / "src", "baby", [(0, 0, 0), (1, 1, 1)])  # no x_label 2
    with pytest.raises(DataError, match=r"baby\.inter: the 'test' split has no interactions"):
        convert("mmrec", src, "baby", tmp_path / "out")


def test_user_token_with_a_tab_is_refused(tmp_path):
    src = make_hkuds(tmp_path / "src", train={"0": [0, 1, 2, 5], "a\tb": [3, 4]})
    with pytest.raises(DataError, match=r"train\.json: 1 user token\(s\) contain a tab or "
                                        r"line break, e\.g\. 'a\\tb'"):
        convert("hkuds", src, "toy", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written
