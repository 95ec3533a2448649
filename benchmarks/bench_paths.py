r"""Every public propagation path against one sparse product of the same
graph, measured in the same run (interleaved, median of the repeats):

- ``spmm``: ``torch.sparse.mm(adj, x)`` on LightGCN's normalised CSR
  adjacency (the floor: one Euler step is one such product);
- ``conv``: ``LightGODEConv(normalize=False)`` on that adjacency;
- ``conv, normalize=True``: the default layer on the raw adjacency (it
  normalises on every call);
- ``get_embedding``: ``LightGODE.get_embedding`` on the normalised
  adjacency (a model built with ``normalize=False``);
- ``fold-in``: ``LightGODEFoldIn.recompute()``, the full recompute a
  fold-in state keeps equal to (bipartite, through ``LightGODEConv``).

    python benchmarks/bench_paths.py --raw-dir ../shared/data/gowalla

Data: the Gowalla LightGCN split, or a random graph of its size with
``--synthetic``. Prints one line per path with its ratio to ``spmm``.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from pyg_lightgode.apps import cli  # noqa: E402 (standard library only)


def main(argv=None):
    parser = cli.make_parser(__doc__)
    parser.add_argument('--root', default='data', help='datasets folder')
    parser.add_argument('--raw-dir', default=None,
                        help='folder with the Gowalla files')
    parser.add_argument('--synthetic', action='store_true',
                        help="a random graph of Gowalla's size instead")
    parser.add_argument('--dim', type=int, default=64,
                        help='embedding size')
    parser.add_argument('--repeats', type=int, default=15,
                        help='timed calls per path (interleaved)')
    cli.add_threads_argument(parser)
    args = parser.parse_args(argv)
    cli.set_threads(args.threads)

    import torch
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    from pyg_lightgode.apps.serving import LightGODEFoldIn
    from pyg_lightgode.data.bipartite import bipartite_to_adj_t
    from pyg_lightgode.nn.conv import LightGODEConv
    from pyg_lightgode.nn.models import LightGODE
    torch.manual_seed(0)
    if args.synthetic:
        U, I, E = 29858, 40981, 810128
        index = torch.stack([torch.randint(U, (E, )),
                             torch.randint(I, (E, ))])
    else:
        from pyg_lightgode.datasets import load_dataset
        split = load_dataset('gowalla', args.root, raw_dir=args.raw_dir)
        U, I, index = split.num_users, split.num_items, split.train_index
    raw = bipartite_to_adj_t(index, U, I)
    adj, _ = gcn_norm(raw, None, U + I, add_self_loops=False)
    x = torch.randn(U + I, args.dim)
    model = LightGODE(U, I, args.dim, t=3.0, normalize=False)
    conv = LightGODEConv(t=3.0, normalize=False)
    default = LightGODEConv(t=3.0)
    fold = LightGODEFoldIn(x[:U], x[U:], index, t=3.0)
    paths = {
        'spmm': lambda: torch.sparse.mm(adj, x),
        'conv': lambda: conv(x, adj),
        'conv, normalize=True': lambda: default(x, raw),
        'get_embedding': lambda: model.get_embedding(adj),
        'fold-in (full recompute)': fold.recompute,
    }
    times = {name: [] for name in paths}
    with torch.no_grad():
        for fn in paths.values():
            fn()  # Warm-up.
        for _ in range(args.repeats):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    floor = statistics.median(times['spmm'])
    print(f'{U} users x {I} items, {index.size(1)} pairs, d={args.dim}, '
          f'{args.threads} thread(s), load average '
          f'{os.getloadavg()[0]:.1f}, median of {args.repeats}')
    for name, values in times.items():
        median = statistics.median(values)
        print(f'{name:<28}{median * 1e3:9.1f} ms {median / floor:6.2f}x '
              f'spmm')
    return times


if __name__ == '__main__':
    main()
