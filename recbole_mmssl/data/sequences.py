"""Each user's whole history, for recommending the next item with a sequential model.

A sequential dataset (UniSRec layout, RecBole's SequentialDataset) holds one row per target with the
history before it; a user's latest row (the test row) plus its target is everything the user did.
``recommend`` feeds that history to the model, as RecBole's evaluator feeds a test row's history.
"""

import numpy as np
import scipy.sparse as sp
import torch


def latest_histories(dataset, max_len):
    """(item_seq (U, max_len) long, item_len (U,) long): per internal user id, the items of the user's
    longest row followed by its target, the last ``max_len`` of them (zeros for users without rows)."""
    inter = dataset.inter_feat
    users = inter[dataset.uid_field].numpy()
    lengths = inter[dataset.item_list_length_field].numpy()
    lists = inter[dataset.item_id_list_field].numpy()
    targets = inter[dataset.iid_field].numpy()
    order = np.lexsort((np.arange(len(users)), lengths, users))  # per user, its longest (then last) row last
    last = order[np.r_[users[order][1:] != users[order][:-1], True]]
    seq = np.zeros((dataset.user_num, max_len), dtype=np.int64)
    seq_len = np.zeros(dataset.user_num, dtype=np.int64)
    for row in last:
        items = np.append(lists[row][: lengths[row]], targets[row])[-max_len:]
        seq[users[row], : len(items)] = items
        seq_len[users[row]] = len(items)
    return torch.from_numpy(seq), torch.from_numpy(seq_len)


def history_matrix(item_seq, n_items):
    """CSR (users x items) marking the items of each user's history (to leave them out of recommendations)."""
    rows, cols = np.nonzero(item_seq.numpy())
    items = item_seq.numpy()[rows, cols]
    return sp.csr_matrix((np.ones(len(rows)), (rows, items)), shape=(len(item_seq), n_items))
