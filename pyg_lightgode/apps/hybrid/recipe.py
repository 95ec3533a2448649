r"""App layer for the training-free filters and the hybrid: per-dataset
filter settings, and the hybrid recipe that fuses LightGODE's trained tables
with graph filters, every choice made on validation.

**Settings.** :data:`FILTER_SETTINGS` holds the official settings of each
paper for Gowalla and Yelp2018. Any other dataset (e.g.
MovieLens-100K, where nobody here tuned them) gets the Gowalla settings
with the rule of :func:`filter_settings`: the spectral rank :math:`k` is
capped at a quarter of :math:`\min(|U|, |I|)`, so the ideal filter stays a
low-pass filter on small catalogues.

**The hybrid** (:func:`fit_hybrid`): score-level fusion
:math:`s_u = z(\mathbf{e}_u^\top \mathbf{E}_I) + \sum_m w_m z(s^{(m)}_u)`
of LightGODE's propagated tables and filters (:class:`ScoreFusion`).

1. *Validation stage*: the filters are fitted on the training part only,
   LightGODE's tables propagated over the training graph; the weights
   :math:`w_m` (and, given several candidates, LightGODE's ODE time
   :math:`t` and the weight of an item-popularity part, negative to
   debias) are chosen by validation NDCG@20
   (:func:`~pyg_lightgode.apps.hybrid.selection.select_fusion`).
2. *Test stage*: with the weights fixed, the filters are refitted and the
   tables re-propagated over training **and** validation interactions (both
   are known at test time; propagation happens after training, so the
   validation edges enter without any gradient step). Tables refitted on
   training + validation for the validation-selected epoch count can be
   passed as :obj:`test_tables` (``benchmarks/run.py`` does so).
"""
import time
from typing import (
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from torch import Tensor

from pyg_lightgode.apps.hybrid.fusion import EmbeddingScorer, ScoreFusion
from pyg_lightgode.apps.hybrid.selection import select_fusion
from pyg_lightgode.data.bipartite import BipartiteSplit, bipartite_to_adj_t
from pyg_lightgode.nn.conv import LightGODEConv
from pyg_lightgode.nn.models.graph_filters import (
    BSPM,
    GFCF,
    ChebyCF,
    GraphFilter,
    ItemKNN,
    Popularity,
    TurboCF,
    UserKNN,
)
from pyg_lightgode.nn.models.linear import EASE, RP3beta

FILTERS = {'gfcf': GFCF, 'bspm': BSPM, 'chebycf': ChebyCF,
           'turbocf': TurboCF, 'userknn': UserKNN, 'itemknn': ItemKNN,
           'ease': EASE, 'rp3beta': RP3beta}
#: Filters whose :obj:`k` is a spectral rank (capped on small catalogues).
SPECTRAL = ('gfcf', 'bspm', 'chebycf')

#: The neighbour scorers have no official settings on these splits: chosen
#: on Gowalla's validation split as parts of the hybrid, and used as they
#: are on every other dataset. On Gowalla's official test they lower the
#: hybrid although validation favours them (docs/history.md: the test
#: pairs are not distributed like a random validation holdout), so the
#: best Gowalla hybrid leaves them out.
USERKNN_SETTINGS = dict(k=100, alpha=0.5, power=4.0)
ITEMKNN_SETTINGS = dict(k=100, power=2.0)

#: RP3beta as tuned on Gowalla by the Graph-RSs reproducibility study
#: (RecSys 2023); EASE's lambda chosen on Gowalla's validation split, on
#: 12.5%, 25% and 50% of the users (optima 80-120, 80, <= 80:
#: ``benchmarks/bench_linear.py --val-users``). Used as they are on other
#: datasets.
RP3BETA_SETTINGS = dict(k=777, alpha=0.566, beta=0.001)
EASE_SETTINGS = dict(reg=100.0)

#: ChebyCF's official Gowalla settings (its repository's config).
CHEBYCF_GOWALLA = dict(order=8, flatness=1.5, k=512, alpha=0.2, beta=0.4)

#: Official settings (the papers'; ChebyCF: its repository), and
#: :data:`USERKNN_SETTINGS`, :data:`ITEMKNN_SETTINGS`.
FILTER_SETTINGS = {
    'gowalla': {
        'gfcf': dict(k=256, alpha=0.3),
        'bspm': dict(k=448, beta=0.2, ideal_t=1.0, blur_t=1.0,
                     sharpen_t=2.5, sharpen_method='rk4', merge='early'),
        'chebycf': CHEBYCF_GOWALLA,
        'turbocf': dict(alpha=0.6, power=0.7, filter=1),
        'userknn': USERKNN_SETTINGS,
        'itemknn': ITEMKNN_SETTINGS,
        'ease': EASE_SETTINGS,
        'rp3beta': RP3BETA_SETTINGS,
    },
    'yelp2018': {
        'gfcf': dict(k=256, alpha=0.3),
        'bspm': dict(k=384, beta=0.3, ideal_t=1.0, blur_t=1.0,
                     sharpen_t=1.2, sharpen_method='euler', merge='early',
                     t_point_combination=True),
        # No published Yelp2018 settings: Gowalla's (the rule above).
        'chebycf': CHEBYCF_GOWALLA,
        'turbocf': dict(alpha=0.6, power=1.0, filter=2),
        'userknn': USERKNN_SETTINGS,
        'itemknn': ITEMKNN_SETTINGS,
        'ease': EASE_SETTINGS,
        'rp3beta': RP3BETA_SETTINGS,
    },
}


def filter_settings(name: str, dataset: str, num_users: int,
                    num_items: int) -> Dict:
    r"""The settings of filter :obj:`name` on :obj:`dataset`: the official
    ones where published, else Gowalla's with the spectral rank :math:`k
    \le \lfloor \min(|U|, |I|) / 4 \rfloor`."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; valid names are "
                         f"{', '.join(FILTERS)}")
    settings = dict(FILTER_SETTINGS.get(dataset,
                                        FILTER_SETTINGS['gowalla'])[name])
    if name in SPECTRAL:
        settings['k'] = max(1, min(settings['k'],
                                   min(num_users, num_items) // 4))
    return settings


def make_filter(name: str, dataset: str, num_users: int, num_items: int,
                **overrides) -> GraphFilter:
    r"""An unfitted filter with :func:`filter_settings` (and
    :obj:`overrides`)."""
    settings = filter_settings(name, dataset, num_users, num_items)
    settings.update(overrides)
    return FILTERS[name](num_users, num_items, **settings)


def known_graph(split: BipartiteSplit, part: str) -> Tensor:
    r"""The interactions known when ranking :obj:`part`: training for
    'val', training and validation for 'test', as one index."""
    return torch.cat(split.known_interactions(part), dim=1)


def propagate_tables(user_emb: Tensor, item_emb: Tensor, graph: Tensor,
                     t: float = 3.0, method: str = 'euler',
                     **conv_kwargs) -> Tuple[Tensor, Tensor]:
    r"""LightGODE's post-training propagation of trained tables over the
    bipartite :obj:`graph` (a :obj:`[2, E]` interaction index)."""
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    adj_t = bipartite_to_adj_t(graph, num_users, num_items)
    conv = LightGODEConv(t=t, method=method, **conv_kwargs)
    with torch.no_grad():
        out = conv(torch.cat([user_emb, item_emb]), adj_t)
    return out[:num_users], out[num_users:]


Tables = Tuple[Tensor, ...]


def _check_extra(name: str, tables: Tables, num_users: int,
                 num_items: int) -> Tables:
    r"""Validates one entry of :func:`fit_hybrid`'s :obj:`extra_tables`."""
    shapes = [tuple(t.shape) for t in tables[:2]]
    ok = len(tables) in (2, 3) and len(shapes) == 2 and all(
        len(shape) == 2 for shape in shapes) and shapes[0][0] == num_users \
        and shapes[1][0] == num_items and shapes[0][1] == shapes[1][1]
    if ok and len(tables) == 3:
        test = tables[2]
        ok = len(test) == 2 and [tuple(t.shape) for t in test] == shapes
    if not ok:
        raise ValueError(f"'extra_tables'[{name!r}] must be (user_emb, "
                         f"item_emb[, (test_user_emb, test_item_emb)]) with "
                         f"[{num_users}, d] and [{num_items}, d] tables "
                         f"(got shapes {shapes})")
    return tuple(tables)


def fit_hybrid(split: BipartiteSplit, user_emb: Tensor, item_emb: Tensor,
               parts: Sequence[str] = ('bspm', 'gfcf'),
               t: Union[float, Sequence[float]] = 3.0,
               method: str = 'euler',
               filter_overrides: Optional[Dict[str, Dict]] = None,
               coarse: Union[Sequence[float], Mapping[str, Sequence[float]]
                             ] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
               refine: Sequence[float] = (),
               progress: bool = False,
               test_tables: Optional[Tuple[Tensor, Tensor]] = None,
               popularity: Sequence[float] = (),
               filter_candidates: Optional[Dict[str, Sequence[Dict]]] = None,
               extra_tables: Optional[Dict[str, Tables]] = None
               ) -> Tuple[ScoreFusion, Dict]:
    r"""Fits the hybrid of trained LightGODE tables (:obj:`user_emb`,
    :obj:`item_emb`: :math:`\mathbf{E}_0`, before propagation) and the
    filters :obj:`parts` on :obj:`split` (which must have a validation
    part), choosing the fusion weights on validation (by default one pass
    over a grid of :obj:`coarse` weights per filter: every part is scored
    once per user batch, see :func:`select_fusion`). Returns the test-stage
    :class:`ScoreFusion` (filters fitted on training + validation) and a
    report: the selected weights and ODE time, every validation row,
    seconds per stage.

    Args:
        coarse (list of float or dict): Candidate weights of every filter
            and extra run, or a list per name.
        t (float or list of float): LightGODE's ODE time, or several
            candidates: the one of the best validation fusion is used.
        test_tables (tuple, optional): Tables refitted on training +
            validation (:meth:`BipartiteSplit.merge_validation`, for the
            epoch count chosen on validation) to use in the test stage
            instead of :obj:`user_emb`, :obj:`item_emb`.
        popularity (list of float, optional): Candidate weights of a
            :class:`~pyg_lightgode.nn.models.Popularity` part (negative
            values debias); empty: no such part.
        filter_candidates (dict, optional): For a filter of :obj:`parts`,
            several settings (each a dict of overrides on top of
            :obj:`filter_overrides`): the one of the best validation fusion
            is used (the variants share one SVD when their :obj:`k`
            agrees, see :meth:`GraphFilter.fit_like`).
        extra_tables (dict, optional): Other trained runs (*e.g.* another
            seed or embedding size), each fused as its own part with its
            own weight (from :obj:`coarse`) and ODE time (from :obj:`t`),
            chosen on validation: a name mapped to :obj:`(user_emb,
            item_emb)` or :obj:`(user_emb, item_emb, test_tables)`.
    """
    if split.val_index is None or split.val_index.numel() == 0:
        raise ValueError("fit_hybrid needs a validation part in 'split' "
                         "(e.g. load_dataset(..., val_ratio=0.1))")
    unknown = set(parts) - set(FILTERS)
    if unknown:
        raise ValueError(f"unknown 'parts' {sorted(unknown)}; valid names "
                         f"are {', '.join(FILTERS)}")
    times = [t] if isinstance(t, (int, float)) else list(t)
    if not times:
        raise ValueError("'t' must be a time or a non-empty list of times")
    if test_tables is not None and (
            len(test_tables) != 2 or test_tables[0].shape != user_emb.shape
            or test_tables[1].shape != item_emb.shape):
        raise ValueError(f"'test_tables' must be (user, item) tables shaped "
                         f"like 'user_emb' {list(user_emb.shape)} and "
                         f"'item_emb' {list(item_emb.shape)}")
    candidates = filter_candidates or {}
    unknown = set(candidates) - set(parts)
    if unknown or any(not candidates[name] for name in candidates):
        raise ValueError(f"'filter_candidates' must map filters of 'parts' "
                         f"to non-empty lists of settings (got "
                         f"{filter_candidates!r})")
    extras = {name: _check_extra(name, tables, split.num_users,
                                 split.num_items)
              for name, tables in (extra_tables or {}).items()}
    clash = set(extras) & (set(FILTERS) | {'lightgode', 'popularity'})
    if clash or any('@' in name or '#' in name for name in extras):
        raise ValueError(f"'extra_tables' names must differ from the "
                         f"filters, 'lightgode' and 'popularity' and hold "
                         f"no '@' or '#' (got {sorted(extras)})")
    overrides = filter_overrides or {}
    num_users, num_items = split.num_users, split.num_items
    seconds: Dict[str, float] = {}

    def stage(graph: Tensor, tag: str, runs: Dict[str, Tables],
              times: Dict[str, Sequence[float]],
              variants: Dict[str, List[Dict]]) -> Dict[str, object]:
        out: Dict[str, object] = {}
        start = time.perf_counter()
        for run, tables in runs.items():
            for time_ in times[run]:
                users, items = propagate_tables(*tables, graph, time_,
                                                method)
                out[f'{run}@{time_:g}'] = EmbeddingScorer(users, items)
        seconds[f'propagate_{tag}'] = time.perf_counter() - start
        for name in parts:
            start = time.perf_counter()
            first = None
            for i, settings in enumerate(variants[name]):
                model = make_filter(name, split.name, num_users, num_items,
                                    **{**overrides.get(name, {}),
                                       **settings})
                share = first is not None and model.spectral
                model = model.fit_like(first) if share else model.fit(graph)
                if first is None:
                    first = model
                key = name if len(variants[name]) == 1 else f'{name}#{i}'
                out[key] = model
            seconds[f'fit_{name}_{tag}'] = time.perf_counter() - start
        if popularity:
            out['popularity'] = Popularity(num_users, num_items).fit(graph)
        return out

    variants = {name: [dict(c) for c in candidates.get(name, [{}])]
                for name in parts}
    run_times = {run: times for run in ['lightgode', *extras]}
    val_parts = stage(known_graph(split, 'val'), 'val',
                      {'lightgode': (user_emb, item_emb),
                       **{run: tables[:2] for run, tables in extras.items()}},
                      run_times, variants)
    anchors = [f'lightgode@{time_:g}' for time_ in times]
    if isinstance(coarse, Mapping):
        missing = [name for name in [*parts, *extras] if name not in coarse]
        if missing:
            raise ValueError(f"'coarse' has no weights for {missing}")
        grids = {name: list(coarse[name]) for name in [*parts, *extras]}
    else:
        grids = {name: list(coarse) for name in [*parts, *extras]}
    if popularity:
        grids['popularity'] = list(popularity)
    alternatives = {name: [f'{name}#{i}' for i in range(len(found))]
                    for name, found in variants.items() if len(found) > 1}
    for run in extras:
        # One propagated member per candidate time; one alone is a part.
        if len(times) > 1:
            alternatives[run] = [f'{run}@{time_:g}' for time_ in times]
        else:
            val_parts[run] = val_parts.pop(f'{run}@{times[0]:g}')
    start = time.perf_counter()
    weights, rows = select_fusion(val_parts, split.val_index,
                                  split.known_interactions('val'), num_users,
                                  num_items, anchor=anchors, coarse=grids,
                                  refine=refine, progress=progress,
                                  alternatives=alternatives)
    seconds['select_val'] = time.perf_counter() - start
    del val_parts
    chosen = times[[weights[name] for name in anchors].index(1.0)]
    settings: Dict[str, Dict] = {}
    extra_t = {run: times[0] for run in extras}
    for name, members in alternatives.items():
        # The member carrying the slot's weight (the first when it is 0).
        index = next((i for i, member in enumerate(members)
                      if weights[member] != 0), 0)
        weights[name] = weights[members[index]]
        if name in extras:
            extra_t[name] = times[index]
        else:
            settings[name] = variants[name][index]
            variants[name] = [variants[name][index]]
        for member in members:
            del weights[member]
    weights = {'lightgode': 1.0, **{name: weight for name, weight
                                    in weights.items()
                                    if name not in anchors}}
    test_runs = {'lightgode': test_tables or (user_emb, item_emb),
                 **{run: tables[2] if len(tables) > 2 else tables[:2]
                    for run, tables in extras.items()}}
    test_times = {'lightgode': chosen, **extra_t}
    test_parts = stage(known_graph(split, 'test'), 'test', test_runs,
                       {run: [t_] for run, t_ in test_times.items()},
                       variants)
    test_parts = {run: test_parts.pop(f'{run}@{t_:g}')
                  for run, t_ in test_times.items()} | test_parts
    names = [name for name in test_parts if weights.get(name, 0) != 0]
    fusion = ScoreFusion([test_parts[name] for name in names],
                         [weights[name] for name in names])
    report = {'weights': weights, 'validation': rows, 'seconds': seconds,
              't': chosen, 'times': times, 'method': method,
              'extra_t': extra_t,
              'parts': list(parts), 'filter_settings': settings}
    return fusion, report


__all__: List[str] = [
    'FILTERS',
    'FILTER_SETTINGS',
    'USERKNN_SETTINGS',
    'ITEMKNN_SETTINGS',
    'filter_settings',
    'fit_hybrid',
    'known_graph',
    'make_filter',
    'propagate_tables',
]
