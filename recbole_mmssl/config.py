"""RecBole's Config, taught to find the plugin's models and property files, and to refuse bad settings.

RecBole only reads its own ``properties/`` folder and only knows its own models. The plugin adds,
in this order of priority (lowest first, as RecBole does for its own files):

1. RecBole's overall, model and dataset yaml (for built-in models this is all they see of RecBole);
2. ``recbole_mmssl/properties/overall.yaml`` (evaluation protocol shared by every model);
3. ``recbole_mmssl/properties/model/<Model>.yaml`` (plugin models only);
4. ``recbole_mmssl/properties/dataset/<dataset>.yaml``; a block named after the model inside it
   (``MMSSL: {learning_rate: ...}``) applies to that model only, so per-dataset hyper-parameters of
   MMSSL never leak into the baselines run on the same dataset;
5. the user's config files, config dict and command-line overrides (``cmd_args``), as in RecBole.

Unlike RecBole's Config, this one reads command-line overrides only from ``cmd_args`` (the commands
pass theirs), never from ``sys.argv`` behind the caller's back: a Ray worker's, pytest's or another
script's own flags are not settings. Values given as text are parsed as Python literals, never
evaluated (a checkpoint's stored config must not be able to run code).

Every setting the user gives is checked before any data is loaded (:meth:`Config.check_user_keys`):
a key that no RecBole option, model, dataset or plugin file defines is refused with the closest
valid name, unless the user declares it with ``extra_keys: [name, ...]``; known keys get their type
and range checked (learning rates > 0, integer epochs >= 1, ``variant`` in its set, ...; the key
lists and the rules live in :mod:`recbole_mmssl.config_rules`). Errors name the key and where its
value came from (the command line, or the config file and line).

A model class may define ``resolve_config(config)``: it is called last, so that keys left null can
be derived from others (MMSSL fills its variant-dependent switches this way).
"""

import ast
import math
import os
import sys

import torch
import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import InputType, ModelType

from recbole_mmssl.config_rules import (CHECKS, EXTRA_KEYS, PROPERTIES_DIR, closest, is_model_name, is_number,
                                        known_keys, metric_names, model_names)
from recbole_mmssl.errors import ConfigError, DataError, UsageError, read_utf8_text
from recbole_mmssl.registry import get_model


def plugin_property_files(model, dataset):
    """Plugin yaml files for ``model`` on ``dataset``, lowest priority first (missing ones skipped)."""
    candidates = [
        os.path.join(PROPERTIES_DIR, "overall.yaml"),
        os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml"),
        os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml"),
    ]
    return [path for path in candidates if os.path.isfile(path)]


def parse_cli_value(text):
    """A command-line or config-dict string as RecBole reads it, but parsed, never evaluated."""
    if not isinstance(text, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.strip().lower()
        return True if lowered == "true" else False if lowered == "false" else text
    return value if isinstance(value, (str, int, float, list, tuple, dict, bool, type(None))) else text


# ----------------------------------------------------------------------------- config files

def read_config_file(path, loader):
    """A user config file as ({key: value}, {key: line}); every problem names the file (and line)."""
    fix = "give existing yaml files of `key: value` lines, comma-separated: --config_files=a.yaml,b.yaml"
    text = read_utf8_text(path, "config file not found", "is a folder, not a config file", fix,
                          utf8_fix="save the config file as UTF-8")
    try:
        node = yaml.compose(text, Loader=loader)
        values = yaml.load(text, Loader=loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        opened = getattr(err, "context_mark", None)
        where = f"{path} line {mark.line + 1}" if mark is not None else path
        problem = " ".join(str(p) for p in (getattr(err, "context", None), getattr(err, "problem", None)) if p)
        if opened is not None and mark is not None and opened.line != mark.line:
            problem += f"; the construct starts on line {opened.line + 1}"
        problem = " ".join(str(problem or err).split())  # the reader's own message spans lines
        raise DataError(where, f"not valid YAML ({problem})",
                        "fix the syntax at that line (a config file holds `key: value` lines)") from None
    if values is None:
        return {}, {}
    if not isinstance(values, dict):
        raise DataError(path, f"holds a YAML {type(values).__name__}, not `key: value` lines", fix)
    lines = {}
    for key_node, _ in node.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in lines:
            raise DataError(f"{path} line {line}", f"`{key}` is set twice (lines {lines[key]} and {line}); "
                                                   "the later value would win without a word",
                            "keep one of the two lines")
        lines[key] = line
    return values, lines


# ----------------------------------------------------------------------------- the Config

class Config(RecBoleConfig):
    """RecBole configuration that knows the plugin's models and property files and checks its input.

    ``cmd_args``: ``--key=value`` overrides (highest priority). ``strict=False`` skips the checks of
    unknown keys and values (a checkpoint's own stored config, validated when it was trained).
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None,
                 strict=True):
        self._cmd_args = list(cmd_args or [])
        self._strict = strict
        self.key_sources = {}
        self.notes = []  # warnings for the log (keys that do nothing for this model)
        super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)

    # -- reading the user's input, remembering where each key came from ------------------------
    def _convert_config_dict(self, config_dict):
        return {key: parse_cli_value(value) for key, value in config_dict.items()}

    def _load_config_files(self, file_list):
        merged = {}
        for path in file_list or []:
            values, lines = read_config_file(path, self.yaml_loader)
            merged.update(values)
            self.key_sources.update({key: f"{path} line {line}" for key, line in lines.items()})
        return merged

    def _load_variable_config_dict(self, config_dict):
        values = self._convert_config_dict(config_dict) if config_dict else {}
        self.key_sources.update({key: "config dict" for key in values})
        return values

    def _load_cmd_line(self):
        raw = {}
        for arg in self._cmd_args:
            key, found, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
            if not found or not key:
                raise UsageError(arg, "a config override is written --key=value", f"write it as --{key or 'key'}=VALUE")
            if key in raw and raw[key] != value:
                raise UsageError(f"--{key}", f"given twice with different values ({raw[key]!r} and {value!r})",
                                 "give it once")
            raw[key] = value
        self.key_sources.update({key: f"command line --{key}={value}" for key, value in raw.items()})
        return self._convert_config_dict(raw)

    def source_of(self, key):
        """Where the user set ``key`` (command line, file and line, config dict), or None for a default."""
        return self.key_sources.get(key)

    # -- model and dataset ---------------------------------------------------------------------
    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError("model", "no model given",
                                  "pass --model=NAME (MMSSL or any RecBole model), or set `model` in a config file")
        if isinstance(model, str):
            try:
                model_class = get_model(model)
            except ValueError:
                near = closest(model, model_names())
                raise ConfigError("model", f"Unknown model {model!r}" + (f"; did you mean `{near}`?" if near else ""),
                                  f"pass --model={near or 'MMSSL'} (MMSSL, another plugin model, or a RecBole model "
                                  "such as LightGCN, SGL, NCL, BPR)", self.source_of("model")) from None
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise ConfigError("dataset", "no dataset given",
                                  "pass --dataset=NAME, or set `dataset` in a config file")
        if not isinstance(dataset, str) or not dataset.strip() or dataset in (".", "..") \
                or "/" in dataset or "\\" in dataset:
            raise ConfigError("dataset", f"{dataset!r} is not a dataset name (a folder name under data_path)",
                              "pass the folder's name and its parent separately: --dataset=NAME --data_path=DIR",
                              self.source_of("dataset"))
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        for path in plugin_property_files(model, dataset):
            with open(path, "r", encoding="utf-8") as f:
                values = yaml.load(f.read(), Loader=self.yaml_loader) or {}
            model_blocks = {
                key: values.pop(key)
                for key in list(values)
                if isinstance(values[key], dict) and is_model_name(key)
            }
            self.internal_config_dict.update(values)
            self.internal_config_dict.update(model_blocks.get(model, {}))
            if os.path.basename(os.path.dirname(path)) == "dataset":
                known = self.parameters["Dataset"]
                known += [key for key in values if key not in known]

    # -- checks, before any data is loaded -------------------------------------------------------
    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        if self._strict:
            self.check_user_keys(final)
        return final

    def _error(self, key, problem, fix):
        return ConfigError(key, problem, fix, self.source_of(key))

    def check_user_keys(self, final):
        """Refuse unknown keys and bad values among the keys the user set (``final`` is updated)."""
        user_keys = [key for key in self.external_config_dict if key not in ("model", "dataset")]
        declared = self.external_config_dict.get(EXTRA_KEYS) or []
        if EXTRA_KEYS in self.external_config_dict:
            final[EXTRA_KEYS] = self._checked(EXTRA_KEYS, declared, CHECKS[EXTRA_KEYS])
        general, per_model, model_code = known_keys()
        every = general.union(model_code, *per_model.values())
        unknown = [key for key in user_keys if key not in every and key not in declared]
        if unknown:
            raise self._unknown_keys_error(unknown, every)
        own = per_model.get(self.model, set())
        for key in user_keys:
            if key not in general and key not in own and key not in declared:
                owners = sorted(m for m, keys in per_model.items() if key in keys)
                if owners:
                        self.notes.append(
                        f"`{key}` ({self.source_of(key)}) is a setting of {', '.join(owners[:5])}"
                        f"{' ...' if len(owners) > 5 else ''}, not of {self.model}: it has no effect here.")
        module = sys.modules.get(getattr(self.model_class, "__module__", ""), None)
        for key in user_keys:
            value = final[key]
            check = CHECKS.get(key)
            if check is not None:
                choices = getattr(module, check.choices_attr, None) if check.choices_attr else None
                if check.choices_attr and choices is None:
                    continue  # e.g. `variant` of a model that does not say its set: its own code checks it
                final[key] = self._checked(key, value, check, sorted(choices) if choices else None)
            else:
                self._check_like_default(key, value)
        if {"topk", "metrics", "valid_metric"} & set(user_keys):
            self._check_metrics(final)
        self._check_data_layout(final, user_keys)

    def _check_data_layout(self, final, user_keys):
        """Settings RecBole's loader accepts and then fails on, deep in data preparation."""
        splits = final.get("benchmark_filename")
        if "benchmark_filename" in user_keys and splits is not None and len(set(splits)) != 3:
            raise self._error("benchmark_filename", f"expected three different split names (train, valid, test), "
                                                    f"got {splits!r}",
                              "set `benchmark_filename: [train, valid, test]` for NAME.train.inter, NAME.valid.inter "
                              "and NAME.test.inter, or null for one NAME.inter")
        load_col = final.get("load_col")
        if "load_col" in user_keys and isinstance(load_col, dict) and "inter" not in load_col:
            raise self._error("load_col", f"leaves out the interaction files ('inter'): {load_col!r}; RecBole would "
                                          "load no interactions",
                              "add the interaction columns, e.g. `load_col: {inter: [user_id, item_id]}`, or set it "
                              "to null to load every column")

    def _unknown_keys_error(self, unknown, every):
        parts = []
        for key in unknown:
            near = closest(key, every)
            parts.append(f"`{key}`" + (f" (did you mean `{near}`?)" if near else ""))
        first = unknown[0]
        near = closest(first, every)
        problem = "unknown key" + (f"; did you mean `{near}`?" if near else "")
        if len(unknown) > 1:
            problem += f"; other unknown keys: {', '.join(parts[1:])}"
        return ConfigError(
            first, problem,
            (f"use `{near}`" if near else "check the spelling against the model's and RecBole's yaml files")
            + f"; a free-form key of your own must be declared in a config file: `{EXTRA_KEYS}: [{first}]`",
            self.source_of(first))

    def _checked(self, key, value, check, choices=None):
        try:
            return check.normalise(value, choices)
        except ValueError as err:
            default = self.internal_config_dict.get(key)
            hint = f" (default: {default!r})" if default is not None else ""
            raise self._error(key, f"expected {err}, got {value!r}", f"set `{key}` to {err}{hint}") from None

    def _check_like_default(self, key, value):
        """Keys without a declared check: a number where the default is a number, a bool for a bool."""
        default = self.internal_config_dict.get(key)
        if isinstance(default, bool):
            if not isinstance(value, bool) and value is not None:
                raise self._error(key, f"expected True or False, got {value!r}",
                                  f"set `{key}` to True or False (default: {default!r})")
        elif is_number(default) and value is not None:
            if not is_number(value) or (isinstance(value, float) and math.isnan(value)):
                raise self._error(key, f"expected a number, got {value!r}",
                                  f"set `{key}` to a number (default: {default!r})")

    def _check_metrics(self, final):
        names, topk_based = metric_names()
        topk = final["topk"]
        ks = topk if isinstance(topk, list) else [topk]
        if not ks or not all(is_number(k) and float(k) == int(k) and k >= 1 for k in ks):
            raise self._error("topk", f"expected a positive integer or a list of them, got {topk!r}",
                              "set `topk` to e.g. [10, 20, 50]")
        metrics = final["metrics"]
        metrics = [metrics] if isinstance(metrics, str) else metrics
        if not isinstance(metrics, list) or not metrics:
            raise self._error("metrics", f"expected a list of metric names, got {metrics!r}",
                              "set `metrics` to e.g. [Recall, NDCG]")
        for metric in metrics:
            if str(metric).lower() not in names:
                near = closest(metric, names.values())
                raise self._error("metrics", f"unknown metric {metric!r}" + (f"; did you mean `{near}`?" if near else ""),
                                  f"use RecBole's metric names: {', '.join(sorted(names.values()))}")
        valid = final["valid_metric"]
        computed = []
        for metric in metrics:
            name = str(metric).lower()
            computed += [f"{name}@{int(k)}" for k in ks] if name in topk_based else [name]
        if not isinstance(valid, str) or valid.lower() not in computed:
            key = "valid_metric" if self.source_of("valid_metric") else ("topk" if self.source_of("topk") else "metrics")
            raise self._error(key, f"valid_metric {valid!r} is not among the computed metrics "
                                   f"({', '.join(computed[:12])}{' ...' if len(computed) > 12 else ''}); training "
                                   "would stop at the first validation",
                              "make `valid_metric` one of `metrics` at one of the `topk` cut-offs, e.g. Recall@20 "
                              "with 20 in topk")

    # -- RecBole's defaults and the model's own resolution ---------------------------------------
    def _set_default_parameters(self):
        data_root = self.final_config_dict["data_path"]
        if not isinstance(data_root, str):
            raise self._error("data_path", f"expected a folder path, got {data_root!r}", "set `data_path` to a folder")
        try:
            super()._set_default_parameters()
        except (ValueError, TypeError, NotImplementedError, RuntimeError) as err:
            raise ConfigError("configuration", f"RecBole refused it: {err}",
                              "correct the setting this names (see RecBole's documentation of it)") from None
        # RecBole redirects ml-100k to the ratings-only copy inside its wheel; the plugin's
        # ml-100k is the multimodal copy built under data_path (see data/default_dataset.py).
        self.final_config_dict["data_path"] = os.path.join(data_root, self.dataset)
        resolve = getattr(self.model_class, "resolve_config", None)
        if callable(resolve):
            try:
                resolve(self)
            except ValueError as err:
                raise ConfigError(self.model, str(err), "set the key it names to one of the values listed") from None

    def _init_device(self):
        """A ``device`` the user asks for is checked and applied (RecBole would ignore it and pick the
        device from ``gpu_id``, quietly falling back to the CPU without CUDA); and ``use_gpu: False``
        means the CPU (RecBole 1.2.1 puts the model on CUDA whenever a GPU exists and ``gpu_id`` is set,
        whatever ``use_gpu`` says). CUDA_VISIBLE_DEVICES is left as RecBole sets it from ``gpu_id``, so a
        CPU and a GPU run can share a process."""
        asked = self.external_config_dict.get("device") if self._strict else None
        if asked is not None:
            from recbole_mmssl.devices import check_device

            try:
                device = check_device(str(asked))
            except UsageError as err:
                raise self._error("device", err.problem, err.fix) from None
            self.final_config_dict["use_gpu"] = device.type == "cuda"
            if device.type == "cuda":
                self.final_config_dict["gpu_id"] = str(device.index or 0)
        super()._init_device()
        if self.final_config_dict.get("single_spec") and self.final_config_dict.get("use_gpu") is False:
            self.final_config_dict["device"] = torch.device("cpu")

    def _set_train_neg_sample_args(self):
        try:
            super()._set_train_neg_sample_args()
        except (ValueError, KeyError, TypeError) as err:
            raise self._error("train_neg_sample_args", f"RecBole refused it: {err}",
                              "set it to null or {distribution: uniform, sample_num: 1}") from None
        if self._strict and self.final_config_dict["train_neg_sample_args"]["distribution"] == "none" \
                and self._trains_on_sampled_negatives():
            raise self._error("train_neg_sample_args",
                              f"{self.model} trains on pairs of a positive and a sampled negative item, and this "
                              "turns negative sampling off (RecBole would stop in the first batch: KeyError "
                              "'neg_item_id')",
                              "leave the key out (the model's default) or set it to {distribution: uniform, "
                              "sample_num: 1}")

    def _trains_on_sampled_negatives(self):
        """Whether the model's loss reads the negative items RecBole's loader samples for it."""
        if getattr(self.model_class, "samples_own_negatives", False):
            return False  # e.g. MMSSL, whose trainer draws its own (recbole_mmssl/sampler.py)
        if self.final_config_dict["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            return self.final_config_dict.get("loss_type") == "BPR"
        return getattr(self.model_class, "input_type", None) == InputType.PAIRWISE

    def _set_eval_neg_sample_args(self, phase):
        try:
            super()._set_eval_neg_sample_args(phase)
        except (ValueError, KeyError, TypeError) as err:
            raise self._error("eval_args", f"RecBole refused its mode for {phase}: {err}",
                              "use mode full, labeled, uniN or popN") from None


