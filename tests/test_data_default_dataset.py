"""The embedded default dataset (ml-100k + title text + genre features): content, idempotence, atomicity."""

import os

import numpy as np
import pytest

from recbole_mmssl.data import default_dataset
from recbole_mmssl.data.dataset import MultimodalDataset
from recbole_mmssl.data.default_dataset import ensure_default_dataset
from tests._data_util import recbole_config


@pytest.fixture
def fake_encoder(monkeypatch):
    """Deterministic 8-d 'text vectors' (the real MiniLM is tested in test_data_features)."""
    calls = []

    def encode(texts, *args, **kwargs):
        calls.append(len(texts))
        lengths = np.array([len(t) for t in texts], dtype=np.float32)
        return np.outer(lengths, np.arange(1, 9, dtype=np.float32))

    monkeypatch.setattr(default_dataset, "encode_texts", encode)
    return calls


def test_builds_text_and_genre_features_once(tmp_path, fake_encoder):
    folder = ensure_default_dataset(tmp_path)
    assert sorted(os.listdir(folder)) == ["ml-100k.genre_feat", "ml-100k.inter", "ml-100k.item",
                                          "ml-100k.text_feat"]
    stamps = {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)}
    assert ensure_default_dataset(tmp_path) == folder
    assert fake_encoder == [1682]  # the second call did nothing
    assert {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in os.listdir(folder)} == stamps
    assert sorted(os.listdir(tmp_path)) == ["ml-100k"]


def test_genre_vectors_are_multi_hot_over_the_vocabulary(tmp_path, fake_encoder):
    config = recbole_config(tmp_path, "ml-100k", benchmark=False)
    config["data_path"] = ensure_default_dataset(tmp_path)  # RecBole points ml-100k into its wheel
    ds = MultimodalDataset(config)
    assert ds.modality_names == ["genre", "text"]
    assert ds.modality_features["genre"].shape == (ds.item_num, 19) and ds.item_num == 1683
    toy_story = ds.token2id("item_id", "1")  # Animation Children's Comedy
    vocabulary = sorted(["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                         "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
                         "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "unknown"])
    hot = [vocabulary[k] for k in np.flatnonzero(ds.modality_features["genre"][toy_story].numpy())]
    assert hot == ["Animation", "Children's", "Comedy"]
    assert ds.modality_features["text"][toy_story].tolist() == [9.0 * k for k in range(1, 9)]
    assert bool(ds.modality_masks["text"][1:].all())


def test_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(default_dataset, "encode_texts", broken)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        ensure_default_dataset(tmp_path)
    assert os.listdir(tmp_path) == []
