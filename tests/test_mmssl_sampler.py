"""MMSSL's user-uniform sampler (spec 1.6): distribution rules, training rows, determinism."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chi2

from recbole_mmssl.sampler import UserUniformSampler


def random_csr(n_users=30, n_items=25, seed=0):
    """Train matrix with padding row/column 0 empty and a few users without training items."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for user in range(1, n_users):
        if user % 7 == 0:
            continue  # no training items: never sampled
        items = rng.choice(np.arange(1, n_items), size=int(rng.integers(1, 8)), replace=False)
        rows += [user] * len(items)
        cols += list(items)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


def test_sample_follows_the_user_uniform_rules():
    csr = random_csr()
    sampler = UserUniformSampler(csr, batch_size=12, device=torch.device("cpu"))
    torch.manual_seed(0)
    for _ in range(20):
        users, pos, neg = sampler.sample()
        assert users.shape == pos.shape == neg.shape == (12,)
        assert users.unique().numel() == 12  # distinct users
        assert (torch.from_numpy(np.diff(csr.indptr))[users] > 0).all()  # only users with train items
        dense = torch.from_numpy(csr.toarray())
        assert (dense[users, pos] == 1).all()  # positives are training items
        assert (dense[users, neg] == 0).all() and (neg >= 1).all()  # negatives are not, never padding


def test_negatives_are_uniform_over_non_training_items():
    csr = sp.csr_matrix((np.ones(3), ([1, 1, 1], [1, 2, 3])), shape=(2, 9))
    sampler = UserUniformSampler(csr, batch_size=1, device=torch.device("cpu"))
    torch.manual_seed(0)
    counts = torch.bincount(torch.cat([sampler.sample()[2] for _ in range(5000)]), minlength=9)
    assert counts[:4].sum() == 0
    assert counts[4:].min() > 5000 / 5 * 0.85 and counts[4:].max() < 5000 / 5 * 1.15


def test_epoch_length_and_batch_clamp():
    csr = random_csr()
    sampler = UserUniformSampler(csr, batch_size=10, device=torch.device("cpu"))
    assert sampler.iterations_per_epoch == csr.nnz // 10 + 1
    small = UserUniformSampler(csr, batch_size=1000, device=torch.device("cpu"))
    n_eligible = int((np.diff(csr.indptr) > 0).sum())
    assert small.batch_size == n_eligible and small.sample()[0].numel() == n_eligible


def test_train_rows_are_the_users_training_items_over_real_items():
    csr = random_csr()
    sampler = UserUniformSampler(csr, batch_size=8, device=torch.device("cpu"))
    torch.manual_seed(1)
    users = sampler.sample()[0]
    rows = sampler.train_rows(users)
    assert rows.is_coalesced() and rows.shape == (8, csr.shape[1] - 1)
    expected = torch.from_numpy(csr.toarray()[users.numpy()][:, 1:]).float()
    torch.testing.assert_close(rows.to_dense(), expected)


def test_sampling_is_deterministic_for_a_seed():
    sampler = UserUniformSampler(random_csr(), batch_size=8, device=torch.device("cpu"))
    torch.manual_seed(3)
    first = [sampler.sample() for _ in range(3)]
    torch.manual_seed(3)
    second = [sampler.sample() for _ in range(3)]
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            assert torch.equal(x, y)


def test_user_with_every_item_is_rejected_clearly():
    csr = sp.csr_matrix((np.ones(3), ([1, 1, 1], [1, 2, 3])), shape=(2, 4))
    with pytest.raises(ValueError, match="every item"):
        UserUniformSampler(csr, batch_size=1, device=torch.device("cpu"))


# -- distribution checks (spec 1.6 "Sampling"), fixed seed, generous chi-square thresholds ---------

P_MIN = 1e-4  # a correct sampler fails a check at this seed with probability about 1e-4


def _chi_square_p(counts, expected):
    """p-value of Pearson's chi-square for observed counts against expected counts (same shape)."""
    counts, expected = np.asarray(counts, dtype=float), np.asarray(expected, dtype=float)
    stat = ((counts - expected) ** 2 / expected).sum()
    return chi2.sf(stat, counts.size - 1)


def test_users_are_uniform_among_users_with_training_items():
    """Users: B distinct per batch, only users with >= 1 training item, each equally often."""
    csr = random_csr(n_users=40)
    degree = np.diff(csr.indptr)
    eligible = np.flatnonzero(degree > 0)
    sampler = UserUniformSampler(csr, batch_size=7, device=torch.device("cpu"))
    torch.manual_seed(11)
    n_draws = 3000
    batches = torch.stack([sampler.sample()[0] for _ in range(n_draws)])  # (draws, B)
    assert all(row.unique().numel() == 7 for row in batches)
    counts = np.bincount(batches.flatten().numpy(), minlength=csr.shape[0])
    assert counts[degree == 0].sum() == 0 and (counts[eligible] > 0).all()
    assert _chi_square_p(counts[eligible], np.full(eligible.size, n_draws * 7 / eligible.size)) > P_MIN
    # without replacement, uniform: every slot of the batch is uniform too (no ordering bias)
    first = np.bincount(batches[:, 0].numpy(), minlength=csr.shape[0])[eligible]
    assert _chi_square_p(first, np.full(eligible.size, n_draws / eligible.size)) > P_MIN


def test_positives_are_uniform_within_each_users_training_list():
    csr = random_csr(n_users=12, n_items=30, seed=4)
    degree = np.diff(csr.indptr)
    eligible = np.flatnonzero(degree > 0)
    sampler = UserUniformSampler(csr, batch_size=eligible.size, device=torch.device("cpu"))  # every user, every draw
    torch.manual_seed(12)
    n_draws = 2000
    draws = [sampler.sample() for _ in range(n_draws)]
    users = torch.cat([d[0] for d in draws]).numpy()
    positives = torch.cat([d[1] for d in draws]).numpy()
    stat, dof = 0.0, 0
    for user in eligible:
        items = csr.indices[csr.indptr[user]: csr.indptr[user + 1]]
        got = positives[users == user]
        assert got.size == n_draws and np.isin(got, items).all()
        counts = np.array([(got == item).sum() for item in items])
        stat += ((counts - n_draws / items.size) ** 2 / (n_draws / items.size)).sum()
        dof += items.size - 1
    assert dof > 20 and chi2.sf(stat, dof) > P_MIN


def test_negatives_avoid_training_items_and_are_uniform_over_the_rest():
    csr = random_csr(n_users=12, n_items=30, seed=5)
    degree = np.diff(csr.indptr)
    eligible = np.flatnonzero(degree > 0)
    sampler = UserUniformSampler(csr, batch_size=eligible.size, device=torch.device("cpu"))
    torch.manual_seed(13)
    n_draws = 2000
    draws = [sampler.sample() for _ in range(n_draws)]
    users = torch.cat([d[0] for d in draws]).numpy()
    negatives = torch.cat([d[2] for d in draws]).numpy()
    stat, dof = 0.0, 0
    for user in eligible:
        train = csr.indices[csr.indptr[user]: csr.indptr[user + 1]]
        allowed = np.setdiff1d(np.arange(1, csr.shape[1]), train)  # real items (padding 0 excluded)
        got = negatives[users == user]
        assert np.isin(got, allowed).all()
        counts = np.bincount(got, minlength=csr.shape[1])[allowed]
        stat += ((counts - n_draws / allowed.size) ** 2 / (n_draws / allowed.size)).sum()
        dof += allowed.size - 1
    assert chi2.sf(stat, dof) > P_MIN
