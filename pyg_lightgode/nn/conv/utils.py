from torch_geometric.typing import Adj, OptTensor, SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor


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
