"""MMSSL used as a product: recommendations from its checkpoint, items without features in the
breakdown, TensorBoard curves of every loss part and validation metric."""

import csv
import os
import sys
from pathlib import Path

import pytest
import torch

from recbole_mmssl import recommend
from recbole.data.interaction import Interaction

from recbole_mmssl.quick_start import create_dataset, run_recbole_mmssl
from tests._lead_util import tiny_config
from tests._model_util import write_tiny_dataset

MISSING = (3, 4, 5)  # items left out of every feature file


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-epoch MMSSL run on a dataset whose items 3-5 have no features, from a fresh cwd."""
    root = tmp_path_factory.mktemp("product")
    folder = write_tiny_dataset(root, name="holes", missing_items=MISSING)
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(root)
    sys.argv = ["pytest"]
    try:
        result = run_recbole_mmssl(
            "MMSSL", "holes", breakdown_k=10,
            config_dict=tiny_config(root, allow_missing_features=True, train_batch_size=16, topk=[5, 10],
                                    valid_metric="Recall@10", feature_cache=False),
        )
        result["trainer"].tensorboard.flush()
    finally:
        os.chdir(cwd)
        sys.argv = argv
    return root, folder, result


def _pairs(path):
    with open(path) as f:
        next(f)
        return [tuple(line.split()) for line in f if line.strip()]


def test_recommendations_are_the_models_top_unseen_items(run, tmp_path):
    _, folder, result = run
    out = tmp_path / "recs.csv"
    recommend.main([f"--checkpoint={result['saved_model_file']}", "--users=all", "--topk=5", f"--out={out}",
                    f"--data_path={folder.parent}"])
    with open(out) as f:
        rows = list(csv.DictReader(f))
    train = {}
    for user, item in _pairs(folder / "holes.train.inter"):
        train.setdefault(user, set()).add(item)
    by_user = {}
    for row in rows:
        by_user.setdefault(row["user_id"], []).append(row)
    assert set(by_user) == set(train)
    assert all(len(recs) == 5 and not {r["item_id"] for r in recs} & train[u] for u, recs in by_user.items())
    # the lists are the trained model's own ranking (best epoch, loaded by the test evaluation)
    model, dataset = result["trainer"].model.eval(), create_dataset(result["config"])
    for user in list(train)[:5]:
        uid = dataset.token2id("user_id", user)
        scores = model.full_sort_predict(Interaction({"user_id": torch.tensor([uid])})).detach()
        scores[0] = -torch.inf
        scores[[dataset.token2id("item_id", i) for i in train[user]]] = -torch.inf
        best = torch.topk(scores, 5)
        assert [r["item_id"] for r in by_user[user]] == list(dataset.id2token("item_id", best.indices.numpy()))
        assert [float(r["score"]) for r in by_user[user]] == pytest.approx(best.values.tolist(), rel=1e-5)


def test_items_without_features_are_reported_apart(run):
    _, folder, result = run
    test_items = [item for _, item in _pairs(folder / "holes.test.inter")]
    without = sum(item in {f"i{i}" for i in MISSING} for item in test_items)
    assert 0 < without < len(test_items)
    rows = {r["group"]: r for r in result["breakdown"]["items"]}
    assert rows["items without features"]["count"] == without
    assert rows["items with features"]["count"] == len(test_items) - without
    assert rows["all test interactions"]["count"] == len(test_items)


def test_tensorboard_has_every_loss_part_and_validation_metric_per_epoch(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, _, _ = run
    logs = list(Path(root, "log_tensorboard").glob("*"))
    assert len(logs) == 1
    events = EventAccumulator(str(logs[0]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("Loss/loss", "Loss/bpr", "Loss/infonce", "Loss/g_adv", "Loss/d_real", "Loss/d_fake",
                "Loss/d_penalty", "Graph/nnz_image", "Graph/nnz_text", "Time/time_d_step",
                "Valid/recall@10", "Valid/ndcg@10", "Vaild_score"):
        assert tag in tags, tag
        assert [e.step for e in events.Scalars(tag)] == [0, 1]
    assert all(torch.isfinite(torch.tensor(e.value)) for e in events.Scalars("Loss/bpr"))
