r"""All-item ranking retrieval and evaluation."""
from .ranking import (
    RANKING_METRICS,
    RankingEvaluator,
    UserItemCSR,
    evaluate_ranking,
    recommend,
)

__all__ = [
    'RANKING_METRICS',
    'RankingEvaluator',
    'UserItemCSR',
    'evaluate_ranking',
    'recommend',
]
