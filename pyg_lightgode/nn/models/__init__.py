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
]
