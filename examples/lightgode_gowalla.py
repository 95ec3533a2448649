r"""LightGODE on Gowalla (the LightGCN split): train MF with the
alignment + uniformity loss (no graph), propagate once with the graph ODE,
report test Recall@20 / NDCG@20, then sweep the ODE time t on the
validation set in one solve and report the best t.

    python examples/lightgode_gowalla.py --raw-dir ../shared/data/gowalla

``--raw-dir`` points at already-downloaded files (train.txt, test.txt); without
it, files missing from ``<root>/raw`` are downloaded.

The same script trains data-parallel on N processes (CPU, gloo):

    torchrun --nproc_per_node=N examples/lightgode_gowalla.py --raw-dir ...

``--batch-size`` is the global batch (each process takes 1/N of it), so the
result matches a single-process run; only rank 0 prints, writes the
checkpoint and evaluates.
"""
import argparse
import json
import resource
import sys

import torch

from pyg_lightgode.datasets import load_dataset
from pyg_lightgode.metrics import evaluate_ranking
from pyg_lightgode.nn.models import LightGODE
from pyg_lightgode.training import seed_everything
from pyg_lightgode.utils import write_json
from pyg_lightgode.training.distributed import (
    destroy_distributed,
    init_distributed,
    is_main_process,
    main_process_first,
)
from pyg_lightgode.training.recipes import (
    LIGHTGODE_SETTINGS,
    sweep_propagation,
    train_lightgode,
)

# Tuned settings (LIGHTGODE_SETTINGS; the official recipe is gamma 10,
# batch 256, lr 1e-3, dense Adam: SPEC 1.1). Measured in BENCHMARKS.md
# section 2.
GOWALLA = dict(dataset='gowalla', root='data', epochs=300, val_ratio=0.1,
               **LIGHTGODE_SETTINGS['gowalla'])


def parse_args(defaults, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add = parser.add_argument
    add('--dataset', default=defaults['dataset'])
    add('--root', default=defaults['root'], help='dataset root folder')
    add('--raw-dir', default=None,
        help='folder with already-downloaded raw files to use')
    add('--epochs', type=int, default=defaults['epochs'])
    add('--batch-size', type=int, default=defaults['batch_size'],
        help='global batch: split across processes under torchrun')
    add('--lr', type=float, default=defaults['lr'])
    add('--weight-decay', type=float, default=defaults.get('weight_decay', 0))
    add('--dim', type=int, default=64)
    add('--gamma', type=float, default=defaults['gamma'])
    add('--t', type=float, default=defaults['t'],
        help='ODE end time used for the reported test numbers')
    add('--method', default='euler',
        help="ODE solver: 'euler' without --step-size is the official one "
        "step; 'exact', 'rk4', 'dopri5', ... solve accurately")
    add('--step-size', type=float, default=None)
    add('--sparse', action=argparse.BooleanOptionalAction,
        default=defaults.get('sparse', False),
        help='sparse embedding gradients with (lazy) SparseAdam; '
        '--no-sparse for dense Adam')
    add('--patience', type=int, default=10)
    add('--val-ratio', type=float, default=defaults['val_ratio'],
        help='per-user share of training pairs held out for validation')
    add('--seed', type=int, default=2020)
    add('--checkpoint', default=None,
        help='checkpoint path; an existing one is resumed')
    add('--sweep-t', default='0,0.5,1,1.5,2,2.5,3,4,5,7,10',
        help='comma-separated ODE times to sweep on validation')
    add('--sweep-methods', default=None,
        help="comma-separated solvers to sweep t with (default: --method), "
        "e.g. 'euler,exact'")
    add('--layers', type=int, default=4,
        help='also report 0..L discrete LightGCN-style layers')
    add('--plot', default=None, help='save a PNG of the sweep (matplotlib)')
    add('--json', default=None, help='write the results as JSON')
    add('--quiet', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


def load(args):
    options = {}
    if args.dataset == 'gowalla':
        options['val_ratio'] = args.val_ratio
    return load_dataset(args.dataset, args.root, raw_dir=args.raw_dir,
                        seed=args.seed, **options)


def test_metrics(model, split, t, ks=(20, )):
    with torch.no_grad():
        users, items = model.get_embedding(split.train_index, t=t)
    return evaluate_ranking(users, items, split.test_index,
                            exclude=split.known_interactions('test'),
                            ks=ks, metrics=('recall', 'ndcg'))


def plot_sweep(rows, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed; skipping --plot')
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (('t', axes[0]), ('layers', axes[1])):
        sel = [r for r in rows if key in r]
        if not sel:
            continue
        xs = [r[key] for r in sel]
        axis.plot(xs, [r['ndcg@20'] for r in sel], 'o-', label='NDCG@20')
        axis.plot(xs, [r['recall@20'] for r in sel], 's-', label='Recall@20')
        twin = axis.twinx()
        twin.plot(xs, [r['discrepancy'] for r in sel], 'k--',
                  label='discrepancy')
        twin.set_ylabel('embedding discrepancy')
        axis.set_xlabel('ODE time t' if key == 't' else 'discrete layers')
        axis.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f'saved {path}')


def main(defaults=GOWALLA, argv=None):
    args = parse_args(defaults, argv)
    # A process group only under torchrun with WORLD_SIZE > 1; the recipes
    # train on CPU, hence gloo.
    init_distributed(device='cpu')
    try:
        return run(args)
    finally:
        destroy_distributed()


def run(args):
    seed_everything(args.seed)
    with main_process_first():  # Rank 0 processes the dataset files first.
        split = load(args)
    main = is_main_process()
    if main:
        print(f'{args.dataset}: {split.stats()}')
    model = LightGODE(split.num_users, split.num_items, args.dim, t=args.t,
                      gamma=args.gamma, method=args.method,
                      step_size=args.step_size, sparse=args.sparse)
    result = train_lightgode(
        model, split, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, patience=args.patience,
        seed=args.seed, checkpoint=args.checkpoint, progress=not args.quiet,
        log=lambda r: print(json.dumps(r), flush=True))
    if not main:
        return None  # Replicas are identical; rank 0 evaluates and reports.
    print(f'best epoch {result.best_epoch} (val NDCG@20 '
          f'{result.best_score:.4f}), {result.seconds_per_epoch:.1f} s/epoch')

    report = {'args': vars(args), 'best_epoch': result.best_epoch,
              'seconds_per_epoch': result.seconds_per_epoch}
    report['test'] = test_metrics(model, split, args.t)
    report['test_no_propagation'] = test_metrics(model, split, 0.0)
    print(f"test (t={args.t}, {args.method}): {report['test']}")
    print(f"test without propagation: {report['test_no_propagation']}")

    times = [float(x) for x in args.sweep_t.split(',') if x.strip()]
    rows = []
    for method in (args.sweep_methods or args.method).split(','):
        model.conv.method = method
        rows += sweep_propagation(model, split, times=times or None,
                                  num_layers=0, part='val')
    model.conv.method = args.method
    if args.layers:
        rows += sweep_propagation(model, split, num_layers=args.layers,
                                  part='val')
    for row in rows:
        print(json.dumps(row))
    ode = [r for r in rows if 't' in r]
    if ode:
        best = max(ode, key=lambda r: r['ndcg@20'])
        method = best['propagation'][len('ode ('):-1]
        report['best_t'], report['best_method'] = best['t'], method
        model.conv.method = method
        report['test_at_best_t'] = test_metrics(model, split, best['t'])
        model.conv.method = args.method
        print(f"best on validation: t={best['t']} ({method}) -> test "
              f"{report['test_at_best_t']}")
    report['sweep'] = rows
    # Peak resident memory of the whole pipeline: load, train, propagate, rank.
    report['peak_mib'] = resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {report['peak_mib']:.0f} MiB")
    if args.plot:
        plot_sweep(rows, args.plot)
    if args.json:
        write_json(report, args.json)
    return report


if __name__ == '__main__':
    main(argv=sys.argv[1:])
