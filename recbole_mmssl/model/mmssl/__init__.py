"""MMSSL (Wei et al., WWW 2023): the model, its critic, relation rows and modality graphs."""

from recbole_mmssl.model.mmssl.mmssl import MMSSL, VARIANT_PRESETS

__all__ = ["MMSSL", "VARIANT_PRESETS"]
