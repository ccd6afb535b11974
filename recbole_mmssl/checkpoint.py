"""Checkpoints of tensors and plain data only, for every trainer the plugin runs, and safe resuming.

RecBole pickles its whole Config into checkpoints; torch>=2.6 refuses to load those with
``weights_only=True`` (the default), and a pickle can run code. The mixin below replaces RecBole's
save and load with a format that ``torch.load(..., weights_only=True)`` accepts, without any
process-wide override, and adds what resuming needs: the RNG states and a "last epoch" checkpoint
written at the end of every epoch (so Ctrl-C or a crash loses at most the running epoch).

Two files per run: ``saved/<Model>-<time>.pth`` holds the best epoch on validation (RecBole's
meaning, used by ``evaluate``), ``saved/<Model>-<time>.last.pth`` the last finished epoch (used by
``--resume``). Both are complete: either can be evaluated or resumed.

A run never writes over another run's files. A new run claims its file name when it starts (a
second run started in the same second gets ``<Model>-<time>-1.pth``), and every checkpoint records
its run (a random id), the dataset's fingerprint and the config. ``--resume`` continues a run only
when nothing that shapes training differs: same model, dataset name, data (fingerprint of the
loaded interactions, id maps and features) and settings (all but :data:`RESUMABLE_KEYS`); otherwise
it refuses, listing every difference, before anything is written. A resumed run writes beside the
checkpoint it continues from (or into ``checkpoint_dir`` when the user set it), never back into the
folder the checkpoint was first written to.

Every checkpoint carries an integrity digest of its tensors and data, checked on every load
(recbole_mmssl/checkpoint_digest.py).
"""

import hashlib
import itertools
import os
import pickle
import random
import re
import shlex
import shutil
import uuid
from logging import getLogger

import numpy as np
import torch
from recbole.utils import set_color

from recbole_mmssl.atomic_write import atomic_file, signals_held
from recbole_mmssl.checkpoint_digest import digest_mismatch, state_digest
from recbole_mmssl.epoch_history import EpochHistory
from recbole_mmssl.errors import DataError

FORMAT_VERSION = 1

# Settings that may change when a run is continued: how long and how patiently it trains, where
# files are, how much it prints, implementation choices with the same maths, and the seed (the RNG
# states themselves are restored from the checkpoint).
RESUMABLE_KEYS = {
    "epochs", "stopping_step", "patience_after_warm_up", "seed", "show_progress", "state", "data_path",
    "checkpoint_dir", "gpu_id", "use_gpu",
    "eval_batch_size", "worker", "log_wandb", "wandb_project", "loss_decimal_place", "metric_decimal_place",
    "feature_cache", "critic_matmul", "critic_path", "save_dataset", "save_dataloaders", "dataset_save_path",
    "dataloaders_save_path",
}


def last_checkpoint_path(best_path):
    """``saved/X.pth`` -> ``saved/X.last.pth``."""
    root, ext = os.path.splitext(best_path)
    return f"{root}.last{ext or '.pth'}"


# Set by RecBole for the running process (device, distributed rank, derived types): never restored.
RUNTIME_KEYS = {"device", "local_rank", "single_spec", "world_size", "nproc", "offset", "ip", "port",
                "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "valid_neg_sample_args", "test_neg_sample_args"}


def newest_last_checkpoint(checkpoint_dir):
    """The newest ``.last.pth`` in a run's own checkpoint folder (None without folder or file)."""
    if not checkpoint_dir or not os.path.isdir(checkpoint_dir):
        return None
    lasts = [os.path.join(checkpoint_dir, n) for n in os.listdir(checkpoint_dir) if n.endswith(".last.pth")]
    return max(lasts, key=os.path.getmtime) if lasts else None


def other_parameters(model):
    """RecBole's ``other_parameter()`` without the submodules some models list there (FDSA, SASRecF and
    GRU4RecF list their ``feature_embed_layer``): a module's tensors are in the state dict already, and
    the module itself is a Python object that a tensors-only checkpoint cannot hold."""
    import torch

    return {key: value for key, value in model.other_parameter().items() if not isinstance(value, torch.nn.Module)}


def plain_config(config):
    """The config as plain data (no enums, devices or classes), enough to rebuild it later."""
    plain = {
        key: value
        for key, value in config.final_config_dict.items()
        if key not in RUNTIME_KEYS and _is_plain(value)
    }
    # RecBole stores data_path joined with the dataset name; keep the root to rebuild the config.
    plain["data_path"] = os.path.dirname(os.path.normpath(config["data_path"]))
    return plain


def _is_plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def dataset_fingerprint(dataset):
    """What identifies a loaded dataset for resuming: sha256 over its interactions (internal ids, in
    file order), the token of every internal id, the split sizes, and every feature tensor; plus counts
    for the message. Cheap (one pass over arrays already in memory)."""
    digest = hashlib.sha256()

    def add(name, data):
        digest.update(name.encode() + b"\0")
        digest.update(data)

    inter = dataset.inter_feat  # a DataFrame until RecBole's data_preparation, then an Interaction
    for field in sorted(inter.columns):
        add(f"inter:{field}", _column_bytes(inter[field]))
    for field in (dataset.uid_field, dataset.iid_field):
        add(f"tokens:{field}", "\x1f".join(map(str, dataset.field2id_token[field])).encode())
    add("splits", repr(list(getattr(dataset, "file_size_list", None) or [])).encode())
    item_feat = getattr(dataset, "item_feat", None)
    if item_feat is not None:
        for field in sorted(item_feat.columns):
            add(f"item:{field}", _column_bytes(item_feat[field]))
    for name in getattr(dataset, "modality_names", None) or []:
        add(f"modality:{name}", dataset.modality_features[name].numpy().tobytes())
        add(f"mask:{name}", dataset.modality_masks[name].numpy().tobytes())
    return {"sha256": digest.hexdigest(), "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1),
            "interactions": int(len(inter))}


def _column_bytes(column):
    """The bytes of one column of a DataFrame or Interaction (sequence fields: each row's values)."""
    values = column.numpy() if isinstance(column, torch.Tensor) else column.to_numpy()
    if values.dtype == object:
        return b"\x1e".join(np.asarray(v).tobytes() for v in values)
    return np.ascontiguousarray(values).tobytes()


def rng_state():
    """torch, numpy and python RNG states as tensors and plain data."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
        "python": random.getstate(),
    }


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    random.setstate(_as_tuples(state["python"]))


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def atomic_save(state, path):
    """Write ``state`` with its integrity digest to a temporary name, then rename: a crash or a full
    disk never leaves a truncated checkpoint, nor a temporary file; a Ctrl-C or SIGTERM during the
    write stops the program once the file is complete (see atomic_write.signals_held)."""
    with signals_held(), atomic_file(path) as f:
        torch.save({**state, "digest": state_digest(state)}, f)


def atomic_copy(src, dst):
    """Copy a file under a temporary name, then rename: ``dst`` is whole or absent."""
    with open(src, "rb") as source, atomic_file(dst) as f:
        shutil.copyfileobj(source, f)


_RETRAIN = "pass a saved/<Model>-<time>.pth or .last.pth written by run_recbole_mmssl.py, or train again"


def load_checkpoint(path, device="cpu"):
    """Load a plugin checkpoint (onto the CPU; callers move tensors where they need them).

    Every file that is not one (missing, empty, a folder, a RecBole pickle, another torch file) is a
    DataError saying which and why. ``device`` is accepted for compatibility and not used: RNG states
    must stay on the CPU, and loading never needs a GPU.
    """
    path = str(path)
    if not os.path.exists(path):
        raise DataError(path, "checkpoint not found", _RETRAIN)
    if os.path.isdir(path):
        raise DataError(path, "is a folder, not a checkpoint file", _RETRAIN)
    if os.path.getsize(path) == 0:
        raise DataError(path, "is an empty file (0 bytes): the run that made it stopped before its first "
                              "epoch was saved, or the file was not copied completely", _RETRAIN)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if not found:  # not a pickle of objects: not a file torch.save wrote at all
            raise DataError(path, "is not a recbole-mmssl checkpoint (not a file written by torch.save)",
                            _RETRAIN) from None
        holds = f"a Python object of type {found.group(1)}"
        raise DataError(
            path,
            f"is not a recbole-mmssl checkpoint (tensors and plain data only): it holds {holds}. Checkpoints "
            "written by RecBole's own trainer are pickles and are not loaded, since loading them can run code",
            "retrain through run_recbole_mmssl.py",
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for files that are not its own
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise DataError(path, f"is not a recbole-mmssl checkpoint ({type(err).__name__}: {first})",
                        _RETRAIN) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or "config" not in state:
        raise DataError(path, f"is not a recbole-mmssl checkpoint (format {FORMAT_VERSION})", _RETRAIN)
    check_integrity(state, path)
    return state


def check_integrity(state, path):
    """Refuse a checkpoint whose tensors or data differ from what was saved (recbole_mmssl/checkpoint_digest.py).

    Checkpoints written before digests existed carry none: they load, with a warning that they cannot be
    checked (refusing them would strand every earlier run).
    """
    if "digest" not in state:
        getLogger().warning(f"{path} carries no integrity digest (written by an earlier version): it cannot be "
                            "checked for damage; saving it again (e.g. by continuing the run) adds one.")
        return
    problem = digest_mismatch(state)
    if problem:
        raise DataError(path, f"is damaged or was changed after it was saved: {problem}",
                        "use an intact copy of this checkpoint (or the run's other file, X.pth or X.last.pth), "
                        "or train again")


def _peek_run(path):
    """The run id recorded in checkpoint ``path`` (memory-mapped: only the small fields are read)."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError("not a recbole-mmssl checkpoint")
    return state.get("run")


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b  # True == 1 in Python, not as a setting
    return a == b


def resume_differences(state, config, fingerprint=None):
    """Everything that keeps ``state`` from being continued as the run ``config`` describes.

    One line per difference: model, dataset name, data fingerprint, then every setting outside
    :data:`RESUMABLE_KEYS` (``epochs`` may grow, files may move).
    """
    saved, now = state["config"], plain_config(config)
    diffs = []
    for key in ("model", "dataset"):
        if saved.get(key) != now.get(key):
            diffs.append(f"{key}: the checkpoint's is {saved.get(key)!r}, this run's is {now.get(key)!r}")
    data = state.get("data")
    if fingerprint and data and data.get("sha256") != fingerprint["sha256"]:
        def counts(f):
            return f"{f['users']} users x {f['items']} items, {f['interactions']} interactions"

        diffs.append(f"data: the checkpoint was trained on other data ({counts(data)}, fingerprint "
                     f"{data['sha256'][:12]}) than this run loaded ({counts(fingerprint)}, fingerprint "
                     f"{fingerprint['sha256'][:12]})")
    only_saved, only_now = [], []
    for key in sorted(set(saved) | set(now)):
        if key in ("model", "dataset") or key in RESUMABLE_KEYS:
            continue
        if key not in now:
            only_saved.append(key)
        elif key not in saved:
            only_now.append(key)
        elif not _same(saved[key], now[key]):
            diffs.append(f"`{key}`: checkpoint {_show(saved[key])}, now {_show(now[key])}")
    if only_saved:
        diffs.append(f"settings only the checkpoint has: {', '.join(only_saved)}")
    if only_now:
        diffs.append(f"settings only this run has: {', '.join(only_now)}")
    return diffs


class TensorCheckpointMixin:
    """Replace RecBole's pickled checkpoints with tensor-only ones; write a resumable last epoch.

    Subclasses add their own state through ``_extra_checkpoint_state`` /
    ``_load_extra_checkpoint_state`` (MMSSL: the critic and its optimiser). Callers may set
    ``dataset_fingerprint`` (recorded and checked on resume) and ``command_line`` (the argv of the
    command, so that Ctrl-C prints the whole command that continues the run). ``epoch_history``
    (recbole_mmssl/epoch_history.py) holds every validated epoch of the run, resumed ones included,
    and goes into each checkpoint.
    """

    dataset_fingerprint = None
    epoch_history = None
    command_line = None
    run_id = None
    _resumed = False
    _claimed = None

    def _extra_checkpoint_state(self):
        return {}

    def _load_extra_checkpoint_state(self, state):
        pass

    def _checkpoint_state(self, epoch):
        return {
            "format": FORMAT_VERSION,
            "run": self.run_id,
            "data": self.dataset_fingerprint,
            "config": plain_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": _plain_result(self.best_valid_result),
            "best_model_file": self.saved_model_file,
            "state_dict": self.model.state_dict(),
            "other_parameter": other_parameters(self.model),
            "optimizer": self.optimizer.state_dict(),
            "rng": {**rng_state(), "train_loader": self._train_loader_rng()},
            "extra": self._extra_checkpoint_state(),
            "history": list(self.epoch_history.entries) if self.epoch_history is not None else [],
        }

    def _train_loader_rng(self):
        """RecBole's train loader shuffles with a generator of its own: part of the RNG state."""
        loader = getattr(self, "_train_loader", None)
        generator = getattr(loader, "generator", None)
        return generator.get_state() if generator is not None else None

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        atomic_save(self._checkpoint_state(epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _save_last_checkpoint(self, epoch):
        atomic_save(self._checkpoint_state(epoch), last_checkpoint_path(self.saved_model_file))

    def _claim_run_files(self):
        """Reserve this new run's file names: never those of another run (even one started this second).

        The best-epoch file is created empty (O_EXCL, so two processes cannot both get it) and is
        filled by the first save; it is removed again if the run stops before that.
        """
        root, ext = os.path.splitext(self.saved_model_file)
        os.makedirs(os.path.dirname(self.saved_model_file) or ".", exist_ok=True)
        for n in itertools.count():
            path = f"{root}{'' if n == 0 else f'-{n}'}{ext}"
            if os.path.exists(last_checkpoint_path(path)):
                continue
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:
                continue
            break
        self.saved_model_file = self._claimed = path
        self.run_id = uuid.uuid4().hex

    def _release_empty_claim(self):
        if self._claimed and os.path.isfile(self._claimed) and os.path.getsize(self._claimed) == 0:
            os.unlink(self._claimed)

    def resume_checkpoint(self, resume_file, state=None):
        """Continue a run where its checkpoint stopped: same epoch, optimiser, RNG and best so far.

        Refuses (DataError, every difference listed) a checkpoint of another model, dataset, data or
        setting, and one whose run files now belong to another run. Nothing is written before these
        checks pass.
        """
        resume_file = str(resume_file)
        state = state if state is not None else load_checkpoint(resume_file)
        diffs = resume_differences(state, self.config, self.dataset_fingerprint)
        if diffs:
            raise DataError(
                resume_file,
                f"cannot continue this run: {diffs[0]}" + "".join(f"\n  and {d}" for d in diffs[1:]),
                "resume with the model, dataset and settings the checkpoint was trained with (only "
                f"{', '.join(sorted(RESUMABLE_KEYS & {'epochs', 'stopping_step', 'data_path', 'checkpoint_dir'}))} "
                "and output settings may change), or start a new run without --resume",
            )
        start_epoch = state["epoch"] + 1
        best_file = self._resume_best_file(resume_file)
        for target in (best_file, last_checkpoint_path(best_file)):
            if os.path.realpath(target) == os.path.realpath(resume_file) or not os.path.isfile(target):
                continue
            try:
                owner = _peek_run(target) if os.path.getsize(target) else state.get("run")
            except Exception:  # noqa: BLE001 - any unreadable file is not this run's
                owner = object()
            if owner != state.get("run"):
                raise DataError(target, f"is not a checkpoint of the run of {resume_file}; continuing that run "
                                        "would write over it",
                                "move that file away, or resume from the checkpoint of the run it belongs to")
        copy_best_from = self._best_epoch_source(resume_file, state, best_file)
        try:
            self.model.load_state_dict(state["state_dict"])
            self.model.load_other_parameter(state["other_parameter"])
            self.optimizer.load_state_dict(state["optimizer"])
            self._load_extra_checkpoint_state(state["extra"])
        except (RuntimeError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0]
            raise DataError(resume_file, f"cannot be loaded into this run's model: {first}",
                            "resume with the code, model and settings the checkpoint was trained with") from None
        self.start_epoch = start_epoch
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state["best_valid_result"]
        self.saved_model_file = best_file
        os.makedirs(os.path.dirname(best_file) or ".", exist_ok=True)
        if copy_best_from:
            atomic_copy(copy_best_from, best_file)
            self.logger.info(f"Copied the best epoch so far from {copy_best_from} to {best_file}")
        self.run_id = state.get("run")
        self.epoch_history = EpochHistory.from_checkpoint(state)
        self._resumed = True
        set_rng_state(state["rng"])
        self._pending_loader_rng = state["rng"].get("train_loader")
        self.logger.info(f"Checkpoint {resume_file} loaded. Resume training from epoch {self.start_epoch}")

    def _resume_best_file(self, resume_file):
        """Where a resumed run keeps its best epoch: beside ``--resume`` (X.last.pth -> X.pth), or in
        ``checkpoint_dir`` when the user set it. Never the folder the checkpoint was first written to:
        a copied checkpoint continues in its copy's place, and the original run stays as it was."""
        folder = os.path.dirname(os.path.abspath(resume_file))
        source_of = getattr(self.config, "source_of", None)
        if source_of is not None and source_of("checkpoint_dir"):
            folder = os.path.abspath(self.config["checkpoint_dir"])
        root, ext = os.path.splitext(os.path.basename(resume_file))
        return os.path.join(folder, (root[: -len(".last")] if root.endswith(".last") else root) + ext)

    def _best_epoch_source(self, resume_file, state, best_file):
        """The file to copy the best epoch so far from when ``best_file`` is not there yet (None if it
        is); refused when neither place has it, since the run could not be evaluated at its end."""
        if (os.path.isfile(best_file) and os.path.getsize(best_file)) or \
                os.path.realpath(best_file) == os.path.realpath(resume_file):
            return None
        recorded = state.get("best_model_file")
        if recorded and os.path.isfile(recorded) and os.path.getsize(recorded):
            try:
                same_run = _peek_run(recorded) == state.get("run")
            except Exception:  # noqa: BLE001 - an unreadable file is not this run's best epoch
                same_run = False
            if same_run:
                return recorded
        raise DataError(resume_file, f"the best epoch so far of this run ({os.path.basename(best_file)}) is neither "
                                     f"at {best_file} nor at {recorded}, where it was written; the continued run "
                                     "could not be evaluated at its end",
                        f"copy {os.path.basename(best_file)} of that run beside {os.path.basename(resume_file)}, or "
                        "pass --checkpoint_dir=FOLDER of the folder that holds both")

    def load_model_from(self, model_file):
        """Load the model parameters (and graphs, for MMSSL) of a checkpoint for evaluation."""
        state = load_checkpoint(model_file)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state["other_parameter"])
        self.logger.info(f"Loading model structure and parameters from {model_file}")

    def resume_command(self, last):
        """The command that continues this run from ``last``: the original command with --resume
        replaced, or just the flag when the trainer was not started by a command."""
        if not self.command_line:
            return f"--resume={last}"
        args, skip = [], False
        for arg in self.command_line:
            if skip:
                skip = False
                continue
            if arg == "--resume":
                skip = True
                continue
            if not arg.startswith("--resume="):
                args.append(arg)
        return shlex.join(args + [f"--resume={last}"])

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_loader = train_data
        pending = getattr(self, "_pending_loader_rng", None)
        if pending is not None and getattr(train_data, "generator", None) is not None:
            train_data.generator.set_state(pending)
            self._pending_loader_rng = None

        if self.epoch_history is None:
            self.epoch_history = EpochHistory()
        history = self.epoch_history
        history.start()
        self._train_epoch = history.timed(self._train_epoch)  # this instance only, whatever class defines it

        def end_of_epoch(epoch_idx, valid_score):
            history.record(epoch_idx, valid_score)  # before the save: the .last.pth holds this epoch too
            self._add_valid_result_to_tensorboard(epoch_idx)
            if saved:
                self._save_last_checkpoint(epoch_idx)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        try:
            if saved and not self._resumed and self._claimed is None:
                self._claim_run_files()
            if self._resumed and self.start_epoch >= self.epochs:
                # RecBole would save the current (last) model over the best epoch's file here.
                self.logger.warning(f"The resumed run already trained {self.start_epoch} of {self.epochs} epoch(s): "
                                    "nothing left to train (pass --epochs=N to train longer); its best epoch is kept.")
                self.eval_collector.data_collect(train_data)
                return self.best_valid_score, self.best_valid_result
            return super().fit(
                train_data, valid_data, verbose=verbose, saved=saved,
                show_progress=show_progress, callback_fn=end_of_epoch,
            )
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (recbole_mmssl.cli raises it as one)
            self._release_empty_claim()
            self._say_how_to_continue(saved, getattr(err, "what", "Interrupted"))
            err.reported = True  # recbole_mmssl.cli: this one warning is all the user needs
            raise
        except OSError as err:  # e.g. a full disk while saving: the last finished epoch is intact
            self._release_empty_claim()
            self._say_how_to_continue(saved, f"Stopped ({err.strerror or err})")
            raise
        except BaseException:
            self._release_empty_claim()
            raise
        finally:
            del self._train_epoch  # the class's own again

    def _say_how_to_continue(self, saved, headline):
        """One warning: where the last finished epoch is and the whole command that continues the run."""
        last = last_checkpoint_path(self.saved_model_file)
        if saved and os.path.isfile(last) and os.path.getsize(last) > 0:
            self.logger.warning(f"{headline}. The last finished epoch is in {last}; continue with: "
                                f"{self.resume_command(last)}")
        else:
            self.logger.warning(f"{headline} before the first epoch was saved: there is nothing to continue from.")

    def _valid_epoch(self, valid_data, show_progress=False):
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self._last_valid_result = valid_result
        return valid_score, valid_result

    def _add_valid_result_to_tensorboard(self, epoch_idx):
        """Every validation metric per epoch (RecBole itself logs only the selection score)."""
        result = getattr(self, "_last_valid_result", None)
        for metric, value in (result or {}).items():
            self.tensorboard.add_scalar(f"Valid/{metric}", value, epoch_idx)
        self._last_valid_result = None

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            self.load_model_from(model_file or self.saved_model_file)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


def _plain_result(result):
    return None if result is None else {str(k): float(v) for k, v in result.items()}
