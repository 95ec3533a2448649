from .graph_filters import (
    BSPM,
    GFCF,
    ChebyCF,
    GraphFilter,
    ItemKNN,
    Popularity,
    Scorer,
    TurboCF,
    UserKNN,
)
from .lightgode import LightGODE, embedding_discrepancy
from .pinsage import PinSage

__all__ = [
    'LightGODE',
    'PinSage',
    'GFCF',
    'BSPM',
    'ChebyCF',
    'TurboCF',
    'UserKNN',
    'ItemKNN',
    'Popularity',
    'GraphFilter',
    'Scorer',
    'embedding_discrepancy',
]
