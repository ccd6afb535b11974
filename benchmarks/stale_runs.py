"""Finished or stopped runs whose settings are no longer what their spec gives.

compare.py keeps a finished run and continues a stopped one from its ``.last.pth``. Both are wrong once
a default changed under the same label (a model's property file, the shared protocol): the kept row
would show numbers of other settings, the continued run would mix two. So before keeping or
continuing, the run's recorded settings (its json's ``config``, its checkpoint's ``config``) are
compared with the settings the spec resolves to now; a run that differs is set aside, never deleted
(json and log into ``runs/<dataset>/superseded/``, the checkpoint folder renamed), and trained again.

Compared: the keys both configs have, except those that name where or how a run ran rather than what
it trained (paths, device, logging), and the epoch cap ``epochs``: raising the cap to continue a
stopped run is intended (a finished run keeps the cap it ran under; the reports show each row's cap). A key only one side has is not a difference: new keys come with
defaults that keep the earlier behaviour, and old records lack them. Nor are the keys a run sets from
its data (``ADAPTED_TO_DATA``, e.g. NCL's ``num_clusters`` capped on small data): the record holds the
adapted value, the spec the default.
"""

import os

#: Keys that do not change what a run computes.
NOT_SETTINGS = {
    "gpu_id", "use_gpu", "device", "worker", "state", "data_path", "checkpoint_dir", "show_progress",
    "save_dataset", "dataset_save_path", "save_dataloaders", "dataloaders_save_path", "log_wandb",
    "wandb_project", "eval_batch_size", "seed", "single_spec", "local_rank", "world_size", "nproc",
    "offset", "ip", "port", "feature_cache", "threads", "epochs",
}


def changed_settings(recorded, current):
    """[(key, recorded value, current value)] for every setting both configs have and that differs."""
    if not isinstance(recorded, dict):
        return []
    from recbole_mmssl.quick_start import ADAPTED_TO_DATA

    changed = []
    for key in sorted(set(recorded) & set(current)):
        if key in NOT_SETTINGS or key in ADAPTED_TO_DATA:
            continue
        old, new = recorded[key], current[key]
        if _normal(old) != _normal(new):
            changed.append((key, old, new))
    return changed


def _normal(value):
    """Tuples and lists alike (json has no tuples); 1 and 1.0 alike."""
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def describe(changed, limit=4):
    """``reg_weight 2.0 -> 0.1, item_bias True -> False`` (the first ``limit`` keys)."""
    text = ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changed[:limit])
    return text + (f" and {len(changed) - limit} more" if len(changed) > limit else "")


def set_aside(paths, runs_dir, checkpoint_dir=None):
    """Move a run's files into ``runs_dir/superseded/`` (numbered if a name is taken) and rename its
    checkpoint folder to ``<folder>.superseded-N``; returns where everything went."""
    moved = []
    target_dir = os.path.join(runs_dir, "superseded")
    for path in paths:
        if not os.path.exists(path):
            continue
        os.makedirs(target_dir, exist_ok=True)
        target = _free_name(os.path.join(target_dir, os.path.basename(path)))
        os.replace(path, target)
        moved.append(target)
    if checkpoint_dir and os.path.isdir(checkpoint_dir):
        target = _free_name(checkpoint_dir.rstrip(os.sep) + ".superseded")
        os.replace(checkpoint_dir, target)
        moved.append(target)
    return moved


def _free_name(path):
    if not os.path.exists(path):
        return path
    stem, ext = os.path.splitext(path)
    n = 2
    while os.path.exists(f"{stem}.{n}{ext}"):
        n += 1
    return f"{stem}.{n}{ext}"
