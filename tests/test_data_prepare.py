"""ensure_prepared: a missing dataset is an error with the exact command, never a download."""

import pytest

from recbole_mmssl.data.convert import convert
from recbole_mmssl.errors import DataError
from recbole_mmssl.data.prepare import ensure_prepared
from tests._data_util import make_hkuds, recbole_config


def test_missing_amazon_baby_names_folder_and_convert_command(tmp_path):
    config = recbole_config(tmp_path / "data", "amazon-baby")
    with pytest.raises(DataError) as info:
        ensure_prepared(config)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'data' / 'amazon-baby'}: dataset folder does not exist")
    assert "never downloads" in message
    assert (f"fix: prepare it with: python -m recbole_mmssl.data.convert hkuds "
            f"<path-to-HKUDS-baby-folder> --name amazon-baby --out {tmp_path / 'data'}/") in message


def test_unknown_dataset_gets_the_generic_command(tmp_path):
    with pytest.raises(DataError, match=r"convert hkuds\|mmrec <path-to-source-folder> --name mine"):
        ensure_prepared(recbole_config(tmp_path, "mine"))


def test_prepared_folder_passes_and_missing_split_file_is_named(tmp_path):
    convert("hkuds", make_hkuds(tmp_path / "src"), "toy", tmp_path / "data", progress=False)
    config = recbole_config(tmp_path / "data", "toy")
    assert ensure_prepared(config) == str(tmp_path / "data" / "toy")
    (tmp_path / "data" / "toy" / "toy.valid.inter").unlink()
    with pytest.raises(DataError, match=r"dataset folder lacks \['toy\.valid\.inter'\]"):
        ensure_prepared(config)


def test_pre_split_folder_without_benchmark_filename_says_so(tmp_path):
    convert("hkuds", make_hkuds(tmp_path / "src"), "toy", tmp_path / "data", progress=False)
    with pytest.raises(DataError, match=r"(?s)lacks \['toy\.inter'\].*fix: the folder holds "
                                        r"pre-split files: set `benchmark_filename"):
        ensure_prepared(recbole_config(tmp_path / "data", "toy", benchmark=False))


def test_recbole_bundled_ml100k_is_refused(tmp_path):
    config = recbole_config(tmp_path, "ml-100k", benchmark=False)  # RecBole points into its wheel
    with pytest.raises(DataError, match=r"RecBole's bundled ml-100k, which has no modality features"):
        ensure_prepared(config)
