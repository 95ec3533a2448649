r"""Trains (or fits) and evaluates models on one split with one seed and
prints a table: Recall@20, NDCG@20, seconds per stage, peak memory.

An experiment is a file in configs/ (one per published result); the flags
choose the data, the models and the machine:

    python benchmarks/run.py --config configs/movielens100k_quick.json --raw-dir ../shared/data/ml-100k
    python benchmarks/run.py --config configs/gowalla_filters.json --raw-dir ../shared/data/gowalla

Every model runs in its own process forked from one server that imported
torch once, so its peak resident memory (ru_maxrss) is its own pipeline's.
The experiment file is checked completely before anything trains, and the
plan with its expected duration is printed first.
"""
import argparse
import datetime
import hashlib
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from pyg_lightgode.apps.cli import (  # noqa: E402
    HelpFormatter,
    add_threads_argument,
)
from pyg_lightgode.apps.configs import (  # noqa: E402 (no torch import)
    DATASETS,
    FILTER_MODELS,
    MODELS,
    ConfigError,
    load_config,
    merge_overrides,
    run_name,
    validate_config,
)

#: Datasets whose split holds out 10% of the training pairs for validation
#: (MovieLens' own split is 8:1:1).
VAL_RATIO = {'gowalla': 0.1, 'yelp2018': 0.1, 'amazon-book': 0.1}
# Training settings per mode; quick is the CI smoke run (minutes).
MODES = {
    'quick': dict(epochs=2, patience=None),
    'full': dict(epochs=300, patience=10),
}
SETTINGS = {  # Per model: batch size and learning rate.
    'lightgode': {},  # LIGHTGODE_SETTINGS, per dataset.
    'mf-bpr': dict(batch_size=2048, lr=1e-3),
    # 1e-3 made LightGCN stop early on MovieLens-100K (0.20 Recall@20 vs
    # 0.35 with 5e-3, measured).
    'lightgcn-2': dict(batch_size=2048, lr=5e-3),
    'lightgcn-3': dict(batch_size=2048, lr=5e-3),
    'pinsage': {},  # PINSAGE_SETTINGS, per dataset.
    # FILTER_SETTINGS, per dataset:
    'gfcf': {}, 'bspm': {}, 'chebycf': {}, 'turbocf': {}, 'userknn': {},
    'itemknn': {},
    'hybrid': {},  # LightGODE's settings + the filters'.
}
#: Rough wall seconds per model at one thread on 2 cores (BENCHMARKS.md),
#: for the plan printed before a run; quick mode on the small datasets is
#: about a minute for everything.
EXPECTED_SECONDS = {
    'movielens100k': {'quick': dict(pinsage=20, **{'lightgcn-3': 10}),
                      'full': dict(lightgode=40, pinsage=240, hybrid=60, **{
                          'mf-bpr': 20, 'lightgcn-2': 60,
                          'lightgcn-3': 140})},
    'gowalla': {'quick': dict(lightgode=120, pinsage=700, gfcf=60, bspm=200,
                              chebycf=600, turbocf=300, userknn=600,
                              itemknn=300, ease=600, rp3beta=600,
                              hybrid=1200, **{
                                  'mf-bpr': 120, 'lightgcn-2': 1500,
                                  'lightgcn-3': 2100}),
                'full': dict(lightgode=3600, pinsage=3600, gfcf=60,
                             bspm=200, chebycf=600, turbocf=300,
                             userknn=600, itemknn=300, ease=600,
                             rp3beta=600, hybrid=6000, **{
                                 'mf-bpr': 7200, 'lightgcn-2': 200000,
                                 'lightgcn-3': 300000})},
}
STUDY_TIMES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine(threads: int) -> str:
    import torch
    return (f'{platform.processor() or platform.machine()}, '
            f'{os.cpu_count()} cores, torch {torch.__version__}, '
            f'{threads} torch threads per model, load average '
            f'{os.getloadavg()[0]:.1f}')


def test_metrics(split, users, items):
    from pyg_lightgode.metrics import evaluate_ranking
    return evaluate_ranking(users, items, split.test_index,
                            exclude_links=split.known_interactions('test'),
                            ks=(20, ), metrics=('recall', 'ndcg'))


def timed(fn):
    import torch
    t0 = time.perf_counter()
    with torch.no_grad():
        out = fn()
    return out, time.perf_counter() - t0


def study_rows(model, split, name):
    r"""Post-training propagation of trained tables: none, 1..10 discrete
    layers and the ODE at several times, on the test set."""
    from pyg_lightgode.apps.training.recipes import sweep_propagation
    rows = sweep_propagation(model, split, times=STUDY_TIMES, num_layers=10,
                             part='test')
    for row in rows:
        row['trained'] = name
    return rows


def lightgode_from_tables(split, user_emb, item_emb, **kwargs):
    r"""A :class:`LightGODE` holding already-trained tables, to propagate
    them after training."""
    import torch

    from pyg_lightgode.nn.models import LightGODE
    model = LightGODE(split.num_users, split.num_items, user_emb.size(1),
                      **kwargs)
    with torch.no_grad():
        model.user_embedding.weight.copy_(user_emb)
        model.item_embedding.weight.copy_(item_emb)
    return model


def cache_path(args, settings: dict) -> Optional[str]:
    r"""Where LightGODE's trained tables for these settings live in
    ``--cache`` (None without it)."""
    if not args.cache:
        return None
    key = json.dumps(settings, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(args.cache, f'lightgode-{args.dataset}-{digest}.pt')


def lightgode_tables(args, split, opts, common):
    r"""LightGODE trained with the dataset's tuned settings: from the cache
    when an entry with the same settings exists, else trained (and cached).
    Returns ``(user_emb, item_emb, info, test_tables)`` with the training
    figures. With ``--refit`` (and a validation part), ``test_tables`` are
    the tables retrained on training + validation for the epoch count
    selected on validation, with no evaluation during that run; else
    None."""
    from pyg_lightgode.apps.training.recipes import LIGHTGODE_SETTINGS
    tuned = LIGHTGODE_SETTINGS.get(args.dataset,
                                   LIGHTGODE_SETTINGS['movielens100k'])
    opts = dict(opts, **{key: tuned[key]
                         for key in ('batch_size', 'lr', 'weight_decay')})
    settings = dict(dataset=args.dataset, seed=args.seed, dim=args.dim,
                    gamma=tuned['gamma'], sparse=tuned['sparse'], **opts)
    users, items, info = cached_tables(args, split, settings, opts, common,
                                       tuned)
    if not args.refit or split.val_index is None:
        return users, items, info, None
    epochs = max(1, info['best_epoch'])
    refit_opts = dict(opts, epochs=epochs, patience=None)
    refit_users, refit_items, refit_info = cached_tables(
        args, split.merge_validation(),
        dict(settings, refit_epochs=epochs), refit_opts,
        dict(common, validate=False), tuned)
    info = dict(info, refit=refit_info,
                train_seconds=info['train_seconds'] +
                refit_info['train_seconds'])
    return users, items, info, (refit_users, refit_items)


def cached_tables(args, split, settings, opts, common, tuned):
    r"""One LightGODE training run on :obj:`split`, through the cache."""
    import torch

    from pyg_lightgode.nn.models import LightGODE
    from pyg_lightgode.apps.training.recipes import train_lightgode
    path = cache_path(args, settings)
    if path and os.path.exists(path):
        entry = torch.load(path, weights_only=True)
        if entry.get('settings') == json.dumps(settings, sort_keys=True):
            print(f'lightgode: trained tables from {path}', file=sys.stderr)
            return entry['user'], entry['item'], dict(entry['info'])
    model = LightGODE(split.num_users, split.num_items, settings['dim'],
                      t=tuned['t'], gamma=tuned['gamma'],
                      sparse=tuned['sparse'])
    result = train_lightgode(model, split, **opts, **common)
    info = dict(best_epoch=result.best_epoch, epochs_run=result.epochs_run,
                seconds_per_epoch=result.seconds_per_epoch,
                train_seconds=sum(h['train_seconds']
                                  for h in result.history))
    users = model.user_embedding.weight.detach().clone()
    items = model.item_embedding.weight.detach().clone()
    if path:
        from pyg_lightgode.data.io import atomic_save
        os.makedirs(args.cache, exist_ok=True)
        atomic_save({'user': users, 'item': items, 'info': info,
                     'settings': json.dumps(settings, sort_keys=True)}, path)
    return users, items, info


def scorer_metrics(split, scorer):
    from pyg_lightgode.metrics import RankingEvaluator
    evaluator = RankingEvaluator(split.test_index,
                                 exclude_links=split.known_interactions('test'),
                                 num_users=split.num_users,
                                 num_items=split.num_items, ks=(20, ),
                                 metrics=('recall', 'ndcg'))
    return evaluator.evaluate_scorer(scorer, split.num_users,
                                     split.num_items)


def run_filter(args, split, name) -> dict:
    r"""A training-free filter with its official settings, fitted on the
    full official training set (training + validation parts)."""
    from pyg_lightgode.apps.hybrid.recipe import (
        filter_settings,
        known_graph,
        make_filter,
    )
    overrides = dict(args.filters.get(name, {}))
    tuning = None
    if args.tune is not None and name in args.tune['models']:
        from pyg_lightgode.apps.tuning import tune_filter
        tuned, tuning = tune_filter(
            name, split, args.tune['budget'],
            space=args.tune['space'].get(name), fold=args.tune['fold'],
            seed=args.seed, progress=lambda line: print(line,
                                                        file=sys.stderr))
        tuning.pop('rows')
        overrides = dict(tuned, **overrides)
    settings = dict(filter_settings(name, args.dataset, split.num_users,
                                    split.num_items), **overrides)
    model = make_filter(name, args.dataset, split.num_users, split.num_items,
                        **overrides)
    graph = known_graph(split, 'test')
    fitted, fit_s = timed(lambda: model.fit(graph))
    metrics, score_s = timed(lambda: scorer_metrics(split, fitted.score))
    out = {'model': name, 'settings': settings, **metrics,
           'seconds': {'fit': fit_s, 'score_and_rank': score_s}}
    if tuning is not None:
        out['tuning'] = tuning
        out['seconds']['tune'] = tuning['seconds']
    return out


def run_hybrid(args, split, opts, common) -> dict:
    import torch

    from pyg_lightgode.apps.hybrid.recipe import fit_hybrid
    from pyg_lightgode.apps.training.recipes import LIGHTGODE_SETTINGS
    users, items, info, test_tables = lightgode_tables(args, split, opts,
                                                       common)

    def other_run(seed: int, dim: int):
        # LightGODE's tables of a run with another seed / embedding size.
        return lightgode_tables(
            argparse.Namespace(**{**vars(args), 'seed': seed, 'dim': dim}),
            split, opts, dict(common, seed=seed))

    hybrid = args.hybrid
    seeds = hybrid['ensemble_seeds']
    if seeds:
        # An ensemble of LightGODE runs with other seeds: propagation is
        # linear per column, so the concatenated tables score the sum of
        # the runs' inner products (each run keeps its d).
        runs = [(users, items, info, test_tables)] + [
            other_run(seed, args.dim) for seed in seeds]
        users = torch.cat([run[0] for run in runs], dim=1)
        items = torch.cat([run[1] for run in runs], dim=1)
        if test_tables is not None:
            test_tables = tuple(torch.cat([run[3][j] for run in runs], dim=1)
                                for j in range(2))
        info = dict(info, seeds=[args.seed] + seeds,
                    runs=[run[2] for run in runs],
                    train_seconds=sum(run[2]['train_seconds']
                                      for run in runs))
    extra_tables = {}
    for run in hybrid['runs']:
        # Other runs as separately weighted parts.
        seed, dim = run['seed'], run['dim']
        run_u, run_i, run_info, run_test = other_run(seed, dim)
        name = run_name(seed, dim)
        extra_tables[name] = (run_u, run_i) + (
            (run_test, ) if run_test is not None else ())
        info = dict(info, extra_runs={**info.get('extra_runs', {}),
                                      name: run_info},
                    train_seconds=info['train_seconds'] +
                    run_info['train_seconds'])
    tuned = LIGHTGODE_SETTINGS.get(args.dataset,
                                   LIGHTGODE_SETTINGS['movielens100k'])
    t = hybrid['t'] or (tuned['t'] if args.t is None else args.t)
    parts = hybrid['parts']
    (fusion, report), fit_s = timed(lambda: fit_hybrid(
        split, users, items, parts=parts, t=t, test_tables=test_tables,
        popularity=hybrid['popularity'],
        filter_overrides=args.filters,
        filter_candidates=hybrid['candidates'] or None,
        extra_tables=extra_tables,
        **({'coarse': hybrid['weights']}
           if hybrid['weights'] is not None else {})))
    t = report['t']
    metrics, score_s = timed(lambda: scorer_metrics(split, fusion.score))
    seconds = {'train_lightgode': info['train_seconds'],
               **report['seconds'], 'score_and_rank': score_s}
    return {'model': 'hybrid', **metrics, 'weights': report['weights'],
            'validation': report['validation'], 'parts': parts, 't': t,
            'filter_settings': report['filter_settings'],
            'extra_t': report['extra_t'],
            'lightgode_training': info, 'seconds': seconds}


def run_model(args) -> dict:
    import torch

    from pyg_lightgode.datasets import load_dataset
    from pyg_lightgode.apps.training.trainer import seed_everything
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    seed_everything(args.seed)
    split = load_dataset(args.dataset, args.root, raw_dir=args.raw_dir,
                         **({'val_ratio': VAL_RATIO[args.dataset]}
                            if args.dataset in VAL_RATIO else {}))
    name = args.model
    if name in FILTER_MODELS:
        out = run_filter(args, split, name)
        out['peak_mib'] = peak_mib()
        return out
    opts = dict(SETTINGS[name], **MODES[args.mode])
    if args.epochs is not None:
        opts['epochs'] = args.epochs
    if args.patience is not None:
        opts['patience'] = args.patience
    common = dict(seed=args.seed, progress=False)
    if name == 'hybrid':
        out = run_hybrid(args, split, opts, common)
        out['peak_mib'] = peak_mib()
        return out
    out = {'model': name, **opts}
    study = []
    if name == 'lightgode':
        from pyg_lightgode.apps.hybrid.recipe import propagate_tables
        from pyg_lightgode.apps.training.recipes import LIGHTGODE_SETTINGS
        tuned = LIGHTGODE_SETTINGS.get(args.dataset,
                                       LIGHTGODE_SETTINGS['movielens100k'])
        t = tuned['t'] if args.t is None else args.t
        table_u, table_i, info, refit = lightgode_tables(args, split, opts,
                                                         common)
        graph = split.train_index
        if refit is not None:  # Refitted on, and propagated over, all known.
            from pyg_lightgode.apps.hybrid.recipe import known_graph
            (table_u, table_i), graph = refit, known_graph(split, 'test')
        (users, items), prop_s = timed(lambda: propagate_tables(
            table_u, table_i, graph, t=t))
        if args.study:
            model = lightgode_from_tables(split, table_u, table_i, t=t)
            study = study_rows(model, split, 'MF (align+uniform)')
    elif name == 'pinsage':
        # User-item PinSage (users are nodes), settings per dataset chosen
        # on validation (PINSAGE_SETTINGS); the best validation epoch.
        from pyg_lightgode.apps.training.pinsage import run_pinsage_user_item
        t0 = time.perf_counter()
        users, items, result = run_pinsage_user_item(
            split, args.dataset, epochs=opts['epochs'],
            patience=opts['patience'], seed=args.seed)
        train_s = sum(h['train_seconds'] for h in result.history)
        prop_s = max(0.0, time.perf_counter() - t0 - train_s)
    else:
        from torch_geometric.nn.models import LightGCN
        from pyg_lightgode.apps.training.recipes import train_bpr
        layers = 0 if name == 'mf-bpr' else int(name.split('-')[1])
        model = LightGCN(split.num_nodes, 64, layers)
        result = train_bpr(model, split, **opts, **common)
        adj_t = split.adj_t()
        emb, prop_s = timed(lambda: model.get_embedding(adj_t))
        users, items = emb[:split.num_users], emb[split.num_users:]
        if args.study:
            table = model.embedding.weight.detach()
            trained = ('MF-BPR' if layers == 0 else
                       f'LightGCN-{layers} tables (no propagation at test)')
            study = study_rows(
                lightgode_from_tables(split, table[:split.num_users],
                                      table[split.num_users:]), split,
                trained)
            if layers:
                study.append({'trained': f'LightGCN-{layers}',
                              'propagation': 'its own (trained with it)',
                              **test_metrics(split, users, items)})
    metrics, eval_s = timed(lambda: test_metrics(split, users, items))
    out.update(metrics)
    if name != 'lightgode':
        info = dict(best_epoch=result.best_epoch,
                    epochs_run=result.epochs_run,
                    seconds_per_epoch=result.seconds_per_epoch,
                    train_seconds=sum(h['train_seconds']
                                      for h in result.history))
    out.update(info, propagation_seconds=prop_s, peak_mib=peak_mib(),
               study=study, seconds={'train': info['train_seconds'],
                                     'propagate': prop_s,
                                     'score_and_rank': eval_s})
    return out


def markdown(rows, command, dataset, threads) -> str:
    lines = [f'#### {dataset}', '',
             '| model | Recall@20 | NDCG@20 | epochs to best (run) | '
             'seconds per stage | total s | peak MiB |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        if 'error' in r:
            lines.append(f"| {r['model']} | failed: {r['error']} ||||||")
            continue
        epochs = (f"{r['best_epoch']} ({r['epochs_run']})"
                  if 'best_epoch' in r else '-')
        stages = ', '.join(f'{k} {v:.1f}' for k, v in r['seconds'].items())
        extra = ''
        if 'weights' in r:
            extra = f" (t {r['t']:g}, weights " + ', '.join(
                f'{k} {v:g}' for k, v in r['weights'].items()) + ')'
        lines.append(
            f"| {r['model']}{extra} | {r['recall@20']:.4f} | "
            f"{r['ndcg@20']:.4f} | {epochs} | {stages} | "
            f"{sum(r['seconds'].values()):.1f} | {r['peak_mib']:.0f} |")
    study = [s for r in rows for s in r.get('study', [])]
    if study:
        lines += ['', '| trained embeddings | propagation after training | '
                  'Recall@20 | NDCG@20 | discrepancy |', '|---|---|---|---|---|']
        for s in study:
            how = s['propagation']
            if 't' in s:
                how += f" t={s['t']:g}"
            if 'layers' in s:
                how += f" {s['layers']} layers"
            disc = (f"{s['discrepancy']:.4f}" if 'discrepancy' in s else '')
            lines.append(f"| {s['trained']} | {how} | {s['recall@20']:.4f} | "
                         f"{s['ndcg@20']:.4f} | {disc} |")
    lines += ['', f'Command: `{command}`  ',
              f'Machine: {machine(threads)}; date: '
              f'{datetime.date.today().isoformat()}', '']
    return '\n'.join(lines)


def plot_study(rows, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed; no plot written')
        return
    study = [s for r in rows for s in r.get('study', [])
             if 'discrepancy' in s]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, axis, label in (('layers', axes[0], 'discrete layers'),
                             ('t', axes[1], 'ODE time t')):
        for trained in sorted({s['trained'] for s in study}):
            sel = [s for s in study if s['trained'] == trained and key in s]
            if not sel:
                continue
            xs = [s[key] for s in sel]
            line, = axis.plot(xs, [s['ndcg@20'] for s in sel], 'o-',
                              label=f'{trained}: NDCG@20')
            twin = axis.twinx() if not hasattr(axis, '_twin') else axis._twin
            axis._twin = twin
            twin.plot(xs, [s['discrepancy'] for s in sel], '--',
                      color=line.get_color(), label=f'{trained}: discrepancy')
            twin.set_ylabel('embedding discrepancy (dashed)')
        axis.set_xlabel(label)
        axis.set_ylabel('NDCG@20 (solid)')
        axis.legend(fontsize=7, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f'wrote {path}')


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.strip(),
        epilog=f'Models: {", ".join(MODELS)}. Datasets: '
        f'{", ".join(DATASETS)}. Everything else (LightGODE\'s dim, t and '
        'refit, filter settings, the hybrid\'s parts and candidates, '
        'expected figures) is in the --config file; see '
        'pyg_lightgode/apps/configs.py for its keys.',
        formatter_class=HelpFormatter)
    add = parser.add_argument
    add('--config', default=None,
        help='experiment file (JSON, e.g. configs/gowalla_hybrid.json); '
        'flags given here override its values')
    add('--dataset', default=None, choices=list(DATASETS),
        help="the dataset (default: the config's, else movielens100k)")
    add('--root', default='data', help='datasets folder')
    add('--raw-dir', default=None,
        help='folder with the already-downloaded raw files')
    add('--models', default=None,
        help="comma list of models, or 'all' (default: the config's; "
        'without a config: all, on the small datasets only)')
    add('--mode', default=None, choices=['quick', 'full'],
        help='quick: a 2-epoch smoke run; full: up to 300 epochs with '
        "early stopping (default: the config's, else quick)")
    add('--epochs', type=int, default=None,
        help="override the mode's epoch budget")
    add('--seed', type=int, default=None,
        help="random seed (default: the config's, else 2020)")
    add_threads_argument(parser)
    add('--cache', default=None,
        help="folder for LightGODE's trained tables, shared by the "
        'lightgode and hybrid rows')
    add('--json', default=None, help='write all results as JSON')
    add('--tune', type=float, default=None, metavar='SECONDS',
        help="choose the filters' settings on validation, at most SECONDS "
        "per filter (overrides the config's tune budget)")
    add('--study', nargs='?', const='', default=None, metavar='PNG',
        help='add the preliminary experiment and the embedding-discrepancy '
        'study (and plot it to PNG)')
    add('--dry-run', action='store_true',
        help='check the experiment and print the plan, then stop')
    return parser


def experiment(args, parser) -> dict:
    r"""The validated experiment: the config file with the flags over it."""
    models = args.models
    if models is not None:
        models = list(MODELS) if models == 'all' else [
            m for m in models.split(',') if m]
    overrides = dict(dataset=args.dataset, models=models, mode=args.mode,
                     seed=args.seed, epochs=args.epochs)
    try:
        config = (load_config(args.config) if args.config else
                  validate_config({'dataset': args.dataset or
                                   'movielens100k'}, '<command line>'))
        if args.tune is not None:  # The budget over the config's block.
            overrides['tune'] = dict(config['tune'] or {}, budget=args.tune)
        return merge_overrides(config, overrides,
                               args.config or '<command line>')
    except ConfigError as error:
        parser.error(str(error))


def plan(config, args) -> float:
    r"""Prints what will run and returns the expected seconds."""
    expected = EXPECTED_SECONDS.get(config['dataset'], {}).get(
        config['mode'], {})
    default = 20 if config['dataset'] == 'movielens100k' else 600
    total = sum(expected.get(m, default) for m in config['models'])
    print(f"plan: {', '.join(config['models'])} on {config['dataset']} "
          f"(mode {config['mode']}, seed {config['seed']}, "
          f"{args.threads} thread(s)); expected about "
          f'{total / 60:.0f} min', file=sys.stderr, flush=True)
    return total


def job_for(config, args, model: str) -> argparse.Namespace:
    r"""Everything one model's process needs."""
    return argparse.Namespace(
        model=model, dataset=config['dataset'], root=args.root,
        raw_dir=args.raw_dir, mode=config['mode'], seed=config['seed'],
        epochs=config['epochs'], patience=config['patience'],
        dim=config['lightgode']['dim'], t=config['lightgode']['t'],
        refit=config['lightgode']['refit'], filters=config['filters'],
        hybrid=config['hybrid'], tune=config['tune'], cache=args.cache,
        threads=args.threads, study=args.study is not None)


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    config = experiment(args, parser)
    seconds = plan(config, args)
    if args.dry_run:
        print(json.dumps(config, indent=1))
        return None
    if args.config is None and args.models is None and seconds > 3600:
        parser.error(f"without --config or --models this runs every model "
                     f"on {config['dataset']}: about {seconds / 3600:.0f} "
                     f"h. Pick a file in configs/, name the --models, or "
                     f"pass --models all to confirm")
    for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):  # Before torch.
        os.environ[name] = str(args.threads or os.cpu_count() or 1)
    command = 'python benchmarks/run.py ' + ' '.join(
        argv if argv is not None else sys.argv[1:])
    rows = []
    # A server process imports once; each model runs in a fresh child forked
    # from it (its own ru_maxrss), never in this process.
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload(['torch', 'torch_geometric',
                                    'pyg_lightgode'])
    for model in config['models']:
        t0 = time.perf_counter()
        try:
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                row = pool.submit(run_model,
                                  job_for(config, args, model)).result()
        except BrokenProcessPool as error:  # Killed (memory) or crashed.
            rows.append({'model': model, 'error': f'process died: {error}'})
            print(f'{model}: FAILED, its process died: {error}',
                  file=sys.stderr)
            continue
        except Exception as error:  # noqa: BLE001 (reported, run goes on)
            rows.append({'model': model,
                         'error': f'{type(error).__name__}: {error}'[:200]})
            print(f'{model}: FAILED\n' + ''.join(
                traceback.format_exception(error))[-3000:], file=sys.stderr)
            continue
        row['wall_seconds'] = time.perf_counter() - t0
        rows.append(row)
        print(f"{model}: recall@20 {row['recall@20']:.4f} ndcg@20 "
              f"{row['ndcg@20']:.4f} ({row['wall_seconds']:.0f} s)",
              flush=True)
    table = markdown(rows, command, config['dataset'], args.threads)
    print(table)
    if args.study:
        plot_study(rows, args.study)
    if args.json:
        from pyg_lightgode.data.io import write_json
        write_json({'dataset': config['dataset'], 'command': command,
                    'config': config, 'machine': machine(args.threads),
                    'date': datetime.date.today().isoformat(),
                    'models': {r['model']: {
                        'test': {key: r[key] for key in ('recall@20',
                                                          'ndcg@20')
                                 if key in r},
                        'seconds': r.get('seconds', {}),
                        'peak_mib': r.get('peak_mib'),
                        **{key: value for key, value in r.items()
                           if key not in ('model', 'recall@20', 'ndcg@20',
                                          'seconds', 'peak_mib')}}
                        for r in rows}}, args.json)
    if any('error' in r for r in rows):
        sys.exit(1)
    return rows


if __name__ == '__main__':
    main()
