r"""Approximate against exact top-20 retrieval on Gowalla (29,858 users x
40,981 items, 64-d embeddings from a rank-64 SVD of the training matrix,
training items excluded).

In one process: the exact path (``recommend(..., index='exact')``, the
evaluator's blocked top-k), faiss' exact ``IndexFlatIP`` through PyG's
``MIPSKNNIndex`` (``index='mips'``) and PyG's ``ApproxMIPSKNNIndex``
(IVF-PQ, ``index='approx-mips'``) at several numbers of visited cells, each
as faiss returns it (``refine=1``) and rescored exactly from 4k candidates
(``refine=4``). Recall@20 is the share of the exact top-20 found in the
returned top-20; query time covers all users (1024 per batch) and is
reported as a ratio against the exact path of the same run.

Usage: ``python benchmarks/bench_retrieval.py --raw-dir DIR [--threads 1]``
"""
import os
import sys
import time

from pyg_lightgode.apps import cli  # standard library only

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def build_parser():
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    cli.add_file_arguments(parser, '/tmp/pyg_lightgode_data',
                           'folder with the Gowalla files (train.txt, '
                           'test.txt)', required=True)
    cli.add_threads_argument(parser)
    add('--k', type=int, default=20, help='items retrieved per user')
    add('--num-cells', type=int, default=None,
        help="IVF cells of the approximate index (default: the index's "
        "own choice)")
    add('--visit', default='8,32,default',
        help="comma-separated numbers of cells visited per query "
        "('default': the index's own choice)")
    add('--bits-per-vector', type=int, default=None,
        help="PQ sub-vectors per vector (default: the index's own choice)")
    return parser


if __name__ == '__main__':  # --help and bad options: before torch loads.
    build_parser().parse_args()

import torch  # noqa: E402
from bench_evaluation import gowalla_svd  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def recall_at(found: torch.Tensor, exact: torch.Tensor) -> float:
    r"""Share of the exact top-k items (ignoring padding) in :obj:`found`."""
    valid = exact >= 0
    hits = (found.unsqueeze(-1) == exact.unsqueeze(-2)).any(-2) & valid
    return float(hits.sum()) / float(valid.sum())


def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.set_threads(args.threads)
    import faiss
    faiss.omp_set_num_threads(torch.get_num_threads())
    from pyg_lightgode.metrics import ItemIndex, recommend

    load_before = os.getloadavg()
    user_emb, item_emb, train_index, _ = gowalla_svd(args.root, args.raw_dir)
    k = args.k

    def query(index):
        return recommend(user_emb, item_emb, k=k, exclude_links=train_index,
                         index=index)

    (exact, _), exact_wall, exact_cpu = timed(lambda: query('exact'))
    rows = [('exact (blocked top-k)', 0.0, exact_wall, exact_cpu, 1.0)]

    mips, build_wall, _ = timed(lambda: ItemIndex(item_emb, kind='mips'))
    (found, _), wall, cpu = timed(lambda: query(mips))
    rows.append(('mips (faiss IndexFlatIP)', build_wall, wall, cpu,
                 recall_at(found, exact)))

    approx, build_wall, _ = timed(lambda: ItemIndex(
        item_emb, kind='approx-mips', num_cells=args.num_cells,
        bits_per_vector=args.bits_per_vector, refine=1))
    default_visit = approx.num_cells_to_visit
    for visit in args.visit.split(','):
        visit = default_visit if visit == 'default' else int(visit)
        approx.knn_index.index.nprobe = visit  # faiss' cells per query.
        for refine in (1, 4):
            approx.refine = refine
            (found, _), wall, cpu = timed(lambda: query(approx))
            rows.append((f'approx-mips visit {visit}, refine {refine}',
                         build_wall, wall, cpu, recall_at(found, exact)))
            build_wall = 0.0  # Built once.

    load = ', '.join(f'{x:.2f}' for x in load_before)
    load_after = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    print(f'{args.threads} thread(s), load average before ({load}), after '
          f'({load_after}); {user_emb.size(0)} users x {item_emb.size(0)} '
          f'items, d={item_emb.size(1)}, top-{k}, '
          f'{train_index.size(1)} training pairs excluded; IVF-PQ with '
          f'{approx.num_cells} cells, {approx.bits_per_vector} sub-vectors '
          f'of 8 bits')
    header = (f'{"method":<36}{"build s":>9}{"query s":>9}{"cpu s":>8}'
              f'{"speed vs exact":>16}{f"recall@{k}":>11}')
    print(header, '-' * len(header), sep='\n')
    for name, build, wall, cpu, recall in rows:
        print(f'{name:<36}{build:>9.2f}{wall:>9.2f}{cpu:>8.2f}'
              f'{exact_wall / wall:>15.2f}x{recall:>11.4f}')


if __name__ == '__main__':
    main()
