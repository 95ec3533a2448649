r"""Micro-benchmarks, each with a peer measured in the same run:

- one training epoch of LightGODE (no graph) against one epoch of PyG's
  ``LightGCN`` (3 layers, BPR, same batch size; its epoch is extrapolated
  from ``--lightgcn-batches`` timed batches, as a full epoch takes hours on
  2 cores);
- post-training propagation of every solver against one forward of PyG's
  ``LightGCN`` (3 layers) on the same graph;
- the machine's own ceiling: a large ``torch.mm`` (GFLOP/s) and a large
  copy (GB/s), so each figure can be read as a fraction of the hardware.

    python benchmarks/micro.py --raw-dir ../shared/data/gowalla

Data: the Gowalla LightGCN split (29,858 users, 40,981 items, 810,128
training pairs), or a random graph of that size with ``--synthetic``.
"""
import os
import platform
import time

from pyg_lightgode.apps import cli  # standard library only


def build_parser():
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    cli.add_file_arguments(parser)
    cli.add_threads_argument(parser)
    add('--synthetic', action='store_true',
        help='a random graph of Gowalla size instead of Gowalla')
    add('--batch-size', type=int, default=1024,
        help='training pairs per batch')
    add('--lightgcn-batches', type=int, default=20,
        help="timed batches of PyG's LightGCN (its epoch is extrapolated)")
    return parser


if __name__ == '__main__':  # --help and bad options: before torch loads.
    build_parser().parse_args()

import torch  # noqa: E402


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ceiling():
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    mm = best_of(lambda: torch.mm(a, b))
    src = torch.randn(64 * 2**20 // 4 * 4)  # 256 MiB
    dst = torch.empty_like(src)
    cp = best_of(lambda: dst.copy_(src))
    return {'mm_gflops': 2 * 4096**3 / mm / 1e9,
            'copy_gbs': 2 * src.numel() * 4 / cp / 1e9}


def load_split(args):
    if args.synthetic:
        from pyg_lightgode.data import BipartiteSplit
        gen = torch.Generator().manual_seed(0)
        U, I, E = 29_858, 40_981, 810_128
        pairs = torch.stack([torch.randint(U, (E, ), generator=gen),
                             torch.randint(I, (E, ), generator=gen)])
        pairs = torch.unique(pairs, dim=1)
        return BipartiteSplit(U, I, pairs, pairs[:, :10])
    from pyg_lightgode.datasets import load_dataset
    return load_dataset('gowalla', args.root, raw_dir=args.raw_dir)


def epoch_times(split, batch_size, lightgcn_batches):
    from torch_geometric.nn.models import LightGCN
    from pyg_lightgode.nn.models import LightGODE
    from pyg_lightgode.sampler.uniform_negatives import (
        UniformNegativeSampler, )
    from pyg_lightgode.apps.training.trainer import InteractionBatches
    from pyg_lightgode.apps.training.recipes import make_optimizer
    gen = torch.Generator().manual_seed(0)
    batches = InteractionBatches(split.train_index, batch_size, gen)
    rows = {}
    for sparse in (False, True):
        model = LightGODE(split.num_users, split.num_items, 64,
                          sparse=sparse)
        opt, = make_optimizer(model, lr=1e-3)  # As the recipes train.
        t0 = time.perf_counter()
        for users, items in batches:
            opt.zero_grad()
            model.loss(users, items).backward()
            opt.step()
        rows[f'LightGODE epoch ({"SparseAdam" if sparse else "fused Adam"})'] = \
            time.perf_counter() - t0

    model = LightGCN(split.num_nodes, 64, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    adj_t, U = split.adj_t(), split.num_users
    negatives = UniformNegativeSampler(split.train_index, U, split.num_items)
    it = iter(batches)
    t0 = time.perf_counter()
    for _ in range(lightgcn_batches):
        users, items = next(it)
        neg = negatives(users, gen)
        opt.zero_grad()
        emb = model.get_embedding(adj_t)
        u, i, j = emb[users], emb[U + items], emb[U + neg]
        model.recommendation_loss((u * i).sum(-1), (u * j).sum(-1),
                                  node_id=torch.cat([users, U + items,
                                                     U + neg])).backward()
        opt.step()
    per_batch = (time.perf_counter() - t0) / lightgcn_batches
    rows['PyG LightGCN-3 epoch (extrapolated)'] = per_batch * len(batches)
    return rows, per_batch, len(batches)


def propagation_times(split):
    from torch_geometric.nn.models import LightGCN
    from pyg_lightgode.nn.conv import LightGODEConv
    x = torch.randn(split.num_nodes, 64)
    adj_t = split.adj_t()
    rows = {}
    lightgcn = LightGCN(split.num_nodes, 64, 3)
    with torch.no_grad():
        rows['PyG LightGCN-3 forward'] = best_of(
            lambda: lightgcn.get_embedding(adj_t))
        for name, kw in [('euler one step (official)', dict(method='euler')),
                         ('exact closed form', dict(method='exact')),
                         ('rk4, step 0.25', dict(method='rk4',
                                                 step_size=0.25)),
                         ('dopri5', dict(method='dopri5'))]:
            conv = LightGODEConv(t=3.0, **kw)
            rows[f'LightGODEConv t=3, {name}'] = best_of(
                lambda: conv(x, adj_t), repeat=1 if 'dopri' in name else 3)
    return rows


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.threads = cli.set_threads(args.threads)
    print(f'{platform.machine()}, {os.cpu_count()} cores, {args.threads} '
          f'threads, torch {torch.__version__}, load average '
          f'{os.getloadavg()[0]:.1f}')
    c = ceiling()
    print(f"ceiling: torch.mm 4096^3 {c['mm_gflops']:.1f} GFLOP/s; "
          f"copy 256 MiB {c['copy_gbs']:.1f} GB/s")
    split = load_split(args)
    print(f'graph: {split.num_users} users, {split.num_items} items, '
          f'{split.train_index.size(1)} training pairs, batch '
          f'{args.batch_size}')

    rows, per_batch, num_batches = epoch_times(split, args.batch_size,
                                               args.lightgcn_batches)
    peer = rows['PyG LightGCN-3 epoch (extrapolated)']
    print('\n| training epoch | seconds | speed-up vs LightGCN-3 |\n|---|---|---|')
    for name, sec in rows.items():
        print(f'| {name} | {sec:.1f} | {peer / sec:.1f}x |')
    print(f'(LightGCN-3: {per_batch:.3f} s per batch x {num_batches} '
          f'batches, {args.lightgcn_batches} batches timed)')

    rows = propagation_times(split)
    peer = rows['PyG LightGCN-3 forward']
    print('\n| post-training propagation | seconds | vs one LightGCN-3 '
          'forward |\n|---|---|---|')
    for name, sec in rows.items():
        print(f'| {name} | {sec:.3f} | {sec / peer:.2f}x |')


if __name__ == '__main__':
    main()
