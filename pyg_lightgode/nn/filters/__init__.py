r"""Training-free graph-filter operators (tensors in, tensors out); the
recommenders built on them are in :mod:`pyg_lightgode.nn.models`."""
from .operators import (
    ITEM_ITEM_BLOCK,
    SVD_METHODS,
    LinearFlow,
    NormalizedGraph,
    SpectralBasis,
    ideal_basis,
    ideal_filter,
    interaction_matrix,
    item_item,
    knn_item_item,
    normalize_interactions,
    rows_to_item_major,
    solve_flow,
    turbo_item_item,
)

__all__ = [
    'ITEM_ITEM_BLOCK',
    'SVD_METHODS',
    'LinearFlow',
    'NormalizedGraph',
    'SpectralBasis',
    'ideal_basis',
    'ideal_filter',
    'interaction_matrix',
    'item_item',
    'knn_item_item',
    'normalize_interactions',
    'rows_to_item_major',
    'solve_flow',
    'turbo_item_item',
]
