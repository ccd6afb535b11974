"""MMSSLTrainer: loop order and length, determinism, checkpoints (evaluate and resume), logging."""

import math

import pytest
import torch
from _model_util import build, write_tiny_dataset

from recbole_mmssl.checkpoint import last_checkpoint_path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mmssl_trainer")
    write_tiny_dataset(folder)
    return folder


def record_forward_nnz(model):
    """Wrap generator_loss to record the image graph's nnz seen by each with-grad forward."""
    seen, original = [], model.generator_loss

    def wrapped(*args, **kwargs):
        seen.append(model.graphs.nnz("image"))
        return original(*args, **kwargs)

    model.generator_loss = wrapped
    return seen


@pytest.mark.parametrize("period,rate,expect", [
    (1, 0.0, lambda r, s: [r, r] + [0] * (len(s) - 2)),
    (1, 0.05, lambda r, s: [r, r, s[2]] + [0] * (len(s) - 3)),
    (2, 0.05, lambda r, s: [r, r, r, s[3], s[3], s[5], s[5]] + s[7:]),
])
def test_released_graph_schedule_through_the_training_loop(data_dir, period, rate, expect):
    _, (train_data, _, _), model, trainer = build(data_dir, variant="released", T=period, m_topk_rate=rate)
    seen = record_forward_nnz(model)
    n_train = model.train_csr.nnz
    trainer._train_epoch(train_data, 0)
    assert len(seen) == n_train // 16 + 1  # floor(n_train / B) + 1 iterations
    assert seen == expect(n_train, seen)
    if rate:
        k = int(40 * rate)
        first_built = seen[2] if period == 1 else seen[3]
        assert 0 < first_built <= period * 16 * k  # built from the top-k of 1 or 2 batches
    if period == 1:
        assert trainer.epoch_log["nnz_image"] == 0  # every evaluation of T = 1 sees empty graphs


def test_paper_graphs_keep_every_recent_user(data_dir):
    _, (train_data, _, _), model, trainer = build(data_dir, variant="paper", graph_window=2)
    batches, sample = [], trainer.sampler.sample
    trainer.sampler.sample = lambda: batches.append(sample()) or batches[-1]
    trainer._train_epoch(train_data, 0)
    users = model.graphs.counts["image"][0]
    recent = torch.cat([batches[-1][0], batches[-2][0]]).unique()
    assert torch.equal(users.sort().values, recent)  # k = 1 pair for each user of the last two batches


def test_one_epoch_is_deterministic_for_a_seed(data_dir):
    runs = []
    for _ in range(2):
        _, (train_data, _, _), model, trainer = build(data_dir, variant="paper")
        trainer._train_epoch(train_data, 0)
        runs.append((dict(trainer.epoch_log), {k: v.clone() for k, v in model.state_dict().items()}))
    (log_a, state_a), (log_b, state_b) = runs
    losses = [k for k in log_a if not k.startswith("time_")]
    assert {k: log_a[k] for k in losses} == {k: log_b[k] for k in losses}
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_checkpoint_evaluates_identically_with_its_graphs(data_dir, tmp_path):
    _, (train_data, valid_data, test_data), model, trainer = build(
        data_dir, variant="paper", epochs=1, checkpoint_dir=str(tmp_path / "a"))
    trainer.fit(train_data, valid_data, saved=True)
    expected = trainer.evaluate(test_data, load_best_model=True)
    graph = model.graphs.graph("image")[0].to_dense()
    _, (_, _, test_data2), model2, trainer2 = build(
        data_dir, variant="paper", seed=11, checkpoint_dir=str(tmp_path / "b"))
    assert not torch.equal(model2.graphs.graph("image")[0].to_dense(), graph)
    got = trainer2.evaluate(test_data2, load_best_model=True, model_file=trainer.saved_model_file)
    assert dict(got) == dict(expected)
    assert torch.equal(model2.graphs.graph("image")[0].to_dense(), graph)


def test_resume_continues_like_an_uninterrupted_run(data_dir, tmp_path):
    _, (train_data, valid_data, _), _, trainer = build(
        data_dir, variant="released", epochs=2, T=2, m_topk_rate=0.05, checkpoint_dir=str(tmp_path / "full"))
    trainer.fit(train_data, valid_data, saved=True)
    uninterrupted = dict(trainer.epoch_log)

    _, (train_data, valid_data, _), _, first = build(
        data_dir, variant="released", epochs=1, T=2, m_topk_rate=0.05, checkpoint_dir=str(tmp_path / "part"))
    first.fit(train_data, valid_data, saved=True)
    _, (train_data, valid_data, _), _, resumed = build(
        data_dir, variant="released", epochs=2, T=2, m_topk_rate=0.05, seed=99,
        checkpoint_dir=str(tmp_path / "part"))
    resumed.resume_checkpoint(last_checkpoint_path(first.saved_model_file))
    assert resumed.start_epoch == 1
    resumed.fit(train_data, valid_data, saved=True)
    losses = [k for k in uninterrupted if not k.startswith("time_")]
    for key in losses:
        assert resumed.epoch_log[key] == pytest.approx(uninterrupted[key], rel=1e-6, abs=1e-9), key


def test_epoch_log_line_and_tensorboard_scalars(data_dir):
    _, (train_data, _, _), model, trainer = build(data_dir, variant="released")
    written = {}

    class Recorder:
        def add_scalar(self, tag, value, step):
            written[tag] = (value, step)

    trainer.tensorboard = Recorder()
    loss = trainer._train_epoch(train_data, 3)
    trainer._add_train_loss_to_tensorboard(3, loss)
    line = trainer._generate_train_loss_output(3, 0.0, 1.5, loss)
    for word in ("bpr", "infonce", "d_real", "d_fake", "d_penalty", "g_adv", "image", "d_step", "g_step", "graph"):
        assert word in line
    for tag in ("Loss/bpr", "Loss/infonce", "Loss/d_real", "Loss/d_fake", "Loss/d_penalty", "Loss/g_adv",
                "Graph/nnz_image", "Graph/nnz_text", "Time/time_sample", "Time/time_d_step",
                "Time/time_g_step", "Time/time_graph"):
        assert tag in written and written[tag][1] == 3 and math.isfinite(written[tag][0])
    assert loss == pytest.approx(trainer.epoch_log["loss"])


def test_critic_is_frozen_only_during_the_generator_backward(data_dir):
    _, (train_data, _, _), model, trainer = build(data_dir, variant="released")
    flags = []
    original = model.generator_loss

    def wrapped(critic, *args):
        flags.append(any(p.requires_grad for p in critic.parameters()))
        return original(critic, *args)

    model.generator_loss = wrapped
    trainer._train_epoch(train_data, 0)
    assert flags and not any(flags)
    assert all(p.requires_grad for p in trainer.critic.parameters())
    assert all(p.grad is None or p.grad.abs().sum() > 0 for p in trainer.critic.parameters())


@pytest.mark.parametrize("variant", ["released", "paper"])
def test_each_iteration_is_one_critic_step_then_one_generator_step(data_dir, variant):
    """Spec 1.7: per iteration, sample, then one critic (D) optimiser step, then one model (G)
    optimiser step; floor(n_train / B) + 1 iterations per epoch. The G step's forward already sees
    the critic the D step of the same iteration produced."""
    _, (train_data, _, _), model, trainer = build(data_dir, variant=variant)
    events, sample = [], trainer.sampler.sample

    def sampled():
        events.append("S")
        return sample()

    trainer.sampler.sample = sampled
    trainer.critic_optimizer.register_step_post_hook(lambda *_: events.append("D"))
    trainer.optimizer.register_step_post_hook(lambda *_: events.append("G"))
    critic_seen, original = [], model.generator_loss

    def generator_loss(critic, *args):
        critic_seen.append((len(events), critic.net[0].weight.detach().clone()))
        return original(critic, *args)

    model.generator_loss = generator_loss
    trainer._train_epoch(train_data, 0)
    n_train = sum(1 for line in (data_dir / "tiny" / "tiny.train.inter").read_text().splitlines()[1:] if line)
    n_iter = n_train // 16 + 1
    assert events == ["S", "D", "G"] * n_iter
    assert [at for at, _ in critic_seen] == [3 * k + 2 for k in range(n_iter)]  # between D and G
    assert not torch.equal(critic_seen[0][1], critic_seen[1][1])  # D moved between iterations
    assert torch.equal(critic_seen[-1][1], trainer.critic.net[0].weight.detach())  # and not after G
