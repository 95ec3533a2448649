r"""Throughput of the PinSage random-walk sampler on Gowalla-sized data.

Reads ../shared/data/gowalla/train.txt beside the repository (LightGCN split,
"user item item ..." per line) if present, else builds a synthetic graph of
the same size (29,858 users, 40,981 items, 810,128 interactions, power-law
item popularity). Measures, in one run:

* walk steps per second of the vectorised item -> user -> item walk,
* seconds for the importance neighbourhoods of every item (DGL defaults:
  10 walks, <= 2 traversals, termination 0.5, T = 3; and a paper-like
  setting: 100 walks, T = 50),
* the same for a straightforward per-node Python implementation, timed on a
  subset of seeds and extrapolated to all items (marked as such),
* one PinSage minibatch (512 seeds, 2 layers) and hard negatives.

Usage: python benchmarks/bench_sampler.py [--subset 400] [--seed 0]
       [--threads 1]
"""
import argparse
import random
import time
from collections import Counter
from pathlib import Path

import torch

from pyg_lightgode.sampler import (
    HardNegativeSampler,
    ImportanceNeighborhood,
    PinSageSampler,
    bipartite_csr,
    metapath_random_walk,
)

DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'gowalla'
GOWALLA = dict(num_users=29858, num_items=40981, num_edges=810128)


def load_gowalla():
    path = DATA / 'train.txt'
    if not path.exists():
        return None
    users, items = [], []
    for line in path.read_text().splitlines():
        ids = line.split()
        if len(ids) > 1:
            users.extend([int(ids[0])] * (len(ids) - 1))
            items.extend(map(int, ids[1:]))
    index = torch.tensor([users, items])
    return index, int(index[0].max()) + 1, int(index[1].max()) + 1


def synthetic(num_users, num_items, num_edges, seed=0):
    g = torch.Generator().manual_seed(seed)
    popularity = torch.arange(1, num_items + 1, dtype=torch.float).pow(-0.8)
    index = torch.stack([
        torch.randint(num_users, (2 * num_edges, ), generator=g),
        torch.multinomial(popularity, 2 * num_edges, True, generator=g)
    ]).unique(dim=1)
    keep = torch.randperm(index.size(1), generator=g)[:num_edges]
    return index[:, keep], num_users, num_items


def python_neighborhoods(item_users, user_items, seeds, num_walks,
                         num_traversals, restart_prob, top_k, rng):
    r"""Per-node reference: one Python walk at a time."""
    out = {}
    for seed in seeds:
        counts = Counter()
        for _ in range(num_walks):
            item = seed
            for t in range(num_traversals):
                if t > 0 and rng.random() < restart_prob:
                    break
                users = item_users[item]
                if not users:
                    break
                items = user_items[users[int(rng.random() * len(users))]]
                item = items[int(rng.random() * len(items))]
                counts[item] += 1
        out[seed] = sorted(counts.items(), key=lambda kv: (-kv[1], -kv[0]))
        out[seed] = out[seed][:top_k]
    return out


def timed(fn, repeat=1):
    best, result = float('inf'), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--subset', type=int, default=400,
                        help='seeds for the per-node Python reference')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1,
                        help='torch intra-op threads (DataLoader workers use '
                        '1; more threads slow down on a busy CPU)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    loaded = load_gowalla()
    source = 'Gowalla train.txt' if loaded else 'synthetic (Gowalla size)'
    index, U, I = loaded or synthetic(**GOWALLA, seed=args.seed)
    print(f'data: {source}: {U} users, {I} items, {index.size(1)} '
          f'interactions; torch threads: {torch.get_num_threads()}')

    g = torch.Generator().manual_seed(args.seed)
    item_csr, user_csr = bipartite_csr(index, U, I)
    seeds = torch.arange(I)

    # Walk steps per second (a step = one hop, item -> user or user -> item).
    secs, trace = timed(lambda: metapath_random_walk(
        [item_csr, user_csr], seeds, 2, 0.5, 10, g), repeat=3)
    steps = int((trace[:, 1:] >= 0).sum())
    rows = [('vectorised walk (10 walks x <=2 trav.)', f'{steps:,} steps',
             secs, f'{steps / secs / 1e6:.2f} M steps/s')]

    item_users = [[] for _ in range(I)]
    user_items = [[] for _ in range(U)]
    for u, i in index.t().tolist():
        item_users[i].append(u)
        user_items[u].append(i)
    rng = random.Random(args.seed)
    subset = torch.randperm(I, generator=g)[:args.subset].tolist()

    for walks, top_k in ((10, 3), (100, 50)):
        sampler = ImportanceNeighborhood(index, U, I, num_walks=walks,
                                         num_traversals=2, restart_prob=0.5,
                                         top_k=top_k)
        secs, (edge_index, _) = timed(
            lambda: sampler.all_neighborhoods(generator=g), repeat=2)
        rows.append((f'vectorised: all items, {walks} walks, T={top_k}',
                     f'{edge_index.size(1):,} edges', secs,
                     f'{I / secs:,.0f} items/s'))
        py_secs, _ = timed(lambda: python_neighborhoods(
            item_users, user_items, subset, walks, 2, 0.5, top_k, rng))
        est = py_secs * I / len(subset)
        rows.append((f'per-node Python: {len(subset)} seeds, extrapolated',
                     f'x{est / secs:.0f} slower', est,
                     f'{len(subset) / py_secs:,.0f} items/s'))

    pinsage = PinSageSampler(index, U, I, num_neighbors=[3, 3])
    batch = torch.randperm(I, generator=g)[:512]
    secs, out = timed(lambda: pinsage.sample(batch, g), repeat=3)
    rows.append(('PinSageSampler: 512 seeds, 2 layers, T=3',
                 f'{out.node.numel():,} nodes', secs,
                 f'{512 / secs:,.0f} seeds/s'))
    hard = HardNegativeSampler(index, U, I)
    secs, _ = timed(lambda: hard(batch[:256], 5, g))
    rows.append((f'hard negatives: 256 queries, band {hard.band}',
                 f'{hard.num_iterations} PPR iterations', secs,
                 f'{256 / secs:,.0f} queries/s'))

    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'size':>22}  {'seconds':>9}  throughput")
    for what, size, secs, rate in rows:
        print(f'{what:<{width}}  {size:>22}  {secs:>9.3f}  {rate}')


if __name__ == '__main__':
    main()
