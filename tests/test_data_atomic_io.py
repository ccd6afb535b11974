"""Atomic feature files: exact float32 round trip, and every malformed file gets a clear error."""

import numpy as np
import pytest

from recbole_mmssl.data.atomic_io import format_float_rows, read_feature_file, write_feature_file
from recbole_mmssl.errors import DataError


def _write_text(path, text):
    path.write_text(text)
    return str(path)


def test_write_then_read_round_trips_every_float32_bit_pattern(tmp_path):
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2**32, size=(40, 33), dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32).copy()
    x[~np.isfinite(x)] = 1.5
    x[0, :7] = [0.0, -0.0, 1e-45, 3.4028235e38, -1.1754944e-38, 1.0, 100.0]  # edges and powers of 10
    x[1] = np.float16(rng.standard_normal(33))
    path = str(tmp_path / "d.image_feat")
    write_feature_file(path, [f"i{k}" for k in range(40)], x, "image", progress=False)
    modality, tokens, back, _ = read_feature_file(path)
    assert modality == "image" and tokens == [f"i{k}" for k in range(40)]
    assert back.dtype == np.float32
    assert np.array_equal(back.view(np.uint32), x.view(np.uint32))


def test_format_is_compact_space_separated_text():
    data, ends = format_float_rows(np.array([[0.0, -2.5, 0.125], [123456789.0, 1.0, -0.0]]))
    assert data == b"0 -2.5e+00 1.25e-01\n1.23456792e+08 1e+00 -0\n"
    assert list(ends) == [len(b"0 -2.5e+00 1.25e-01\n"), len(data)]


def test_header_must_name_item_id_and_a_float_seq_feature(tmp_path):
    path = _write_text(tmp_path / "d.image_feat", "item:token\timage_feat:float_seq\n1\t0.5\n")
    with pytest.raises(DataError, match=r"(?s)d\.image_feat.*first column is 'item:token'.*fix: the "
                                        r"first line must be"):
        read_feature_file(path)


def test_rows_of_different_length_name_the_item(tmp_path):
    text = "item_id:token\timage_feat:float_seq\na\t1 2 3\nb\t1 2 3\nc\t1 2\n"
    path = _write_text(tmp_path / "d.image_feat", text)
    with pytest.raises(DataError, match=r"d\.image_feat: rows have different lengths: 2 of 3 rows "
                                        r"have 3 values, but item 'c' has 2"):
        read_feature_file(path)


def test_non_numeric_value_names_the_line(tmp_path):
    path = _write_text(tmp_path / "d.image_feat",
                       "item_id:token\timage_feat:float_seq\na\t1 2\nb\t1 x\n")
    with pytest.raises(DataError, match=r"line 3 \(item 'b'\) holds a value that is not a number"):
        read_feature_file(path)


def test_nan_or_inf_rows_are_counted_with_the_first_item(tmp_path):
    text = "item_id:token\timage_feat:float_seq\na\t1 2\nb\tnan 2\nc\t1 inf\n"
    path = _write_text(tmp_path / "d.image_feat", text)
    with pytest.raises(DataError, match=r"(?s)d\.image_feat: 2 feature row\(s\) contain NaN or inf; the "
                                        r"first is item 'b'.*fix: replace the NaN/inf"):
        read_feature_file(path)


def test_duplicate_item_rows_are_refused(tmp_path):
    path = _write_text(tmp_path / "d.image_feat",
                       "item_id:token\timage_feat:float_seq\na\t1 2\na\t3 4\n")
    with pytest.raises(DataError, match=r"1 item token\(s\) appear more than once, e\.g\. 'a'"):
        read_feature_file(path)


def test_writer_refuses_nan_before_writing_anything(tmp_path):
    x = np.ones((3, 2), dtype=np.float32)
    x[1, 0] = np.nan
    with pytest.raises(DataError, match="1 feature row.*first is item 'b'"):
        write_feature_file(str(tmp_path / "d.image_feat"), ["a", "b", "c"], x, "image", progress=False)
    assert list(tmp_path.iterdir()) == []
