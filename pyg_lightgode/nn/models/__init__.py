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
from .linear import EASE, RP3beta
from .pinsage import PinSage

__all__ = [
    'LightGODE',
    'PinSage',
    'GFCF',
    'BSPM',
    'ChebyCF',
    'TurboCF',
    'EASE',
    'RP3beta',
    'UserKNN',
    'ItemKNN',
    'Popularity',
    'GraphFilter',
    'Scorer',
    'embedding_discrepancy',
]
