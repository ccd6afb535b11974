"""Model and trainer lookup: the plugin's own first, then RecBole's built-ins, unchanged.

RecBole's ``get_model`` only searches ``recbole.model``; ``run_recbole`` therefore cannot run a plugin
model. Built-in trainers are wrapped with the tensor-only checkpoint mixin (torch>=2.6 refuses
RecBole's pickled checkpoints) and the per-epoch learning-rate decay that a config can name
(``lr_decay``, recbole_mmssl/lr_schedule.py; off unless set), and their early-stopping patience does not
count a model's warm-up epochs (``patience_after_warm_up``, recbole_mmssl/patience.py; only NCL has
one); everything else about them is RecBole's.
"""

import importlib

from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

# model name -> (module, trainer class path or None for RecBole's default trainer)
PLUGIN_MODELS = {
    "MMSSL": ("recbole_mmssl.model.mmssl", "recbole_mmssl.trainer.MMSSLTrainer"),
    # MMSSL's multimodal peers: RecBole's own Trainer (with tensor-only checkpoints) unless they need more.
    "VBPR": ("recbole_mmssl.model.vbpr", None),
    "MMGCN": ("recbole_mmssl.model.mmgcn", None),
    "SLMRec": ("recbole_mmssl.model.slmrec", None),
    "LATTICE": ("recbole_mmssl.model.lattice", None),
    "BM3": ("recbole_mmssl.model.bm3", None),
    "FREEDOM": ("recbole_mmssl.model.freedom", None),
    # sequential: MISSRec's trainer discovers interests before every epoch
    "MISSRec": ("recbole_mmssl.model.missrec", "recbole_mmssl.model.missrec.trainer.MISSRecTrainer"),
}


def _import(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def get_model(model_name):
    """The model class for ``model_name``: plugin models first, then RecBole's."""
    if model_name in PLUGIN_MODELS:
        module, _ = PLUGIN_MODELS[model_name]
        return getattr(importlib.import_module(module), model_name)
    import torch

    # RecBole's lookup imports whole model packages on its way (find_spec imports the parents), and
    # recbole/model/sequential_recommender/sine.py turns on torch's anomaly detection for the whole
    # process at import: slow, and it raises on harmless NaN gradients of masked sqrt/rsqrt terms.
    anomaly = torch.is_anomaly_enabled()
    try:
        return recbole_get_model(model_name)
    except (ValueError, ImportError, AttributeError):  # AttributeError: `bpr` finds RecBole's module bpr, no class
        # RecBole's lookup imports its optional xgboost/lightgbm models on the way to "not found".
        raise ValueError(
            f"Unknown model {model_name!r}: use MMSSL or a RecBole model name (e.g. LightGCN, SGL, NCL, BPR)."
        ) from None
    finally:
        torch.set_anomaly_enabled(anomaly)


_SAFE_TRAINERS = {}


def get_trainer(model_type, model_name):
    """The trainer class for ``model_name``: tensor-only checkpoints, ``lr_decay``, ``patience_after_warm_up``."""
    if model_name in PLUGIN_MODELS and PLUGIN_MODELS[model_name][1]:
        return _import(PLUGIN_MODELS[model_name][1])
    base = recbole_get_trainer(model_type, model_name)
    if base not in _SAFE_TRAINERS:
        from recbole_mmssl.checkpoint import TensorCheckpointMixin
        from recbole_mmssl.lr_schedule import LRDecayMixin
        from recbole_mmssl.patience import WarmUpPatienceMixin

        mixins = (WarmUpPatienceMixin, LRDecayMixin, TensorCheckpointMixin, base)
        _SAFE_TRAINERS[base] = type(base.__name__, mixins, {"__module__": __name__})
    return _SAFE_TRAINERS[base]
