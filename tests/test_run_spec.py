"""check_run_spec: a planned run refused before any run starts, naming the spec it came from."""

import sys

import pytest
import yaml

from recbole_mmssl.errors import ConfigError, DataError, UsageError
from recbole_mmssl.run_spec import check_run_spec, parse_override
from tests._lead_util import SMALL_RUN, write_tiny_dataset


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    write_tiny_dataset(tmp_path)
    write_tiny_dataset(tmp_path, name="few", n_items=30)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**SMALL_RUN, "epochs": 1}))
    return tmp_path


def _check(data, model="BPR", dataset="tiny", **kwargs):
    return check_run_spec(model, dataset, str(data), config_files=[str(data / "base.yaml")], **kwargs)


def test_a_good_spec_returns_its_config(data):
    config = _check(data, model="LightGCN", overrides={"learning_rate": "0.01"}, load_data=True)
    assert config["model"] == "LightGCN" and config["learning_rate"] == 0.01


def test_an_unknown_model_names_the_spec(data):
    with pytest.raises(ConfigError, match=r"`model` \(--models Foo\): Unknown model 'Foo'"):
        _check(data, model="Foo", where="--models Foo")


def test_a_misspelled_override_names_the_spec_and_the_closest_key(data):
    with pytest.raises(ConfigError, match=r"`learning_rat` \(--models BPR:learning_rat=0.01\): unknown key; did you "
                                          r"mean `learning_rate`"):
        _check(data, overrides={"learning_rat": "0.01"}, where="--models BPR:learning_rat=0.01")


def test_a_value_out_of_range_is_refused(data):
    with pytest.raises(ConfigError, match="`epochs`.*expected an integer >= 1"):
        _check(data, overrides={"epochs": "0"})


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_numpy_cannot_take_is_refused_before_the_run(data, seed):
    with pytest.raises(ConfigError, match=r"`seed`.*expected an integer >= 0 and <= 4294967295"):
        _check(data, overrides={"seed": seed})


def test_a_missing_data_path_or_dataset_is_refused(data):
    with pytest.raises(DataError, match="the data path is not a folder"):
        check_run_spec("BPR", "tiny", str(data / "nowhere"))
    with pytest.raises(DataError, match="dataset folder does not exist"):
        _check(data, dataset="absent")


def test_a_bad_atomic_file_is_refused_without_loading(data):
    path = data / "tiny" / "tiny.test.inter"
    path.write_text(path.read_text() + "user_id:token\titem_id:token\n")
    with pytest.raises(DataError, match=r"tiny\.test\.inter line \d+: repeats the header line"):
        _check(data)


def test_loading_the_data_checks_topk_against_the_items(data):
    _check(data, dataset="few")  # files fine
    with pytest.raises(ConfigError, match="`topk`"):
        _check(data, dataset="few", load_data=True)


def test_parse_override():
    assert parse_override("variant=released", "--models MMSSL:variant=released") == ("variant", "released")
    with pytest.raises(UsageError, match=r"--models MMSSL:variant: override 'variant' is not key=value"):
        parse_override("variant", "--models MMSSL:variant")
