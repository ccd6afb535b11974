"""MISSRec's candidate scoring: dynamic multimodal fusion of per-modality scores (paper section 3.4).

For a user vector s (L2-normalised) and candidate items with adapted modality vectors v_m:

* per modality a cosine score  l_m = s . v_m / |v_m|;
* ``dynamic_shared`` (the authors' default): weights softmax_m(alpha * l_m) with one learnable scale
  alpha (initialised 0, i.e. the plain mean), fused score sum_m w_m l_m, so each user-item pair leans
  on the modality that matches it best; ``dynamic_instance``: one alpha per item; ``static``: the mean;
* transductive (with item IDs): (l_id + 2 * fused) / 3 with l_id the cosine score of the ID embedding,
  exactly the authors' mix;
* one modality: the authors score against the normalised sum of the adapted vector and the ID
  embedding instead (:func:`summed_scores`). The key ``id_scoring`` names the two forms ``summed``
  and ``mixed`` (with one modality, fused = its cosine score); ``auto`` follows the authors.

Every score is divided by the temperature by the caller.
"""

import torch
import torch.nn.functional as F

FUSIONS = ("static", "dynamic_shared", "dynamic_instance")
ID_SCORINGS = ("auto", "summed", "mixed")


def modality_scores(seq_output, item_vectors):
    """(B, N, M) cosine scores of each user vector against each item's M adapted modality vectors."""
    return torch.stack([seq_output @ F.normalize(v, dim=-1).t() for v in item_vectors], dim=-1)


def fuse(scores, mode, factor=None):
    """(B, N) fused scores from (B, N, M) per-modality scores.

    ``factor``: the learnable scale alpha, a scalar (``dynamic_shared``) or one value per candidate
    item, shape (N,) (``dynamic_instance``).
    """
    if mode == "static":
        return scores.mean(-1)
    if mode not in FUSIONS:
        raise ValueError(f"unknown item_mm_fusion {mode!r}; expected one of {FUSIONS}")
    weights = F.softmax(scores * factor.reshape(-1, 1) if factor.dim() else scores * factor, dim=-1)
    return (scores * weights).sum(-1)


def with_id_scores(fused, seq_output, id_vectors):
    """The authors' transductive mix (l_id + 2 * fused) / 3."""
    id_scores = seq_output @ F.normalize(id_vectors, dim=-1).t()
    return (id_scores + 2 * fused) / 3


def summed_scores(seq_output, item_vectors, id_vectors=None):
    """One-modality scoring: cosine against the normalised sum of the adapted vectors (and ID vectors)."""
    total = sum(item_vectors)
    if id_vectors is not None:
        total = total + id_vectors
    return seq_output @ F.normalize(total, dim=-1).t()
