"""MISSRec's sequence augmentation for the sequence-sequence contrastive pre-training loss.

The authors (``data/transform.py``, inherited from UniSRec) draw one augmentation per batch:

* item drop, with probability ``item_drop_coefficient`` (0.9): every item except the first is kept
  with probability 1 - ``item_drop_ratio`` (0.8) and the kept items are moved to the front;
* word drop otherwise: the sequence keeps its items, but at the positions a Bernoulli(``item_drop_ratio``)
  draw marks, each modality that has a word-dropped twin (``<modality>_aug``: UniSRec's feat2CLS,
  the text encoded with 15% of its words dropped) takes the twin's vector instead.

Randomness comes from torch's global generator (seeded by RecBole, saved in checkpoints).
"""

import torch


def keep_mask(item_seq, drop_ratio):
    """(B, L) bool: True where an item is kept (each with probability 1 - ``drop_ratio``)."""
    return torch.rand(item_seq.shape, device=item_seq.device) >= drop_ratio


def item_drop(item_seq, drop_ratio):
    """(sequence, lengths) with items dropped and the kept ones moved to the front.

    The first item is always kept, so no sequence becomes empty. The authors scatter every position
    to its kept-prefix index, so a dropped item can overwrite the kept one before it (which of the
    colliding writes wins is up to the device); here exactly the kept items remain, in order.
    """
    keep = keep_mask(item_seq, drop_ratio) & (item_seq != 0)
    keep[:, 0] = True
    slots = keep.long().cumsum(1) - 1
    out = torch.zeros_like(item_seq)
    rows = torch.arange(len(item_seq), device=item_seq.device).unsqueeze(1).expand_as(keep)
    out[rows[keep], slots[keep]] = item_seq[keep]
    return out, keep.sum(1)


def word_drop_positions(item_seq, drop_ratio):
    """(B, L) bool: True where a position takes the word-dropped version of its text."""
    return ~keep_mask(item_seq, drop_ratio)
