"""Recommendations out of a checkpoint: formats, excluded training items, unknown users."""

import csv
import json
import sys

import pytest

from recbole_mmssl import recommend
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._lead_util import tiny_config, write_tiny_dataset


@pytest.fixture(autouse=True)
def no_cli_args(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommend")
    folder = write_tiny_dataset(root)
    sys_argv, sys.argv = sys.argv, ["pytest"]
    try:
        result = run_recbole_mmssl("LightGCN", "tiny", config_dict=tiny_config(root, epochs=1))
    finally:
        sys.argv = sys_argv
    train = {}
    with open(folder / "tiny.train.inter") as f:
        next(f)
        for line in f:
            user, item = line.split()
            train.setdefault(user, set()).add(item)
    return result["saved_model_file"], train


def test_csv_has_topk_unseen_items_per_user_best_first(trained, tmp_path):
    checkpoint, train = trained
    out = tmp_path / "recs.csv"
    recommend.main([f"--checkpoint={checkpoint}", "--users=all", "--topk=5", f"--out={out}"])
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["user_id", "rank", "item_id", "score"]
    by_user = {}
    for row in rows:
        by_user.setdefault(row["user_id"], []).append(row)
    assert len(by_user) == 40 and all(len(r) == 5 for r in by_user.values())
    for user, recs in by_user.items():
        assert [int(r["rank"]) for r in recs] == [1, 2, 3, 4, 5]
        scores = [float(r["score"]) for r in recs]
        assert scores == sorted(scores, reverse=True)
        assert not {r["item_id"] for r in recs} & train[user]


def test_json_matches_csv(trained, tmp_path):
    checkpoint, _ = trained
    recommend.main([f"--checkpoint={checkpoint}", "--topk=3", f"--out={tmp_path / 'r.csv'}"])
    recommend.main([f"--checkpoint={checkpoint}", "--topk=3", f"--out={tmp_path / 'r.json'}"])
    with open(tmp_path / "r.json") as f:
        as_json = json.load(f)
    with open(tmp_path / "r.csv") as f:
        for row in csv.DictReader(f):
            item, score = as_json[row["user_id"]][int(row["rank"]) - 1]
            assert item == row["item_id"] and score == pytest.approx(float(row["score"]), rel=1e-5)


def test_unknown_users_are_listed_and_skipped(trained, tmp_path, caplog):
    checkpoint, _ = trained
    users = tmp_path / "users.txt"
    users.write_text("u3\nnobody\nu7\n")
    out = tmp_path / "r.csv"
    recommend.main([f"--checkpoint={checkpoint}", f"--users={users}", "--topk=2", f"--out={out}"])
    assert "1 user(s)" in caplog.text and "nobody" in caplog.text
    with open(out) as f:
        assert {row["user_id"] for row in csv.DictReader(f)} == {"u3", "u7"}


def test_a_pickled_recbole_checkpoint_is_refused(tmp_path, capsys):
    import argparse

    import torch

    bad = tmp_path / "recbole.pth"
    torch.save({"config": argparse.Namespace(model="LightGCN")}, bad)  # like RecBole's pickled Config
    assert recommend.main([f"--checkpoint={bad}", f"--out={tmp_path / 'r.csv'}"]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: is not a recbole-mmssl checkpoint" in err
    assert "a Python object of type argparse.Namespace" in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


def test_users_file_with_a_byte_order_mark_keeps_its_first_user(trained, tmp_path):
    checkpoint, _ = trained
    users = tmp_path / "users.txt"
    users.write_bytes(b"\xef\xbb\xbfu3\nu5\n")  # as Windows editors save UTF-8
    assert recommend.main([f"--checkpoint={checkpoint}", f"--users={users}", "--topk=2",
                           f"--out={tmp_path / 'r.csv'}"]) == 0
    with open(tmp_path / "r.csv") as f:
        assert {row["user_id"] for row in csv.DictReader(f)} == {"u3", "u5"}
