r"""Time and accuracy of the ways to compute the ideal low-pass basis (the
top-k right singular vectors of the normalised interaction matrix) on one
dataset, all in one run: SciPy's ARPACK ``svds`` (the reference),
``torch.svd_lowrank`` (subspace iteration) and the package's randomized
block Krylov method, with GF-CF's test Recall@20 / NDCG@20 for each basis.

    python benchmarks/bench_svd.py --raw-dir ../shared/data/gowalla --k 256

Accuracy is reported as the share of every reference singular vector that
the basis captures (mean and minimum over the k vectors), the largest
singular-value error, and the end metric (on ``--eval-users`` users).
"""
import json
import os
import time

from pyg_lightgode.apps import cli  # standard library only


def build_parser():
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    add('--dataset', default='gowalla', help=cli.DATASET_HELP)
    cli.add_file_arguments(parser)
    add('--k', type=int, default=256, help='singular vectors of the basis')
    for name, default, method in (('krylov', '2,4,6', 'the block Krylov '
                                   'method'),
                                  ('lowrank', '4', 'torch.svd_lowrank')):
        add(f'--{name}-niter', default=default,
            help=f'comma-separated iteration counts of {method}')
    cli.add_threads_argument(parser)
    add('--eval-users', type=int, default=5000,
        help='GF-CF metrics on this many users drawn with seed 0 (0: all '
        'users)')
    add('--json', default=None, help='also write the rows to this file')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)  # --help: before torch loads.
    cli.set_threads(args.threads)
    import torch

    from pyg_lightgode.datasets import load_dataset
    from pyg_lightgode.metrics import RankingEvaluator
    from pyg_lightgode.nn.filters.operators import (
        ideal_basis,
        normalize_interactions,
    )
    from pyg_lightgode.nn.models import GFCF
    split = load_dataset(args.dataset, args.root, raw_dir=args.raw_dir)
    U, I = split.num_users, split.num_items
    graph = torch.cat(split.known_interactions('test'), dim=1)
    norm = normalize_interactions(graph, U, I)
    evaluator = RankingEvaluator(split.test_index,
                                 exclude_links=split.known_interactions('test'),
                                 num_users=U, num_items=I, ks=(20, ),
                                 metrics=('recall', 'ndcg'), users=(
                                     torch.randperm(U, generator=torch.
                                                    Generator().manual_seed(
                                                        0))[:args.eval_users]
                                     if args.eval_users else None))
    model = GFCF(U, I, k=args.k).fit(graph)

    runs = [('svds', 0)]
    runs += [('lowrank', int(n)) for n in args.lowrank_niter.split(',') if n]
    runs += [('krylov', int(n)) for n in args.krylov_niter.split(',') if n]
    rows, reference = [], None
    for method, niter in runs:
        start = time.perf_counter()
        basis = ideal_basis(norm, args.k, method=method, niter=niter)
        seconds = time.perf_counter() - start
        if reference is None:
            reference = basis
        captured = (basis.vectors.t() @ reference.vectors).pow(2).sum(0)
        model.basis = basis.vectors
        metrics = evaluator.evaluate_scorer(model.score, U, I)
        row = dict(method=method, niter=niter, seconds=seconds,
                   captured_mean=float(captured.mean()),
                   captured_min=float(captured.min()),
                   value_error=float((basis.values -
                                      reference.values).abs().max()),
                   load=os.getloadavg()[0], **metrics)
        rows.append(row)
        print(json.dumps(row), flush=True)
    svds_s = rows[0]['seconds']
    print("\n| method | niter | seconds | vs svds | captured mean / min | "
          "max sigma error | GF-CF Recall@20 / NDCG@20 |\n|---|---|---|---|"
          "---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['niter']} | {r['seconds']:.1f} | "
              f"{r['seconds'] / svds_s:.2f}x | {r['captured_mean']:.4f} / "
              f"{r['captured_min']:.4f} | {r['value_error']:.1e} | "
              f"{r['recall@20']:.4f} / {r['ndcg@20']:.4f} |")
    print(f"\nk={args.k}, {args.threads} threads, load average "
          f"{os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
