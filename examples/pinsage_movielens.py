r"""PinSage on MovieLens-100K (ratings >= 4, per-user random 8:1:1 split):
item-to-item max-margin training on importance neighbourhoods, the input
being the item features (genres, release year) plus a learnable ID
embedding, curriculum hard negatives and validation NDCG@20 every epoch;
reports all-item Recall@20 / NDCG@20 on test (users represented by the mean
of their training items' embeddings) and the item-to-item hit rate and
scaled MRR of the paper.

    python examples/pinsage_movielens.py --raw-dir ../shared/data/ml-100k
    python examples/pinsage_movielens.py --dataset movielens1m \
        --raw-dir ../shared/data/ml-1m

--raw-dir points at already-downloaded files; without it, files missing
from <root>/<dataset>/raw are downloaded. Ablations: --pooling mean,
--pooling max (--aggr is an alias), --no-hard-negatives, --input features
(features only: the genres do not identify a movie, and accuracy drops
below popularity) or --input ids.
"""
import sys

from pyg_lightgode.apps import cli

MOVIELENS = dict(dataset='movielens100k', input='both', epochs=30,
                 batch_size=512, lr=1e-2, lr_decay=0.95, margin=0.05,
                 neighbors=10, walks=10, pairs_per_epoch=None, val_ratio=0.1)


def parse_args(defaults, doc=__doc__, argv=None):
    parser = cli.make_parser(doc)
    cli.add_data_arguments(parser, defaults['dataset'],
                           val_ratio=defaults['val_ratio'])
    add = parser.add_argument_group('model').add_argument
    add('--input', default=defaults['input'],
        choices=('features', 'ids', 'both'),
        help='item features, learnable ID embeddings, or their sum')
    add('--dim', type=int, default=64, help='hidden and output dimension')
    add('--layers', type=int, default=2, help='PinSAGEConv layers')
    add('--pooling', '--aggr', default='importance',
        choices=('importance', 'mean', 'max'),
        help='neighbourhood pooling of PinSAGEConv')
    add('--raw-scores', action='store_true',
        help='do not l2-normalise the output embeddings (paper head)')
    add('--neighbors', type=int, default=defaults['neighbors'],
        help='importance neighbours T per node and layer')
    add('--walks', type=int, default=defaults['walks'],
        help='random walks per node for the neighbourhoods')
    add = parser.add_argument_group('training').add_argument
    add('--epochs', type=int, default=defaults['epochs'],
        help='most epochs (early stopping may end sooner)')
    add('--patience', type=int, default=10,
        help='epochs without a better validation NDCG@20 before stopping')
    add('--batch-size', type=int, default=defaults['batch_size'],
        help='item pairs per minibatch')
    add('--lr', type=float, default=defaults['lr'], help='learning rate')
    add('--lr-decay', type=float, default=defaults['lr_decay'],
        help='learning-rate decay per epoch after the warm-up epoch')
    add('--margin', type=float, default=defaults['margin'],
        help='max-margin Delta (on cosine scores unless --raw-scores)')
    add('--num-negatives', type=int, default=500,
        help='random negatives shared by a minibatch')
    add('--no-hard-negatives', action='store_true',
        help='random negatives only (no curriculum of hard negatives)')
    add('--max-hard-negatives', type=int, default=5,
        help='epoch n uses min(n - 1, this) hard negatives per query')
    add('--pairs-per-epoch', type=int, default=defaults['pairs_per_epoch'],
        help='item pairs per epoch (default: one per training interaction)')
    add('--user-weighting', default='mean', choices=('mean', 'importance'),
        help='how a user embedding pools its training items\' embeddings')
    add('--num-workers', type=int, default=0,
        help='sampling processes (0: sample in the main process)')
    add = parser.add_argument_group('evaluation').add_argument
    add('--i2i-ks', default='10,100',
        help='comma-separated K of the item-to-item hit rate')
    add('--mrr-scale', type=float, default=100.0,
        help='scale s of the item-to-item MRR, mean of 1/ceil(rank/s)')
    cli.add_output_arguments(
        parser, plot_help='save a PNG of the training curve (needs '
        'matplotlib)', quiet_help='no progress bars or per-epoch log')
    cli.add_threads_argument(parser)
    return parser.parse_args(argv)


def build_model(args, split):
    from pyg_lightgode.nn.models import PinSage

    use_ids = args.input in ('ids', 'both')
    use_features = args.input in ('features', 'both')
    if use_features and split.item_x is None:
        raise ValueError(f"--input {args.input} needs item features, but "
                         f"{args.dataset} has none; use --input ids")
    return PinSage(num_nodes=split.num_items if use_ids else None,
                   in_channels=split.item_x.size(1) if use_features else None,
                   hidden_channels=args.dim, out_channels=args.dim,
                   num_layers=args.layers, pooling=args.pooling,
                   normalize_output=not args.raw_scores)


def walk_options(args):
    return dict(num_walks=args.walks, num_traversals=2, restart_prob=0.5)


def main(defaults=MOVIELENS, argv=None, doc=__doc__):
    args = parse_args(defaults, doc, argv)  # --help exits before torch loads.
    cli.set_threads(args.threads)
    import torch

    from pyg_lightgode.apps.training import (
        pinsage_embeddings,
        print_epochs,
        seed_everything,
        train_pinsage,
    )
    from pyg_lightgode.data.io import write_json
    from pyg_lightgode.metrics import evaluate_ranking, item_to_item_metrics
    from pyg_lightgode.metrics.item_to_item import item_to_item_pairs

    split = cli.load_split(args)
    print(f'{args.dataset}: {split.stats()}')
    # Seeded right before the model is built, so that its initialisation
    # depends on the seed alone, whatever loading the data drew.
    seed_everything(args.seed)
    model = build_model(args, split)
    result = train_pinsage(
        model, split, epochs=args.epochs, patience=args.patience,
        checkpoint=args.checkpoint, progress=not args.quiet,
        log=None if args.quiet else print_epochs('val ndcg@20'),
        seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        lr_decay=args.lr_decay, margin=args.margin,
        num_negatives=args.num_negatives,
        hard_negatives=not args.no_hard_negatives,
        max_hard_negatives=args.max_hard_negatives,
        num_neighbors=[args.neighbors] * args.layers,
        pairs_per_epoch=args.pairs_per_epoch, num_workers=args.num_workers,
        user_weighting=args.user_weighting, **walk_options(args))
    print(f'best epoch {result.best_epoch} (val NDCG@20 '
          f'{result.best_score:.4f}), {result.seconds_per_epoch:.1f} s/epoch')

    user_emb, item_emb = pinsage_embeddings(
        model, split, top_k=args.neighbors,
        user_weighting=args.user_weighting, **walk_options(args))
    report = {'args': vars(args), 'best_epoch': result.best_epoch,
              'epochs_run': result.epochs_run,
              'seconds_per_epoch': result.seconds_per_epoch,
              'history': result.history}
    report['test'] = evaluate_ranking(
        user_emb, item_emb, split.test_index,
        exclude_links=split.known_interactions('test'), ks=(20, ),
        metrics=('recall', 'ndcg'))
    query, target = item_to_item_pairs(
        split.train_index, split.test_index, split.num_users,
        split.num_items, torch.Generator().manual_seed(args.seed))
    ks = [int(k) for k in args.i2i_ks.split(',') if k.strip()]
    report['item_to_item'] = item_to_item_metrics(
        item_emb, query, target, ks=ks, mrr_scale=args.mrr_scale)
    report['item_to_item']['num_pairs'] = query.numel()
    print(f"test (all-item, {split.num_items} items): {report['test']}")
    print(f"item-to-item (scaled MRR scale {args.mrr_scale:g}): "
          f"{report['item_to_item']}")
    if args.plot:
        cli.save_plot(cli.history_panels(result.history), args.plot)
    if args.json:
        write_json(report, args.json)
    return report


if __name__ == '__main__':
    main(argv=sys.argv[1:])
