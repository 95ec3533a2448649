r"""The bipartite user--item data form every model consumes
(:class:`BipartiteSplit`), its adjacency, and the preprocessing that builds
a split (k-core filtering, random or temporal splits)."""
from .bipartite import BipartiteSplit, bipartite_to_adj_t
from .preprocess import build_split, k_core_filter

__all__ = [
    'BipartiteSplit',
    'bipartite_to_adj_t',
    'build_split',
    'k_core_filter',
]
