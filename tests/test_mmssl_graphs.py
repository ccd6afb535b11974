"""Modality-graph bookkeeping (spec 1.5): schedules, pair layouts, exclusion, duplicates, state."""

import pytest
import torch

from recbole_mmssl.model.mmssl.graphs import ModalityGraphs, topk_pairs

N_USERS, N_ITEMS = 40, 13  # internal ids, padding 0 included: 12 real items
TRAIN_USERS = torch.tensor([1, 1, 2, 3, 3, 3, 4])
TRAIN_ITEMS = torch.tensor([1, 2, 3, 4, 5, 6, 7])


def make_graphs(schedule="released", period=1, k=0, layout="tiled", exclude_train=False, names=("image",)):
    return ModalityGraphs(names, TRAIN_USERS, TRAIN_ITEMS, N_USERS, N_ITEMS, schedule=schedule,
                          period=period, k=k, layout=layout, exclude_train=exclude_train)


def no_train_rows(batch):
    return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (batch, N_ITEMS - 1),
                                   check_invariants=True)


def run_schedule(graphs, n_iter, batch=4, start_user=1, seed=0):
    """nnz seen by each iteration's forward (before bookkeeping), and the batches' pair counts."""
    gen = torch.Generator().manual_seed(seed)
    seen, pair_counts = [], []
    for idx in range(n_iter):
        seen.append(graphs.nnz("image"))
        users = torch.arange(start_user + idx * batch, start_user + (idx + 1) * batch)
        scores = {"image": torch.rand(batch, N_ITEMS - 1, generator=gen)}
        pairs = topk_pairs(users, scores["image"], graphs.k, graphs.layout)
        pair_counts.append(torch.unique(pairs[0] * N_ITEMS + pairs[1]).numel())
        graphs.observe(idx, users, scores if graphs.will_append(idx) else None, no_train_rows(batch))
    return seen, pair_counts


def test_released_schedule_T1_k0_is_empty_from_the_third_iteration():
    graphs = make_graphs(period=1, k=0)
    seen, _ = run_schedule(graphs, 6)
    assert seen == [7, 7, 0, 0, 0, 0]
    assert run_schedule(graphs, 4, start_user=25)[0] == [0, 0, 0, 0]  # next epoch: idx restarts


def test_released_schedule_T1_k_uses_batch_zero_once_per_epoch():
    graphs = make_graphs(period=1, k=3)
    seen, pairs = run_schedule(graphs, 6)
    assert seen == [7, 7, pairs[0], 0, 0, 0]  # spec 1.5: 2527, 2527, 621, 0, 0, ...
    seen, pairs = run_schedule(graphs, 4, start_user=25, seed=1)
    assert seen == [0, 0, pairs[0], 0]  # iteration 2 of every epoch sees that epoch's batch 0


def test_released_schedule_T2_keeps_one_or_two_batches():
    graphs = make_graphs(period=2, k=2)
    seen, pairs = run_schedule(graphs, 8)
    # spec 1.5: 2527, 2527, 2527, 1215, 1215, 613, 613, ...: b0+b1, then b3 only, then b5 only
    assert seen == [7, 7, 7, pairs[0] + pairs[1], pairs[0] + pairs[1], pairs[3], pairs[3], pairs[5]]


def test_tiled_layout_misaligns_pairs_for_k_above_one():
    users = torch.tensor([10, 11, 12])
    scores = torch.tensor([[9.0, 8, 0, 0], [0, 9, 8, 0], [0, 0, 9, 8]])
    tiled_users, tiled_cols = topk_pairs(users, scores, 2, "tiled")
    aligned_users, aligned_cols = topk_pairs(users, scores, 2, "aligned")
    # pair j = (users[j mod B], topk[j // k, j mod k])
    assert tiled_users.tolist() == [10, 11, 12, 10, 11, 12]
    assert tiled_cols.tolist() == [0, 1, 1, 2, 2, 3]
    assert aligned_users.tolist() == [10, 10, 11, 11, 12, 12]
    assert aligned_cols.tolist() == [0, 1, 1, 2, 2, 3]
    # k = 1: both layouts agree (the released pairing is only wrong for k > 1)
    assert topk_pairs(users, scores, 1, "tiled")[0].tolist() == topk_pairs(users, scores, 1, "aligned")[0].tolist()


def test_exclude_train_keeps_training_items_out_of_the_topk():
    users = torch.tensor([5, 6])
    scores = torch.tensor([[0.0, -1, -2, -3], [0.0, 5, 4, 3]])  # training entries are 0 in S
    train = torch.sparse_coo_tensor(torch.tensor([[0, 1], [0, 1]]), torch.ones(2), (2, 4), check_invariants=True).coalesce()
    kept = topk_pairs(users, scores, 1, "aligned")[1]
    excluded = topk_pairs(users, scores, 1, "aligned", exclude=train)[1]
    assert kept.tolist() == [0, 1]  # released: the masked training item (score 0) wins row 0
    assert excluded.tolist() == [1, 2]


def test_duplicate_pairs_are_summed_in_a_rebuild():
    graphs = make_graphs(period=2, k=1)
    users = torch.tensor([3])
    scores = {"image": torch.tensor([[0.0] * 4 + [1.0] + [0.0] * 7])}  # item 5 (column 4) twice
    graphs.observe(0, users, scores, no_train_rows(1))
    graphs.observe(1, users, scores, no_train_rows(1))
    graphs.observe(2, users, None, no_train_rows(1))  # rebuild
    g_ui, g_iu = graphs.graph("image")
    assert g_ui._nnz() == 1
    assert g_ui.values().item() == pytest.approx(2 / (2 + 1e-8) ** 0.5)
    assert g_iu.values().item() == pytest.approx(2 / (2 + 1e-8) ** 0.5)


def test_accumulate_keeps_users_of_the_last_T_batches_with_their_latest_pairs():
    graphs = make_graphs(schedule="accumulate", period=2, k=1, layout="aligned")

    def step(users, col):
        scores = torch.zeros(len(users), N_ITEMS - 1)
        scores[:, col] = 1.0
        graphs.observe(0, torch.tensor(users), {"image": scores}, no_train_rows(len(users)))

    step([1, 2], col=0)
    assert graphs.nnz("image") == 2  # rebuilt every batch
    step([2, 3], col=1)
    step([4], col=2)  # batch [1, 2] leaves the window; user 2 keeps its pair of batch 2 only
    users, items, _ = graphs.counts["image"]
    assert sorted(zip(users.tolist(), items.tolist())) == [(2, 2), (3, 2), (4, 3)]


def test_state_round_trip_restores_graphs_and_pending_pairs():
    graphs = make_graphs(period=3, k=2, names=("image", "text"))
    scores = {"image": torch.rand(2, N_ITEMS - 1), "text": torch.rand(2, N_ITEMS - 1)}
    graphs.observe(0, torch.tensor([1, 2]), scores, no_train_rows(2))
    state = graphs.state()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    twin = make_graphs(period=3, k=2, names=("image", "text"))
    twin.load_state(state, torch.device("cpu"))
    for name in ("image", "text"):
        assert torch.equal(twin.graph(name)[0].to_dense(), graphs.graph(name)[0].to_dense())
        assert torch.equal(twin.pending[name][1], graphs.pending[name][1])
    with pytest.raises(KeyError, match="no modality graph state"):
        make_graphs(names=("audio",)).load_state(state, torch.device("cpu"))


def test_invalid_settings_are_named():
    with pytest.raises(ValueError, match="graph_schedule"):
        make_graphs(schedule="weekly")
    with pytest.raises(ValueError, match="pair_layout"):
        make_graphs(layout="diagonal")
    with pytest.raises(ValueError, match="T"):
        make_graphs(period=0)


def test_window_for_coverage_matches_the_formula():
    """1 - (1 - B/U)^T >= coverage at the chosen T and not at T - 1 (TikTok: B = 1024 of 9,298 users)."""
    from recbole_mmssl.model.mmssl.mmssl import window_for_coverage

    assert window_for_coverage(1024, 9298, 0.99) == 40
    for batch, users, coverage in [(1024, 9298, 0.99), (64, 1000, 0.95), (16, 48, 0.999)]:
        window = window_for_coverage(batch, users, coverage)
        assert 1 - (1 - batch / users) ** window >= coverage > 1 - (1 - batch / users) ** (window - 1)
    assert window_for_coverage(2048, 1000, 0.99) == 1


def test_epoch_log_reports_graph_coverage(tmp_path):
    """Paper's window comes from graph_coverage; the epoch log carries the users/items with edges."""
    from _model_util import build, write_tiny_dataset

    write_tiny_dataset(tmp_path)
    # B = 16 of 48 users: 1 - (2/3)^2 = 0.56 >= 0.5 > 1/3, so a window of 2 batches.
    config, (train, _, _), model, trainer = build(tmp_path, graph_coverage=0.5, m_topk_rate=0.05)
    assert model.graph_period == 2
    trainer._train_epoch(train, 0)
    log = trainer.epoch_log
    for name in model.modality_names:
        users, items = model.graphs.coverage(name)
        assert 16 <= users <= 32  # each user keeps the pairs of its latest batch of the last two
        assert log[f"cover_users_{name}"] == users / model.n_active_users
        assert log[f"cover_items_{name}"] == items / model.n_real_items
    line = trainer._generate_train_loss_output(0, 0.0, 1.0, None)
    assert f"(users {log[f'cover_users_{model.modality_names[0]}']:.1%}" in line
    config, _, released, _ = build(tmp_path, variant="released", T=3)
    assert released.graph_period == 3
