from .graph_filters import (
    BSPM,
    GFCF,
    ChebyCF,
    ItemKNN,
    Popularity,
    TurboCF,
    UserKNN,
)
from .lightgode import LightGODE
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
]
