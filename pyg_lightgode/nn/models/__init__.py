from .graph_filters import (
    BSPM,
    GFCF,
    ChebyCF,
    EmbeddingScorer,
    GraphFilter,
    ItemKNN,
    Popularity,
    ScoreFusion,
    Scorer,
    TurboCF,
    UserKNN,
    standardize,
)
from .lightgode import LightGODE, embedding_discrepancy
from .pinsage import PinSage

__all__ = [
    'BSPM',
    'ChebyCF',
    'EmbeddingScorer',
    'GFCF',
    'GraphFilter',
    'ItemKNN',
    'ScoreFusion',
    'Scorer',
    'TurboCF',
    'UserKNN',
    'standardize',
    'LightGODE',
    'PinSage',
    'Popularity',
    'embedding_discrepancy',
]
