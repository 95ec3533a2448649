import math
from typing import List, Optional, Tuple, Union

import torch
import torch_geometric
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.typing import (
    Adj,
    OptTensor,
    PairTensor,
    SparseTensor,
)
from torch_geometric.utils import (
    is_torch_sparse_tensor,
    spmm,
    to_torch_csr_tensor,
)

from pyg_lightgode.data.validation import check_matrix
from pyg_lightgode.nn.conv.utils import (
    Partition,
    check_graph,
    is_sparse_adjacency,
)
from pyg_lightgode.nn.ode import (  # noqa: F401 (re-exported)
    ADAPTIVE_METHODS,
    DEFAULT_MAX_STEPS,
    FIXED_STEP_METHODS,
    METHODS,
    Times,
    check_method,
    integrate,
)
from pyg_lightgode.nn.ode import parse_times as _parse_times

#: A block of target rows :obj:`(start, end, graph, edge_weight)`: the whole
#: graph (:obj:`edge_index` or transposed sparse adjacency) or rows
#: :obj:`start:end` of a CSR :obj:`adj_t`.
RowBlock = Tuple[int, int, Adj, OptTensor]
_HALF = (torch.float16, torch.bfloat16)


class LightGODEConv(MessagePassing):
    r"""The non-parametric graph ODE propagation from the `"Do We Really Need
    Graph Convolution During Training? Light Post-Training Graph-ODE for
    Efficient Recommendation" <https://arxiv.org/abs/2407.18910>`_ paper

    .. math::
        \frac{d\mathbf{E}(t)}{dt} = \hat{\mathbf{A}} \mathbf{E}(t) +
        \mathbf{X}, \qquad \mathbf{E}(0) = \mathbf{X},

    solved up to time :math:`t`, where :math:`\hat{\mathbf{A}} =
    \mathbf{D}^{-1/2} \mathbf{A} \mathbf{D}^{-1/2}` has no self-loops (as in
    :class:`~torch_geometric.nn.conv.LGConv`). The default, one Euler step
    (as in the official code), is

    .. math::
        \mathbf{X}^{\prime} = (1 + t) \mathbf{X} + t \hat{\mathbf{A}}
        \mathbf{X};

    :obj:`method="exact"` sums the series :math:`\mathbf{E}(t) = \sum_{k
    \geq 0} (\frac{t^k}{k!} + \frac{t^{k+1}}{(k+1)!}) \hat{\mathbf{A}}^k
    \mathbf{X}` and the :obj:`torchdiffeq` methods integrate the ODE.
    For a bipartite pair :obj:`x = (x_src, x_dst)` (one-step :obj:`"euler"`
    only, :obj:`normalize=False`), the step updates the target rows:
    :math:`\mathbf{X}_{dst}^{\prime} = (1 + t)\mathbf{X}_{dst} +
    t\hat{\mathbf{A}}\mathbf{X}_{src}` with :math:`\hat{\mathbf{A}}` the
    given :obj:`[N_dst, N_src]` weights, *e.g.* a block of rows of the
    normalised adjacency (fold-in of new nodes, a partition of the graph).
    Duplicate edges add up, in every graph form. Values (node ids, NaNs,
    negative weights) are checked only under
    :func:`torch_geometric.debug`, so the one-step :obj:`"euler"` runs
    without host synchronisation and compiles with :obj:`fullgraph=True`
    for an :obj:`edge_index` (propagated by scatter; a sparse adjacency
    uses sparse matrix products, which need float32 or float64 on CPU).

    Args:
        t (float or Sequence[float] or torch.Tensor, optional): The end time
            :math:`t \geq 0`, or strictly increasing times, all returned
            from one solve. Can be overridden in :meth:`forward`.
            (default: :obj:`1.0`)
        method (str, optional): :obj:`"exact"` or a :obj:`torchdiffeq`
            method (:obj:`"euler"`, :obj:`"rk4"`, :obj:`"dopri5"`, ...,
            see :obj:`pyg_lightgode.nn.ode.METHODS`).
            (default: :obj:`"euler"`)
        step_size (float, optional): The largest step of a fixed-step
            method; if :obj:`None`, one step from :math:`0` to each time.
            (default: :obj:`None`)
        normalize (bool, optional): If set to :obj:`False`, the edge weights
            (or ones, or the values of a sparse adjacency) are used as
            :math:`\hat{\mathbf{A}}` as given, *e.g.*, an adjacency
            normalized once by :meth:`gcn_norm` with
            :obj:`add_self_loops=False`. (default: :obj:`True`)
        rtol (float, optional): Relative tolerance of the adaptive methods
            and of the :obj:`"exact"` series. (default: :obj:`1e-5`)
        atol (float, optional): Absolute tolerance per entry.
            (default: :obj:`1e-7`)
        max_terms (int, optional): The most terms of the :obj:`"exact"`
            series. (default: :obj:`500`)
        chunk_size (int, optional): If set, propagates blocks of
            :obj:`chunk_size` target rows at a time (same result, smaller
            temporaries). Can be overridden in :meth:`forward`.
            (default: :obj:`None`)
        max_steps (int, optional): The most steps (or function evaluations)
            of one solve before :class:`~pyg_lightgode.nn.ode.ODESolverError`
            is raised. (default: :obj:`10000`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    **Row blocks of a partitioned graph**: with a :obj:`partition` (see
    :class:`~pyg_lightgode.nn.conv.utils.Partition`, *e.g.* one process'
    part of a graph split across :mod:`torch.distributed` ranks),
    :obj:`x` holds only the :math:`n` rows this block owns and
    :obj:`edge_index` is the block's rows of the already normalised
    :math:`\hat{\mathbf{A}}` as a sparse :math:`n \times m` matrix whose
    first :math:`n` columns are the block's own rows and the others the
    rows :meth:`Partition.gather` fetches; every product then gathers the
    state first, and the norms of :obj:`"exact"` and the adaptive methods
    are summed over the blocks, so every block takes the same decisions.
    Construct the layer with :obj:`normalize=False`.

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)` or
          :math:`((|\mathcal{V}_s|, F), (|\mathcal{V}_t|, F))` if
          bipartite,
          edge indices :math:`(2, |\mathcal{E}|)` or a transposed sparse
          adjacency :math:`(|\mathcal{V}|, |\mathcal{V}|)`,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*; with a
          :obj:`partition`: :math:`(n, F)` and :math:`(n, m)`
        - **output:** node features :math:`(|\mathcal{V}|, F)` (or
          :math:`(|\mathcal{V}_t|, F)` if bipartite), or
          :math:`(T, |\mathcal{V}|, F)` for :math:`T` times given as a
          sequence or 1-D tensor (:math:`n` rows with a :obj:`partition`)
    """
    def __init__(
        self,
        t: Times = 1.0,
        method: str = 'euler',
        step_size: Optional[float] = None,
        normalize: bool = True,
        rtol: float = 1e-5,
        atol: float = 1e-7,
        max_terms: int = 500,
        chunk_size: Optional[int] = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        **kwargs,
    ):
        kwargs.setdefault('aggr', 'add')
        super().__init__(**kwargs)
        if self.aggr not in ('add', 'sum'):
            raise ValueError(f"'aggr' must be 'add' for "
                             f"{self.__class__.__name__} (got {self.aggr!r})")
        if self.flow != 'source_to_target':
            raise ValueError(f"'flow' must be 'source_to_target' for "
                             f"{self.__class__.__name__} (got {self.flow!r});"
                             f" flip 'edge_index' instead")
        check_method(method, step_size, rtol, atol, max_steps)
        if int(max_terms) < 1:
            raise ValueError(f"'max_terms' must be a positive integer "
                             f"(got {max_terms})")
        _parse_times(t)
        _check_chunk_size(chunk_size)
        self.t, self.method, self.step_size = t, method, step_size
        self.normalize = normalize
        self.rtol, self.atol, self.max_steps = rtol, atol, max_steps
        self.max_terms = int(max_terms)
        self.chunk_size = chunk_size

    def reset_parameters(self):
        super().reset_parameters()  # Nothing learnable to reset.

    def forward(self, x: Union[Tensor, PairTensor], edge_index: Adj,
                edge_weight: OptTensor = None, t: Optional[Times] = None,
                chunk_size: Optional[int] = None,
                partition: Optional[Partition] = None) -> Tensor:
        times, single_time = _parse_times(self.t if t is None else t)
        if isinstance(x, (tuple, list)):
            out = self._bipartite_step(x, edge_index, edge_weight, times)
            return out[0] if single_time else out
        chunk_size = _check_chunk_size(
            self.chunk_size if chunk_size is None else chunk_size)
        if partition is None:
            edge_index, edge_weight = self._prepare(x, edge_index,
                                                    edge_weight)
        else:
            edge_index = self._prepare_block(x, edge_index, edge_weight)
        num_nodes = x.size(0)

        if chunk_size is not None and chunk_size < num_nodes:
            blocks = _row_blocks(
                _to_csr(edge_index, edge_weight, x), chunk_size)
        else:
            blocks = [(0, num_nodes, edge_index, edge_weight)]

        if self.method == 'exact':
            out = self._exact(x, blocks, times, partition)
        elif self.step_size is None and self.method == 'euler':
            out = self._euler(x, blocks, times, partition)
        else:
            out = self._integrate(x, blocks, times, partition)
        return out[0] if single_time else out

    def _bipartite_step(self, x: PairTensor, edge_index: Adj,
                        edge_weight: OptTensor, times: List[float]
                        ) -> Tensor:
        # One Euler step of the target rows from a bipartite pair.
        if len(x) != 2:
            raise ValueError(f"A bipartite 'x' must be a pair (x_src, x_dst) "
                             f"(got {len(x)} tensors)")
        if self.method != 'euler' or self.step_size is not None or \
                self.normalize:
            raise ValueError("A bipartite 'x' takes the one-step 'euler' "
                             "method with normalize=False: the weights of a "
                             "block of rows are normalised by the degrees "
                             "of the whole graph, which the block lacks")
        x_src, x_dst = x
        _check_features(x_src, allow_empty=True)
        _check_features(x_dst, allow_empty=True)
        if x_src.size(1) != x_dst.size(1) or x_src.dtype != x_dst.dtype:
            raise ValueError(f"'x_src' and 'x_dst' must have the same "
                             f"width and dtype (got {list(x_src.shape)} "
                             f"{x_src.dtype} and {list(x_dst.shape)} "
                             f"{x_dst.dtype})")
        if is_sparse_adjacency(edge_index, edge_weight):
            adj_t = _prepare_sparse(edge_index, x_src, False,
                                    num_rows=x_dst.size(0))
            if len(times) == 1:
                return _sparse_addmm(x_dst, adj_t, times[0], x_src)[None]
            out = spmm(adj_t, x_src)
        else:
            _check_edge_index(edge_index, edge_weight)
            if edge_weight is not None:
                edge_weight = edge_weight.to(x_src.dtype)
            out = self.propagate(edge_index, x=(x_src, x_dst),
                                 edge_weight=edge_weight,
                                 size=(x_src.size(0), x_dst.size(0)))
        if len(times) == 1:
            return out.mul_(times[0]).add_(x_dst, alpha=1.0 + times[0])[None]
        t = torch.tensor(times, dtype=x_dst.dtype, device=x_dst.device)
        return torch.addcmul(x_dst, t.view(-1, 1, 1), out.add_(x_dst))

    def _prepare_block(self, x: Tensor, adj: Adj,
                       edge_weight: OptTensor) -> Tensor:
        r"""Checks a row block :obj:`[n, m]` of a partitioned graph and
        returns it as a torch.sparse CSR matrix of :obj:`x`'s dtype."""
        _check_features(x)
        if self.normalize:
            raise ValueError("A 'partition' needs the block of the already "
                             "normalised adjacency and 'normalize=False' "
                             "(degrees are global)")
        if not is_sparse_adjacency(adj, edge_weight):
            raise TypeError(f"With a 'partition', 'edge_index' must be the "
                            f"block's rows of the adjacency as a sparse "
                            f"[n, m] matrix (got {type(adj).__name__})")
        if self.method in ADAPTIVE_METHODS and x.dtype in _HALF:
            raise TypeError(f"The adaptive method {self.method!r} cannot "
                            f"reach its tolerances in {x.dtype}")
        size = list(adj.sizes() if isinstance(adj, SparseTensor)
                    else adj.shape)
        if size[0] != x.size(0) or size[1] < size[0]:
            raise ValueError(f"The block adjacency must have shape [n, m] "
                             f"with n = {x.size(0)} (the rows of 'x') and "
                             f"m >= n (got {size})")
        _check_sparse_dtype(x)
        if isinstance(adj, SparseTensor):
            return adj.to_torch_sparse_csr_tensor(dtype=x.dtype)
        if adj.layout != torch.sparse_csr:
            adj = adj.to_sparse_csr()
        return adj.to(x.dtype)

    def _prepare(self, x: Tensor, edge_index: Adj,
                 edge_weight: OptTensor) -> Tuple[Adj, OptTensor]:
        r"""Checks shapes and dtypes (and, in debug mode, the values), and
        returns the normalized graph: an :obj:`edge_index` with weights, or
        a transposed CSR adjacency of :obj:`x`'s dtype."""
        _check_features(x)
        if self.method in ADAPTIVE_METHODS and x.dtype in _HALF:
            raise TypeError(f"The adaptive method {self.method!r} cannot "
                            f"reach its tolerances in {x.dtype}; use float32 "
                            f"or a fixed-step method ('euler', 'rk4', ...)")
        if torch_geometric.is_debug_enabled():
            _check_finite_features(x)
        if is_sparse_adjacency(edge_index, edge_weight):
            return _prepare_sparse(edge_index, x, self.normalize), None
        if not isinstance(edge_index, Tensor):
            raise TypeError(f"'edge_index' must be an edge index tensor, a "
                            f"torch.sparse tensor or a SparseTensor (got "
                            f"{type(edge_index).__name__})")
        _check_edge_index(edge_index, edge_weight)
        if edge_weight is not None:
            edge_weight = edge_weight.to(x.dtype)
        if torch_geometric.is_debug_enabled():
            check_graph(edge_index, edge_weight, x.size(0), self.normalize)
        if self.normalize:
            edge_index, edge_weight = gcn_norm(
                edge_index, edge_weight, x.size(0), add_self_loops=False,
                dtype=x.dtype)
        return edge_index, edge_weight

    def _propagate_rows(self, graph: Adj, edge_weight: OptTensor,
                        x: Tensor) -> Tensor:
        # propagate_type: (x: Tensor, edge_weight: OptTensor)
        return self.propagate(graph, x=x, edge_weight=edge_weight)

    def _plain_sparse(self, graph: Adj) -> bool:
        # Whether propagate() would be one torch.sparse product: fused, no
        # hooks, no explainer, no decomposition.
        return (is_torch_sparse_tensor(graph) and self.fuse
                and self.decomposed_layers == 1 and not self.explain
                and not self._propagate_forward_pre_hooks
                and not self._propagate_forward_hooks)

    def _propagate(self, blocks: List[RowBlock], x: Tensor,
                   partition: Optional[Partition] = None) -> Tensor:
        cols = x if partition is None else partition.gather(x)
        if len(blocks) == 1:
            return self._propagate_rows(blocks[0][2], blocks[0][3], cols)
        out = x.new_empty(x.shape)
        for start, end, graph, edge_weight in blocks:
            out[start:end] = self._propagate_rows(graph, edge_weight, cols)
        return out

    def _euler(self, x: Tensor, blocks: List[RowBlock],
               times: List[float],
               partition: Optional[Partition] = None) -> Tensor:
        # One step per time needs dX/dt at 0 only: one propagation in all.
        cols = x if partition is None else partition.gather(x)
        if len(blocks) == 1:
            if len(times) == 1 and self._plain_sparse(blocks[0][2]):
                # (1 + t) x + t A x as one fused sparse product.
                return _sparse_addmm(x, blocks[0][2], times[0], cols)[None]
            out = self._propagate_rows(blocks[0][2], blocks[0][3], cols)
            if len(times) == 1:  # (1 + t) x + t A x, in place.
                return out.mul_(times[0]).add_(x, alpha=1.0 + times[0])[None]
            t = torch.tensor(times, dtype=x.dtype, device=x.device)
            return torch.addcmul(x, t.view(-1, 1, 1), out.add_(x))
        out = x.new_empty((len(times), ) + x.shape)
        for start, end, graph, edge_weight in blocks:
            x_rows = x[start:end]
            slope = self._propagate_rows(graph, edge_weight,
                                         cols).add_(x_rows)
            for i, time in enumerate(times):
                out[i, start:end] = torch.add(x_rows, slope, alpha=time)
        return out

    def _integrate(self, x: Tensor, blocks: List[RowBlock],
                   times: List[float],
                   partition: Optional[Partition] = None) -> Tensor:
        def derivative(time: Tensor, state: Tensor) -> Tensor:
            return self._propagate(blocks, state, partition) + x

        norm = None if partition is None else _partition_rms_norm(partition)
        return integrate(derivative, x, times, self.method, self.step_size,
                         self.rtol, self.atol, self.max_steps, norm=norm)

    def _exact(self, x: Tensor, blocks: List[RowBlock],
               times: List[float],
               partition: Optional[Partition] = None) -> Tensor:
        # Stops once the terms are small: reads their norms (host syncs).
        t = torch.tensor(times, dtype=torch.float64)
        power_coef = torch.ones_like(t)  # t^k / k!
        out = x.new_empty((len(times), ) + x.shape)
        x_coef = (1 + t).to(x).view(-1, 1, 1)
        for start, end, _, _ in blocks:
            out[:, start:end] = x_coef * x[start:end]
        power = x  # A^k x
        prev_terms = torch.full_like(t, float('inf'))
        numel = x.numel() if partition is None else float(
            partition.all_reduce(torch.tensor([float(x.numel())],
                                              dtype=torch.float64)))
        abs_tol = self.atol * math.sqrt(numel)
        for k in range(1, self.max_terms + 1):
            power = self._propagate(blocks, power, partition)
            power_coef = power_coef * t / k
            coef = power_coef * (1 + t / (k + 1))
            power_coef_x = coef.to(x).view(-1, 1, 1)
            for start, end, _, _ in blocks:  # In place, block by block.
                out[:, start:end] += power_coef_x * power[start:end]
            if partition is None:
                terms = coef * float(power.detach().norm())
                tol = self.rtol * out.detach().flatten(1).norm(
                    dim=1).double()
            else:  # Norms over all blocks: every block stops together.
                squares = partition.all_reduce(torch.cat([
                    power.detach().double().pow(2).sum().view(1),
                    out.detach().double().flatten(1).pow(2).sum(1)
                ]).cpu())
                terms = coef * float(squares[0].sqrt())
                tol = self.rtol * squares[1:].sqrt()
            # Small and shrinking at least geometrically, so the tail is too:
            if bool(((terms <= tol.cpu() + abs_tol) &
                     (terms <= 0.5 * prev_terms)).all()):
                return out
            prev_terms = terms
        raise RuntimeError(f"method='exact' did not converge within "
                           f"max_terms={self.max_terms} terms for t="
                           f"{max(times)}; raise 'max_terms' or 'rtol'/'atol'"
                           f", or use an ODE method such as 'dopri5'")

    def message(self, x_j: Tensor, edge_weight: OptTensor) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(self, adj_t: Adj, x: Tensor) -> Tensor:
        return spmm(adj_t, x, reduce=self.aggr)

    def __repr__(self) -> str:
        step = ('' if self.step_size is None else
                f', step_size={self.step_size}')
        return (f'{self.__class__.__name__}(t={self.t}, '
                f'method={self.method!r}{step})')


def _check_chunk_size(chunk_size: Optional[int]) -> Optional[int]:
    if chunk_size is not None and (isinstance(chunk_size, bool)
                                   or not isinstance(chunk_size, int)
                                   or chunk_size <= 0):
        raise ValueError(f"'chunk_size' must be a positive integer or None "
                         f"(got {chunk_size!r})")
    return chunk_size


def _check_features(x: Tensor, allow_empty: bool = False):
    check_matrix(x, 'x', 'of node features [N, F]')
    if x.size(0) == 0 and not allow_empty:
        raise ValueError("'x' has no rows: the graph needs at least one node")


def _check_finite_features(x: Tensor):
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError("'x' contains NaN or infinite values")


def _check_edge_index(edge_index: Tensor, edge_weight: OptTensor):
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, E] (got "
                         f"{list(edge_index.shape)})")
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
        raise ValueError(f"'edge_index' must hold integer node ids (got "
                         f"{edge_index.dtype})")
    if edge_weight is not None and (not isinstance(edge_weight, Tensor)
                                    or edge_weight.dim() != 1
                                    or edge_weight.numel()
                                    != edge_index.size(1)):
        shape = (list(edge_weight.shape) if isinstance(edge_weight, Tensor)
                 else type(edge_weight).__name__)
        raise ValueError(f"'edge_weight' must be a 1-D tensor with one entry "
                         f"per edge ({edge_index.size(1)}), got {shape}")


# Sparse tensors are no Dynamo inputs: their preparation runs eagerly.
@torch.compiler.disable
def _prepare_sparse(adj: Adj, x: Tensor, normalize: bool,
                    num_rows: Optional[int] = None) -> Tensor:
    r"""A sparse adjacency (COO, CSR, CSC or :class:`SparseTensor`) as a
    transposed torch.sparse CSR matrix of :obj:`x`'s dtype, normalized if
    :obj:`normalize`; duplicate entries of an uncoalesced COO tensor are
    summed. Its shape is :obj:`[num_rows, x.size(0)]` (square by
    default)."""
    num_nodes = x.size(0)
    rows = num_nodes if num_rows is None else num_rows
    size = list(adj.sizes() if isinstance(adj, SparseTensor) else adj.shape)
    if size != [rows, num_nodes]:
        what = "'x'" if num_rows is None else "'x_dst' and 'x_src'"
        raise ValueError(f"The sparse adjacency must have shape "
                         f"[{rows}, {num_nodes}] to match the rows of "
                         f"{what} (got {size})")
    _check_sparse_dtype(x)
    if isinstance(adj, SparseTensor):
        adj = adj.to_torch_sparse_csr_tensor(dtype=x.dtype)
    elif adj.layout != torch.sparse_csr:
        adj = adj.to_sparse_csr().to(x.dtype)
    else:
        adj = adj.to(x.dtype)
    if torch_geometric.is_debug_enabled() and num_rows is None:
        check_graph(adj, None, num_nodes, normalize)
    if normalize:
        adj, _ = gcn_norm(adj, None, num_nodes, add_self_loops=False)
    return adj


@torch.compiler.disable
def _sparse_addmm(x: Tensor, adj_t: Tensor, t: float,
                  x_src: Optional[Tensor] = None) -> Tensor:
    return torch.addmm(x, adj_t, x if x_src is None else x_src,
                       beta=1.0 + t, alpha=t)


def _partition_rms_norm(partition: Partition):
    r"""torchdiffeq's error norm (the RMS over all entries) over every
    block of :obj:`partition`, so that all blocks take the same steps."""
    def norm(value: Tensor) -> Tensor:
        sums = partition.all_reduce(torch.stack([
            value.detach().double().pow(2).sum().cpu(),
            torch.tensor(float(value.numel()), dtype=torch.float64)
        ]))
        return (sums[0] / sums[1]).sqrt().to(value.device, value.dtype)

    return norm


def _check_sparse_dtype(x: Tensor):
    if x.device.type == 'cpu' and x.dtype in _HALF:
        raise TypeError(f"Sparse matrix products on CPU do not support "
                        f"{x.dtype}: pass the graph as an 'edge_index' "
                        f"without 'chunk_size' (it propagates by scatter) or "
                        f"use float32")


@torch.compiler.disable
def _to_csr(graph: Adj, edge_weight: OptTensor, x: Tensor) -> Tensor:
    if isinstance(graph, Tensor) and graph.layout == torch.strided:
        _check_sparse_dtype(x)
        return to_torch_csr_tensor(graph.flip(0), edge_weight,
                                   size=(x.size(0), x.size(0)))
    return graph


@torch.compiler.disable
def _row_blocks(adj_t: Tensor, chunk_size: int) -> List[RowBlock]:
    r"""Splits the CSR :obj:`adj_t` into blocks of at most
    :obj:`chunk_size` rows that share its column indices and values."""
    num_rows = adj_t.size(0)
    crow, col, value = (adj_t.crow_indices(), adj_t.col_indices(),
                        adj_t.values())
    bounds = crow[::chunk_size].tolist() + [int(crow[-1])]
    blocks: List[RowBlock] = []
    for i, start in enumerate(range(0, num_rows, chunk_size)):
        end = min(start + chunk_size, num_rows)
        lo, hi = bounds[i], bounds[i + 1]
        blocks.append((start, end, torch.sparse_csr_tensor(
            crow[start:end + 1] - lo, col[lo:hi], value[lo:hi],
            size=(end - start, adj_t.size(1))), None))
    return blocks
