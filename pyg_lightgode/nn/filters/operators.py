r"""Training-free graph filters on the bipartite user--item graph: the
normalised item--item propagation, the ideal low-pass filter, BSPM's
blurring/sharpening ODEs and Turbo-CF's power-normalised item--item matrix.

Tensors in, tensors out, no dataset knowledge. Notation: :math:`R` is the
:math:`|U| \times |I|` interaction matrix, :math:`\tilde{R} = D_U^{-1/2} R
D_I^{-1/2}`, :math:`\tilde{P} = \tilde{R}^\top \tilde{R}` the normalised
item--item graph (never materialised: :math:`r \tilde{P} = (r
\tilde{R}^\top) \tilde{R}` is two sparse products through the users, the item
block of two hops of LightGCN's :math:`\hat{A}`).

Signals are handled **item-major**: a batch of :math:`b` interaction rows is
an :obj:`[I, b]` matrix :math:`X = r^\top`, so every product is a sparse CSR
matrix times a dense matrix (:math:`\tilde{R} X` then :math:`\tilde{R}^\top
(\cdot)`), the fastest layout of :func:`torch.sparse.mm` on CPU.
"""
import math
from typing import Callable, Iterator, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor

from pyg_lightgode.data.bipartite import to_csr
from pyg_lightgode.data.progress import Progress
from pyg_lightgode.data.validation import (
    check_finite_float,
    check_positive_int,
)
from pyg_lightgode.nn.ode import (
    DEFAULT_MAX_STEPS,
    FIXED_STEP_METHODS,
    check_method,
    integrate,
)

#: Sums a tensor over the row blocks of a graph whose users are split into
#: blocks (*e.g.* :func:`torch.distributed.all_reduce` across ranks).
AllReduce = Callable[[Tensor], Tensor]

#: Ways to compute the top-:math:`k` right singular vectors of
#: :math:`\tilde{R}` in :func:`ideal_basis`.
SVD_METHODS = ('krylov', 'lowrank', 'svds')


def sorted_csr(row: Tensor, col: Tensor, value: Tensor,
               size: Tuple[int, int]) -> Tensor:
    r"""A CSR matrix from COO entries sorted by row (:func:`to_csr`)."""
    return to_csr(row, col, size[0], value, size[1], is_sorted=True)


def interaction_matrix(graph, num_users: int, num_items: int,
                       dtype: torch.dtype = torch.float32
                       ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The coalesced interaction matrix :math:`R` as COO entries
    :obj:`(user, item, value)` sorted by user then item.

    :obj:`graph` is a bipartite interaction index :obj:`[2, E]` (user ids in
    row 0, item ids in row 1; every entry 1), or a sparse :obj:`[U, I]`
    matrix (torch.sparse COO/CSR or :class:`torch_sparse.SparseTensor`)
    whose values are the entries. **Duplicates are coalesced in this one
    place, for every input form**: an edge given twice counts once in an
    index, and the values of a sparse matrix are summed, as
    :meth:`torch.Tensor.coalesce` does.
    """
    for name, value in (('num_users', num_users), ('num_items', num_items)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"'{name}' must be a positive integer (got "
                             f"{value!r})")
    if isinstance(graph, SparseTensor):
        row, col, value = graph.coo()
        size = tuple(graph.sizes())
        value = torch.ones_like(row, dtype=dtype) if value is None else value
        sparse = torch.sparse_coo_tensor(torch.stack([row, col]), value,
                                         size=size)
    elif isinstance(graph, Tensor) and is_torch_sparse_tensor(graph):
        size, sparse = tuple(graph.shape), graph.to_sparse_coo()
    elif isinstance(graph, Tensor):
        if graph.dim() != 2 or graph.size(0) != 2 or \
                graph.is_floating_point() or graph.dtype == torch.bool:
            raise ValueError(f"'graph' must be an integer interaction index "
                             f"[2, E] or a sparse [num_users, num_items] "
                             f"matrix (got a {graph.dtype} tensor of shape "
                             f"{list(graph.shape)})")
        index = graph.long()
        if index.numel() > 0:
            for row_id, bound, what in ((0, num_users, 'user'),
                                        (1, num_items, 'item')):
                lo, hi = int(index[row_id].min()), int(index[row_id].max())
                if lo < 0 or hi >= bound:
                    raise ValueError(
                        f"'graph' holds {what} ids in [{lo}, {hi}], outside "
                        f"[0, {bound - 1}] (num_{what}s={bound})")
        key = torch.unique(index[0] * num_items + index[1])
        user = torch.div(key, num_items, rounding_mode='floor')
        return user, key - user * num_items, torch.ones(
            key.numel(), dtype=dtype, device=key.device)
    else:
        raise TypeError(f"'graph' must be an interaction index, a "
                        f"torch.sparse matrix or a SparseTensor (got "
                        f"{type(graph).__name__})")
    if size != (num_users, num_items):
        raise ValueError(f"The sparse 'graph' must have shape [{num_users}, "
                         f"{num_items}] (num_users, num_items), got "
                         f"{list(size)}")
    sparse = sparse.coalesce()
    value = sparse.values().to(dtype)
    if value.numel() > 0 and not bool(torch.isfinite(value).all()):
        raise ValueError("The values of 'graph' contain NaN or infinite "
                         "entries")
    if value.numel() > 0 and bool((value < 0).any()):
        raise ValueError("The values of 'graph' must be non-negative "
                         "(degrees are raised to negative powers)")
    return sparse.indices()[0], sparse.indices()[1], value


class NormalizedGraph(NamedTuple):
    r"""A normalised bipartite graph :math:`\tilde{R} = D_U^{-a} R
    D_I^{-b}` in both orientations (CSR), with the degrees it was built
    from. Built by :func:`normalize_interactions`."""
    #: :math:`\tilde{R}` as CSR :obj:`[U, I]`.
    matrix: Tensor
    #: :math:`\tilde{R}^\top` as CSR :obj:`[I, U]`.
    matrix_t: Tensor
    #: Weighted user degrees :math:`d_u` :obj:`[U]`.
    user_degree: Tensor
    #: Weighted item degrees :math:`d_i` :obj:`[I]`.
    item_degree: Tensor

    @property
    def num_users(self) -> int:
        return self.matrix.size(0)

    @property
    def num_items(self) -> int:
        return self.matrix.size(1)


def inv_degree_power(degree: Tensor, power: float) -> Tensor:
    r""":math:`d^{-p}` with :math:`p` = :obj:`power` (any sign), 0 where
    the degree :math:`d` is 0."""
    out = degree.pow(-power)
    return out.masked_fill(degree == 0, 0.0)


def normalize_interactions(graph, num_users: int, num_items: int,
                           user_power: float = 0.5, item_power: float = 0.5,
                           dtype: torch.dtype = torch.float32,
                           all_reduce: Optional[AllReduce] = None
                           ) -> NormalizedGraph:
    r""":math:`\tilde{R} = D_U^{-a} R D_I^{-b}` with :math:`a` =
    :obj:`user_power` and :math:`b` = :obj:`item_power` (GF-CF and BSPM:
    :math:`a = b = 1/2`; Turbo-CF: :math:`a = \alpha, b = 1 - \alpha`).
    Nodes without interactions get a zero row or column. :obj:`graph` takes
    every form of :func:`interaction_matrix`. With :obj:`all_reduce`,
    :obj:`graph` holds one block of users' rows (:obj:`num_users` of them)
    and the item degrees are summed over all blocks.

    Memory: the two CSR copies take about :math:`2 \cdot 12 |E|` bytes
    (int64 column ids and float32 values) plus the row pointers.
    """
    for name, value in (('user_power', user_power),
                        ('item_power', item_power)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValueError(f"'{name}' must be a finite number (got "
                             f"{value!r})")
    user, item, value = interaction_matrix(graph, num_users, num_items, dtype)
    user_degree = torch.zeros(num_users, dtype=dtype,
                              device=value.device).index_add_(0, user, value)
    item_degree = torch.zeros(num_items, dtype=dtype,
                              device=value.device).index_add_(0, item, value)
    if all_reduce is not None:
        item_degree = all_reduce(item_degree)
    norm = value * inv_degree_power(user_degree, user_power)[user] * \
        inv_degree_power(item_degree, item_power)[item]
    matrix = sorted_csr(user, item, norm, (num_users, num_items))
    perm = torch.argsort(item * num_users + user)
    matrix_t = sorted_csr(item[perm], user[perm], norm[perm],
                          (num_items, num_users))
    return NormalizedGraph(matrix, matrix_t, user_degree, item_degree)


def rows_to_item_major(rows: Tensor, num_items: int) -> Tensor:
    r"""Interaction rows :obj:`[b, I]` (dense, or torch.sparse COO/CSR) as
    the dense item-major signal :obj:`[I, b]` the operators work on."""
    if not isinstance(rows, Tensor):
        raise TypeError(f"'rows' must be a [b, {num_items}] tensor (got "
                        f"{type(rows).__name__})")
    if rows.dim() != 2 or rows.size(1) != num_items:
        raise ValueError(f"'rows' must have shape [b, {num_items}] "
                         f"(num_items={num_items}), got {list(rows.shape)}")
    if is_torch_sparse_tensor(rows):
        rows = rows.to_dense()
    if not rows.is_floating_point():
        rows = rows.float()
    return rows.t().contiguous()


#: Columns per pair of sparse products in :func:`item_item`. Measured on
#: Gowalla at 2 threads, one product over 1024 columns beat blocks of 32 to
#: 256 (1.0-1.7 s against 1.9-5.1 s), so batches up to this size run whole;
#: larger ones are split to bound the :obj:`[|U|, block]` temporary.
ITEM_ITEM_BLOCK = 1024


def item_item(x: Tensor, graph: NormalizedGraph,
              block: int = ITEM_ITEM_BLOCK) -> Tensor:
    r"""The normalised item--item propagation :math:`X \mapsto \tilde{P} X =
    \tilde{R}^\top (\tilde{R} X)` of an item-major signal :obj:`[I, b]`
    (rows :math:`r` as columns: :math:`(r \tilde{P})^\top`), as two sparse
    products; :math:`\tilde{P}` is never built.

    Shapes:
        - **input:** :math:`(|I|, b)`
        - **output:** :math:`(|I|, b)`; temporaries :math:`(|U|, b)`
    """
    if x.size(1) <= block:
        return torch.sparse.mm(graph.matrix_t,
                               torch.sparse.mm(graph.matrix, x))
    out = torch.empty_like(x)
    for start in range(0, x.size(1), block):
        part = x[:, start:start + block].contiguous()
        out[:, start:start + block] = torch.sparse.mm(
            graph.matrix_t, torch.sparse.mm(graph.matrix, part))
    return out


class SpectralBasis(NamedTuple):
    r"""The top-:math:`k` right singular vectors :math:`V` (:obj:`[I, k]`)
    and singular values (:obj:`[k]`, descending) of :math:`\tilde{R}`."""
    vectors: Tensor
    values: Tensor


def _block_krylov(graph: NormalizedGraph, k: int, niter: int,
                  oversample: int, seed: Optional[int],
                  all_reduce: Optional[AllReduce] = None) -> SpectralBasis:
    r"""Randomized block Krylov SVD: the Rayleigh--Ritz projection of
    :math:`\tilde{R}` onto :math:`\mathrm{span}[\tilde{P}\Omega, \dots,
    \tilde{P}^{q+1}\Omega]` with :math:`\Omega` a seeded Gaussian
    :obj:`[I, k + oversample]` and :math:`q` = :obj:`niter`. With
    :obj:`all_reduce`, :obj:`graph` is one block of users' rows: the products
    :math:`\tilde{P} X = \sum_b \tilde{R}_b^\top \tilde{R}_b X` and the
    Gram matrix are summed over the blocks, and every block gets the same
    basis."""
    def reduce(value: Tensor) -> Tensor:
        return value if all_reduce is None else all_reduce(value)

    num_items = graph.num_items
    width = min(k + oversample, num_items)
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    dtype = graph.matrix.dtype
    block = torch.randn(num_items, width, generator=generator,
                        dtype=dtype).to(graph.matrix.device)
    blocks = []
    progress = Progress(f'ideal basis (block Krylov, k={k})', niter + 1,
                        'blocks')
    for _ in range(niter + 1):
        block, _ = torch.linalg.qr(reduce(item_item(block, graph,
                                                    block=128)))
        blocks.append(block)
        progress.update()
    progress.close()
    basis, _ = torch.linalg.qr(torch.cat(blocks, dim=1))  # [I, m]
    user_side = torch.sparse.mm(graph.matrix, basis)  # [U, m] = R~ Q
    gram = reduce((user_side.t() @ user_side).double())
    values, vectors = torch.linalg.eigh(gram)  # ascending
    values = values.flip(0)[:k].clamp_min(0).sqrt()
    vectors = vectors.flip(1)[:, :k].to(dtype)
    return SpectralBasis((basis @ vectors).contiguous(), values.to(dtype))


def ideal_basis(graph: NormalizedGraph, k: int, method: str = 'krylov',
                niter: int = 4, oversample: int = 64,
                seed: Optional[int] = 0,
                all_reduce: Optional[AllReduce] = None) -> SpectralBasis:
    r"""The top-:obj:`k` right singular vectors of :math:`\tilde{R}`, the
    basis of the ideal low-pass filter.

    :obj:`method='krylov'` (default) is a randomized block Krylov method:
    :obj:`niter` + 1 blocks of :obj:`k + oversample` columns through
    :math:`\tilde{P}` (the factored item--item product), one QR and a small
    eigenproblem. :obj:`method='lowrank'` runs the randomized range
    finder of :func:`torch.svd_lowrank` on the sparse matrix with :obj:`k +
    oversample` columns and :obj:`niter` power iterations (torch only,
    seeded); :obj:`'svds'` calls SciPy's ARPACK
    :func:`scipy.sparse.linalg.svds` (exact to solver tolerance, needs
    SciPy). ``benchmarks/bench_svd.py`` compares their time and accuracy
    (Gowalla, :math:`k = 256`: the default takes 0.22x ARPACK's time and
    captures 98.4% of its subspace; BENCHMARKS.md, spectral basis).

    With :obj:`all_reduce` (:obj:`'krylov'` only), :obj:`graph` holds one
    block of users' rows (normalised by :func:`normalize_interactions` with
    the same :obj:`all_reduce`) and the basis is that of the whole graph.

    Memory: :math:`O((|U| + |I|) (k + \text{oversample}))` floats besides
    the graph.
    """
    num_users, num_items = graph.matrix.shape
    if all_reduce is not None:
        if method != 'krylov':
            raise ValueError(f"A graph split into blocks of users needs "
                             f"method='krylov' (got {method!r})")
        num_users = int(all_reduce(torch.tensor([float(num_users)],
                                                dtype=torch.float64)))
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"'k' must be a positive integer (got {k!r})")
    if k >= min(num_users, num_items):
        raise ValueError(f"'k' ({k}) must be smaller than both the number "
                         f"of users ({num_users}) and of items "
                         f"({num_items})")
    if method not in SVD_METHODS:
        raise ValueError(f"Unknown SVD 'method' {method!r}; valid methods "
                         f"are: {', '.join(SVD_METHODS)}")
    if method == 'svds':
        import numpy as np
        import scipy.sparse as sp
        from scipy.sparse.linalg import svds

        coo = graph.matrix.to_sparse_coo().coalesce()
        row, col = coo.indices().cpu().numpy()
        mat = sp.csr_matrix((coo.values().double().cpu().numpy(),
                             (row, col)), shape=(num_users, num_items))
        rng = np.random.default_rng(seed)
        v0 = rng.uniform(-1, 1, min(num_users, num_items))
        _, values, vt = svds(mat, k=k, v0=v0)
        order = np.argsort(-values)
        vectors = torch.from_numpy(np.ascontiguousarray(vt[order].T))
        values = torch.from_numpy(values[order].copy())
        dtype, device = graph.matrix.dtype, graph.matrix.device
        return SpectralBasis(vectors.to(device, dtype),
                             values.to(device, dtype))
    if isinstance(niter, bool) or not isinstance(niter, int) or niter < 0:
        raise ValueError(f"'niter' must be a non-negative integer (got "
                         f"{niter!r})")
    if method == 'krylov':
        return _block_krylov(graph, k, niter, max(int(oversample), 0), seed,
                             all_reduce)
    q = min(k + max(int(oversample), 0), min(num_users, num_items))
    coo = graph.matrix.to_sparse_coo().coalesce()
    state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        _, values, vectors = torch.svd_lowrank(coo, q=q, niter=niter)
    finally:
        torch.random.set_rng_state(state)
    return SpectralBasis(vectors[:, :k].contiguous(), values[:k].contiguous())


def ideal_filter(x: Tensor, basis: Tensor, item_degree: Tensor,
                 power: float = 0.5) -> Tensor:
    r"""The ideal low-pass filter of an item-major signal :obj:`[I, b]`:
    :math:`(r D_I^{-p} V V^\top D_I^{p})^\top` with :math:`p` =
    :obj:`power` (GF-CF and BSPM use :math:`1/2`). The operator is
    idempotent (a projection up to the diagonal similarity), which gives
    BSPM's ideal ODE its closed form.

    Shapes:
        - **input:** :math:`(|I|, b)`, basis :math:`(|I|, k)`, degrees
          :math:`(|I|)`
        - **output:** :math:`(|I|, b)`; temporaries :math:`(k, b)`
    """
    left = inv_degree_power(item_degree, power).unsqueeze(1)
    right = inv_degree_power(item_degree, -power).unsqueeze(1)
    return (basis @ (basis.t() @ (left * x))) * right


#: The default time grid of one ODE of :class:`LinearFlow`.
def _flow_times(end: float, steps: int) -> List[float]:
    return [end * (i + 1) / steps for i in range(steps)]


class LinearFlow(NamedTuple):
    r"""One of BSPM's linear ODEs :math:`dx/dt = a\,L(x) + c\,x` on
    :math:`[0, T]` with :math:`K` solver steps, where :math:`L` is an
    item-space operator. :func:`solve_flow` returns the solution at the
    :math:`K` grid points :math:`T/K, 2T/K, \dots, T`.

    - blurring: :math:`L = \tilde{P}`, :math:`a = 1`, :math:`c = -1`
      (heat equation, :math:`x(T) = x\,e^{-T(I - \tilde{P})}`);
    - sharpening: :math:`L = \tilde{P}`, :math:`a = -1`, :math:`c = 0`;
    - ideal: :math:`L` = the ideal filter, :math:`a = 1`, :math:`c = -1`.
    """
    end: float
    steps: int = 1
    method: str = 'euler'
    scale: float = 1.0
    shift: float = 0.0


def check_flow(flow: LinearFlow, name: str,
               max_steps: int = DEFAULT_MAX_STEPS) -> None:
    r"""Validates one :class:`LinearFlow` (raising errors that name it)."""
    check_finite_float(flow.end, f'{name}_t', 0.0)
    check_positive_int(flow.steps, f'{name}_steps')
    check_method(flow.method, prefix=f'{name}_', max_steps=max_steps)
    if flow.steps > max_steps:
        raise ValueError(f"'{name}_steps' ({flow.steps}) exceeds max_steps="
                         f"{max_steps}")


def solve_flow(x: Tensor, operator, flow: LinearFlow,
               max_terms: int = 200,
               max_steps: int = DEFAULT_MAX_STEPS) -> Tensor:
    r"""Solves :math:`dx/dt = a L(x) + c x` from :obj:`x` (item-major
    :obj:`[I, b]`) and returns the solution at the :math:`K` grid points
    :obj:`[K, I, b]`.

    A fixed-step torchdiffeq :obj:`method` takes exactly one step per grid
    interval (BSPM's official few-step forms); an adaptive one integrates
    to the tolerance of :func:`~pyg_lightgode.nn.ode.integrate`;
    :obj:`'exact'` sums :math:`e^{ct} \sum_j (a t)^j L^j x / j!` until the
    terms are below :math:`10^{-7}` of the sum (for an idempotent
    :math:`L`, pass :func:`ideal_filter`: the series then also converges in
    one term per power), reusing the powers for every grid time.
    """
    times = _flow_times(float(flow.end), flow.steps)
    if flow.end == 0:
        return x.unsqueeze(0).expand(flow.steps, *x.shape).clone()
    if flow.method == 'exact':
        t = torch.tensor(times, dtype=torch.float64)
        coef = torch.ones_like(t)
        out = x.unsqueeze(0) * torch.ones(len(times), 1, 1, dtype=x.dtype,
                                          device=x.device)
        power = x
        for j in range(1, max_terms + 1):
            power = operator(power)
            coef = coef * (flow.scale * t) / j
            out = out + coef.to(x).view(-1, 1, 1) * power
            term = float(coef.abs().max()) * float(power.norm())
            if term <= 1e-7 * float(out.norm()) + 1e-12:
                break
        else:
            raise ValueError(f"method='exact' did not converge within "
                             f"{max_terms} terms for t={flow.end}")
        return out * torch.exp(flow.shift * t).to(x).view(-1, 1, 1)

    def derivative(_, state: Tensor) -> Tensor:
        out = operator(state)
        if flow.scale != 1.0:
            out = out * flow.scale
        return out + flow.shift * state if flow.shift else out

    step = flow.end / flow.steps if flow.method in FIXED_STEP_METHODS \
        else None
    return integrate(derivative, x, times, flow.method, step_size=step,
                     max_steps=max_steps)


#: Highest Chebyshev order accepted by :func:`plateau_coefficients`
#: (each order is one item--item product per scored batch).
MAX_CHEBYSHEV_ORDER = 64


def plateau_coefficients(order: int, flatness: float) -> Tensor:
    r"""Chebyshev coefficients :math:`c_0, \dots, c_K` (:math:`K` =
    :obj:`order`) of ChebyCF's smooth low-pass response on :math:`x \in
    [-1, 1]`, where :math:`x = 1 - 2\lambda` for an eigenvalue
    :math:`\lambda` of :math:`\tilde{P}`:

    .. math::
        h(x) = \tfrac12 + \tfrac12\,\mathrm{sign}(-x)\,|x|^{\varphi}

    (1 at :math:`\lambda = 1`, 0 at :math:`\lambda = 0`, flatter around
    :math:`\lambda = 1/2` as :math:`\varphi` = :obj:`flatness` grows). As
    in the official construction, :math:`h` is sampled on the :math:`K + 1`
    Chebyshev--Lobatto points :math:`\cos(j\pi/K)` (rounded to three
    decimals), those samples are taken as the values at the :math:`K + 1`
    Chebyshev nodes :math:`x_m = \cos((2m + 1)\pi / (2K + 2))` (both in
    ascending order), and :math:`c_n = \frac{2 - [n = 0]}{K + 1} \sum_m
    h_m T_n(x_m)` interpolates them.
    """
    order = check_positive_int(order, 'order')
    if order > MAX_CHEBYSHEV_ORDER:
        raise ValueError(f"'order' must be at most {MAX_CHEBYSHEV_ORDER} "
                         f"(got {order})")
    flatness = check_finite_float(flatness, 'flatness', 0.0, strict=True)
    j = torch.arange(order + 1, dtype=torch.float64)
    lobatto = torch.cos((order - j) / order * math.pi)
    lobatto = torch.round(lobatto * 1000) / 1000
    values = 0.5 - 0.5 * lobatto.sign() * lobatto.abs().pow(flatness)
    values = torch.round(values * 1000) / 1000
    nodes = torch.cos((2 * (order - j) + 1) / (2 * (order + 1)) * math.pi)
    # T_n(x_m) = cos(n arccos x_m), for every n and node at once.
    basis = torch.cos(j.unsqueeze(1) * torch.arccos(nodes).unsqueeze(0))
    coefficients = basis @ values * (2.0 / (order + 1))
    coefficients[0] /= 2
    return coefficients


def chebyshev_filter(x: Tensor, operator, coefficients: Tensor) -> Tensor:
    r"""The polynomial filter :math:`\sum_n c_n T_n(I - 2\tilde{P})` of an
    item-major signal :obj:`[I, b]`, with :obj:`operator` mapping :math:`X
    \mapsto \tilde{P} X` (*e.g.* :func:`item_item`) and the Chebyshev
    recurrence :math:`T_{n+1} = 2 L T_n - T_{n-1}`: one :obj:`operator`
    call per order, three :obj:`[I, b]` terms kept. For :math:`\tilde{P}`
    with spectrum in :math:`[0, 1]` (the normalised item--item graph), the
    response at eigenvalue :math:`\lambda` is :math:`\sum_n c_n T_n(1 -
    2\lambda)`.

    Shapes:
        - **input:** :math:`(|I|, b)`, coefficients :math:`(K + 1)`
        - **output:** :math:`(|I|, b)`
    """
    coefficients = coefficients.tolist()

    def shifted(v: Tensor) -> Tensor:
        return v - 2 * operator(v)

    out = coefficients[0] * x
    if len(coefficients) == 1:
        return out
    prev, cur = x, shifted(x)
    out = out + coefficients[1] * cur
    for coefficient in coefficients[2:]:
        prev, cur = cur, 2 * shifted(cur) - prev
        out = out + coefficient * cur
    return out


def column_blocks(matrix_t: Tensor, block_size: int
                  ) -> Iterator[Tuple[int, Tensor]]:
    r"""The columns of a sparse matrix :math:`A` :obj:`[n, m]`, given as
    its transpose :math:`A^\top` in CSR :obj:`[m, n]`, as dense blocks:
    yields :obj:`(start, block)` with :obj:`block` :math:`= A_{:,
    \text{start}:\text{start} + B}` :obj:`[n, B]` for :math:`B \le`
    :obj:`block_size` (the last block may be narrower). The one block loop
    of the item--item builders and of :class:`~pyg_lightgode.nn.models.EASE`'s
    Gram matrices."""
    crow = matrix_t.crow_indices()
    col, value = matrix_t.col_indices(), matrix_t.values()
    num_cols, num_rows = matrix_t.shape
    for start in range(0, num_cols, block_size):
        end = min(start + block_size, num_cols)
        lo, hi = int(crow[start]), int(crow[end])
        block_col = torch.repeat_interleave(
            torch.arange(end - start, device=crow.device),
            crow[start + 1:end + 1] - crow[start:end])
        block = torch.zeros(num_rows, end - start, dtype=value.dtype,
                            device=crow.device)
        block[col[lo:hi], block_col] = value[lo:hi]  # [n, B]
        yield start, block


def _item_item_blocks(norm: NormalizedGraph, num_items: int,
                      block_size: int, keep) -> Tensor:
    r"""The item--item matrix :math:`\tilde{R}^\top \tilde{R}` of a
    normalised graph, column block by column block: each dense
    :obj:`[I, B]` block (a sparse-dense product) is reduced by
    :obj:`keep(block, start) -> (row, col, value)` (block coordinates),
    and the kept entries form a sparse CSR :obj:`[I, I]`."""
    rows, cols, values = [], [], []
    # Column block B of R~ is the row block B of R~^T (CSR):
    for start, block in column_blocks(norm.matrix_t, block_size):
        prod = torch.sparse.mm(norm.matrix_t, block)  # [I, B]
        row, col, value = keep(prod, start)
        rows.append(row)
        cols.append(col + start)
        values.append(value)
    row, col, value = torch.cat(rows), torch.cat(cols), torch.cat(values)
    perm = torch.argsort(row * num_items + col)
    return sorted_csr(row[perm], col[perm], value[perm],
                      (num_items, num_items))


def top_k_columns(prod: Tensor, start: int, k: int
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The :obj:`k` largest positive entries of every column of an
    item--item block :obj:`[I, B]` whose column :math:`c` is item
    :obj:`start` :math:`+ c`, leaving out the item itself (its diagonal
    entry is zeroed in place): :obj:`(row, col, value)` in block
    coordinates, for :func:`_item_item_blocks`."""
    width = prod.size(1)
    diagonal = torch.arange(width, device=prod.device)
    prod[diagonal + start, diagonal] = 0.0  # Not its own neighbour.
    value, row = prod.topk(min(k, prod.size(0)), dim=0)  # [k, B]
    col = diagonal.expand_as(row)
    mask = value > 0
    return row[mask], col[mask], value[mask]


def turbo_item_item(graph, num_users: int, num_items: int,
                    alpha: float = 0.5, power: float = 1.0,
                    block_size: int = 2048,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Turbo-CF's item--item matrix :math:`P_a = (R_a^\top R_a)^{\circ s}`,
    :math:`R_a = D_U^{-a} R D_I^{a - 1}`, every entry raised to the power
    :math:`s` = :obj:`power`, as a sparse CSR :obj:`[I, I]`.

    Built column block by column block: :math:`R_a^\top (R_a)_{:, B}` is a
    sparse-dense product into a dense :obj:`[I, block_size]` block whose
    non-zeros are kept, so the peak besides the result is about
    :math:`4 |I| \cdot \text{block\_size} + 4 |U| \cdot \text{block\_size}`
    bytes. The result holds one entry per pair of items with a common
    user: :math:`12\,\mathrm{nnz}(P_a)` bytes (int64 column, float32 value;
    about 0.5 GB for Gowalla's :math:`\approx 4 \cdot 10^7` pairs, see
    BENCHMARKS.md).
    """
    check_finite_float(alpha, 'alpha')
    power = check_finite_float(power, 'power', 0.0, strict=True)
    block_size = check_positive_int(block_size, 'block_size')
    norm = normalize_interactions(graph, num_users, num_items,
                                  user_power=alpha, item_power=1 - alpha,
                                  dtype=dtype)

    def keep(prod: Tensor, start: int):
        row, col = prod.nonzero(as_tuple=True)
        value = prod[row, col]
        return row, col, value.pow(power) if power != 1.0 else value

    return _item_item_blocks(norm, num_items, block_size, keep)


def knn_item_item(graph, num_users: int, num_items: int, k: int = 100,
                  power: float = 1.0, block_size: int = 2048,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    r"""Item-kNN's propagation matrix: the cosine similarities
    :math:`c_{ij} = |U_i \cap U_j| / \sqrt{d_i d_j}` of every item
    :math:`j` to its :obj:`k` most similar other items :math:`i`, raised to
    the power :obj:`power`, as a sparse CSR :obj:`[I, I]` :math:`M` with
    :math:`M_{ij} = c_{ij}^{p}` (so :math:`M \mathbf{x}` passes an
    item-major signal from each item to its neighbours). Built column block
    by column block like :func:`turbo_item_item` (the same peak besides
    the result), keeping :math:`k` entries per item: :math:`12\,k\,|I|`
    bytes.
    """
    k = min(check_positive_int(k, 'k'), max(num_items - 1, 1))
    power = check_finite_float(power, 'power', 0.0, strict=True)
    block_size = check_positive_int(block_size, 'block_size')
    norm = normalize_interactions(graph, num_users, num_items,
                                  user_power=0.0, item_power=0.5,
                                  dtype=dtype)

    def keep(prod: Tensor, start: int):
        row, col, value = top_k_columns(prod, start, k)
        return row, col, value.pow(power) if power != 1.0 else value

    return _item_item_blocks(norm, num_items, block_size, keep)


def rp3beta_item_item(graph, num_users: int, num_items: int, k: int = 100,
                      alpha: float = 1.0, beta: float = 0.0,
                      block_size: int = 2048,
                      dtype: torch.dtype = torch.float32) -> Tensor:
    r"""RP3β's propagation matrix (Paudel et al., 2017): the three-step
    random-walk transition item :math:`\to` user :math:`\to` item with
    every transition probability raised to :math:`\alpha` and the target
    divided by its popularity to the power :math:`\beta`,

    .. math::
        w_{ij} = \frac{1}{d_i^{\alpha}\, d_j^{\beta}} \sum_{u \in U_i
        \cap U_j} \frac{1}{d_u^{\alpha}}
        \;=\; \frac{1}{d_j^{\beta}}\,(P_{iu}^{\circ\alpha}
        P_{ui}^{\circ\alpha})_{ij},

    keeping for every item :math:`i` its :obj:`k` largest :math:`w_{ij}`,
    :math:`j \ne i`, as a sparse CSR :obj:`[I, I]` :math:`M` with
    :math:`M_{ji} = w_{ij}` (so :math:`M \mathbf{x}` scores an item-major
    signal: :math:`s_j = \sum_i x_i w_{ij}`). Built column block by column
    block like :func:`knn_item_item` (the same peak besides the result,
    :math:`12\,k\,|I|` bytes). The transition probabilities are those of
    the binary graph (:math:`d` = numbers of interactions); a weighted
    graph's values enter linearly.
    """
    k = min(check_positive_int(k, 'k'), max(num_items - 1, 1))
    alpha = check_finite_float(alpha, 'alpha', 0.0)
    beta = check_finite_float(beta, 'beta', 0.0)
    block_size = check_positive_int(block_size, 'block_size')
    # R~ = D_U^{-alpha/2} R, so (R~^T R~)_ij = sum_u r_ui r_uj / d_u^alpha.
    norm = normalize_interactions(graph, num_users, num_items,
                                  user_power=alpha / 2, item_power=0.0,
                                  dtype=dtype)
    source = inv_degree_power(norm.item_degree, alpha)
    target = inv_degree_power(norm.item_degree, beta).unsqueeze(1)

    def keep(prod: Tensor, start: int):
        prod.mul_(target).mul_(source[start:start + prod.size(1)])
        return top_k_columns(prod, start, k)

    return _item_item_blocks(norm, num_items, block_size, keep)
