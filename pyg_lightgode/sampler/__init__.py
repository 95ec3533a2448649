r"""Random-walk samplers for PinSage: vectorised walks, importance
neighbourhoods, PPR hard negatives and a PyG :class:`BaseSampler`."""
from .hard_negatives import (
    HardNegativeSampler,
    hard_negatives,
    personalized_pagerank,
    resolve_rank_range,
)
from .importance import (
    ImportanceNeighborhood,
    importance_neighbors,
    l1_normalize,
    top_visits,
    topk_visits,
)
from .pinsage_sampler import (
    PinSageLinkLoader,
    PinSageNodeLoader,
    PinSageSampler,
    hop_subgraph,
    item_data,
)
from .random_walk import (
    bipartite_csr,
    bipartite_random_walk,
    metapath_random_walk,
    prepare_hops,
    random_walk,
    sample_item_pairs,
    to_csr,
    walk_lengths,
)

__all__ = [
    'to_csr',
    'bipartite_csr',
    'prepare_hops',
    'metapath_random_walk',
    'random_walk',
    'bipartite_random_walk',
    'sample_item_pairs',
    'walk_lengths',
    'ImportanceNeighborhood',
    'importance_neighbors',
    'top_visits',
    'topk_visits',
    'l1_normalize',
    'HardNegativeSampler',
    'personalized_pagerank',
    'hard_negatives',
    'resolve_rank_range',
    'PinSageSampler',
    'PinSageNodeLoader',
    'PinSageLinkLoader',
    'hop_subgraph',
    'item_data',
]
