r"""FREEDOM: freezing and denoising graph structures for multimodal recommendation.

Reference:
    Xin Zhou, Zhiqi Shen. "A Tale of Two Graphs: Freezing and Denoising Graph Structures for
    Multimodal Recommendation." In ACM MM 2023. Authors' code: github.com/enoche/FREEDOM (the same
    model is in MMRec, ``src/models/freedom.py``).
"""

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_mmssl.model.common.encoders import ModalityProjection
from recbole_mmssl.model.common.graph_ops import propagate, user_item_adjacency
from recbole_mmssl.model.common.inputs import modality_features, modality_knn, training_pairs
from recbole_mmssl.model.common.knn import row_degree_normalized, sparse_graph
from recbole_mmssl.model.common.lightgcn import lightgcn_propagate, split_users_items
from recbole_mmssl.model.common.losses import bpr_loss
from recbole_mmssl.model.common.scoring import DotProductScores


def modality_graph_weights(names, image_weight, explicit=None):
    """Mixing weight of each modality's frozen graph, summing to 1.

    The authors mix image and text as ``mm_image_weight * image + (1 - mm_image_weight) * text``.
    For any modalities: ``explicit`` ({name: weight}, normalised) if given; else a modality named
    ``image`` gets ``image_weight`` and the others share the rest equally; without an image
    modality (or with one modality only) all weigh the same.
    """
    names = list(names)
    if explicit:
        unknown = sorted(set(explicit) - set(names))
        missing = [n for n in names if n not in explicit]
        if unknown or missing:
            raise ValueError(f"FREEDOM: mm_weights must name exactly the modalities {names}; "
                             f"unknown {unknown}, missing {missing}.")
        total = float(sum(explicit[n] for n in names))
        if total <= 0 or any(explicit[n] < 0 for n in names):
            raise ValueError(f"FREEDOM: mm_weights must be >= 0 with a positive sum, got {dict(explicit)}.")
        return [float(explicit[n]) / total for n in names]
    if "image" not in names or len(names) == 1:
        return [1.0 / len(names)] * len(names)
    if not 0.0 <= image_weight <= 1.0:
        raise ValueError(f"FREEDOM: mm_image_weight must be in [0, 1], got {image_weight}.")
    rest = (1.0 - image_weight) / (len(names) - 1)
    return [image_weight if n == "image" else rest for n in names]


class FREEDOM(DotProductScores, GeneralRecommender):
    r"""FREEDOM (Zhou and Shen, MM 2023) for any number of modalities.

    Frozen item graph: each modality's k-NN graph of the raw features (binary, D^-1/2 S D^-1/2),
    mixed with fixed weights (:func:`modality_graph_weights`), built once before training. Item ID
    embeddings are convolved ``n_mm_layers`` times over it and added to the items of a LightGCN
    over the user-item graph. In training that graph is denoised by degree-sensitive pruning:
    ``(1 - dropout)`` of the training edges are kept, sampled without replacement with probability
    proportional to 1/sqrt(deg_u deg_i), and the kept graph is normalised again; it is re-sampled
    on the first batch of each epoch (RecBole's Trainer calls ``train()`` at each epoch start).
    Evaluation uses the full graph. Loss: BPR of the final embeddings plus ``reg_weight`` times the
    BPR of the user embeddings against each modality's projected (fine-tuned) features.
    """

    input_type = InputType.PAIRWISE
    requires_modalities = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["embedding_size"]
        self.knn_k = int(config["knn_k"])
        self.n_ui_layers = int(config["n_ui_layers"])
        self.n_mm_layers = int(config["n_mm_layers"])
        self.reg_weight = float(config["reg_weight"])
        self.dropout = float(config["dropout"])
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"FREEDOM: dropout (the share of user-item edges pruned) must be in [0, 1), got {self.dropout}."
            )
        if config["feat_embed_dim"] != d:
            raise ValueError(f"FREEDOM: feat_embed_dim ({config['feat_embed_dim']}) must equal embedding_size ({d}): "
                             "the modality BPR scores users against projected features.")

        users, items, _ = training_pairs(dataset, self.device)
        self.train_users, self.train_items = users, items
        self.full_adjacency = user_item_adjacency(users, items, self.n_users, self.n_items)
        degree_u = torch.bincount(users, minlength=self.n_users).float()
        degree_i = torch.bincount(items, minlength=self.n_items).float()
        self.edge_weights = (degree_u[users] * degree_i[items]).rsqrt()  # 1/sqrt(d_u d_i)
        self.pruned_adjacency = self.full_adjacency
        self._epoch_started = True

        names, features, masks = modality_features(dataset, self.device)
        self.modality_names = names
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_id_embedding = nn.Embedding(self.n_items, d)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_id_embedding.weight)
        self.projection = ModalityProjection(
            names, features, masks, d, trainable_features=bool(config["train_features"])
        )

        self.graph_weights = modality_graph_weights(names, float(config["mm_image_weight"]), config["mm_weights"])
        use_cache = config["feature_cache"] is not False
        rows, cols, values = [], [], []
        for name, weight in zip(names, self.graph_weights):
            if weight == 0.0:
                continue
            r, c, _ = modality_knn(dataset, name, self.knn_k, self.device, use_cache)
            rows.append(r)
            cols.append(c)
            ones = torch.ones(r.shape[0], device=r.device)
            values.append(weight * row_degree_normalized(r, c, ones, self.n_items))
        self.item_graph = sparse_graph(torch.cat(rows), torch.cat(cols), torch.cat(values), self.n_items)

    def prune_user_item_graph(self):
        """Degree-sensitive edge pruning: a new (U+I) adjacency on a sample of the training edges."""
        if self.dropout == 0.0:
            self.pruned_adjacency = self.full_adjacency
            return
        n_keep = int(self.edge_weights.shape[0] * (1.0 - self.dropout))
        keep = torch.multinomial(self.edge_weights, n_keep, replacement=False)
        self.pruned_adjacency = user_item_adjacency(self.train_users[keep], self.train_items[keep],
                                                    self.n_users, self.n_items)

    def forward(self, adjacency):
        """(users, items): LightGCN over ``adjacency``; items plus their frozen item-graph convolution."""
        h = self.item_id_embedding.weight
        for _ in range(self.n_mm_layers):
            h = propagate(self.item_graph, h)
        ego = torch.cat([self.user_embedding.weight, self.item_id_embedding.weight])
        user, item = split_users_items(lightgcn_propagate(adjacency, ego, self.n_ui_layers), self.n_users)
        return user, item + h

    def calculate_loss(self, interaction):
        if self._epoch_started:
            self._epoch_started = False
            self.prune_user_item_graph()
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        user, item = self.forward(self.pruned_adjacency)
        u = user[users]
        modality = sum(
            bpr_loss(u, self.projection.project_rows(k, pos), self.projection.project_rows(k, neg))
            for k in range(len(self.modality_names))
        )
        return bpr_loss(u, item[pos], item[neg]), self.reg_weight * modality

    def score_tables(self):
        return self.forward(self.full_adjacency)

    def train(self, mode=True):
        if mode:
            self._epoch_started = True  # re-sample the pruned graph on this epoch's first batch
        return super().train(mode)
