"""RecBole's Config, taught to find the plugin's models and property files.

RecBole only reads its own ``properties/`` folder and only knows its own models. The plugin adds,
in this order of priority (lowest first, as RecBole does for its own files):

1. RecBole's overall, model and dataset yaml (for built-in models this is all they see of RecBole);
2. ``recbole_mmssl/properties/overall.yaml`` (evaluation protocol shared by every model);
3. ``recbole_mmssl/properties/model/<Model>.yaml`` (plugin models only);
4. ``recbole_mmssl/properties/dataset/<dataset>.yaml``; a block named after the model inside it
   (``MMSSL: {learning_rate: ...}``) applies to that model only, so per-dataset hyper-parameters of
   MMSSL never leak into the baselines run on the same dataset;
5. the user's config files, config dict and command line, as in RecBole.

A model class may define ``resolve_config(config)``: it is called last, so that keys left null can
be derived from others (MMSSL fills its variant-dependent switches this way).
"""

import os

import yaml
from recbole.config import Config as RecBoleConfig

from recbole_mmssl.registry import PLUGIN_MODELS, get_model

PROPERTIES_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "properties")


def plugin_property_files(model, dataset):
    """Plugin yaml files for ``model`` on ``dataset``, lowest priority first (missing ones skipped)."""
    candidates = [
        os.path.join(PROPERTIES_DIR, "overall.yaml"),
        os.path.join(PROPERTIES_DIR, "model", f"{model}.yaml"),
        os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml"),
    ]
    return [path for path in candidates if os.path.isfile(path)]


class Config(RecBoleConfig):
    """RecBole configuration that knows the plugin's models and property files."""

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError(
                    "No model given: pass --model=NAME (MMSSL or any RecBole model), "
                    "or set `model` in a config file or config dict."
                )
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError(
                    "No dataset given: pass --dataset=NAME, or set `dataset` in a config file or dict."
                )
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        for path in plugin_property_files(model, dataset):
            with open(path, "r", encoding="utf-8") as f:
                values = yaml.load(f.read(), Loader=self.yaml_loader) or {}
            model_blocks = {
                key: values.pop(key)
                for key in list(values)
                if isinstance(values[key], dict) and _is_model_name(key)
            }
            self.internal_config_dict.update(values)
            self.internal_config_dict.update(model_blocks.get(model, {}))
            if os.path.basename(os.path.dirname(path)) == "dataset":
                known = self.parameters["Dataset"]
                known += [key for key in values if key not in known]

    def _set_default_parameters(self):
        data_root = self.final_config_dict["data_path"]
        super()._set_default_parameters()
        # RecBole redirects ml-100k to the ratings-only copy inside its wheel; the plugin's
        # ml-100k is the multimodal copy built under data_path (see data/default_dataset.py).
        self.final_config_dict["data_path"] = os.path.join(data_root, self.dataset)
        resolve = getattr(self.model_class, "resolve_config", None)
        if callable(resolve):
            resolve(self)


def _is_model_name(key):
    """A yaml block keyed by a model name (``MMSSL:``, ``LightGCN:``): RecBole's own option names
    are lower-case (or upper-case field names with string values), model names are capitalised."""
    return key in PLUGIN_MODELS or (key[:1].isupper() and not key.isupper())
