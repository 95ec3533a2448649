r"""User-item PinSage against its peers, trained in the same run on the same
split (validation: 10% of the training pairs) with the same seed, epoch
budget and early stopping on validation NDCG@20:

* ``pinsage``: user-item PinSage of the package
  (:func:`~pyg_lightgode.apps.training.pinsage.train_pinsage_user_item`,
  settings :data:`~pyg_lightgode.apps.training.pinsage.PINSAGE_SETTINGS`);
* ``pinsage-i2i``: item-to-item PinSage (users = mean of their items), the
  MovieLens example's settings (MovieLens only by default: it is slow on
  Gowalla), with its item-to-item hit rate and scaled MRR;
* ``mf-bpr``: MF-BPR (:func:`~pyg_lightgode.apps.training.recipes.train_bpr`
  with PyG's ``LightGCN(num_layers=0)``);
* ``pyg-sage``: what a PyG user would write: ``to_hetero`` of a 2-layer
  ``SAGEConv`` GNN over learnable user and item embeddings (plus features
  where the dataset has them) on the user-item ``HeteroData``, trained with
  ``LinkNeighborLoader`` (10 neighbours per layer, one triplet negative) and
  the BPR loss, PyG's public API only (the package only runs the loop and
  evaluates).

Every model runs in its own process (peak resident MiB per model), with
``--threads`` torch threads. Writes JSON with, per model, the test
Recall@20 / NDCG@20 of the validation-selected epoch, seconds per epoch,
epochs to the best epoch and run, and peak MiB.

    python benchmarks/bench_pinsage_peers.py --dataset movielens100k \
        --raw-dir ../shared/data/ml-100k --json /tmp/pinsage/ml100k.json
    python benchmarks/bench_pinsage_peers.py --dataset gowalla \
        --raw-dir ../shared/data/gowalla --models pinsage,mf-bpr,pyg-sage \
        --max-minutes 60 --json /tmp/pinsage/gowalla.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MODELS = ('pinsage', 'pinsage-i2i', 'mf-bpr', 'pyg-sage')
#: Training settings of the peers (batch size, learning rate).
PEER_SETTINGS = {
    'mf-bpr': dict(batch_size=2048, lr=1e-3),
    'pyg-sage': dict(batch_size=2048, lr=5e-3, num_neighbors=[10, 10]),
}


def parse_args(argv=None):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
    from pyg_lightgode.apps import cli
    parser = cli.make_parser(__doc__)
    cli.add_data_arguments(parser, 'movielens100k')
    add = parser.add_argument
    add('--models', default=None,
        help='comma-separated models (default: all four on MovieLens, '
        'all but pinsage-i2i otherwise)')
    add('--epochs', type=int, default=200, help='most epochs per model')
    add('--patience', type=int, default=5,
        help='epochs without a better validation NDCG@20 before stopping')
    add('--max-minutes', type=float, default=None,
        help='training budget per model: no epoch starts after it (the '
        'best validation epoch is kept)')
    add('--pinsage-options', default=None,
        help='JSON object of train_pinsage_user_item arguments that '
        'override PINSAGE_SETTINGS, e.g. \'{"lr_decay": 0.98}\'')
    add('--pinsage-model', default=None,
        help='JSON object of user_item_pinsage arguments that override '
        'PINSAGE_SETTINGS, e.g. \'{"embedding_std": 1.0}\'')
    add('--threads', type=int, default=1, help='torch threads per model')
    add('--checkpoint-dir', default=None,
        help='folder for per-model checkpoints (resumed when present)')
    add('--json', default=None, help='write the results to this file')
    add('--single', default=None, help=argparse.SUPPRESS)
    add('--out', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = ','.join(
            MODELS if cli.randomly_split(args.dataset) else
            tuple(m for m in MODELS if m != 'pinsage-i2i'))
    for name in args.models.split(','):
        if name not in MODELS:
            parser.error(f'unknown model {name!r}; choose from {MODELS}')
    return args


def budget_batches(batches, args, start):
    r"""The epoch's batches, or none once the time budget is spent (the
    remaining epochs then only validate, and early stopping ends the
    run)."""
    def epoch_batches(epoch):
        if args.max_minutes is not None and \
                time.perf_counter() - start > 60 * args.max_minutes:
            return []
        return batches(epoch)

    return epoch_batches


def trained_epochs(result):
    return [h for h in result.history if h['loss'] != 0.0]


def run_pinsage(args, split, common):
    from pyg_lightgode.apps.training.pinsage import run_pinsage_user_item
    user_emb, item_emb, result = run_pinsage_user_item(
        split, args.dataset, checkpoint=common['checkpoint'],
        epochs=args.epochs, patience=args.patience, seed=args.seed,
        progress=False, max_minutes=args.max_minutes,
        model_options=json.loads(args.pinsage_model or '{}'),
        **json.loads(args.pinsage_options or '{}'))
    return user_emb, item_emb, result, {}


def run_pinsage_i2i(args, split, common):
    import torch

    from pyg_lightgode.apps.training import pinsage_embeddings, train_pinsage
    from pyg_lightgode.metrics import item_to_item_metrics
    from pyg_lightgode.metrics.item_to_item import item_to_item_pairs
    from pyg_lightgode.nn.models import PinSage
    model = PinSage(num_nodes=split.num_items, in_channels=(
        None if split.item_x is None else split.item_x.size(1)),
                    hidden_channels=64, out_channels=64, num_layers=2,
                    normalize_output=True)
    result = train_pinsage(model, split, epochs=args.epochs,
                           patience=args.patience, seed=args.seed,
                           progress=False, batch_size=512, lr=1e-2,
                           margin=0.05, num_neighbors=[10, 10], **common)
    user_emb, item_emb = pinsage_embeddings(model, split, top_k=10)
    query, target = item_to_item_pairs(
        split.train_index, split.test_index, split.num_users,
        split.num_items, torch.Generator().manual_seed(args.seed))
    extra = {'item_to_item': item_to_item_metrics(item_emb, query, target,
                                                  ks=[10, 100])}
    return user_emb, item_emb, result, extra


def run_mf_bpr(args, split, common):
    from torch_geometric.nn.models import LightGCN

    from pyg_lightgode.apps.training.recipes import train_bpr
    model = LightGCN(split.num_nodes, 64, 0)
    result = train_bpr(model, split, epochs=args.epochs,
                       patience=args.patience, seed=args.seed,
                       progress=False, **PEER_SETTINGS['mf-bpr'], **common)
    emb = model.get_embedding(split.adj_t()).detach()
    return emb[:split.num_users], emb[split.num_users:], result, {}


def run_pyg_sage(args, split, common):
    r"""A 2-layer SAGEConv GNN made heterogeneous by ``to_hetero``, trained
    with ``LinkNeighborLoader`` and the BPR loss: PyG's public API."""
    import torch
    import torch.nn.functional as F
    from torch_geometric.loader import LinkNeighborLoader
    from torch_geometric.nn import SAGEConv, to_hetero

    from pyg_lightgode.apps.training import Trainer, seed_everything
    from pyg_lightgode.apps.training.recipes import validation_evaluator

    settings = PEER_SETTINGS['pyg-sage']
    seed_everything(args.seed)
    data = split.to_hetero_data()
    data['user'].n_id = torch.arange(split.num_users)
    data['item'].n_id = torch.arange(split.num_items)
    edge_type = ('user', 'rates', 'item')

    class GNN(torch.nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = SAGEConv((-1, -1), channels)
            self.conv2 = SAGEConv((-1, -1), channels)

        def forward(self, x, edge_index):
            return self.conv2(self.conv1(x, edge_index).relu(), edge_index)

    class Model(torch.nn.Module):
        def __init__(self, channels=64):
            super().__init__()
            self.emb = torch.nn.ModuleDict({
                'user': torch.nn.Embedding(split.num_users, channels),
                'item': torch.nn.Embedding(split.num_items, channels)})
            self.lin = torch.nn.ModuleDict({
                key: torch.nn.Linear(x.size(1), channels)
                for key, x in (('user', split.user_x), ('item', split.item_x))
                if x is not None})
            self.gnn = to_hetero(GNN(channels), data.metadata(), aggr='sum')

        def forward(self, batch):
            x = {}
            for key in ('user', 'item'):
                x[key] = self.emb[key](batch[key].n_id)
                if key in self.lin:
                    x[key] = x[key] + self.lin[key](batch[key].x.float())
            return self.gnn(x, batch.edge_index_dict)

    model = Model()
    with torch.no_grad():  # Initialise the lazy layers.
        model(data)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings['lr'])
    generator = torch.Generator().manual_seed(args.seed)

    def loader(epoch):
        return LinkNeighborLoader(
            data, num_neighbors=settings['num_neighbors'],
            edge_label_index=(edge_type, split.train_index),
            neg_sampling=dict(mode='triplet', amount=1),
            batch_size=settings['batch_size'], shuffle=True)

    def step(batch):
        optimizer.zero_grad()
        out = model(batch)
        src = out['user'][batch['user'].src_index]
        pos = out['item'][batch['item'].dst_pos_index]
        neg = out['item'][batch['item'].dst_neg_index]
        loss = F.softplus((src * neg).sum(-1) - (src * pos).sum(-1)).mean()
        loss.backward()
        optimizer.step()
        return loss.detach()

    def embeddings():
        out = model(data)  # Full neighbourhoods at inference.
        return out['user'], out['item']

    evaluator = validation_evaluator(split, 20)
    trainer = Trainer(model, [optimizer], max_epochs=args.epochs,
                      patience=args.patience, generator=generator,
                      progress=False, **common)
    result = trainer.fit(loader, step,
                         lambda: evaluator(*embeddings())['ndcg@20'])
    with torch.no_grad():
        user_emb, item_emb = embeddings()
    return user_emb, item_emb, result, {}


RUNNERS = {'pinsage': run_pinsage, 'pinsage-i2i': run_pinsage_i2i,
           'mf-bpr': run_mf_bpr, 'pyg-sage': run_pyg_sage}


def run_single(args):
    import resource

    import torch

    from pyg_lightgode.apps import cli
    from pyg_lightgode.apps.training import Trainer
    from pyg_lightgode.metrics import evaluate_ranking
    torch.set_num_threads(args.threads)
    split = cli.load_split(args)
    name = args.single
    checkpoint = None
    if args.checkpoint_dir:
        os.makedirs(args.checkpoint_dir, exist_ok=True)
        checkpoint = os.path.join(args.checkpoint_dir, f'{name}.pt')
    start = time.perf_counter()
    common = {'checkpoint': checkpoint}
    if name != 'pinsage' and args.max_minutes is not None:
        # The budget: later epochs of the peers get no batches.
        fit = Trainer.fit

        def budget_fit(self, batches, step, validate=None):
            return fit(self, budget_batches(batches, args, start), step,
                       validate)

        Trainer.fit = budget_fit
    user_emb, item_emb, result, extra = RUNNERS[name](args, split, common)
    total = time.perf_counter() - start
    test = evaluate_ranking(user_emb.detach(), item_emb.detach(),
                            split.test_index,
                            exclude_links=split.known_interactions('test'),
                            ks=(20, ), metrics=('recall', 'ndcg'))
    trained = trained_epochs(result)
    out = {'model': name, **test, 'best_epoch': result.best_epoch,
           'epochs_run': len(trained), 'val_ndcg@20': result.best_score,
           'seconds_per_epoch': (sum(h['train_seconds'] for h in trained) /
                                 max(len(trained), 1)),
           'total_seconds': total,
           'peak_mib': resource.getrusage(
               resource.RUSAGE_SELF).ru_maxrss / 1024,
           'threads': args.threads, **extra}
    with open(args.out, 'w') as f:
        json.dump(out, f)


def main(argv=None):
    args = parse_args(argv)  # --help exits before torch loads.
    if args.single:
        return run_single(args)
    rows = {}
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    for name in args.models.split(','):
        with tempfile.NamedTemporaryFile(suffix='.json') as tmp:
            load = os.getloadavg()[0]
            proc = subprocess.run(
                [sys.executable, __file__, *forwarded, '--single', name,
                 '--out', tmp.name], text=True)
            if proc.returncode != 0:
                rows[name] = {'model': name,
                              'error': f'exit code {proc.returncode}'}
                continue
            with open(tmp.name) as f:
                rows[name] = json.load(f)
            rows[name]['load_average_at_start'] = load
        row = rows[name]
        print(f"{name}: Recall@20 {row['recall@20']:.4f} NDCG@20 "
              f"{row['ndcg@20']:.4f}, {row['seconds_per_epoch']:.1f} "
              f"s/epoch, best epoch {row['best_epoch']} of "
              f"{row['epochs_run']}, {row['peak_mib']:.0f} MiB", flush=True)
    report = {'dataset': args.dataset, 'seed': args.seed,
              'threads': args.threads, 'epochs': args.epochs,
              'patience': args.patience, 'max_minutes': args.max_minutes,
              'command': 'python benchmarks/bench_pinsage_peers.py ' +
              ' '.join(forwarded), 'models': rows}
    if args.json:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
        from pyg_lightgode.data.io import write_json
        write_json(report, args.json)
    return report


if __name__ == '__main__':
    main()
