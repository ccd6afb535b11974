r"""MMSSL: multi-modal self-supervised learning for recommendation.

Reference:
    Wei Wei, Chao Huang, Lianghao Xia, Chuxu Zhang. "Multi-Modal Self-Supervised Learning for
    Recommendation." In WWW 2023. Released code: github.com/HKUDS/MMSSL.

docs/mmssl_spec.md describes what is computed, step by step; the section numbers below refer to it.
Two variants share this class (config ``variant``): ``paper`` (the method as the paper describes it,
with the released code's defects fixed) and ``released`` (the released code's behaviour, quirks
included). Each behaviour that differs is its own config key, filled from the variant by
:meth:`MMSSL.resolve_config` when left null, so any fix can be switched alone.

Training is adversarial (a critic step, then a generator step, per iteration) and is driven by
:class:`recbole_mmssl.trainer.MMSSLTrainer`; this class holds the parameters, the forward pass, the
losses and the modality graphs.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from recbole_mmssl.model.mmssl import critic as critic_ops
from recbole_mmssl.model.common.dropout import IntMaskDropout
from recbole_mmssl.model.mmssl.graphs import ModalityGraphs
from recbole_mmssl.model.common.inputs import modality_features, training_pairs
from recbole_mmssl.model.common.graph_ops import bipartite_graphs, propagate
from recbole_mmssl.model.common.losses import bpr_loss, half_squared_norm, info_nce
from recbole_mmssl.model.common.scoring import DotProductScores
from recbole_mmssl.model.mmssl.attention import ATTENTIONS, layer_softmax_gnn

GP_FACTOR = 0.3  # the released code's hard-coded gradient-penalty weight (times gp_rate)
RELEASED_LR_DECAY = (0.96, 50)  # its scheduler: lr * 0.96 ** (epoch / 50) (recbole_mmssl/lr_schedule.py)

# Variant-dependent switches (each a config key; null in MMSSL.yaml = the variant's value).
VARIANT_PRESETS = {
    "released": {
        "attention": "degenerate",
        "critic_slope": 1.0,
        "graph_schedule": "released",
        "pair_layout": "tiled",
        "topk_exclude_train": False,
        "min_topk": 0,
        "max_modalities": 2,
        "real_rows": "released",
    },
    "paper": {
        "attention": "multihead",
        "critic_slope": 0.2,
        "graph_schedule": "accumulate",
        "pair_layout": "aligned",
        "topk_exclude_train": True,
        "min_topk": 1,
        "max_modalities": 0,
        "real_rows": "tempered",
    },
}


def window_for_coverage(batch_size, n_users, coverage):
    """Smallest window T (in batches) with 1 - (1 - B/U)^T >= coverage: the chance that a user drawn
    B-of-U per batch was in one of the last T batches, i.e. has modality edges (spec "Variants")."""
    share = min(1.0, batch_size / max(n_users, 1))
    if share >= 1.0 or coverage <= 0:
        return 1
    return max(1, math.ceil(math.log(1.0 - min(coverage, 1.0 - 1e-12)) / math.log(1.0 - share)))


def graph_period(config, n_users):
    """Batches per modality-graph period: the released rebuild period ``T``, or the accumulate window
    ``graph_window`` (null: the smallest one covering ``graph_coverage`` of the users)."""
    if config["graph_schedule"] == "released":
        return int(config["T"])
    if config["graph_window"] is not None:
        return int(config["graph_window"])
    return window_for_coverage(int(config["train_batch_size"]), n_users, float(config["graph_coverage"]))


@dataclass
class MMSSLOutput:
    """What one forward pass gives (spec 1.3): fused embeddings and the per-modality views."""

    user: torch.Tensor  # u*, (n_users, d)
    item: torch.Tensor  # i*, (n_items, d)
    feat_user: list  # H_u^m per modality, (n_users, d)
    feat_item: list  # H_i^m per modality, (n_items, d)
    id_user: list  # E_u^m per modality, (n_users, d)
    id_item: list  # E_i^m per modality, (n_items, d)


class MMSSL(DotProductScores, GeneralRecommender):
    r"""MMSSL (Wei et al., WWW 2023) as a RecBole general recommender.

    Item features of each modality are encoded and propagated one hop over the interaction graph;
    ID embeddings are propagated over modality-aware graphs rebuilt from the top-k of generated
    relation rows; a cross-modal attention fuses those views into the ID embeddings, an alternating
    GNN propagates them, and the propagated features are added back. A critic (WGAN-GP) pushes the
    feature-only relation rows towards Gumbel-perturbed interactions plus the fused scores, and a
    cross-modal InfoNCE aligns the modality views with the fused user embeddings.
    """

    input_type = InputType.PAIRWISE
    requires_modalities = True
    samples_own_negatives = True  # its trainer's sampler draws them, whatever train_neg_sample_args says

    @staticmethod
    def _apply_variant_settings(config, variant):
        """A dataset's values for one variant only (``variant_settings: {paper: {key: value}}`` in its
        MMSSL block, e.g. what validation chose for `paper` on TikTok), so that the `released` variant
        keeps the released code's values there. A key the user sets wins."""
        settings = config["variant_settings"] or {}
        if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
            raise ValueError(f"MMSSL: variant_settings must map a variant to its key: value settings, "
                             f"e.g. {{paper: {{cl_rate: 0}}}}; got {settings!r}.")
        unknown = sorted(set(settings) - set(VARIANT_PRESETS))
        if unknown:
            raise ValueError(f"MMSSL: variant_settings names unknown variant(s) {unknown}; "
                             f"variants are {sorted(VARIANT_PRESETS)}.")
        user_set = getattr(config, "source_of", lambda key: None)
        for key, value in settings.get(variant, {}).items():
            if user_set(key) is None:
                config[key] = value

    @classmethod
    def resolve_config(cls, config):
        """Fill the variant-dependent keys left null from the chosen variant; check the variant."""
        variant = config["variant"] or "paper"
        if variant not in VARIANT_PRESETS:
            raise ValueError(
                f"MMSSL: unknown variant {variant!r}; set `variant` to one of {sorted(VARIANT_PRESETS)}."
            )
        config["variant"] = variant
        for key, value in VARIANT_PRESETS[variant].items():
            if config[key] is None:
                config[key] = value
        cls._apply_variant_settings(config, variant)
        if config["critic_path"] is None:
            config["critic_path"] = "fast"
        if config["attention"] not in ATTENTIONS:
            raise ValueError(f"MMSSL: attention must be one of {sorted(ATTENTIONS)}, got {config['attention']!r}.")
        if config["real_rows"] not in critic_ops.REAL_ROW_FORMS:
            raise ValueError(
                f"MMSSL: real_rows must be one of {list(critic_ops.REAL_ROW_FORMS)}, got {config['real_rows']!r}."
            )
        if config["critic_path"] not in ("fast", "dense"):
            raise ValueError(f"MMSSL: critic_path must be 'fast' or 'dense', got {config['critic_path']!r}.")
        for key in ("log_log_scale", "ui_pre_scale", "real_data_tau", "critic_slope"):
            if config[key] is not None:
                config[key] = float(config[key])  # the released code typed some of these as int
        if config["scheduler_step"] and config["lr_decay"] is None:
            # the released code's LambdaLR (built there, never stepped; spec 1.7.4), stepped each epoch
            config["lr_decay"], config["lr_decay_epochs"] = RELEASED_LR_DECAY

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.resolve_config(config)
        names, features, masks = modality_features(dataset, self.device)
        self._read_config(config)
        self.modality_names = self._select_modalities(names, config["max_modalities"])
        self.n_real_items = self.n_items - 1  # internal item 0 is RecBole's padding

        users, items, self.train_csr = training_pairs(dataset, self.device)  # R binary (spec 1.1)
        ones = torch.ones(users.shape[0], device=self.device)
        self.norm_ui, self.norm_iu = bipartite_graphs(users, items, ones, self.n_users, self.n_items)

        # Raw features stay plain tensors (not buffers): they are data, not state to checkpoint.
        self.features = {n: features[n] for n in self.modality_names}
        self.feature_masks = {n: masks[n].float().unsqueeze(1) for n in self.modality_names}

        d = self.embedding_size
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.encoders = nn.ModuleDict({n: nn.Linear(self.features[n].shape[1], d) for n in self.modality_names})
        self.attention = ATTENTIONS[config["attention"]](d, config["head_num"])
        self.dropout = IntMaskDropout(config["drop_rate"])
        self._init_weights()

        self.topk = max(int(self.n_real_items * config["m_topk_rate"]), int(config["min_topk"]))
        self.n_active_users = int((np.diff(self.train_csr.indptr) > 0).sum())
        self.graph_period = graph_period(config, self.n_active_users)
        self.graphs = ModalityGraphs(
            self.modality_names, users, items, self.n_users, self.n_items,
            schedule=config["graph_schedule"], period=self.graph_period, k=self.topk,
            layout=config["pair_layout"], exclude_train=bool(config["topk_exclude_train"]),
        )
        self.logger.info(
            f"MMSSL variant={config['variant']}: modalities {self.modality_names}, attention "
            f"{config['attention']}, graphs {config['graph_schedule']} (period {self.graph_period} batches, k={self.topk}, "
            f"{config['pair_layout']} pairs, train items {'excluded' if config['topk_exclude_train'] else 'kept'})"
        )

    def _read_config(self, config):
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.batch_size = config["train_batch_size"]
        self.reg_weight = config["reg_weight"]
        self.feat_reg_decay = config["feat_reg_decay"]
        self.cl_rate = config["cl_rate"]
        self.tau = config["tau"]
        self.model_cat_rate = config["model_cat_rate"]
        self.id_cat_rate = config["id_cat_rate"]
        self.G_rate = config["G_rate"]
        self.gp_rate = config["gp_rate"]
        self.real_data_tau = config["real_data_tau"]
        self.ui_pre_scale = config["ui_pre_scale"]
        self.log_log_scale = config["log_log_scale"]
        self.real_row_form = config["real_rows"]
        if self.n_layers is None or self.n_layers < 0:
            raise ValueError(f"MMSSL: n_layers must be >= 0, got {self.n_layers}.")

    def _select_modalities(self, names, cap):
        names = list(names)
        if cap and len(names) > cap:
            self.logger.info(f"MMSSL: using the first {cap} modalities {names[:cap]} of {names} (max_modalities).")
            names = names[:cap]
        for name in names:
            if not name.isidentifier():
                raise ValueError(
                    f"MMSSL: modality name {name!r} is not a plain identifier; rename the "
                    f"<dataset>.{name}_feat file (letters, digits, underscores)."
                )
        return names

    def _init_weights(self):
        """Spec 1.2: xavier_uniform over each real-id table (padding row 0 zero), xavier encoders."""
        for table in (self.user_embedding.weight, self.item_embedding.weight):
            with torch.no_grad():
                table[0].zero_()
            nn.init.xavier_uniform_(table.data[1:])
        for encoder in self.encoders.values():
            nn.init.xavier_uniform_(encoder.weight)

    # -- forward (spec 1.3) ---------------------------------------------------------------------
    def encode_features(self, name):
        """F_m = Dropout(X_m W_m^T + b_m), zero for items without a feature row (they never enter)."""
        return self.dropout(self.encoders[name](self.features[name])) * self.feature_masks[name]

    def forward(self):
        user_emb, item_emb = self.user_embedding.weight, self.item_embedding.weight
        feat_user, feat_item, id_user, id_item = [], [], [], []
        for name in self.modality_names:
            h_u = propagate(self.norm_ui, self.encode_features(name))
            feat_user.append(h_u)
            feat_item.append(propagate(self.norm_iu, h_u))
            g_ui, g_iu = self.graphs.graph(name)
            id_user.append(propagate(g_ui, item_emb))
            id_item.append(propagate(g_iu, user_emb))
        user0 = user_emb + self.id_cat_rate * F.normalize(self.attention(id_user), dim=1)
        item0 = item_emb + self.id_cat_rate * F.normalize(self.attention(id_item), dim=1)
        user_bar, item_bar = layer_softmax_gnn(self.norm_ui, self.norm_iu, user0, item0, self.n_layers)
        user = user_bar + self.model_cat_rate * sum(F.normalize(h, dim=1) for h in feat_user)
        item = item_bar + self.model_cat_rate * sum(F.normalize(h, dim=1) for h in feat_item)
        return MMSSLOutput(user, item, feat_user, feat_item, id_user, id_item)

    # -- relation rows and losses (spec 1.4, 1.6) -----------------------------------------------
    @staticmethod
    def relation_rows(user_table, item_table, users, train_rows):
        """S = norm((P_u[users] P_i^T) * (1 - R[users])) over the real items (padding column dropped)."""
        return critic_ops.generated_rows(user_table[users], item_table[1:], train_rows)

    def discriminator_loss(self, critic, users, train_rows):
        """L_D of spec 1.6b from a no-grad forward (train mode); returns (loss, parts)."""
        with torch.no_grad():
            out = self.forward()
            fused = self.relation_rows(out.user, out.item, users, train_rows)
            fake = critic_ops.cat_rows([
                self.relation_rows(h_u, h_i, users, train_rows) for h_u, h_i in zip(out.feat_user, out.feat_item)
            ])
        d_fake = critic(fake).mean()
        real = critic_ops.real_rows(
            train_rows, fused, self.real_data_tau, self.log_log_scale, self.ui_pre_scale, form=self.real_row_form
        )
        real = critic_ops.repeat_rows(real, len(self.modality_names))
        d_real = critic(real).mean()
        alpha = torch.rand(users.shape[0] * len(self.modality_names), 1, device=users.device)
        penalty = critic.gradient_penalty(critic_ops.interpolate(real, fake, alpha))
        loss = -d_real + d_fake + GP_FACTOR * self.gp_rate * penalty
        return loss, {"d_loss": loss, "d_real": d_real, "d_fake": d_fake, "d_penalty": penalty}

    def generator_loss(self, critic, users, positives, negatives, train_rows):
        """Total generator-side loss of spec 1.6h from a with-grad forward.

        Returns (loss, parts, generated rows per modality); the rows feed the graph bookkeeping.
        """
        out = self.forward()
        u, p, n = out.user[users], out.item[positives], out.item[negatives]
        bpr = bpr_loss(u, p, n)
        emb = self.reg_weight * half_squared_norm(u, p, n) / self.batch_size
        generated = [self.relation_rows(h_u, h_i, users, train_rows) for h_u, h_i in zip(out.feat_user, out.feat_item)]
        feat = self.feat_reg_decay * half_squared_norm(*out.feat_item, *out.feat_user) / self.n_real_items
        per_modality_cl = [info_nce(e_u[users], out.user[users], self.tau) for e_u in out.id_user]
        cl = sum(per_modality_cl)
        adversarial = -critic(critic_ops.cat_rows(generated)).mean()
        loss = bpr + emb + feat + self.cl_rate * cl + self.G_rate * adversarial
        parts = {"loss": loss, "bpr": bpr, "emb_l2": emb, "feat_l2": feat, "infonce": cl, "g_adv": adversarial}
        for name, value in zip(self.modality_names, per_modality_cl):
            parts[f"infonce_{name}"] = value
        return loss, parts, generated

    def update_graphs(self, batch_idx, users, generated, train_rows):
        """Modality-graph bookkeeping of spec 1.5 after a generator step (affects later iterations)."""
        scores = None
        if self.graphs.will_append(batch_idx):
            # Top-k needs each row's order only: the unscaled masked scores have it (one GEMM each).
            scores = {name: rows.detach().masked_scores() for name, rows in zip(self.modality_names, generated)}
        if self.graphs.observe(batch_idx, users, scores, train_rows):
            self.drop_eval_cache()

    def calculate_loss(self, interaction):
        raise NotImplementedError(
            "MMSSL is trained adversarially (a critic step, then a generator step, per iteration) "
            "by recbole_mmssl.trainer.MMSSLTrainer; RecBole's single-loss Trainer cannot train it. "
            "Run it through recbole_mmssl.quick_start.run_recbole_mmssl or get_trainer."
        )

    # -- prediction (DotProductScores: predict, full_sort_predict, cached in eval mode) -----------
    def score_tables(self):
        """(u*, i*) for scoring; cached in eval mode until training resumes or the graphs change."""
        out = self.forward()
        return out.user, out.item

    # -- state beyond parameters: the modality graphs (tensors only) ------------------------------
    def other_parameter(self):
        return self.graphs.state()

    def load_other_parameter(self, para):
        if para is None:
            return
        self.graphs.load_state(para, self.device)
        self.drop_eval_cache()
