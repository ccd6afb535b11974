r"""MMGCN: multi-modal graph convolution network.

Reference:
    Yinwei Wei, Xiang Wang, Liqiang Nie, Xiangnan He, Richang Hong, Tat-Seng Chua. "MMGCN:
    Multi-modal Graph Convolution Network for Personalized Recommendation of Micro-video." In ACM MM
    2019. Authors' code: github.com/weiyinwei/MMGCN; second reference: MMRec's ``src/models/mmgcn.py``.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_mmssl.model.common.encoders import ModalityProjection
from recbole_mmssl.model.common.graph_ops import bipartite_edges, mean_normalized, propagate
from recbole_mmssl.model.common.inputs import modality_features, training_pairs
from recbole_mmssl.model.common.losses import bpr_loss
from recbole_mmssl.model.common.scoring import DotProductScores


def mean_adjacency(users, items, n_users, n_items):
    """Sparse COO D^-1 A of the (U+I) bipartite graph: each node averages its neighbours (no self-loop).

    MMGCN's mean aggregation (the authors' PyG MessagePassing with aggr='mean' over both edge
    directions); nodes without neighbours get zero rows.
    """
    rows, cols = bipartite_edges(users, items, n_users)
    n = n_users + n_items
    return mean_normalized(rows, cols, torch.ones(rows.shape[0], device=rows.device), (n, n))


LAYOUTS = ("reference", "projected_sum")
VISUAL_MODALITIES = ("image",)  # the one modality the references project (their v_feat)


class ModalityGCN(nn.Module):
    """One modality's graph: user preferences next to projected item features, L aggregation +
    combination layers (paper Eq. 1-2 and 5-7)."""

    def __init__(self, n_users, in_dim, dim, n_layers, concat):
        super().__init__()
        self.concat = concat
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, in_dim)))  # u_m
        widths = [in_dim] + [dim] * (n_layers - 1)
        self.conv = nn.ParameterList(nn.Parameter(nn.init.xavier_normal_(torch.empty(w, w))) for w in widths)
        self.linear = nn.ModuleList(nn.Linear(w, dim) for w in widths)
        self.combine = nn.ModuleList(nn.Linear(w + dim if concat else w, dim) for w in widths)
        for layer in self.linear:
            nn.init.xavier_normal_(layer.weight)
        nn.init.xavier_normal_(self.combine[0].weight)  # the authors leave later combination layers at torch's default

    def forward(self, item_features, id_embedding, graph):
        x = F.normalize(torch.cat([self.preference, item_features], dim=0), dim=1)
        for conv, linear, combine in zip(self.conv, self.linear, self.combine):
            h = F.leaky_relu(propagate(graph, x @ conv))  # aggregation layer
            x_hat = F.leaky_relu(linear(x)) + id_embedding  # Eq. 5: modality + ID
            if self.concat:
                x = F.leaky_relu(combine(torch.cat([h, x_hat], dim=1)))
            else:
                x = F.leaky_relu(combine(h) + x_hat)
        return x


class MMGCN(DotProductScores, GeneralRecommender):
    r"""MMGCN (Wei et al., ACM MM 2019): one user-item GCN per modality, representations combined.

    Per modality m, item features are stacked under learned modality-specific user preferences;
    each layer aggregates neighbours (mean) and combines the result with the node's own
    representation and its shared ID embedding. BPR loss plus the authors' L2 term on the batch ID
    embeddings and the user preferences. Items without a modality's feature row get a zero input row
    in that modality's graph (their ID embedding still enters through Eq. 5).

    ``mmgcn_layout`` chooses how the modalities enter and leave, the two points where an earlier
    version of this model departed from both references without saying so:

    * ``reference`` (default): what the authors' code and MMRec compute. Only the visual modality
      (the one named ``image``) is projected, by a linear layer with bias, to ``dim_latent`` (256);
      every other modality enters the GCN at its own width (its preferences have that width too);
      the final representation is the *mean* over modalities (paper Eq. 8 writes a sum; the code
      divides by the number of modalities).
    * ``projected_sum``: every modality projected to ``dim_latent`` and the modality outputs
      summed. The sum is not only a rescaling of the ranking: it multiplies the scores inside BPR's
      sigmoid by the number of modalities squared, so it trains differently.

    Deviations from the authors' code in both layouts, which are bugs there: the ID embeddings and
    preferences are trained (there they are non-leaf copies moved to the GPU, which the optimiser
    never sees), the preferences of every modality are regularised (there only the visual one),
    ``n_layers`` is honoured (there three layers are hard-coded) and ``concat`` is a boolean (there
    the string 'False', i.e. true).
    """

    input_type = InputType.PAIRWISE
    requires_modalities = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.reg_weight = config["reg_weight"]
        if self.n_layers < 1:
            raise ValueError(f"MMGCN: n_layers must be >= 1, got {self.n_layers}.")

        self.layout = config["mmgcn_layout"] or "reference"
        if self.layout not in LAYOUTS:
            raise ValueError(f"MMGCN: mmgcn_layout must be one of {LAYOUTS}, got {self.layout!r}.")

        users, items, _ = training_pairs(dataset, self.device)
        self.graph = mean_adjacency(users, items, self.n_users, self.n_items)
        names, features, masks = modality_features(dataset, self.device)
        self.modality_names = names
        dim_latent = config["dim_latent"]
        self.projected = [self.layout == "projected_sum" or name in VISUAL_MODALITIES for name in names]
        projected_names = [name for name, p in zip(names, self.projected) if p]
        self.projection = ModalityProjection(projected_names, features, masks, dim_latent)
        for k, name in enumerate(names):  # the unprojected modalities' inputs: raw rows, missing ones zero
            if not self.projected[k]:
                self.register_buffer(f"raw_{k}", features[name].float() * masks[name].float().unsqueeze(1),
                                     persistent=False)
        widths = [dim_latent if p else features[n].shape[1] for n, p in zip(names, self.projected)]
        self.id_embedding = nn.Parameter(
            nn.init.xavier_normal_(torch.empty(self.n_users + self.n_items, self.embedding_size))
        )
        self.gcns = nn.ModuleList(
            ModalityGCN(self.n_users, width, self.embedding_size, self.n_layers, bool(config["concat"]))
            for width in widths
        )

    def modality_inputs(self):
        """[(n_items, width_m)] per modality, in the dataset's order: projected or raw rows."""
        projected = iter(self.projection())
        return [next(projected) if p else getattr(self, f"raw_{k}") for k, p in enumerate(self.projected)]

    def forward(self):
        """(U+I, d): each modality GCN's output, averaged (``reference``) or summed (``projected_sum``)."""
        outputs = [gcn(feats, self.id_embedding, self.graph) for gcn, feats in zip(self.gcns, self.modality_inputs())]
        total = sum(outputs)
        return total / len(outputs) if self.layout == "reference" else total

    def calculate_loss(self, interaction):
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID] + self.n_users, interaction[self.NEG_ITEM_ID] + self.n_users
        out = self.forward()
        loss = bpr_loss(out[users], out[pos], out[neg])
        id_u, id_p, id_n = self.id_embedding[users], self.id_embedding[pos], self.id_embedding[neg]
        # the authors' mean over (user, pos) and (user, neg) rows of id_u^2 + id_i^2, plus mean(pref^2)
        reg = (2 * id_u.pow(2) + id_p.pow(2) + id_n.pow(2)).mean() / 2
        reg = reg + sum(gcn.preference.pow(2).mean() for gcn in self.gcns)
        return loss + self.reg_weight * reg

    def score_tables(self):
        out = self.forward()
        return out[: self.n_users], out[self.n_users:]
