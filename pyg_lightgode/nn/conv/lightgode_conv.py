import math
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.typing import Adj, OptTensor, SparseTensor
from torch_geometric.utils import spmm, to_torch_csr_tensor

from pyg_lightgode.nn.conv.utils import is_sparse_adjacency
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

#: A block of target rows :obj:`(start, end, adj_t[start:end])`.
RowBlock = Tuple[int, int, Tensor]


class LightGODEConv(MessagePassing):
    r"""The non-parametric graph ODE propagation from the `"Do We Really Need
    Graph Convolution During Training? Light Post-Training Graph-ODE for
    Efficient Recommendation" <https://arxiv.org/abs/2407.18910>`_ paper
    (LightGODE).

    Starting from the node embeddings :math:`\mathbf{X}`, it solves

    .. math::
        \frac{d\mathbf{E}(t)}{dt} = \hat{\mathbf{A}} \mathbf{E}(t) +
        \mathbf{X}, \qquad \mathbf{E}(0) = \mathbf{X}

    up to time :math:`t`, where :math:`\hat{\mathbf{A}} =
    \mathbf{D}^{-1/2} \mathbf{A} \mathbf{D}^{-1/2}` is the symmetrically
    normalized adjacency matrix *without* self-loops (as in
    :class:`~torch_geometric.nn.conv.LGConv`). The constant term
    :math:`\mathbf{X}` acts as an initial residual that keeps the result
    anchored to the space the embeddings were trained in. The exact solution
    is

    .. math::
        \mathbf{E}(t) = \sum_{k \geq 0} \left( \frac{t^k}{k!} +
        \frac{t^{k+1}}{(k+1)!} \right) \hat{\mathbf{A}}^k \mathbf{X}.

    The default, :obj:`method="euler"` without :obj:`step_size`, is the single
    Euler step of size :math:`t` that the official implementation takes and
    for which the published end times (*e.g.*, :math:`t = 3` on Gowalla) were
    tuned:

    .. math::
        \mathbf{E}(t) = (1 + t) \mathbf{X} + t \hat{\mathbf{A}} \mathbf{X}.

    Use it to reproduce the paper. An accurate solver (:obj:`"exact"`,
    :obj:`"rk4"` with a small :obj:`step_size`, :obj:`"dopri5"`, ...) computes
    a different, smoother operator that mixes in all powers of
    :math:`\hat{\mathbf{A}}`; its best :math:`t` is smaller (around
    :math:`1`--:math:`2` on Gowalla) and it can be more, equally or less
    accurate than the one-step form depending on how the embeddings were
    trained. Pick the method and :math:`t` on validation data after
    training: passing several times returns all of them from one solve.

    Args:
        t (float or Sequence[float] or torch.Tensor, optional): The end time
            :math:`t \geq 0`, or a 1-D sequence of strictly increasing times
            at which the solution is returned. Can be overridden in
            :meth:`forward`. (default: :obj:`1.0`)
        method (str, optional): :obj:`"exact"` sums the series above until
            its terms fall below the tolerance (no ODE library needed). Any
            other value is a :obj:`torchdiffeq` method: a fixed-step one
            (:obj:`"euler"`, :obj:`"midpoint"`, :obj:`"heun2"`,
            :obj:`"heun3"`, :obj:`"rk4"`, :obj:`"explicit_adams"`,
            :obj:`"implicit_adams"`, :obj:`"fixed_adams"`) or an adaptive
            one (:obj:`"dopri5"`, :obj:`"dopri8"`, :obj:`"bosh3"`,
            :obj:`"fehlberg2"`, :obj:`"adaptive_heun"`).
            (default: :obj:`"euler"`)
        step_size (float, optional): The largest step of a fixed-step method.
            Every requested time is a grid point; each interval between two
            of them is cut into equal steps of at most :obj:`step_size`. If
            :obj:`None`, a fixed-step method takes one single step from
            :math:`0` to each requested time, as the official code does
            (several times are then solved separately, so each result is the
            one-step answer for that time; for :obj:`"euler"` this costs a
            single propagation in total). (default: :obj:`None`)
        normalize (bool, optional): If set to :obj:`False`, the edge weights
            (or ones) are used as :math:`\hat{\mathbf{A}}` as they are.
            (default: :obj:`True`)
        rtol (float, optional): Relative tolerance of the adaptive methods,
            of :obj:`"implicit_adams"`'s corrector, and of the series of
            :obj:`"exact"` (a term is negligible once its norm is below
            :obj:`rtol` times the norm of the sum, plus the absolute part).
            (default: :obj:`1e-5`)
        atol (float, optional): Absolute tolerance per entry, used like
            :obj:`rtol`. (default: :obj:`1e-7`)
        max_terms (int, optional): The most series terms :obj:`"exact"`
            computes before it raises an error. (default: :obj:`500`)
        chunk_size (int, optional): If set, the sparse products and the
            dense updates run over blocks of :obj:`chunk_size` target rows
            (each block of rows of :math:`\hat{\mathbf{A}}` multiplies the
            whole input), which bounds the temporaries to one block; the
            results equal the unchunked ones. Can be overridden in
            :meth:`forward`. (default: :obj:`None`, all rows at once)
        max_steps (int, optional): The most steps (fixed-step methods) or
            function evaluations (adaptive methods) of one solve; beyond it
            :class:`~pyg_lightgode.nn.ode.ODESolverError` is raised instead
            of running on. (default: :obj:`10000`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    **Memory.** Besides :obj:`x` and the graph (whose normalization
    briefly holds an edge list of about 30 bytes per edge), with :math:`T`
    requested times, a *table* of :math:`|\mathcal{V}| \times F` values
    and a *block* of :obj:`chunk_size` :math:`\times F` values (inference,
    no gradients): the one-step :obj:`"euler"` needs the :math:`T` output
    tables plus a few blocks of temporaries; :obj:`"exact"` needs the
    :math:`T` output tables, the running power
    :math:`\hat{\mathbf{A}}^k \mathbf{X}` and its successor (two tables)
    plus :math:`T` blocks. Without :obj:`chunk_size` the block is a whole
    table. A :obj:`torchdiffeq` method needs what its solver keeps (a few
    tables per stage); there :obj:`chunk_size` only bounds the sparse
    products. :func:`pyg_lightgode.utils.chunked.save_embeddings` writes
    the result to disk in row chunks.

    The graph is normalized and turned into a transposed CSR adjacency once
    per call, and every function evaluation is one sparse-dense matrix
    product. Passing a CSR :obj:`adj_t` (*e.g.*, from
    :meth:`~pyg_lightgode.data.BipartiteSplit.adj_t`) saves the conversion.
    Gradients flow to :obj:`x` through every method (torchdiffeq's methods
    are differentiated through their operations, not by the adjoint).
    Under :meth:`torch.compile`, the sparse products run eagerly between
    compiled pieces (Dynamo does not trace sparse tensors); adaptive methods
    do not compile with the inductor backend. The global error of an
    adaptive method can exceed :obj:`rtol` several times over, and
    torchdiffeq's :obj:`"explicit_adams"` (up to order 12) is stable only for
    small steps (about :obj:`0.005` or less on a normalized graph).

    Shapes:
        - **input:**
          node features :math:`(|\mathcal{V}|, F)`,
          edge indices :math:`(2, |\mathcal{E}|)` or a transposed sparse
          adjacency :math:`(|\mathcal{V}|, |\mathcal{V}|)`,
          edge weights :math:`(|\mathcal{E}|)` *(optional)*,
          times :math:`()` or :math:`(T)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F)` for a single
          time, or :math:`(T, |\mathcal{V}|, F)` for a 1-D tensor or sequence
          of :math:`T` times
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
                             f"{self.__class__.__name__}, which propagates "
                             f"through a sparse 'adj_t' (got {self.flow!r}); "
                             f"flip 'edge_index' instead")
        check_method(method, step_size, rtol, atol, max_steps)
        if int(max_terms) < 1:
            raise ValueError(f"'max_terms' must be a positive integer "
                             f"(got {max_terms})")
        _parse_times(t)
        _check_chunk_size(chunk_size)
        self.t = t
        self.method = method
        self.step_size = step_size
        self.normalize = normalize
        self.rtol = rtol
        self.atol = atol
        self.max_terms = int(max_terms)
        self.chunk_size = chunk_size
        self.max_steps = max_steps

    def reset_parameters(self):
        super().reset_parameters()  # Nothing learnable to reset.

    def forward(self, x: Tensor, edge_index: Adj,
                edge_weight: OptTensor = None,
                t: Optional[Times] = None,
                chunk_size: Optional[int] = None) -> Tensor:
        times, single_time = _parse_times(self.t if t is None else t)
        chunk_size = _check_chunk_size(
            self.chunk_size if chunk_size is None else chunk_size)
        adj_t = self._normalized_adj_t(x, edge_index, edge_weight)
        blocks = _row_blocks(adj_t, chunk_size)

        if self.method == 'exact':
            out = self._exact(x, blocks, times)
        elif self.step_size is None and self.method in FIXED_STEP_METHODS:
            out = self._one_step_each(x, blocks, times)
        else:
            out = self._integrate(x, blocks, times)
        return out[0] if single_time else out

    # Data-dependent checks and sparse-tensor construction break (and, on
    # recompilation, crash) Dynamo's tracing; they run once per call anyway.
    @torch.compiler.disable
    def _normalized_adj_t(self, x: Tensor, edge_index: Adj,
                          edge_weight: OptTensor) -> Tensor:
        r"""Validates :obj:`x` and the graph, and returns
        :math:`\hat{\mathbf{A}}` as a transposed torch.sparse CSR matrix of
        :obj:`x`'s dtype, whatever form the graph came in."""
        _check_features(x)
        num_nodes = x.size(0)
        if is_sparse_adjacency(edge_index, edge_weight):
            size = list(edge_index.sizes() if isinstance(
                edge_index, SparseTensor) else edge_index.shape)
            if size != [num_nodes, num_nodes]:
                raise ValueError(f"The sparse adjacency must have shape "
                                 f"[{num_nodes}, {num_nodes}] to match the "
                                 f"{num_nodes} rows of 'x' (got {size})")
            if isinstance(edge_index, SparseTensor):
                adj_t = edge_index.to_torch_sparse_csr_tensor(dtype=x.dtype)
            else:
                adj_t = edge_index.to_sparse_csr().to(x.dtype)
        elif isinstance(edge_index, Tensor):
            _check_edge_index(edge_index, num_nodes)
            num_edges = edge_index.size(1)
            if edge_weight is None:
                edge_weight = x.new_ones(num_edges)
            elif (not isinstance(edge_weight, Tensor)
                  or edge_weight.dim() != 1
                  or edge_weight.numel() != num_edges):
                shape = (list(edge_weight.shape) if isinstance(
                    edge_weight, Tensor) else type(edge_weight).__name__)
                raise ValueError(f"'edge_weight' must be a 1-D tensor with "
                                 f"one entry per edge ({num_edges}), got "
                                 f"{shape}")
            adj_t = to_torch_csr_tensor(edge_index.flip(0),
                                        edge_weight.to(x.dtype),
                                        size=(num_nodes, num_nodes))
        else:
            raise TypeError(f"'edge_index' must be an edge index tensor, a "
                            f"torch.sparse tensor or a SparseTensor (got "
                            f"{type(edge_index).__name__})")

        weights = adj_t.values().detach()
        if not bool(torch.isfinite(weights).all()):
            raise ValueError("The edge weights contain NaN or infinite values")
        if self.normalize:
            if weights.numel() > 0 and bool((weights < 0).any()):
                raise ValueError("The edge weights must be non-negative when "
                                 "'normalize=True' (degrees are "
                                 "square-rooted)")
            adj_t, _ = gcn_norm(adj_t, None, num_nodes, add_self_loops=False)
        return adj_t

    def _propagate_rows(self, adj_rows: Tensor, x: Tensor) -> Tensor:
        # edge_weight=None: the weights are adj_t's values (they feed
        # `message` only when fusion is off, e.g. for explainers).
        # propagate_type: (x: Tensor, edge_weight: OptTensor)
        return self.propagate(adj_rows, x=x, edge_weight=None)

    def _propagate(self, blocks: List[RowBlock], x: Tensor) -> Tensor:
        if len(blocks) == 1:
            return self._propagate_rows(blocks[0][2], x)
        out = x.new_empty(x.shape)
        for start, end, adj_rows in blocks:
            out[start:end] = self._propagate_rows(adj_rows, x)
        return out

    def _derivative(self, blocks: List[RowBlock],
                    x: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        def derivative(time: Tensor, state: Tensor) -> Tensor:
            return self._propagate(blocks, state) + x

        return derivative

    def _one_step_each(self, x: Tensor, blocks: List[RowBlock],
                       times: List[float]) -> Tensor:
        if self.method == 'euler':  # One step needs only dE/dt at t=0.
            out = x.new_empty((len(times), ) + x.shape)
            for start, end, adj_rows in blocks:
                x_rows = x[start:end]
                slope = self._propagate_rows(adj_rows, x) + x_rows
                for i, time in enumerate(times):
                    out[i, start:end] = x_rows + time * slope
            return out
        return self._integrate(x, blocks, times)

    def _integrate(self, x: Tensor, blocks: List[RowBlock],
                   times: List[float]) -> Tensor:
        return integrate(self._derivative(blocks, x), x, times, self.method,
                         self.step_size, self.rtol, self.atol, self.max_steps)

    def _exact(self, x: Tensor, blocks: List[RowBlock],
               times: List[float]) -> Tensor:
        t = torch.tensor(times, dtype=torch.float64)
        power_coef = torch.ones_like(t)  # t^k / k!
        out = x.new_empty((len(times), ) + x.shape)
        x_coef = (1 + t).to(x).view(-1, 1, 1)
        for start, end, _ in blocks:
            out[:, start:end] = x_coef * x[start:end]
        power = x  # A^k x
        prev_terms = torch.full_like(t, float('inf'))
        abs_tol = self.atol * math.sqrt(x.numel())
        for k in range(1, self.max_terms + 1):
            power = self._propagate(blocks, power)
            power_coef = power_coef * t / k
            coef = power_coef * (1 + t / (k + 1))
            power_coef_x = coef.to(x).view(-1, 1, 1)
            for start, end, _ in blocks:  # In place, one block at a time.
                out[:, start:end] += power_coef_x * power[start:end]
            terms = coef * float(power.detach().norm())
            tol = self.rtol * out.detach().flatten(1).norm(dim=1).double()
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


@torch.compiler.disable
def _row_blocks(adj_t: Tensor, chunk_size: Optional[int]) -> List[RowBlock]:
    r"""Splits the CSR :obj:`adj_t` (as :meth:`_normalized_adj_t` returns
    it) into blocks of at most :obj:`chunk_size` rows; the blocks share
    :obj:`adj_t`'s column indices and values."""
    num_rows = adj_t.size(0)
    if chunk_size is None or chunk_size >= num_rows:
        return [(0, num_rows, adj_t)]
    crow, col, value = (adj_t.crow_indices(), adj_t.col_indices(),
                        adj_t.values())
    bounds = crow[::chunk_size].tolist() + [int(crow[-1])]
    blocks = []
    for i, start in enumerate(range(0, num_rows, chunk_size)):
        end = min(start + chunk_size, num_rows)
        lo, hi = bounds[i], bounds[i + 1]
        blocks.append((start, end, torch.sparse_csr_tensor(
            crow[start:end + 1] - lo, col[lo:hi], value[lo:hi],
            size=(end - start, adj_t.size(1)))))
    return blocks


def _check_features(x: Tensor):
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"'x' must be a 2-D node feature tensor [N, F] "
                         f"(got {shape})")
    if not x.is_floating_point():
        raise ValueError(f"'x' must be a floating point tensor (got "
                         f"{x.dtype})")
    if x.size(0) == 0:
        raise ValueError("'x' has no rows: the graph needs at least one node")
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError("'x' contains NaN or infinite values")


def _check_edge_index(edge_index: Tensor, num_nodes: int):
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, E] (got "
                         f"{list(edge_index.shape)})")
    if edge_index.is_floating_point() or edge_index.dtype == torch.bool:
        raise ValueError(f"'edge_index' must hold integer node ids (got "
                         f"{edge_index.dtype})")
    if edge_index.numel() > 0:
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"'edge_index' holds node ids in [{lo}, {hi}], "
                             f"but 'x' has {num_nodes} rows (valid ids: 0.."
                             f"{num_nodes - 1})")
