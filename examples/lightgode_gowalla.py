r"""LightGODE on Gowalla (the LightGCN split): train MF with the
alignment + uniformity loss (no graph), propagate once with the graph ODE,
report test Recall@20 / NDCG@20, then sweep the ODE time t on the
validation set in one solve and report the best t.

    python examples/lightgode_gowalla.py --raw-dir ../shared/data/gowalla

--raw-dir points at already-downloaded files (train.txt, test.txt); without
it, files missing from <root>/gowalla/raw are downloaded. The model and
optimiser settings not given on the command line are the ones tuned for
--dataset (LIGHTGODE_SETTINGS, measured in BENCHMARKS.md).

A checkpoint is written after every epoch (by default into
<root>/<dataset>/checkpoints/, named after the training settings): rerun
the same command after an interruption and it resumes from the last
finished epoch; --no-checkpoint turns this off. Training uses one torch
thread by default (--threads), which is the fastest choice whenever other
jobs share the cores.

The same script trains data-parallel on N processes (CPU, gloo):

    torchrun --nproc_per_node=N examples/lightgode_gowalla.py --raw-dir ...

--batch-size is the global batch (each process takes 1/N of it), so the
result matches a single-process run; only rank 0 prints, writes the
checkpoint and evaluates.
"""
import argparse
import json
import os
import sys

from pyg_lightgode.apps import cli

TUNED = ' (default: tuned for --dataset, LIGHTGODE_SETTINGS)'


def parse_args(doc, dataset, argv=None):
    parser = cli.make_parser(doc)
    cli.add_data_arguments(parser, dataset)
    add = parser.add_argument_group('model and training').add_argument
    add('--epochs', type=int, default=300,
        help='most epochs (early stopping usually ends sooner)')
    add('--patience', type=int, default=10,
        help='epochs without a better validation NDCG@20 before stopping')
    add('--batch-size', type=int,
        help='global batch: split across processes under torchrun' + TUNED)
    add('--lr', type=float, help='learning rate' + TUNED)
    add('--weight-decay', type=float, help='L2 weight decay' + TUNED)
    add('--dim', type=int, default=64, help='embedding dimension')
    add('--gamma', type=float,
        help='weight of the uniformity loss against alignment' + TUNED)
    add('--sparse', action=argparse.BooleanOptionalAction,
        help='sparse embedding gradients with (lazy) SparseAdam; '
        '--no-sparse for dense Adam' + TUNED)
    add = parser.add_argument_group('propagation after training').add_argument
    add('--t', type=float,
        help='ODE end time of the reported test numbers' + TUNED)
    add('--method', default='euler',
        help="ODE solver: 'euler' without --step-size is the official one "
        "step; 'exact', 'rk4', 'dopri5', ... solve accurately")
    add('--step-size', type=float, default=None,
        help='fixed step of the ODE solver (default: one step)')
    add('--sweep-t', default='0,0.5,1,1.5,2,2.5,3,4,5,7,10',
        help='comma-separated ODE times to sweep on validation')
    add('--sweep-methods', default=None,
        help="comma-separated solvers to sweep t with, e.g. 'euler,exact' "
        "(default: --method)")
    add('--layers', type=int, default=4,
        help='also report 0..L discrete LightGCN-style layers')
    cli.add_output_arguments(
        parser, plot_help='save a PNG of the sweeps and the training curve '
        '(needs matplotlib)',
        quiet_help='no progress bars (the per-epoch log stays)',
        checkpoint=cli.AUTO_CHECKPOINT)
    cli.add_threads_argument(parser)
    return parser.parse_args(argv)


def main(doc=__doc__, dataset='gowalla', argv=None):
    args = parse_args(doc, dataset, argv)  # --help exits before torch loads.
    cli.set_threads(args.threads)
    from pyg_lightgode.apps.training.distributed import (
        destroy_distributed,
        init_distributed,
    )

    # A process group only under torchrun with WORLD_SIZE > 1; the recipes
    # train on CPU, hence gloo.
    init_distributed(device='cpu')
    try:
        return run(args)
    finally:
        destroy_distributed()


def test_metrics(model, split, t):
    import torch

    from pyg_lightgode.metrics import evaluate_ranking
    with torch.no_grad():  # Propagate over the training graph, split.
        out = model.get_embedding(split.adj_t(), t=t)
    users, items = out[:split.num_users], out[split.num_users:]
    return evaluate_ranking(users, items, split.test_index,
                            exclude_links=split.known_interactions('test'),
                            ks=(20, ), metrics=('recall', 'ndcg'))


def sweep_panels(rows, history):
    panels = []
    for key, label in (('t', 'ODE time t'), ('layers', 'discrete layers')):
        sel = [r for r in rows if key in r]
        panels.append({
            'x': [r[key] for r in sel], 'xlabel': label,
            'lines': {f'validation {m}': [r[m] for r in sel]
                      for m in ('ndcg@20', 'recall@20')},
            'twin': {'discrepancy': [r['discrepancy'] for r in sel]},
            'twin_label': 'embedding discrepancy'})
    return panels + cli.history_panels(history)


def run(args):
    import resource

    import torch

    from pyg_lightgode.apps.training import (
        LIGHTGODE_SETTINGS,
        print_epochs,
        seed_everything,
    )
    from pyg_lightgode.apps.training.distributed import (
        is_main_process,
        main_process_first,
    )
    from pyg_lightgode.apps.training.recipes import (
        sweep_propagation,
        train_lightgode,
    )
    from pyg_lightgode.data.io import write_json
    from pyg_lightgode.nn.models import LightGODE

    main = is_main_process()
    tuned_for = args.dataset if args.dataset in LIGHTGODE_SETTINGS else \
        'movielens100k'
    cli.fill_defaults(args, LIGHTGODE_SETTINGS[tuned_for])
    with main_process_first():  # Rank 0 processes the dataset files first.
        split = cli.load_split(args)
    # Seeded right before the model is built, so that its initialisation
    # depends on the seed alone, whatever loading the data drew.
    seed_everything(args.seed)
    if main:
        print(f'{args.dataset}: {split.stats()}')
        print(f"settings (LIGHTGODE_SETTINGS['{tuned_for}'] where not "
              f"given): gamma={args.gamma}, t={args.t}, "
              f"sparse={args.sparse}, batch_size={args.batch_size}, "
              f"lr={args.lr}, weight_decay={args.weight_decay}")
    model = LightGODE(split.num_users, split.num_items, args.dim, t=args.t,
                      gamma=args.gamma, method=args.method,
                      step_size=args.step_size, sparse=args.sparse)
    # The settings that change the training name its checkpoint.
    checkpoint = cli.checkpoint_path(args, 'lightgode', {
        key: getattr(args, key) for key in (
            'dataset', 'val_ratio', 'seed', 'dim', 'gamma', 'sparse',
            'batch_size', 'lr', 'weight_decay')})
    if main and checkpoint:
        state = 'resuming it' if os.path.exists(checkpoint) else 'new'
        print(f'checkpoint {checkpoint} ({state}; --no-checkpoint: none)')
    metric = 'val ndcg@20' if split.val_index is not None else \
        'test ndcg@20 (no validation part)'
    result = train_lightgode(
        model, split, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, patience=args.patience,
        seed=args.seed, checkpoint=checkpoint, progress=not args.quiet,
        log=print_epochs(metric))
    if not main:
        return None  # Replicas are identical; rank 0 evaluates and reports.
    print(f'best epoch {result.best_epoch} ({metric} '
          f'{result.best_score:.4f}), {result.seconds_per_epoch:.1f} s/epoch')

    report = {'args': vars(args), 'checkpoint': checkpoint,
              'threads': torch.get_num_threads(),
              'best_epoch': result.best_epoch,
              'seconds_per_epoch': result.seconds_per_epoch,
              'history': result.history}
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
        cli.save_plot(sweep_panels(rows, result.history), args.plot)
    if args.json:
        write_json(report, args.json)
    return report


if __name__ == '__main__':
    main(argv=sys.argv[1:])
