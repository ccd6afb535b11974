"""Critic cost of one MMSSL iteration, dense reference vs the exact fast first layer (spec "Speed").

Times, in the same run and on the same inputs:
  - the discriminator step: real rows [X_r; X_r], fake rows [S_v; S_t], the interpolates' gradient
    penalty and the backward of L_D = -mean D(real) + mean D(fake) + 0.3 * gp_rate * GP
    (building the relation rows included; the Adam step is timed apart: it is the same in both);
  - the generator's critic call: L_G = -mean D([S_v; S_t]) with S built from embeddings that
    require grad, and its backward (critic parameters keep requires_grad, as released);
  - the penalty's ||W1^T g|| by the dense product vs the Gram W1 W1^T at TikTok, Baby, Sports sizes
    (forward + backward), which calibrates ``use_gram_for_penalty``.
Medians of several repeats; writes results/critic_speed.{json,md}.

    python benchmarks/critic_speed.py            # TikTok sizes, real TikTok degrees if present
    python benchmarks/critic_speed.py --repeats 5 --skip-sports
"""

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from recbole_mmssl.model.critic import (
    Critic,
    cat_rows,
    generated_rows,
    interpolate,
    real_rows,
    repeat_rows,
    use_gram_for_penalty,
)

REPO = Path(__file__).resolve().parent.parent
TIKTOK = REPO.parent / "shared" / "data" / "tiktok" / "train.json"


def batch_train_rows(n_items, batch, rng):
    """The batch users' training rows: B users drawn like MMSSL's sampler from TikTok's train split
    (users with >= 1 item, uniformly without replacement); random ~6.4 items/user without the data."""
    if TIKTOK.is_file():
        lists = [items for items in json.loads(TIKTOK.read_text()).values() if items]
        chosen = rng.choice(len(lists), size=batch, replace=False)
        rows = np.concatenate([np.full(len(lists[u]), b) for b, u in enumerate(chosen)])
        cols = np.concatenate([np.asarray(lists[u]) for u in chosen])
        source = f"TikTok train split ({TIKTOK})"
    else:
        degrees = rng.poisson(5.4, size=batch) + 1
        rows = np.repeat(np.arange(batch), degrees)
        cols = np.concatenate([rng.choice(n_items, size=k, replace=False) for k in degrees])
        source = "random, Poisson(5.4)+1 items per user (TikTok train.json not found)"
    index = torch.as_tensor(np.stack([rows, cols]), dtype=torch.long)
    train = torch.sparse_coo_tensor(index, torch.ones(index.shape[1]), (batch, n_items)).coalesce()
    return train, source


class Timer:
    """Accumulates wall seconds per named part."""

    def __init__(self):
        self.parts = {}

    def __call__(self, name):
        timer = self

        class _Part:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.parts[name] = timer.parts.get(name, 0.0) + time.perf_counter() - self.start

        return _Part()


def discriminator_step(critic, emb, train, tau_r, timer, generator):
    """Everything the D step asks of the critic; the fake and fused rows come from a no-grad forward."""
    with timer("d.rows"):
        fused = generated_rows(emb["u_f"], emb["i_f"], train)
        real = repeat_rows(real_rows(train, fused, tau_r, 1e-5, 100.0, generator=generator), 2)
        fake = cat_rows([generated_rows(emb["u_v"], emb["i_v"], train),
                         generated_rows(emb["u_t"], emb["i_t"], train)])
        alpha = torch.rand(fake.n_rows, 1, generator=generator)
    with timer("d.real_fwd"):
        loss_real = -critic(real).mean()
    with timer("d.fake_fwd"):
        loss_fake = critic(fake).mean()
    with timer("d.gp_fwd"):
        penalty = 0.3 * critic.gradient_penalty(interpolate(real, fake, alpha))
    with timer("d.backward"):
        critic.zero_grad(set_to_none=True)
        (loss_real + loss_fake + penalty).backward()


def generator_call(critic, leaves, train, timer):
    with timer("g.rows"):
        fake = cat_rows([generated_rows(leaves["u_v"], leaves["i_v"], train),
                         generated_rows(leaves["u_t"], leaves["i_t"], train)])
    with timer("g.fwd"):
        loss = -critic(fake).mean()
    with timer("g.backward"):
        loss.backward()
    for leaf in leaves.values():
        leaf.grad = None


def time_iteration(fast, n_items, batch, dim, repeats, tau_r, seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    train, source = batch_train_rows(n_items, batch, rng)
    emb = {k: torch.randn(batch if k.startswith("u") else n_items, dim) / dim**0.5
           for k in ("u_f", "i_f", "u_v", "i_v", "u_t", "i_t")}
    leaves = {k: emb[k].clone().requires_grad_(True) for k in ("u_v", "i_v", "u_t", "i_t")}
    critic = Critic(n_items, slope=1.0, fast=fast).train()
    optim = torch.optim.Adam(critic.parameters(), lr=3e-4, betas=(0.5, 0.9))
    generator = torch.Generator().manual_seed(seed)
    runs = []
    for rep in range(repeats + 1):  # the first run warms up allocator and kernels
        timer = Timer()
        with timer("d.total"):
            discriminator_step(critic, emb, train, tau_r, timer, generator)
        with timer("d.adam"):
            optim.step()
        with timer("g.total"):
            generator_call(critic, leaves, train, timer)
        if rep:
            runs.append(timer.parts)
    parts = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    parts["critic_work"] = parts["d.total"] + parts["g.total"]
    parts["critic_work_with_adam"] = parts["critic_work"] + parts["d.adam"]
    return parts, source, int(train._nnz())


def time_penalty_norms(n_rows, n_items, repeats):
    """Forward + backward of sum (||W1^T g|| - 1)^2 by both routes (g and W1 require grad)."""
    hidden = n_items // 4
    critic = Critic(n_items)
    g = torch.randn(n_rows, hidden, requires_grad=True)
    out = {}
    for method in ("dense", "gram"):
        critic.gp_method = method
        times = []
        for rep in range(repeats + 1):
            start = time.perf_counter()
            (critic.input_grad_norms(g) - 1).pow(2).sum().backward()
            if rep:
                times.append(time.perf_counter() - start)
            critic.zero_grad(set_to_none=True)
            g.grad = None
        out[method] = statistics.median(times)
    out["rule_picks"] = "gram" if use_gram_for_penalty(n_rows, hidden, n_items) else "dense"
    out["faster"] = "gram" if out["gram"] < out["dense"] else "dense"
    return out


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_markdown(result, path):
    it = result["iteration"]
    lines = [
        "# Critic speed: dense reference vs exact fast first layer",
        "",
        f"Setting: I = {result['n_items']} items (critic {result['n_items']} -> {result['n_items'] // 4} -> "
        f"{result['n_items'] // 8}), B = {result['batch']} users (2B = {2 * result['batch']} critic rows), "
        f"d = {result['dim']}, tau_r = {result['tau_r']}, slope 1.0, train mode, float32, CPU "
        f"({result['machine']}, torch {result['torch']}, {result['threads']} threads). "
        f"Batch rows: {result['rows_source']}, {result['nnz']} training entries. "
        f"Median of {result['repeats']} repeats after one warm-up, dense and fast in the same run.",
        "",
        "| part (seconds) | dense | fast | dense / fast |",
        "|---|---:|---:|---:|",
    ]
    for key in ("d.rows", "d.real_fwd", "d.fake_fwd", "d.gp_fwd", "d.backward", "d.total", "d.adam",
                "g.rows", "g.fwd", "g.backward", "g.total", "critic_work", "critic_work_with_adam"):
        dense, fast = it["dense"][key], it["fast"][key]
        lines.append(f"| {key} | {dense:.4f} | {fast:.4f} | {dense / fast:.1f}x |")
    lines += [
        "",
        f"critic_work = d.total + g.total (D step: rows, three critic calls, penalty, backward; G call "
        f"and backward). Speed-up: **{it['speedup']:.1f}x** ({it['speedup_with_adam']:.1f}x with the Adam "
        "step, which is the same code in both). Peak RSS of the process: "
        f"{result['peak_rss_mb']:.0f} MB.",
        "",
        "## Gradient-penalty norms ||W1^T g||: dense product vs Gram W1 W1^T (forward + backward, seconds)",
        "",
        "| sizes (N, I, I/4) | dense | gram | faster | use_gram_for_penalty picks |",
        "|---|---:|---:|---|---|",
    ]
    for name, row in result["penalty_norms"].items():
        lines.append(f"| {name} | {row['dense']:.3f} | {row['gram']:.3f} | {row['faster']} | {row['rule_picks']} |")
    lines.append("")
    path.write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-items", type=int, default=6710)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--tau-r", type=float, default=0.002)  # TikTok's real_data_tau
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument("--skip-sports", action="store_true", help="skip the Sports-size penalty timing")
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args()

    iteration = {}
    for name, fast in (("fast", True), ("dense", False)):
        parts, source, nnz = time_iteration(fast, args.n_items, args.batch, args.dim, args.repeats,
                                            args.tau_r, args.seed)
        parts["peak_rss_mb_after"] = peak_rss_mb()
        iteration[name] = parts
        print(name, {k: round(v, 4) for k, v in parts.items()}, flush=True)
    iteration["speedup"] = iteration["dense"]["critic_work"] / iteration["fast"]["critic_work"]
    iteration["speedup_with_adam"] = (iteration["dense"]["critic_work_with_adam"]
                                      / iteration["fast"]["critic_work_with_adam"])

    sizes = {"TikTok (2048, 6710, 1677)": 6710, "Baby (2048, 7050, 1762)": 7050}
    if not args.skip_sports:
        sizes["Sports (2048, 18357, 4589)"] = 18357
    penalty = {}
    for name, n_items in sizes.items():
        penalty[name] = time_penalty_norms(2 * args.batch, n_items, 1 if n_items > 10000 else args.repeats)
        print(name, penalty[name], flush=True)

    result = {
        "n_items": args.n_items, "batch": args.batch, "dim": args.dim, "tau_r": args.tau_r,
        "repeats": args.repeats, "seed": args.seed, "rows_source": source, "nnz": nnz,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "iteration": iteration, "penalty_norms": penalty, "peak_rss_mb": peak_rss_mb(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "critic_speed.json").write_text(json.dumps(result, indent=2))
    write_markdown(result, args.out / "critic_speed.md")
    print(f"speed-up {iteration['speedup']:.2f}x; wrote {args.out}/critic_speed.{{json,md}}")


if __name__ == "__main__":
    main()
