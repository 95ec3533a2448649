r"""Selection on validation data: score-level fusion weights of several
recommenders, chosen by a grid evaluated in one pass over the users.

Every part is scored once per user batch and standardised
(:func:`~.fusion.standardize`); each candidate weighting
is then only a weighted sum, a mask and a top-:math:`k` on that batch, so a
grid of :math:`G` weightings costs the parts' scoring once plus :math:`G`
cheap passes, instead of :math:`G` full evaluations.
"""
import itertools
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.metrics import LinkPredMetricCollection

from pyg_lightgode.apps.hybrid.fusion import standardize
from pyg_lightgode.metrics.ranking import (
    RANKING_METRICS,
    Interactions,
    RankingEvaluator,
)
from pyg_lightgode.metrics.retrieval import (
    dense_topk,
    finish_topk,
    mask_excluded,
)
from pyg_lightgode.nn.models.graph_filters import Scorer

Weights = Dict[str, float]


@torch.no_grad()
def evaluate_fusions(parts: Mapping[str, Scorer],
                     weightings: Sequence[Weights], target_index: Tensor,
                     exclude_links: Optional[Interactions], num_users: int,
                     num_items: int, k: int = 20,
                     metrics: Sequence[str] = ('recall', 'ndcg'),
                     batch_size: int = 1024, progress: bool = False,
                     users: Optional[Tensor] = None
                     ) -> List[Dict[str, float]]:
    r"""All-item ranking metrics at :obj:`k` of every weighting in
    :obj:`weightings` (each maps part names to weights; missing names weigh
    0) of the standardised scores of :obj:`parts`, against
    :obj:`target_index` with :obj:`exclude_links` left out. Returns one
    :obj:`{'recall@k': ..., 'ndcg@k': ...}` per weighting, in order.
    :obj:`users` restricts the evaluation to these user ids (*e.g.* a
    seeded sample for a quick screen)."""
    if not weightings:
        raise ValueError("'weightings' must hold at least one weighting")
    unknown = {name for w in weightings for name in w} - set(parts)
    if unknown:
        raise ValueError(f"'weightings' name unknown parts {sorted(unknown)}"
                         f"; the parts are {sorted(parts)}")
    used = [name for name in parts
            if any(w.get(name, 0) != 0 for w in weightings)]
    evaluator = RankingEvaluator(target_index, exclude_links=exclude_links,
                                 num_users=num_users, num_items=num_items,
                                 ks=(k, ), metrics=metrics,
                                 batch_size=batch_size, users=users)
    collections = [
        LinkPredMetricCollection(
            {f'{name}@{k}': RANKING_METRICS[name](k)
             for name in metrics}) for _ in weightings
    ]
    batches = evaluator.batches(num_users, num_items)
    iterator = batches
    if progress:
        from tqdm import tqdm
        iterator = tqdm(batches, desc='fusion grid')
    for batch_users, excluded, label_index in iterator:
        scores = {name: standardize(parts[name].score(batch_users))
                  for name in used}
        fused = torch.empty(batch_users.numel(), num_items)
        for weighting, collection in zip(weightings, collections):
            fused.zero_()
            for name in used:
                if weighting.get(name, 0) != 0:
                    fused.add_(scores[name], alpha=weighting[name])
            mask_excluded(fused, excluded)
            index, _ = finish_topk(*dense_topk(fused, k), k,
                                   name="the fused parts' scores")
            # Padding (-1) points past the last item: no label matches it.
            index.masked_fill_(index < 0, num_items)
            collection.update(index, label_index)
    return [{name: float(value) for name, value in c.compute().items()}
            for c in collections]


Values = Union[Sequence[float], Mapping[str, Sequence[float]]]


def weight_grid(names: Sequence[str], values: Values,
                fixed: Optional[Weights] = None) -> List[Weights]:
    r"""Every combination of :obj:`values` (one sequence for all
    :obj:`names`, or one per name) for :obj:`names`, with the weights of
    :obj:`fixed` added to each (all-zero weightings dropped)."""
    if isinstance(values, Mapping):
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"'values' has no weights for {missing}")
        per_name = [list(values[name]) for name in names]
    else:
        per_name = [list(values)] * len(names)
    out = []
    for combo in itertools.product(*per_name):
        weighting = dict(fixed or {})
        weighting.update(zip(names, combo))
        if any(v != 0 for v in weighting.values()):
            out.append(weighting)
    return out


def select_fusion(parts: Mapping[str, Scorer], val_index: Tensor,
                  exclude_links: Optional[Interactions], num_users: int,
                  num_items: int, anchor: Union[str, Sequence[str]],
                  coarse: Values = (0.0, 0.5, 1.0, 2.0),
                  refine: Sequence[float] = (0.5, 0.75, 1.0, 1.5, 2.0),
                  k: int = 20, criterion: str = 'ndcg', batch_size: int = 1024,
                  progress: bool = False,
                  alternatives: Optional[Mapping[str, Sequence[str]]] = None
                  ) -> Tuple[Weights, List[Dict[str, object]]]:
    r"""Chooses fusion weights on validation data: the part :obj:`anchor`
    weighs 1 (or, given several alternative anchors, *e.g.* one model
    propagated to several times :math:`t`, exactly one of them weighs 1
    and the others 0); a coarse grid of :obj:`coarse` values (one sequence
    for every other part, or one per part) is evaluated in one pass, then a
    refinement that multiplies each non-zero weight of the best coarse
    weighting by the factors :obj:`refine`. :obj:`alternatives` maps a
    slot name to several parts (*e.g.* one filter with several settings):
    the slot gets the coarse weights (:obj:`coarse` keyed by the slot's
    name) and in every weighting exactly one of its parts carries them.
    Returns the weights with the best validation :obj:`criterion` @
    :obj:`k`, and every evaluated row (weights, metrics, seconds)."""
    anchors = [anchor] if isinstance(anchor, str) else list(anchor)
    groups = {slot: list(members)
              for slot, members in (alternatives or {}).items()}
    named = anchors + [m for members in groups.values() for m in members]
    missing = [name for name in anchors if name not in parts]
    if not anchors or missing:
        raise ValueError(f"'anchor' {anchor!r} must name one or more of the "
                         f"parts {sorted(parts)}")
    if any(not members for members in groups.values()) or any(
            name not in parts for name in named) or len(set(named)) != len(
                named):
        raise ValueError(f"'alternatives' must map slots to disjoint, "
                         f"non-empty lists of parts other than the anchor "
                         f"(got {alternatives!r}; the parts are "
                         f"{sorted(parts)})")
    singles = [name for name in parts if name not in named]
    others = [name for name in parts if name not in anchors]
    key = f'{criterion}@{k}'
    rows: List[Dict[str, object]] = []

    def run(grid: List[Weights]) -> None:
        start = time.perf_counter()
        results = evaluate_fusions(parts, grid, val_index, exclude_links,
                                   num_users, num_items, k=k,
                                   batch_size=batch_size, progress=progress)
        seconds = (time.perf_counter() - start) / len(grid)
        for weighting, result in zip(grid, results):
            rows.append({'weights': weighting, **result,
                         'seconds_each': seconds})

    first: List[Weights] = []
    for name in anchors:
        for combo in weight_grid(singles + list(groups), coarse,
                                 {name: 1.0}):
            # One member per slot; a slot weighing 0 needs no choice.
            choices = [members if combo[slot] != 0 else members[:1]
                       for slot, members in groups.items()]
            for choice in itertools.product(*choices):
                weighting = {other: 0.0 for other in named}
                weighting[name] = 1.0
                weighting.update({single: combo[single]
                                  for single in singles})
                for slot, member in zip(groups, choice):
                    weighting[member] = combo[slot]
                first.append(weighting)
    run(first)
    best = max(rows, key=lambda row: row[key])['weights']
    free = [name for name in others if best.get(name, 0) != 0]
    if free:
        grid = []
        for factors in itertools.product(refine, repeat=len(free)):
            weighting = dict(best)
            for name, factor in zip(free, factors):
                weighting[name] = best[name] * factor
            if weighting != best:
                grid.append(weighting)
        if grid:
            run(grid)
    best_row = max(rows, key=lambda row: row[key])
    return dict(best_row['weights']), rows
