from .bipartite import (
    BipartiteSplit,
    bipartite_to_adj_t,
    bipartite_to_homogeneous,
    check_interactions,
    homogeneous_to_bipartite,
)
from .preprocess import (
    KCoreResult,
    build_split,
    filter_by_rating,
    k_core_filter,
    random_split,
    remap_ids,
    remove_duplicates,
    temporal_split,
)

__all__ = [
    'BipartiteSplit',
    'bipartite_to_adj_t',
    'bipartite_to_homogeneous',
    'check_interactions',
    'homogeneous_to_bipartite',
    'remap_ids',
    'filter_by_rating',
    'remove_duplicates',
    'k_core_filter',
    'KCoreResult',
    'random_split',
    'temporal_split',
    'build_split',
]
