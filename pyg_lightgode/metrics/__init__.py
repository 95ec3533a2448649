r"""All-item ranking retrieval and evaluation."""
from .beyond import (
    gini_index,
    item_coverage,
    mean_popularity_rank,
    popularity_ranks,
    recommendation_counts,
)
from .item_to_item import (
    item_to_item_metrics,
    item_to_item_pairs,
    item_to_item_ranks,
)
from .ranking import (
    LIST_METRICS,
    RANKING_METRICS,
    RankingEvaluator,
    UserItemCSR,
    evaluate_ranking,
    recommend,
    recommend_from_scorer,
)
from .retrieval import ItemIndex, dense_topk, exact_topk, merge_topk
from .significance import holm, wilcoxon_signed_rank

__all__ = [
    'RANKING_METRICS',
    'LIST_METRICS',
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
    'item_coverage',
    'gini_index',
    'popularity_ranks',
    'mean_popularity_rank',
    'recommendation_counts',
    'wilcoxon_signed_rank',
    'holm',
]
