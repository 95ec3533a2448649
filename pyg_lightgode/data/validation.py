r"""The argument and tensor checks shared by the package's layers and models.

Every check raises :class:`ValueError` (or :class:`TypeError` for a value
of the wrong kind) whose message names the argument and what was expected.

Two kinds of tensor checks:

* **Metadata checks** (:func:`check_floating`, :func:`check_index_dtype`)
  look at shapes and dtypes only; they never wait for the device and are
  always cheap.
* **Data checks** (:func:`check_finite`, :func:`check_all_finite`,
  :func:`check_index_range`) read
  values, which forces a host--device synchronisation. Layers run them only
  when :func:`torch_geometric.is_debug_enabled` is :obj:`True`; models run
  them at their public entry points (embedding, inference, loss), where the
  data enters.

This module depends on :mod:`torch` only.
"""
import math
import numbers
import operator
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f'a {value.dtype} tensor of shape {list(value.shape)}'
    return repr(value)


def check_positive_int(value, name: str) -> int:
    r"""Returns :obj:`value` as an :obj:`int` if it is an integer
    (:obj:`int`, a NumPy integer, a one-element integer tensor or any
    object with :meth:`__index__`, but not a :obj:`bool`) greater than
    zero. Raises :class:`TypeError` for a value that is not an integer
    (*e.g.* :obj:`2.7` or :obj:`3.0`) and :class:`ValueError` for one
    :math:`\leq 0`, both naming :obj:`name`."""
    if isinstance(value, bool):
        raise TypeError(f"'{name}' must be a positive integer (got "
                        f"{_describe(value)})")
    try:
        out = operator.index(value)
    except TypeError:
        raise TypeError(f"'{name}' must be a positive integer (got "
                        f"{_describe(value)})") from None
    if out <= 0:
        raise ValueError(f"'{name}' must be a positive integer (got {out})")
    return out


def check_finite_float(value, name: str, minimum: Optional[float] = None,
                       strict: bool = False) -> float:
    r"""Returns :obj:`value` as a finite :obj:`float`. Raises
    :class:`TypeError` if it is not a real number (a :obj:`bool` is not) and
    :class:`ValueError` if it is NaN or infinite, or below :obj:`minimum`
    (at or below it when :obj:`strict`), naming :obj:`name`."""
    if isinstance(value, bool) or isinstance(value, Tensor) or \
            not isinstance(value, numbers.Real):
        raise TypeError(f"'{name}' must be a real number (got "
                        f"{_describe(value)})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"'{name}' must be finite (got {out})")
    if minimum is not None and (out <= minimum if strict else out < minimum):
        relation = '>' if strict else '>='
        raise ValueError(f"'{name}' must be {relation} {minimum} (got {out})")
    return out


def check_floating(x: Tensor, name: str,
                   dtype: Optional[torch.dtype] = None,
                   dtype_of: str = 'the weights') -> Tensor:
    r"""Checks that :obj:`x` is a floating-point tensor and, if
    :obj:`dtype` is given, that it has that dtype (that of
    :obj:`dtype_of`, *e.g.* a layer's weights). Under :func:`torch.autocast`
    on :obj:`x`'s device the dtypes may differ. Metadata only: never
    synchronises."""
    if not isinstance(x, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor (got "
                        f"{type(x).__name__})")
    if not x.is_floating_point():
        raise ValueError(f"'{name}' must be a floating-point tensor (got "
                         f"{x.dtype})")
    if dtype is not None and x.dtype != dtype and \
            not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"'{name}' has dtype {x.dtype}, which differs from "
                         f"the dtype {dtype} of {dtype_of}; convert one of "
                         f"them (e.g. '{name}.to({dtype})' or "
                         f"'module.to({x.dtype})')")
    return x


def check_matrix(x: Tensor, name: str, shape: str = '[N, F]') -> Tensor:
    r"""Checks that :obj:`x` is a 2-D floating-point tensor (described as
    :obj:`shape` in the message). Metadata only: never synchronises."""
    if not isinstance(x, Tensor) or x.dim() != 2:
        got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"'{name}' must be a 2-D tensor {shape} (got "
                         f"{got})")
    if not x.is_floating_point():
        raise ValueError(f"'{name}' must be a floating point tensor (got "
                         f"{x.dtype})")
    return x


def check_index_dtype(index: Tensor, name: str) -> Tensor:
    r"""Checks that :obj:`index` is a tensor of integer ids (not floating,
    complex or boolean). Metadata only: never synchronises."""
    if not isinstance(index, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor of integer ids "
                        f"(got {type(index).__name__})")
    if index.is_floating_point() or index.is_complex() or \
            index.dtype == torch.bool:
        raise ValueError(f"'{name}' must hold integer ids (got "
                         f"{index.dtype})")
    return index


def check_finite(x: Tensor, name: str, hint: str = '') -> Tensor:
    r"""Raises :class:`ValueError` naming :obj:`name` (followed by
    :obj:`hint`) if the floating-point tensor :obj:`x` holds NaN or infinite
    values, and returns :obj:`x`. Reads the data: synchronises with the
    device once."""
    check_all_finite([(name, x)], hint)
    return x


def check_all_finite(named: Sequence[Tuple[str, Tensor]],
                     hint: str = '') -> None:
    r""":func:`check_finite` on every :obj:`(name, tensor)` pair of
    :obj:`named` with one synchronisation for all of them; the message names
    the first tensor holding NaN or infinite values."""
    named = [(name, x) for name, x in named
             if isinstance(x, Tensor) and x.numel() > 0 and (
                 x.is_floating_point() or x.is_complex())]
    if not named:
        return
    counts = torch.stack([
        torch.isfinite(x.detach()).logical_not().sum().to(named[0][1].device)
        for _, x in named
    ]).tolist()
    for (name, x), bad in zip(named, counts):
        if bad > 0:
            raise ValueError(f"'{name}' holds {bad} NaN or infinite values "
                             f"(of {x.numel()}){hint}")


def check_index_range(index: Tensor, size: int, name: str,
                      what: str = 'ids',
                      size_name: Optional[str] = None) -> Tensor:
    r"""Checks that the integer :obj:`index` holds ids in
    :obj:`[0, size - 1]` only and returns it. The message names
    :obj:`name`, the kind of ids (:obj:`what`) and, if given, the argument
    :obj:`size_name` the bound comes from. Reads the data: synchronises with
    the device once (for a non-empty :obj:`index`)."""
    check_index_dtype(index, name)
    if index.numel() > 0:
        lo, hi = torch.stack(torch.aminmax(index)).tolist()
        if lo < 0 or hi >= size:
            where = f' ({size_name}={size})' if size_name else ''
            raise ValueError(f"'{name}' holds {what} in [{lo}, {hi}], outside "
                             f"the valid range [0, {size - 1}]{where}")
    return index


def check_neighborhood_index(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Checks a neighbourhood graph :obj:`[2, E]` (row 0 the neighbour, row
    1 the target) of integer node ids in :obj:`[0, num_nodes - 1]` and
    returns it as :obj:`int64`. Reads the data: synchronises once per
    row."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or \
            edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must be a [2, E] tensor (neighbour "
                         f"-> target), got "
                         f"{getattr(edge_index, 'shape', type(edge_index))}")
    return torch.stack([
        check_index_range(check_index_dtype(edge_index[i], name).long(),
                          num_nodes, name, 'node ids', 'num_nodes')
        for i, name in enumerate(('edge_index[0]', 'edge_index[1]'))
    ])


__all__ = [
    'check_neighborhood_index',
    'check_positive_int',
    'check_finite_float',
    'check_floating',
    'check_index_dtype',
    'check_finite',
    'check_all_finite',
    'check_index_range',
]
