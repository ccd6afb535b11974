"""Breakdown by user activity and item popularity agrees with RecBole's own test metrics."""

import sys

import numpy as np
import pytest
import scipy.sparse as sp

from recbole_mmssl.breakdown import _item_rows, equal_size_groups, tail_row, write_breakdown
from recbole_mmssl.quick_start import run_recbole_mmssl
from tests._lead_util import tiny_config, write_tiny_dataset


def test_equal_size_groups_cut_sorted_values_into_five_runs():
    values = np.array([5, 1, 4, 2, 3, 9, 8, 7, 6, 0])
    groups = equal_size_groups(values)
    assert list(groups[np.argsort(values)]) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_groups_never_split_equal_values():
    """TikTok-like counts: many users with 1-3 items. Equal values share a group, groups keep order."""
    values = np.array([1] * 40 + [2] * 25 + [3] * 15 + [4] * 8 + [5] * 6 + [9] * 6)
    groups = equal_size_groups(np.random.default_rng(0).permutation(values))
    shuffled = np.random.default_rng(0).permutation(values)
    for value in np.unique(values):
        assert len(set(groups[shuffled == value])) == 1
    # cuts at the first element of each value: 1 -> 0, 2 -> 40*5//100 = 2, 3 -> 65*5//100 = 3, 4.. -> 4
    assert [int(groups[shuffled == v][0]) for v in (1, 2, 3, 4, 5, 9)] == [0, 1, 2, 3, 3, 3]


def test_overall_rows_equal_recboles_test_result(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    write_tiny_dataset(tmp_path, n_users=60)
    result = run_recbole_mmssl("LightGCN", "tiny", config_dict=tiny_config(tmp_path, metric_decimal_place=8),
                               breakdown_k=20)
    groups = result["breakdown"]
    overall = groups["users"][0]
    assert overall["recall"] == pytest.approx(result["test_result"]["recall@20"], abs=1e-6)
    assert overall["ndcg"] == pytest.approx(result["test_result"]["ndcg@20"], abs=1e-6)
    user_groups = groups["users"][1:]
    assert 1 <= len(user_groups) <= 5 and sum(g["count"] for g in user_groups) == overall["count"] == 60
    spans = [tuple(int(v) for v in g["range"].split()[0].split("-")) for g in user_groups]
    assert all(high < low for (_, high), (low, _) in zip(spans, spans[1:]))  # no count in two groups
    item_rows = groups["items"]
    assert sum(r["count"] for r in item_rows[1:6]) == item_rows[0]["count"] == 60
    paths = write_breakdown({"LightGCN": groups}, str(tmp_path / "bd"))
    assert "users G1" in open(paths[0]).read()


def test_tail_row_equals_recall_counted_directly_over_the_tail_items():
    """Items 1-10 with training popularity 0..9 form five groups of two; the tail row (P1-P4, items with
    0-7 training interactions) must equal the found share of the test interactions on those items."""
    popularity = np.arange(10)
    users = np.repeat(np.arange(10), popularity)  # item i + 1 gets popularity[i] interactions (summed)
    items = np.repeat(np.arange(1, 11), popularity)
    train = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=(10, 11))
    rng = np.random.default_rng(3)
    ground_truth = [rng.choice(np.arange(1, 11), size=3, replace=False) for _ in range(40)]
    tops = [rng.choice(np.arange(1, 11), size=4, replace=False) for _ in range(40)]
    item_rows = _item_rows(tops, ground_truth, train, object())
    tail = tail_row(item_rows)
    tested = np.concatenate(ground_truth)
    found = np.concatenate([np.isin(truth, top) for top, truth in zip(tops, ground_truth)])
    in_tail = popularity[tested - 1] <= 7
    assert tail["group"] == "items P1-P4" and tail["range"] == "0-7 train interactions"
    assert tail["count"] == in_tail.sum()
    assert tail["recall"] == pytest.approx(found[in_tail].mean(), abs=1e-12)


def test_written_item_table_has_the_tail_row_after_the_last_group(tmp_path):
    groups = {"k": 20, "users": [{"group": "all users", "range": "", "count": 4, "recall": 0.5, "ndcg": 0.25}],
              "items": [{"group": "all test interactions", "range": "", "count": 10, "recall": 0.5}]
              + [{"group": f"items P{g}", "range": f"{g}-{g} train interactions", "count": 2, "recall": r}
                 for g, r in zip(range(1, 6), (0.0, 0.5, None, 1.0, 0.5))]
              + [{"group": "items with features", "range": "", "count": 10, "recall": 0.5}]}
    groups["items"][3]["count"] = 0  # a group with no test interaction has no recall
    text = open(write_breakdown({"M": groups}, str(tmp_path / "bd"))[0]).read()
    lines = [line for line in text.splitlines() if line.startswith("| items")]
    assert [line.split(" | ")[0] for line in lines] == ["| items P1", "| items P2", "| items P3", "| items P4",
                                                       "| items P5", "| items P1-P4", "| items with features"]
    assert lines[5] == "| items P1-P4 | 1-4 train interactions | 6 | 0.5000 |"  # (0 + 2*0.5 + 2*1.0) / 6
