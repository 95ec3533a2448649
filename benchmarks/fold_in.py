r"""Fold-in against retraining, and history-query latency.

    python benchmarks/fold_in.py --dataset movielens100k \
        --raw-dir ../shared/data/ml-100k --json fold_in_ml100k.json
    nice -n 10 python benchmarks/fold_in.py --dataset gowalla \
        --raw-dir ../shared/data/gowalla --epochs 10 --json fold_in_gw.json

New users: 10% of the users (seeded) are held out of training entirely; a
LightGODE model ("base") is trained on the rest (the dataset's
LIGHTGODE_SETTINGS, early stopping on the remaining users' validation
items). After training, the held-out users' TRAINING interactions are
folded in (:class:`~pyg_lightgode.apps.serving.LightGODEFoldIn`, no gradient
step), and Recall@20 / NDCG@20 are measured on their test items (training
and validation items excluded). "retrain" is a model trained with them from
the start, same settings, same split, same seed. New items: the same with
10% of the items; the metrics count the test interactions of the new items
(every item is ranked). Every E0 rule of a new node is measured; ONE rule
is reported for both experiments: the one with the best validation NDCG@20
of the new nodes, averaged over the two experiments (validation items of
the new users / of the new items, training items excluded); it is the
package's default (``DEFAULT_E0_RULE``). ``--details`` also names the best
rule of each experiment alone. For new users, the details also give the
serving path: each history folded in alone (``history_rows``, item rows
not updated).

Seconds: ``fold_in`` is the wall time of the fold-in call (E0 rows and
incremental propagation; the base model's propagated tables exist before,
as in a deployment); ``retrain`` is the wall time of training the retrained
model (its per-epoch validation included, as for the base).

Latency: 1000 history queries (the training items of 1000 seeded random
users, as anonymous histories) on the retrained model's tables, loaded from
a serving artefact, one torch thread, top-20 with the history excluded.

The ``--json`` file holds exactly the issue's keys (``--print-json`` also
prints them); ``--details`` writes everything else (every rule, validation
figures, incremental-vs-full propagation times, threads, load average,
training epochs). Progress (one line per stage and per training epoch) goes
to standard error, a short summary to standard output.
"""
import json
import os
import statistics
import sys
import tempfile
import time

from pyg_lightgode.apps import cli  # standard library only

VAL_RATIO = {'gowalla': 0.1}


def build_parser():
    parser = cli.make_parser(__doc__)
    add = parser.add_argument
    add('--dataset', default='movielens100k',
        choices=('gowalla', 'movielens100k'), help='the dataset')
    cli.add_file_arguments(parser)
    add('--json', default=None, help='write the issue-format JSON here')
    add('--details', default=None,
        help='write every figure of the run here (JSON)')
    add('--print-json', action='store_true',
        help='also print the issue-format JSON to standard output')
    add('--epochs', type=int, default=300,
        help='training budget of base and retrain models (300: the '
        'official maximum)')
    add('--patience', type=int, default=10, help='early-stopping patience')
    add('--share', type=float, default=0.1,
        help='share of users / items held out')
    add('--seed', type=int, default=2020,
        help='seed of the held-out nodes and of the training')
    cli.add_threads_argument(parser)
    add('--queries', type=int, default=1000,
        help='history queries timed (always at one thread)')
    add('--repeats', type=int, default=20, help='incremental updates timed')
    add('--quiet', action='store_true',
        help='no per-epoch lines (the stage lines stay)')
    return parser


if __name__ == '__main__':  # --help and bad options: before torch loads.
    build_parser().parse_args()

import torch  # noqa: E402


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def machine(threads: int) -> dict:
    return {'cpu_count': os.cpu_count(), 'torch_threads': threads,
            'torch': torch.__version__,
            'load_average': [round(x, 2) for x in os.getloadavg()],
            'nice': os.nice(0)}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _, seconds = timed(fn)
        times.append(seconds)
    return statistics.median(times)


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------
def load_split(args):
    from pyg_lightgode.datasets import load_dataset
    options = {}
    if args.dataset in VAL_RATIO:
        options['val_ratio'] = VAL_RATIO[args.dataset]
    return load_dataset(args.dataset, args.root, raw_dir=args.raw_dir,
                        **options)


def held_out(num: int, share: float, seed: int, salt: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed * 1000 + salt)
    count = max(1, round(share * num))
    return torch.randperm(num, generator=gen)[:count].sort().values


def renumbering(num: int, new: torch.Tensor):
    r"""Old ids of the kept nodes then the new ones (:obj:`order`), and the
    map old id -> id in that order (:obj:`position`)."""
    is_new = torch.zeros(num, dtype=torch.bool)
    is_new[new] = True
    order = torch.cat([(~is_new).nonzero().view(-1), new])
    position = torch.empty(num, dtype=torch.long)
    position[order] = torch.arange(num)
    return order, position, is_new


def reduced_split(split, side: int, new: torch.Tensor):
    r"""The split without any interaction of the new nodes of :obj:`side`
    (0 users, 1 items), kept nodes renumbered to 0..n-1; and the new nodes'
    training interactions in the fold-in numbering (new ids after the
    kept ones)."""
    from pyg_lightgode.data import BipartiteSplit
    num = split.num_users if side == 0 else split.num_items
    order, position, is_new = renumbering(num, new)

    def part(index):
        if index is None:
            return None
        index = index[:, ~is_new[index[side]]].clone()
        index[side] = position[index[side]]
        return index

    kept = num - new.numel()
    sizes = (kept, split.num_items) if side == 0 else (split.num_users, kept)
    base = BipartiteSplit(sizes[0], sizes[1], part(split.train_index),
                          part(split.test_index), part(split.val_index),
                          name=f'{split.name}-base')
    train = split.train_index
    fold = train[:, is_new[train[side]]].clone()
    fold[side] = position[fold[side]]
    return base, fold, order


# --------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------
def train(args, split, what: str):
    from pyg_lightgode.apps.training import format_epoch, seed_everything
    from pyg_lightgode.apps.training.recipes import (
        LIGHTGODE_SETTINGS,
        train_lightgode,
    )
    from pyg_lightgode.nn.models import LightGODE
    tuned = LIGHTGODE_SETTINGS[args.dataset]
    # The initialisation draws from torch's global generator, whose seed
    # at start-up differs from process to process: unseeded, every run
    # trained other models (retrain Recall@20 0.3485, 0.3463, ...).
    seed_everything(args.seed)
    model = LightGODE(split.num_users, split.num_items, embedding_dim=64,
                      t=tuned['t'], gamma=tuned['gamma'],
                      sparse=tuned['sparse'])

    def progress(record):
        if not args.quiet:
            log(f'[{what}] ' + format_epoch(record, 'val ndcg@20'))

    result, seconds = timed(lambda: train_lightgode(
        model, split, epochs=args.epochs, patience=args.patience,
        batch_size=tuned['batch_size'], lr=tuned['lr'],
        weight_decay=tuned['weight_decay'], seed=args.seed, progress=False,
        log=progress))
    info = {'seconds': seconds, 'best_epoch': result.best_epoch,
            'epochs_run': result.epochs_run,
            'seconds_per_epoch': result.seconds_per_epoch}
    return (model.user_embedding.weight.detach().clone(),
            model.item_embedding.weight.detach().clone(), info)


def evaluator(split, part: str, users=None, items=None):
    r"""Recall@20 / NDCG@20 on :obj:`part` ('val': training excluded;
    'test': training and validation excluded), restricted to
    :obj:`users` or to the interactions of :obj:`items`."""
    from pyg_lightgode.metrics import RankingEvaluator
    target = split.part(part)
    if items is not None:
        mask = torch.zeros(split.num_items, dtype=torch.bool)
        mask[items] = True
        target = target[:, mask[target[1]]]
    return RankingEvaluator(target,
                            exclude_links=split.known_interactions(part),
                            num_users=split.num_users,
                            num_items=split.num_items, ks=(20, ),
                            metrics=('recall', 'ndcg'), users=users)


def rounded(metrics: dict) -> dict:
    return {key: round(float(value), 4) for key, value in metrics.items()}


# --------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------
def fold_in_experiment(args, split, side: int, new, full_tables,
                       retrain_info) -> tuple:
    from pyg_lightgode.apps.serving.fold_in import E0_RULES, LightGODEFoldIn
    from pyg_lightgode.apps.training.recipes import LIGHTGODE_SETTINGS
    t = LIGHTGODE_SETTINGS[args.dataset]['t']
    what = 'users' if side == 0 else 'items'
    base, fold_edges, order = reduced_split(split, side, new)
    log(f'[{what}] {new.numel()} new {what}, {fold_edges.size(1)} training '
        f'interactions to fold in; training the base model on '
        f'{base.train_index.size(1)} interactions')
    user0, item0, base_info = train(args, base, f'{what}: base')
    log(f'[{what}] base trained: {base_info}')
    select = dict(users=new) if side == 0 else dict(items=new)
    val_eval = evaluator(split, 'val', **select)
    test_eval = evaluator(split, 'test', **select)

    def to_original(users, items):
        if side == 0:
            out = torch.empty_like(users)
            out[order] = users
            return out, items
        out = torch.empty_like(items)
        out[order] = items
        return users, out

    rules = {}
    state_seconds = None
    for rule in E0_RULES:
        fold, build = timed(lambda: LightGODEFoldIn(user0, item0,
                                                    base.train_index, t=t,
                                                    rule=rule))
        state_seconds = build
        count = {'num_new_users' if side == 0 else 'num_new_items':
                 new.numel()}
        update, seconds = timed(lambda: fold.add(fold_edges, **count))
        users, items = to_original(fold.user_embedding, fold.item_embedding)
        rules[rule] = {'val': rounded(val_eval(users, items)),
                       'test': rounded(test_eval(users, items)),
                       'seconds': seconds,
                       'rows_recomputed': [update.users.numel(),
                                           update.items.numel()]}
        log(f'[{what}] rule {rule}: {rules[rule]}')
    # The serving path for new users: each history folded in alone.
    serving = {}
    if side == 0:
        U0 = base.num_users
        histories = [fold_edges[1][fold_edges[0] == U0 + j]
                     for j in range(new.numel())]
        for rule in E0_RULES:
            fold = LightGODEFoldIn(user0, item0, base.train_index, t=t,
                                   rule=rule)
            users = torch.zeros(split.num_users, user0.size(1))
            users[new] = fold.history_rows(histories)
            serving[rule] = rounded(test_eval(users, fold.item_embedding))
    user_f, item_f = full_tables
    details = {'rules': rules, 'retrain_val': rounded(val_eval(user_f,
                                                               item_f)),
               'retrain_test': rounded(test_eval(user_f, item_f)),
               'retrain_seconds': retrain_info['seconds'],
               'base_training': base_info,
               'state_build_seconds': state_seconds,
               'num_new': new.numel(),
               'num_fold_in_interactions': fold_edges.size(1),
               'serving_path_test': serving or None}
    return details, (user0, item0, base)


def report(details: dict, rule: str) -> dict:
    r"""The issue's entry of one experiment for :obj:`rule`."""
    chosen, retrain = details['rules'][rule], details['retrain_test']
    out = {
        'fold_in': {k: chosen['test'][k] for k in ('recall@20', 'ndcg@20')},
        'retrain': {k: retrain[k] for k in ('recall@20', 'ndcg@20')},
        'seconds': {'fold_in': chosen['seconds'],
                    'retrain': details['retrain_seconds']},
    }
    details['rule'] = rule
    details['recall_ratio'] = out['fold_in']['recall@20'] / max(
        out['retrain']['recall@20'], 1e-12)
    details['time_ratio'] = out['seconds']['fold_in'] / \
        out['seconds']['retrain']
    return out


def select_rule(*experiments) -> str:
    r"""The E0 rule with the best mean validation NDCG@20 of the new
    nodes over the experiments (one default for users and items)."""
    rules = experiments[0]['rules']
    return max(rules, key=lambda r: sum(e['rules'][r]['val']['ndcg@20']
                                        for e in experiments))


def incremental_timing(args, split, user0, item0, base, new):
    r"""Incremental one-step propagation against full recomputes on the
    base graph: one new user with its training items, and 10 new
    interactions between existing nodes (medians of --repeats updates,
    each on the state the previous ones left)."""
    from pyg_lightgode.apps.serving.fold_in import LightGODEFoldIn, one_step
    from pyg_lightgode.apps.training.recipes import LIGHTGODE_SETTINGS
    from pyg_lightgode.data import bipartite_to_adj_t
    from pyg_lightgode.nn.conv import LightGODEConv
    t = LIGHTGODE_SETTINGS[args.dataset]['t']
    fold = LightGODEFoldIn(user0, item0, base.train_index, t=t)
    train = split.train_index
    gen = torch.Generator().manual_seed(args.seed)
    user_times, edge_times, rows = [], [], []
    for j in range(min(args.repeats, new.numel())):
        items = train[1][train[0] == new[j]]
        U = fold.num_users
        edges = torch.stack([torch.full_like(items, U), items])
        update, seconds = timed(lambda: fold.add(edges, num_new_users=1))
        user_times.append(seconds)
        rows.append(update.users.numel() + update.items.numel())
    for _ in range(args.repeats):
        edges = torch.stack([
            torch.randint(0, fold.num_users, (10, ), generator=gen),
            torch.randint(0, fold.num_items, (10, ), generator=gen)])
        _, seconds = timed(lambda: fold.add(edges))
        edge_times.append(seconds)
    full_users, full_items = fold.recompute()
    equal = bool(torch.equal(full_users, fold.user_embedding)
                 and torch.equal(full_items, fold.item_embedding))
    index = fold.edge_index
    e0_u, e0_i = fold.user_e0, fold.item_e0
    full = median_time(lambda: one_step(e0_u, e0_i, index, t), 3)

    def conv():
        adj_t = bipartite_to_adj_t(index, e0_u.size(0), e0_i.size(0))
        return LightGODEConv(t=t)(torch.cat([e0_u, e0_i]), adj_t)

    full_conv = median_time(conv, 3)
    return {
        'new_user_seconds_median': statistics.median(user_times),
        'new_user_rows_recomputed_median': statistics.median(rows),
        'ten_edges_seconds_median': statistics.median(edge_times),
        'full_one_step_seconds': full,
        'full_lightgodeconv_with_adjacency_seconds': full_conv,
        'equal_to_full_recompute': equal,
        'num_nodes': fold.num_users + fold.num_items,
        'num_edges': fold.num_edges,
    }


def latency(args, split, tables, rule):
    from pyg_lightgode.apps.serving.recommenders import (
        LightGODERecommender,
        load_recommender,
    )
    from pyg_lightgode.apps.training.recipes import LIGHTGODE_SETTINGS
    t = LIGHTGODE_SETTINGS[args.dataset]['t']
    rec = LightGODERecommender(tables[0], tables[1], split.train_index, t=t,
                               rule=rule)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'artefact.pt')
        _, save_s = timed(lambda: rec.save(path))
        size = os.path.getsize(path)
        rec, load_s = timed(lambda: load_recommender(path))
    torch.set_num_threads(1)
    train = split.train_index
    count = torch.bincount(train[0], minlength=split.num_users)
    users = count.nonzero().view(-1)
    gen = torch.Generator().manual_seed(args.seed + 1)
    pick = users[torch.randint(0, users.numel(), (args.queries, ),
                               generator=gen)]
    order = torch.argsort(train[0], stable=True)
    ptr = torch.zeros(split.num_users + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(count, 0)
    items = train[1][order]
    histories = [items[ptr[u]:ptr[u + 1]].tolist() for u in pick.tolist()]
    for h in histories[:20]:  # warm-up
        rec.recommend(h, k=20)
    times = []
    for h in histories:
        start = time.perf_counter()
        rec.recommend(h, k=20)
        times.append(time.perf_counter() - start)
    times = torch.tensor(times) * 1000
    item_emb = rec.fold.item_embedding
    query = item_emb[0].clone()
    peer = median_time(lambda: torch.topk(item_emb @ query, 20), 200) * 1000
    return ({'p50': round(float(times.quantile(0.5)), 3),
             'p99': round(float(times.quantile(0.99)), 3)},
            {'mean_ms': round(float(times.mean()), 3),
             'max_ms': round(float(times.max()), 3),
             'history_length_mean': round(
                 sum(map(len, histories)) / len(histories), 1),
             'peer_score_and_top20_ms': round(peer, 4),
             'artefact_bytes': size, 'artefact_save_seconds': save_s,
             'artefact_load_seconds': load_s, 'threads': 1,
             'load_average': [round(x, 2) for x in os.getloadavg()]})


def summary(out: dict) -> str:
    r"""The issue-format figures in a few lines."""
    lines = []
    for key in ('new_users', 'new_items'):
        r = out[key]
        lines.append(
            f"{key}: fold-in Recall@20 {r['fold_in']['recall@20']:.4f} / "
            f"NDCG@20 {r['fold_in']['ndcg@20']:.4f}, retrain "
            f"{r['retrain']['recall@20']:.4f} / {r['retrain']['ndcg@20']:.4f}"
            f"; seconds fold-in {r['seconds']['fold_in']:.3f}, retrain "
            f"{r['seconds']['retrain']:.1f}")
    lat = out['latency_ms']
    lines.append(f"latency ms: p50 {lat['p50']}, p99 {lat['p99']}")
    return '\n'.join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    threads = cli.set_threads(args.threads)
    start = time.perf_counter()
    details = {'command': ' '.join(sys.argv), 'dataset': args.dataset,
               'epochs_budget': args.epochs, 'patience': args.patience,
               'machine_start': machine(threads)}
    split = load_split(args)
    details['split'] = split.stats()
    new_users = held_out(split.num_users, args.share, args.seed, 1)
    new_items = held_out(split.num_items, args.share, args.seed, 2)
    log(f'{args.dataset}: {split.stats()}; {threads} thread(s); stage 1/5: '
        f'retraining on everything')
    user_f, item_f, retrain_info = train(args, split, 'retrain')
    details['retrain_training'] = retrain_info
    log(f'retrain: {retrain_info}')
    from pyg_lightgode.apps.serving.fold_in import one_step
    from pyg_lightgode.apps.training.recipes import LIGHTGODE_SETTINGS
    t = LIGHTGODE_SETTINGS[args.dataset]['t']
    full_tables = one_step(user_f, item_f, split.train_index, t)
    log('stage 2/5: new users (base model, fold-in)')
    details['new_users'], base = fold_in_experiment(
        args, split, 0, new_users, full_tables, retrain_info)
    log('stage 3/5: incremental propagation timings')
    details['incremental'] = incremental_timing(args, split, *base,
                                                new_users)
    log(f"incremental: {details['incremental']}")
    log('stage 4/5: new items (base model, fold-in)')
    details['new_items'], _ = fold_in_experiment(
        args, split, 1, new_items, full_tables, retrain_info)
    rule = select_rule(details['new_users'], details['new_items'])
    details['selected_rule'] = rule
    details['best_rule_per_experiment'] = {
        key: select_rule(details[key]) for key in ('new_users', 'new_items')}
    out = {'new_users': report(details['new_users'], rule),
           'new_items': report(details['new_items'], rule)}
    log(f'stage 5/5: {args.queries} history queries from an artefact')
    out['latency_ms'], details['latency'] = latency(
        args, split, (user_f, item_f), rule)
    details['machine_end'] = machine(threads)
    details['total_seconds'] = time.perf_counter() - start
    print(f'rule {rule} (chosen on validation), '
          f"{details['total_seconds']:.0f} s in all")
    print(summary(out))
    if args.print_json:
        print(json.dumps(out, indent=1))
    from pyg_lightgode.data.io import write_json
    if args.json:
        write_json(out, args.json)
        print(f'wrote {args.json}')
    if args.details:
        write_json(details, args.details)
        print(f'wrote {args.details}')


if __name__ == '__main__':
    main()
