"""k-NN item graphs (recbole_mmssl.data.knn builds and caches them, recbole_mmssl.model.common.knn normalises
and multiplies): brute-force equality, masks, chunks, normalisation, cache, and the dataset handing them over."""

import logging
import os

import numpy as np
import pytest
import torch

from recbole_mmssl.data import knn
from recbole_mmssl.model.common import knn as graph_maths

K = 4


def integer_features(n=37, dim=5, seed=0):
    """Small-integer rows (every dot product is exact) with exact cosine ties built in.

    Rows 10 and 11 duplicate row 3, row 12 is 2 x row 3 (same cosine to everyone), row 20 is
    all zero (cosine 0 with everything).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (n, dim), generator=gen).float()
    x[10] = x[3]
    x[11] = x[3]
    x[12] = 2 * x[3]
    x[20] = 0.0
    return x


def brute_force(features, mask, k):
    """Dense float64 reference: each item with features takes the k items with features of largest
    cosine (itself included), ties to the lower id; returns {item: sorted neighbour list}."""
    x = features.double().numpy()
    norms = np.maximum(np.linalg.norm(x, axis=1), 1e-12)
    sim = (x @ x.T) / norms[:, None] / norms[None, :]
    valid = [i for i in range(len(x)) if mask[i]]
    return {i: sorted(sorted(valid, key=lambda j: (-sim[i, j], j))[:k]) for i in valid}


def as_neighbours(rows, cols):
    found = {}
    for r, c in zip(rows.tolist(), cols.tolist()):
        found.setdefault(r, []).append(c)
    return {r: sorted(cs) for r, cs in found.items()}


@pytest.mark.parametrize("chunk_rows", [1, 5, 8, 36, 37, 1000, None])
def test_topk_equals_brute_force_for_any_chunk_size(chunk_rows):
    x = integer_features()
    mask = torch.ones(len(x), dtype=torch.bool)
    mask[[0, 7, 30]] = False  # padding row 0 and two items without features
    rows, cols, cosine = knn.cosine_topk(x, mask, K, chunk_rows=chunk_rows)
    assert as_neighbours(rows, cols) == brute_force(x, mask, K)
    reference = torch.nn.functional.cosine_similarity(x[rows].double(), x[cols].double(), dim=1, eps=1e-12)
    assert torch.allclose(cosine.double(), reference, atol=1e-6)


def test_ties_go_to_the_lower_id_and_masked_items_get_no_edges():
    x = integer_features()
    mask = torch.ones(len(x), dtype=torch.bool)
    mask[[0, 7]] = False
    x[7] = x[3]  # a masked copy of row 3 would tie with it, but has no features
    neighbours = as_neighbours(*knn.cosine_topk(x, mask, 2)[:2])
    # rows 3, 10, 11, 12 all have cosine 1 with each other: the two lowest ids win, for each of them
    for item in (3, 10, 11, 12):
        assert neighbours[item] == [3, 10]
    assert 0 not in neighbours and 7 not in neighbours
    assert all(0 not in cs and 7 not in cs for cs in neighbours.values())


def test_self_is_a_neighbour_and_a_zero_row_has_cosine_zero():
    x = integer_features()
    mask = torch.ones(len(x), dtype=torch.bool)
    rows, cols, cosine = knn.cosine_topk(x, mask, K)
    neighbours = as_neighbours(rows, cols)
    untied = [i for i in range(len(x)) if i not in (3, 10, 11, 12, 20)]
    assert all(i in neighbours[i] for i in untied)
    assert torch.isfinite(cosine).all()
    assert (cosine[rows == 20] == 0).all() and (cosine[cols == 20] == 0).all()


def test_fewer_items_with_features_than_k_take_all_of_them():
    x = integer_features()
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[[2, 5, 6]] = True
    neighbours = as_neighbours(*knn.cosine_topk(x, mask, 10)[:2])
    assert neighbours == {2: [2, 5, 6], 5: [2, 5, 6], 6: [2, 5, 6]}
    rows, cols, cosine = knn.cosine_topk(x, torch.zeros(len(x), dtype=torch.bool), 10)
    assert rows.numel() == cols.numel() == cosine.numel() == 0
    with pytest.raises(ValueError, match="k >= 1"):
        knn.cosine_topk(x, mask, 0)


def test_row_degree_normalisation_is_the_dense_formula_with_duplicates_summed():
    rows = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    cols = torch.tensor([1, 1, 0, 2, 3, 2, 3])  # (0, 1) twice: counted as one edge of weight 0.5
    values = torch.tensor([0.25, 0.25, 1.0, 2.0, 3.0, 4.0, -1.0])  # row 3 sums to -1: scale 0
    dense = torch.zeros(4, 4).index_put((rows, cols), values, accumulate=True)
    degree = dense.sum(1)
    scale = torch.where(degree > 0, degree.clamp_min(1e-30).rsqrt(), torch.zeros(4))
    expected = scale[:, None] * dense * scale[None, :]
    got = graph_maths.sparse_graph(rows, cols, graph_maths.row_degree_normalized(rows, cols, values, 4), 4).to_dense()
    assert torch.allclose(got, expected)
    assert (got[3] == 0).all() and (got[:, 3] == 0).all()


def test_pair_cosine_and_edge_product_are_differentiable_dense_equivalents():
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(12, 6, generator=gen, requires_grad=True)
    x = torch.randn(12, 3, generator=gen, requires_grad=True)
    rows, cols, cosine = knn.cosine_topk(feats.detach(), torch.ones(12, dtype=torch.bool), 3)
    values = graph_maths.pair_cosine(feats, rows, cols)
    assert torch.allclose(values.detach(), cosine, atol=1e-6)
    out = graph_maths.edge_product(rows, cols, values, x)
    out.pow(2).sum().backward()
    grads = feats.grad.clone(), x.grad.clone()
    feats.grad, x.grad = None, None
    normed = feats / feats.norm(dim=1, keepdim=True)
    dense = torch.zeros(12, 12).index_put((rows, cols), (normed[rows] * normed[cols]).sum(1), accumulate=True)
    expected = dense @ x
    expected.pow(2).sum().backward()
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(grads[0], feats.grad, atol=1e-5) and torch.allclose(grads[1], x.grad, atol=1e-5)
    assert grads[0].abs().sum() > 0


# -- cache ----------------------------------------------------------------------------------------
@pytest.fixture
def counted(monkeypatch):
    """Count the k-NN builds (cache misses)."""
    calls = []
    build = knn.cosine_topk

    def counting(*args, **kwargs):
        calls.append(args[2])
        return build(*args, **kwargs)

    monkeypatch.setattr(knn, "cosine_topk", counting)
    return calls


def test_cache_is_hit_then_invalidated_by_features_mask_and_k(tmp_path, counted):
    x = integer_features()
    mask = torch.ones(len(x), dtype=torch.bool)
    mask[0] = False
    first = knn.cached_knn(str(tmp_path), "tiny", "image", x, mask, K)
    path = tmp_path / ".tiny.image_feat.knn4.pt"
    assert path.is_file() and counted == [K]
    again = knn.cached_knn(str(tmp_path), "tiny", "image", x, mask, K)
    assert counted == [K]  # hit
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert list(torch.load(path, weights_only=True)) >= ["version", "digest", "k", "shape", "rows", "cols", "cosine"]

    changed = x.clone()
    changed[5, 0] += 1.0
    rebuilt = knn.cached_knn(str(tmp_path), "tiny", "image", changed, mask, K)
    assert len(counted) == 2  # features changed: miss, file rewritten
    assert as_neighbours(*rebuilt[:2]) == brute_force(changed, mask, K)
    knn.cached_knn(str(tmp_path), "tiny", "image", changed, mask, K)
    assert len(counted) == 2

    fewer = mask.clone()
    fewer[9] = False
    knn.cached_knn(str(tmp_path), "tiny", "image", changed, fewer, K)
    assert len(counted) == 3  # mask changed: miss
    knn.cached_knn(str(tmp_path), "tiny", "image", changed, fewer, K + 1)
    assert counted[-1] == K + 1 and (tmp_path / ".tiny.image_feat.knn5.pt").is_file()  # k changed: miss
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # atomic: no temporary left


def test_cache_off_writes_nothing_and_a_broken_cache_is_rebuilt(tmp_path, counted, caplog):
    x = integer_features()
    mask = torch.ones(len(x), dtype=torch.bool)
    knn.cached_knn(str(tmp_path), "tiny", "text", x, mask, K, use_cache=False)
    knn.cached_knn(str(tmp_path), "tiny", "text", x, mask, K, use_cache=False)
    assert counted == [K, K] and not os.listdir(tmp_path)

    path = tmp_path / ".tiny.text_feat.knn4.pt"
    path.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        rows, cols, _ = knn.cached_knn(str(tmp_path), "tiny", "text", x, mask, K)
    assert "Ignoring unreadable k-NN cache" in caplog.text and len(counted) == 3
    assert as_neighbours(rows, cols) == brute_force(x, mask, K)
    knn.cached_knn(str(tmp_path), "tiny", "text", x, mask, K)
    assert len(counted) == 3  # the rebuilt file is valid
