"""Fine-tuning MISSRec from a pre-trained checkpoint: which weights transfer, which stay frozen.

The authors (``finetune.py``) load the pre-trained state dict with ``strict=False`` and, by default
(``-f True``), freeze the position embedding and the whole Transformer (encoder and decoder), so
fine-tuning trains the modality adapters, the LayerNorm of the item tokens, the fusion scale and, in
the transductive setting, the new item ID embedding. Here the same, with two checks the authors'
``strict=False`` skips: a weight is taken only when the pre-trained model has it under the same name
and with the same shape (a modality adapter is matched by the modality's name), and a checkpoint that
gives none of the Transformer's weights is refused. Buffers (the pre-training domain's interest
centroids and lookups) never transfer: interests are discovered again on the new domain.
"""

from recbole_mmssl.errors import DataError

DEFAULT_FREEZE = ("position_embedding", "trm_model")


def transferable_weights(model, pretrained_state):
    """({name: tensor} of parameters to copy, [names skipped and why])."""
    own = dict(model.named_parameters())
    take, skipped = {}, []
    for name, value in pretrained_state.items():
        if name not in own:
            skipped.append(f"{name} (not a parameter of this model)")
        elif own[name].shape != value.shape:
            skipped.append(f"{name} (shape {tuple(value.shape)} there, {tuple(own[name].shape)} here)")
        else:
            take[name] = value
    return take, skipped


def load_pretrained(model, state, path):
    """Copy the transferable parameters of checkpoint ``state`` (a plugin checkpoint dict) into ``model``.

    Returns (loaded names, skipped descriptions). Raises DataError when ``state`` is not a MISSRec
    checkpoint or gives none of the Transformer's weights.
    """
    saved_model = state.get("config", {}).get("model")
    if saved_model != "MISSRec":
        raise DataError(path, f"is a checkpoint of {saved_model!r}, not of MISSRec",
                        "pass `pretrained:` a MISSRec checkpoint (e.g. of a train_stage: pretrain run)")
    take, skipped = transferable_weights(model, state["state_dict"])
    if not any(name.startswith("trm_model.") for name in take):
        raise DataError(path, "gives none of the Transformer's weights of this model (other sizes: "
                              f"{'; '.join(s for s in skipped if s.startswith('trm_model.'))[:200] or 'none found'})",
                        "pre-train with the same n_layers, n_heads, hidden_size and inner_size as the fine-tuning")
    own = dict(model.named_parameters())
    for name, value in take.items():
        own[name].data.copy_(value.to(own[name].device))
    return sorted(take), skipped


def freeze(model, prefixes):
    """Turn off gradients for every parameter whose name starts with one of ``prefixes``; return the names."""
    frozen = []
    for name, param in model.named_parameters():
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            param.requires_grad_(False)
            frozen.append(name)
    unknown = [p for p in prefixes if not any(n == p or n.startswith(p + ".") for n in frozen)]
    if unknown:
        names = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise ValueError(f"freeze names {unknown}, which are not parts of the model ({', '.join(names)})")
    return frozen
