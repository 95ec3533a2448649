r"""Time and peak memory of whole-graph inference as the graph grows.

Builds synthetic user--item graphs with power-law degrees at multiples of
Gowalla's size (1x: 29,858 users, 40,981 items, 1,027,370 interactions;
10x: ten times each) and measures, per scale:

* LightGODE propagation of 64-d embeddings of all nodes with
  :obj:`chunk_size` row blocks: one Euler step (:math:`t = 3`, the paper's
  setting) and the exact solution at :math:`t = 1.5`;
* writing the all-node table to an on-disk
  :class:`~pyg_lightgode.apps.serving.store.EmbeddingStore`;
* PinSage importance neighbourhoods of every item
  (:class:`~pyg_lightgode.sampler.ImportanceNeighborhood`, 20 walks,
  :math:`T = 10`) and 2-layer layer-wise inference (hidden 64, random
  weights) in target chunks;
* top-20 retrieval (training items excluded) for a random sample of users
  over all items, read from the store in item chunks
  (:func:`~pyg_lightgode.apps.serving.store.chunked_recommend`), and its
  extrapolation to all users (time per user times the number of users;
  marked as such).

Every stage runs in its own process, which resets its peak resident memory
(``ru_maxrss``, through ``/proc/self/clear_refs``) once its inputs are
loaded, so the peak belongs to the timed work; the table shows that peak,
its growth over the resident memory before the work ("+MB"), and the
growth in multiples of the stage's embedding table (all nodes, or items
for PinSage). The processes run with ``MALLOC_MMAP_THRESHOLD_=1048576`` so
that freed tensors leave the resident memory. The last columns are the
growth from the smallest to the largest scale, next to the growth of the
edges.

Usage:
    python benchmarks/bench_scale.py [--scales 1,10] [--threads 1]
        [--retrieval-users 10000] [--chunk-size 16384] [--budget 600]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

from pyg_lightgode.apps import cli  # standard library only


def build_parser():
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    add('--scales', default='1,10',
        help='comma-separated multiples of Gowalla')
    cli.add_threads_argument(parser)
    add('--chunk-size', type=int, default=16384,
        help='rows per block (propagation, PinSage targets, users and items '
        'in retrieval)')
    add('--retrieval-users', type=int, default=10000,
        help='users whose top-20 is retrieved (then extrapolated to all)')
    add('--budget', type=float, default=600,
        help='seconds for the whole run; later stages are skipped')
    add('--seed', type=int, default=0, help='seed of the synthetic graphs')
    add('--workdir', default=None,
        help='where the temporary graphs and stores go (default: a '
        'temporary folder)')
    add('--stage', help=argparse.SUPPRESS)
    return parser


if __name__ == '__main__':  # --help and bad options: before torch loads.
    build_parser().parse_args()

import torch  # noqa: E402

GOWALLA = dict(num_users=29858, num_items=40981, num_edges=1027370)
CHANNELS = 64
EULER_T, EXACT_T = 3.0, 1.5
NUM_WALKS, TOP_K = 20, 10
K = 20

#: (stage, what the table calls it, whose embedding table it is compared
#: with), in running order; later stages read what earlier ones wrote.
STAGES = (
    ('euler', f'LightGODE euler, one step t={EULER_T:g}', 'nodes'),
    ('write', 'write all-node store (after euler)', 'nodes'),
    ('exact', f'LightGODE exact, t={EXACT_T:g}', 'nodes'),
    ('neighbourhood', f'PinSage neighbourhoods ({NUM_WALKS} walks, '
     f'T={TOP_K})', 'items'),
    ('pinsage', 'PinSage inference, 2 layers', 'items'),
    ('retrieval', 'retrieval top-20, sampled users', 'nodes'),
)
#: The processes; the euler one also writes the store (the 'write' stage).
PROCESSES = ('euler', 'exact', 'neighbourhood', 'pinsage', 'retrieval')
#: glibc hands every block of 1 MiB or more back to the system when freed
#: (its default threshold adapts up to 32 MiB and keeps freed memory
#: resident), so that resident memory follows the live tensors.
CHILD_ENV = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': str(2**20)}
#: What a process runs on a tiny graph before it measures (inputs first).
WARM_UP = {
    'pinsage': ('neighbourhood', 'pinsage'),
    'retrieval': ('euler', 'retrieval')
}


def power_law_bipartite(num_users: int, num_items: int, num_edges: int,
                        user_alpha: float = 0.5, item_alpha: float = 0.6,
                        seed: int = 0) -> torch.Tensor:
    r"""A :obj:`[2, num_edges]` interaction index without duplicates whose
    user and item degrees follow Zipf laws: the node of popularity rank
    :math:`r` is drawn with probability :math:`\propto r^{-\alpha}`, ranks
    being assigned to ids at random."""
    gen = torch.Generator().manual_seed(seed)

    def sampler(num_nodes: int, alpha: float):
        cdf = torch.arange(1, num_nodes + 1,
                           dtype=torch.float64).pow(-alpha).cumsum(0)
        cdf /= cdf[-1].clone()
        node_of_rank = torch.randperm(num_nodes, generator=gen)

        def draw(n: int) -> torch.Tensor:
            rank = torch.searchsorted(
                cdf, torch.rand(n, dtype=torch.float64, generator=gen))
            return node_of_rank[rank.clamp_(max=num_nodes - 1)]

        return draw

    draw_user = sampler(num_users, user_alpha)
    draw_item = sampler(num_items, item_alpha)
    keys = torch.empty(0, dtype=torch.long)
    while keys.numel() < num_edges:  # Rounds of draws until enough pairs.
        n = int(1.2 * (num_edges - keys.numel())) + 1000
        new = draw_user(n) * num_items + draw_item(n)
        keys = torch.unique(torch.cat([keys, new]))
    keys = keys[torch.randperm(keys.numel(), generator=gen)[:num_edges]]
    return torch.stack([keys // num_items, keys % num_items])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> float:
    r"""Resets the peak resident memory to the current one (Linux
    :obj:`/proc/self/clear_refs`, which :obj:`ru_maxrss` follows) so that
    the next peak belongs to the work that follows, and returns it."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:  # The peak then includes the loading of the inputs.
        pass
    return peak_mb()


def timed(fn) -> Tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_stage(stage: str, args, graph: Dict,
              workdir: str) -> Dict[str, Dict[str, float]]:
    r"""Runs one process's stage(s) on :obj:`graph`, reading and writing
    intermediate files in :obj:`workdir`, and returns the measurements by
    stage."""
    from pyg_lightgode.apps.serving.store import (
        EmbeddingStore,
        chunked_recommend,
        save_embeddings,
    )
    from pyg_lightgode.data.bipartite import bipartite_to_adj_t
    from pyg_lightgode.nn.conv import LightGODEConv
    from pyg_lightgode.nn.models import PinSage
    from pyg_lightgode.sampler import ImportanceNeighborhood

    index, num_users, num_items = (graph['index'], graph['num_users'],
                                   graph['num_items'])
    num_nodes = num_users + num_items
    store_path = os.path.join(workdir, 'nodes.npy')
    neighbourhood_path = os.path.join(workdir, 'neighbourhood.pt')
    gen = torch.Generator().manual_seed(args.seed)
    result, results = {}, {}

    if stage in ('euler', 'exact'):
        adj_t = bipartite_to_adj_t(index, num_users, num_items)
        x = torch.randn(num_nodes, CHANNELS, generator=gen)
        conv = (LightGODEConv(t=EULER_T, chunk_size=args.chunk_size)
                if stage == 'euler' else LightGODEConv(
                    t=EXACT_T, method='exact', chunk_size=args.chunk_size))
        base = reset_peak()
        seconds, out = timed(lambda: conv(x, adj_t))
        if stage == 'euler':  # Then write it, measured on its own.
            results[stage] = dict(seconds=seconds, peak_mb=peak_mb(),
                                  base_mb=base)
            del x, adj_t
            base = reset_peak()
            seconds, _ = timed(lambda: save_embeddings(
                store_path, out, chunk_size=args.chunk_size,
                meta={'num_users': num_users}))
            stage = 'write'
    elif stage == 'neighbourhood':
        sampler = ImportanceNeighborhood(index, num_users, num_items,
                                         num_walks=NUM_WALKS, top_k=TOP_K)
        base = reset_peak()
        seconds, (edge_index, weight) = timed(
            lambda: sampler.all_neighborhoods(generator=gen))
        torch.save({'edge_index': edge_index, 'weight': weight},
                   neighbourhood_path)
        result['neighbourhood_edges'] = edge_index.size(1)
    elif stage == 'pinsage':
        neighbourhood = torch.load(neighbourhood_path)
        torch.manual_seed(args.seed)
        model = PinSage(num_nodes=num_items, hidden_channels=CHANNELS,
                        out_channels=CHANNELS, num_layers=2).eval()
        base = reset_peak()
        seconds, _ = timed(lambda: model.inference(
            neighbourhood['edge_index'], neighbourhood['weight'],
            chunk_size=args.chunk_size))
    elif stage == 'retrieval':
        store = EmbeddingStore(store_path, shape=(num_nodes, CHANNELS))
        users = torch.randperm(num_users, generator=gen)[:args.retrieval_users]
        base = reset_peak()
        seconds, _ = timed(lambda: chunked_recommend(
            store.narrow(0, num_users),
            store.narrow(num_users,
                         num_items), users, k=K, exclude_links=index,
            batch_size=1024, user_chunk_size=args.chunk_size,
            item_chunk_size=args.chunk_size))
        result['users'] = users.numel()
        result['all_users_seconds'] = seconds * num_users / users.numel()
    else:
        raise ValueError(f'unknown stage {stage!r}')
    result.update(seconds=seconds, peak_mb=peak_mb(), base_mb=base)
    results[stage] = result
    return results


def measure(scale: float, args, deadline: float) -> Dict[str, Dict]:
    r"""Builds the graph of :obj:`scale` and runs every stage in a
    subprocess; stages past the :obj:`deadline` are skipped."""
    num_users, num_items, num_edges = (round(scale * v)
                                       for v in GOWALLA.values())
    seconds, index = timed(lambda: power_law_bipartite(
        num_users, num_items, num_edges, seed=args.seed))
    degree = torch.bincount(index[1], minlength=num_items)
    print(f'[{scale:g}x] {num_users:,} users, {num_items:,} items, '
          f'{num_edges:,} interactions (max item degree {int(degree.max())}'
          f', {int((degree == 0).sum())} items unseen); generated in '
          f'{seconds:.1f} s', flush=True)
    workdir = tempfile.mkdtemp(prefix=f'bench_scale_{scale:g}x_',
                               dir=args.workdir)
    torch.save({'index': index, 'num_users': num_users,
                'num_items': num_items}, os.path.join(workdir, 'graph.pt'))
    results = {'num_users': num_users, 'num_items': num_items,
               'num_edges': num_edges}
    try:
        for stage in PROCESSES:
            left = deadline - time.time()
            if left < 5:
                print(f'[{scale:g}x] {stage}: skipped (time budget spent)')
                continue
            cmd = [sys.executable, __file__, '--stage', stage, '--workdir',
                   workdir, '--threads', str(args.threads), '--chunk-size',
                   str(args.chunk_size), '--retrieval-users',
                   str(args.retrieval_users), '--seed', str(args.seed)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=left, env=CHILD_ENV)
            except subprocess.TimeoutExpired:
                print(f'[{scale:g}x] {stage}: stopped at the time budget')
                continue
            if proc.returncode != 0:
                print(f'[{scale:g}x] {stage} failed:\n{proc.stderr[-2000:]}')
                continue
            measured = json.loads(proc.stdout.strip().splitlines()[-1])
            results.update(measured)
            print(f'[{scale:g}x] {measured}', flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def table(scales: List[float], runs: List[Dict]) -> str:
    first, last = runs[0], runs[-1]
    edge_ratio = last['num_edges'] / first['num_edges']
    def table_mb(run, of):  # Size of a float32 embedding table.
        rows = run['num_items'] + (run['num_users'] if of == 'nodes' else 0)
        return rows * CHANNELS * 4 / 2**20

    head = ['stage'] + [
        f'{s:g}x: s / peak MB / +MB (tables)' for s in scales
    ]
    if len(runs) > 1:
        head += [f'time {scales[-1]:g}x/{scales[0]:g}x',
                 f'+MB {scales[-1]:g}x/{scales[0]:g}x']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]

    def growth(res):  # Peak over the resident memory before the work.
        return res['peak_mb'] - res['base_mb']

    def row(name, cells, ratios):
        return '| ' + ' | '.join([name] + cells + ratios) + ' |'

    for stage, name, of in STAGES:
        cells = []
        for run in runs:
            res = run.get(stage)
            extra = res and growth(res)
            cells.append('—' if res is None else
                         f"{res['seconds']:.2f} / {res['peak_mb']:.0f} / "
                         f"+{extra:.0f} ({extra / table_mb(run, of):.1f})")
        ratios = []
        if len(runs) > 1:
            a, b = first.get(stage), last.get(stage)
            ratios = ['—', '—'] if a is None or b is None else [
                f"{b['seconds'] / a['seconds']:.1f}",
                f'{growth(b) / max(growth(a), 1):.1f}'
            ]
        if stage == 'retrieval':
            name += f" ({first.get(stage, {}).get('users', '?')} users)"
        lines.append(row(name, cells, ratios))
    # The extrapolation to all users (time only):
    cells = [('—' if 'retrieval' not in run else
              f"{run['retrieval']['all_users_seconds']:.0f} (extrapolated)")
             for run in runs]
    ratios = []
    if len(runs) > 1:
        a, b = first.get('retrieval'), last.get('retrieval')
        ratios = ['—' if a is None or b is None else
                  f"{b['all_users_seconds'] / a['all_users_seconds']:.1f}",
                  '']
    lines.append(row('retrieval top-20, all users', cells, ratios))
    sizes = ' / '.join(f"{r['num_edges']:,}" for r in runs)
    lines.append('')
    lines.append(f'interactions: {sizes} (ratio {edge_ratio:.1f}); '
                 f'tables (64-d float32), all nodes: ' + ' / '.join(
                     f"{table_mb(r, 'nodes'):.0f} MB" for r in runs) +
                 ', items: ' + ' / '.join(f"{table_mb(r, 'items'):.0f} MB"
                                          for r in runs))
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    threads = cli.set_threads(args.threads)

    if args.stage:  # Child process: one stage, one JSON line.
        graph = torch.load(os.path.join(args.workdir, 'graph.pt'))
        # Page in the code and warm the allocator on a tiny graph first, so
        # that the measured peak grows with the data only.
        tiny = dict(index=power_law_bipartite(200, 300, 3000),
                    num_users=200, num_items=300)
        tiny_args = argparse.Namespace(**{**vars(args), 'chunk_size': 64,
                                          'retrieval_users': 50})
        with tempfile.TemporaryDirectory() as tiny_dir:
            for stage in WARM_UP.get(args.stage, (args.stage, )):
                run_stage(stage, tiny_args, tiny, tiny_dir)
        print(json.dumps(run_stage(args.stage, args, graph, args.workdir)))
        return
    deadline = time.time() + args.budget
    scales = [float(s) for s in args.scales.split(',')]
    load = os.getloadavg()
    print(f'torch {torch.__version__}, {threads} thread(s), '
          f'{os.cpu_count()} CPUs, load average {load[0]:.2f} '
          f'{load[1]:.2f} {load[2]:.2f}', flush=True)
    runs = [measure(scale, args, deadline) for scale in scales]
    print()
    print(table(scales, runs))
    load = os.getloadavg()
    print(f'\nload average at the end: {load[0]:.2f} {load[1]:.2f} '
          f'{load[2]:.2f}')


if __name__ == '__main__':
    main()
