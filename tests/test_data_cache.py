"""Parse cache: reused when the source is unchanged, never trusted over a changed source."""

import os

import numpy as np
import pytest
import torch

from recbole_mmssl.data import cache
from recbole_mmssl.data.atomic_io import write_feature_file
from recbole_mmssl.data.cache import cache_path_for, load_feature_file
from tests._data_util import features

OLD_NS = 1_600_000_000 * 10**9  # a source mtime far in the past: cache is not "racy"


@pytest.fixture
def parse_counter(monkeypatch):
    """Counts real parses of feature files."""
    calls = []
    real = cache.read_feature_file

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "read_feature_file", counting)
    return calls


def _source(tmp_path, x, mtime_ns=OLD_NS):
    path = str(tmp_path / "d.image_feat")
    write_feature_file(path, [f"i{k}" for k in range(len(x))], x, "image", progress=False)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_second_load_comes_from_the_cache(tmp_path, parse_counter):
    x = features(n_items=5, dim=4)
    path = _source(tmp_path, x)
    first = load_feature_file(path)
    second = load_feature_file(path)
    assert len(parse_counter) == 1
    assert os.path.isfile(cache_path_for(path))
    assert second[0] == "image" and second[1] == first[1]
    assert np.array_equal(second[2], x)
    blob = torch.load(cache_path_for(path), weights_only=True)  # tensors and plain data only
    assert blob["size"] == os.path.getsize(path) and not blob["racy"]


def test_modified_source_invalidates_the_cache(tmp_path, parse_counter):
    path = _source(tmp_path, features(n_items=5, dim=4))
    load_feature_file(path)
    y = features(n_items=6, dim=4, seed=9)
    path = _source(tmp_path, y, mtime_ns=OLD_NS + 1)
    assert np.array_equal(load_feature_file(path)[2], y)
    assert len(parse_counter) == 2
    assert np.array_equal(load_feature_file(path)[2], y)  # and the cache was rewritten
    assert len(parse_counter) == 2


def test_racy_cache_is_checked_against_the_content(tmp_path, parse_counter):
    """A same-size rewrite within the mtime granularity is caught by the crc32 check."""
    x = np.ones((3, 2), dtype=np.float32)
    path = _source(tmp_path, x, mtime_ns=None)  # just written
    stamp = os.stat(path).st_mtime_ns
    load_feature_file(path)  # cached right after the write: racy
    assert torch.load(cache_path_for(path), weights_only=True)["racy"]
    y = x.copy()
    y[1, 0] = 2.0  # same byte length: "1e+00" -> "2e+00"
    _source(tmp_path, y, mtime_ns=stamp)  # same size, same mtime: only the content differs
    assert os.path.getsize(path) == torch.load(cache_path_for(path), weights_only=True)["size"]
    assert np.array_equal(load_feature_file(path)[2], y)
    assert len(parse_counter) == 2


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path, parse_counter, caplog):
    x = features(n_items=3, dim=2)
    path = _source(tmp_path, x)
    with open(cache_path_for(path), "wb") as f:
        f.write(b"not a torch file")
    assert np.array_equal(load_feature_file(path)[2], x)
    assert "Ignoring unreadable parse cache" in caplog.text
    load_feature_file(path)
    assert len(parse_counter) == 1


def test_cache_can_be_switched_off(tmp_path, parse_counter):
    path = _source(tmp_path, features(n_items=3, dim=2))
    load_feature_file(path, use_cache=False)
    load_feature_file(path, use_cache=False)
    assert len(parse_counter) == 2 and not os.path.exists(cache_path_for(path))
