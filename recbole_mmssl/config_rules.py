"""What the plugin's Config accepts: every key some RecBole or plugin file or code defines, and the
type and range of the keys it checks.

The key lists are read from the installed RecBole and from the plugin's property files and source (a key
that no yaml file sets but some code reads as ``config["key"]`` is still a key), so that a new option
needs no list updated by hand; ``CHECKS`` holds what a value must be, key by key, for the messages
of :class:`recbole_mmssl.config.Config`.
"""

import codecs
import difflib
import glob
import math
import numbers
import os
import re
from functools import lru_cache

import yaml

from recbole_mmssl.registry import PLUGIN_MODELS

PROPERTIES_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "properties")
PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
EXTRA_KEYS = "extra_keys"  # the user's declaration of free-form keys (see README, "Errors")
# Set by RecBole itself or by the commands, never defined in a yaml file.
DERIVED_KEYS = {
    "model", "dataset", "config_files", EXTRA_KEYS, "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "device",
    "single_spec", "local_rank", "world_size", "nproc", "offset", "ip", "port", "valid_metric_bigger",
    "train_neg_sample_args", "valid_neg_sample_args", "test_neg_sample_args",
    # the plugin commands' own flags (they never reach the config, but are not typos either)
    "resume", "breakdown", "breakdown_k", "debug",
}
_CONFIG_READ = re.compile(r"""config(?:\.final_config_dict)?(?:\[|\.get\()\s*["']([A-Za-z_]\w*)["']""")


# ----------------------------------------------------------------------------- known keys

def _yaml_keys(path):
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return values if isinstance(values, dict) else {}


def _keys_read_in_source(folder, models=None):
    """Keys read as ``config["key"]`` in the code under ``folder``: outside its ``model/`` folder
    (``models=False``, settings of the whole run) or inside it (``models=True``, of some model)."""
    keys = set()
    model_dir = os.path.join(folder, "model") + os.sep
    for path in glob.glob(os.path.join(folder, "**", "*.py"), recursive=True):
        if models is not None and path.startswith(model_dir) != models:
            continue
        try:
            with open(path, encoding="utf-8") as f:
                keys.update(_CONFIG_READ.findall(f.read()))
        except (OSError, UnicodeDecodeError):
            continue
    return keys


@lru_cache(maxsize=None)
def _recbole_keys():
    """(general keys, {model: its yaml keys}, keys read by model code) of the installed RecBole."""
    import recbole
    from recbole.utils import dataset_arguments, evaluation_arguments, general_arguments, training_arguments

    root = os.path.dirname(recbole.__file__)
    general = set(general_arguments) | set(training_arguments) | set(evaluation_arguments) | set(dataset_arguments)
    general |= set(_yaml_keys(os.path.join(root, "properties", "overall.yaml")))
    for path in glob.glob(os.path.join(root, "properties", "dataset", "*.yaml")):
        if not os.path.basename(path).endswith("url.yaml"):  # download URLs, keyed by dataset name
            general |= set(_yaml_keys(path))
    for path in glob.glob(os.path.join(root, "properties", "quick_start_config", "*.yaml")):
        general |= set(_yaml_keys(path))
    general |= _keys_read_in_source(root, models=False)
    per_model = {
        os.path.splitext(os.path.basename(path))[0]: set(_yaml_keys(path))
        for path in glob.glob(os.path.join(root, "properties", "model", "*.yaml"))
    }
    return frozenset(general), per_model, frozenset(_keys_read_in_source(root, models=True))


def known_keys():
    """(general keys, {model: keys}, keys some model's code reads) known right now: RecBole's plus
    every plugin property file and the plugin's code.

    The plugin's files are read on every call: models and keys are added to ``properties/`` while
    the package is installed (editable), and a key in any of them is a known key.
    """
    general, recbole_models, model_code = _recbole_keys()
    general = set(general) | DERIVED_KEYS | _keys_read_in_source(PACKAGE_DIR, models=False)
    model_code = set(model_code) | _keys_read_in_source(PACKAGE_DIR, models=True)
    per_model = {model: set(keys) for model, keys in recbole_models.items()}
    general |= set(_yaml_keys(os.path.join(PROPERTIES_DIR, "overall.yaml")))
    for path in glob.glob(os.path.join(PROPERTIES_DIR, "model", "*.yaml")):
        model = os.path.splitext(os.path.basename(path))[0]
        per_model.setdefault(model, set()).update(_yaml_keys(path))
    for path in glob.glob(os.path.join(PROPERTIES_DIR, "dataset", "*.yaml")):
        for key, value in _yaml_keys(path).items():
            if isinstance(value, dict) and is_model_name(key):
                per_model.setdefault(key, set()).update(value)
            else:
                general.add(key)
    return general, per_model, model_code


def model_names():
    """Every model name the plugin can run (for "did you mean")."""
    _, per_model, _ = _recbole_keys()
    return sorted(set(PLUGIN_MODELS) | set(per_model))


def closest(name, candidates):
    """The candidate closest to ``name`` (case-insensitive first), or None."""
    lowered = {c.lower(): c for c in candidates}
    if str(name).lower() in lowered:
        return lowered[str(name).lower()]
    match = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


# ----------------------------------------------------------------------------- value checks

def is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Check:
    """Type and range of one key: ``kind`` number | int | bool | choice | str | strs."""

    def __init__(self, kind, low=None, high=None, low_open=False, high_open=False, choices=None, null=False,
                 choices_attr=None):
        self.kind, self.low, self.high = kind, low, high
        self.low_open, self.high_open = low_open, high_open
        self.choices, self.null, self.choices_attr = choices, null, choices_attr

    def describe(self, choices=None):
        choices = choices or self.choices
        if self.kind == "bool":
            text = "True or False"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in choices)
        elif self.kind == "str":
            text = "a text"
        elif self.kind == "strs":
            text = "a list of names"
        elif self.kind == "separator":
            text = "a non-empty text, e.g. '\\t'"
        elif self.kind == "codec":
            text = "a text encoding Python knows, e.g. utf-8"
        elif self.kind == "colmap":
            text = "a mapping of file suffix to a list of column names or '*', e.g. {inter: [user_id, item_id]}"
        else:
            text = "an integer" if self.kind == "int" else "a number"
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '>='} {self.low}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '<='} {self.high}")
            text += (" " + " and ".join(bounds)) if bounds else ""
        return text + (" (or null)" if self.null else "")

    def normalise(self, value, choices=None):
        """The value to use, or raise ValueError(description of what was expected)."""
        choices = choices or self.choices
        if value is None and self.null:
            return value
        expected = ValueError(self.describe(choices))
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise expected
            return value
        if self.kind == "choice":
            if isinstance(value, str) and value.lower() in {str(c).lower() for c in choices}:
                return value
            raise expected
        if self.kind == "str":
            if not isinstance(value, str):
                raise expected
            return value
        if self.kind == "strs":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise expected
            return value
        if self.kind == "separator":
            if not isinstance(value, str) or not value:
                raise expected
            return value
        if self.kind == "codec":
            try:
                codecs.lookup(value)
            except (LookupError, TypeError):
                raise expected from None
            return value
        if self.kind == "colmap":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and (v == "*" or isinstance(v, list) and all(isinstance(c, str) for c in v))
                    for k, v in value.items()):
                raise expected
            return value
        if not is_number(value) or not math.isfinite(float(value)):
            raise expected
        if self.kind == "int":
            if float(value) != int(value):
                raise expected
            value = int(value)
        for bound, is_open, below in ((self.low, self.low_open, True), (self.high, self.high_open, False)):
            if bound is None:
                continue
            bad = (value <= bound if is_open else value < bound) if below else \
                (value >= bound if is_open else value > bound)
            if bad:
                raise expected
        return value


_NUMBER_GE0 = Check("number", low=0)
_RATE = Check("number", low=0, high=1, high_open=True)
CHECKS = {
    "learning_rate": Check("number", low=0, low_open=True),
    "lr_decay": Check("number", low=0, high=1, low_open=True, null=True),
    "lr_decay_epochs": Check("number", low=0, low_open=True, null=True),
    "D_lr": Check("number", low=0, low_open=True),
    "epochs": Check("int", low=1),
    "train_batch_size": Check("int", low=1),
    "eval_batch_size": Check("int", low=1),
    "stopping_step": Check("int", low=1),
    "patience_after_warm_up": Check("bool"),
    "eval_step": Check("int", low=0),
    "seed": Check("int", low=0, high=2**32 - 1),  # numpy.random.seed, which RecBole's init_seed calls, takes no other
    "embedding_size": Check("int", low=1),
    "head_num": Check("int", low=1),
    "n_layers": Check("int", low=0),
    "T": Check("int", low=1),
    "graph_window": Check("int", low=1, null=True),
    "graph_coverage": Check("number", low=0, high=1),
    "real_rows": Check("choice", choices=("released", "tempered"), null=True),
    "weight_decay": _NUMBER_GE0,
    "drop_rate": _RATE, "G_drop1": _RATE, "G_drop2": _RATE, "dropout_prob": _RATE,
    "tau": Check("number", low=0, low_open=True),
    "real_data_tau": Check("number", low=0, low_open=True),
    "m_topk_rate": Check("number", low=0, high=1),
    "cl_rate": _NUMBER_GE0, "G_rate": _NUMBER_GE0, "gp_rate": _NUMBER_GE0, "feat_reg_decay": _NUMBER_GE0,
    "model_cat_rate": _NUMBER_GE0, "id_cat_rate": _NUMBER_GE0, "ui_pre_scale": _NUMBER_GE0,
    "log_log_scale": _NUMBER_GE0,
    "critic_slope": Check("number", low=0, null=True),
    "min_topk": Check("int", low=0, null=True),
    "max_modalities": Check("int", low=0, null=True),
    "variant": Check("choice", choices=("paper", "released"), choices_attr="VARIANT_PRESETS"),
    "attention": Check("choice", choices=("degenerate", "multihead"), null=True, choices_attr="ATTENTIONS"),
    "graph_schedule": Check("choice", choices=("released", "accumulate"), null=True),
    "mmgcn_layout": Check("choice", choices=("reference", "projected_sum"), null=True),
    "pair_layout": Check("choice", choices=("tiled", "aligned"), null=True),
    "critic_path": Check("choice", choices=("fast", "dense"), null=True),
    "critic_matmul": Check("choice", choices=("auto", "torch", "numpy"), null=True),
    "topk_exclude_train": Check("bool", null=True),
    "learner": Check("choice", choices=("adam", "adamw", "sgd", "adagrad", "rmsprop", "sparse_adam")),
    "state": Check("choice", choices=("INFO", "DEBUG", "WARNING", "ERROR", "CRITICAL")),
    "show_progress": Check("bool"), "reproducibility": Check("bool"), "use_gpu": Check("bool"),
    "allow_missing_features": Check("bool"), "feature_cache": Check("bool"), "scheduler_step": Check("bool"),
    "repeatable": Check("bool"), "shuffle": Check("bool"), "log_wandb": Check("bool"),
    "data_path": Check("str"), "checkpoint_dir": Check("str"),
    "benchmark_filename": Check("strs", null=True),
    "load_col": Check("colmap", null=True), "unload_col": Check("colmap", null=True),
    "field_separator": Check("separator"), "seq_separator": Check("separator"), "encoding": Check("codec"),
    "additional_feat_suffix": Check("strs", null=True),
    # MISSRec (choice sets from its module, so another model's `train_stage` is left to that model)
    "train_stage": Check("choice", choices=("transductive_ft", "inductive_ft", "pretrain"), choices_attr="TRAIN_STAGES"),
    "item_mm_fusion": Check("choice", choices=("static", "dynamic_shared", "dynamic_instance"),
                            choices_attr="ITEM_MM_FUSIONS"),
    "id_scoring": Check("choice", choices=("auto", "summed", "mixed"), null=True, choices_attr="ID_SCORINGS"),
    "interest_ratio": Check("number", low=0, low_open=True, high=1),
    "temperature": Check("number", low=0, low_open=True),
    "gamma": _NUMBER_GE0, "lambda": _NUMBER_GE0,
    "item_drop_ratio": _RATE, "item_drop_coefficient": Check("number", low=0, high=1),
    "kmeans_iters": Check("int", low=1), "kmeans_batch_size": Check("int", low=1),
    "pretrained": Check("str", null=True), "freeze": Check("strs"),
    EXTRA_KEYS: Check("strs"),
}


def metric_names():
    from recbole.evaluator.register import metric_information, metrics_dict

    topk_based = {name for name, need in metric_information.items() if "rec.topk" in need or "rec.items" in need}
    return {name: cls.__name__ for name, cls in metrics_dict.items()}, topk_based


def is_model_name(key):
    """A yaml block keyed by a model name (``MMSSL:``, ``LightGCN:``, ``FDSA:``): RecBole's own option
    names are lower-case (or upper-case field names with string values), model names are capitalised
    or, for some of RecBole's (FDSA, BPR, NCL), all upper-case."""
    return key in PLUGIN_MODELS or key in _recbole_keys()[1] or (key[:1].isupper() and not key.isupper())
