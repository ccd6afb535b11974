r"""SLMRec: self-supervised learning for multimedia recommendation.

Reference:
    Zhulin Tao, Xiaohao Liu, Yewei Xia, Xiang Wang, Lifang Yang, Xianglin Huang, Tat-Seng Chua.
    "Self-supervised Learning for Multimedia Recommendation." IEEE Transactions on Multimedia 25
    (2023; online 2022). Authors' code: github.com/zltao/SLMRec; second reference: MMRec's
    ``src/models/slmrec.py``.
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_mmssl.model.common.encoders import ModalityProjection
from recbole_mmssl.model.common.graph_ops import user_item_adjacency
from recbole_mmssl.model.common.inputs import modality_features, training_pairs
from recbole_mmssl.model.common.lightgcn import lightgcn_propagate
from recbole_mmssl.model.common.scoring import DotProductScores

SSL_TASKS = ("FAC", "FD", "FM", "FD+FM")
FUSIONS = ("concat", "mean")


def in_batch_softmax(queries, keys, tau):
    """Cross-entropy of row b of ``queries @ keys^T / tau`` against column b: the authors' InfoNCE
    (the other rows of the batch are the negatives; the caller normalises if it wants cosines)."""
    logits = queries @ keys.t() / tau
    return F.cross_entropy(logits, torch.arange(queries.shape[0], device=queries.device))


class SLMRec(DotProductScores, GeneralRecommender):
    r"""SLMRec (Tao et al., TMM 2022): LightGCN per source (the ID embeddings and each modality),
    fused, trained with an in-batch InfoNCE plus one self-supervised task.

    Each source (item ID embeddings, then each modality's projected, row-normalised features) is
    propagated with the shared user ID embeddings over the symmetric-normalised user-item graph
    (LightGCN, mean of layers 0..L); the sources' user parts and item parts are fused (concatenation
    and a linear layer, the authors' ``mm_fusion_mode: concat``). The main loss is the authors'
    softmax over the batch's positive items (cosine / ``temp``, no sampled negatives); ``ssl_task``
    adds, weighted by ``ssl_alpha``:

    * FD (feature dropout: noise perturbation): two views that drop out each propagated layer;
    * FM (feature masking: multi-modal pattern uncovering): two views that each replace a different,
      randomly chosen source's item inputs by zeros; FD+FM: masking plus dropout;
      for these three, InfoNCE between the two views of the batch users and of the batch items;
    * FAC (fine and coarse spaces, the authors' default): InfoNCE between a chain of coarser and
      coarser item spaces (ID -> ID+m1 -> ID+m1+m2 -> ...) and each modality's own projection.

    Any number of modalities: the authors' three-modality FAC chain (width d, d, d/2) generalises to
    width d for the first two modalities and d/2 from the third on. With two modalities this differs
    from MMRec's ``fac`` (image + text): MMRec keeps the authors' three-step chain with the audio
    term commented out, so its second modality is matched in the *third* space (two coarse steps
    from the ID space, the unused audio step included, width d/2, fine head d -> d/2); here the
    second modality is matched in the second space (one coarse step, width d). Both are the same
    kind of loss (in-batch InfoNCE at ``ssl_temp``); the difference is one linear layer and the
    width of the last space. Items without a modality's
    feature row get a zero projected row in that modality (its graph then carries only the user
    side to them). The random choices use torch's generator, so seeded runs repeat.
    """

    input_type = InputType.POINTWISE
    requires_modalities = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = d = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.temp = config["temp"]
        self.ssl_temp = config["ssl_temp"]
        self.ssl_alpha = config["ssl_alpha"]
        self.ssl_task = config["ssl_task"]
        self.fusion = config["mm_fusion_mode"]
        if self.ssl_task not in SSL_TASKS:
            raise ValueError(f"SLMRec: ssl_task must be one of {SSL_TASKS}, got {self.ssl_task!r}.")
        if self.fusion not in FUSIONS:
            raise ValueError(f"SLMRec: mm_fusion_mode must be one of {FUSIONS}, got {self.fusion!r}.")

        users, items, _ = training_pairs(dataset, self.device)
        self.adjacency = user_item_adjacency(users, items, self.n_users, self.n_items)
        names, features, masks = modality_features(dataset, self.device)
        self.modality_names = names
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.projection = ModalityProjection(names, features, masks, d, normalize=True)
        n_sources = 1 + len(names)
        fused = n_sources * d if self.fusion == "concat" else d
        self.user_fusion = nn.Linear(fused, d)
        self.item_fusion = nn.Linear(fused, d)
        self.dropout = nn.Dropout(config["dropout_rate"])
        if self.ssl_task == "FAC":
            widths = [d if m < 2 else d // 2 for m in range(len(names))]
            self.fac_coarse = nn.ModuleList(nn.Linear(w_in, w) for w_in, w in zip([d] + widths[:-1], widths))
            self.fac_fine = nn.ModuleList(nn.Linear(d, w) for w in widths)
        for module in self.modules():
            if isinstance(module, (nn.Embedding, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)  # the authors' init: xavier, torch's default biases

    # -- forward ---------------------------------------------------------------------------------
    def item_sources(self):
        """Item-side inputs of each source: ID embeddings, then each modality's projection."""
        return [self.item_embedding.weight] + self.projection()

    def propagate_sources(self, sources, transform=None):
        """One LightGCN output (U+I, d) per source, the user side always the user ID embeddings."""
        user = self.user_embedding.weight
        return [
            lightgcn_propagate(self.adjacency, torch.cat([user, item]), self.n_layers, transform)
            for item in sources
        ]

    def fuse(self, outputs):
        """(users (U, d), items (I, d)) from the sources' LightGCN outputs."""
        parts = [o.split([self.n_users, self.n_items]) for o in outputs]
        if self.fusion == "concat":
            user, item = (torch.cat([p[k] for p in parts], dim=1) for k in (0, 1))
        else:
            user, item = (torch.stack([p[k] for p in parts]).mean(0) for k in (0, 1))
        return self.user_fusion(user), self.item_fusion(item)

    def forward(self):
        outputs = self.propagate_sources(self.item_sources())
        return self.fuse(outputs), outputs

    # -- losses ----------------------------------------------------------------------------------
    def calculate_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        (user, item), outputs = self.forward()
        main = in_batch_softmax(F.normalize(user[users], dim=1), F.normalize(item[items], dim=1), self.temp)
        if self.ssl_task == "FAC":
            ssl = self.fine_and_coarse(outputs, items)
        else:
            ssl = self.two_view_loss(users, items)
        return main + self.ssl_alpha * ssl

    def fine_and_coarse(self, outputs, items):
        """FAC: the coarse chain from the ID item representation against each modality's (fine) one."""
        item_outputs = [o[self.n_users:][items] for o in outputs]
        coarse, loss = item_outputs[0], 0.0
        for to_coarse, to_fine, modality in zip(self.fac_coarse, self.fac_fine, item_outputs[1:]):
            coarse = to_coarse(coarse)
            loss = loss + in_batch_softmax(coarse, to_fine(modality), self.ssl_temp)
        return loss

    def two_view_loss(self, users, items):
        """FD / FM / FD+FM: InfoNCE between two augmented views of the batch users and items."""
        sources = self.item_sources()
        transform = self.dropout if self.ssl_task in ("FD", "FD+FM") else None
        views = []
        if self.ssl_task == "FD":
            masked = [None, None]
        else:
            masked = torch.randperm(len(sources), device=sources[0].device)[:2].tolist()
        for drop in masked:
            inputs = [torch.zeros_like(s) if k == drop else s for k, s in enumerate(sources)]
            views.append(self.fuse(self.propagate_sources(inputs, transform)))
        (u1, i1), (u2, i2) = views
        loss_user = in_batch_softmax(F.normalize(u1[users], dim=1), F.normalize(u2[users], dim=1), self.ssl_temp)
        loss_item = in_batch_softmax(F.normalize(i1[items], dim=1), F.normalize(i2[items], dim=1), self.ssl_temp)
        return loss_user + loss_item

    def score_tables(self):
        (user, item), _ = self.forward()
        return user, item
