from .lightgode_conv import LightGODEConv
from .pinsage_conv import PinSAGEConv

__all__ = [
    'LightGODEConv',
    'PinSAGEConv',
]
