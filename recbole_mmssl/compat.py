"""RecBole 1.2.1 on today's NumPy, SciPy and pandas: the library changes its code trips over, patched
from ``import recbole_mmssl`` on, before any RecBole code runs.

RecBole's last release is 1.2.1 (2023); it was written against NumPy 1.x, SciPy <= 1.12 and
pandas 2.x. Each patch below names the RecBole line it serves and the versions where it is needed,
changes nothing on the versions RecBole was written for, and has a test in tests/test_compat.py that
runs the RecBole code it serves (and fails there without the patch).

:func:`apply` (run by ``recbole_mmssl/__init__.py``) patches each library when it is imported, or at
once if it already is: ``import recbole_mmssl`` itself still loads neither NumPy nor torch (the
thread settings of threads.py must come first, and commands that never touch RecBole stay quick).
"""

import importlib
import sys

#: module name -> patches to run right after the module is first executed (see _AfterImport).
_pending = {}


def numpy2_aliases():
    """NumPy >= 2.0 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``.

    RecBole reads them in recbole/config/configurator.py, ``Config.compatibility_settings()``
    (``np.float = np.float_``, ``np.complex = np.complex_``, ``np.unicode = np.unicode_``), which
    every ``Config(...)`` runs: without them no RecBole run starts on NumPy 2. Defined as the types
    they named on NumPy 1.x; on NumPy 1.x they exist and nothing is changed.
    """
    np = importlib.import_module("numpy")
    for name, value in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if name not in np.__dict__:
            setattr(np, name, value)


def numpy2_ray_alias():
    """NumPy >= 2.0 removed ``np.bool8`` (deprecated since 1.24).

    Not RecBole's line but the Ray it pins (RecBole 1.2.1 requires ray<=2.6.3, so Python 3.11 gets
    2.6.3): ray/tune/logger/tensorboardx.py ``TBXLogger.VALID_NP_HPARAMS = (np.bool8, ...)`` runs when
    ``ray.tune`` is imported, so ``run_hyper.py --tool=ray`` cannot start on NumPy 2 without it (its
    workers get it through the setup hook of recbole_mmssl/hyper.py). Ray releases that support
    NumPy 2 no longer read it.
    """
    np = importlib.import_module("numpy")
    if "bool8" not in np.__dict__:
        np.bool8 = np.bool_


def scipy_dok_update():
    """SciPy 1.13 removed the private ``dok_matrix._update`` (1.13's ``update`` raises
    NotImplementedError; from 1.14 a public ``update`` checks every key in Python).

    RecBole builds its graph models' adjacency with it: recbole/model/general_recommender/
    lightgcn.py ``LightGCN.get_norm_adj_mat()`` (``A._update(data_dict)``; the same line in ncl.py,
    ngcf.py, gcmc.py, spectralcf.py, kgin.py, mcclk.py), so LightGCN, NCL, NGCF, ... stop at
    construction on SciPy >= 1.13. Restored with SciPy 1.12's body: the dict of ``(row, col) -> value``
    goes into the matrix's own store unchecked (RecBole's keys come from its own interaction
    matrix). On SciPy <= 1.12 the method exists and is left alone.
    """
    sp = importlib.import_module("scipy.sparse")
    if hasattr(sp.dok_matrix, "_update"):
        return

    def _update(self, data):
        self._dict.update(data)

    sp.dok_matrix._update = _update


def _pandas_copies_on_write():
    """pandas >= 3.0 always copies on write: ``df[col].fillna(..., inplace=True)`` changes a copy."""
    pd = importlib.import_module("pandas")
    return int(pd.__version__.split(".")[0]) >= 3


def pandas3_seq_fillna():
    """pandas >= 3.0 (copy on write): RecBole's chained in-place fill of empty sequence cells is lost.

    recbole/data/dataset/dataset.py ``Dataset._load_feat()``: ``df[field].fillna(value="",
    inplace=True)`` for every ``token_seq`` / ``float_seq`` column, then ``_.split(seq_separator)``
    on each cell; with the fill lost, an empty cell (an item without genres, say) stays NaN and
    loading stops with "'float' object has no attribute 'split'". The fill is done where the file is
    read instead: that module's ``pd`` becomes pandas with a ``read_csv`` that fills the columns
    whose header says ``..._seq`` with "", as the lost line would have. Not applied before pandas 3.
    """
    recbole_dataset = importlib.import_module("recbole.data.dataset.dataset")
    if not _pandas_copies_on_write() or isinstance(recbole_dataset.pd, _PandasFillingSeqCells):
        return
    recbole_dataset.pd = _PandasFillingSeqCells(recbole_dataset.pd)


class _PandasFillingSeqCells:
    """pandas as recbole/data/dataset/dataset.py sees it, with the fill of empty sequence cells that
    its one ``read_csv`` call loses on pandas 3 done on read (:func:`pandas3_seq_fillna`)."""

    def __init__(self, pandas):
        self._pandas = pandas

    def __getattr__(self, name):
        return getattr(self._pandas, name)

    def read_csv(self, *args, **kwargs):
        df = self._pandas.read_csv(*args, **kwargs)
        for column in df.columns:
            if str(column).endswith("_seq"):  # RecBole's headers are name:type
                df[column] = df[column].fillna("")
        return df


def pandas3_fill_nan():
    """pandas >= 3.0 (copy on write): RecBole's missing-value imputation changes copies only.

    recbole/data/dataset/dataset.py ``Dataset._fill_nan()``: ``feat[field].fillna(value=0,
    inplace=True)`` (token fields) and ``feat[field].fillna(value=feat[field].mean(), inplace=True)``
    (float fields) leave ``feat`` as it was, so empty float cells and the rows that
    ``_user_item_feat_preparation()`` adds for users/items without a feature row stay NaN (NaN
    floats reach the models, NaN tokens become garbage ids). The same two fills are done by
    assignment before RecBole's method runs (its sequence branch assigns, and works as it is). Not
    applied before pandas 3.
    """
    Dataset = importlib.import_module("recbole.data.dataset.dataset").Dataset
    FeatureType = importlib.import_module("recbole.utils").FeatureType
    original = Dataset._fill_nan
    if not _pandas_copies_on_write() or getattr(original, "_recbole_mmssl_compat", False):
        return

    def _fill_nan(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                ftype = self.field2type[field]
                if ftype == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
        original(self)

    _fill_nan._recbole_mmssl_compat = True
    _fill_nan.__doc__ = original.__doc__
    Dataset._fill_nan = _fill_nan


def pandas3_agg_len():
    """pandas >= 3.0: ``Series.agg(func)`` calls ``func(series)``; pandas 2 applied a function such as
    ``len`` to each element (and fell back to the whole Series only when that failed).

    RecBole takes the lengths of its sequence fields with ``feat[field].agg(len)``:
    recbole/data/dataset/dataset.py ``Dataset._remap()`` (``split_point =
    np.cumsum(feat[field].agg(len))[:-1]``, every ``token_seq`` field: on pandas 3 a dataset with one
    stops with "Length of values (1) does not match length of index"), ``_normalize()`` and
    ``_discretization()`` (float_seq fields), kg_dataset.py ``_reset_ent_remapID()``, and
    sequential_dataset.py ``_benchmark_presets()`` (``item_length`` of every row set to the number
    of rows). For calls made from RecBole's own modules only, ``agg(len)`` is each element's length
    again, as on pandas 2; everyone else's ``Series.agg`` is untouched. Not applied before pandas 3.
    """
    pd = importlib.import_module("pandas")
    original = pd.Series.aggregate
    if not _pandas_copies_on_write() or getattr(original, "_recbole_mmssl_compat", False):
        return

    def aggregate(self, func=None, axis=0, *args, **kwargs):
        if func is len and not args and not kwargs:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("recbole."):
                return self.map(len)
        return original(self, func, axis, *args, **kwargs)

    aggregate._recbole_mmssl_compat = True
    aggregate.__doc__ = original.__doc__
    pd.Series.aggregate = pd.Series.agg = aggregate


def _recbole_dataset():
    pandas3_seq_fillna()
    pandas3_fill_nan()
    pandas3_agg_len()


def _numpy():
    numpy2_aliases()
    numpy2_ray_alias()


#: what to patch when each module is imported: the module whose code (or whose library) changed.
PATCHES = {
    "numpy": _numpy,
    "scipy.sparse": scipy_dok_update,
    "recbole.data.dataset.dataset": _recbole_dataset,
}


class _AfterImport:
    """A ``sys.meta_path`` finder that runs the patches of a module of PATCHES right after the
    module's own code, the first time it is imported (the real finders still find and load it)."""

    def find_spec(self, name, path, target=None):
        if name not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or isinstance(loader, type) or not hasattr(loader, "exec_module"):
            return spec  # not a per-module loader object: left to load unpatched (never for PATCHES)
        exec_module = loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            for patch in _pending.pop(name, ()):
                patch()

        loader.exec_module = exec_then_patch
        return spec


_finder = _AfterImport()


def apply():
    """Patch every module of PATCHES now if it is imported, else right after it is. Idempotent."""
    for name, patch in PATCHES.items():
        if name in sys.modules:
            _pending.pop(name, None)
            patch()
        elif patch not in _pending.setdefault(name, []):
            _pending[name].append(patch)
    if _pending and _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
