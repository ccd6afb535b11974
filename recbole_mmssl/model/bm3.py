r"""BM3: bootstrap latent representations for multi-modal recommendation.

Reference:
    Xin Zhou, Hongyu Zhou, Yong Liu, Zhiwei Zeng, Chunyan Miao, Pengwei Wang, Yuan You, Feijun Jiang.
    "Bootstrap Latent Representations for Multi-modal Recommendation." In WWW 2023. Authors' code:
    github.com/enoche/BM3 (the same model is in MMRec, ``src/models/bm3.py``).
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.loss import EmbLoss
from recbole.utils import InputType
from torch import nn

from recbole_mmssl.model.common.encoders import ModalityProjection
from recbole_mmssl.model.common.graph_ops import user_item_adjacency
from recbole_mmssl.model.common.inputs import modality_features, training_pairs
from recbole_mmssl.model.common.lightgcn import lightgcn_propagate, split_users_items
from recbole_mmssl.model.common.scoring import DotProductScores


def cosine_distance(online, target):
    """1 - mean cosine(online, target) with the target detached (stop-gradient)."""
    return 1.0 - F.cosine_similarity(online, target.detach(), dim=-1).mean()


class BM3(DotProductScores, GeneralRecommender):
    r"""BM3 (Zhou et al., WWW 2023): no negative sampling; a shared predictor and dropout-made target
    views (no gradient) bootstrap the user, item and modality representations.

    Users and items come from LightGCN over the ID embeddings (items plus their ID embedding, as
    the authors' code); each modality's (fine-tuned) features are projected to the same width.
    For a batch of (user, positive item) pairs the loss is the graph reconstruction term
    (predicted user vs dropped-out target item and vice versa), ``cl_weight`` times the
    inter-modality (predicted modality vs target item) and intra-modality (predicted modality vs
    its own dropped-out target) alignments, all ``1 - cosine``, plus ``reg_weight`` times an L2
    norm of the whole user and item tables. Scores are predictor(user) . predictor(item).

    Items without a modality's feature row: their projected row is zero, and they are left out of
    that modality's two alignment terms (mean over the batch items that have the modality; the
    predictor's bias alone would otherwise be aligned in their name).
    """

    input_type = InputType.POINTWISE
    requires_modalities = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.reg_weight = config["reg_weight"]
        self.cl_weight = config["cl_weight"]
        self.dropout = config["dropout"]

        users, items, _ = training_pairs(dataset, self.device)
        self.adjacency = user_item_adjacency(users, items, self.n_users, self.n_items)
        names, features, masks = modality_features(dataset, self.device)
        self.modality_names = names
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.predictor = nn.Linear(d, d)
        self.projection = ModalityProjection(names, features, masks, d, trainable_features=True)
        self.reg_loss = EmbLoss()
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        nn.init.xavier_normal_(self.predictor.weight)
        for linear in self.projection.linears:
            nn.init.xavier_normal_(linear.weight)

    def forward(self):
        """Online (users (U, d), items (I, d)): LightGCN mean of layers, items plus their ID embedding."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        user, item = split_users_items(lightgcn_propagate(self.adjacency, ego, self.n_layers), self.n_users)
        return user, item + self.item_embedding.weight

    def target(self, x):
        """A dropout view without gradient (the bootstrap target)."""
        with torch.no_grad():
            return F.dropout(x.detach(), self.dropout, training=True)

    def calculate_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        user, item = self.forward()
        u_online, i_online = user[users], item[items]
        u_target, i_target = self.target(u_online), self.target(i_online)
        loss = cosine_distance(self.predictor(u_online), i_target) + cosine_distance(self.predictor(i_online), u_target)
        alignment = 0.0
        for k in range(len(self.projection)):
            has = self.projection.mask(k)[items, 0].bool()
            if not bool(has.any()):
                continue
            feat_online = self.projection.project_rows(k, items[has])
            predicted = self.predictor(feat_online)
            alignment = alignment + cosine_distance(predicted, i_target[has])  # inter-modality
            alignment = alignment + cosine_distance(predicted, self.target(feat_online))  # intra-modality
        reg = self.reg_loss(user, item).squeeze()
        return loss + self.reg_weight * reg + self.cl_weight * alignment

    def score_tables(self):
        user, item = self.forward()
        return self.predictor(user), self.predictor(item)
