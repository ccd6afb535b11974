"""A command writes only into paths it was told to write, and replaces only what it made itself.

Each test sets up what a user already has (a source folder, a converted dataset with features added
later, a copied checkpoint, a users file), runs the command the way a user would, and checks that
what the command did not make is byte-identical afterwards.
"""

import os
import shutil
import sys

import numpy as np
import pytest

from recbole_mmssl import recommend
from recbole_mmssl.checkpoint import last_checkpoint_path, load_checkpoint
from recbole_mmssl.data import convert
from recbole_mmssl.data.atomic_io import write_feature_file
from recbole_mmssl.data.ownership import MARKER
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._data_util import features, folder_snapshot, make_hkuds
from tests._lead_util import tiny_config, write_tiny_dataset


@pytest.fixture(autouse=True)
def in_tmp(monkeypatch, tmp_path):
    """No command line of pytest's, and RecBole's log/ and saved/ folders inside the test's folder."""
    monkeypatch.setattr(sys, "argv", ["pytest"])
    monkeypatch.chdir(tmp_path)


def _convert(src, name, out, capsys):
    code = convert.main(["hkuds", str(src), "--name", name, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------- convert

def test_convert_refuses_a_source_folder_that_sits_at_out_name(tmp_path, capsys):
    victim = make_hkuds(tmp_path / "out" / "victim", feats={"image": features()})
    before = folder_snapshot(victim)
    code, errors = _convert(victim, "victim", tmp_path / "out", capsys)
    assert code == 2 and "is the source folder SRC" in errors[0]
    assert folder_snapshot(victim) == before


@pytest.mark.parametrize("where", ["inside", "contains"])
def test_convert_refuses_an_output_that_overlaps_the_source(tmp_path, capsys, where):
    if where == "inside":  # OUT/NAME under SRC
        src = make_hkuds(tmp_path / "src", feats={"image": features()})
        out = tmp_path / "src"
    else:  # SRC under OUT/NAME
        src = make_hkuds(tmp_path / "out" / "toy" / "raw", feats={"image": features()})
        out = tmp_path / "out"
    before = folder_snapshot(tmp_path)
    code, errors = _convert(src, "toy", out, capsys)
    assert code == 2 and ("lies inside the source" if where == "inside" else "contains the source") in errors[0]
    assert folder_snapshot(tmp_path) == before


def test_features_added_after_a_conversion_survive_converting_again(tmp_path, capsys):
    """The README's workflow: convert, encode text into OUT/NAME/NAME.text_feat, convert again."""
    src = make_hkuds(tmp_path / "src", feats={"image": features()})
    assert _convert(src, "toy", tmp_path / "out", capsys)[0] == 0
    folder = tmp_path / "out" / "toy"
    write_feature_file(str(folder / "toy.text_feat"), [str(i) for i in range(6)], features(dim=4), "text",
                       progress=False)
    text = (folder / "toy.text_feat").read_bytes()
    np.save(os.path.join(src, "image_feat.npy"), features(seed=5))  # the source changed: convert again
    assert _convert(src, "toy", tmp_path / "out", capsys)[0] == 0
    assert (folder / "toy.text_feat").read_bytes() == text
    assert sorted(os.listdir(tmp_path / "out")) == ["toy"]
    assert MARKER in os.listdir(folder) and "toy.image_feat" in os.listdir(folder)


def test_convert_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    folder = tmp_path / "out" / "toy"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    src = make_hkuds(tmp_path / "src", feats={"image": features()})
    code, errors = _convert(src, "toy", tmp_path / "out", capsys)
    assert code == 2 and "holds files the converter did not write (notes.txt)" in errors[0]
    assert os.listdir(folder) == ["notes.txt"]


def test_convert_refuses_to_replace_a_file_changed_since_it_wrote_it(tmp_path, capsys):
    src = make_hkuds(tmp_path / "src", feats={"image": features()})
    _convert(src, "toy", tmp_path / "out", capsys)
    edited = tmp_path / "out" / "toy" / "toy.train.inter"
    edited.write_text(edited.read_text() + "9\t1\n")
    before = folder_snapshot(tmp_path / "out")
    code, errors = _convert(src, "toy", tmp_path / "out", capsys)
    assert code == 2 and errors[0].startswith(f"error: {edited}: was changed after the converter wrote it")
    assert folder_snapshot(tmp_path / "out") == before


def test_convert_refuses_a_users_file_with_the_name_of_an_output(tmp_path, capsys):
    src = make_hkuds(tmp_path / "src")  # interactions only
    _convert(src, "toy", tmp_path / "out", capsys)
    mine = tmp_path / "out" / "toy" / "toy.image_feat"
    write_feature_file(str(mine), [str(i) for i in range(6)], features(), "image", progress=False)
    np.save(os.path.join(src, "image_feat.npy"), features(seed=3))  # now the source has an image modality
    code, errors = _convert(src, "toy", tmp_path / "out", capsys)
    assert code == 2 and errors[0].startswith(f"error: {mine}: was not written by the converter")


# ----------------------------------------------------------------------------- resume

def test_resume_of_a_copied_checkpoint_writes_beside_the_copy(tmp_path):
    """--resume=copy/X.last.pth --checkpoint_dir=copy: the original run's files stay as they were."""
    write_tiny_dataset(tmp_path)
    first = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=2))
    original = tmp_path / "saved"
    before = folder_snapshot(original)
    copy = tmp_path / "mycopy"
    copy.mkdir()
    last = shutil.copy(last_checkpoint_path(first["saved_model_file"]), copy)
    resumed = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=4, checkpoint_dir=str(copy)),
                                resume=last)
    assert folder_snapshot(original) == before
    assert resumed["saved_model_file"] == str(copy / os.path.basename(first["saved_model_file"]))
    assert load_checkpoint(last)["epoch"] == 3
    assert load_checkpoint(resumed["saved_model_file"])["best_model_file"] == resumed["saved_model_file"]


def test_resume_without_checkpoint_dir_writes_beside_the_resume_file(tmp_path):
    write_tiny_dataset(tmp_path)
    first = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=1))
    before = folder_snapshot(tmp_path / "saved")
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    for path in (first["saved_model_file"], last_checkpoint_path(first["saved_model_file"])):
        shutil.copy(path, copy)
    config = {k: v for k, v in tiny_config(tmp_path, epochs=2).items() if k != "checkpoint_dir"}
    resumed = run_recbole_mmssl("BPR", "tiny", config_dict=config,
                                resume=str(copy / os.path.basename(last_checkpoint_path(first["saved_model_file"]))))
    assert folder_snapshot(tmp_path / "saved") == before
    assert os.path.dirname(resumed["saved_model_file"]) == str(copy)


def test_resume_refuses_when_the_best_epoch_is_nowhere(tmp_path):
    write_tiny_dataset(tmp_path)
    first = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=1))
    copy = tmp_path / "mycopy"
    copy.mkdir()
    last = shutil.copy(last_checkpoint_path(first["saved_model_file"]), copy)
    os.unlink(first["saved_model_file"])
    with pytest.raises(Exception, match="the best epoch so far of this run"):
        run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=2, checkpoint_dir=str(copy)),
                          resume=last)
    assert os.listdir(copy) == [os.path.basename(last)]


# ----------------------------------------------------------------------------- recommend

def test_recommend_refuses_to_write_over_its_users_file(tmp_path, capsys):
    write_tiny_dataset(tmp_path)
    result = run_recbole_mmssl("BPR", "tiny", config_dict=tiny_config(tmp_path, epochs=1))
    users = tmp_path / "users.csv"
    users.write_text("u1\nu2\n")
    code = recommend.main([f"--checkpoint={result['saved_model_file']}", f"--users={users}", f"--out={users}"])
    err = capsys.readouterr().err
    assert code == 2 and f"error: {users}: --out is the same file as --users" in err
    assert users.read_text() == "u1\nu2\n"
