r"""The PinSage convolution (Algorithm 1 of Ying et al., KDD 2018)."""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
import torch_geometric
from torch import Tensor
from torch_geometric.index import ptr2index
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, OptTensor, SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor, scatter, spmm

from pyg_lightgode.data.validation import (
    check_finite,
    check_floating,
    check_index_dtype,
    check_index_range,
    check_positive_int,
)
from pyg_lightgode.nn.conv.utils import is_sparse_adjacency

POOLINGS = ('importance', 'mean', 'max')

# Guard of the output l2-normalisation: an all-zero ReLU output stays zero
# (instead of NaN) and keeps a finite gradient. It is applied in float32 (or
# float64) so that it does not round to zero in half precision.
NORM_EPS = 1e-12

# Half-precision dtypes: per-target sums (weight totals, norms, sparse
# products, which CPU kernels lack in half precision) run in float32.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    r"""The dtype sums are accumulated in for values of :obj:`dtype`:
    float32 for float16 and bfloat16, :obj:`dtype` itself otherwise."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def l2_normalize(x: Tensor) -> Tensor:
    r""":math:`\mathbf{x} / \max(\|\mathbf{x}\|_2, \epsilon)` row by row
    with :math:`\epsilon = 10^{-12}`, computed in :func:`accumulate_dtype`
    (in half precision the guard would round to zero and the squared norm
    overflow) and returned in :obj:`x`'s dtype."""
    acc = accumulate_dtype(x.dtype)
    return F.normalize(x.to(acc), p=2.0, dim=-1, eps=NORM_EPS).to(x.dtype)


def check_edge_weight(edge_weight: Tensor, num_edges: int,
                      name: str = 'edge_weight',
                      check_values: bool = True) -> Tensor:
    r"""Validates importance weights: a 1-D floating tensor with one finite,
    non-negative entry per edge. Raises :class:`ValueError` naming
    :obj:`name` otherwise. The shape and dtype are always checked; the
    values (finite, :math:`\geq 0`, one host synchronisation) only if
    :obj:`check_values`."""
    if not isinstance(edge_weight, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor of shape "
                        f"[{num_edges}] (got {type(edge_weight).__name__})")
    if edge_weight.dim() != 1 or edge_weight.numel() != num_edges:
        raise ValueError(f"'{name}' must have shape [{num_edges}] (one weight "
                         f"per edge), got {list(edge_weight.shape)}")
    if edge_weight.dtype == torch.bool or edge_weight.is_complex():
        raise ValueError(f"'{name}' must hold real weights (got "
                         f"{edge_weight.dtype})")
    if not edge_weight.is_floating_point():
        edge_weight = edge_weight.float()
    if check_values and edge_weight.numel() > 0:
        check_finite(edge_weight, name)
        if bool((edge_weight < 0).any()):
            raise ValueError(f"'{name}' holds negative values (min "
                             f"{float(edge_weight.min())}); importance "
                             f"weights are visit counts and must be >= 0")
    return edge_weight


def importance_weights(edge_weight: Tensor, index: Tensor,
                       num_targets: int) -> Tensor:
    r"""Normalises non-negative edge weights to sum to one over the edges of
    every target :obj:`index[e]`,
    :math:`\alpha_e / \sum_{e' : index[e'] = index[e]} \alpha_{e'}`.
    Targets whose weights sum to zero keep weight zero on all their edges
    (they pool to the zero vector, as isolated targets do)."""
    dtype = edge_weight.dtype
    edge_weight = edge_weight.to(accumulate_dtype(dtype))
    total = scatter(edge_weight, index, dim=0, dim_size=num_targets,
                    reduce='sum')
    total = torch.where(total > 0, total, torch.ones_like(total))
    return (edge_weight / total[index]).to(dtype)


class PinSAGEConv(MessagePassing):
    r"""The PinSage convolution (Algorithm 1) from the `"Graph Convolutional
    Neural Networks for Web-Scale Recommender Systems"
    <https://arxiv.org/abs/1806.01973>`_ paper.

    For a target node :math:`u` with representation :math:`\mathbf{z}_u` and
    importance neighbourhood :math:`\mathcal{N}(u)` with weights
    :math:`\alpha_{v,u} \geq 0`:

    .. math::
        \mathbf{n}_u &= \sum_{v \in \mathcal{N}(u)}
        \frac{\alpha_{v,u}}{\sum_{v' \in \mathcal{N}(u)} \alpha_{v',u}}
        \, \mathrm{ReLU}(\mathbf{Q} \mathbf{h}_v + \mathbf{q})

        \mathbf{z}_u^{\prime} &= \mathrm{ReLU}(\mathbf{W} \cdot
        [\mathbf{z}_u \, \Vert \, \mathbf{n}_u] + \mathbf{w})

        \mathbf{z}_u^{\prime} &\leftarrow \mathbf{z}_u^{\prime} /
        \max(\| \mathbf{z}_u^{\prime} \|_2, \epsilon)

    with :math:`\epsilon = 10^{-12}`, so an all-zero output stays zero
    (in float16 and bfloat16 the weight totals, the norm and sparse
    products are computed in float32, and the output cast back).
    :obj:`pooling="mean"` replaces the importance weights by uniform ones
    and :obj:`pooling="max"` takes the element-wise maximum of the messages
    (the paper's pooling ablations). A target without neighbours (or whose
    weights are all zero) gets :math:`\mathbf{n}_u = \mathbf{0}`, *i.e.*
    its output depends on :math:`\mathbf{z}_u` only. Without
    :obj:`edge_weight`, importance pooling equals mean pooling.

    :math:`\mathrm{ReLU}(\mathbf{Q}\mathbf{h}_v + \mathbf{q})` only
    depends on the neighbour :math:`v`, so it is computed once per source
    node and pooled afterwards (a sparse-dense product on sparse
    adjacencies).

    **Repeated edges are never coalesced**: every copy of an edge (in an
    :obj:`edge_index`, an uncoalesced COO or CSR adjacency or a
    :class:`SparseTensor`) is one neighbour entry with its own weight, so
    all input forms give the same result. Importance pooling depends on the
    summed weight of the copies only (coalescing would not change it);
    mean pooling counts each copy; max pooling ignores repeats.

    **Checks**: shapes and dtypes are always checked. The data checks (ids
    in range, finite non-negative weights, finite features) read values and
    so synchronise with the device; they run only under
    :func:`torch_geometric.debug`, so that :meth:`forward` never waits for
    the device and compiles into one graph (:func:`torch.compile` with
    :obj:`fullgraph=True`). :class:`~pyg_lightgode.nn.models.PinSage` runs
    them at its entry points.

    Args:
        in_channels (int or tuple): Size of each input sample, or a
            :obj:`(source, target)` tuple of sizes for bipartite blocks;
            :obj:`-1` derives a size from the first input (lazy
            initialisation, e.g. inside
            :func:`~torch_geometric.nn.to_hetero`).
        out_channels (int): Size of each output sample.
        hidden_channels (int, optional): Size of the neighbour messages
            :math:`\mathbf{Q}\mathbf{h}_v`. (default: :obj:`out_channels`)
        pooling (str, optional): Neighbour pooling, :obj:`"importance"`,
            :obj:`"mean"` or :obj:`"max"`; it sets the
            :class:`~torch_geometric.nn.conv.MessagePassing` aggregation
            (:obj:`"sum"` of normalised weights, or :obj:`"max"`).
            (default: :obj:`"importance"`)
        normalize (bool, optional): If set to :obj:`False`, the output is not
            :math:`\ell_2`-normalised. (default: :obj:`True`)
        dropout (float, optional): Dropout probability applied to the source
            features before :math:`\mathbf{Q}` and to the target features
            before :math:`\mathbf{W}`. (default: :obj:`0.0`)
        bias (bool, optional): If set to :obj:`False`, the layer learns
            neither :math:`\mathbf{q}` nor :math:`\mathbf{w}`.
            (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing` (but
            :obj:`aggr`, which :obj:`pooling` sets).

    Shapes:
        - **inputs:**
          node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V_s}|, F_{s}), (|\mathcal{V_t}|, F_{t}))`
          if bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` (neighbour :math:`\to`
          target) or a transposed sparse adjacency
          :math:`(|\mathcal{V_t}|, |\mathcal{V_s}|)` whose values are the
          weights, edge weights :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})` or
          :math:`(|\mathcal{V_t}|, F_{out})` if bipartite
    """
    def __init__(
        self,
        in_channels: Union[int, Tuple[int, int]],
        out_channels: int,
        hidden_channels: Optional[int] = None,
        pooling: str = 'importance',
        normalize: bool = True,
        dropout: float = 0.0,
        bias: bool = True,
        **kwargs,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"'pooling' must be one of {POOLINGS} (got "
                             f"{pooling!r})")
        if 'aggr' in kwargs:
            raise ValueError(f"'{self.__class__.__name__}' sets 'aggr' from "
                             f"'pooling' (one of {POOLINGS}); got "
                             f"aggr={kwargs['aggr']!r}")
        if not isinstance(in_channels, (tuple, list)):
            in_channels = (in_channels, in_channels)
        if len(in_channels) != 2:
            raise ValueError(f"'in_channels' must be an int or a (source, "
                             f"target) pair of ints (got {in_channels!r})")
        hidden_channels = out_channels if hidden_channels is None else \
            hidden_channels
        # -1: lazy initialisation from the first input (as SAGEConv).
        in_channels = tuple(
            -1 if c == -1 and not isinstance(c, bool) else
            check_positive_int(c, 'in_channels') for c in in_channels)
        out_channels = check_positive_int(out_channels, 'out_channels')
        hidden_channels = check_positive_int(hidden_channels,
                                             'hidden_channels')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1) (got {dropout})")

        # Importance and mean pooling are weighted sums of the messages with
        # per-target normalised weights; max pooling is a max reduction.
        super().__init__(aggr='max' if pooling == 'max' else 'sum', **kwargs)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.pooling = pooling
        self.normalize = normalize
        self.dropout = dropout

        self.lin_neighbor = Linear(in_channels[0], hidden_channels,
                                   bias=bias)  # Q, q
        self.lin_update = Linear(
            -1 if in_channels[1] == -1 else in_channels[1] + hidden_channels,
            out_channels, bias=bias)  # W, w
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.lin_neighbor.reset_parameters()
        self.lin_update.reset_parameters()

    def forward(self, x: Union[Tensor, Tuple[Tensor, Tensor]],
                edge_index: Adj, edge_weight: OptTensor = None) -> Tensor:
        if isinstance(x, Tensor):
            x = (x, x)
        elif not (isinstance(x, (tuple, list)) and len(x) == 2
                  and all(isinstance(v, Tensor) for v in x)):
            raise TypeError("'x' must be a tensor or a (source, target) pair "
                            "of tensors")
        x_src, x_dst = x
        self._check_features(x_src, self.in_channels[0], 'source',
                             self.lin_neighbor.weight)
        self._check_features(x_dst, self.in_channels[1], 'target',
                             self.lin_update.weight)

        # ReLU(Q h_v + q) once per source node, then pooled per target.
        x_src = F.dropout(x_src, p=self.dropout, training=self.training)
        messages = self.lin_neighbor(x_src).relu()
        size = (x_src.size(0), x_dst.size(0))
        if is_torch_sparse_tensor(edge_index) and \
                edge_index.layout == torch.sparse_coo:
            self._check_adj_t_size(edge_index, size)
            if edge_weight is not None:
                is_sparse_adjacency(edge_index, edge_weight)  # raises
            # COO entries as edges, copies kept apart (no coalescing).
            edge_weight = check_edge_weight(
                edge_index._values(), edge_index._nnz(), 'adj_t.values',
                check_values=torch_geometric.is_debug_enabled())
            edge_index = edge_index._indices().flip(0)
        if is_sparse_adjacency(edge_index, edge_weight):
            edge_index = self._pooling_adj_t(edge_index, messages, size)
            size = None
        elif isinstance(edge_index, Tensor):
            edge_weight = self._pooling_edges(edge_index, edge_weight,
                                              messages, size)
        else:
            raise TypeError(f"'edge_index' must be a [2, E] tensor, a "
                            f"torch.sparse adjacency or a SparseTensor (got "
                            f"{type(edge_index).__name__})")
        # propagate_type: (x: Tensor, edge_weight: OptTensor)
        pooled = self.propagate(edge_index, x=messages,
                                edge_weight=edge_weight, size=size)

        x_dst = F.dropout(x_dst, p=self.dropout, training=self.training)
        out = self.lin_update(torch.cat([x_dst, pooled], dim=-1)).relu()
        if self.normalize:
            out = l2_normalize(out)
        return out

    def message(self, x_j: Tensor, edge_weight: OptTensor) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Adj, x: Tensor) -> Tensor:
        # Weights are already normalised per target (or unit for max).
        reduce = 'max' if self.pooling == 'max' else 'sum'
        if x.dtype not in HALF_DTYPES:
            return spmm(adj_t, x, reduce=reduce)
        # CPU sparse kernels lack half precision: accumulate in float32.
        if isinstance(adj_t, SparseTensor):
            value = adj_t.storage.value()  # None under max pooling
            if value is not None:
                adj_t = adj_t.set_value(value.float(), layout='coo')
        else:
            adj_t = adj_t.float()
        return spmm(adj_t, x.float(), reduce=reduce).to(x.dtype)

    def _check_features(self, x: Tensor, channels: int, role: str,
                        weight: Tensor):
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"the {role} features must be a 2-D tensor "
                             f"[num_nodes, {channels}] (got "
                             f"{getattr(x, 'shape', type(x).__name__)})")
        if channels != -1 and x.size(-1) != channels:
            raise ValueError(f"'{self.__class__.__name__}' expects {role} "
                             f"features of width {channels} (got "
                             f"{x.size(-1)})")
        # Metadata only; the values are read in debug mode alone, so that
        # the forward pass never waits for the device.
        check_floating(x, f'x ({role} features)', weight.dtype,
                       f"the weights of '{self.__class__.__name__}'")
        if torch_geometric.is_debug_enabled():
            check_finite(x, f'x ({role} features)')

    def _pooled_weights(self, edge_weight: OptTensor, target: Tensor,
                        num_targets: int, like: Tensor) -> OptTensor:
        if self.pooling == 'max':
            return None
        if self.pooling == 'mean' or edge_weight is None:
            edge_weight = torch.ones(target.numel(), dtype=like.dtype,
                                     device=target.device)
        return importance_weights(edge_weight.to(like.dtype), target,
                                  num_targets)

    def _pooling_edges(self, edge_index: Tensor, edge_weight: OptTensor,
                       messages: Tensor, size: Tuple[int, int]) -> OptTensor:
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"'edge_index' must have shape [2, E] "
                             f"(neighbour -> target), got "
                             f"{list(edge_index.shape)}")
        check_index_dtype(edge_index, 'edge_index')
        debug = torch_geometric.is_debug_enabled()
        if debug:  # Reads the ids: a host synchronisation.
            for row, bound, role in ((0, size[0], 'source'),
                                     (1, size[1], 'target')):
                check_index_range(edge_index[row], bound, 'edge_index',
                                  f'{role} ids')
        if edge_weight is not None:
            edge_weight = check_edge_weight(edge_weight, edge_index.size(1),
                                            check_values=debug)
        return self._pooled_weights(edge_weight, edge_index[1], size[1],
                                    messages)

    @staticmethod
    def _check_adj_t_size(adj_t: Adj, size: Tuple[int, int]):
        if adj_t.size(1) != size[0] or adj_t.size(0) != size[1]:
            raise ValueError(f"the sparse adjacency must have shape "
                             f"[num_targets, num_sources] = [{size[1]}, "
                             f"{size[0]}] (got {list(adj_t.size())})")

    def _pooling_adj_t(self, adj_t: Adj, messages: Tensor,
                       size: Tuple[int, int]) -> Adj:
        self._check_adj_t_size(adj_t, size)
        num_dst = adj_t.size(0)
        debug = torch_geometric.is_debug_enabled()
        if isinstance(adj_t, SparseTensor):
            value = adj_t.storage.value()
            if value is not None:
                value = check_edge_weight(value, adj_t.nnz(), 'adj_t.values',
                                          check_values=debug)
            value = self._pooled_weights(value, adj_t.storage.row(), num_dst,
                                         messages)
            return adj_t.set_value(value, layout='coo')
        if adj_t.layout != torch.sparse_csr:
            adj_t = adj_t.to_sparse_csr()
        crow, col = adj_t.crow_indices(), adj_t.col_indices()
        value = check_edge_weight(adj_t.values(), col.numel(), 'adj_t.values',
                                  check_values=debug)
        value = self._pooled_weights(value, ptr2index(crow, col.numel()),
                                     num_dst, messages)
        if value is None:  # max pooling: unit values
            value = messages.new_ones(col.numel())
        return torch.sparse_csr_tensor(crow, col, value, adj_t.size())

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, hidden_channels='
                f'{self.hidden_channels}, pooling={self.pooling!r}, '
                f'normalize={self.normalize})')
