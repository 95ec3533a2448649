r"""Speed of the PinSage random-walk sampler on Gowalla-sized data, each
figure as a ratio against a peer measured in the same run, at every thread
count of --threads (default 1 and 2).

Reads ../shared/data/gowalla/train.txt beside the repository (LightGCN split,
"user item item ..." per line) if present, else builds a synthetic graph of
the same size (29,858 users, 40,981 items, 810,128 interactions, power-law
item popularity). Measures:

* the random walk against torch_sparse's C++ ``random_walk`` (the peer;
  torch_cluster's is not installed here): 10 uniform walks of 4 steps from
  every item on the user--item graph (2 item -> user -> item traversals,
  no termination), ours through :func:`random_walk` on the same CSR
  (tables built inside the timed call) and through
  :func:`metapath_random_walk` on prebuilt tables;
* the importance neighbourhoods of every item (DGL defaults: 10 walks,
  <= 2 traversals, termination 0.5, T = 3; and a paper-like setting: 100
  walks, T = 50), as a multiple of the peer's time for the same number of
  walk steps and against a per-node Python implementation (timed on
  --subset seeds and extrapolated);
* the same all-item neighbourhoods through DGL's ``PinSAGESampler`` (every
  item a seed, same walks, traversals, termination and T), timed
  interleaved with ours and reported as ours / DGL time, when DGL imports;
* one PinSageSampler minibatch (512 seeds, 2 layers, T = 10);
* PPR hard negatives of 256 queries without precomputed bands and the
  user--item importance weights of PinSage's user embeddings.

DGL is an optional peer, not a dependency: without it the script says so
and skips its rows. DGL 2.1.0 from PyPI installs beside the venv with

    pip install --no-deps --target dgl_pkg dgl==2.1.0
    PYTHONPATH=dgl_pkg python benchmarks/bench_sampler.py

Its ``import dgl`` imports ``dgl.graphbolt``, which needs ``torchdata`` and
a C++ library built for an older torch; ``dgl.sampling`` does not use it,
so :func:`import_dgl` puts an empty module in its place first. DGL's C++
kernels use the same OpenMP runtime as torch; the script sets both
``torch.set_num_threads`` and ``dgl.utils.set_num_threads``.

Every timing is the best of --repeat runs, the runs of ours and of the peer
interleaved; the load average (1 min) is printed before and after each
thread count.

Usage: python benchmarks/bench_sampler.py [--threads 1,2] [--repeat 5]
       [--subset 200] [--seed 0]
"""
import os
import platform
import random
import sys
import time
import types
from collections import Counter
from pathlib import Path

from pyg_lightgode.apps import cli  # standard library only


def build_parser():
    parser = cli.make_parser(__doc__)
    cli.add_threads_argument(parser, default='1,2', several=True)
    add = parser.add_argument
    add('--repeat', type=int, default=5,
        help='timed runs per figure (the best counts)')
    add('--subset', type=int, default=200,
        help='seeds for the per-node Python reference')
    add('--seed', type=int, default=0, help='seed of walks and seeds')
    return parser


if __name__ == '__main__':  # --help and bad options: before torch loads.
    build_parser().parse_args()

import torch  # noqa: E402

from pyg_lightgode.apps.training.pinsage import (  # noqa: E402
    user_item_importance,
)
from pyg_lightgode.sampler import (  # noqa: E402
    HardNegativeSampler,
    ImportanceNeighborhood,
    PinSageSampler,
)
from pyg_lightgode.sampler.random_walk import (  # noqa: E402
    bipartite_csr,
    metapath_random_walk,
    prepare_hops,
    random_walk,
    to_csr,
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


def import_dgl():
    r"""DGL with ``dgl.graphbolt`` stubbed out, or the reason it is
    absent."""
    stub = 'dgl.graphbolt' not in sys.modules
    if stub:
        sys.modules['dgl.graphbolt'] = types.ModuleType('dgl.graphbolt')
    try:
        import dgl
        import dgl.sampling  # noqa: F401
    except Exception as e:  # Not installed, or built for another torch.
        if stub:
            sys.modules.pop('dgl.graphbolt', None)
        return None, f'{type(e).__name__}: {e}'
    return dgl, None


def dgl_pinsage(dgl, index, U, I, num_walks, top_k):
    r"""DGL's ``PinSAGESampler`` on the user--item graph, CSR built."""
    graph = dgl.heterograph({
        ('u', 'ui', 'i'): (index[0], index[1]),
        ('i', 'iu', 'u'): (index[1], index[0]),
    }, num_nodes_dict={'u': U, 'i': I})
    graph.create_formats_()
    return dgl.sampling.PinSAGESampler(graph, 'i', 'u', num_traversals=2,
                                       termination_prob=0.5,
                                       num_random_walks=num_walks,
                                       num_neighbors=top_k)


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


def best_of(fns, repeat):
    r"""Best seconds of every function of :obj:`fns`, runs interleaved."""
    best = {name: float('inf') for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def hard_negative_rows(index, U, I, threads, repeat, g):
    r"""PPR hard negatives of 256 queries without precomputed bands (one
    chunk of the power iteration and band, 1/161 of
    :meth:`HardNegativeSampler.precompute` on Gowalla, then the draws) and
    the :func:`user_item_importance` weights of every interaction, at the
    current thread count."""
    sampler = HardNegativeSampler(index, U, I)
    queries = torch.randperm(I, generator=g)[:256]
    took = best_of({
        'ppr': lambda: sampler(queries, 5, g),
        'importance': lambda: user_item_importance(index, U, I, generator=g),
    }, repeat)
    return [(threads, 'ours: PPR hard negatives, 256 queries, no precompute',
             f'{256 / took["ppr"]:,.0f} queries/s', took['ppr'], ''),
            (threads, 'ours: user_item_importance, 10 walks per user',
             f'{index.size(1) / took["importance"]:,.0f} interactions/s',
             took['importance'], '')]


def main(argv=None):
    args = build_parser().parse_args(argv)

    loaded = load_gowalla()
    source = 'Gowalla train.txt' if loaded else 'synthetic (Gowalla size)'
    index, U, I = loaded or synthetic(**GOWALLA, seed=args.seed)
    print(f'data: {source}: {U} users, {I} items, {index.size(1)} '
          f'interactions; torch {torch.__version__}, {platform.machine()}, '
          f'{os.cpu_count()} CPUs')
    peer_op = getattr(getattr(torch.ops, 'torch_sparse', None),
                      'random_walk', None)
    if peer_op is None:
        print('torch_sparse.random_walk is not installed: no peer')
    dgl, why = import_dgl()
    if dgl is None:
        print(f'DGL is absent ({why}): no PinSAGESampler rows')
    else:
        print(f'DGL {dgl.__version__} (dgl.graphbolt stubbed)')

    g = torch.Generator().manual_seed(args.seed)
    item_csr, user_csr = bipartite_csr(index, U, I)
    hops = prepare_hops([item_csr, user_csr])
    # The same user--item graph as one homogeneous graph (items 0..I-1,
    # users I..I+U-1): a uniform walk alternates items and users.
    row = torch.cat([index[1], index[0] + I])
    col = torch.cat([index[0] + I, index[1]])
    rowptr, col = to_csr(row, col, I + U)
    walks = 10
    start = torch.arange(I).repeat_interleave(walks)
    steps = start.numel() * 4

    item_users = [[] for _ in range(I)]
    user_items = [[] for _ in range(U)]
    for u, i in index.t().tolist():
        item_users[i].append(u)
        user_items[u].append(i)
    subset = torch.randperm(I, generator=g)[:args.subset].tolist()
    py_secs = {}
    for num_walks, top_k in ((10, 3), (100, 50)):
        rng = random.Random(args.seed)
        begin = time.perf_counter()
        python_neighborhoods(item_users, user_items, subset, num_walks, 2,
                             0.5, top_k, rng)
        py_secs[num_walks] = (time.perf_counter() - begin) * I / len(subset)

    rows = []
    for threads in cli.thread_counts(args.threads):
        torch.set_num_threads(threads)
        if dgl is not None:
            dgl.utils.set_num_threads(threads)
        load_before = os.getloadavg()[0]
        fns = {
            'ours: random_walk (tables built in the call)':
            lambda: random_walk(rowptr, col, start, 4, generator=g),
            'ours: metapath walk, prebuilt tables':
            lambda: metapath_random_walk(hops, torch.arange(I), 2, 0.0,
                                         walks, g),
        }
        if peer_op is not None:
            fns['peer: torch_sparse.random_walk (C++)'] = \
                lambda: peer_op(rowptr, col, start, 4)
        walk = best_of(fns, args.repeat)
        peer = walk.get('peer: torch_sparse.random_walk (C++)')
        for name, secs in walk.items():
            ratio = f'{peer / secs:.2f}x peer speed' if peer else ''
            rows.append((threads, name, f'{steps / secs / 1e6:.1f} M steps/s',
                         secs, ratio))

        for num_walks, top_k in ((10, 3), (100, 50)):
            sampler = ImportanceNeighborhood(index, U, I, num_walks=num_walks,
                                             num_traversals=2,
                                             restart_prob=0.5, top_k=top_k)
            fns = {'ours': lambda: sampler.all_neighborhoods(g)}
            if dgl is not None:
                dgl_sampler = dgl_pinsage(dgl, index, U, I, num_walks, top_k)
                items = torch.arange(I)
                fns['dgl'] = lambda: dgl_sampler(items)
            took = best_of(fns, max(1, args.repeat // 2))
            secs = took['ours']
            # The peer's time for walks of the same count and length.
            scale = num_walks / walks
            note = f'{secs / (peer * scale):.2f}x peer walk time, ' \
                if peer else ''
            if dgl is not None:
                note = f'{secs / took["dgl"]:.2f}x DGL time, {note}'
            rows.append((threads, f'ours: all-item neighbourhoods, '
                         f'{num_walks} walks, T={top_k}',
                         f'{I / secs:,.0f} items/s', secs,
                         f'{note}{py_secs[num_walks] / secs:.0f}x faster '
                         f'than per-node Python (extrapolated)'))
            if dgl is not None:
                secs = took['dgl']
                rows.append((threads, f'DGL: PinSAGESampler, all items, '
                             f'{num_walks} walks, T={top_k}',
                             f'{I / secs:,.0f} items/s', secs,
                             f'{secs / (peer * scale):.2f}x peer walk time'
                             if peer else ''))

        pinsage = PinSageSampler(index, U, I, num_neighbors=[10, 10])
        batch = torch.randperm(I, generator=g)[:512]
        secs = best_of({'x': lambda: pinsage.sample(batch, g)},
                       args.repeat)['x']
        rows.append((threads, 'ours: PinSageSampler, 512 seeds, 2 layers, '
                     'T=10', f'{512 / secs:,.0f} seeds/s', secs, ''))
        rows.extend(hard_negative_rows(index, U, I, threads, args.repeat, g))
        print(f'threads {threads}: load average {load_before:.2f} before, '
              f'{os.getloadavg()[0]:.2f} after')

    width = max(len(r[1]) for r in rows)
    print(f"{'thr':>3}  {'what':<{width}}  {'throughput':>18}  "
          f"{'seconds':>8}  ratio")
    for threads, what, rate, secs, ratio in rows:
        print(f'{threads:>3}  {what:<{width}}  {rate:>18}  {secs:>8.4f}  '
              f'{ratio}')
    by = {(t, w): s for t, w, _, s, _ in rows}
    counts = sorted({t for t, *_ in rows})
    if len(counts) > 1:
        print(f'time at {counts[-1]} threads / time at {counts[0]} thread:')
        for what in dict.fromkeys(w for _, w, *_ in rows):
            print(f'  {what}: '
                  f'{by[(counts[-1], what)] / by[(counts[0], what)]:.2f}')


if __name__ == '__main__':
    main()
