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

    python benchmarks/studies/critic_speed.py            # TikTok sizes, real TikTok degrees if present
    python benchmarks/studies/critic_speed.py --repeats 5 --skip-sports
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

from recbole_mmssl.model.mmssl.critic import (
    Critic,
    cat_rows,
    generated_rows,
    interpolate,
    real_rows,
    repeat_rows,
    use_gram_for_penalty,
)

REPO = Path(__file__).resolve().parents[2]
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
    train = torch.sparse_coo_tensor(index, torch.ones(index.shape[1]), (batch, n_items),
                                    check_invariants=True).coalesce()
    return train, source


class Timer:
    """Accumulates seconds per named part: wall clock and this process's CPU time.

    With one torch thread, CPU time is the time the work takes on a core of its own; wall time
    also counts the slices other users' processes take on a shared machine.
    """

    def __init__(self):
        self.wall, self.cpu = {}, {}

    def __call__(self, name):
        timer = self

        class _Part:
            def __enter__(self):
                self.start = (time.perf_counter(), time.process_time())

            def __exit__(self, *exc):
                wall, cpu = time.perf_counter() - self.start[0], time.process_time() - self.start[1]
                timer.wall[name] = timer.wall.get(name, 0.0) + wall
                timer.cpu[name] = timer.cpu.get(name, 0.0) + cpu

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
        critic.requires_grad_(False)  # spec 5.5: D frozen during the generator backward
        with timer("g_frozen.total"):
            generator_call(critic, leaves, train, Timer())
        critic.requires_grad_(True)
        if rep:
            runs.append(timer)
    parts = {}
    for clock in ("wall", "cpu"):
        median = {k: statistics.median(getattr(r, clock)[k] for r in runs) for k in runs[0].wall}
        median["critic_work"] = median["d.total"] + median["g.total"]
        median["critic_work_with_adam"] = median["critic_work"] + median["d.adam"]
        parts[clock] = median
    return parts, source, int(train._nnz())


def time_penalty_norms(n_rows, n_items, repeats):
    """Forward + backward of sum (||W1^T g|| - 1)^2 by both routes (g and W1 require grad)."""
    hidden = n_items // 4
    critic = Critic(n_items)
    g = torch.randn(n_rows, hidden, requires_grad=True)
    out = {}
    for method in ("dense", "gram"):
        critic.gp_method = method
        runs = []
        for rep in range(repeats + 1):
            timer = Timer()
            with timer("norms"):
                (critic.input_grad_norms(g) - 1).pow(2).sum().backward()
            if rep or not repeats:
                runs.append(timer)
            critic.zero_grad(set_to_none=True)
            g.grad = None
        out[method] = statistics.median(r.cpu["norms"] for r in runs)
        out[method + "_wall"] = statistics.median(r.wall["norms"] for r in runs)
    out["rule_picks"] = "gram" if use_gram_for_penalty(n_rows, hidden, n_items) else "dense"
    out["faster"] = "gram" if out["gram"] < out["dense"] else "dense"
    return out


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_head_floor(n_items, batch, repeats, seed):
    """The critic work both paths share: everything after the first Linear (layers 2-3, BN, dropout,
    the penalty's double backward through them) for the D step and the G call, on random h1."""
    torch.manual_seed(seed)
    critic = Critic(n_items).train()
    rows, hidden = 2 * batch, n_items // 4
    runs = []
    for rep in range(repeats + 1):
        timer = Timer()
        h_real, h_fake, h_mix, h_gen = (torch.randn(rows, hidden, requires_grad=True) for _ in range(4))
        with timer("d.head"):
            loss = -critic._head(h_real).mean() + critic._head(h_fake).mean()
            g = torch.autograd.grad(critic._head(h_mix).sum(), h_mix, create_graph=True)[0]
            (loss + 0.3 * (g.norm(dim=1) - 1).pow(2).mean()).backward()
        with timer("g.head"):
            (-critic._head(h_gen).mean()).backward()
        critic.zero_grad(set_to_none=True)
        if rep:
            runs.append(timer)
    out = {}
    for clock in ("cpu", "wall"):
        for part in ("d.head", "g.head"):
            out[f"{part}_{clock}"] = statistics.median(getattr(r, clock)[part] for r in runs)
        out[f"total_{clock}"] = out[f"d.head_{clock}"] + out[f"g.head_{clock}"]
    return out


def write_markdown(result, path):
    it, floor = result["iteration"], result["head_floor"]
    lines = [
        "# Critic speed: dense reference vs exact fast first layer",
        "",
        f"Setting: I = {result['n_items']} items (critic {result['n_items']} -> {result['n_items'] // 4} -> "
        f"{result['n_items'] // 8}), B = {result['batch']} users (2B = {2 * result['batch']} critic rows), "
        f"d = {result['dim']}, tau_r = {result['tau_r']} (sparse real rows), slope 1.0, train mode, "
        f"float32, CPU ({result['machine']}, torch {result['torch']}, {result['threads']} torch thread(s)). "
        f"Batch rows: {result['rows_source']}, {result['nnz']} training entries. "
        f"Median of {result['repeats']} repeats after one warm-up, dense and fast in the same run "
        f"(`python benchmarks/studies/critic_speed.py`, {result['wall_seconds']:.0f} s in all).",
        "",
        "CPU = this process's CPU time (with one thread: the time on a core of its own); wall = wall "
        "clock, which on this shared machine also counts other users' processes.",
        "",
        "| part (seconds) | dense CPU | fast CPU | dense / fast | dense wall | fast wall |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in ("d.rows", "d.real_fwd", "d.fake_fwd", "d.gp_fwd", "d.backward", "d.total", "d.adam",
                "g.rows", "g.fwd", "g.backward", "g.total", "g_frozen.total", "critic_work",
                "critic_work_with_adam"):
        dense, fast = it["dense"]["cpu"][key], it["fast"]["cpu"][key]
        lines.append(
            f"| {key} | {dense:.3f} | {fast:.3f} | {dense / max(fast, 1e-9):.1f}x | "
            f"{it['dense']['wall'][key]:.3f} | {it['fast']['wall'][key]:.3f} |"
        )
    shared = floor["total_cpu"]
    dense_own = it["dense"]["cpu"]["critic_work"] - shared
    fast_own = it["fast"]["cpu"]["critic_work"] - shared
    lines += [
        "",
        "d.* = the discriminator step (rows, D(real), D(fake), the penalty's forward on the interpolates, "
        "one backward of L_D); g.* = the generator's critic call and its backward (critic parameters "
        "still require grad, as released); g_frozen = the same with the critic's parameters frozen "
        "(spec 5.5: same model gradients, no critic weight gradients); critic_work = d.total + g.total.",
        "",
        f"**Speed-up of the whole critic work: {it['speedup_cpu']:.2f}x by CPU time, "
        f"{it['speedup_wall']:.2f}x by wall clock** ({it['speedup_with_adam_cpu']:.2f}x / "
        f"{it['speedup_with_adam_wall']:.2f}x with the Adam step, the same code in both).",
        "",
        f"Shared floor: the work after the first Linear (layers 2-3, BN, dropout and the penalty's "
        f"double backward through them), timed alone on random h1: {floor['d.head_cpu']:.3f} s (D) + "
        f"{floor['g.head_cpu']:.3f} s (G) = {shared:.3f} s CPU. It is the same maths in both paths, so it "
        f"bounds the whole-work ratio at {it['dense']['cpu']['critic_work'] / shared:.1f}x even for a free "
        f"first layer. The first layer and the penalty's norm alone: dense {dense_own:.3f} s, fast "
        f"{fast_own:.3f} s CPU, {dense_own / max(fast_own, 1e-9):.1f}x.",
        "",
        f"Peak RSS of the process after the fast runs (which come first): "
        f"{it['fast']['peak_rss_mb_after']:.0f} MB; after the dense runs: {it['dense']['peak_rss_mb_after']:.0f} MB.",
        "",
        "## Penalty norms ||W1^T g|| for N = 2B rows: dense product vs Gram W1 W1^T",
        "",
        "Forward + backward of sum (||W1^T g|| - 1)^2, seconds CPU (wall in brackets); Sports once, "
        "the others once after a warm-up.",
        "",
        "| sizes (N, I, I/4) | dense | gram | faster | use_gram_for_penalty picks |",
        "|---|---:|---:|---|---|",
    ]
    for name, row in result["penalty_norms"].items():
        lines.append(
            f"| {name} | {row['dense']:.2f} ({row['dense_wall']:.2f}) | {row['gram']:.2f} ({row['gram_wall']:.2f}) "
            f"| {row['faster']} | {row['rule_picks']} |"
        )
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
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 by default: on a shared machine a second OpenMP thread that "
                             "waits for a busy core makes every small op slow and the timings noise)")
    parser.add_argument("--skip-sports", action="store_true", help="skip the Sports-size penalty timing")
    parser.add_argument("--out", type=Path, default=REPO / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    iteration = {}
    for name, fast in (("fast", True), ("dense", False)):
        parts, source, nnz = time_iteration(fast, args.n_items, args.batch, args.dim, args.repeats,
                                            args.tau_r, args.seed)
        parts["peak_rss_mb_after"] = peak_rss_mb()
        iteration[name] = parts
        print(name, {k: round(v, 3) for k, v in parts["cpu"].items()}, flush=True)
    for clock in ("cpu", "wall"):
        dense, fast = iteration["dense"][clock], iteration["fast"][clock]
        iteration[f"speedup_{clock}"] = dense["critic_work"] / fast["critic_work"]
        iteration[f"speedup_with_adam_{clock}"] = dense["critic_work_with_adam"] / fast["critic_work_with_adam"]

    floor = time_head_floor(args.n_items, args.batch, args.repeats, args.seed)
    print("shared floor", {k: round(v, 3) for k, v in floor.items()}, flush=True)

    sizes = {"TikTok (2048, 6710, 1677)": 6710, "Baby (2048, 7050, 1762)": 7050}
    if not args.skip_sports:
        sizes["Sports (2048, 18357, 4589)"] = 18357
    penalty = {}
    for name, n_items in sizes.items():
        penalty[name] = time_penalty_norms(2 * args.batch, n_items, 0 if n_items > 10000 else 1)
        print(name, penalty[name], flush=True)

    result = {
        "n_items": args.n_items, "batch": args.batch, "dim": args.dim, "tau_r": args.tau_r,
        "repeats": args.repeats, "seed": args.seed, "rows_source": source, "nnz": nnz,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "iteration": iteration, "head_floor": floor, "penalty_norms": penalty, "peak_rss_mb": peak_rss_mb(),
        "wall_seconds": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "critic_speed.json").write_text(json.dumps(result, indent=2))
    write_markdown(result, args.out / "critic_speed.md")
    print(f"speed-up {iteration['speedup_cpu']:.2f}x (CPU time), {iteration['speedup_wall']:.2f}x (wall); "
          f"wrote {args.out}/critic_speed.{{json,md}}")


if __name__ == "__main__":
    main()
