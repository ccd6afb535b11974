"""MISSRecTrainer: RecBole's Trainer plus interest discovery before every epoch and fine-tuning set-up.

The authors' ``MISSRecTrainer._train_epoch`` runs the k-means interest discovery before each training
epoch; so does this one, seeded from the run's ``seed`` and the epoch, so that a resumed run discovers
the same interests as an uninterrupted one. With ``pretrained: PATH`` the trainer copies the
pre-trained MISSRec's weights into the model and freezes the ``freeze`` parts before training
(:mod:`recbole_mmssl.model.missrec.transfer`). Everything else (validation, early stopping, full
ranking, the plugin's tensor-only checkpoints and ``--resume``) is RecBole's and the plugin's.
"""

import time

from recbole.trainer import Trainer

from recbole_mmssl.checkpoint import TensorCheckpointMixin, load_checkpoint
from recbole_mmssl.model.missrec.transfer import freeze, load_pretrained

SEED_STRIDE = 1_000_003  # epoch e of a run with seed s discovers interests with seed s * stride + e


class MISSRecTrainer(TensorCheckpointMixin, Trainer):
    """Trainer for :class:`recbole_mmssl.model.missrec.MISSRec`."""

    def __init__(self, config, model):
        super().__init__(config, model)
        path = config["pretrained"]
        if path:
            state = load_checkpoint(path)
            loaded, skipped = load_pretrained(model, state, path)
            self.logger.info(f"MISSRec: {len(loaded)} weights from {path} ({state['config'].get('dataset')}); "
                             f"not taken: {', '.join(skipped) or 'none'}")
            frozen = freeze(model, list(config["freeze"] or []))
            self.logger.info(f"MISSRec: frozen {len(frozen)} weights ({', '.join(config['freeze'] or []) or 'none'})")
            model.discover_interests(seed=int(config["seed"]))  # with the pre-trained adapters

    def interest_seed(self, epoch_idx):
        return int(self.config["seed"]) * SEED_STRIDE + int(epoch_idx)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        started = time.time()
        self.model.discover_interests(self.interest_seed(epoch_idx))
        self.logger.debug(f"MISSRec interests ({self.model.n_interests}) discovered in {time.time() - started:.2f}s")
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
