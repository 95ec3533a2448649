r"""Settings of the training-free filters chosen on validation, within a
time budget, for data that has no published settings.

The search starts from the published settings (or the stated fallback) and
walks one setting at a time through its grid (:data:`SPACES`), keeping a
value when it raises validation NDCG@20, until a pass changes nothing or
the budget is spent; settings that reuse the fitted spectral basis are
tried before the rank :obj:`k`, which needs a new one. So the tuned
settings are never worse on validation than the published ones, and a
budget of zero returns the published settings.

**Density.** The test stage fits a filter on all known pairs (training and
validation), the validation stage on fewer, and the best settings of a
filter move with the density of its graph (a sparser graph favoured
settings that lost on Gowalla's test). So the tuning fit keeps most of the
validation pairs too: it holds out only a :obj:`fold` of them (seeded), and
ranks that fold with everything else known. With the default
:obj:`fold=0.25` and a 10% validation part, the tuning graph has 97.5% of
the test-stage graph's pairs instead of 90%.
"""
import math
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor

from pyg_lightgode.apps.hybrid.recipe import (
    FILTERS,
    filter_settings,
    make_filter,
)
from pyg_lightgode.data import BipartiteSplit
from pyg_lightgode.metrics import RankingEvaluator

#: Candidate values of each filter's settings, searched one at a time
#: around the published (or fallback) settings. :obj:`k` is capped by the
#: data (at most a quarter of the smaller side).
SPACES: Dict[str, Dict[str, List]] = {
    'gfcf': {'alpha': [0.0, 0.1, 0.3, 0.5, 1.0],
             'k': [64, 128, 256, 512]},
    'bspm': {'beta': [0.0, 0.1, 0.2, 0.3, 0.5],
             'sharpen_t': [1.0, 1.5, 2.0, 2.5, 3.0],
             'blur_t': [0.5, 1.0, 1.5],
             'k': [128, 256, 448, 640]},
    'chebycf': {'alpha': [0.0, 0.1, 0.2, 0.4],
                'beta': [0.2, 0.3, 0.4, 0.5],
                'flatness': [1.0, 1.5, 2.0],
                'order': [4, 8, 12],
                'k': [128, 256, 512]},
    'turbocf': {'power': [0.5, 0.7, 1.0, 1.4],
                'alpha': [0.4, 0.5, 0.6, 0.7],
                'filter': [1, 2]},
    'ease': {'reg': [50.0, 100.0, 200.0, 326.5, 500.0, 1000.0]},
    'rp3beta': {'alpha': [0.4, 0.566, 0.8, 1.0],
                'beta': [0.0, 0.001, 0.1, 0.3], 'k': [100, 300, 777]},
    'userknn': {'power': [1.0, 2.0, 4.0], 'alpha': [0.25, 0.5, 0.75],
                'k': [50, 100, 200]},
    'itemknn': {'power': [1.0, 2.0, 4.0], 'k': [50, 100, 200]},
}
#: Settings whose change needs a new spectral basis: tried last.
_BASIS = ('k', )
METRIC = 'ndcg@20'


def tuning_split(split: BipartiteSplit, fold: float = 0.25, seed: int = 0
                 ) -> Tuple[Tensor, Tensor]:
    r"""The tuning graph (training pairs and the validation pairs outside
    the held-out fold) and the fold of validation pairs it is judged on."""
    if split.val_index is None or split.val_index.numel() == 0:
        raise ValueError("tuning needs a validation part in 'split' (e.g. "
                         "load_dataset(..., val_ratio=0.1))")
    if isinstance(fold, bool) or not isinstance(fold, (int, float)) or \
            not 0 < fold <= 1:
        raise ValueError(f"'fold' must be in (0, 1] (got {fold!r})")
    val = split.val_index
    gen = torch.Generator().manual_seed(seed)
    held = torch.rand(val.size(1), generator=gen) < fold
    if not bool(held.any()):
        held[0] = True
    graph = torch.cat([split.train_index, val[:, ~held]], dim=1)
    return graph, val[:, held]


def _grid(name: str, space: Optional[Mapping[str, Sequence]],
          start: Dict[str, Any], num_users: int, num_items: int
          ) -> Dict[str, List]:
    grid = {key: list(values) for key, values in
            (SPACES.get(name, {}) if space is None else space).items()}
    unknown = set(grid) - set(start) - {'k'}
    if unknown:
        raise ValueError(f"the search space of {name!r} names settings it "
                         f"does not have: {sorted(unknown)}")
    if 'k' in grid and 'k' in start:
        cap = max(1, min(num_users, num_items) // 4)
        grid['k'] = sorted({min(k, cap) for k in grid['k']})
    # Settings that keep the basis first, k last.
    return dict(sorted(grid.items(), key=lambda item: item[0] in _BASIS))


def tune_filter(name: str, split: BipartiteSplit,
                budget: float, space: Optional[Mapping[str, Sequence]] = None,
                fold: float = 0.25, seed: int = 0,
                progress: Optional[Any] = None
                ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    r"""Chooses the settings of filter :obj:`name` on :obj:`split`'s
    validation part within :obj:`budget` seconds. Returns the settings and
    a report: :obj:`{"trials", "seconds", "fold", "density",
    "published", "tuned", "rows"}` (validation NDCG@20 of the published and
    the chosen settings, and every trial)."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; valid names are "
                         f"{', '.join(FILTERS)}")
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or \
            not math.isfinite(budget) or budget < 0:
        raise ValueError(f"'budget' must be a number of seconds >= 0 (got "
                         f"{budget!r})")
    start_time = time.perf_counter()
    U, I = split.num_users, split.num_items
    graph, target = tuning_split(split, fold, seed)
    evaluator = RankingEvaluator(target, exclude_links=graph, num_users=U,
                                 num_items=I, ks=(20, ),
                                 metrics=('recall', 'ndcg'))
    best = filter_settings(name, split.name, U, I)
    grid = _grid(name, space, best, U, I)
    rows: List[Dict[str, Any]] = []
    fitted: Dict[Any, Any] = {}

    def evaluate(settings: Dict[str, Any]) -> float:
        model = make_filter(name, split.name, U, I, **settings)
        key = tuple(settings.get(s) for s in ('k', 'svd', 'niter', 'seed'))
        if model.spectral and key in fitted:
            model = model.fit_like(fitted[key])
        else:
            model = model.fit(graph)
            if model.spectral:
                fitted.clear()  # One basis held at a time.
                fitted[key] = model
        out = evaluator.evaluate_scorer(model.score, U, I)
        rows.append({'settings': dict(settings), **out})
        if progress is not None:
            progress(f'tune {name}: trial {len(rows)} '
                     f'{METRIC} {out[METRIC]:.5f} {settings}')
        return out[METRIC]

    published = best_score = evaluate(best)
    changed = True
    while changed:
        changed = False
        for key, values in grid.items():
            for value in values:
                if time.perf_counter() - start_time > budget:
                    break
                if value == best.get(key):
                    continue
                candidate = dict(best, **{key: value})
                if any(row['settings'] == candidate for row in rows):
                    continue
                score = evaluate(candidate)
                if score > best_score:
                    best, best_score, changed = candidate, score, True
        if time.perf_counter() - start_time > budget:
            break
    known = split.train_index.size(1) + split.val_index.size(1)
    report = {'trials': len(rows),
              'seconds': time.perf_counter() - start_time, 'fold': fold,
              'density': graph.size(1) / known, 'published': published,
              'tuned': best_score, 'metric': METRIC, 'rows': rows}
    return best, report


__all__ = ['SPACES', 'tune_filter', 'tuning_split']
