"""MISSRec's interest discovery: torch k-means against references, its batch schedule, interest tokens."""

import numpy as np
import pytest
import torch

from recbole_mmssl.model.missrec.interest import (
    minibatch_kmeans,
    minibatch_schedule,
    number_of_interests,
    unique_interests,
)


def torchpq_reference(points, n_clusters, batch_size, iters, init_index):
    """A float64 numpy transcription of torchpq's MinibatchKMeans as the authors' cluster_kmeans calls it."""
    points = np.asarray(points, dtype=np.float64)
    if batch_size <= n_clusters:
        batch_size = int(n_clusters * 1.1)
    centroids, counts = None, np.ones(n_clusters)
    for _ in range(iters):
        for ptr in range(0, len(points), batch_size):
            remaining = len(points) - ptr - batch_size
            size = batch_size + remaining if remaining <= n_clusters else batch_size
            batch = points[ptr:ptr + size]
            if centroids is None:
                centroids = batch[init_index].copy()
            distances = ((batch[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
            labels = distances.argmin(1)
            delta = np.zeros_like(centroids)
            for k in np.unique(labels):
                delta[k] = batch[labels == k].mean(0)
            weight = 1.0 / counts[:, None]
            centroids = centroids * (1 - weight) + delta * weight
            found, n = np.unique(labels, return_counts=True)
            counts[found] += n
            if remaining <= n_clusters:
                break
    labels = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(-1).argmin(1)
    return labels, centroids


def _points(n=300, dim=5, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


@pytest.mark.parametrize("n, k, batch, iters", [(300, 37, 64, 1), (300, 37, 64, 3), (120, 100, 2048, 1),
                                                (500, 20, 128, 2)])
def test_kmeans_equals_the_torchpq_reference(n, k, batch, iters):
    points = _points(n)
    labels, centroids = minibatch_kmeans(points, k, batch, iters, torch.Generator().manual_seed(3))
    first = minibatch_schedule(n, k, batch)[0]
    init = torch.randperm(first[1] - first[0], generator=torch.Generator().manual_seed(3))[:k].numpy()
    ref_labels, ref_centroids = torchpq_reference(points.numpy(), k, batch, iters, init)
    assert np.array_equal(labels.numpy(), ref_labels)
    assert np.allclose(centroids.numpy(), ref_centroids, atol=1e-5)


def test_one_batch_one_pass_is_one_lloyd_step_of_sklearn():
    """With every point in one batch (the authors' Scientific case) one pass is one Lloyd iteration."""
    from sklearn.cluster import KMeans

    points = _points(200, 4, seed=1)
    labels, centroids = minibatch_kmeans(points, 25, 2048, 1, torch.Generator().manual_seed(5))
    init = points[torch.randperm(200, generator=torch.Generator().manual_seed(5))[:25]].numpy()
    ref = KMeans(n_clusters=25, init=init.astype(np.float64), n_init=1, max_iter=1, algorithm="lloyd", tol=0)
    ref.fit(points.numpy().astype(np.float64))
    assert np.allclose(centroids.numpy(), ref.cluster_centers_, atol=1e-5)
    assert np.array_equal(labels.numpy(), ref.predict(points.numpy().astype(np.float64)))


def test_kmeans_is_seeded_and_every_point_gets_a_label():
    points = _points(400, 6, seed=2)
    a = minibatch_kmeans(points, 40, 100, 1, torch.Generator().manual_seed(1))
    b = minibatch_kmeans(points, 40, 100, 1, torch.Generator().manual_seed(1))
    c = minibatch_kmeans(points, 40, 100, 1, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert a[0].shape == (400,) and int(a[0].min()) >= 0 and int(a[0].max()) < 40
    with pytest.raises(ValueError, match="K <= N"):
        minibatch_kmeans(points[:5], 6)


def test_schedule_merges_the_short_last_batch_as_the_authors():
    assert minibatch_schedule(4385, 2193, 2048) == [(0, 4385)]  # Scientific, text: batch raised to 2412
    assert minibatch_schedule(3170, 1585, 2048) == [(0, 3170)]  # the multimodal subset, two modalities
    assert minibatch_schedule(5000, 100, 2048) == [(0, 2048), (2048, 4096), (4096, 5000)]
    assert minibatch_schedule(4130, 100, 2048) == [(0, 2048), (2048, 4130)]


def test_number_of_interests_is_the_ceiling():
    assert number_of_interests(4385, 0.5) == 2193
    assert number_of_interests(10, 0.01) == 1


def test_unique_interests_are_each_rows_distinct_ids_without_padding():
    ids = torch.tensor([[3, 1, 3, 0, 0, 2], [5, 5, 5, 5, 0, 0], [0, 0, 0, 0, 0, 7]])
    out, counts = unique_interests(ids)
    assert out.tolist() == [[1, 2, 3], [5, 0, 0], [7, 0, 0]]
    assert counts.tolist() == [3, 1, 1]
