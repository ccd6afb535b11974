r"""LATTICE: mining latent item-item structures for multimedia recommendation.

Reference:
    Jinghao Zhang, Yanqiao Zhu, Qiang Liu, Shu Wu, Shuhui Wang, Liang Wang. "Mining Latent Structures
    for Multimedia Recommendation." In ACM MM 2021. Authors' code: github.com/CRIPAC-DIG/LATTICE
    (the same model is in MMRec, ``src/models/lattice.py``).
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_mmssl.model.common.encoders import ModalityProjection
from recbole_mmssl.model.common.graph_ops import bipartite_edges, mean_normalized, propagate, user_item_adjacency
from recbole_mmssl.cosine_knn import cosine_topk
from recbole_mmssl.model.common.inputs import modality_features, modality_knn, training_pairs
from recbole_mmssl.model.common.knn import edge_product, pair_cosine, row_degree_normalized, sparse_graph
from recbole_mmssl.model.common.lightgcn import lightgcn_propagate, split_users_items
from recbole_mmssl.model.common.losses import bpr_loss, half_squared_norm
from recbole_mmssl.model.common.scoring import DotProductScores


def mean_adjacency_with_self_loops(users, items, n_users, n_items):
    """D^-1 (A + I) over the (U+I) nodes: the user-item graph the authors' code propagates on.

    Both the released LATTICE and MMRec's build this ("norm_adj", NGCF's form) and use it with
    their LightGCN backbone. RecBole's padding user 0 and item 0 get no self-loop (no edges at all).
    """
    n = n_users + n_items
    nodes = torch.arange(n, device=users.device)
    nodes = nodes[(nodes != 0) & (nodes != n_users)]
    rows, cols = bipartite_edges(users, items, n_users)
    rows, cols = torch.cat([rows, nodes]), torch.cat([cols, nodes])
    return mean_normalized(rows, cols, torch.ones(rows.shape[0], device=users.device), (n, n))


UI_ADJACENCIES = {
    "mean_self_loop": mean_adjacency_with_self_loops,  # the authors' code
    "symmetric": user_item_adjacency,  # LightGCN's D^-1/2 A D^-1/2
}


class LATTICE(DotProductScores, GeneralRecommender):
    r"""LATTICE (Zhang et al., MM 2021) on a LightGCN backbone, for any number of modalities.

    Per modality m: a frozen k-NN graph S_m of the raw features (cosine weights, D^-1/2 S D^-1/2)
    and a learned k-NN graph of the projected (fine-tuned) features. With w = softmax(modality
    weights), the item graph is (1 - lambda) norm(sum_m w_m learned_m) + lambda sum_m w_m S_m.
    Item ID embeddings are convolved ``n_mm_layers`` times over it; the user and item ID embeddings
    go through LightGCN over the user-item graph; item representation = LightGCN item +
    L2-normalised item-graph output. BPR plus L2 on the batch embeddings / train_batch_size.

    As in the authors' training loop, the learned graph is rebuilt (with gradient into the
    projections, features and modality weights) on the first batch of each epoch and used detached
    for the rest of it (``item_graph_update: batch`` rebuilds it on every batch); evaluation
    rebuilds it from the current projections. The epoch start is seen through ``train()``, which
    RecBole's Trainer calls at the start of every epoch. Items without a modality's features get no
    edge from that modality, learned or frozen.

    The learning rate decays as in the authors' code, ``lr * 0.96 ** (epoch / 50)`` stepped after
    every epoch (``lr_decay: 0.96``, ``lr_decay_epochs: 50`` in LATTICE.yaml; the plugin's trainers
    apply it, recbole_mmssl/lr_schedule.py; ``lr_decay: 1.0`` turns it off).
    """

    input_type = InputType.PAIRWISE
    requires_modalities = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = config["embedding_size"]
        self.knn_k = int(config["knn_k"])
        self.lambda_coeff = float(config["lambda_coeff"])
        self.n_ui_layers = int(config["n_ui_layers"])
        self.n_mm_layers = int(config["n_mm_layers"])
        self.reg_weight = float(config["reg_weight"])
        self.batch_size = config["train_batch_size"]
        if config["item_graph_update"] not in ("epoch", "batch"):
            raise ValueError(
                f"LATTICE: item_graph_update must be 'epoch' or 'batch', got {config['item_graph_update']!r}."
            )
        self.rebuild_every_batch = config["item_graph_update"] == "batch"
        if config["ui_norm"] not in UI_ADJACENCIES:
            raise ValueError(f"LATTICE: ui_norm must be one of {sorted(UI_ADJACENCIES)}, got {config['ui_norm']!r}.")
        if self.knn_k < 1 or not 0.0 <= self.lambda_coeff <= 1.0:
            raise ValueError(
                f"LATTICE: need knn_k >= 1 and 0 <= lambda_coeff <= 1, got {self.knn_k}, {self.lambda_coeff}."
            )

        users, items, _ = training_pairs(dataset, self.device)
        self.ui_adjacency = UI_ADJACENCIES[config["ui_norm"]](users, items, self.n_users, self.n_items)
        names, features, masks = modality_features(dataset, self.device)
        self.modality_names = names
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_id_embedding = nn.Embedding(self.n_items, d)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_id_embedding.weight)
        self.projection = ModalityProjection(
            names, features, masks, config["feat_embed_dim"], trainable_features=bool(config["train_features"])
        )
        self.modality_weight = nn.Parameter(torch.full((len(names),), 1.0 / len(names)))  # authors: [0.5, 0.5]

        use_cache = config["feature_cache"] is not False
        self.frozen_graphs = []  # per modality (rows, cols, normalised cosine): data, not state
        for name in names:
            rows, cols, cosine = modality_knn(dataset, name, self.knn_k, self.device, use_cache)
            self.frozen_graphs.append((rows, cols, row_degree_normalized(rows, cols, cosine, self.n_items)))
        self._epoch_started = True
        self._item_graph = None  # this epoch's graph, detached, as a COO tensor

    # -- graphs -----------------------------------------------------------------------------------
    def item_graph(self):
        """Edge list (rows, cols, values) of the mixed item graph, differentiable in every parameter."""
        weights = torch.softmax(self.modality_weight, dim=0)
        rows, cols, values = [], [], []
        for k in range(len(self.modality_names)):
            projected = self.projection.project(k)
            r, c, _ = cosine_topk(projected.detach(), self.projection.mask(k)[:, 0].bool(), self.knn_k)
            rows.append(r)
            cols.append(c)
            values.append(weights[k] * pair_cosine(projected, r, c))
        rows, cols = torch.cat(rows), torch.cat(cols)
        learned = (1.0 - self.lambda_coeff) * row_degree_normalized(rows, cols, torch.cat(values), self.n_items)
        rows, cols, values = [rows], [cols], [learned]
        for k, (r, c, v) in enumerate(self.frozen_graphs):
            rows.append(r)
            cols.append(c)
            values.append(self.lambda_coeff * weights[k] * v)
        return torch.cat(rows), torch.cat(cols), torch.cat(values)

    def forward(self, graph):
        """(users, items) from an item graph: an edge list (with gradient) or a COO tensor."""
        h = self.item_id_embedding.weight
        for _ in range(self.n_mm_layers):
            h = propagate(graph, h) if isinstance(graph, torch.Tensor) else edge_product(*graph, h)
        ego = torch.cat([self.user_embedding.weight, self.item_id_embedding.weight])
        user, item = split_users_items(lightgcn_propagate(self.ui_adjacency, ego, self.n_ui_layers), self.n_users)
        return user, item + F.normalize(h, dim=1)

    def _training_graph(self):
        if self._epoch_started or self.rebuild_every_batch or self._item_graph is None:
            self._epoch_started = False
            rows, cols, values = self.item_graph()
            if not self.rebuild_every_batch:
                self._item_graph = sparse_graph(rows, cols, values.detach(), self.n_items)
            return rows, cols, values
        return self._item_graph

    # -- RecBole API ------------------------------------------------------------------------------
    def calculate_loss(self, interaction):
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        user, item = self.forward(self._training_graph())
        u, p, n = user[users], item[pos], item[neg]
        return bpr_loss(u, p, n), self.reg_weight * half_squared_norm(u, p, n) / self.batch_size

    def score_tables(self):
        return self.forward(self.item_graph())

    def train(self, mode=True):
        if mode:
            self._epoch_started = True  # RecBole's Trainer calls train() at the start of each epoch
        return super().train(mode)
