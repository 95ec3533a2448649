r"""The hybrid: LightGODE's propagated tables fused with training-free
filters, every weight and ODE time chosen on validation."""
from .fusion import EmbeddingScorer, ScoreFusion, standardize
from .recipe import fit_hybrid, known_graph, make_filter
from .selection import select_fusion

__all__ = [
    'fit_hybrid',
    'known_graph',
    'make_filter',
    'select_fusion',
    'ScoreFusion',
    'EmbeddingScorer',
    'standardize',
]
