"""Checkpoints of tensors and plain data only, for every trainer the plugin runs.

RecBole pickles its whole Config into checkpoints; torch>=2.6 refuses to load those with
``weights_only=True`` (the default), and a pickle can run code. The mixin below replaces RecBole's
save and load with a format that ``torch.load(..., weights_only=True)`` accepts, without any
process-wide override, and adds what resuming needs: the RNG states and a "last epoch" checkpoint
written at the end of every epoch (so Ctrl-C or a crash loses at most the running epoch).

Two files per run: ``saved/<Model>-<time>.pth`` holds the best epoch on validation (RecBole's
meaning, used by ``evaluate``), ``saved/<Model>-<time>.last.pth`` the last finished epoch (used by
``--resume``). Both are complete: either can be evaluated or resumed.
"""

import os
import random
import numpy as np
import torch
from recbole.utils import set_color

FORMAT_VERSION = 1


def last_checkpoint_path(best_path):
    """``saved/X.pth`` -> ``saved/X.last.pth``."""
    root, ext = os.path.splitext(best_path)
    return f"{root}.last{ext or '.pth'}"


# Set by RecBole for the running process (device, distributed rank, derived types): never restored.
RUNTIME_KEYS = {"device", "local_rank", "single_spec", "world_size", "nproc", "offset", "ip", "port",
                "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "valid_neg_sample_args", "test_neg_sample_args"}


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
    """Write to a temporary name, then rename: a crash never leaves a truncated checkpoint."""
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, device="cpu"):
    """Load a plugin checkpoint; a RecBole pickle gets a clear message instead of an unpickling error."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"Checkpoint not found: {path}") from None
    except Exception as err:  # torch raises UnpicklingError (and others) for non-weights-only files
        raise ValueError(
            f"{path} is not a recbole-mmssl checkpoint (tensors and plain data only): {err}. "
            "Checkpoints written by RecBole's own trainer are pickles and are not loaded, "
            "since loading them can run code; retrain through run_recbole_mmssl.py."
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a recbole-mmssl checkpoint (format {FORMAT_VERSION}).")
    return state


class TensorCheckpointMixin:
    """Replace RecBole's pickled checkpoints with tensor-only ones; write a resumable last epoch.

    Subclasses add their own state through ``_extra_checkpoint_state`` /
    ``_load_extra_checkpoint_state`` (MMSSL: the critic and its optimiser).
    """

    def _extra_checkpoint_state(self):
        return {}

    def _load_extra_checkpoint_state(self, state):
        pass

    def _checkpoint_state(self, epoch):
        return {
            "format": FORMAT_VERSION,
            "config": plain_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": _plain_result(self.best_valid_result),
            "best_model_file": self.saved_model_file,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {**rng_state(), "train_loader": self._train_loader_rng()},
            "extra": self._extra_checkpoint_state(),
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

    def resume_checkpoint(self, resume_file):
        """Continue a run where its checkpoint stopped: same epoch, optimiser, RNG and best so far."""
        state = load_checkpoint(str(resume_file), self.device)
        if state["config"]["model"].lower() != self.config["model"].lower():
            raise ValueError(
                f"{resume_file} was trained with model {state['config']['model']}, "
                f"not {self.config['model']}: pass --model={state['config']['model']}."
            )
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state["best_valid_result"]
        self.saved_model_file = state["best_model_file"]
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state["other_parameter"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._load_extra_checkpoint_state(state["extra"])
        set_rng_state(state["rng"])
        self._pending_loader_rng = state["rng"].get("train_loader")
        self.logger.info(f"Checkpoint {resume_file} loaded. Resume training from epoch {self.start_epoch}")

    def load_model_from(self, model_file):
        """Load the model parameters (and graphs, for MMSSL) of a checkpoint for evaluation."""
        state = load_checkpoint(model_file, self.device)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state["other_parameter"])
        self.logger.info(f"Loading model structure and parameters from {model_file}")

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._train_loader = train_data
        pending = getattr(self, "_pending_loader_rng", None)
        if pending is not None and getattr(train_data, "generator", None) is not None:
            train_data.generator.set_state(pending)
            self._pending_loader_rng = None

        def end_of_epoch(epoch_idx, valid_score):
            self._add_valid_result_to_tensorboard(epoch_idx)
            if saved:
                self._save_last_checkpoint(epoch_idx)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        try:
            return super().fit(
                train_data, valid_data, verbose=verbose, saved=saved,
                show_progress=show_progress, callback_fn=end_of_epoch,
            )
        except KeyboardInterrupt:
            last = last_checkpoint_path(self.saved_model_file)
            if saved and os.path.exists(last):
                self.logger.warning(f"Interrupted. The last finished epoch is in {last}; continue with --resume={last}")
            raise

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
