"""Check a planned run (model, settings, data) before any run starts, for commands that plan many.

A batch of runs (a comparison of models, a list of seeds) that fails on its fifth model hours in, or
on a typo in one model's settings, has wasted every run before it. :func:`check_run_spec` makes, for
one planned run and without training, the checks a run makes before it trains, and raises the
plugin's :class:`~recbole_mmssl.errors.UserError` (printed by ``recbole_mmssl.cli.run_cli`` as
``error:`` / ``fix:`` lines) naming the spec it came from. Call it for every spec first, then run.
"""

import os

from recbole_mmssl.config import Config
from recbole_mmssl.errors import ConfigError, DataError, UsageError


def parse_override(text, where):
    """``key=value`` (one override of a spec such as ``MMSSL:variant=released``) as (key, value text)."""
    key, found, value = str(text).partition("=")
    if not found or not key.strip() or not value.strip():
        raise UsageError(where, f"override {text!r} is not key=value", "write each override as key=value, e.g. "
                                                                       "MMSSL:variant=released,learning_rate=0.001")
    return key.strip(), value.strip()


def check_run_spec(model, dataset, data_path, overrides=None, config_files=None, where=None, load_data=False):
    """Refuse, before anything runs, a run that would fail before its first epoch; return its Config.

    Checked: ``data_path`` is a folder; ``model`` is a plugin or RecBole model (with the closest name
    when not); every key of ``overrides`` ({key: value or value text}) is a setting RecBole, the
    model or the plugin knows, and its value passes the key's type and range check, like any other
    setting of the config files; the dataset is prepared under ``data_path`` and its atomic files read
    as written (recbole_mmssl/data/atomic_check.py). With ``load_data`` the dataset is also loaded as a
    run loads it (features aligned to the items, no user with every item, ``topk`` within the items):
    seconds to minutes on a large dataset, so a caller checks it once per dataset and settings.

    ``where`` (e.g. ``--models MMSSL:learning_rat=0.01``) replaces the config dict as the place named
    in the errors about the model and the overrides.
    """
    overrides = dict(overrides or {})
    if not isinstance(data_path, (str, os.PathLike)) or not os.path.isdir(data_path):
        raise DataError(data_path, "the data path is not a folder",
                        "pass --data_path=DIR, the folder that holds the dataset's folder (RecBole's data_path)")
    try:
        config = Config(model=model, dataset=dataset, config_file_list=config_files,
                        config_dict={**overrides, "data_path": os.path.abspath(data_path)})
    except ConfigError as err:
        if where is None or (err.key not in overrides and err.key != "model"):
            raise
        raise ConfigError(err.key, err.problem, err.fix, where) from None
    from recbole_mmssl.quick_start import check_topk, create_dataset

    if load_data:
        check_topk(config, create_dataset(config))
    else:
        from recbole_mmssl.data.atomic_check import check_atomic_files
        from recbole_mmssl.data.prepare import ensure_prepared

        ensure_prepared(config)
        check_atomic_files(config)
    return config
