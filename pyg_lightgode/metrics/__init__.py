r"""All-item ranking retrieval and evaluation."""
from .item_to_item import (
    item_to_item_metrics,
    item_to_item_pairs,
    item_to_item_ranks,
)
from .ranking import (
    RANKING_METRICS,
    RankingEvaluator,
    UserItemCSR,
    evaluate_ranking,
    recommend,
    recommend_from_scorer,
)
from .retrieval import ItemIndex, dense_topk, exact_topk, merge_topk

__all__ = [
    'RANKING_METRICS',
    'RankingEvaluator',
    'UserItemCSR',
    'evaluate_ranking',
    'recommend',
    'recommend_from_scorer',
    'ItemIndex',
    'dense_topk',
    'exact_topk',
    'merge_topk',
    'item_to_item_metrics',
    'item_to_item_pairs',
    'item_to_item_ranks',
]
