r"""Training-free graph-filter recommenders (GF-CF, BSPM, ChebyCF,
Turbo-CF) and the scoring interface they share with embedding models
(LightGODE, LightGCN): :meth:`score` a batch of users into :obj:`[b, I]`
scores, :meth:`recommend` top-:math:`k` with exclusions, and the evaluator's
:meth:`~pyg_lightgode.metrics.RankingEvaluator.evaluate_scorer`.

A filter is *fitted* to an interaction matrix (no gradient step: a
normalisation, and an SVD or a sparse item--item product) and then scores
any interaction row. Scoring is inductive for users: :meth:`forward` takes
rows, so a user who was not in the fitted matrix is scored from their row
alone, exactly as a fitted user is scored from theirs (the item graph,
degrees and spectral basis stay those of the fitted matrix).
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.index import index2ptr

from pyg_lightgode.data.validation import (
    check_finite_float,
    check_index_range,
    check_positive_int,
)
from pyg_lightgode.nn.filters.operators import (
    SVD_METHODS,
    AllReduce,
    LinearFlow,
    NormalizedGraph,
    chebyshev_filter,
    check_flow,
    ideal_basis,
    ideal_filter,
    interaction_matrix,
    inv_degree_power,
    item_item,
    knn_item_item,
    normalize_interactions,
    plateau_coefficients,
    rows_to_item_major,
    solve_flow,
    sorted_csr,
    turbo_item_item,
)
from pyg_lightgode.nn.ode import DEFAULT_MAX_STEPS


def _check_count(value, name: str) -> int:
    return check_positive_int(value, name)


def _check_real(value, name: str, positive: bool = False,
                non_negative: bool = False) -> float:
    return check_finite_float(value, name, 0.0 if positive or non_negative
                              else None, strict=positive)


def _check_svd(svd: str, niter: int) -> None:
    if svd not in SVD_METHODS:
        raise ValueError(f"Unknown 'svd' {svd!r}; valid methods are: "
                         f"{', '.join(SVD_METHODS)}")
    if isinstance(niter, bool) or not isinstance(niter, int) or niter < 0:
        raise ValueError(f"'niter' must be a non-negative integer (got "
                         f"{niter!r})")


def check_user_ids(users: Tensor, num_users: int, name: str = 'users'
                   ) -> Tensor:
    r"""Validates a 1-D tensor of user ids (at the public boundary)."""
    if not isinstance(users, Tensor) or users.dim() != 1:
        raise ValueError(f"'{name}' must be a 1-D integer tensor of user ids "
                         f"(got {users!r:.80})")
    return check_index_range(users, num_users, name, 'user ids',
                             'num_users').long()


class Scorer(torch.nn.Module):
    r"""The scoring interface shared by every recommender of the package:
    :meth:`score` maps a batch of user ids to dense scores over all items,
    and :meth:`recommend` / :meth:`evaluate` build on it. Subclasses set
    :obj:`num_users` / :obj:`num_items` and implement :meth:`score`."""
    num_users: int
    num_items: int

    def score(self, users: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def recommend(self, users: Optional[Tensor] = None, k: int = 20,
                  exclude_links=None, batch_size: int = 1024
                  ) -> Tensor:
        r"""Top-:obj:`k` item ids :obj:`[B, k]` for :obj:`users`
        (default: all), best first, as
        :meth:`torch_geometric.nn.models.LightGCN.recommend` answers, never
        recommending the (user, item) pairs of :obj:`exclude_links` (an
        interaction index or a list of them; padded with id :obj:`-1`
        where fewer items remain). Their scores are :meth:`score`'s."""
        from pyg_lightgode.metrics.ranking import recommend_from_scorer
        return recommend_from_scorer(self.score, self.num_users,
                                     self.num_items, users=users, k=k,
                                     exclude_links=exclude_links,
                                     batch_size=batch_size).index


class GraphFilter(Scorer):
    r"""Base class of the training-free filters: holds the fitted
    interaction matrix (for scoring fitted users by id) and its normalised
    form; subclasses implement :meth:`filter` on item-major signals."""
    def __init__(self, num_users: int, num_items: int):
        super().__init__()
        self.num_users = _check_count(num_users, 'num_users')
        self.num_items = _check_count(num_items, 'num_items')
        self.graph: Optional[NormalizedGraph] = None
        self._rowptr: Optional[Tensor] = None
        self._col: Optional[Tensor] = None
        self._value: Optional[Tensor] = None

    def _fit_rows(self, graph) -> None:
        user, item, value = interaction_matrix(graph, self.num_users,
                                               self.num_items)
        self._rowptr = index2ptr(user, self.num_users)
        self._col, self._value = item, value

    @property
    def is_fitted(self) -> bool:
        return self._rowptr is not None

    def _require_fit(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{self.__class__.__name__} is not fitted: "
                               f"call fit(graph) first")

    def fit(self, graph) -> 'GraphFilter':  # pragma: no cover
        raise NotImplementedError

    def _set_spectral(self, k: int, svd: str, niter: int,
                      seed: Optional[int]) -> None:
        r"""Validates and stores the spectral settings (GF-CF, BSPM,
        ChebyCF)."""
        self.k = _check_count(k, 'k')
        _check_svd(svd, niter)
        self.svd, self.niter, self.seed = svd, niter, seed
        self.basis: Optional[Tensor] = None

    def _fit_spectral(self, graph, with_basis: bool,
                      all_reduce: Optional[AllReduce] = None
                      ) -> 'GraphFilter':
        r"""Fits :math:`\tilde{R}` and, if :obj:`with_basis`, the ideal
        filter's basis (:obj:`k`, :obj:`svd`, :obj:`niter`, :obj:`seed`).
        With :obj:`all_reduce`, :obj:`graph` holds one block of users' rows
        (see :func:`~pyg_lightgode.nn.filters.ideal_basis`)."""
        graph_ = normalize_interactions(graph, self.num_users, self.num_items,
                                        all_reduce=all_reduce)
        basis = None
        if with_basis:
            basis = ideal_basis(graph_, self.k, self.svd, self.niter,
                                seed=self.seed,
                                all_reduce=all_reduce).vectors
        self._fit_rows(graph)
        self.graph, self.basis = graph_, basis
        return self

    @property
    def spectral(self) -> bool:
        r"""Whether the filter has the spectral settings (:obj:`k`,
        :obj:`svd`, :obj:`niter`, :obj:`seed`) that :meth:`fit_like`
        needs (GF-CF, BSPM)."""
        return all(hasattr(self, name) for name in ('k', 'svd', 'niter',
                                                    'seed'))

    def fit_like(self, other: 'GraphFilter') -> 'GraphFilter':
        r"""Fits to the data that :obj:`other` (a fitted spectral filter of
        the same class and size) was fitted to, reusing its normalised graph
        and rows and, when the spectral settings (:obj:`k`, :obj:`svd`,
        :obj:`niter`, :obj:`seed`) agree, its ideal basis instead of
        recomputing it: the same result as :meth:`fit` on that data, for
        comparing settings (*e.g.* on validation) at the cost of one SVD.
        Returns :obj:`self`."""
        spectral = ('k', 'svd', 'niter', 'seed')
        if not self.spectral:
            raise TypeError(f"fit_like supports the spectral filters (GFCF, "
                            f"BSPM), not {self.__class__.__name__}")
        if type(other) is not type(self) or not other.is_fitted or (
                other.num_users, other.num_items) != (self.num_users,
                                                      self.num_items):
            raise ValueError(f"'other' must be a fitted "
                             f"{self.__class__.__name__} over "
                             f"{self.num_users} users and {self.num_items} "
                             f"items (got {other!r})")
        basis = None
        if self._needs_basis():
            same = all(getattr(self, name) == getattr(other, name)
                       for name in spectral)
            basis = other.basis if same and other.basis is not None else \
                ideal_basis(other.graph, self.k, self.svd, self.niter,
                            seed=self.seed).vectors
        self._rowptr, self._col, self._value = (other._rowptr, other._col,
                                                other._value)
        self.graph, self.basis = other.graph, basis
        return self

    def _needs_basis(self) -> bool:  # pragma: no cover
        return False

    def _item_item(self, x: Tensor) -> Tensor:
        r""":math:`\tilde{P} X` over the fitted graph (BSPM, ChebyCF)."""
        return item_item(x, self.graph)

    def _row_entries(self, users: Tensor) -> Tuple[Tensor, Tensor]:
        r"""The fitted entries of the rows of :obj:`users` (any shape,
        flattened): for each entry, the position of its user in
        :obj:`users` and its position in :obj:`_col` / :obj:`_value`."""
        users = users.flatten()
        start = self._rowptr[users]
        count = self._rowptr[users + 1] - start
        batch = torch.repeat_interleave(
            torch.arange(users.numel(), device=users.device), count)
        offset = torch.arange(batch.numel(), device=users.device) - \
            torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        return batch, start[batch] + offset

    def user_rows(self, users: Tensor) -> Tensor:
        r"""The fitted interaction rows of :obj:`users` as item-major
        :obj:`[I, b]`."""
        self._require_fit()
        batch, pos = self._row_entries(users)
        out = torch.zeros(self.num_items, users.numel(),
                          dtype=self._value.dtype, device=users.device)
        out[self._col[pos], batch] = self._value[pos]
        return out

    def filter(self, x: Tensor) -> Tensor:  # pragma: no cover
        r"""Filters an item-major signal :obj:`[I, b]`."""
        raise NotImplementedError

    def forward(self, rows: Tensor) -> Tensor:
        r"""Scores :obj:`[b, I]` of interaction rows :obj:`[b, I]` (dense or
        torch.sparse), fitted users or not. Rows holding NaN or infinite
        values raise :class:`ValueError` (their scores would be NaN)."""
        self._require_fit()
        x = rows_to_item_major(rows, self.num_items)
        if not bool(torch.isfinite(x).all()):
            bad = (~torch.isfinite(x)).any(dim=0).nonzero().view(-1)
            raise ValueError(f"'rows' holds NaN or infinite values (in rows "
                             f"{bad[:10].tolist()}"
                             f"{' ...' if bad.numel() > 10 else ''}); an "
                             f"interaction row must be finite")
        return self.filter(x).t()

    def score(self, users: Tensor) -> Tensor:
        r"""Scores :obj:`[b, I]` of fitted users by id."""
        self._require_fit()
        users = check_user_ids(users, self.num_users)
        return self.filter(self.user_rows(users)).t().contiguous()


class Popularity(GraphFilter):
    r"""Item popularity, the same for every user:
    :math:`s_{u,i} = \log(1 + d_i)` with :math:`d_i` the item's number of
    distinct users in the fitted graph. A baseline, and a part of a
    :class:`ScoreFusion` where a negative weight debiases the other parts.
    Memory: :math:`O(|I|)` after fitting.

    Args:
        num_users (int): Number of users :math:`|U|`.
        num_items (int): Number of items :math:`|I|`.
    """
    def fit(self, graph) -> 'Popularity':
        self._fit_rows(graph)
        degree = torch.bincount(self._col, minlength=self.num_items)
        self.log_degree = torch.log1p(degree.to(self._value.dtype))
        return self

    def filter(self, x: Tensor) -> Tensor:
        return self.log_degree.unsqueeze(1).expand(-1, x.size(1)).clone()

    def score(self, users: Tensor) -> Tensor:
        self._require_fit()
        users = check_user_ids(users, self.num_users)
        return self.log_degree.expand(users.numel(), -1).clone()


class UserKNN(GraphFilter):
    r"""User-based nearest neighbours on the bipartite graph: a user's
    row :math:`\mathbf{r}_u` is propagated to the other users through the
    items (two hops), the :obj:`k` most similar users are kept, and their
    rows are summed with their similarities as weights,

    .. math::
        w_{uv} = \left(\frac{\mathbf{r}_u^\top \mathbf{r}_v}{d_u^{\alpha}
        \, d_v^{1 - \alpha}}\right)^{p}, \qquad
        \mathbf{s}_u = \sum_{v \in \mathrm{top}_k(w_{u\cdot}),\,
        v \ne u} w_{uv} \, \mathbf{r}_v,

    with :math:`d` the users' interaction counts (:math:`\alpha = 0.5`:
    cosine similarity). Unlike the low-pass filters (GF-CF, BSPM), which
    smooth over the *item* graph, the top-:math:`k` cut makes it local on
    the *user* side, which is why it adds to them in a fusion.

    Memory: :math:`O(b\,(|U| + |I|))` per batch of :math:`b` users (the
    two-hop similarities to every user and the scores), :math:`O(|E|)`
    after fitting; time :math:`O(b\,|E|)` per batch. Inductive: a row
    scored by :meth:`forward` gets the same scores as the same user fitted
    and scored by id (:meth:`score` leaves the user out of their own
    neighbours).

    Args:
        num_users (int): Number of users :math:`|U|`.
        num_items (int): Number of items :math:`|I|`.
        k (int, optional): Number of neighbours (default :obj:`50`).
        alpha (float, optional): Exponent :math:`\alpha \in [0, 1]` of the
            user's own degree in the normalisation (default :obj:`0.5`).
        power (float, optional): Exponent :math:`p > 0` of the similarities
            (default :obj:`1.0`).
    """
    def __init__(self, num_users: int, num_items: int, k: int = 50,
                 alpha: float = 0.5, power: float = 1.0):
        super().__init__(num_users, num_items)
        self.k = min(_check_count(k, 'k'), self.num_users)
        self.alpha = _check_real(alpha, 'alpha', non_negative=True)
        if self.alpha > 1:
            raise ValueError(f"'alpha' must lie in [0, 1] (got {alpha!r})")
        self.power = _check_real(power, 'power', positive=True)

    def fit(self, graph) -> 'UserKNN':
        self._fit_rows(graph)
        user = torch.repeat_interleave(
            torch.arange(self.num_users, device=self._col.device),
            self._rowptr.diff())
        self._matrix = sorted_csr(user, self._col, self._value,
                                  (self.num_users, self.num_items))
        degree = torch.zeros(self.num_users, dtype=self._value.dtype,
                             device=self._value.device)
        degree.index_add_(0, user, self._value)
        self._degree = degree
        return self

    def _neighbours(self, x: Tensor, users: Optional[Tensor]) -> Tensor:
        r"""Scores :obj:`[I, b]` of item-major rows :obj:`x`, leaving out
        :obj:`users` (their own ids) from their neighbours."""
        sim = self._matrix @ x  # [U, b]: co-interactions with every user.
        own = x.sum(dim=0).clamp(min=1e-12).pow(self.alpha)
        other = self._degree.clamp(min=1e-12).pow(1.0 - self.alpha)
        sim = sim / own.unsqueeze(0) / other.unsqueeze(1)
        if users is not None:
            sim[users, torch.arange(users.numel(), device=x.device)] = 0.0
        weight, index = sim.topk(self.k, dim=0)  # [k, b]
        if self.power != 1.0:
            weight = weight.clamp(min=0).pow(self.power)
        # Sum the neighbours' rows (index is [k, b]: entry j is column
        # j % b).
        neighbour, pos = self._row_entries(index)
        column = neighbour % x.size(1)
        value = self._value[pos] * weight.flatten()[neighbour]
        # coalesce() sums the repeated (item, user) entries in a fixed
        # order (index_put_(accumulate=True) does not, across threads).
        return torch.sparse_coo_tensor(
            torch.stack([self._col[pos], column]), value, tuple(x.shape),
            check_invariants=False).coalesce().to_dense()

    def filter(self, x: Tensor) -> Tensor:
        return self._neighbours(x, None)

    def score(self, users: Tensor) -> Tensor:
        self._require_fit()
        users = check_user_ids(users, self.num_users)
        return self._neighbours(self.user_rows(users), users).t() \
            .contiguous()


class _ItemItemFilter(GraphFilter):
    r"""A filter that scores through a sparse item--item matrix built at
    fitting time (:meth:`_build`), in blocks of :obj:`block_size` items;
    by default a user's scores are their row times that matrix."""
    def __init__(self, num_users: int, num_items: int, block_size: int):
        super().__init__(num_users, num_items)
        self.block_size = _check_count(block_size, 'block_size')
        self.item_item: Optional[Tensor] = None

    def _build(self, graph) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def fit(self, graph) -> '_ItemItemFilter':
        r"""Fits to :obj:`graph`; returns :obj:`self`."""
        matrix = self._build(graph)
        self._fit_rows(graph)
        self.item_item = matrix
        return self

    def filter(self, x: Tensor) -> Tensor:
        # The matrix maps an item-major signal [I, b] to the scores.
        return torch.sparse.mm(self.item_item, x)


class ItemKNN(_ItemItemFilter):
    r"""Item-based nearest neighbours: every item passes a user's
    interaction to its :obj:`k` most similar items (cosine similarity on
    the bipartite graph, raised to a power),

    .. math::
        s_{u,i} = \sum_{j \in \mathcal{N}_u,\; i \in \mathrm{top}_k(j)}
        c_{ij}^{\,p}, \qquad c_{ij} = \frac{|U_i \cap U_j|}
        {\sqrt{d_i d_j}}

    (:func:`~pyg_lightgode.nn.filters.knn_item_item`). The top-:math:`k`
    cut makes it a local filter of the item graph, which the low-pass
    filters (GF-CF, BSPM) smooth globally; the two add up in a fusion.

    Memory: :math:`12\,k\,|I|` bytes for the sparse neighbour matrix after
    fitting (fitting peaks at :math:`4 (|I| + |U|)\,\text{block\_size}`
    bytes besides it); :math:`O(b\,|I|)` per batch of :math:`b` users.
    Inductive like every filter.

    Args:
        num_users (int): Number of users :math:`|U|`.
        num_items (int): Number of items :math:`|I|`.
        k (int, optional): Neighbours per item (default :obj:`100`).
        power (float, optional): Exponent :math:`p > 0` of the
            similarities (default :obj:`1.0`).
        block_size (int, optional): Items per block while fitting.
    """
    def __init__(self, num_users: int, num_items: int, k: int = 100,
                 power: float = 1.0, block_size: int = 2048):
        super().__init__(num_users, num_items, block_size)
        self.k = _check_count(k, 'k')
        self.power = _check_real(power, 'power', positive=True)

    def _build(self, graph) -> Tensor:
        return knn_item_item(graph, self.num_users, self.num_items, self.k,
                             self.power, self.block_size)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, k={self.k}, power={self.power})')


class GFCF(GraphFilter):
    r"""GF-CF from the `"How Powerful is Graph Convolution for
    Recommendation?" <https://arxiv.org/abs/2108.07567>`_ paper: a linear
    plus an ideal low-pass filter of a user's interaction row,

    .. math::
        \mathbf{s}_u = \mathbf{r}_u \tilde{\mathbf{P}} + \alpha\,
        \mathbf{r}_u \mathbf{D}_I^{-1/2} \mathbf{V} \mathbf{V}^\top
        \mathbf{D}_I^{1/2},

    :math:`\tilde{\mathbf{P}} = \tilde{\mathbf{R}}^\top\tilde{\mathbf{R}}`,
    :math:`\mathbf{V}` the top-:math:`k` right singular vectors of
    :math:`\tilde{\mathbf{R}}` (official: :math:`\alpha = 0.3`, :math:`k =
    256` on Gowalla and Yelp2018; :math:`\alpha = 0` on Amazon-Book).

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        k (int, optional): Singular vectors of the ideal filter.
            (default: :obj:`256`)
        alpha (float, optional): Weight of the ideal filter; :obj:`0` skips
            the SVD. (default: :obj:`0.3`)
        svd (str, optional): :obj:`'lowrank'` or :obj:`'svds'`, see
            :func:`~pyg_lightgode.nn.filters.ideal_basis`.
        niter (int, optional): Power iterations of :obj:`'lowrank'`.
        seed (int, optional): Seed of the randomized SVD.

    **Memory** (float32, int64 ids): the fitted graph
    :math:`\approx 36|E|` bytes (two normalised CSR copies and the raw rows),
    the basis :math:`4|I|k`; scoring :math:`b` users holds :math:`4b(2|I| +
    |U| + k)` bytes. Never a dense :math:`|U| \times |I|` or :math:`|I|
    \times |I|` matrix.

    Shapes:
        - **input:** rows :math:`(b, |I|)` or user ids :math:`(b)`
        - **output:** scores :math:`(b, |I|)`
    """
    def __init__(self, num_users: int, num_items: int, k: int = 256,
                 alpha: float = 0.3, svd: str = 'krylov', niter: int = 4,
                 seed: Optional[int] = 0):
        super().__init__(num_users, num_items)
        self._set_spectral(k, svd, niter, seed)
        self.alpha = _check_real(alpha, 'alpha', non_negative=True)

    def fit(self, graph) -> 'GFCF':
        r"""Fits to :obj:`graph` (an interaction index :obj:`[2, E]` or a
        sparse :obj:`[U, I]` matrix); returns :obj:`self`."""
        return self._fit_spectral(graph, self._needs_basis())

    def _needs_basis(self) -> bool:
        return self.alpha > 0

    def filter(self, x: Tensor) -> Tensor:
        out = self._item_item(x)
        if self.basis is not None:
            out += self.alpha * ideal_filter(x, self.basis,
                                             self.graph.item_degree)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, k={self.k}, alpha={self.alpha})')


class BSPM(GraphFilter):
    r"""BSPM from the `"Blurring-Sharpening Process Models for Collaborative
    Filtering" <https://arxiv.org/abs/2211.09324>`_ paper: three linear ODEs
    on a user's row :math:`\mathbf{r}`, each from :math:`\mathbf{r}(0) =
    \mathbf{r}_u`,

    .. math::
        \text{ideal:}\ \frac{d\mathbf{r}}{dt} = \mathrm{Ideal}(\mathbf{r})
        - \mathbf{r}, \quad
        \text{blurring:}\ \frac{d\mathbf{r}}{dt} = \mathbf{r}\tilde{\mathbf{P}}
        - \mathbf{r}, \quad
        \text{sharpening:}\ \frac{d\mathbf{r}}{dt} =
        -\mathbf{r}\tilde{\mathbf{P}},

    where sharpening starts from :math:`\beta\,\mathbf{r}_{idl}(T_{idl}) +
    \mathbf{r}_{b}(T_b)` (*early merge*) or from :math:`\mathbf{r}_b(T_b)`
    with :math:`\beta\,\mathbf{r}_{idl}` added after it (*late merge*).
    With :obj:`t_point_combination`, the solutions at all grid points of
    blurring and sharpening are averaged instead of taking the last one.
    The defaults are the official Gowalla settings (BSPM-EM): ideal and
    blurring one Euler step to :math:`T = 1`, sharpening one RK4 step to
    :math:`T = 2.5`, :math:`\beta = 0.2`, :math:`k = 448`.

    Every ODE takes any torchdiffeq method with :math:`K` steps
    (:obj:`*_steps`) or :obj:`'exact'` (the series solution; for the ideal
    ODE also the closed form :math:`e^{-T}\mathbf{r} + (1 - e^{-T})
    \mathrm{Ideal}(\mathbf{r})` since the ideal filter is idempotent).

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        k (int, optional): Singular vectors of the ideal filter.
        beta (float, optional): Weight of the ideal branch.
        ideal_t, blur_t, sharpen_t (float, optional): End times; an
            :obj:`ideal_t` of :obj:`None` (or :obj:`beta=0`) drops the ideal
            branch, a :obj:`sharpen_t` of :obj:`0` the sharpening.
        ideal_steps, blur_steps, sharpen_steps (int, optional): Solver steps
            :math:`K` per ODE.
        ideal_method, blur_method, sharpen_method (str, optional): Solvers.
        merge (str, optional): :obj:`'early'` or :obj:`'late'`.
        t_point_combination (bool, optional): Average the grid points.
        svd, niter, seed: As in :class:`GFCF`.
        max_steps (int, optional): Bound of adaptive solvers.

    **Memory**: as :class:`GFCF`, plus :math:`4b|I|` bytes per grid point and
    solver stage kept while scoring :math:`b` users.

    Shapes:
        - **input:** rows :math:`(b, |I|)` or user ids :math:`(b)`
        - **output:** scores :math:`(b, |I|)`
    """
    def __init__(self, num_users: int, num_items: int, k: int = 448,
                 beta: float = 0.2, ideal_t: Optional[float] = 1.0,
                 ideal_steps: int = 1, ideal_method: str = 'euler',
                 blur_t: float = 1.0, blur_steps: int = 1,
                 blur_method: str = 'euler', sharpen_t: float = 2.5,
                 sharpen_steps: int = 1, sharpen_method: str = 'rk4',
                 merge: str = 'early', t_point_combination: bool = False,
                 svd: str = 'krylov', niter: int = 4,
                 seed: Optional[int] = 0,
                 max_steps: int = DEFAULT_MAX_STEPS):
        super().__init__(num_users, num_items)
        self._set_spectral(k, svd, niter, seed)
        self.beta = _check_real(beta, 'beta', non_negative=True)
        if merge not in ('early', 'late'):
            raise ValueError(f"'merge' must be 'early' or 'late' (got "
                             f"{merge!r})")
        self.merge, self.t_point_combination = merge, bool(t_point_combination)
        ideal = None if ideal_t is None else \
            LinearFlow(ideal_t, ideal_steps, ideal_method, 1.0, -1.0)
        self.blur = LinearFlow(blur_t, blur_steps, blur_method, 1.0, -1.0)
        self.sharpen = LinearFlow(sharpen_t, sharpen_steps, sharpen_method,
                                  -1.0, 0.0)
        for name, flow in (('ideal', ideal), ('blur', self.blur),
                           ('sharpen', self.sharpen)):
            if flow is not None:
                check_flow(flow, name, max_steps)
        self.ideal = None if self.beta == 0 else ideal
        self.max_steps = max_steps

    def fit(self, graph) -> 'BSPM':
        r"""Fits to :obj:`graph`; returns :obj:`self`."""
        return self._fit_spectral(graph, self._needs_basis())

    def _needs_basis(self) -> bool:
        return self.ideal is not None

    def _ideal_op(self, x: Tensor) -> Tensor:
        return ideal_filter(x, self.basis, self.graph.item_degree)

    def _solve_ideal(self, x: Tensor) -> Tensor:
        flow = self.ideal
        if flow.method == 'exact':  # Idempotent operator: closed form.
            ideal = self._ideal_op(x)
            out = []
            for i in range(flow.steps):
                decay = math.exp(-flow.end * (i + 1) / flow.steps)
                out.append(decay * x + (1 - decay) * ideal)
            return torch.stack(out)
        return solve_flow(x, self._ideal_op, flow, max_steps=self.max_steps)

    def filter(self, x: Tensor) -> Tensor:
        ideal = None if self.ideal is None else self._solve_ideal(x)[-1]
        blurred = solve_flow(x, self._item_item, self.blur,
                             max_steps=self.max_steps)
        start = blurred[-1]
        if ideal is not None and self.merge == 'early' and \
                self.sharpen.end > 0:
            start = start + self.beta * ideal
        if self.sharpen.end == 0:  # No sharpening: blur, then add ideal.
            out = blurred.mean(dim=0) if self.t_point_combination else \
                blurred[-1]
            return out if ideal is None else out + self.beta * ideal
        sharpened = solve_flow(start, self._item_item, self.sharpen,
                               max_steps=self.max_steps)
        if self.t_point_combination:
            out = torch.cat([blurred, sharpened]).mean(dim=0)
        else:
            out = sharpened[-1]
        if ideal is not None and self.merge == 'late':
            out = out + self.beta * ideal
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, k={self.k}, beta={self.beta}, '
                f'merge={self.merge!r})')


class ChebyCF(GraphFilter):
    r"""ChebyCF from the `"Graph Spectral Filtering with Chebyshev
    Interpolation for Recommendation" <https://arxiv.org/abs/2505.00552>`_
    paper: a smooth low-pass filter of the item graph, a polynomial of
    degree :math:`K` in :math:`\tilde{\mathbf{P}}` (no SVD), plus an ideal
    low-pass filter, on a degree-normalised row:

    .. math::
        \mathbf{s}_u = \Big(\sum_{n=0}^{K} c_n\, T_n(\mathbf{I} -
        2\tilde{\mathbf{P}})\, \mathbf{x}_u + \alpha\,\mathbf{V}
        \mathbf{V}^\top \mathbf{x}_u\Big) \odot \mathbf{d}_I^{\beta},
        \qquad \mathbf{x}_u = \mathbf{r}_u \odot \mathbf{d}_I^{-\beta},

    with :math:`T_n` the Chebyshev polynomials, :math:`c_n` the
    interpolation coefficients of a plateau-shaped response of flatness
    :math:`\varphi`
    (:func:`~pyg_lightgode.nn.filters.plateau_coefficients`; response 1
    at :math:`\lambda = 1`, 0 at :math:`\lambda = 0` of
    :math:`\tilde{\mathbf{P}}`), :math:`\mathbf{V}` the top-:math:`k`
    right singular vectors of :math:`\tilde{\mathbf{R}}` and
    :math:`\mathbf{d}_I` the item degrees. Defaults: the official Gowalla
    settings (:math:`K = 8`, :math:`\varphi = 1.5`, :math:`k = 512`,
    :math:`\alpha = 0.2`, :math:`\beta = 0.4`).

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        order (int, optional): Polynomial degree :math:`K` (one
            item--item product each).
        flatness (float, optional): :math:`\varphi > 0`.
        k (int, optional): Singular vectors of the ideal filter.
        alpha (float, optional): Weight of the ideal filter; :obj:`0`
            skips the SVD.
        beta (float, optional): Degree-normalisation power :math:`\beta`.
        svd, niter, seed: As in :class:`GFCF`.

    **Memory**: as :class:`GFCF` (basis :math:`4|I|k` bytes); scoring
    :math:`b` users holds :math:`4b(5|I| + |U| + k)` bytes (three
    Chebyshev terms, the sum and the input).

    Shapes:
        - **input:** rows :math:`(b, |I|)` or user ids :math:`(b)`
        - **output:** scores :math:`(b, |I|)`
    """
    def __init__(self, num_users: int, num_items: int, order: int = 8,
                 flatness: float = 1.5, k: int = 512, alpha: float = 0.2,
                 beta: float = 0.4, svd: str = 'krylov', niter: int = 4,
                 seed: Optional[int] = 0):
        super().__init__(num_users, num_items)
        self._set_spectral(k, svd, niter, seed)
        self.coefficients = plateau_coefficients(order, flatness)
        self.order, self.flatness = int(order), float(flatness)
        self.alpha = _check_real(alpha, 'alpha', non_negative=True)
        self.beta = _check_real(beta, 'beta')

    def fit(self, graph) -> 'ChebyCF':
        r"""Fits to :obj:`graph`; returns :obj:`self`."""
        return self._fit_spectral(graph, self._needs_basis())

    def _needs_basis(self) -> bool:
        return self.alpha > 0

    def filter(self, x: Tensor) -> Tensor:
        degree = self.graph.item_degree.unsqueeze(1)
        pre = x * inv_degree_power(degree, self.beta)
        out = chebyshev_filter(pre, self._item_item, self.coefficients)
        out = out * inv_degree_power(degree, -self.beta)
        if self.basis is not None:
            out += self.alpha * ideal_filter(x, self.basis,
                                             self.graph.item_degree,
                                             power=self.beta)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, order={self.order}, '
                f'flatness={self.flatness}, k={self.k}, '
                f'alpha={self.alpha}, beta={self.beta})')


class TurboCF(_ItemItemFilter):
    r"""Turbo-CF from the `"Turbo-CF: Matrix Decomposition-Free Graph
    Filtering for Fast Recommendation" <https://arxiv.org/abs/2404.14243>`_
    paper: a polynomial filter of the power-normalised item--item matrix
    :math:`\mathbf{P}_a = (\mathbf{R}_a^\top\mathbf{R}_a)^{\circ s}`,
    :math:`\mathbf{R}_a = \mathbf{D}_U^{-a}\mathbf{R}\mathbf{D}_I^{a-1}`:

    .. math::
        \text{filter 1: } \mathbf{s}_u = \mathbf{r}_u \mathbf{P}_a, \qquad
        \text{filter 2: } \mathbf{s}_u = \mathbf{r}_u (2\mathbf{P}_a -
        \mathbf{P}_a^2).

    The entry-wise power makes :math:`\mathbf{P}_a` impossible to factor
    through the users, so it is built, sparse
    (:func:`~pyg_lightgode.nn.filters.turbo_item_item`). Official: Gowalla
    :math:`a = 0.6, s = 0.7`, filter 1; Yelp2018 :math:`a = 0.6, s = 1`,
    filter 2.

    **Memory**: :math:`12\,\mathrm{nnz}(\mathbf{P}_a)` bytes for the item--item
    matrix (one entry per pair of co-interacted items) plus the fitted rows;
    scoring :math:`b` users holds :math:`8b|I|` bytes.

    Shapes:
        - **input:** rows :math:`(b, |I|)` or user ids :math:`(b)`
        - **output:** scores :math:`(b, |I|)`
    """
    def __init__(self, num_users: int, num_items: int, alpha: float = 0.6,
                 power: float = 0.7, filter: int = 1,
                 block_size: int = 2048):
        super().__init__(num_users, num_items, block_size)
        self.alpha = _check_real(alpha, 'alpha')
        self.power = _check_real(power, 'power', positive=True)
        if filter not in (1, 2):
            raise ValueError(f"'filter' must be 1 or 2 (got {filter!r})")
        self.filter_id = filter

    def _build(self, graph) -> Tensor:
        return turbo_item_item(graph, self.num_users, self.num_items,
                               self.alpha, self.power, self.block_size)

    def filter(self, x: Tensor) -> Tensor:
        # P_a is symmetric, so (r P_a)^T = P_a x.
        out = super().filter(x)
        if self.filter_id == 2:
            out = 2 * out - torch.sparse.mm(self.item_item, out)
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, alpha={self.alpha}, power={self.power}, '
                f'filter={self.filter_id})')

