r"""pyg_lightgode: fast graph-based recommendation on bipartite user--item
graphs for PyTorch Geometric (LightGODE, PinSage).

Importing the package loads no subpackage (and so not torch): each of
:obj:`pyg_lightgode.nn`, :obj:`.data`, ... is imported on first use, as in
``import pyg_lightgode; pyg_lightgode.nn.LightGODEConv`` or
``from pyg_lightgode.nn import LightGODEConv``.
"""
import importlib
from typing import Any

__version__ = '0.1.0'

_SUBPACKAGES = ('apps', 'data', 'datasets', 'metrics', 'nn', 'sampler')

__all__ = ['__version__']


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_SUBPACKAGES])
