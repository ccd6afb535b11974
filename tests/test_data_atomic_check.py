"""The atomic-file check every dataset load runs first: what RecBole would misread, and what it reads fine."""

import pytest

from recbole_mmssl.data.atomic_check import check_atomic_files
from recbole_mmssl.errors import DataError

CONFIG = {"field_separator": "\t", "seq_separator": " ", "encoding": "utf-8", "USER_ID_FIELD": "user_id",
          "ITEM_ID_FIELD": "item_id", "load_col": None, "unload_col": None, "benchmark_filename": None,
          "additional_feat_suffix": None, "dataset": "d"}


def _check(tmp_path, files, **config):
    for name, text in files.items():
        (tmp_path / name).write_bytes(text.encode() if isinstance(text, str) else text)
    check_atomic_files({**CONFIG, **config}, str(tmp_path), "d")


def test_windows_line_endings_are_read_as_recbole_reads_them(tmp_path):
    _check(tmp_path, {"d.inter": "user_id:token\titem_id:token\r\nu1\ti1\r\nu2\ti2\r\n"})


def test_a_rating_that_is_not_a_number_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"d\.inter line 3: rating 'five' is not a number"):
        _check(tmp_path, {"d.inter": "user_id:token\titem_id:token\trating:float\nu1\ti1\t4\nu2\ti2\tfive\n"})


def test_the_item_file_is_checked_too(tmp_path):
    with pytest.raises(DataError, match=r"d\.item line 2: item_id 'i1 ' has leading or trailing whitespace"):
        _check(tmp_path, {"d.inter": "user_id:token\titem_id:token\nu1\ti1\n",
                          "d.item": "item_id:token\ttitle:token_seq\ni1 \ta b\n"})


def test_columns_left_out_by_load_col_are_not_checked(tmp_path):
    files = {"d.inter": "user_id:token\titem_id:token\trating:float\nu1\ti1\tfive\n"}
    _check(tmp_path, files, load_col={"inter": ["user_id", "item_id"]})
    with pytest.raises(DataError, match="rating 'five'"):
        _check(tmp_path, files)


def test_a_byte_order_mark_is_refused(tmp_path):
    with pytest.raises(DataError, match="byte-order mark"):
        _check(tmp_path, {"d.inter": b"\xef\xbb\xbfuser_id:token\titem_id:token\nu1\ti1\n"})


def test_missing_id_column_is_named(tmp_path):
    with pytest.raises(DataError, match=r"d\.inter: has no column item_id \(columns: user_id, item\)"):
        _check(tmp_path, {"d.inter": "user_id:token\titem:token\nu1\ti1\n"})


def test_a_header_without_a_line_break_is_refused_before_recbole_drops_its_last_character(tmp_path):
    with pytest.raises(DataError, match=r"d\.inter line 1: the header line does not end with a line break.*"
                                        r"'item_id:token' as 'item_id:toke'"):
        _check(tmp_path, {"d.inter": "user_id:token\titem_id:token"})
    _check(tmp_path, {"d.inter": "user_id:token\titem_id:token\nu1\ti1"})  # the last row may lack one


def test_an_interaction_file_with_no_rows_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"d\.inter: has a header and no interactions"):
        _check(tmp_path, {"d.inter": "user_id:token\titem_id:token\n\n"})
    with pytest.raises(DataError, match=r"(?s)d\.test\.inter: the 'test' split has no interactions.*fix: every split"):
        _check(tmp_path, {f"d.{split}.inter": "user_id:token\titem_id:token\n" + ("" if split == "test" else "u\ti\n")
                          for split in ("train", "valid", "test")}, benchmark_filename=["train", "valid", "test"])
