r"""MISSRec: multimodal interest-aware sequence representation, pre-training and transfer.

Reference:
    Jinpeng Wang, Ziyun Zeng, Yunxiao Wang, Yuting Wang, Xingyu Lu, Tianxiang Li, Jun Yuan, Rui Zhang,
    Hai-Tao Zheng, Shu-Tao Xia. "MISSRec: Pre-training and Transferring Multi-modal Interest-aware
    Sequence Representation for Recommendation." In ACM MM 2023. Code: github.com/gimpong/MM23-MISSRec
    (``missrec.py``, ``model_utils.py``, ``trainer.py``, ``cluster_utils.py``, ``data/transform.py``,
    ``props/``), read for this port at its commit c3167c5.
"""


import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_mmssl.model.common.dropout import IntMaskDropout
from recbole_mmssl.model.common.inputs import modality_features
from recbole_mmssl.model.common.scoring import EvalCache
from recbole_mmssl.model.missrec import augment, fusion
from recbole_mmssl.model.missrec.interest import minibatch_kmeans, number_of_interests, unique_interests

TRAIN_STAGES = ("transductive_ft", "inductive_ft", "pretrain")  # the config checks read these three sets
ITEM_MM_FUSIONS = fusion.FUSIONS
ID_SCORINGS = fusion.ID_SCORINGS
AUG_SUFFIX = "_aug"


class MISSRec(EvalCache, SequentialRecommender):
    r"""MISSRec (Wang et al., ACM MM 2023) as a RecBole SequentialRecommender, on CPU or GPU.

    **Item tokens** (section 3.1): each modality's feature vector through its own linear adapter, the
    adapters summed (the authors' ``seq_mm_fusion: add``), plus a position embedding and, in the
    transductive setting, an item ID embedding; LayerNorm and dropout. A missing modality is a zero
    feature vector (its adapter gives the bias), as in the authors' data.

    **Interests** (3.2): before every training epoch the trainer calls :meth:`discover_interests`:
    k-means over every (item, modality) adapted vector, K = ceil(points x ``interest_ratio``), the
    centroids kept as a non-trainable buffer and each (item, modality) looked up to its cluster
    (:mod:`.interest`). A sequence's interest tokens are the distinct clusters of its items' modalities.

    **Encoder-decoder** (3.3): a Transformer encoder over the interest tokens (a set: no positions), a
    decoder over the item tokens that cross-attends to it (no causal masks, as the authors); the user
    vector is the decoder output at the last item, L2-normalised. The authors' regulariser on the
    encoder output, weight ``gamma``: sum over users of |p_u|^2 / D with p_u the encoder outputs summed
    over all token slots (padding included) times the share of real tokens.

    **Scoring** (3.4, :mod:`.fusion`): cosine scores per modality fused by a softmax with a learnable
    scale (``item_mm_fusion``), mixed with the ID score in the transductive setting; softmax
    cross-entropy over all items with ``temperature``. With one modality the authors' code scores
    against the normalised sum of the adapted vector and the ID embedding instead; ``id_scoring``
    picks either form for any number of modalities (``auto``, the default: the authors' choice).
    Inductive (``train_stage: inductive_ft``, no IDs): any item with features is scored by its features
    alone, including items never seen in training.

    **Pre-training** (``train_stage: pretrain``, 3.5): in-batch sequence-item contrastive loss plus
    ``lambda`` x sequence-sequence contrastive loss between a sequence and its augmentation
    (:mod:`.augment`), plus the regulariser of both. **Fine-tuning** from ``pretrained: PATH`` (a
    checkpoint of such a run): the trainer copies the matching weights and freezes ``freeze``
    (default the authors': position embedding and Transformer; :mod:`.transfer`).

    **Departures from the authors' code** (each for a reason; none changes the method):

    1. k-means in torch instead of torchpq/cupy, seeded per epoch from ``seed`` (the authors draw from
       numpy's global state); the same mini-batch algorithm, and ``kmeans_iters: 1`` because the
       authors' tolerance test always stops after one pass (:mod:`.interest`).
    2. Sequences are processed in groups of similar length, each cut to its longest history (RecBole
       pads every row to 50 items; Scientific's average is 4). The outputs are the same (padding is
       masked everywhere), only faster; the regulariser counts every padding slot the authors' batch
       would have had, exactly in eval mode and in expectation under dropout (``length_buckets:
       False`` runs one padded batch).
    3. Any number of modalities, matched by name (``modalities``); the authors hard-code text (plm)
       and image (img). Features come from the data layer, never from files.
    4. Pre-training with one modality: the authors' single-modality branch of the sequence-item loss
       names an undefined variable (``pos_items_emb``) and its sequence-sequence loss always reads
       image features; here both follow the multimodal code with one modality.
    5. Item drop keeps exactly the kept items (the authors' scatter may write a dropped item over a
       kept one), and the augmented sequence's other modalities and interests follow the dropped
       sequence (the authors keep the original sequence's image vectors and image interests).
    6. Fine-tuning copies only weights with matching names and shapes and refuses a checkpoint without
       the Transformer's weights (the authors' ``strict=False`` loads silently).
    7. ``seq_mm_fusion: contextual`` (a non-default variant of the authors' code) is not carried over.
    8. The authors' ``attn_dropout_prob`` is not a key: their ``nn.Transformer`` applies
       ``hidden_dropout_prob`` to attention too, and so does this port.
    9. Dropout masks (outside attention) come from integer draws (:mod:`..common.dropout`): the same
       law as ``nn.Dropout``, another random stream; torch's ``bernoulli_`` took an eighth of a CPU step.
    """

    input_type = InputType.POINTWISE
    requires_modalities = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.stage = config["train_stage"]
        if self.stage not in TRAIN_STAGES:
            raise ValueError(f"train_stage must be one of {TRAIN_STAGES}, got {self.stage!r}")
        self.hidden_size = config["hidden_size"]
        self.temperature = config["temperature"]
        self.gamma = config["gamma"]
        self.lam = config["lambda"]
        self.item_drop_ratio = config["item_drop_ratio"]
        self.item_drop_coefficient = config["item_drop_coefficient"]
        self.interest_ratio = config["interest_ratio"]
        self.kmeans_batch_size = config["kmeans_batch_size"]
        self.kmeans_iters = config["kmeans_iters"]
        self.length_buckets = bool(config["length_buckets"])
        self.item_mm_fusion = config["item_mm_fusion"]
        if self.item_mm_fusion not in fusion.FUSIONS:
            raise ValueError(f"item_mm_fusion must be one of {fusion.FUSIONS}, got {self.item_mm_fusion!r}")
        if config["n_layers"] % 2:
            raise ValueError("n_layers must be even: half encoder, half decoder layers (the authors' layout)")

        names, features, _ = modality_features(dataset, self.device)
        self.modality_names = [n for n in names if not n.endswith(AUG_SUFFIX)]
        if not self.modality_names:
            raise ValueError(f"MISSRec needs an input modality; the dataset has only {names}")
        self.aug_names = {n[: -len(AUG_SUFFIX)]: n for n in names
                          if n.endswith(AUG_SUFFIX) and n[: -len(AUG_SUFFIX)] in self.modality_names}
        for name in self.modality_names + list(self.aug_names.values()):
            self.register_buffer(f"feature_{name}", features[name], persistent=False)

        d = self.hidden_size
        self.adapters = nn.ModuleDict({n: nn.Linear(features[n].shape[1], d) for n in self.modality_names})
        self.position_embedding = nn.Embedding(self.max_seq_length, d)
        self.item_embedding = nn.Embedding(self.n_items, d, padding_idx=0) if self.stage == "transductive_ft" else None
        self.trm_model = nn.Transformer(
            d_model=d, nhead=config["n_heads"], num_encoder_layers=config["n_layers"] // 2,
            num_decoder_layers=config["n_layers"] // 2, dim_feedforward=config["inner_size"],
            dropout=config["hidden_dropout_prob"], activation=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"], batch_first=True, norm_first=False,
        )
        self.LayerNorm = nn.LayerNorm(d, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.id_scoring = config["id_scoring"] or "auto"
        if self.id_scoring not in fusion.ID_SCORINGS:
            raise ValueError(f"id_scoring must be one of {fusion.ID_SCORINGS}, got {self.id_scoring!r}")
        if self.id_scoring == "auto":  # the authors' own branch: summed with one modality, mixed with more
            self.id_scoring = "summed" if len(self.modality_names) == 1 else "mixed"
        self.fusion_factor = None
        if len(self.modality_names) > 1 and self.item_mm_fusion == "dynamic_shared":
            self.fusion_factor = nn.Parameter(torch.tensor(0.0))
        elif len(self.modality_names) > 1 and self.item_mm_fusion == "dynamic_instance":
            self.fusion_factor = nn.Parameter(torch.zeros(self.n_items))
        self.loss_fct = nn.CrossEntropyLoss()

        n_points = len(self.modality_names) * (self.n_items - 1)
        self.n_interests = number_of_interests(n_points, self.interest_ratio)
        if self.n_interests > n_points:
            raise ValueError(f"interest_ratio {self.interest_ratio} asks for more interests than the {n_points} "
                             "(item, modality) points")
        # row 0 of the centroids and lookup value 0 are padding; lookups are (modality, item)
        self.register_buffer("interest_centroids", torch.zeros(self.n_interests + 1, d))
        self.register_buffer("interest_lookup", torch.zeros(len(self.modality_names), self.n_items, dtype=torch.long))
        self.initializer_range = config["initializer_range"]
        for name, child in self.named_children():
            if name != "adapters":  # the authors create the adapters after their init pass: torch's default
                child.apply(self._init_weights)
        _cheap_dropouts(self)
        self.discover_interests(seed=config["seed"])

    def _init_weights(self, module):
        """The authors' initialisation (``model_utils.Transformer``): N(0, 0.02) linear and embedding
        weights, zero biases, unit LayerNorms (attention's packed input projection keeps torch's). Their
        modality adapters are made after that pass and keep torch's default Linear initialisation."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    # -- inputs -----------------------------------------------------------------------------------
    def feature(self, name):
        """(n_items, dim) raw features of modality ``name`` (row 0 = padding, zeros)."""
        return getattr(self, f"feature_{name}")

    def adapted(self, name, items=None):
        """Adapted (hidden-size) vectors of modality ``name`` for ``items`` (all items when None)."""
        raw = self.feature(name) if items is None else self.feature(name)[items]
        return self.adapters[name](raw)

    # -- interests ------------------------------------------------------------------------------
    @torch.no_grad()
    def discover_interests(self, seed):
        """k-means over every item's adapted modality vectors; updates the centroid and lookup buffers."""
        points = torch.cat([self.adapted(n)[1:] for n in self.modality_names])
        generator = torch.Generator().manual_seed(int(seed))
        labels, centroids = minibatch_kmeans(points, self.n_interests, self.kmeans_batch_size, self.kmeans_iters,
                                             generator)
        self.interest_centroids[1:] = centroids
        self.interest_lookup[:, 1:] = labels.view(len(self.modality_names), -1) + 1

    # -- sequence encoding ------------------------------------------------------------------------
    def _item_tokens(self, item_seq, raw=None):
        """(B, L, D) decoder input: summed adapted modality vectors + position (+ ID), LayerNorm, dropout.

        ``raw``: optional {modality: (B, L, dim)} features replacing the looked-up ones (word drop).
        """
        tokens = 0
        for name in self.modality_names:
            x = raw[name] if raw is not None and name in raw else self.feature(name)[item_seq]
            tokens = tokens + self.adapters[name](x)
        positions = torch.arange(item_seq.size(1), device=item_seq.device)
        tokens = tokens + self.position_embedding(positions)
        if self.item_embedding is not None:
            tokens = tokens + self.item_embedding(item_seq)
        return self.dropout(self.LayerNorm(tokens))

    def _groups(self, item_len):
        """Row indices grouped by ceil(log2(history length)), or all rows in one group."""
        if not self.length_buckets:
            return [torch.arange(len(item_len), device=item_len.device)]
        keys = torch.ceil(torch.log2(item_len.clamp(min=1).float())).long()
        return [torch.nonzero(keys == k).squeeze(1) for k in torch.unique(keys)]

    def encode(self, item_seq, item_len, raw=None):
        """(B, D) L2-normalised user vectors and the authors' interest regulariser (a scalar).

        ``raw``: per-position feature overrides for :meth:`_item_tokens` (same shape as ``item_seq``).
        """
        batch, padded_len = item_seq.shape
        ids = self.interest_lookup[:, item_seq]  # (M, B, L)
        interests, n_real = unique_interests(ids.permute(1, 0, 2).reshape(batch, -1))
        # the authors' batch pads the interest tokens to the most distinct ids a row has, counting the
        # padding id 0 of rows shorter than the padded length; their pooling weighs by the real share
        width = int((n_real + (item_len < padded_len).long()).max())
        out = item_seq.new_zeros(batch, self.hidden_size, dtype=torch.float)
        pooled = torch.zeros_like(out)
        for rows in self._groups(item_len):
            lengths = item_len[rows]
            seq = item_seq[rows, : int(lengths.max())]
            real = n_real[rows]
            slots = int(real.max()) + 1  # one padding slot more: its output stands for every padding slot
            tokens = interests[rows, : slots]
            if tokens.size(1) < slots:
                tokens = F.pad(tokens, (0, slots - tokens.size(1)))
            memory_mask = tokens == 0
            sub_raw = None if raw is None else {k: v[rows, : seq.size(1)] for k, v in raw.items()}
            memory = self.trm_model.encoder(self.interest_centroids[tokens], src_key_padding_mask=memory_mask)
            at = torch.arange(len(rows), device=seq.device)
            summed = (memory * (~memory_mask).unsqueeze(-1)).sum(1) + (width - real).unsqueeze(1) * memory[at, real]
            pooled[rows] = summed * (real.float() / width).unsqueeze(1)
            decoded = self.trm_model.decoder(self._item_tokens(seq, sub_raw), memory,
                                             tgt_key_padding_mask=seq == 0, memory_key_padding_mask=memory_mask)
            out[rows] = decoded[at, lengths - 1]
        regulariser = (pooled * pooled).sum() / self.hidden_size
        return F.normalize(out, dim=1), regulariser

    # -- scoring ----------------------------------------------------------------------------------
    def _candidate_vectors(self, items=None):
        """Adapted vectors of ``items`` per modality; in eval mode those of all items are computed once
        (evaluation scores every item for every batch of users) until training resumes or weights load."""
        if items is not None:
            return [self.adapted(n, items) for n in self.modality_names]
        return self.eval_cached(lambda: [self.adapted(n) for n in self.modality_names])

    def scores(self, seq_output, items=None):
        """(B, N) scores (before the temperature) of every user against ``items`` (all when None)."""
        vectors = self._candidate_vectors(items)
        ids = None
        if self.item_embedding is not None:
            ids = self.item_embedding.weight if items is None else self.item_embedding(items)
        if ids is not None and self.id_scoring == "summed":
            return fusion.summed_scores(seq_output, vectors, ids)
        if len(vectors) == 1:  # a single modality's cosine: what summed_scores gives without IDs
            fused = fusion.modality_scores(seq_output, vectors)[..., 0]
        else:
            factor = self.fusion_factor
            if self.item_mm_fusion == "dynamic_instance" and items is not None:
                factor = factor[items]
            fused = fusion.fuse(fusion.modality_scores(seq_output, vectors), self.item_mm_fusion, factor)
        return fused if ids is None else fusion.with_id_scores(fused, seq_output, ids)

    def score_features(self, seq_output, features):
        """(B, N) inductive scores of new items given only their raw features {modality: (N, dim)}."""
        if self.item_embedding is not None:
            raise ValueError("scoring items by their features alone needs train_stage: inductive_ft (no item IDs)")
        vectors = [self.adapters[n](features[n]) for n in self.modality_names]
        if len(vectors) == 1:
            return fusion.summed_scores(seq_output, vectors) / self.temperature
        factor = self.fusion_factor
        if self.item_mm_fusion == "dynamic_instance":
            raise ValueError("dynamic_instance fusion has one scale per known item: new items have none")
        return fusion.fuse(fusion.modality_scores(seq_output, vectors), self.item_mm_fusion, factor) / self.temperature

    # -- RecBole's interface ----------------------------------------------------------------------
    def forward(self, item_seq, item_seq_len):
        return self.encode(item_seq, item_seq_len)[0]

    def calculate_loss(self, interaction):
        if self.stage == "pretrain":
            return self.pretrain_loss(interaction)
        seq_output, regulariser = self.encode(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        logits = self.scores(seq_output) / self.temperature
        return self.loss_fct(logits, interaction[self.POS_ITEM_ID]) + self.gamma * regulariser

    def predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        items = interaction[self.ITEM_ID]
        every = self.scores(seq_output, items)  # (B, B): each row against every row's item
        return every.diagonal() / self.temperature

    def full_sort_predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return self.scores(seq_output) / self.temperature

    # -- pre-training -----------------------------------------------------------------------------
    def pretrain_loss(self, interaction):
        """Sequence-item + lambda x sequence-sequence in-batch contrastive losses + gamma x regularisers."""
        item_seq, item_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        seq_output, regulariser = self.encode(item_seq, item_len)
        labels = torch.arange(len(item_seq), device=item_seq.device)
        seq_item = self.loss_fct(self.scores(seq_output, interaction[self.POS_ITEM_ID]) / self.temperature, labels)
        aug_seq, aug_len, raw = self.augment(item_seq, item_len)
        aug_output, aug_regulariser = self.encode(aug_seq, aug_len, raw)
        seq_seq = self.loss_fct(seq_output @ aug_output.t() / self.temperature, labels)
        return seq_item + self.lam * seq_seq + self.gamma * (regulariser + aug_regulariser)

    def augment(self, item_seq, item_len):
        """(sequence, lengths, raw feature overrides or None): item drop or word drop (:mod:`.augment`)."""
        word = self.aug_names and float(torch.rand(())) >= self.item_drop_coefficient
        if not word:
            seq, lengths = augment.item_drop(item_seq, self.item_drop_ratio)
            return seq, lengths, None
        swap = augment.word_drop_positions(item_seq, self.item_drop_ratio).unsqueeze(-1)
        raw = {name: torch.where(swap, self.feature(aug)[item_seq], self.feature(name)[item_seq])
               for name, aug in self.aug_names.items()}
        return item_seq, item_len, raw


def _cheap_dropouts(module):
    """Replace every ``nn.Dropout`` below ``module`` by :class:`IntMaskDropout` (same p, same law)."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, IntMaskDropout(child.p))
        else:
            _cheap_dropouts(child)
