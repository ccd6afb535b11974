"""Early-stopping patience that does not count a model's warm-up epochs.

    patience_after_warm_up: True   # plugin default (properties/overall.yaml)

NCL (Lin et al., WWW 2022) trains without its prototype loss for its first ``warm_up_step`` epochs
(RecBole's NCLTrainer); only then is the whole model trained. RecBole's early stopping counts those
epochs too, so with patience 15 and warm-up 20 a run can end five epochs after its full loss starts.
On ml-100k that ended NCL runs that were still on the untrained plateau (BPR loss at ln 2 per pair)
before they left it, while a run with other values left it at epoch ~27. With this key, the epochs
before ``warm_up_step`` do not count: patience starts at the first epoch of the full loss. Models
without ``warm_up_step`` (every other model here) are unchanged; ``False`` restores RecBole's count.
The best epoch and its checkpoint are kept exactly as RecBole keeps them.
"""


class WarmUpPatienceMixin:
    """Trainer mixin: keeps RecBole's ``cur_step`` from counting validations inside the warm-up.

    RecBole's ``fit`` calls ``_valid_epoch`` and then ``early_stopping(score, best, self.cur_step, ...)``,
    which sets ``cur_step`` to 0 on an improvement and adds one otherwise. Setting it to -1 here during
    the warm-up makes either outcome 0, so no warm-up epoch counts toward the patience.
    """

    _epoch_in_training = None

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._epoch_in_training = epoch_idx
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def warm_up_epochs(self):
        """Epochs whose validation does not count toward the patience (0 when the key is off)."""
        if not self.config["patience_after_warm_up"]:
            return 0
        return int(self.config["warm_up_step"] or 0)

    def _valid_epoch(self, valid_data, show_progress=False):
        result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if self._epoch_in_training is not None and self._epoch_in_training < self.warm_up_epochs():
            self.cur_step = -1
        return result
