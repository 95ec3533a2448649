r"""One prepared check for a lent GPU: correctness on the device and timings.

(a) **Device equals CPU.** Every layer and model runs on small seeded
inputs on CPU and on :obj:`--device`; the largest absolute difference must
stay within ``ATOL + RTOL * max|cpu|`` (float32, TF32 off:
``ATOL = 1e-4``, ``RTOL = 1e-4``; the scores of the filters are compared,
and their randomized SVDs draw from the device's generator, so a mismatch
there may be the approximation rather than a bug: see its size). A model
that cannot run on the device records its error instead of stopping the
run.

(b) **Timings on Gowalla** (or the synthetic graph), each on the device and
on CPU in the same run: one LightGODE training epoch
(:func:`~pyg_lightgode.apps.training.recipes.train_lightgode`, ``epochs=1``,
``LIGHTGODE_SETTINGS['gowalla']``, its validation included), one
propagation (one Euler step of :class:`LightGODEConv`), GF-CF fit + scores
of all users, BSPM fit + scores of all users, and the full evaluation
(:class:`RankingEvaluator`, all users, all items, on propagated
embeddings). With ``--quick`` the CPU peers of the per-user work (scoring,
evaluation, the training epoch) run on the first ``--cpu-users`` users and
are scaled to all users (marked ``extrapolated``).

(c) Prints a markdown table and writes JSON (``--json``).

Usage::

    python benchmarks/gpu_check.py --raw-dir ../shared/data/gowalla \
        --device cuda --quick --json out.json
    python benchmarks/gpu_check.py --synthetic --device cpu --quick  # tiny

``--max-users N`` keeps the first N users (and the items they trained on).
"""
import json
import os
import os.path as osp
import platform
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from pyg_lightgode.apps import cli  # noqa: E402  (standard library only)


def build_parser():
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    add('--raw-dir', default=None,
        help='folder with the Gowalla raw files (or --synthetic)')
    add('--root', default=None,
        help='dataset cache (default: a temporary folder)')
    add('--synthetic', action='store_true',
        help='a synthetic graph instead of Gowalla')
    add('--device', default='cuda', help='the device checked against CPU')
    add('--json', default=None, help='also write the results to this file')
    add('--quick', action='store_true',
        help='CPU peers of per-user work on --cpu-users users')
    add('--cpu-users', type=int, default=2048,
        help='users of the CPU peers with --quick (scaled to all users)')
    add('--max-users', type=int, default=None,
        help='keep only the first N users (default: all)')
    add('--reps', type=int, default=3, help='timed repetitions (best counts)')
    add('--skip-timings', action='store_true',
        help='only the device-equals-CPU checks')
    # The lent GPU machines have their cores to themselves: the CPU peers
    # use all of them unless told otherwise.
    cli.add_threads_argument(parser, default=0)
    return parser


if __name__ == '__main__':  # --help and bad options: before torch loads.
    build_parser().parse_args()

import torch  # noqa: E402

from pyg_lightgode.data import BipartiteSplit  # noqa: E402

ATOL, RTOL = 1e-4, 1e-4


# --- helpers --------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable, device: torch.device, reps: int = 1) -> float:
    r"""Best wall time of :obj:`reps` calls of :obj:`fn` (after one
    warm-up call when :obj:`reps > 1`), synchronised with the device."""
    if reps > 1:
        fn()
    best = float('inf')
    for _ in range(reps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to(v, device) for k, v in value.items()}
    return value


def max_diff(a, b) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape != b.shape:
        raise ValueError(f'shapes differ: {list(a.shape)} vs {list(b.shape)}')
    if a.numel() == 0:
        return 0.0
    return float((a - b).abs().max())


def synthetic_split(num_users: int = 300, num_items: int = 200,
                    per_user: int = 12, seed: int = 0) -> BipartiteSplit:
    r"""Users with :obj:`per_user` distinct items each, drawn from a
    popularity skew; the last two of each user are the test part."""
    gen = torch.Generator().manual_seed(seed)
    pop = torch.linspace(2.0, 0.2, num_items)
    items = torch.multinomial(pop.expand(num_users, -1), per_user,
                              replacement=False, generator=gen)
    users = torch.arange(num_users).view(-1, 1).expand_as(items)
    train = torch.stack([users[:, 2:].reshape(-1), items[:, 2:].reshape(-1)])
    test = torch.stack([users[:, :2].reshape(-1), items[:, :2].reshape(-1)])
    return BipartiteSplit(num_users, num_items, train, test)


def first_users(split: BipartiteSplit, max_users: int) -> BipartiteSplit:
    r"""The first :obj:`max_users` users and the items they trained on
    (renumbered); test pairs of other items are dropped."""
    if max_users >= split.num_users:
        return split
    train = split.train_index[:, split.train_index[0] < max_users]
    items = torch.unique(train[1])
    remap = torch.full((split.num_items, ), -1, dtype=torch.long)
    remap[items] = torch.arange(items.numel())
    test = split.test_index[:, split.test_index[0] < max_users]
    test = test[:, remap[test[1]] >= 0]
    return BipartiteSplit(max_users, items.numel(),
                          torch.stack([train[0], remap[train[1]]]),
                          torch.stack([test[0], remap[test[1]]]))


# --- (a) device equals CPU ------------------------------------------------


def equality_cases(split: BipartiteSplit) -> Dict[str, Callable]:
    r"""Name -> :obj:`fn(device) -> Tensor`; every case builds its module
    from a fixed seed, so the CPU and device runs hold equal weights."""
    from pyg_lightgode.nn.conv import LightGODEConv, PinSAGEConv
    from pyg_lightgode.nn.models import (
        BSPM,
        GFCF,
        ChebyCF,
        ItemKNN,
        LightGODE,
        PinSage,
        TurboCF,
        UserKNN,
    )
    from pyg_lightgode.sampler.pinsage_sampler import hop_subgraph

    U, I = split.num_users, split.num_items
    N = U + I
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, 16, generator=gen)
    edge_index = split.edge_index()
    # A top-T style neighbourhood for PinSage: 4 weighted neighbours each.
    nbr_dst = torch.arange(I).repeat_interleave(4)
    nbr_src = torch.randint(0, I, (nbr_dst.numel(), ), generator=gen)
    nbr_index = torch.stack([nbr_src, nbr_dst])
    nbr_weight = torch.randint(1, 9, (nbr_dst.numel(), ), generator=gen)
    nbr_weight = nbr_weight.float()
    item_x = torch.randn(I, 8, generator=gen)
    users = torch.arange(min(U, 64))
    k = max(1, min(16, U - 1, I - 1))

    def lightgode_conv(method):
        def run(device):
            conv = LightGODEConv(t=1.5, method=method,
                                 step_size=None if method == 'exact' else
                                 0.5).to(device)
            return conv(x.to(device), edge_index.to(device))
        return run

    def pinsage_conv(device):
        torch.manual_seed(1)
        conv = PinSAGEConv(8, 12, hidden_channels=10).to(device).eval()
        out = conv(item_x.to(device), nbr_index.to(device),
                   nbr_weight.to(device))
        return out

    def lightgode_embedding(device):
        torch.manual_seed(2)
        model = LightGODE(U, I, embedding_dim=16, t=1.0).to(device)
        return model.get_embedding(edge_index.to(device))

    def pinsage(device):
        torch.manual_seed(3)
        model = PinSage(num_nodes=I, in_channels=8, hidden_channels=12,
                        out_channels=6).to(device).eval()
        batch = hop_subgraph(nbr_index, nbr_weight,
                             torch.arange(0, I, max(1, I // 16)), 2, I)
        ei = torch.stack([batch.row, batch.col]).to(device)
        n_id = batch.node.to(device)
        with torch.no_grad():
            fwd = model(item_x.to(device)[n_id], ei,
                        batch.metadata[-1].to(device), n_id,
                        batch.num_sampled_nodes, batch.num_sampled_edges)
        full = model.inference(nbr_index.to(device), nbr_weight.to(device),
                               x=item_x.to(device))
        return torch.cat([fwd, full])

    def graph_filter(cls, **kwargs):
        def run(device):
            model = cls(U, I, **kwargs).to(device)
            model.fit(split.train_index.to(device))
            return model.score(users.to(device))
        return run

    return {
        'LightGODEConv euler': lightgode_conv('euler'),
        'LightGODEConv exact': lightgode_conv('exact'),
        'LightGODEConv rk4': lightgode_conv('rk4'),
        'PinSAGEConv': pinsage_conv,
        'LightGODE.get_embedding': lightgode_embedding,
        'PinSage forward+inference': pinsage,
        'GFCF fit+score': graph_filter(GFCF, k=k),
        'BSPM fit+score': graph_filter(BSPM, k=k),
        'ChebyCF fit+score': graph_filter(ChebyCF, k=k),
        'TurboCF fit+score': graph_filter(TurboCF),
        'UserKNN fit+score': graph_filter(UserKNN, k=20, power=4.0),
        'ItemKNN fit+score': graph_filter(ItemKNN, k=20, power=2.0),
    }


def check_equality(split: BipartiteSplit, device: torch.device) -> List[Dict]:
    rows = []
    for name, fn in equality_cases(split).items():
        row = dict(name=name, atol=ATOL, rtol=RTOL)
        try:
            expected = fn(torch.device('cpu'))
        except Exception as error:  # The CPU reference itself failed.
            row.update(ok=False, error=f'cpu: {type(error).__name__}: '
                       f'{error}'.splitlines()[0])
            rows.append(row)
            continue
        try:
            out = fn(device)
            diff = max_diff(out, expected)
            tol = ATOL + RTOL * float(expected.detach().abs().max())
            row.update(max_abs_diff=diff, tol=tol, ok=diff <= tol,
                       out_device=str(out.device))
        except Exception as error:
            row.update(ok=False, error=f'{type(error).__name__}: '
                       f'{error}'.splitlines()[0],
                       traceback=traceback.format_exc(limit=3))
        rows.append(row)
    return rows


# --- (b) timings ----------------------------------------------------------


class Clock:
    r"""Accumulates synchronised wall time of code blocks into
    :obj:`fixed` (independent of the number of users) or :obj:`scaled`
    (proportional to the users scored, or the pairs trained on)."""
    def __init__(self, device: torch.device):
        self.device, self.fixed, self.scaled = device, 0.0, 0.0

    def run(self, fn: Callable, scaled: bool = False):
        sync(self.device)
        start = time.perf_counter()
        out = fn()
        sync(self.device)
        seconds = time.perf_counter() - start
        if scaled:
            self.scaled += seconds
        else:
            self.fixed += seconds
        return out


def timing_cases(split: BipartiteSplit, reps: int) -> List[Dict]:
    r"""Each case: name and :obj:`fn(clock, users) -> scale`, which times
    its parts on :obj:`clock` (users: the first users to score/train on,
    :obj:`None` for all) and returns the factor that scales the
    :obj:`scaled` part to the whole data."""
    from pyg_lightgode.apps.training.recipes import (
        LIGHTGODE_SETTINGS,
        train_lightgode,
    )
    from pyg_lightgode.metrics import RankingEvaluator
    from pyg_lightgode.nn.conv import LightGODEConv
    from pyg_lightgode.nn.models import BSPM, GFCF, LightGODE

    settings = dict(LIGHTGODE_SETTINGS['gowalla'])
    model_args = {k: settings.pop(k) for k in ('t', 'gamma', 'sparse')}
    U, I = split.num_users, split.num_items
    device_of = {}

    def user_ids(clock, users):
        count = U if users is None else min(users, U)
        return torch.arange(count, device=clock.device), U / count

    def epoch(clock, users):
        part = split if users is None else first_users(split, users)
        torch.manual_seed(0)
        model = LightGODE(part.num_users, part.num_items,
                          **model_args).to(clock.device)
        clock.run(lambda: train_lightgode(model, part, epochs=1,
                                          progress=False, **settings),
                  scaled=True)
        return split.train_index.size(1) / part.train_index.size(1)

    def propagation(clock, users):
        adj_t = split.adj_t().to(clock.device)
        x = torch.randn(U + I, 64, device=clock.device)
        conv = LightGODEConv(t=1.0, method='euler')
        conv(x, adj_t)  # warm-up
        clock.fixed = min(timed(lambda: conv(x, adj_t), clock.device)
                          for _ in range(reps))
        return 1.0

    def score_all(model, clock, users):
        ids, scale = user_ids(clock, users)
        for start in range(0, ids.numel(), 1024):
            clock.run(lambda: model.score(ids[start:start + 1024]),
                      scaled=True)
        return scale

    def graph_filter(cls, default_k):
        k = max(1, min(default_k, U - 1, I - 1))

        def run(clock, users):
            model = cls(U, I, k=k).to(clock.device)
            index = split.train_index.to(clock.device)
            clock.run(lambda: model.fit(index))
            return score_all(model, clock, users)
        return run

    def evaluation(clock, users):
        device = clock.device
        if device not in device_of:
            torch.manual_seed(0)
            model = LightGODE(U, I, t=model_args['t']).to(device)
            with torch.no_grad():
                device_of[device] = model.get_embedding(
                    split.adj_t().to(device))
        emb = device_of[device]
        sub, scale = user_ids(clock, users)
        evaluator = clock.run(lambda: RankingEvaluator(
            split.test_index.to(device),
            exclude_links=split.train_index.to(device), num_users=U,
            num_items=I, ks=(20, ), users=None if users is None else sub))
        clock.run(lambda: evaluator(emb[:U], emb[U:]), scaled=True)
        return scale

    return [
        dict(name='LightGODE epoch (train_lightgode, 1 epoch)', fn=epoch),
        dict(name='propagation (LightGODEConv, 1 Euler step)',
             fn=propagation, whole=True),
        dict(name='GF-CF fit + score all users',
             fn=graph_filter(GFCF, 256)),
        dict(name='BSPM fit + score all users', fn=graph_filter(BSPM, 448)),
        dict(name='full evaluation (RankingEvaluator, all items)',
             fn=evaluation),
    ]


def run_timings(split: BipartiteSplit, device: torch.device, quick: bool,
                cpu_users: int, reps: int) -> List[Dict]:
    cpu = torch.device('cpu')
    rows = []
    for case in timing_cases(split, reps):
        row = dict(name=case['name'])
        for where, dev in (('device', device), ('cpu', cpu)):
            subset = None
            if where == 'cpu' and quick and not case.get('whole') and \
                    cpu_users < split.num_users:
                subset = cpu_users
            clock = Clock(dev)
            try:
                scale = case['fn'](clock, subset)
                row[f'{where}_s'] = clock.fixed + clock.scaled * scale
                if subset is not None:
                    row.update(cpu_users=subset, cpu_extrapolated=True,
                               cpu_fixed_s=clock.fixed,
                               cpu_scaled_measured_s=clock.scaled,
                               cpu_scale=scale)
            except Exception as error:
                row[f'{where}_error'] = f'{type(error).__name__}: ' \
                    f'{error}'.splitlines()[0]
        if 'device_s' in row and 'cpu_s' in row and device != cpu:
            row['cpu_over_device'] = row['cpu_s'] / max(row['device_s'],
                                                        1e-9)
        rows.append(row)
        print(f'  timed {row["name"]}', flush=True)
    return rows


# --- report ---------------------------------------------------------------


def markdown(result: Dict) -> str:
    lines = [f"## gpu_check on {result['device_name']} ({result['data']})",
             '', '| check | max abs diff | tolerance | result |',
             '|---|---|---|---|']
    for row in result['equality']:
        if 'error' in row:
            lines.append(f"| {row['name']} | - | - | error: "
                         f"{row['error'][:80]} |")
        else:
            lines.append(f"| {row['name']} | {row['max_abs_diff']:.2e} | "
                         f"{row['tol']:.2e} | "
                         f"{'ok' if row['ok'] else 'MISMATCH'} |")
    lines += ['', f"| timing | {result['device']} (s) | cpu (s) | "
              f"cpu / {result['device']} |", '|---|---|---|---|']
    for row in result['timings']:
        dev = f"{row['device_s']:.3f}" if 'device_s' in row else \
            f"error: {row.get('device_error', '')[:60]}"
        cpu = f"{row['cpu_s']:.3f}" if 'cpu_s' in row else \
            f"error: {row.get('cpu_error', '')[:60]}"
        if row.get('cpu_extrapolated'):
            cpu += f" (from {row['cpu_users']} users)"
        ratio = f"{row['cpu_over_device']:.1f}x" if 'cpu_over_device' in \
            row else '-'
        lines.append(f"| {row['name']} | {dev} | {cpu} | {ratio} |")
    lines += ['', f"total {result['total_s']:.1f} s, CPU threads "
              f"{result['cpu_threads']}, torch {result['torch']}"]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    cli.set_threads(args.threads)

    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            parser.error('--device cuda but CUDA is not available')
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = platform.processor() or platform.machine()

    if args.synthetic or args.raw_dir is None:
        if not args.synthetic:
            parser.error('pass --raw-dir (Gowalla) or --synthetic')
        split, data = synthetic_split(), 'synthetic'
    else:
        from pyg_lightgode.datasets import load_dataset
        root = args.root or osp.join(tempfile.gettempdir(),
                                     'pyg_lightgode_gpu_check')
        split, data = load_dataset('gowalla', root, raw_dir=args.raw_dir), \
            'gowalla'
    if args.max_users is not None:
        split = first_users(split, args.max_users)
        data += f', first {args.max_users} users'
    data += f': {split.num_users} users, {split.num_items} items, ' \
        f'{split.train_index.size(1)} training pairs'
    print(f'data: {data}; device {device} ({device_name})', flush=True)

    small = first_users(split, min(split.num_users, 300))
    print('(a) device vs cpu', flush=True)
    equality = check_equality(small, device)
    timings = []
    if not args.skip_timings:
        print('(b) timings', flush=True)
        timings = run_timings(split, device, args.quick, args.cpu_users,
                              args.reps)
    result = dict(device=str(device), device_name=device_name, data=data,
                  quick=args.quick, cpu_threads=torch.get_num_threads(),
                  torch=torch.__version__, atol=ATOL, rtol=RTOL,
                  equality=equality, timings=timings,
                  total_s=time.perf_counter() - start,
                  all_equal=all(r.get('ok', False) for r in equality))
    print(markdown(result), flush=True)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
