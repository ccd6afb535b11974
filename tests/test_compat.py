"""recbole_mmssl.compat: each test runs the RecBole (or Ray) code that one patch serves, so it fails
without the patch where the patch matters (NumPy 2, SciPy >= 1.13, pandas 3) and passes everywhere
with it. The versions each patch is for are in its docstring in recbole_mmssl/compat.py."""

import importlib
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from recbole.data import create_dataset

from recbole_mmssl import compat
from tests._data_util import recbole_config

PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3


def test_recbole_config_builds_and_sets_its_numpy_aliases(tmp_path):
    """numpy2_aliases: every RecBole Config runs compatibility_settings(), which reads np.float_,
    np.complex_ and np.unicode_ (removed in NumPy 2.0)."""
    recbole_config(tmp_path, "toy")
    assert np.float is np.float64 and np.complex is np.complex128 and np.unicode is np.str_
    assert np.dtype(np.float_) == np.float64


def test_ray_tune_imports():
    """numpy2_ray_alias: Ray 2.6.3 (what RecBole 1.2.1 allows) reads np.bool8 when ray.tune loads."""
    pytest.importorskip("ray")
    tune = importlib.import_module("ray.tune")
    assert callable(tune.run)


def test_lightgcn_adjacency_is_the_normalized_bipartite_graph():
    """scipy_dok_update: LightGCN.get_norm_adj_mat() fills a dok_matrix through _update (removed in
    SciPy 1.13). Its result must be D^-1/2 A D^-1/2 of the user-item graph."""
    from recbole.model.general_recommender.lightgcn import LightGCN

    users, items = np.array([1, 1, 2, 3, 3, 3]), np.array([1, 2, 2, 1, 3, 4])
    n_users, n_items = 4, 5  # id 0 is RecBole's padding
    inter = sp.coo_matrix((np.ones(len(users)), (users, items)), shape=(n_users, n_items))
    model = SimpleNamespace(n_users=n_users, n_items=n_items, interaction_matrix=inter)
    got = LightGCN.get_norm_adj_mat(model).to_dense().numpy()

    a = np.zeros((n_users + n_items, n_users + n_items))
    a[users, n_users + items] = a[n_users + items, users] = 1
    d = (a.sum(1) + 1e-7) ** -0.5
    np.testing.assert_allclose(got, d[:, None] * a * d[None, :], rtol=1e-6, atol=1e-7)


def _write_toy(folder):
    """Interactions of 5 users x 5 items; item and user files with empty cells of every kind and
    with rows missing for some ids (kept: filter_inter_by_user_or_item False)."""
    os.makedirs(folder / "toy")
    with open(folder / "toy" / "toy.inter", "w") as f:
        f.write("user_id:token\titem_id:token\n")
        f.write("".join(f"u{u}\ti{i}\n" for u in range(1, 6) for i in range(1, 6) if (u + i) % 3))
    with open(folder / "toy" / "toy.item", "w") as f:
        f.write("item_id:token\tgenre:token_seq\tprice:float\tbrand:token\temb:float_seq\n")
        f.write("i1\ta b\t1.0\tx\t0.1 0.2\n")
        f.write("i2\t\t3.0\ty\t\n")  # no genre, no embedding
        f.write("i3\tb\t\t\t0.5 0.5\n")  # no price, no brand; i4 and i5 have no row at all
    with open(folder / "toy" / "toy.user", "w") as f:
        f.write("user_id:token\tage:float\tgender:token\n")
        f.write("u1\t20\tM\nu2\t30\tF\nu3\t\tM\n")  # u3 has no age; u4 and u5 no row


def test_atomic_files_with_empty_cells_and_missing_rows_load_as_on_pandas_2(tmp_path):
    """pandas3_seq_fillna, pandas3_fill_nan, pandas3_agg_len: RecBole's Dataset on atomic files with
    sequence fields, empty cells and ids without feature rows (on pandas 3 without the patches:
    "'float' object has no attribute 'split'", then a length mismatch in _remap, then NaN features)."""
    _write_toy(tmp_path)
    config = recbole_config(tmp_path, "toy", benchmark=False, load_col=None,
                            filter_inter_by_user_or_item=False, normalize_field=["emb"])
    ds = create_dataset(config)
    items, users = ds.item_feat, ds.user_feat

    def row(feat, field, token):
        return feat.iloc[ds.token2id(field, token)]

    genre = {token: ds.token2id("genre", token) for token in ("a", "b")}
    assert list(row(items, "item_id", "i1")["genre"]) == [genre["a"], genre["b"]]
    assert list(row(items, "item_id", "i3")["genre"]) == [genre["b"]]
    for token in ("i2", "i4", "i5"):
        assert len(row(items, "item_id", token)["genre"]) == 0
    # emb normalized over all its values (min 0.1, max 0.5); empty where the cell or the row is missing
    np.testing.assert_allclose(row(items, "item_id", "i1")["emb"], [0.0, 0.25])
    np.testing.assert_allclose(row(items, "item_id", "i3")["emb"], [1.0, 1.0])
    assert len(row(items, "item_id", "i2")["emb"]) == 0 and len(row(items, "item_id", "i4")["emb"]) == 0
    # missing floats are the mean of the present ones; missing tokens are the padding id 0
    price = {token: row(items, "item_id", token)["price"] for token in ("i1", "i2", "i3", "i4", "i5")}
    assert price == {"i1": 1.0, "i2": 3.0, "i3": 2.0, "i4": 2.0, "i5": 2.0}
    assert row(items, "item_id", "i3")["brand"] == 0 and row(items, "item_id", "i5")["brand"] == 0
    assert row(items, "item_id", "i2")["brand"] == ds.token2id("brand", "y")
    assert [row(users, "user_id", u)["age"] for u in ("u1", "u2", "u3", "u4", "u5")] == [20, 30, 25, 25, 25]
    assert [row(users, "user_id", u)["gender"] for u in ("u3", "u4")] == [ds.token2id("gender", "M"), 0]
    assert not items[["price", "brand"]].isna().any().any() and not users.isna().any().any()


@pytest.mark.skipif(not PANDAS_3, reason="Series.agg(len) is elementwise before pandas 3")
def test_agg_len_is_elementwise_for_recbole_only():
    """pandas3_agg_len changes RecBole's calls only: anyone else's Series.agg(len) keeps pandas 3's meaning."""
    series = pd.Series([np.arange(2), np.arange(0), np.arange(3)])
    assert series.agg(len) == 3
    namespace = {"__name__": "recbole.data.dataset.dataset", "series": series}
    assert eval("series.agg(len)", namespace).tolist() == [2, 0, 3]


def test_import_loads_neither_numpy_nor_torch_and_patches_on_first_import():
    """apply() patches each library when it is imported: `import recbole_mmssl` stays cheap, and
    code that imports RecBole's dataset module later still gets the patches."""
    code = (
        "import sys, recbole_mmssl\n"
        "assert not {'numpy', 'torch', 'scipy', 'pandas'} & set(sys.modules), sorted(sys.modules)\n"
        "import numpy, scipy.sparse\n"
        "assert 'float_' in numpy.__dict__ and hasattr(scipy.sparse.dok_matrix, '_update')\n"
        "from recbole.data.dataset import Dataset\n"
        "import pandas\n"
        "patched = getattr(Dataset._fill_nan, '_recbole_mmssl_compat', False)\n"
        "assert patched == (int(pandas.__version__.split('.')[0]) >= 3)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "RECBOLE_MMSSL_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_apply_is_idempotent():
    before = (pd.Series.aggregate, sp.dok_matrix._update, torch.__version__)
    compat.apply()
    compat.apply()
    assert (pd.Series.aggregate, sp.dok_matrix._update, torch.__version__) == before


def test_missing_recbole_is_one_error_that_says_how_to_install_it():
    """On Python 3.12+ RecBole is installed alone (README); without it the import says how, first thing."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-S", "-c", "import recbole_mmssl"], capture_output=True, text=True,
                         cwd=repo)  # -S: no site-packages, so no RecBole (the package comes from the checkout)
    assert out.returncode == 1
    assert "ImportError: RecBole 1.2.1 is not installed" in out.stderr
    assert "pip install --no-deps recbole==1.2.1" in out.stderr
