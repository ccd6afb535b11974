"""MISSRec's interest discovery: k-means over the items' adapted modality vectors, in torch.

Wang et al. (MISSRec, ACM MM 2023, section 3.2) turn every item of a sequence into "interest tokens":
before each training epoch all items' modality vectors (after the modality adapters) are clustered,
each (item, modality) pair is looked up to its cluster, and a sequence's encoder input is the set of
distinct clusters its items fall into. The authors cluster with torchpq's ``MinibatchKMeans`` (CUDA
kernels through cupy); this is the same algorithm in plain torch, so it runs on CPU or GPU:

* mini-batches of ``batch_size`` points (raised to 1.1 K when not larger than K), the last short batch
  merged into the one before, the first batch's points giving the initial centroids (K drawn without
  replacement);
* per batch: each point to its nearest centroid (squared Euclidean distance), then every centroid
  moved towards its batch mean with weight 1/n, n its points so far counted from 1 (torchpq's update;
  a centroid without points in the batch is shrunk towards zero as torchpq does);
* ``iters`` passes over the data. The authors ask for 5 with a tolerance test, but torchpq's error
  compares the updated centroids with themselves (always 0), so their loop ends after one pass:
  ``iters: 1`` is what their runs did;
* finally every point gets the label of its nearest centroid.

Randomness comes only from ``generator`` (seeded per epoch by the trainer), so a run and its resumed
continuation discover the same interests.
"""

import math

import torch


def nearest_centroid(points, centroids, chunk=8192):
    """Index of the nearest centroid (squared Euclidean distance) of every point, in chunks of rows."""
    c_norm = (centroids * centroids).sum(1)
    labels = []
    for start in range(0, len(points), chunk):
        block = points[start:start + chunk]
        # argmin |x - c|^2 = argmax 2 x.c - |c|^2 (|x|^2 is the same for every centroid)
        labels.append((2 * block @ centroids.t() - c_norm).argmax(1))
    return torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=points.device)


def minibatch_schedule(n_points, n_clusters, batch_size):
    """The (start, end) batches of one pass, as the authors' ``cluster_kmeans`` cuts them."""
    if batch_size <= n_clusters:
        batch_size = int(n_clusters * 1.1)
    batches, start = [], 0
    while start < n_points:
        remaining = n_points - start - batch_size
        size = batch_size + remaining if remaining <= n_clusters else batch_size
        batches.append((start, min(start + size, n_points)))
        if remaining <= n_clusters:
            break
        start += size
    return batches


def minibatch_kmeans(points, n_clusters, batch_size=2048, iters=1, generator=None):
    """(labels (N,), centroids (K, D)) of torchpq's mini-batch k-means on ``points`` (N, D).

    ``n_clusters`` must not exceed the number of points.
    """
    n_points = len(points)
    if not 1 <= n_clusters <= n_points:
        raise ValueError(f"k-means needs 1 <= K <= N, got K={n_clusters} for N={n_points} points")
    points = points.detach().float()
    centroids, counts = None, torch.ones(n_clusters, device=points.device)
    for _ in range(iters):
        for start, end in minibatch_schedule(n_points, n_clusters, batch_size):
            batch = points[start:end]
            if centroids is None:
                pick = torch.randperm(len(batch), generator=generator, device="cpu")[:n_clusters]
                centroids = batch[pick.to(points.device)].clone()
            labels = nearest_centroid(batch, centroids)
            in_batch = torch.bincount(labels, minlength=n_clusters).float()
            sums = torch.zeros_like(centroids).index_add_(0, labels, batch)
            means = sums / in_batch.clamp(min=1).unsqueeze(1)  # zero where a centroid got no point
            weight = (1.0 / counts).unsqueeze(1)
            centroids = centroids * (1 - weight) + means * weight
            counts = counts + in_batch
    return nearest_centroid(points, centroids), centroids


def number_of_interests(n_points, ratio):
    """K = ceil(points x ratio), at least 1 (the authors' ``num_interest``)."""
    return max(math.ceil(n_points * ratio), 1)


def unique_interests(interest_ids):
    """Each row's distinct non-zero interest ids, sorted, left-aligned and zero-padded, and their count.

    ``interest_ids``: (B, T) long, 0 = padding. Returns ``(ids (B, W), counts (B,))`` with W = the
    largest count (at least 1). The authors take ``sample.unique()`` row by row (which keeps a 0 where
    a row has padding, masked like the padding after it); the encoder sees the same set of tokens.
    """
    sorted_ids, _ = interest_ids.sort(dim=1)
    keep = sorted_ids != 0
    keep[:, 1:] &= sorted_ids[:, 1:] != sorted_ids[:, :-1]
    counts = keep.sum(1)
    width = max(int(counts.max()) if len(counts) else 0, 1)
    slots = keep.long().cumsum(1) - 1
    out = torch.zeros(len(interest_ids), width, dtype=interest_ids.dtype, device=interest_ids.device)
    rows = torch.arange(len(interest_ids), device=interest_ids.device).unsqueeze(1).expand_as(keep)
    out[rows[keep], slots[keep]] = sorted_ids[keep]
    return out, counts
