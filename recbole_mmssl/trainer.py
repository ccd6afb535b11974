"""MMSSLTrainer: the adversarial training loop of MMSSL inside RecBole's fit/evaluate.

An epoch is floor(n_train / B) + 1 iterations of (spec 1.7, in this order):
sample B users with one positive and one negative each -> critic (D) step on a no-grad forward ->
generator (G) step on a with-grad forward -> modality-graph bookkeeping. The critic has its own
Adam (lr ``D_lr``, betas (0.5, 0.9)); the model is trained by AdamW (lr ``learning_rate``,
``weight_decay``). RecBole's validation, early stopping, full-ranking evaluation and the plugin's
tensor-only checkpoints (critic and its optimiser included, for resuming) are inherited unchanged;
``scheduler_step: True`` decays the learning rate through the plugin's ``lr_decay`` schedule
(recbole_mmssl/lr_schedule.py), stepped after each epoch.
"""

import time
from collections import defaultdict

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from torch.nn.utils.clip_grad import clip_grad_norm_
from tqdm import tqdm

from recbole_mmssl.checkpoint import TensorCheckpointMixin
from recbole_mmssl import threads
from recbole_mmssl.lr_schedule import LRDecayMixin
from recbole_mmssl.model.mmssl.blas import resolve_backend
from recbole_mmssl.model.mmssl.critic import Critic
from recbole_mmssl.sampler import UserUniformSampler

CRITIC_BETAS = (0.5, 0.9)  # the released code's discriminator Adam
PARTS = ("sample", "d_step", "g_step", "graph")


class MMSSLTrainer(LRDecayMixin, TensorCheckpointMixin, Trainer):
    """Trainer for :class:`recbole_mmssl.model.mmssl.MMSSL` (critic step, then generator step)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.sampler = UserUniformSampler(model.train_csr, config["train_batch_size"], self.device)
        matmul = resolve_backend(config["critic_matmul"] or "auto", self.device)
        if self.device.type == "cpu":  # numpy's BLAS takes the critic's symmetric products on any backend
            self.logger.info(threads.apply())
        self.logger.info(f"MMSSL critic: {config['critic_path']} path, products through {matmul}'s BLAS")
        self.critic = Critic(
            model.n_real_items, config["critic_slope"], config["G_drop1"], config["G_drop2"],
            fast=config["critic_path"] == "fast", matmul=matmul,
        ).to(self.device)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config["D_lr"], betas=CRITIC_BETAS)
        self.epoch_log = {}

    def _build_optimizer(self, **kwargs):
        """AdamW with the explicit ``weight_decay`` (the released code's implicit 0.01, spec 1.7.3f)."""
        if self.config["learner"].lower() != "adamw":
            return super()._build_optimizer(**kwargs)
        params = kwargs.pop("params", self.model.parameters())
        return torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=self.weight_decay)

    def _clock(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One MMSSL epoch; ``train_data`` (RecBole's loader) is not iterated: users are sampled."""
        self.model.train()
        self.critic.train()
        n_iter = self.sampler.iterations_per_epoch
        iterator = range(n_iter)
        if show_progress:
            iterator = tqdm(iterator, total=n_iter, ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
        sums = defaultdict(float)
        seconds = dict.fromkeys(PARTS, 0.0)
        names = self.model.modality_names
        for batch_idx in iterator:
            t0 = self._clock()
            users, positives, negatives = self.sampler.sample()
            train_rows = self.sampler.train_rows(users)
            t1 = self._clock()
            d_parts = self._critic_step(users, train_rows)
            t2 = self._clock()
            for name in names:
                sums[f"nnz_{name}_seen"] += self.model.graphs.nnz(name)
            g_parts, generated = self._generator_step(users, positives, negatives, train_rows)
            t3 = self._clock()
            self.model.update_graphs(batch_idx, users, generated, train_rows)
            t4 = self._clock()
            for key, value in {**d_parts, **g_parts}.items():
                sums[key] += value.detach()
            for part, (start, end) in zip(PARTS, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                seconds[part] += end - start
        log = {key: float(value) / n_iter for key, value in sums.items()}
        for key in ("loss", "d_loss"):
            if log[key] != log[key]:
                raise ValueError(f"Training loss is nan ({key} at epoch {epoch_idx})")
        for name in names:
            log[f"nnz_{name}"] = self.model.graphs.nnz(name)
            users, items = self.model.graphs.coverage(name)
            log[f"cover_users_{name}"] = users / max(self.model.n_active_users, 1)
            log[f"cover_items_{name}"] = items / max(self.model.n_real_items, 1)
        log.update({f"time_{part}": value for part, value in seconds.items()})
        self.epoch_log = log
        self._step_lr_schedule()  # this loop replaces the base one, which would step it
        return log["loss"]

    def _critic_step(self, users, train_rows):
        loss, parts = self.model.discriminator_loss(self.critic, users, train_rows)
        self.critic_optimizer.zero_grad()
        loss.backward()
        self.critic_optimizer.step()
        return parts

    def _generator_step(self, users, positives, negatives, train_rows):
        # The critic's own gradients are not needed here (spec 5.5): same model gradients, less work.
        self.critic.requires_grad_(False)
        try:
            loss, parts, generated = self.model.generator_loss(self.critic, users, positives, negatives, train_rows)
            self.optimizer.zero_grad()
            loss.backward()
        finally:
            self.critic.requires_grad_(True)
        if self.clip_grad_norm:
            clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
        self.optimizer.step()
        return parts, generated

    # -- logging --------------------------------------------------------------------------------
    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        log = self.epoch_log
        places = self.config["loss_decimal_place"] or 4
        losses = ", ".join(
            f"{key}: {log[key]:.{places}f}"
            for key in ("loss", "bpr", "infonce", "g_adv", "d_real", "d_fake", "d_penalty")
        )
        nnz = ", ".join(
            f"{name}: {log[f'nnz_{name}']} (users {log[f'cover_users_{name}']:.1%}, items {log[f'cover_items_{name}']:.1%})"
            for name in self.model.modality_names
        )
        parts = ", ".join(f"{part} {log[f'time_{part}']:.2f}s" for part in PARTS)
        return (
            set_color(f"epoch {epoch_idx} training", "green")
            + f" [{set_color('time', 'blue')}: {e_time - s_time:.2f}s ({parts}), {losses}, graph nnz {nnz}]"
        )

    def _add_train_loss_to_tensorboard(self, epoch_idx, losses, tag="Loss/Train"):
        for key, value in self.epoch_log.items():
            group = "Time" if key.startswith("time_") else "Graph" if key.startswith(("nnz_", "cover_")) else "Loss"
            self.tensorboard.add_scalar(f"{group}/{key}", value, epoch_idx)

    # -- checkpoint hooks (TensorCheckpointMixin) ------------------------------------------------
    def _extra_checkpoint_state(self):
        return {**super()._extra_checkpoint_state(), "critic": self.critic.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict()}

    def _load_extra_checkpoint_state(self, state):
        if "critic" not in state:
            raise ValueError(
                "This checkpoint has no MMSSL critic state, so training cannot resume from it; "
                "it can still be evaluated (evaluate with model_file=...)."
            )
        self.critic.load_state_dict(state["critic"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        super()._load_extra_checkpoint_state(state)  # the learning-rate schedule
