r"""Every stage after training past one process, against one process.

Runs, on W processes over :mod:`torch.distributed` (gloo on CPU, NCCL on
GPUs) and once in a single process on the same data, the stages

* ``propagation``: LightGODE, one Euler step to t = 3 (the official form),
  over the rows of the normalised adjacency split across ranks;
* ``filter``: GF-CF's ideal basis (block Krylov, products over the ranks'
  users, all-reduced) and the scores of the first ``--filter-users`` users
  of every rank;
* ``pinsage_inference``: a 2-layer PinSage (random weights, the embedding
  table as node features) layer by layer over the bipartite graph, each
  node on its owner;
* ``topk``: top-20 of every user over the propagated embeddings, items
  sharded across ranks, training items excluded;
* ``training``: ``--train-steps`` Adam steps of LightGODE's loss on global
  batches with row-sharded embedding tables (all-to-all lookups) against
  the replicated tables of one process;

and writes ``{"world_size": W, "stages": {STAGE: {"max_abs_diff" (topk:
"same_topk_fraction"), "seconds", "peak_mib_per_rank",
"single_process_peak_mib", ...}}}``. Every difference is against the
single process of the same run. Peaks are the resident high-water mark
(``VmHWM``, what ``ru_maxrss`` reports, without what a forked child
inherits) of every process, reset before each stage; ``*_above_base_mib``
subtracts the resident memory after the imports (the interpreter, torch,
PyG), which is what the graph and the tables take. ``comm`` is what this
package's collectives moved per rank (bytes, seconds).

No rank ever holds all interactions: they are written once to
``<workdir>/index.bin`` and every rank reads it in chunks; embedding rows
are drawn per block of 4096 rows from seeded generators, so every process
draws only its rows and all draw the same values.

Usage (spawns the W ranks itself, fresh interpreters, when not under
torchrun):
    python benchmarks/bench_distributed.py --world-size 2 \\
        --dataset gowalla --out /tmp/dist/gowalla_w2.json
    torchrun --nproc-per-node 2 benchmarks/bench_distributed.py \\
        --dataset movielens100k --out ml.json
Multi-node: torchrun --nnodes 2 --node-rank {0,1} --nproc-per-node G
--master-addr HOST --master-port 29500 benchmarks/bench_distributed.py
... (``--workdir`` on a shared file system, or the same data on each node).
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

# The package of this checkout, also when it is not installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

STAGES = ('propagation', 'filter', 'pinsage_inference', 'topk', 'training')
ROWS_PER_SEED = 4096


def parse_args(argv=None):
    from pyg_lightgode.apps import cli
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    add('--world-size', type=int, default=2,
        help='processes to spawn when not under torchrun')
    add('--dataset', default='movielens100k',
        help="movielens100k, gowalla or synthetic:SCALE (SCALE x Gowalla's "
        'users, items and edges, power-law degrees)')
    add('--root', default='data', help='datasets folder')
    add('--raw-dir', default=None,
        help='raw files (default: ../shared/data/<name> when it exists)')
    add('--stages', default=','.join(STAGES),
        help='comma-separated stages to run')
    add('--dim', type=int, default=64, help='embedding size')
    add('--filter-k', type=int, default=256,
        help="the filters' spectral rank")
    add('--filter-users', type=int, default=256,
        help='users scored per rank by the filter stage')
    add('--topk-batch', type=int, default=1024,
        help='users per top-k batch')
    add('--train-steps', type=int, default=5,
        help='training steps of the training stage')
    add('--train-batch', type=int, default=1024,
        help='pairs per training step')
    cli.add_threads_argument(parser)
    add('--seed', type=int, default=0, help='random seed')
    add('--workdir', default=None,
        help='data and per-process results (default: a temporary folder)')
    add('--out', default=None, help='JSON file to write')
    add('--memory-cap-mib', type=float, default=None,
        help='address-space limit (RLIMIT_AS) of every rank; one process is '
        'then also run under it, and whether it finishes is reported')
    add('--role', default=None,
        choices=['prepare', 'single', 'single-capped', 'rank'],
        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------- memory
def _status_mib(field: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    return float('nan')


def reset_peak() -> float:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass
    return _status_mib('VmRSS')


def peak_mib() -> float:
    return _status_mib('VmHWM')


# ------------------------------------------------------------------ data
def prepare(args) -> None:
    r"""Writes the training interactions to ``index.bin`` (int64 user, item
    pairs) and their sizes to ``meta.json``."""
    import numpy as np
    import torch
    name = args.dataset
    if name.startswith('synthetic:'):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_scale import GOWALLA, power_law_bipartite
        scale = float(name.split(':', 1)[1])
        num_users = int(GOWALLA['num_users'] * scale)
        num_items = int(GOWALLA['num_items'] * scale)
        index = power_law_bipartite(num_users, num_items,
                                    int(GOWALLA['num_edges'] * scale),
                                    seed=args.seed)
    else:
        from pyg_lightgode.datasets import load_dataset
        raw = args.raw_dir
        if raw is None:
            here = os.path.dirname(os.path.abspath(__file__))
            folder = {'gowalla': 'gowalla', 'movielens100k': 'ml-100k'}.get(
                name, name)
            candidate = os.path.join(here, '..', '..', 'shared', 'data',
                                     folder)
            raw = candidate if os.path.isdir(candidate) else None
        split = load_dataset(name, args.root, raw_dir=raw)
        index = split.train_index
        num_users, num_items = split.num_users, split.num_items
    index = torch.unique(index, dim=1)
    index.t().contiguous().numpy().astype(np.int64).tofile(
        os.path.join(args.workdir, 'index.bin'))
    from pyg_lightgode.data.io import write_json
    write_json({'num_users': num_users, 'num_items': num_items,
                'num_edges': index.size(1), 'dataset': name},
               os.path.join(args.workdir, 'meta.json'))


def same_data(args) -> bool:
    r"""Whether ``<workdir>`` already holds this dataset's interactions."""
    path = os.path.join(args.workdir, 'meta.json')
    if not os.path.exists(path) or not os.path.exists(
            os.path.join(args.workdir, 'index.bin')):
        return False
    with open(path) as f:
        return json.load(f).get('dataset') == args.dataset


def meta(args):
    with open(os.path.join(args.workdir, 'meta.json')) as f:
        return json.load(f)


def index_chunks(args, chunk: int = 1 << 17):
    r"""The interactions, read from disk in chunks of :obj:`chunk`."""
    import numpy as np
    import torch
    path = os.path.join(args.workdir, 'index.bin')
    total = os.path.getsize(path) // 16

    def chunks():
        for start in range(0, total, chunk):
            pairs = np.fromfile(path, dtype=np.int64,
                                count=2 * min(chunk, total - start),
                                offset=16 * start)
            yield torch.from_numpy(pairs).view(-1, 2).t()

    return chunks


def seeded_rows(ids, dim: int, seed: int):
    r"""Rows :obj:`ids` of a table whose blocks of 4096 rows are drawn
    from generators seeded by (seed, block): every process can draw just
    its rows."""
    import torch
    out = torch.empty(ids.numel(), dim)
    block = ids // ROWS_PER_SEED
    for b in torch.unique(block).tolist():
        gen = torch.Generator().manual_seed(seed * 1_000_003 + b)
        rows = torch.randn(ROWS_PER_SEED, dim, generator=gen) * 0.1
        mask = block == b
        out[mask] = rows[ids[mask] - b * ROWS_PER_SEED]
    return out


# ---------------------------------------------------------------- stages
def pinsage_model(dim: int):
    import torch

    from pyg_lightgode.nn.models import PinSage
    torch.manual_seed(1)
    return PinSage(in_channels=dim, hidden_channels=dim, out_channels=dim,
                   num_layers=2).eval()


def run_single(args) -> dict:
    import torch

    from pyg_lightgode.apps.distributed import user_bounds
    from pyg_lightgode.data.bipartite import (
        bipartite_to_adj_t,
        bipartite_to_homogeneous,
    )
    from pyg_lightgode.data.io import atomic_save
    from pyg_lightgode.metrics.retrieval import exact_topk
    from pyg_lightgode.nn.conv import LightGODEConv
    from pyg_lightgode.nn.models import GFCF, LightGODE
    m = meta(args)
    U, I = m['num_users'], m['num_items']
    W = args.world_size
    stages = args.stages.split(',')
    base = reset_peak()
    out, results = {'base_mib': base}, {}

    def load_index():
        return torch.cat([c for c in index_chunks(args)()], dim=1)

    def measure(name, fn):
        reset_peak()
        begin = time.perf_counter()
        value = fn()
        out[name] = {'seconds': time.perf_counter() - begin,
                     'peak_mib': peak_mib()}
        return value

    if 'propagation' in stages or 'topk' in stages:
        def propagation():
            index = load_index()
            x = seeded_rows(torch.arange(U + I), args.dim, args.seed)
            adj = bipartite_to_adj_t(index, U, I)
            return LightGODEConv(t=3.0)(x, adj)
        emb = measure('propagation', propagation)
        results['propagation'] = emb
    if 'filter' in stages:
        def filter_stage():
            index = load_index()
            bounds = user_bounds(index, U, W)
            users = torch.cat([torch.arange(bounds[r], min(
                bounds[r] + args.filter_users, bounds[r + 1]))
                for r in range(W)])
            model = GFCF(U, I, k=args.filter_k).fit(index)
            return users, model.score(users)
        results['filter'] = measure('filter', filter_stage)
    if 'pinsage_inference' in stages:
        def pinsage():
            index = load_index()
            edge_index = bipartite_to_homogeneous(index, U, I)
            x = seeded_rows(torch.arange(U + I), args.dim, args.seed)
            return pinsage_model(args.dim).inference(edge_index, x=x)
        results['pinsage_inference'] = measure('pinsage_inference', pinsage)
    if 'topk' in stages:
        def topk():
            index = load_index()
            return exact_topk(emb[:U], emb[U:], 20, (index[0], index[1]))[0]
        results['topk'] = measure('topk', topk)
    if 'training' in stages:
        def training():
            index = load_index()
            model = LightGODE(U, I, args.dim, gamma=1.0)
            with torch.no_grad():
                model.user_embedding.weight.copy_(
                    seeded_rows(torch.arange(U), args.dim, args.seed + 1))
                model.item_embedding.weight.copy_(
                    seeded_rows(torch.arange(I), args.dim, args.seed + 2))
            optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
            for step in range(args.train_steps):
                batch = train_batch(index, args, step)
                optimizer.zero_grad()
                model.loss(batch[0], batch[1]).backward()
                optimizer.step()
            moved = float((model.user_embedding.weight.detach() - seeded_rows(
                torch.arange(U), args.dim, args.seed + 1)).abs().max())
            return (model.user_embedding.weight.detach(),
                    model.item_embedding.weight.detach(), moved)
        results['training'] = measure('training', training)
    out['vm_peak_mib'] = _status_mib('VmPeak')
    if args.role == 'single':
        atomic_save(results, os.path.join(args.workdir, 'single.pt'))
    return out


def train_batch(index, args, step: int):
    import torch
    gen = torch.Generator().manual_seed(args.seed * 7919 + step)
    pick = torch.randint(index.size(1), (args.train_batch, ), generator=gen)
    return index[:, pick]


def run_rank(args) -> dict:
    import torch

    from pyg_lightgode.apps.distributed import (
        DistributedGFCF,
        NodeSplit,
        ShardedEmbedding,
        local_interactions,
        partition_bipartite,
        pinsage_inference,
        score_users,
        sharded_recommendation_loss,
        sharded_topk,
    )
    from pyg_lightgode.apps.distributed.partition import (
        edge_balanced_bounds,
        reset_comm_stats,
    )
    from pyg_lightgode.apps.training.distributed import (
        destroy_distributed,
        init_distributed,
        shard,
    )
    from pyg_lightgode.data.io import atomic_save
    from pyg_lightgode.nn.conv import LightGODEConv
    init_distributed(device='cpu')
    import torch.distributed as dist
    rank, W = dist.get_rank(), dist.get_world_size()
    m = meta(args)
    U, I = m['num_users'], m['num_items']
    stages = args.stages.split(',')
    chunks = index_chunks(args)
    base = reset_peak()
    out, results = {'base_mib': base}, {}

    def measure(name, fn):
        dist.barrier()
        reset_peak()
        reset_comm_stats()
        begin = time.perf_counter()
        value = fn()
        dist.barrier()
        out[name] = {'seconds': time.perf_counter() - begin,
                     'peak_mib': peak_mib(), 'comm': reset_comm_stats()}
        return value

    if 'propagation' in stages or 'topk' in stages:
        def propagation():
            part = partition_bipartite(chunks, U, I)
            x = seeded_rows(part.nodes, args.dim, args.seed)
            emb = LightGODEConv(t=3.0, normalize=False)(x, part.adj,
                                                        partition=part)
            return part, emb
        part, emb = measure('propagation', propagation)
        results['propagation'] = (part.nodes, emb)
    if 'filter' in stages:
        def filter_stage():
            degree = torch.zeros(U, dtype=torch.long)
            for c in chunks():
                degree += torch.bincount(c[0], minlength=U)
            bounds = edge_balanced_bounds(degree, W)
            local = torch.cat([local_interactions(c, bounds, rank)
                               for c in chunks()], dim=1)
            n = min(args.filter_users, bounds[rank + 1] - bounds[rank])
            model = DistributedGFCF(bounds[rank + 1] - bounds[rank], I,
                                    k=args.filter_k).fit(local)
            scores = torch.cat([s for _, s in score_users(
                model, 256, torch.arange(n))])
            return torch.arange(bounds[rank], bounds[rank] + n), scores
        results['filter'] = measure('filter', filter_stage)
    if 'pinsage_inference' in stages:
        def pinsage():
            nbr = partition_bipartite(chunks, U, I, normalize=False)
            x = seeded_rows(nbr.nodes, args.dim, args.seed)
            return nbr.nodes, pinsage_inference(pinsage_model(args.dim),
                                                nbr, x)
        results['pinsage_inference'] = measure('pinsage_inference', pinsage)
    if 'topk' in stages:
        def topk():
            n_users = int((part.nodes < U).sum())
            row, col = part.entries()
            item_rows = row >= U  # This rank's items' (item, user) entries.
            links = torch.stack([col[item_rows], row[item_rows] - U])
            return part.nodes[:n_users], sharded_topk(
                emb[:n_users], part.nodes[:n_users], emb[n_users:],
                part.nodes[n_users:] - U, 20, U, exclude_links=links,
                batch_size=args.topk_batch)[0]
        results['topk'] = measure('topk', topk)
    part = emb = None  # noqa: F841 (frees the propagation's memory)
    if 'training' in stages:
        def training():
            degree = torch.zeros(U + I, dtype=torch.long)
            for c in chunks():
                degree[:U] += torch.bincount(c[0], minlength=U)
                degree[U:] += torch.bincount(c[1], minlength=I)
            users = NodeSplit.contiguous(edge_balanced_bounds(degree[:U], W))
            items = NodeSplit.contiguous(edge_balanced_bounds(degree[U:], W))
            user_table = ShardedEmbedding(users, seeded_rows(
                users.nodes(rank), args.dim, args.seed + 1))
            item_table = ShardedEmbedding(items, seeded_rows(
                items.nodes(rank), args.dim, args.seed + 2))
            optimizer = torch.optim.Adam([user_table.weight,
                                          item_table.weight], lr=0.01)
            # Every rank draws the same global batch indices; the pairs
            # are read from disk (no rank holds all interactions).
            for step in range(args.train_steps):
                batch = read_pairs(args, step)
                u, i = shard([batch[0], batch[1]], rank, W)
                optimizer.zero_grad()
                sharded_recommendation_loss(user_table, item_table, u, i,
                                            batch.size(1), 1.0).backward()
                optimizer.step()
            return (users.nodes(rank), user_table.weight.detach(),
                    items.nodes(rank), item_table.weight.detach())
        results['training'] = measure('training', training)
    out['vm_peak_mib'] = _status_mib('VmPeak')
    atomic_save(results, os.path.join(args.workdir, f'rank{rank}.pt'))
    from pyg_lightgode.data.io import write_json
    write_json(out, os.path.join(args.workdir, f'rank{rank}.json'))
    destroy_distributed()
    return out


def read_pairs(args, step: int):
    r"""The global batch of :func:`train_batch`, read pair by pair from
    ``index.bin`` (the same pairs, without the whole index)."""
    import numpy as np
    import torch
    path = os.path.join(args.workdir, 'index.bin')
    total = os.path.getsize(path) // 16
    gen = torch.Generator().manual_seed(args.seed * 7919 + step)
    pick = torch.randint(total, (args.train_batch, ), generator=gen)
    data = np.memmap(path, dtype=np.int64, mode='r', shape=(total, 2))
    pairs = torch.from_numpy(np.ascontiguousarray(data[pick.numpy()]))
    del data
    return pairs.t()


# --------------------------------------------------------------- compare
def compare(args, single: dict, ranks: list) -> dict:
    import torch
    ref = torch.load(os.path.join(args.workdir, 'single.pt'),
                     weights_only=True)
    parts = [torch.load(os.path.join(args.workdir, f'rank{r}.pt'),
                        weights_only=True) for r in range(len(ranks))]
    stages = {}
    for name in args.stages.split(','):
        entry = {
            'seconds': max(r[name]['seconds'] for r in ranks),
            'peak_mib_per_rank': [r[name]['peak_mib'] for r in ranks],
            'single_process_peak_mib': single[name]['peak_mib'],
            'peak_above_base_mib_per_rank': [
                r[name]['peak_mib'] - r['base_mib'] for r in ranks],
            'single_process_peak_above_base_mib':
                single[name]['peak_mib'] - single['base_mib'],
            'single_process_seconds': single[name]['seconds'],
            'comm_bytes_per_rank': [r[name]['comm']['bytes'] for r in ranks],
            'comm_seconds_per_rank': [r[name]['comm']['seconds']
                                      for r in ranks],
        }
        entry['peak_ratio'] = max(entry['peak_mib_per_rank']) / \
            entry['single_process_peak_mib']
        entry['peak_above_base_ratio'] = max(
            entry['peak_above_base_mib_per_rank']) / max(
                entry['single_process_peak_above_base_mib'], 1e-9)
        if name in ('propagation', 'pinsage_inference'):
            full = ref[name]
            diff = max(float((part[name][1] - full[part[name][0]]).abs().max())
                       for part in parts)
            entry['max_abs_diff'] = diff
        elif name == 'filter':
            users, scores = ref[name]
            got = torch.cat([p[name][0] for p in parts])
            if not torch.equal(got, users):
                raise RuntimeError('the filter stage scored other users in '
                                   'one process than on the ranks')
            got = torch.cat([p[name][1] for p in parts])
            entry['max_abs_diff'] = float((got - scores).abs().max())
            entry['max_abs_score'] = float(scores.abs().max())
        elif name == 'topk':
            full = ref[name]
            same = total = 0
            for part in parts:
                users, index = part[name]
                for a, b in zip(index.tolist(), full[users].tolist()):
                    same += set(a) == set(b)
                    total += 1
            entry['same_topk_fraction'] = same / total
        elif name == 'training':
            user_w, item_w, entry['max_abs_change'] = ref[name]
            entry['max_abs_diff'] = max(max(
                float((p[name][1] - user_w[p[name][0]]).abs().max()),
                float((p[name][3] - item_w[p[name][2]]).abs().max()))
                for p in parts)
        stages[name] = entry
    return stages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def child(args, role: str, env=None) -> list:
    cmd = [sys.executable, os.path.abspath(__file__), '--role', role,
           '--workdir', args.workdir, '--world-size', str(args.world_size)]
    for key in ('dataset', 'root', 'stages', 'dim', 'filter_k',
                'filter_users', 'topk_batch', 'train_steps', 'train_batch',
                'threads', 'seed'):
        cmd += ['--' + key.replace('_', '-'), str(getattr(args, key))]
    if args.raw_dir:
        cmd += ['--raw-dir', args.raw_dir]
    if args.memory_cap_mib:
        cmd += ['--memory-cap-mib', str(args.memory_cap_mib)]
    return cmd


def main(argv=None):
    args = parse_args(argv)
    args.threads = args.threads or os.cpu_count() or 1
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    # Freed blocks of 1 MiB or more go back to the system, so that the
    # resident memory follows the live tensors.
    os.environ.setdefault('MALLOC_MMAP_THRESHOLD_', str(2**20))
    under_torchrun = args.role is None and 'RANK' in os.environ and \
        'LOCAL_RANK' in os.environ
    if under_torchrun:
        args.world_size = int(os.environ['WORLD_SIZE'])
    if args.workdir is None:
        tag = args.dataset.replace(':', '_')
        args.workdir = f'/tmp/bench_distributed_{tag}_w{args.world_size}'
    os.makedirs(args.workdir, exist_ok=True)
    if args.role in ('single-capped', 'rank') and args.memory_cap_mib:
        import resource
        cap = int(args.memory_cap_mib * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if args.role == 'single-capped':  # Does one process fit the cap?
        from pyg_lightgode.data.io import write_json
        try:
            import torch
            torch.set_num_threads(args.threads)
            run_single(args)
            result = {'finished': True}
        except (MemoryError, RuntimeError) as error:
            result = {'finished': False, 'error': str(error)[:300]}
        write_json(result, os.path.join(args.workdir, 'single_capped.json'))
        return
    if args.role in ('single', 'rank', 'prepare'):
        import torch
        torch.set_num_threads(args.threads)
        result = {'prepare': prepare, 'single': run_single,
                  'rank': run_rank}[args.role](args)
        if args.role == 'single':
            from pyg_lightgode.data.io import write_json
            write_json(result, os.path.join(args.workdir, 'single.json'))
        return
    env = dict(os.environ)
    rank = int(os.environ.get('RANK', 0)) if under_torchrun else 0
    if args.memory_cap_mib:  # glibc's per-thread arenas reserve 64 MiB
        env.setdefault('MALLOC_ARENA_MAX', '2')  # of address space each.
    if rank == 0:
        if not same_data(args):
            subprocess.run(child(args, 'prepare'), check=True, env=env)
        subprocess.run(child(args, 'single'), check=True, env=env)
        if args.memory_cap_mib:
            capped = os.path.join(args.workdir, 'single_capped.json')
            if os.path.exists(capped):
                os.remove(capped)
            subprocess.run(child(args, 'single-capped'), env=env)
    if under_torchrun:  # Rank 0 prepared the data; every rank runs.
        import torch.distributed as dist
        dist.init_process_group('gloo')
        dist.barrier()
        dist.destroy_process_group()
        args.role = 'rank'
        import torch
        torch.set_num_threads(args.threads)
        run_rank(args)
        if rank != 0:
            return
    else:
        port = str(free_port())
        procs = []
        for r in range(args.world_size):
            penv = dict(env, RANK=str(r), LOCAL_RANK=str(r),
                        WORLD_SIZE=str(args.world_size),
                        MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
            procs.append(subprocess.Popen(child(args, 'rank'), env=penv))
        codes = [p.wait() for p in procs]
        if any(codes):
            raise SystemExit(f'a rank failed: exit codes {codes}')
    with open(os.path.join(args.workdir, 'single.json')) as f:
        single = json.load(f)
    ranks = []
    for r in range(args.world_size):
        with open(os.path.join(args.workdir, f'rank{r}.json')) as f:
            ranks.append(json.load(f))
    report = {'world_size': args.world_size, 'dataset': args.dataset,
              'threads': args.threads, 'stages': compare(args, single, ranks),
              'address_space_peak_mib_per_rank': [r.get('vm_peak_mib')
                                                  for r in ranks],
              'single_process_address_space_peak_mib': single.get(
                  'vm_peak_mib'),
              'load_average': os.getloadavg()}
    if args.memory_cap_mib:
        report['memory_cap_mib'] = args.memory_cap_mib
        capped = os.path.join(args.workdir, 'single_capped.json')
        if os.path.exists(capped):
            with open(capped) as f:
                report['single_process_under_cap'] = json.load(f)
        else:  # Killed without a word (e.g. a failed allocation in C).
            report['single_process_under_cap'] = {'finished': False,
                                                  'error': 'died'}
    text = json.dumps(report, indent=1)
    if args.out:
        from pyg_lightgode.data.io import write_json
        write_json(report, args.out)
    print(text)


if __name__ == '__main__':
    main()
