"""MMSSL's user-uniform training sampler and the batch's training rows (spec 1.6, 5.7).

Per iteration: B distinct users drawn uniformly among the users with at least one training item,
one positive drawn uniformly from each user's training items, one negative drawn uniformly from
all real items and rejected while it is a training item of that user. This is the released code's
distribution (not its RNG stream), fully vectorised on ``device``: users by randperm, positives by
indptr + floor(rand * degree), negatives by rejection rounds tested with searchsorted on the sorted
keys u * n_items + i. Random draws use the default torch generator of the device, so a seeded run
(and a resumed one, whose RNG state is restored) is deterministic.
"""

from logging import getLogger

import numpy as np
import torch


class UserUniformSampler:
    """Samples (users, positives, negatives) and builds the batch's sparse training rows.

    ``train_csr`` is RecBole's training ``inter_matrix(form='csr')`` of shape (n_users, n_items),
    padding user 0 and padding item 0 included (they have no interactions). Item ids returned are
    RecBole internal ids; training rows are over the real items (column j is item j + 1).
    """

    def __init__(self, train_csr, batch_size, device):
        csr = train_csr.tocsr().astype(np.float32)
        csr.sum_duplicates()
        csr.sort_indices()
        self.n_users, self.n_items = csr.shape
        self.device = device
        self.indptr = torch.from_numpy(csr.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(csr.indices.astype(np.int64)).to(device)
        self.degree = self.indptr[1:] - self.indptr[:-1]
        self.n_train = int(self.indices.shape[0])
        if self.n_train == 0:
            raise ValueError("MMSSL: the training split has no interactions; check the dataset's train file.")
        if int(self.indices.min()) < 1:
            raise ValueError("MMSSL: a training interaction uses the padding item id 0; the dataset is malformed.")
        self.eligible = torch.nonzero(self.degree > 0).squeeze(1)
        full = self.eligible[self.degree[self.eligible] >= self.n_items - 1]
        if full.numel():
            raise ValueError(
                f"MMSSL: {full.numel()} user(s) interacted with every item in training, so no negative "
                "item can be sampled for them; filter such users out of the dataset."
            )
        rows = torch.repeat_interleave(torch.arange(self.n_users, device=device), self.degree)
        self.keys = rows * self.n_items + self.indices  # sorted: rows ascending, columns sorted
        self.batch_size = int(batch_size)
        if self.batch_size > self.eligible.numel():
            getLogger().warning(
                f"MMSSL: train_batch_size={self.batch_size} exceeds the {self.eligible.numel()} users "
                f"with training items; each iteration samples all {self.eligible.numel()} users."
            )
            self.batch_size = int(self.eligible.numel())

    @property
    def iterations_per_epoch(self):
        """floor(n_train / B) + 1, the released code's epoch length (spec 1.6)."""
        return self.n_train // self.batch_size + 1

    def sample(self):
        """(users, positive items, negative items), each (B,) on the device."""
        pick = torch.randperm(self.eligible.numel(), device=self.device)[: self.batch_size]
        users = self.eligible[pick]
        degree = self.degree[users]
        offset = (torch.rand(users.shape[0], device=self.device) * degree).long().clamp_max_(degree - 1)
        positives = self.indices[self.indptr[users] + offset]
        negatives = self._negatives(users)
        return users, positives, negatives

    def _negatives(self, users):
        negatives = torch.empty_like(users)
        todo = torch.arange(users.shape[0], device=self.device)
        while todo.numel():
            draw = torch.randint(1, self.n_items, (todo.numel(),), device=self.device)
            rejected = self.is_training_pair(users[todo], draw)
            accepted = ~rejected
            negatives[todo[accepted]] = draw[accepted]
            todo = todo[rejected]
        return negatives

    def is_training_pair(self, users, items):
        """Boolean (N,): whether (users[n], items[n]) is a training interaction."""
        query = users * self.n_items + items
        pos = torch.searchsorted(self.keys, query).clamp_max_(self.keys.numel() - 1)
        return self.keys[pos] == query

    def train_rows(self, users):
        """Coalesced sparse COO (B, I) with ones at the users' training items (real items only)."""
        degree = self.degree[users]
        batch_rows = torch.repeat_interleave(torch.arange(users.shape[0], device=self.device), degree)
        starts = torch.repeat_interleave(self.indptr[users], degree)
        first = torch.repeat_interleave(torch.cumsum(degree, 0) - degree, degree)
        positions = starts + torch.arange(batch_rows.shape[0], device=self.device) - first
        cols = self.indices[positions] - 1
        return torch.sparse_coo_tensor(
            torch.stack([batch_rows, cols]),
            torch.ones(cols.shape[0], device=self.device),
            (users.shape[0], self.n_items - 1),
            is_coalesced=True,
            check_invariants=False,
        )
