r"""EASE and RP3beta on one dataset: settings chosen on validation (fit on
the training part, rank the validation part), then a refit on training +
validation and the test metrics (Recall@20 / NDCG@20, all-item ranking).

    python benchmarks/bench_linear.py --dataset gowalla \
        --raw-dir ../shared/data/gowalla --model ease --reg 100,200,400

Each candidate is one JSON object in ``--grid`` (or the shorthand flags);
with a single candidate the validation stage is skipped unless
``--validate`` is given. :func:`tune_and_test` is the function a results
script calls. Reports seconds per stage, peak resident memory (MiB), torch
threads and the load average.
"""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from pyg_lightgode.apps.cli import (  # noqa: E402 (standard library only)
    add_data_arguments,
    add_threads_argument,
    make_parser,
    set_threads,
)

#: Published settings, as candidates (RP3beta: Graph-RSs reproducibility
#: study, RecSys 2023, tuned on Gowalla).
PUBLISHED = {'rp3beta': {'gowalla': dict(k=777, alpha=0.566, beta=0.001)}}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _evaluate(split, model, part: str) -> dict:
    from pyg_lightgode.metrics import RankingEvaluator
    target = split.val_index if part == 'val' else split.test_index
    evaluator = RankingEvaluator(target,
                                 exclude_links=split.known_interactions(part),
                                 num_users=split.num_users,
                                 num_items=split.num_items, ks=(20, ),
                                 metrics=('recall', 'ndcg'))
    return evaluator.evaluate_scorer(model.score, split.num_users,
                                     split.num_items)


def fit_and_evaluate(split, name: str, settings: dict, part: str) -> dict:
    r"""Fits model :obj:`name` with :obj:`settings` on the interactions
    known when ranking :obj:`part` (:obj:`'val'`: training; :obj:`'test'`:
    training + validation) and ranks :obj:`part`."""
    import torch

    from pyg_lightgode.apps.hybrid.recipe import FILTERS, known_graph
    model = FILTERS[name](split.num_users, split.num_items, **settings)
    graph = known_graph(split, part) if split.val_index is not None else \
        split.train_index
    t0 = time.perf_counter()
    with torch.no_grad():
        model.fit(graph)
        fit_s = time.perf_counter() - t0
        metrics = _evaluate(split, model, part)
    return {'settings': settings, **metrics,
            'seconds': {'fit': round(fit_s, 2), 'score_and_rank': round(
                time.perf_counter() - t0 - fit_s, 2)},
            'peak_mib': round(peak_mib())}


def user_subsample(split, fraction: float, seed: int = 0):
    r"""The training and validation parts of a random :obj:`fraction` of
    the users, renumbered :obj:`0..m-1` (the test part is left empty of
    use: only the validation stage runs on it)."""
    import torch

    from pyg_lightgode.data import BipartiteSplit
    gen = torch.Generator().manual_seed(seed)
    keep = torch.rand(split.num_users, generator=gen) < fraction
    new_id = torch.full((split.num_users, ), -1, dtype=torch.long)
    new_id[keep] = torch.arange(int(keep.sum()))

    def part(index):
        index = index[:, keep[index[0]]]
        return torch.stack([new_id[index[0]], index[1]])

    return BipartiteSplit(int(keep.sum()), split.num_items,
                          part(split.train_index), part(split.test_index),
                          part(split.val_index), name=split.name)


def scale_settings(name: str, settings: dict, factor: float,
                   exponent: float = 1.0) -> dict:
    r"""Settings chosen on a user subsample, carried to the full data:
    EASE's :math:`\lambda` times :obj:`factor` :math:`^{e}` (:obj:`factor`
    = full / subsample users, :math:`e` = :obj:`exponent`); RP3beta's are
    kept. The Gram matrix grows linearly with the users (:math:`e = 1`),
    but the measured optima grew less: MovieLens-100K about
    :math:`e = 0.8`, Gowalla about :math:`e = 0` (notes/linear.md)."""
    out = dict(settings)
    if name == 'ease':
        out['reg'] = round(out.get('reg', 100.0) * factor**exponent, 3)
    return out


def tune_and_test(split, name: str, grid, validate: bool = True,
                  log=print, val_users: float = 1.0,
                  test: bool = True, val_exponent: float = 1.0) -> dict:
    r"""Chooses :obj:`name`'s settings among :obj:`grid` (a list of keyword
    dictionaries) by validation NDCG@20, refits the chosen ones on
    training + validation and returns the test row:
    :obj:`{'model', 'settings', 'recall@20', 'ndcg@20', 'validation':
    [...], 'seconds', 'peak_mib'}`. With :obj:`val_users` < 1 the
    validation stage runs on that share of the users
    (:func:`user_subsample`; EASE's cost is cubic in the users) and the
    chosen settings are carried over by :func:`scale_settings`."""
    grid = list(grid)
    rows = []
    if validate:
        if split.val_index is None:
            raise ValueError('choosing on validation needs a split with a '
                             'validation part (val_ratio > 0)')
        stage = split if val_users >= 1 else user_subsample(split,
                                                            val_users)
        for settings in grid:
            rows.append(fit_and_evaluate(stage, name, settings, 'val'))
            log(json.dumps({'stage': 'val', 'model': name,
                            'users': stage.num_users, **rows[-1]}))
        best = max(rows, key=lambda row: row['ndcg@20'])['settings']
        if stage is not split:
            best = scale_settings(name, best, split.num_users /
                                  stage.num_users, val_exponent)
    elif len(grid) == 1:
        best = grid[0]
    else:
        raise ValueError('several candidates need the validation stage')
    out = fit_and_evaluate(split, name, best, 'test') if test else {
        'settings': best}
    return {'model': name, **out, 'validation': rows,
            'tuning': {'trials': len(rows), 'seconds': round(sum(
                sum(row['seconds'].values()) for row in rows), 2)}}


def _numbers(text: str):
    return [float(x) for x in text.split(',') if x]


def candidates(args) -> list:
    r"""The grid of settings from the command line."""
    if args.grid:
        grid = json.loads(args.grid)
        return grid if isinstance(grid, list) else [grid]
    if args.model == 'ease':
        return [dict(reg=reg, dtype=args.dtype) for reg in _numbers(args.reg)]
    grid = [dict(k=int(k), alpha=a, beta=b) for k in _numbers(args.k)
            for a in _numbers(args.alpha) for b in _numbers(args.beta)]
    if args.published:
        published = PUBLISHED['rp3beta'].get(args.dataset)
        if published is None:
            raise SystemExit(f'no published RP3beta settings for '
                             f'{args.dataset}')
        grid = [published] + [g for g in grid if g != published]
    return grid


def main(argv=None):
    parser = make_parser(__doc__)
    add_data_arguments(parser, dataset='movielens100k')
    add = parser.add_argument
    add('--model', default='ease', choices=('ease', 'rp3beta'),
        help='the model measured')
    add('--reg', default='300', help="EASE's lambda candidates (comma list)")
    add('--dtype', default='float32', choices=('float32', 'float64'),
        help="EASE's float type")
    add('--k', default='100', help="RP3beta's neighbours (comma list)")
    add('--alpha', default='1.0', help="RP3beta's alpha (comma list)")
    add('--beta', default='0.0', help="RP3beta's beta (comma list)")
    add('--published', action='store_true',
        help='add the published RP3beta settings as a candidate')
    add('--grid', default=None,
        help='candidates as JSON (a list of keyword objects); replaces '
        'the shorthand flags')
    add('--validate', action='store_true',
        help='run the validation stage for a single candidate too')
    add('--val-users', type=float, default=1.0,
        help='share of the users the validation stage fits and ranks '
        "(EASE's lambda is then scaled, see --val-exponent)")
    add('--val-exponent', type=float, default=1.0,
        help="EASE's lambda from a user subsample is scaled by (full / "
        'subsample users) ** this')
    add('--no-test', action='store_true',
        help='stop after the validation stage')
    add('--peer', default=None,
        help='a filter (e.g. gfcf) fitted and tested in the same run with '
        'its published settings, for a time ratio measured under the same '
        'load')
    add_threads_argument(parser)
    add('--json', default=None, help='write the result row as JSON')
    args = parser.parse_args(argv)


    from pyg_lightgode.apps.cli import load_split
    from pyg_lightgode.data.io import write_json
    set_threads(args.threads)
    t0 = time.perf_counter()
    split = load_split(args)
    load_s = time.perf_counter() - t0
    grid = candidates(args)
    row = tune_and_test(split, args.model, grid,
                        validate=args.validate or len(grid) > 1,
                        log=lambda line: print(line, flush=True),
                        val_users=args.val_users, test=not args.no_test,
                        val_exponent=args.val_exponent)
    if args.peer:
        from pyg_lightgode.apps.hybrid.recipe import filter_settings
        settings = filter_settings(args.peer, args.dataset, split.num_users,
                                   split.num_items)
        peer = fit_and_evaluate(split, args.peer, settings, 'test')
        row['peer'] = {'model': args.peer, **peer}
        if 'seconds' in row:
            row['time_ratio'] = round(sum(row['seconds'].values()) / sum(
                peer['seconds'].values()), 3)
        print(json.dumps({'stage': 'peer', **row['peer']}), flush=True)
    row.update(dataset=args.dataset, threads=args.threads,
               load_average=round(os.getloadavg()[0], 2),
               load_seconds=round(load_s, 2),
               command='python benchmarks/bench_linear.py ' +
               ' '.join(sys.argv[1:] if argv is None else argv))
    print(json.dumps(row))
    if args.json:
        write_json(row, args.json)
    return row


if __name__ == '__main__':
    main()
