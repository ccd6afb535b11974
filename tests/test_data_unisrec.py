"""The unisrec converter: UniSRec folders -> atomic files for sequential models, and its refusals."""

import json
import os

import numpy as np
import pytest

from recbole_mmssl.data import convert
from recbole_mmssl.data.atomic_io import read_feature_file
from recbole_mmssl.data.features import encode_texts
from recbole_mmssl.data.unisrec import amazon_attributes, convert_unisrec, word_drop
from tests._data_util import folder_snapshot
from tests._seq_util import HEADER, write_unisrec_source


def _rows(path):
    lines = path.read_text().splitlines()
    assert lines[0] + "\n" == HEADER
    return [tuple(line.split("\t")) for line in lines[1:]]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("unisrec")
    src, item_index, arrays = write_unisrec_source(root / "src")
    summary = convert_unisrec([str(src)], "toy", str(root / "out"), word_drop_ratio=0.5, progress=False)
    return root, src, item_index, arrays, summary


def test_rows_keep_the_split_and_name_the_original_ids(converted):
    root, _, _, _, summary = converted
    folder = root / "out" / "toy"
    assert _rows(folder / "toy.test.inter") == [("A1", "B1 B2 B3", "B4"), ("A2", "B2 B5 B3 B6", "B1"),
                                               ("A3", "B6 B4 B5", "B2")]
    assert _rows(folder / "toy.valid.inter")[1] == ("A2", "B2 B5 B3", "B6")
    assert _rows(folder / "toy.train.inter") == [("A1", "B1", "B2"), ("A2", "B2", "B5"), ("A2", "B2 B5", "B3"),
                                                ("A3", "B6", "B4")]
    assert summary["rows"] == {"train": 4, "valid": 3, "test": 3} and summary["users"] == 3 and summary["items"] == 6
    assert json.loads((folder / "toy.convert.json").read_text())["items"] == 6


def test_texts_are_encoded_offline_and_feat_files_become_modalities(converted):
    root, src, item_index, arrays, summary = converted
    folder = root / "out" / "toy"
    assert summary["modalities"] == {"text": 384, "text_aug": 384, "clip_text": 4, "image": 3}
    modality, tokens, text, _ = read_feature_file(folder / "toy.text_feat")
    texts = dict(line.split("\t", 1) for line in (src / "Toy.text").read_text().splitlines()[1:])
    expected = encode_texts([texts[t].strip() for t in tokens], progress=False)
    assert modality == "text" and np.allclose(text, expected, atol=1e-6)
    _, tokens, image, _ = read_feature_file(folder / "toy.image_feat")
    assert np.array_equal(image, arrays["feat3CLS"][[item_index[t] for t in tokens]])
    _, _, aug, _ = read_feature_file(folder / "toy.text_aug_feat")
    assert not np.allclose(aug, text)  # half of the words dropped before encoding


def test_item_attributes_from_the_amazon_text_layout(converted):
    root = converted[0]
    lines = (root / "out" / "toy" / "toy.item").read_text().splitlines()
    assert lines[0] == "item_id:token\tcategory:token\tbrand:token"
    assert lines[1] == "B1\tIndustrial & Scientific Tools Cat0\tBrand0"
    assert amazon_attributes("A title. With a dot. Cats here. Acme. ") == ("Cats here", "Acme")
    assert amazon_attributes("no layout") is None


def test_word_drop_is_seeded():
    texts = ["one two three four five six", "seven eight"]
    assert word_drop(texts, 0.5, 1) == word_drop(texts, 0.5, 1)
    assert word_drop(texts, 0.0001, 1) == texts


def test_several_folders_merge_with_domain_prefixes(tmp_path):
    a, _, _ = write_unisrec_source(tmp_path / "a", feats=())
    b, _, _ = write_unisrec_source(tmp_path / "b", prefix="Other", feats=())
    summary = convert_unisrec([str(a), str(b)], "both", str(tmp_path / "out"), progress=False)
    rows = _rows(tmp_path / "out" / "both" / "both.test.inter")
    assert rows[0] == ("0-A1", "0-B1 0-B2 0-B3", "0-B4") and rows[3] == ("1-A1", "1-B1 1-B2 1-B3", "1-B4")
    assert summary["items"] == 12 and summary["users"] == 6


def test_the_command_converts_and_prints_a_summary(tmp_path, capsys):
    src, _, _ = write_unisrec_source(tmp_path / "src", feats=())
    assert convert.main(["unisrec", str(src), "--name", "toy", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "3 users x 6 items; rows: train 4, valid 3, test 3; modalities: text 384-d" in capsys.readouterr().out
    # a second conversion replaces the converter's own folder
    assert convert.main(["unisrec", str(src), "--name", "toy", "--out", str(tmp_path / "out"), "--no-progress"]) == 0


def _run(args, capsys):
    code = convert.main(args)
    return code, capsys.readouterr().err


def test_a_folder_the_converter_did_not_write_is_never_replaced(tmp_path, capsys):
    src, _, _ = write_unisrec_source(tmp_path / "data" / "toy", prefix="toy", feats=())
    before = folder_snapshot(tmp_path / "data")
    code, err = _run(["unisrec", str(src), "--name", "toy", "--out", str(tmp_path / "data")], capsys)
    assert code == 2 and "was not written by this converter" in err and "fix: pass another --out" in err
    assert folder_snapshot(tmp_path / "data") == before


@pytest.mark.parametrize("damage, expected", [
    (lambda s: (s / "Toy.train.inter").write_text("user\titems\ttarget\n0\t1\t2\n"), "Toy.train.inter line 1: header"),
    (lambda s: (s / "Toy.valid.inter").write_text(HEADER + "0\t1 99\t2\n"), "names item '99', which is not an index"),
    (lambda s: (s / "Toy.test.inter").write_text(HEADER + "0\t\t2\n"), "the history (item_id_list) is empty"),
    (lambda s: (s / "Toy.item2index").write_text("B1\t0\nB2\t2\n"), "indices are not 0..1"),
    (lambda s: (s / "Toy.text").unlink(), "Toy.text: file not found"),
    (lambda s: (s / "Toy.feat1CLS").write_bytes(b"\0" * 10), "is not a whole number of float32 rows"),
    (lambda s: (s / "Toy.test.inter").rename(s / "Other.test.inter"), "Toy.test.inter: file not found"),
    (lambda s: (s / "Extra.train.inter").write_text(HEADER), "expected one UniSRec split set"),
])
def test_bad_sources_are_one_error_line_and_write_nothing(tmp_path, capsys, damage, expected):
    src, _, _ = write_unisrec_source(tmp_path / "src")
    damage(src)
    code, err = _run(["unisrec", str(src), "--name", "toy", "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_command_line_misuse_is_refused(tmp_path, capsys):
    src, _, _ = write_unisrec_source(tmp_path / "src", feats=())
    code, err = _run(["hkuds", str(src), str(src), "--name", "x", "--out", str(tmp_path)], capsys)
    assert code == 2 and "only unisrec merges several" in err
    code, err = _run(["unisrec", str(src), "--name", "x", "--out", str(tmp_path), "--word-drop", "1.5"], capsys)
    assert code == 2 and "--word-drop must be between 0 and 1" in err
    code, err = _run(["unisrec", str(tmp_path / "nowhere"), "--name", "x", "--out", str(tmp_path)], capsys)
    assert code == 2 and "source folder not found" in err
