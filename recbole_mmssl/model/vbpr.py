r"""VBPR: visual Bayesian personalised ranking.

Reference:
    Ruining He, Julian McAuley. "VBPR: Visual Bayesian Personalized Ranking from Implicit
    Feedback." In AAAI 2016. Second reference: MMRec's ``src/models/vbpr.py`` (github.com/enoche/MMRec).
"""

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.init import xavier_normal_initialization
from recbole.model.loss import EmbLoss
from recbole.utils import InputType
from torch import nn

from recbole_mmssl.model.common.encoders import concatenated_features
from recbole_mmssl.model.common.inputs import modality_features
from recbole_mmssl.model.common.losses import bpr_loss
from recbole_mmssl.model.common.scoring import DotProductScores


class VBPR(DotProductScores, GeneralRecommender):
    r"""VBPR (He and McAuley, AAAI 2016) over every modality the dataset provides.

    The paper's score x_ui = beta_i + gamma_u^T gamma_i + theta_u^T (E f_i) + beta'^T f_i (alpha and
    beta_u cancel in BPR), with f_i the concatenation of all modality features of item i and E a
    projection without bias, trained with BPR. Items without a modality's feature row have that
    block zeroed, so (E having no bias) the missing modality contributes exactly nothing to E f_i
    or beta'^T f_i.

    The default is the reference implementation's form (MMRec's ``src/models/vbpr.py``), which has
    neither bias: ``item_bias: False`` scores gamma_u^T gamma_i + theta_u^T (E f_i) only. The biases
    learn an item-popularity term (beta_i is pushed up for every positive), which no other model of
    the comparison has; ``item_bias: True`` adds them back as in the paper. ``reg_weight`` is the one
    key MMRec's grid searches; the comparison takes it from the same validation search as every
    other model (properties/search/VBPR.test).
    """

    input_type = InputType.PAIRWISE
    requires_modalities = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.reg_weight = config["reg_weight"]
        self.item_bias = bool(config["item_bias"])

        names, features, masks = modality_features(dataset, self.device)
        self.modality_names = names
        self.register_buffer("item_features", concatenated_features(names, features, masks), persistent=False)

        d = self.embedding_size
        self.user_embedding = nn.Embedding(self.n_users, 2 * d)  # [gamma_u ; theta_u]
        self.item_embedding = nn.Embedding(self.n_items, d)  # gamma_i
        self.feature_projection = nn.Linear(self.item_features.shape[1], d, bias=False)  # E
        if self.item_bias:
            self.item_bias_embedding = nn.Embedding(self.n_items, 1)  # beta_i
            self.feature_bias = nn.Linear(self.item_features.shape[1], 1, bias=False)  # beta'
        self.reg_loss = EmbLoss()
        self.apply(xavier_normal_initialization)
        nn.init.xavier_uniform_(self.user_embedding.weight)  # MMRec: xavier_uniform ID factors
        nn.init.xavier_uniform_(self.item_embedding.weight)
        if self.item_bias:
            nn.init.zeros_(self.item_bias_embedding.weight)
            nn.init.zeros_(self.feature_bias.weight)

    def item_vectors(self, items=None):
        """[gamma_i ; E f_i] for ``items`` (all items when None) and their bias (or None)."""
        feats = self.item_features if items is None else self.item_features[items]
        ids = self.item_embedding.weight if items is None else self.item_embedding(items)
        vectors = torch.cat([ids, self.feature_projection(feats)], dim=1)
        if not self.item_bias:
            return vectors, None
        bias_rows = self.item_bias_embedding.weight if items is None else self.item_bias_embedding(items)
        return vectors, bias_rows + self.feature_bias(feats)

    def calculate_loss(self, interaction):
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        user = self.user_embedding(users)
        pos_vec, pos_bias = self.item_vectors(pos)
        neg_vec, neg_bias = self.item_vectors(neg)
        reg_terms = [user, pos_vec, neg_vec]
        if self.item_bias:
            reg_terms += [self.item_bias_embedding(pos), self.item_bias_embedding(neg)]
            # the bias enters the score through a constant 1 on the user side (as in score_tables)
            user = torch.cat([user, torch.ones_like(user[:, :1])], dim=1)
            pos_vec, neg_vec = torch.cat([pos_vec, pos_bias], dim=1), torch.cat([neg_vec, neg_bias], dim=1)
        return bpr_loss(user, pos_vec, neg_vec) + self.reg_weight * self.reg_loss(*reg_terms).squeeze()

    def score_tables(self):
        """User rows [gamma_u ; theta_u ; 1], item rows [gamma_i ; E f_i ; beta_i + beta'^T f_i]."""
        user = self.user_embedding.weight
        item, bias = self.item_vectors()
        if self.item_bias:
            user = torch.cat([user, torch.ones_like(user[:, :1])], dim=1)
            item = torch.cat([item, bias], dim=1)
        return user, item
