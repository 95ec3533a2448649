r"""Hard negatives for PinSage: items ranked in a band of the
personalised PageRank (PPR) from the query item -- "related but not too
related".

PPR is computed by power iteration on the item -> user -> item walk graph
(transition :math:`\mathbf{P} = \mathbf{D}_I^{-1}\mathbf{A}^{\top}
\mathbf{D}_U^{-1}\mathbf{A}`, each hop uniform over the neighbours), for a
batch of queries at once with sparse matrix products:

.. math::
    \boldsymbol{\pi}^{(0)} = \alpha \mathbf{e}_q, \qquad
    \boldsymbol{\pi}^{(k+1)} = \alpha \mathbf{e}_q + (1 - \alpha)
    \mathbf{P}^{\top} \boldsymbol{\pi}^{(k)},

i.e. the PPR series truncated after :obj:`num_iterations` traversals. Mass
reaching an item without users is lost (the walk ends there), exactly as for
the random walks of :class:`~pyg_lightgode.sampler.ImportanceNeighborhood`,
whose expected visit counts with termination probability :math:`\alpha` are
:math:`\pi_j / (\alpha (1 - \alpha))` for :math:`j \ne q`.

The paper samples ranks 2000--5000 of a catalogue of millions. The package's
default band is *relative*: positions :math:`[0.01 I, 0.025 I)` of the
ranking (same 2:5 ratio; Gowalla, :math:`I = 40{,}981`: ranks 409--1025;
MovieLens-1M, :math:`I = 3{,}706`: 37--93). Absolute ranks are given as
integers, e.g. :obj:`rank_range=(2000, 5000)`.

The elementwise work on the dense :obj:`[I, Q]` iterates (and on the
graph when the sampler is built) runs in blocks of at most
:data:`~pyg_lightgode.sampler.random_walk.BLOCK_SIZE` elements, as the
random walks do, so that each of these memory-bound operations runs on one
thread whatever :func:`torch.get_num_threads` is (with 2 threads on a busy
2-core machine they waited for the second thread). The sparse products
(MKL) write into reused buffers (:obj:`beta=0`: no zero fill and copy of
the result) and take :obj:`int32` indices, converted once.
"""
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.utils import to_torch_csr_tensor

from pyg_lightgode.data.bipartite import quiet_sparse_csr
from pyg_lightgode.sampler.random_walk import (
    BLOCK_SIZE,
    CSR,
    bipartite_csr,
    cat_blocks,
    full_blocks,
    rows_per_block,
    to_csr,
)

DEFAULT_RANK_RANGE = (0.01, 0.025)

RankRange = Tuple[Union[int, float], Union[int, float]]


def _has_repeats(rowptr: Tensor, col: Tensor) -> bool:
    r"""Whether a CSR adjacency with sorted rows holds an entry twice (a
    repeated interaction), checked in blocks (see :data:`BLOCK_SIZE`)."""
    for lo in range(1, col.numel(), BLOCK_SIZE):
        piece = col[lo:lo + BLOCK_SIZE]
        same = torch.eq(piece, col[lo - 1:lo - 1 + piece.numel()])
        same = same.nonzero().view(-1).add_(lo)
        # Equal neighbours are one entry twice unless a row starts between.
        start = rowptr.index_select(0, torch.searchsorted(rowptr, same))
        if bool((start != same).any()):
            return True
    return False


def _ptr2index(rowptr: Tensor, num: int) -> Tensor:
    r"""The row of every entry of a CSR adjacency (PyG's :obj:`ptr2index`,
    whose :func:`torch.repeat_interleave` runs in parallel at any size) as
    the running count of the row starts, in blocks (see
    :data:`BLOCK_SIZE`)."""
    row = full_blocks(num, 0)
    ones = torch.ones(BLOCK_SIZE, dtype=torch.long)
    starts = rowptr[1:-1]
    for lo in range(0, starts.numel(), BLOCK_SIZE):
        piece = starts[lo:lo + BLOCK_SIZE]
        piece = piece.masked_select(piece < num)  # Not the empty last rows.
        row.index_add_(0, piece, ones[:piece.numel()])
    carry = 0
    for lo in range(0, num, BLOCK_SIZE):
        piece = row[lo:lo + BLOCK_SIZE].cumsum_(0).add_(carry)
        carry = int(piece[-1])
    return row


def _inverse_degrees(deg: Tensor, index: Tensor) -> Tensor:
    r""":obj:`1 / deg[index]`, in blocks (see :data:`BLOCK_SIZE`)."""
    out = torch.empty(index.numel())
    for lo in range(0, index.numel(), BLOCK_SIZE):
        piece = deg.index_select(0, index[lo:lo + BLOCK_SIZE])
        out[lo:lo + piece.numel()] = 1.0 / piece
    return out


def _transposed_transition(csr: CSR, num_cols: int) -> Tensor:
    r"""The sparse :obj:`[C, R]` matrix :math:`\mathbf{T}^{\top}` of the
    uniform hop :math:`\mathbf{T} = \mathbf{D}^{-1}\mathbf{A}` of a CSR
    adjacency with :math:`R` rows (a row vector :math:`x` maps to
    :math:`\mathbf{T}^{\top} x`), coalesced (rows sorted, repeated entries
    summed), with :obj:`int32` indices where they fit (what MKL's product
    takes; :obj:`int64` ones are converted at every product)."""
    rowptr, col = csr
    size = (num_cols, rowptr.numel() - 1)
    row = _ptr2index(rowptr, col.numel())
    deg = torch.empty(size[1])
    for lo in range(0, size[1], BLOCK_SIZE):
        hi = min(lo + BLOCK_SIZE, size[1])
        deg[lo:hi] = rowptr[lo + 1:hi + 1] - rowptr[lo:hi]
    # By column: to_csr keeps the rows of a column in (increasing) order.
    t_rowptr, t_col = to_csr(col, row, num_cols)
    if _has_repeats(t_rowptr, t_col):
        with quiet_sparse_csr():
            adj = to_torch_csr_tensor(torch.stack([col, row]),
                                      _inverse_degrees(deg, row), size=size)
        t_rowptr, t_col, weight = (adj.crow_indices(), adj.col_indices(),
                                   adj.values())
    else:
        weight = _inverse_degrees(deg, t_col)
    if max(t_col.numel(), size[1]) < 2**31 - 1:
        t_rowptr, t_col = (cat_blocks([t], out=torch.empty(
            t.numel(), dtype=torch.int32)) for t in (t_rowptr, t_col))
    with quiet_sparse_csr():  # Built from a valid CSR: no beta notices.
        return torch.sparse_csr_tensor(t_rowptr, t_col, weight, size)


def _transpose_into(x: Tensor, out: Tensor) -> Tensor:
    r"""Copies :obj:`x` :obj:`[N, Q]` transposed into :obj:`out`
    :obj:`[Q, N]`, in blocks of rows (see :data:`BLOCK_SIZE`)."""
    step = rows_per_block(x.size(1), BLOCK_SIZE)
    for lo in range(0, x.size(0), step):
        block = x[lo:lo + step]
        out[:, lo:lo + block.size(0)].copy_(block.t())
    return out


def resolve_rank_range(rank_range: RankRange, num_items: int) -> Tuple[int,
                                                                       int]:
    r"""Turns a rank band (absolute integers, or fractions of the catalogue
    as floats in :math:`[0, 1]`) into absolute positions :obj:`[lo, hi)`,
    at least one wide and clamped to the catalogue."""
    if not isinstance(rank_range, (tuple, list)) or len(rank_range) != 2:
        raise ValueError(f"'rank_range' must be a pair (lo, hi) (got "
                         f"{rank_range!r})")
    lo, hi = rank_range
    kinds = {isinstance(v, float) for v in (lo, hi)}
    if len(kinds) != 1 or any(isinstance(v, bool) or not isinstance(
            v, (int, float)) for v in (lo, hi)):
        raise ValueError(f"'rank_range' must hold two ints (absolute ranks) or"
                         f" two floats (fractions of the catalogue) (got "
                         f"{rank_range!r})")
    if not 0 <= lo < hi or (kinds == {True} and hi > 1.0):
        raise ValueError(f"'rank_range' must satisfy 0 <= lo < hi (and hi <= "
                         f"1 for fractions) (got {rank_range!r})")
    if kinds == {True}:
        lo, hi = int(lo * num_items), int(-(-hi * num_items // 1))
    lo = min(int(lo), num_items - 1)
    return lo, max(lo + 1, min(int(hi), num_items))


class HardNegativeSampler:
    r"""Samples PinSage hard negatives: for every query item, items whose
    personalised-PageRank rank lies in :obj:`rank_range` (position 0 = the
    most related item after exclusions), uniformly within the band.

    Args:
        index (torch.Tensor): User--item interactions :obj:`[2, E]`.
        num_users (int): Number of users.
        num_items (int): Number of items.
        rank_range (tuple): Band :obj:`(lo, hi)` of positions
            :obj:`lo <= r < hi`; ints are absolute ranks, floats fractions of
            the catalogue. (default: :obj:`(0.01, 0.025)`)
        alpha (float): Restart probability of the PPR. (default: :obj:`0.5`,
            the walk termination probability of the importance sampler)
        num_iterations (int): Power iterations, i.e. traversals after which
            the PPR series is truncated (each costs two sparse products over
            all interactions). (default: :obj:`4`; the terms left out carry
            at most :math:`(1-\alpha)^4` of the mass, 6% for
            :math:`\alpha = 0.5`)
        exclude_neighbors (bool): Exclude the query and every item it shares
            a user with (its item-to-item positives) from the ranking.
            (default: :obj:`True`)
        chunk_size (int): Queries per power iteration, bounding memory to
            :math:`O(\text{chunk} \cdot (U + I))`. (default: :obj:`256`)
        query (str): :obj:`'item'` (queries are items) or :obj:`'user'`
            (queries are users, for user-to-item training: the walk starts
            with a hop user -> item, then item -> user -> item traversals,
            :math:`\boldsymbol{\pi}^{(0)} = \alpha
            \mathbf{T}_{UI}^{\top}\mathbf{e}_u`; :obj:`exclude_neighbors`
            then excludes the user's own items). (default: :obj:`'item'`)

    If fewer items than :obj:`lo` remain after exclusions, the band is
    moved to the last ranked items; a query with no candidate at all gets
    uniformly random items. :meth:`precompute` computes every item's band
    once (worth it when an epoch has more queries than there are items).

    Shapes:
        - **input:** query items :math:`(Q)`
        - **output:** negatives :math:`(Q, \text{num\_negatives})`
    """
    def __init__(self, index: Tensor, num_users: int, num_items: int,
                 rank_range: RankRange = DEFAULT_RANK_RANGE,
                 alpha: float = 0.5, num_iterations: int = 4,
                 exclude_neighbors: bool = True, chunk_size: int = 256,
                 query: str = 'item'):
        item_csr, user_csr = bipartite_csr(index, num_users, num_items)
        if query not in ('item', 'user'):
            raise ValueError(f"'query' must be 'item' or 'user' (got "
                             f"{query!r})")
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"'alpha' must lie in (0, 1) (got {alpha})")
        for name, value in (('num_iterations', num_iterations),
                            ('chunk_size', chunk_size)):
            if int(value) != value or value <= 0:
                raise ValueError(f"'{name}' must be a positive integer (got "
                                 f"{value})")
        self.num_items = int(num_items)
        self.query = query
        self.num_queries = int(num_users) if query == 'user' else \
            self.num_items
        self.band = resolve_rank_range(rank_range, self.num_items)
        self.alpha = float(alpha)
        self.num_iterations = int(num_iterations)
        self.exclude_neighbors = bool(exclude_neighbors)
        self.chunk_size = int(chunk_size)
        self._bands: Optional[Tuple[Tensor, Tensor]] = None  # precompute()
        # item -> user, then user -> item (transposed for column vectors).
        self.hops: List[Tensor] = [
            _transposed_transition(item_csr, num_users),
            _transposed_transition(user_csr, num_items)
        ]

    def _check_queries(self, queries: Tensor) -> Tensor:
        if not isinstance(queries, Tensor) or queries.dtype.is_floating_point:
            raise ValueError(f"'query_{self.query}s' must be an integer "
                             f"tensor of {self.query} ids")
        queries = queries.long().view(-1)
        if queries.numel() > 0 and (int(queries.min()) < 0
                                    or int(queries.max()) >= self.num_queries):
            lo, hi = int(queries.min()), int(queries.max())
            raise ValueError(f"'query_{self.query}s' holds ids in [{lo}, "
                             f"{hi}], outside [0, {self.num_queries - 1}]")
        return queries

    def _power_iteration(self, queries: Tensor, near: bool = False
                         ) -> Tuple[Tensor, Optional[Tensor]]:
        r"""PPR :obj:`[I, Q]` of the queries (one column each) and, if
        :obj:`near`, the mask :obj:`[I, Q]` of the items one traversal from
        each query (the query included: item -> user -> same item)."""
        num_items, num_queries = self.num_items, queries.numel()
        cols = torch.arange(num_queries)
        step = rows_per_block(num_queries, BLOCK_SIZE)
        # x = restart, then restart + (1 - alpha) * P^T x: the products
        # alternate between two [I, Q] buffers through a [U, Q] one.
        restart, mask = None, None
        if self.query == 'user':
            # Restart at the user's items: alpha * T_UI^T e_u.
            start = full_blocks(self.hops[0].size(0) * num_queries, 0,
                                torch.float).view(-1, num_queries)
            start[queries, cols] = self.alpha
            restart = torch.empty(num_items, num_queries)
            torch.addmm(restart, self.hops[1], start, beta=0, out=restart)
            x = restart.clone()
            if near:
                mask = torch.empty_like(x, dtype=torch.bool)
                for lo in range(0, num_items, step):
                    torch.gt(x[lo:lo + step], 0, out=mask[lo:lo + step])
        else:
            x = full_blocks(num_items * num_queries, 0, torch.float).view(
                num_items, num_queries)
            x[queries, cols] = self.alpha
        spare, middle = torch.empty_like(x), torch.empty(
            self.hops[0].size(0), num_queries)
        for k in range(self.num_iterations):
            torch.addmm(middle, self.hops[0], x, beta=0, out=middle)
            torch.addmm(spare, self.hops[1], middle, beta=0, out=spare)
            x, spare = spare, x
            for lo in range(0, num_items, step):
                x[lo:lo + step].mul_(1 - self.alpha)
                if restart is not None:
                    x[lo:lo + step].add_(restart[lo:lo + step])
            if restart is None:
                x[queries, cols] += self.alpha
            if k == 0 and near and restart is None:
                mask = torch.empty_like(x, dtype=torch.bool)
                for lo in range(0, num_items, step):
                    torch.gt(x[lo:lo + step], 0, out=mask[lo:lo + step])
        return x, mask

    def pagerank(self, query_items: Tensor) -> Tensor:
        r"""Personalised PageRank :obj:`[Q, num_items]` of every query."""
        queries = self._check_queries(query_items)
        out = torch.empty(queries.numel(), self.num_items)
        for lo in range(0, queries.numel(), self.chunk_size):
            chunk = queries[lo:lo + self.chunk_size]
            _transpose_into(self._power_iteration(chunk)[0],
                            out[lo:lo + chunk.numel()])
        return out

    def _band_chunk(self, queries: Tensor) -> Tuple[Tensor, Tensor]:
        r"""The band of every query: :obj:`[Q, hi - lo]` candidates (the
        first :obj:`width[q]` valid; :obj:`width = 0` when the query has no
        candidate at all) and :obj:`width` :obj:`[Q]`."""
        num_queries = queries.numel()
        x, near = self._power_iteration(queries, self.exclude_neighbors)
        if self.query == 'item':
            x[queries, torch.arange(num_queries)] = float('-inf')
        scores = torch.empty(num_queries, self.num_items)
        num_valid = torch.zeros(num_queries, dtype=torch.long)
        step = rows_per_block(num_queries, BLOCK_SIZE)
        for lo in range(0, self.num_items, step):
            block = x[lo:lo + step]
            if near is not None:
                block.masked_fill_(near[lo:lo + step], float('-inf'))
            # Finite: the scores are in [0, 1] or -inf.
            num_valid += (block > float('-inf')).sum(dim=0)
            scores[:, lo:lo + block.size(0)].copy_(block.t())
        lo, hi = self.band
        top = scores.topk(min(hi, self.num_items), dim=1).indices
        hi_q = num_valid.clamp(max=hi)
        lo_q = torch.minimum(torch.full_like(hi_q, lo), hi_q - 1).clamp(min=0)
        offset = torch.arange(hi - lo)
        band = top.new_empty(num_queries, hi - lo)
        step = rows_per_block(hi - lo, BLOCK_SIZE)
        for row in range(0, num_queries, step):
            pos = lo_q[row:row + step].unsqueeze(1) + offset
            torch.gather(top[row:row + step], 1,
                         pos.clamp_(max=top.size(1) - 1),
                         out=band[row:row + step])
        width = (hi_q - lo_q).clamp(min=0)
        return band, width.masked_fill(num_valid == 0, 0)

    def precompute(self) -> 'HardNegativeSampler':
        r"""Computes the band of every item once (:math:`O(I \cdot (hi -
        lo))` memory), after which sampling is a lookup; the draws are the
        same as without it. Returns :obj:`self`."""
        bands = [
            self._band_chunk(chunk)
            for chunk in torch.arange(self.num_queries).split(
                self.chunk_size)
        ]
        self._bands = (cat_blocks([b for b, _ in bands]).view(
            self.num_queries, -1), cat_blocks([w for _, w in bands]))
        return self

    def _sample_chunk(self, queries: Tensor, num_negatives: int,
                      generator: Optional[torch.Generator]) -> Tensor:
        if self._bands is not None:
            width = self._bands[1].index_select(0, queries)
        else:
            band, width = self._band_chunk(queries)
        rand = torch.rand(queries.numel(), num_negatives, dtype=torch.float64,
                          generator=generator)
        span = width.clamp(min=1).unsqueeze(1)
        pick = (rand * span).long().clamp(max=span - 1)
        if self._bands is not None:
            # The picked entries only, not the whole rows of the bands.
            bands = self._bands[0]
            out = bands.take(pick.add_(queries.unsqueeze(1) * bands.size(1)))
        else:
            out = band.gather(1, pick)
        none = width == 0
        if bool(none.any()):
            out[none] = torch.randint(self.num_items,
                                      (int(none.sum()), num_negatives),
                                      generator=generator)
        return out

    def __call__(self, query_items: Tensor, num_negatives: int,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        r"""Samples :obj:`num_negatives` hard negatives per query item,
        :obj:`[Q, num_negatives]`."""
        queries = self._check_queries(query_items)
        if int(num_negatives) != num_negatives or num_negatives < 0:
            raise ValueError(f"'num_negatives' must be a non-negative integer "
                             f"(got {num_negatives})")
        if queries.numel() == 0 or num_negatives == 0:
            return torch.zeros(queries.numel(), int(num_negatives),
                               dtype=torch.long)
        return torch.cat([
            self._sample_chunk(chunk, int(num_negatives), generator)
            for chunk in queries.split(self.chunk_size)
        ])

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_items={self.num_items}, '
                f'band={self.band}, alpha={self.alpha}, num_iterations='
                f'{self.num_iterations})')


def personalized_pagerank(index: Tensor, num_users: int, num_items: int,
                          query_items: Tensor, alpha: float = 0.5,
                          num_iterations: int = 4) -> Tensor:
    r"""Personalised PageRank :obj:`[Q, num_items]` from every query item on
    the item -> user -> item walk graph (see :class:`HardNegativeSampler`).
    """
    return HardNegativeSampler(index, num_users, num_items, alpha=alpha,
                               num_iterations=num_iterations).pagerank(
                                   query_items)


def hard_negatives(index: Tensor, num_users: int, num_items: int,
                   query_items: Tensor, num_negatives: int,
                   rank_range: RankRange = DEFAULT_RANK_RANGE,
                   generator: Optional[torch.Generator] = None,
                   **kwargs) -> Tensor:
    r"""One-off form of :class:`HardNegativeSampler`: :obj:`num_negatives`
    items per query ranked in :obj:`rank_range` by PPR from the query."""
    sampler = HardNegativeSampler(index, num_users, num_items, rank_range,
                                  **kwargs)
    return sampler(query_items, num_negatives, generator)
