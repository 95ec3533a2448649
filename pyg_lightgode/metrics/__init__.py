r"""All-item ranking evaluation and retrieval: :class:`RankingEvaluator`
(Recall, NDCG, ... at K, training items excluded), :func:`recommend`
(answers like :meth:`torch_geometric.nn.pool.MIPSKNNIndex.search`),
:class:`ItemIndex` (exact or faiss), and PinSage's item-to-item metrics."""
from .item_to_item import item_to_item_metrics
from .ranking import RankingEvaluator, evaluate_ranking, recommend
from .retrieval import ItemIndex

__all__ = [
    'RankingEvaluator',
    'evaluate_ranking',
    'recommend',
    'ItemIndex',
    'item_to_item_metrics',
]
