r"""Times all-item ranking evaluation at Gowalla size (29,858 users x 40,981
items, d = 64) against the bare matrix product it needs and against PyG.

In one process per thread count, and interleaved over ``--repeat`` rounds
so that every method sees the same machine load, it times

* ``torch.mm``: the users x items score product alone, one call into a
  preallocated (already touched) buffer: the FLOP rate to compare with;
* :class:`pyg_lightgode.metrics.RankingEvaluator` (all metrics, k = 20);
* the previous evaluator's algorithm (per 1024 users: the full score matrix,
  excluded items set to -inf, ``torch.topk`` over all items), whose metrics
  the evaluator must reproduce;
* the evaluation loop of PyG's ``examples/lightgcn.py`` (8192 users per
  batch, training pairs scanned per batch, ``topk``), counting with PyG's
  ``LinkPred*`` metrics.

Each time is reported as wall and CPU (``time.process_time``) seconds and as
a FLOP rate ratio against ``torch.mm`` of the same round (``mm time / method
time``; the median over rounds). The machine is shared, so the ratios are
the figures to read; the load average is printed before and after.

Data: the Gowalla split (``--raw-dir``) with 64-d embeddings from a rank-64
SVD of the training matrix (meaningful rankings, so that the metric check
has hits to compare), or ``--synthetic`` random pairs and embeddings.

Usage: ``python benchmarks/bench_evaluation.py --raw-dir DIR --threads 1,2
[--omp-wait-policy PASSIVE]``
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from pyg_lightgode.apps import cli  # standard library only


def build_parser():
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    cli.add_file_arguments(parser, '/tmp/pyg_lightgode_data',
                           'folder with Gowalla train.txt/test.txt (or '
                           '--synthetic)')
    add('--synthetic', action='store_true',
        help='random pairs and embeddings at Gowalla size')
    cli.add_threads_argument(parser, default='1,2', several=True)
    add('--repeat', type=int, default=3, help='interleaved timing rounds')
    add('--k', type=int, default=20, help='metrics at this k')
    add('--skip-pyg', action='store_true',
        help="do not time PyG's evaluation loop")
    add('--omp-wait-policy', default=None, choices=['ACTIVE', 'PASSIVE'],
        help="OMP_WAIT_POLICY of the timed processes (default: the "
        "environment's; on a loaded machine PASSIVE stops idle OpenMP "
        "threads from spinning)")
    add('--json', default=None, help='also write the results to this file')
    add('--child', action='store_true', help=argparse.SUPPRESS)
    return parser


if __name__ == '__main__':  # --help and bad options: before torch loads.
    build_parser().parse_args()

import torch  # noqa: E402

NUM_USERS, NUM_ITEMS, DIM = 29_858, 40_981, 64
NUM_TRAIN, NUM_TEST = 810_128, 217_242


def synthetic(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(NUM_USERS, DIM, generator=gen) / DIM**0.5
    item_emb = torch.randn(NUM_ITEMS, DIM, generator=gen) / DIM**0.5
    pairs = torch.stack([
        torch.randint(NUM_USERS, (NUM_TRAIN + NUM_TEST, ), generator=gen),
        torch.randint(NUM_ITEMS, (NUM_TRAIN + NUM_TEST, ), generator=gen),
    ])
    return user_emb, item_emb, pairs[:, :NUM_TRAIN], pairs[:, NUM_TRAIN:]


def gowalla_svd(root: str, raw_dir: str, dim: int = DIM, seed: int = 0):
    r"""The Gowalla split and rank-:obj:`dim` SVD embeddings of its training
    matrix (:math:`U \sqrt{S}`, :math:`V \sqrt{S}`)."""
    from pyg_lightgode.datasets import load_dataset
    split = load_dataset('gowalla', root, raw_dir=raw_dir)
    train = split.train_index
    adj = torch.sparse_coo_tensor(train, torch.ones(train.size(1)),
                                  (split.num_users, split.num_items))
    torch.manual_seed(seed)
    u, s, v = torch.svd_lowrank(adj.coalesce(), q=dim, niter=2)
    return (u * s.sqrt(), v * s.sqrt(), train, split.test_index)


def previous_evaluator(user_emb, item_emb, train_index, test_index, k,
                       batch_size=1024):
    r"""The evaluator's algorithm before the blocked top-k: per batch of
    users the full score matrix, excluded items set to -inf in place, and
    ``topk`` over all items."""
    from torch_geometric.metrics import LinkPredMetricCollection

    from pyg_lightgode.metrics.ranking import RANKING_METRICS, UserItemCSR
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    test = UserItemCSR(test_index, num_users, num_items)
    train = UserItemCSR(train_index, num_users, num_items)
    users = (test.count > 0).nonzero().view(-1)
    collection = LinkPredMetricCollection(
        {f'{name}@{k}': cls(k)
         for name, cls in RANKING_METRICS.items()})
    for start in range(0, users.numel(), batch_size):
        batch = users[start:start + batch_size]
        scores = user_emb[batch] @ item_emb.t()
        scores[train.rows(batch)] = float('-inf')
        score, index = scores.topk(k, dim=-1)
        index[score == float('-inf')] = num_items
        collection.update(index, torch.stack(test.rows(batch)))
    return {key: float(value) for key, value in collection.compute().items()}


def pyg_loop(user_emb, item_emb, train_index, test_index, k,
             batch_size=8192):
    r"""The ``test()`` loop of PyG's ``examples/lightgcn.py`` (item offsets
    removed, as the indices here are bipartite), counting with PyG's
    ``LinkPred*`` metrics."""
    from torch_geometric.metrics import (
        LinkPredMetricCollection,
        LinkPredNDCG,
        LinkPredPrecision,
        LinkPredRecall,
    )
    collection = LinkPredMetricCollection({
        f'recall@{k}': LinkPredRecall(k),
        f'precision@{k}': LinkPredPrecision(k),
        f'ndcg@{k}': LinkPredNDCG(k),
    })
    num_users = user_emb.size(0)
    for start in range(0, num_users, batch_size):
        end = start + batch_size
        logits = user_emb[start:end] @ item_emb.t()
        mask = (train_index[0] >= start) & (train_index[0] < end)
        logits[train_index[0, mask] - start,
               train_index[1, mask]] = float('-inf')
        topk_index = logits.topk(k, dim=-1).indices
        mask = (test_index[0] >= start) & (test_index[0] < end)
        label = test_index[:, mask].clone()
        label[0] -= start
        collection.update(topk_index, label)
    return {key: float(value) for key, value in collection.compute().items()}


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(args) -> dict:
    cli.set_threads(int(args.threads))
    from pyg_lightgode.metrics import RankingEvaluator
    load_before = os.getloadavg()
    if args.synthetic:
        data = synthetic()
    else:
        data = gowalla_svd(args.root, args.raw_dir)
    user_emb, item_emb, train_index, test_index = data
    k = args.k

    (evaluator, setup_wall, _) = timed(lambda: RankingEvaluator(
        test_index, exclude_links=train_index, num_users=user_emb.size(0),
        num_items=item_emb.size(0), ks=(k, )))
    eval_users = torch.unique(test_index[0])
    query = user_emb[eval_users]
    flop = 2 * query.size(0) * item_emb.size(0) * user_emb.size(1)
    buf = torch.empty(query.size(0), item_emb.size(0))
    buf.fill_(0.0)  # Touch every page before timing.

    def product():
        torch.mm(query, item_emb.t(), out=buf)

    methods = {
        'mm': product,
        'evaluator': lambda: evaluator(user_emb, item_emb),
        'previous': lambda: previous_evaluator(user_emb, item_emb,
                                               train_index, test_index, k),
    }
    if not args.skip_pyg:
        methods['pyg'] = lambda: pyg_loop(user_emb, item_emb, train_index,
                                          test_index, k)
    times = {name: [] for name in methods}
    results = {}
    square = torch.randn(4096, 4096)
    ceiling = []
    for _ in range(args.repeat):
        for name, fn in methods.items():
            out, wall, cpu = timed(fn)
            times[name].append((wall, cpu))
            results[name] = out
        _, wall, _ = timed(lambda: square @ square)
        ceiling.append(2 * 4096**3 / wall / 1e9)

    def ratio(name, which):
        return statistics.median(mm[which] / t[which] for mm, t in zip(
            times['mm'], times[name]))

    rows = {}
    for name in methods:
        rows[name] = {
            'wall_s': statistics.median(w for w, _ in times[name]),
            'cpu_s': statistics.median(c for _, c in times[name]),
            'mm_ratio_wall': ratio(name, 0),
            'mm_ratio_cpu': ratio(name, 1),
        }
        rows[name]['gflops_wall'] = flop / rows[name]['wall_s'] / 1e9
    new, old = results['evaluator'], results['previous']
    check = {
        'max_abs_diff_vs_previous': max(abs(new[key] - old[key])
                                        for key in new),
    }
    if 'pyg' in results:
        check['max_abs_diff_vs_pyg'] = max(
            abs(new[key] - value) for key, value in results['pyg'].items())
    return {
        'threads': int(args.threads),
        'load_before': load_before,
        'load_after': os.getloadavg(),
        'shape': [query.size(0), item_emb.size(0), user_emb.size(1)],
        'num_excluded': train_index.size(1),
        'num_test': test_index.size(1),
        'setup_s': setup_wall,
        'ceiling_gflops': sorted(ceiling),
        'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY', 'default'),
        'rows': rows,
        'metrics': new,
        'check': check,
    }


LABELS = {
    'mm': 'torch.mm, same users x items product',
    'evaluator': 'RankingEvaluator (this package)',
    'previous': 'previous evaluator (1024/batch, full topk)',
    'pyg': 'PyG lightgcn.py loop, LinkPred* metrics',
}


def report(r: dict) -> None:
    load = ', '.join(f'{x:.2f}' for x in r['load_before'])
    load_after = ', '.join(f'{x:.2f}' for x in r['load_after'])
    users, items, dim = r['shape']
    ceiling = ', '.join(f'{x:.0f}' for x in r['ceiling_gflops'])
    print(f"\n{r['threads']} thread(s), OMP_WAIT_POLICY "
          f"{r['omp_wait_policy']}; load average before ({load}), after "
          f"({load_after}); {users} users x {items} items, d={dim}, "
          f"{r['num_excluded']} excluded + {r['num_test']} test pairs; "
          f"evaluator setup {r['setup_s']:.2f} s; torch.mm 4096^3 at "
          f"{ceiling} GFLOP/s")
    header = (f'{"method":<44}{"wall s":>8}{"cpu s":>8}{"GFLOP/s":>9}'
              f'{"rate vs mm (wall)":>19}{"(cpu)":>7}')
    print(header)
    print('-' * len(header))
    for name, row in r['rows'].items():
        print(f'{LABELS[name]:<44}{row["wall_s"]:>8.2f}{row["cpu_s"]:>8.2f}'
              f'{row["gflops_wall"]:>9.1f}{row["mm_ratio_wall"]:>19.2f}'
              f'{row["mm_ratio_cpu"]:>7.2f}')
    ev, prev = r['rows']['evaluator'], r['rows']['previous']
    line = (f"evaluator vs previous: {prev['wall_s'] / ev['wall_s']:.2f}x "
            f"faster (wall), metrics max |diff| "
            f"{r['check']['max_abs_diff_vs_previous']:.1e}")
    if 'pyg' in r['rows']:
        pyg = r['rows']['pyg']
        line += (f"; vs PyG loop: {pyg['wall_s'] / ev['wall_s']:.2f}x "
                 f"faster (wall), max |diff| "
                 f"{r['check']['max_abs_diff_vs_pyg']:.1e}")
    print(line)
    print('metrics: ' + ', '.join(f'{key} {value:.6f}'
                                  for key, value in r['metrics'].items()))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.synthetic and args.raw_dir is None:
        parser.error('pass --raw-dir (Gowalla) or --synthetic')
    if args.child:
        print(json.dumps(run(args)))
        return

    out = []
    for threads in cli.thread_counts(args.threads):
        cmd = [sys.executable, __file__, '--child', '--threads',
               str(threads), '--repeat', str(args.repeat), '--k', str(args.k),
               '--root', args.root]
        cmd += ['--synthetic'] if args.synthetic else ['--raw-dir',
                                                       args.raw_dir]
        cmd += ['--skip-pyg'] if args.skip_pyg else []
        env = dict(os.environ)
        if args.omp_wait_policy is not None:
            env['OMP_WAIT_POLICY'] = args.omp_wait_policy
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f'{threads} thread(s) failed: {proc.stderr.strip()[-500:]}')
            continue
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        report(out[-1])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
