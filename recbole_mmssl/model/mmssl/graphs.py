"""The modality-aware user-item graphs of MMSSL (spec 1.5) and their bookkeeping.

Each modality m has a count matrix C^m (pairs with duplicates summed; initially the training
interactions R, so every G^m starts as the normalised interaction graph) and the graphs
G^m_ui = rownorm(C^m), G^m_iu = rownorm(C^m^T). Top-k pairs from the generator's relation rows
replace C^m over time, under one of two schedules:

- ``released``: the released code's schedule. At iteration idx of an epoch (idx restarts at 0),
  if idx % T == 0 and idx != 0 the graphs are rebuilt from the pending pairs, which are cleared
  (that batch's top-k is not added); otherwise the batch's top-k pairs are appended. With T = 1
  the graphs are empty in almost every iteration.
- ``accumulate``: after every iteration the graphs are rebuilt from the pairs of the last T
  batches, each user keeping the pairs of the latest batch it was in: every user seen in the last
  T batches has edges.

Everything (counts and pending pairs) is exposed as tensors for checkpoints, because a restored
model must evaluate with the graphs it had (spec section 7).
"""

import torch

from recbole_mmssl.model.common.graph_ops import bipartite_graphs

SCHEDULES = ("released", "accumulate")
PAIR_LAYOUTS = ("tiled", "aligned")


def topk_pairs(users, scores, k, layout, exclude=None):
    """(user ids, real-item columns) of the top-k entries of each batch row.

    ``tiled`` reproduces the released code's pairing, pair j = (users[j mod B], topk[j // k, j mod k]),
    which scrambles users and items for k > 1 (spec 1.5); ``aligned`` pairs each row's items with
    its own user. ``exclude`` (a sparse (B, I) tensor) masks those entries with -inf before the
    top-k; pairs that can only be filled with excluded entries are dropped.
    """
    if k <= 0:
        empty = users.new_zeros(0)
        return empty, empty
    if exclude is not None:
        scores = scores.clone()
        index = exclude.indices()
        scores[index[0], index[1]] = float("-inf")
    values, cols = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    k = cols.shape[1]
    pair_users = users.repeat(k) if layout == "tiled" else users.repeat_interleave(k)
    pair_cols, values = cols.reshape(-1), values.reshape(-1)
    keep = values > float("-inf")
    return pair_users[keep], pair_cols[keep]


class ModalityGraphs:
    """Per-modality count matrices, their normalised graphs, and the pending top-k pairs."""

    def __init__(self, names, train_users, train_items, n_users, n_items, schedule, period, k, layout, exclude_train):
        if schedule not in SCHEDULES:
            raise ValueError(f"MMSSL: graph_schedule must be one of {SCHEDULES}, got {schedule!r}.")
        if layout not in PAIR_LAYOUTS:
            raise ValueError(f"MMSSL: pair_layout must be one of {PAIR_LAYOUTS}, got {layout!r}.")
        if period < 1:
            raise ValueError(f"MMSSL: T (graph rebuild period, in batches) must be >= 1, got {period}.")
        self.names = list(names)
        self.n_users, self.n_items = n_users, n_items
        self.schedule, self.period, self.k = schedule, period, k
        self.layout, self.exclude_train = layout, exclude_train
        self.step = 0  # iterations observed so far (accumulate window), across epochs
        ones = torch.ones(train_users.shape[0], device=train_users.device)
        self.counts = {name: (train_users.clone(), train_items.clone(), ones.clone()) for name in self.names}
        empty = train_users.new_zeros(0)
        self.pending = {name: (empty, empty, empty) for name in self.names}  # users, items, step
        self.graphs = {}
        for name in self.names:
            self._rebuild(name)

    def _rebuild(self, name):
        users, items, values = self.counts[name]
        self.graphs[name] = bipartite_graphs(users, items, values, self.n_users, self.n_items)

    def graph(self, name):
        """(G_ui, G_iu) of modality ``name``."""
        return self.graphs[name]

    def nnz(self, name):
        return self.graphs[name][0]._nnz()

    def coverage(self, name):
        """(users, items) with at least one modality edge in graph ``name``: counts of distinct ids.

        Logged every epoch: a window too short for the batch size leaves most users without edges
        (T = 1 covered 11% of TikTok's users), and nothing else makes that visible.
        """
        users, items, values = self.counts[name]
        present = values != 0
        return int(torch.unique(users[present]).numel()), int(torch.unique(items[present]).numel())

    def will_append(self, batch_idx):
        """Whether ``observe(batch_idx, ...)`` takes top-k pairs (and so needs the dense rows)."""
        if self.k <= 0:
            return False
        return self.schedule == "accumulate" or not self._is_rebuild(batch_idx)

    def _is_rebuild(self, batch_idx):
        return batch_idx % self.period == 0 and batch_idx != 0

    def observe(self, batch_idx, users, scores, train_rows):
        """Bookkeeping after a generator step (spec 1.5); returns True when a graph changed.

        batch_idx: iteration index within the epoch; users: (B,) internal user ids; scores: dict
        modality -> detached dense (B, I) relation rows over the real items (column j is item j+1),
        or any positive row-wise rescaling of them (only each row's order is used);
        train_rows: sparse (B, I) training rows of the batch (excluded from the top-k if asked).
        ``scores`` may be None when :meth:`will_append` is False.
        """
        self.step += 1
        if self.schedule == "released":
            if self._is_rebuild(batch_idx):
                for name in self.names:
                    users_, items, _ = self.pending[name]
                    self.counts[name] = (users_, items, torch.ones(users_.shape[0], device=users_.device))
                    empty = users_.new_zeros(0)
                    self.pending[name] = (empty, empty, empty)
                    self._rebuild(name)
                return True
            self._append(users, scores, train_rows)
            return False
        if self.k <= 0:
            return False
        self._append(users, scores, train_rows)
        for name in self.names:
            self._rebuild_window(name)
        return True

    def _append(self, users, scores, train_rows):
        if self.k <= 0:
            return
        exclude = train_rows if self.exclude_train else None
        for name in self.names:
            pair_users, cols = topk_pairs(users, scores[name], self.k, self.layout, exclude)
            old_users, old_items, old_steps = self.pending[name]
            steps = torch.full_like(pair_users, self.step)
            self.pending[name] = (
                torch.cat([old_users, pair_users]),
                torch.cat([old_items, cols + 1]),
                torch.cat([old_steps, steps]),
            )

    def _rebuild_window(self, name):
        """Keep the pairs of the last T batches, each user's from its latest batch only."""
        users, items, steps = self.pending[name]
        recent = steps > self.step - self.period
        users, items, steps = users[recent], items[recent], steps[recent]
        latest = torch.zeros(self.n_users, dtype=steps.dtype, device=steps.device)
        latest.scatter_reduce_(0, users, steps, reduce="amax")
        keep = steps == latest[users]
        users, items, steps = users[keep], items[keep], steps[keep]
        self.pending[name] = (users, items, steps)
        self.counts[name] = (users, items, torch.ones(users.shape[0], device=users.device))
        self._rebuild(name)

    # -- checkpoint state: tensors only --------------------------------------------------------
    def state(self):
        state = {"graph_step": torch.tensor(self.step)}
        for name in self.names:
            users, items, values = self.counts[name]
            state[f"graph_{name}_users"], state[f"graph_{name}_items"] = users, items
            state[f"graph_{name}_values"] = values
            p_users, p_items, p_steps = self.pending[name]
            state[f"pending_{name}_users"], state[f"pending_{name}_items"] = p_users, p_items
            state[f"pending_{name}_steps"] = p_steps
        return state

    def load_state(self, state, device):
        missing = [name for name in self.names if f"graph_{name}_users" not in state]
        if missing or "graph_step" not in state:
            raise KeyError(
                f"MMSSL checkpoint has no modality graph state for {missing or ['graph_step']}: "
                "it was written for other modalities or by another model; retrain or pass the "
                "checkpoint's `modalities`."
            )
        self.step = int(state["graph_step"])
        for name in self.names:
            self.counts[name] = tuple(state[f"graph_{name}_{part}"].to(device) for part in ("users", "items", "values"))
            self.pending[name] = tuple(state[f"pending_{name}_{part}"].to(device) for part in ("users", "items", "steps"))
            self._rebuild(name)
