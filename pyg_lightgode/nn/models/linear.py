r"""Linear item--item recommenders: EASE (a closed-form linear autoencoder)
and RP3β (a popularity-penalised three-step random walk). Both are fitted
to an interaction matrix without a gradient step and score interaction
rows, with the interface of the graph filters
(:class:`~pyg_lightgode.nn.models.GraphFilter`): :meth:`fit`,
:meth:`score` by user id, :meth:`forward` on rows, :meth:`recommend`.
"""
from typing import Optional, Union

import torch
from torch import Tensor

from pyg_lightgode.nn.filters.operators import (
    column_blocks,
    normalize_interactions,
    rp3beta_item_item,
    sorted_csr,
)
from pyg_lightgode.nn.models.graph_filters import (
    GraphFilter,
    _check_count,
    _check_real,
    _ItemItemFilter,
    check_user_ids,
)

#: Sides on which :class:`EASE` solves its linear system.
EASE_SIDES = ('auto', 'user', 'item')
_DTYPES = {'float32': torch.float32, 'float64': torch.float64}


def _check_dtype(dtype: Union[str, torch.dtype]) -> str:
    for name, value in _DTYPES.items():
        if dtype in (name, value):
            return name
    raise ValueError(f"'dtype' must be 'float32' or 'float64' (got "
                     f"{dtype!r})")


class EASE(GraphFilter):
    r"""EASE from the `"Embarrassingly Shallow Autoencoders for Sparse
    Data" <https://arxiv.org/abs/1905.03375>`_ paper: the item--item
    weights with zero diagonal that best reconstruct the interaction matrix
    :math:`\mathbf{X}` (:math:`|U| \times |I|`) under an L2 penalty
    :math:`\lambda`, in closed form,

    .. math::
        \mathbf{B} = \mathbf{I} - \mathbf{P}\,
        \mathrm{diagMat}(\mathbf{1} \oslash \mathrm{diag}(\mathbf{P})),
        \qquad \mathbf{P} = (\mathbf{X}^\top\mathbf{X} +
        \lambda\mathbf{I})^{-1}, \qquad \mathbf{s}_u = \mathbf{x}_u
        \mathbf{B}.

    **Two sides.** On the item side (:obj:`side='item'`) :math:`\mathbf{B}`
    is built from the :math:`|I| \times |I|` inverse. With fewer users
    than items the push-through identity :math:`\mathbf{X}\mathbf{P} =
    \mathbf{K}^{-1}\mathbf{X}`, :math:`\mathbf{K} = \mathbf{X}
    \mathbf{X}^\top + \lambda\mathbf{I}` (:math:`|U| \times |U|`), and
    Woodbury's :math:`\mathbf{P} = (\mathbf{I} - \mathbf{X}^\top
    \mathbf{K}^{-1}\mathbf{X}) / \lambda` give the same scores from
    the smaller inverse (:obj:`side='user'`):

    .. math::
        \mathbf{s}_u = \mathbf{x}_u - \lambda\,
        (\mathbf{K}^{-1}\mathbf{X})_u \oslash (\mathbf{1} - \mathbf{q}),
        \qquad q_j = \mathbf{x}_{:j}^\top \mathbf{K}^{-1}
        \mathbf{x}_{:j},

    :math:`\mathbf{x}_{:j}` the :math:`j`-th item column (so
    :math:`\mathrm{diag}(\mathbf{P}) = (\mathbf{1} - \mathbf{q}) /
    \lambda`). :obj:`side='auto'` (default) takes the smaller side. Every
    product with :math:`\mathbf{X}` is sparse: building :math:`\mathbf{K}`
    and :math:`\mathbf{q}` costs :math:`O(|E|\,|U|)`, the inverse
    :math:`O(|U|^3)`.

    **Inductive scoring.** A row :math:`\mathbf{x}` that was not fitted is
    scored by :meth:`forward` with the fitted :math:`\mathbf{B}` on both
    sides: on the item side :math:`\mathbf{s} = \mathbf{x}\mathbf{B}`
    directly; on the user side, through Woodbury, :math:`\mathbf{s} =
    \mathbf{x} - (\mathbf{x} - \mathbf{x}\mathbf{X}^\top\mathbf{K}^{-1}
    \mathbf{X}) \oslash (\mathbf{1} - \mathbf{q})`, which is
    :math:`\mathbf{x}\mathbf{B}` exactly (the new row does not enter
    :math:`\mathbf{K}`; a fitted user's row gives their :meth:`score`). It
    costs an :math:`O(|U|^2)` product per row instead of :meth:`score`'s
    :math:`O(|E|)` per user, and subtracts nearly equal terms (in float32
    the difference from float64 stayed below :math:`3 \cdot 10^{-6}` of
    the scores on a random 600 :math:`\times` 900 graph, top-20 lists
    unchanged; :obj:`dtype='float64'` removes it).

    **Memory** (:math:`s` = 4 bytes in float32, 8 in float64): the user
    side keeps :math:`\mathbf{K}^{-1}`, :math:`s|U|^2` bytes, and peaks at
    :math:`2s|U|^2` while factorising (the matrix and its Cholesky factor,
    then the factor and the inverse); the item side keeps
    :math:`\mathbf{B}`, :math:`s|I|^2`, and peaks at :math:`2s|I|^2`.
    Both add the sparse graph (:math:`\approx 28|E|` bytes) and, while
    fitting, a dense :math:`s \cdot n \cdot` :obj:`block_size` block.
    Scoring :math:`b` users holds :math:`s\,b\,(|U| + 2|I|)` bytes.
    Gowalla (29,858 users, 40,981 items, float32): user side 3.6 GB kept
    and 7.1 GB at the peak, item side 6.7 GB and 13.4 GB.

    Args:
        num_users (int): Number of users :math:`|U|`.
        num_items (int): Number of items :math:`|I|`.
        reg (float, optional): The L2 penalty :math:`\lambda > 0`; choose
            it on validation (it grows with the number of users: MovieLens-
            100K and Gowalla's validation splits chose about 300).
            (default: :obj:`300.0`)
        side (str, optional): :obj:`'auto'`, :obj:`'user'` or
            :obj:`'item'`. (default: :obj:`'auto'`)
        dtype (str or torch.dtype, optional): :obj:`'float32'` or
            :obj:`'float64'` for the dense matrices and the scores.
            (default: :obj:`'float32'`)
        block_size (int, optional): Columns per block while building the
            Gram matrix and :math:`\mathbf{q}`. (default: :obj:`2048`)

    Shapes:
        - **input:** rows :math:`(b, |I|)` or user ids :math:`(b)`
        - **output:** scores :math:`(b, |I|)`

    .. code-block:: python

        model = EASE(num_users, num_items, reg=300.0).fit(train_index)
        items = model.recommend(k=20, exclude_links=train_index)
    """
    def __init__(self, num_users: int, num_items: int, reg: float = 300.0,
                 side: str = 'auto', dtype: Union[str, torch.dtype] =
                 'float32', block_size: int = 2048):
        super().__init__(num_users, num_items)
        self.reg = _check_real(reg, 'reg', positive=True)
        if side not in EASE_SIDES:
            raise ValueError(f"'side' must be one of {EASE_SIDES} (got "
                             f"{side!r})")
        self.side = side
        self.dtype = _check_dtype(dtype)
        self.block_size = _check_count(block_size, 'block_size')
        self.weight: Optional[Tensor] = None
        self.denominator: Optional[Tensor] = None

    @property
    def solved_side(self) -> str:
        r"""The side the system is solved on (:obj:`'auto'` resolved)."""
        if self.side != 'auto':
            return self.side
        return 'user' if self.num_users < self.num_items else 'item'

    def _inverse_gram(self, matrix: Tensor) -> Tensor:
        r""":math:`(\mathbf{A}\mathbf{A}^\top + \lambda\mathbf{I})^{-1}`
        for :obj:`matrix` :math:`= \mathbf{A}` (CSR :obj:`[n, m]`), dense
        :obj:`[n, n]`."""
        n = matrix.size(0)
        gram = torch.empty(n, n, dtype=matrix.dtype, device=matrix.device)
        for start, block in column_blocks(matrix, self.block_size):
            # Columns start..start+B of A A^T = A (A^T)_{:, B}.
            gram[:, start:start + block.size(1)] = torch.sparse.mm(matrix,
                                                                   block)
        gram.diagonal().add_(self.reg)
        factor = torch.linalg.cholesky(gram)
        del gram
        return torch.cholesky_inverse(factor)

    def _quadratic(self, matrix_t: Tensor, inverse: Tensor) -> Tensor:
        r""":math:`q_j = \mathbf{x}_{:j}^\top \mathbf{K}^{-1}
        \mathbf{x}_{:j}` for every item, from :obj:`matrix_t` :math:`=
        \mathbf{X}^\top` (CSR :obj:`[I, U]`): :math:`\mathbf{X}^\top
        \mathbf{K}^{-1}` one block of user columns at a time (a sparse
        product, :math:`O(|E| \cdot` :obj:`block_size`:math:`)`), read at
        the entries of :math:`\mathbf{X}^\top` in that block."""
        crow, user = matrix_t.crow_indices(), matrix_t.col_indices()
        value = matrix_t.values()
        item = torch.repeat_interleave(
            torch.arange(self.num_items, device=crow.device), crow.diff())
        out = torch.zeros(self.num_items, dtype=inverse.dtype,
                          device=inverse.device)
        for start in range(0, self.num_users, self.block_size):
            end = min(start + self.block_size, self.num_users)
            # K^-1 is symmetric: its columns start..end are these rows.
            part = torch.sparse.mm(matrix_t,
                                   inverse[start:end].t().contiguous())
            mask = (user >= start) & (user < end)
            row = item[mask]
            out.index_add_(0, row, value[mask] *
                           part[row, user[mask] - start])
        return out

    def fit(self, graph) -> 'EASE':
        r"""Fits to :obj:`graph` (an interaction index :obj:`[2, E]` or a
        sparse :obj:`[U, I]` matrix); returns :obj:`self`."""
        dtype = _DTYPES[self.dtype]
        norm = normalize_interactions(graph, self.num_users, self.num_items,
                                      user_power=0.0, item_power=0.0,
                                      dtype=dtype)
        self.weight = self.denominator = None
        if self.solved_side == 'item':
            inverse = self._inverse_gram(norm.matrix_t)
            # B^T = -diag(1 / diag P) P (P symmetric), with zero diagonal:
            # scores of item-major rows are B^T x.
            scale = inverse.diagonal().reciprocal().neg_()
            weight = inverse.mul_(scale.unsqueeze(1))
            weight.diagonal().zero_()
            self.weight = weight
        else:
            inverse = self._inverse_gram(norm.matrix)
            self.weight, self.denominator = inverse, 1.0 - self._quadratic(
                norm.matrix_t, inverse)
        self.graph = norm
        self._fit_rows(graph)
        self._value = self._value.to(dtype)
        return self

    def filter(self, x: Tensor) -> Tensor:
        x = x.to(self.weight.dtype)
        if self.denominator is None:  # Item side: B^T x.
            return self.weight @ x
        # User side, Woodbury: x - (x - X^T K^-1 X x) / (1 - q).
        seen = torch.sparse.mm(self.graph.matrix_t, self.weight @
                               torch.sparse.mm(self.graph.matrix, x))
        return x - (x - seen) / self.denominator.unsqueeze(1)

    def score(self, users: Tensor) -> Tensor:
        r"""Scores :obj:`[b, I]` of fitted users by id."""
        self._require_fit()
        users = check_user_ids(users, self.num_users)
        x = self.user_rows(users)
        if self.denominator is None:
            return (self.weight @ x).t().contiguous()
        # (K^-1 X)_u = (X^T K^-1[:, u])^T; K^-1 is symmetric.
        solved = torch.sparse.mm(self.graph.matrix_t,
                                 self.weight[users].t().contiguous())
        out = x - self.reg * solved / self.denominator.unsqueeze(1)
        return out.t().contiguous()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, reg={self.reg}, side={self.side!r}, '
                f'dtype={self.dtype!r})')


class RP3beta(_ItemItemFilter):
    r"""RP3β from the `"Updatable, Accurate, Diverse, and Scalable
    Recommendations for Interactive Applications"
    <https://doi.org/10.1145/2955101>`_ paper: a three-step random walk
    user :math:`\to` item :math:`\to` user :math:`\to` item with every
    transition probability raised to :math:`\alpha`, the landing item
    penalised by its popularity :math:`d_j^{\beta}`, and the
    :obj:`k` strongest neighbours kept per item,

    .. math::
        s_{u,j} = \sum_{i \in \mathcal{N}_u,\; j \in \mathrm{top}_k(i)}
        w_{ij}, \qquad w_{ij} = \frac{1}{d_i^{\alpha}\, d_j^{\beta}}
        \sum_{v \in U_i \cap U_j} \frac{1}{d_v^{\alpha}}

    (:func:`~pyg_lightgode.nn.filters.rp3beta_item_item`; the user's own
    first step :math:`1 / d_u^{\alpha}` is the same for all their items and
    drops out of the ranking). Reported tuned on Gowalla: :math:`k = 777`,
    :math:`\alpha = 0.566`, :math:`\beta = 0.001`.

    **Memory**: :math:`24\,k\,|I|` bytes for the sparse neighbour matrix
    in both orientations (fitting peaks at :math:`4 (|I| + |U|)\,
    \text{block\_size}` bytes besides it); :math:`O(b\,|I|)` per batch
    of :math:`b` users. Inductive like every filter.

    Args:
        num_users (int): Number of users :math:`|U|`.
        num_items (int): Number of items :math:`|I|`.
        k (int, optional): Neighbours per item. (default: :obj:`100`)
        alpha (float, optional): Exponent :math:`\alpha \ge 0` of the
            transition probabilities. (default: :obj:`1.0`)
        beta (float, optional): Popularity penalty :math:`\beta \ge 0`.
            (default: :obj:`0.0`)
        block_size (int, optional): Items per block while fitting.

    Shapes:
        - **input:** rows :math:`(b, |I|)` or user ids :math:`(b)`
        - **output:** scores :math:`(b, |I|)`
    """
    def __init__(self, num_users: int, num_items: int, k: int = 100,
                 alpha: float = 1.0, beta: float = 0.0,
                 block_size: int = 2048):
        super().__init__(num_users, num_items, block_size)
        self.k = _check_count(k, 'k')
        self.alpha = _check_real(alpha, 'alpha', non_negative=True)
        self.beta = _check_real(beta, 'beta', non_negative=True)

    def _build(self, graph) -> Tensor:
        matrix = rp3beta_item_item(graph, self.num_users, self.num_items,
                                   self.k, self.alpha, self.beta,
                                   self.block_size)
        # Source-major copy W for the sparse rows of fitted users.
        self._source_major = matrix.t().to_sparse_csr()
        return matrix

    def score(self, users: Tensor) -> Tensor:
        r"""Scores :obj:`[b, I]` of fitted users by id, as the sparse
        product of their rows with :math:`\mathbf{W}` (:math:`O(b \cdot
        \bar{d}_u \cdot k)` instead of the dense :math:`O(b\,k\,|I|)`)."""
        self._require_fit()
        users = check_user_ids(users, self.num_users)
        batch, pos = self._row_entries(users)
        rows = sorted_csr(batch, self._col[pos], self._value[pos],
                          (users.numel(), self.num_items))
        return torch.sparse.mm(rows, self._source_major).to_dense()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, k={self.k}, alpha={self.alpha}, '
                f'beta={self.beta})')
