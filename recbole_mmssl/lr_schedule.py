"""A per-epoch learning-rate decay that any model's config can name (RecBole's Trainer has none).

    lr_decay: 0.96        # the learning rate at epoch e is learning_rate * lr_decay ** (e / lr_decay_epochs)
    lr_decay_epochs: 50

This is the schedule of LATTICE's authors' code (``LambdaLR(optimizer, lambda e: 0.96 ** (e / 50))``,
stepped after every training epoch; Zhang et al., MM 2021, github.com/CRIPAC-DIG/LATTICE) and of
MMRec's trainer (``learning_rate_scheduler: [0.96, 50]``). MMSSL's released code builds the same
schedule (``scheduler_step: True`` turns it on, see MMSSL's ``resolve_config``). Without ``lr_decay``
(or with 1.0) no scheduler exists and nothing changes. The scheduler's state is part of the
plugin's checkpoints, so a continued run resumes the decay where it stopped.
"""

import torch

DEFAULT_DECAY_EPOCHS = 50


def build_lr_scheduler(optimizer, config):
    """A LambdaLR for ``config``'s ``lr_decay`` / ``lr_decay_epochs``, or None when there is no decay."""
    rate = config["lr_decay"]
    if rate is None or float(rate) == 1.0:
        return None
    period = float(config["lr_decay_epochs"] or DEFAULT_DECAY_EPOCHS)
    rate = float(rate)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: rate ** (epoch / period))


class LRDecayMixin:
    """Trainer mixin (placed before ``TensorCheckpointMixin``): builds the scheduler after the
    optimiser, steps it after each training epoch, saves and restores its state.

    Trainers that define their own ``_train_epoch`` without calling the base one (MMSSL's) call
    :meth:`_step_lr_schedule` at the end of it.
    """

    lr_scheduler = None

    def __init__(self, config, model):
        super().__init__(config, model)
        self.lr_scheduler = build_lr_scheduler(self.optimizer, config)

    def _step_lr_schedule(self):
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        losses = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self._step_lr_schedule()
        return losses

    def _extra_checkpoint_state(self):
        state = super()._extra_checkpoint_state()
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        return state

    def _load_extra_checkpoint_state(self, state):
        super()._load_extra_checkpoint_state(state)
        saved = state.get("lr_scheduler", state.get("scheduler"))  # "scheduler": MMSSL's earlier checkpoints
        if self.lr_scheduler is not None and saved is not None:
            self.lr_scheduler.load_state_dict(saved)
