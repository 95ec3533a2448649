from typing import Protocol

import torch
from torch import Tensor
from torch_geometric.typing import Adj, OptTensor, SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor

from pyg_lightgode.data.validation import check_index_range


class Partition(Protocol):
    r"""One block of rows of a graph whose nodes are split into blocks
    (*e.g.* across :mod:`torch.distributed` ranks), as
    :class:`~pyg_lightgode.nn.conv.LightGODEConv` propagates it: the block
    owns :math:`n` rows, and its part of the adjacency is an :math:`n \times
    m` matrix whose first :math:`n` columns are its own rows."""
    def gather(self, x: Tensor) -> Tensor:
        r"""The :math:`m` rows the block's columns index, :obj:`[m, F]`,
        from the block's own rows :obj:`x` :obj:`[n, F]` (its own rows
        first, then those fetched from the other blocks)."""

    def all_reduce(self, value: Tensor) -> Tensor:
        r"""The sum of a small CPU tensor over all blocks (the same result
        on every block)."""


def is_sparse_adjacency(edge_index: Adj, edge_weight: OptTensor) -> bool:
    r"""Whether the graph came as a sparse adjacency (torch.sparse or
    :class:`SparseTensor`) rather than an :obj:`edge_index`. A sparse
    adjacency carries its weights as values, so :obj:`edge_weight` must then
    be :obj:`None`."""
    sparse = isinstance(edge_index, SparseTensor) or is_torch_sparse_tensor(
        edge_index)
    if sparse and edge_weight is not None:
        raise ValueError("'edge_weight' must be None when the graph is a "
                         "sparse adjacency matrix (its values are the "
                         "weights)")
    return sparse


def sparse_values(adj: Adj) -> OptTensor:
    r"""The stored values of a sparse adjacency (duplicates of an
    uncoalesced COO tensor included), or :obj:`None` for an
    :obj:`edge_index` or a :class:`SparseTensor` without values."""
    if isinstance(adj, SparseTensor):
        return adj.storage.value()
    if is_torch_sparse_tensor(adj):
        return adj._values() if adj.layout == torch.sparse_coo else \
            adj.values()
    return None


def check_graph(edge_index: Adj, edge_weight: OptTensor, num_nodes: int,
                nonnegative: bool = False) -> None:
    r"""The data checks of a graph over :obj:`num_nodes` nodes: the node ids
    of an :obj:`edge_index` lie in :obj:`[0, num_nodes - 1]`, and the edge
    weights (or the values of a sparse adjacency) are finite and, if
    :obj:`nonnegative`, :math:`\geq 0` (their square-rooted degrees
    normalize the graph). Reads the data, so it synchronises with the
    device: layers run it only under
    :func:`torch_geometric.is_debug_enabled`, models at their entry
    points."""
    if isinstance(edge_index, Tensor) and not is_torch_sparse_tensor(
            edge_index):
        check_index_range(edge_index, num_nodes, 'edge_index', 'node ids',
                          'num_nodes')
    weight = sparse_values(edge_index) if edge_weight is None else \
        edge_weight
    if weight is None or weight.numel() == 0:
        return
    weight = weight.detach()
    counts = [torch.isfinite(weight).logical_not().sum()]
    if nonnegative:
        counts.append((weight < 0).sum())
    bad, negative = (torch.stack(counts).tolist() + [0])[:2]
    if bad > 0:
        raise ValueError(f"The edge weights hold {bad} NaN or infinite "
                         f"values (of {weight.numel()})")
    if negative > 0:
        raise ValueError(f"The edge weights hold {negative} negative values; "
                         f"they must be non-negative when 'normalize=True' "
                         f"(degrees are square-rooted)")
