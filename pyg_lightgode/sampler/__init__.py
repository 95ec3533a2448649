r"""Random-walk samplers for PinSage: vectorised walks, importance
neighbourhoods, PPR hard negatives and a PyG :class:`BaseSampler`."""
from .random_walk import (
    to_csr,
    bipartite_csr,
    metapath_random_walk,
    random_walk,
    bipartite_random_walk,
    sample_item_pairs,
    walk_lengths,
)
from .importance import (
    ImportanceNeighborhood,
    importance_neighbors,
    topk_visits,
    l1_normalize,
)
from .hard_negatives import (
    HardNegativeSampler,
    personalized_pagerank,
    hard_negatives,
    resolve_rank_range,
)
from .pinsage_sampler import (
    PinSageSampler,
    PinSageNodeLoader,
    PinSageLinkLoader,
    item_data,
)

__all__ = [
    'to_csr',
    'bipartite_csr',
    'metapath_random_walk',
    'random_walk',
    'bipartite_random_walk',
    'sample_item_pairs',
    'walk_lengths',
    'ImportanceNeighborhood',
    'importance_neighbors',
    'topk_visits',
    'l1_normalize',
    'HardNegativeSampler',
    'personalized_pagerank',
    'hard_negatives',
    'resolve_rank_range',
    'PinSageSampler',
    'PinSageNodeLoader',
    'PinSageLinkLoader',
    'item_data',
]
