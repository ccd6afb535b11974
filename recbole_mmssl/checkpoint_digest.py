"""Integrity digests of checkpoints: what was saved is what is loaded, or the load is refused.

A checkpoint with a few bytes changed inside a tensor still loads (torch does not check its zip
entries' CRC), and the model then gives recommendations that look fine and are not (one item
scoring 1e38 for most users). So every checkpoint carries, under ``"digest"``, the sha256 of each
tensor (its dtype, shape and bytes) and one sha256 of all its plain data, computed when it is
saved; :func:`check_digest` recomputes them on every load and names the first part that differs.
The digest is plain data, so a checkpoint still loads with ``torch.load(..., weights_only=True)``.
"""

import hashlib

import torch

ALGORITHM = "sha256"


def _tensor_bytes(tensor):
    """The raw bytes of a tensor (any dtype, bfloat16 included), as a buffer hashlib can read."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy() if flat.dtype != torch.uint8 else flat.numpy()


def _tensor_digest(tensor):
    digest = hashlib.sha256(f"{tensor.dtype}|{tuple(tensor.shape)}|{tensor.layout}".encode())
    if tensor.layout == torch.sparse_coo:
        parts = (tensor._indices(), tensor._values())
    elif tensor.layout == torch.sparse_csr:
        parts = (tensor.crow_indices(), tensor.col_indices(), tensor.values())
    else:
        parts = (tensor,)
    for part in parts:
        digest.update(_tensor_bytes(part))
    return digest.hexdigest()


def _walk(value, path, tensors, plain):
    if isinstance(value, torch.Tensor):
        tensors[path] = _tensor_digest(value)
    elif isinstance(value, dict):
        plain.update(f"{path}:dict{len(value)}\0".encode())
        for key, item in sorted(value.items(), key=lambda kv: repr(kv[0])):
            _walk(item, f"{path}/{key}" if path else str(key), tensors, plain)
    elif isinstance(value, (list, tuple)):
        plain.update(f"{path}:{type(value).__name__}{len(value)}\0".encode())
        for i, item in enumerate(value):
            _walk(item, f"{path}/{i}" if path else str(i), tensors, plain)
    else:
        plain.update(f"{path}={type(value).__name__}:{value!r}\0".encode())


def state_digest(state):
    """The digest of a checkpoint's state (every key but ``"digest"`` itself)."""
    tensors, plain = {}, hashlib.sha256()
    _walk({k: v for k, v in state.items() if k != "digest"}, "", tensors, plain)
    return {"algorithm": ALGORITHM, "tensors": tensors, "plain": plain.hexdigest()}


def digest_mismatch(state):
    """None if ``state`` matches the digest it carries, else what differs (for the error message).

    Raises KeyError when the state carries no digest (a checkpoint written before digests existed).
    """
    saved = state["digest"]
    now = state_digest(state)
    if not isinstance(saved, dict) or saved.get("algorithm") != ALGORITHM:
        return "its digest record is damaged"
    saved_tensors = saved.get("tensors") or {}
    for name in sorted(set(saved_tensors) | set(now["tensors"])):
        if saved_tensors.get(name) != now["tensors"].get(name):
            what = "is missing" if name not in now["tensors"] else "was added" if name not in saved_tensors \
                else "does not match the digest stored when it was saved"
            return f"tensor {name} {what}"
    if saved.get("plain") != now["plain"]:
        return "its settings or counters do not match the digest stored when it was saved"
    return None
