"""Text -> feature file: table reading (CSV/TSV/atomic), modality naming, offline MiniLM encoding."""

import os

import numpy as np
import pytest

from recbole_mmssl.data.atomic_io import read_feature_file
from recbole_mmssl.data.default_dataset import recbole_example_folder
from recbole_mmssl.errors import DataError
from recbole_mmssl.data.features import encode_file, load_encoder, modality_of, read_text_table


def test_atomic_item_file_columns_match_by_base_name():
    ids, texts = read_text_table(os.path.join(recbole_example_folder(), "ml-100k.item"),
                                 "item_id", "movie_title")
    assert len(ids) == 1682 and (ids[0], texts[0]) == ("1", "Toy Story")


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_separator_is_detected_and_quotes_respected(tmp_path, sep):
    quote = '"' if sep != "\t" else ""
    path = tmp_path / "items.txt"
    path.write_text(f"id{sep}title\n7{sep}{quote}Heat, the movie{quote}\n8{sep}Up\n")
    assert read_text_table(path, "id", "title") == (["7", "8"], ["Heat, the movie", "Up"])


def test_missing_column_lists_the_columns(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("id,name\n1,a\n")
    with pytest.raises(DataError, match=r"(?s)items\.csv: no column 'title' \(columns: \['id', "
                                        r"'name'\]\).*fix: pass one of them to --text-column"):
        read_text_table(path, "id", "title")


def test_modality_comes_from_the_file_name_and_must_agree():
    assert modality_of("d/ml-100k.plot_feat") == "plot"
    assert modality_of("d/vectors.txt", "text") == "text"
    with pytest.raises(DataError, match="--modality 'text' disagrees with the file name"):
        modality_of("d/ml-100k.plot_feat", "text")


def test_model_must_be_a_local_folder(tmp_path):
    with pytest.raises(DataError, match="model folder not found \\(models are never downloaded\\)"):
        load_encoder(str(tmp_path / "sentence-transformers/all-MiniLM-L6-v2"))


def test_packaged_minilm_encodes_text_into_a_feature_file(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("id,title\n1,a funny comedy movie\n2,a hilarious comedy film\n"
                    "3,lecture on quantum field theory\n4,a funny comedy movie\n")
    out = tmp_path / "toy.text_feat"
    assert encode_file(path, "id", "title", str(out), progress=False) == (4, 384)
    modality, tokens, vectors, _ = read_feature_file(out)
    assert modality == "text" and tokens == ["1", "2", "3", "4"]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)  # MiniLM normalises
    assert np.allclose(vectors[0], vectors[3], atol=1e-6)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_a_folder_that_only_looks_like_a_model_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # what transformers reads first, with nothing usable in it
    with pytest.raises(DataError, match="cannot be loaded as a sentence-transformers model"):
        load_encoder(str(tmp_path))
