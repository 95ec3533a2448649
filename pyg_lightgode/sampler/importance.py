r"""Importance-based neighbourhoods of PinSage: the top-:math:`T`
nodes most visited by short random walks from a seed, weighted by their
visit counts.

Output format (consumed by :class:`~pyg_lightgode.nn.conv.PinSAGEConv`): a
pair :obj:`(edge_index, edge_weight)` with :obj:`edge_index` a :obj:`[2, E]`
long tensor of edges *neighbour -> seed* (row 0 the neighbour, row 1 the
seed) and :obj:`edge_weight` an :obj:`[E]` float tensor (raw visit counts, or
L1-normalised per seed with :obj:`normalize=True`). Edges are grouped by seed
in the order of the seeds and, within a seed, sorted by decreasing weight
(ties: larger node id first, as DGL).
"""
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from pyg_lightgode.data.bipartite import bipartite_to_homogeneous
from pyg_lightgode.sampler.random_walk import (
    BLOCK_SIZE,
    CSR,
    WalkHop,
    bipartite_csr,
    cat_blocks,
    check_walk_args,
    prepare_hops,
    rows_per_block,
    to_csr,
    walk_steps,
)


def l1_normalize(weight: Tensor, group: Tensor, num_groups: int) -> Tensor:
    r"""Divides every weight by the sum of the weights of its group."""
    total = scatter(weight, group, dim=0, dim_size=num_groups, reduce='sum')
    total = total.clamp_min(torch.finfo(weight.dtype).tiny)
    return weight / total.index_select(0, group)


def topk_visits(seed_pos: Tensor, visited: Tensor, num_seeds: int,
                num_nodes: int, top_k: int) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Counts the visits of every :obj:`(seed_pos, visited)` pair and keeps,
    per seed, the :obj:`top_k` most visited nodes (ties: larger node id).
    Entries of :obj:`visited` that are negative (ended walks) are ignored.

    Returns:
        :obj:`(seed_pos, node, count)`, grouped by increasing seed position,
        decreasing count within a seed.
    """
    valid = visited >= 0
    key = seed_pos.masked_select(valid) * num_nodes + visited.masked_select(
        valid)
    key, count = torch.unique(key, return_counts=True)  # sorted (seed, node)
    # Reversed, so a stable sort on (seed asc, count desc) leaves equal
    # counts in decreasing node order; the seed order is restored by the sort.
    key, count = key.flip(0), count.flip(0)
    seed_pos, node = key.div(num_nodes, rounding_mode='floor'), key % num_nodes
    span = int(count.max()) + 1 if count.numel() > 0 else 1
    order = torch.argsort(seed_pos * span + (span - 1 - count), stable=True)
    seed_pos, node, count = (t.index_select(0, order)
                             for t in (seed_pos, node, count))
    ptr = torch.zeros(num_seeds + 1, dtype=torch.long)
    torch.cumsum(torch.bincount(seed_pos, minlength=num_seeds), 0,
                 out=ptr[1:])
    rank = torch.arange(seed_pos.numel()) - ptr.index_select(0, seed_pos)
    keep = rank < top_k
    return tuple(t.masked_select(keep) for t in (seed_pos, node, count))


def top_visits(visits: Tensor, num_nodes: int, top_k: int,
               seeds: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The :obj:`top_k` most visited nodes of every row of :obj:`visits`
    :obj:`[S, M]` (shifted ids: node :obj:`v` as :obj:`v + 1`, :obj:`0`
    for no visit), ties broken by the larger node id. Visits of a row to
    its seed are dropped first if the shifted :obj:`seeds` :obj:`[S]` are
    given.

    Dense and of fixed size per row: the rows are sorted, every run of
    equal ids counted, and :func:`torch.topk` takes the :obj:`top_k`
    largest keys :obj:`count * (num_nodes + 2) + id` per row, which orders
    by count, then id; no global sort, no data read back to Python.

    Returns:
        :obj:`(row, node, count)`, grouped by increasing row, decreasing
        count within a row.
    """
    num_rows, width = visits.shape
    if seeds is not None:
        visits = visits.masked_fill(visits == seeds.view(-1, 1), 0)
    visits = visits.sort(dim=1).values
    if width == 0:
        empty = visits.new_empty(0, dtype=torch.long)
        return empty, empty, empty
    last = torch.ones_like(visits, dtype=torch.bool)  # last of its run
    last[:, :-1] = visits[:, 1:] != visits[:, :-1]
    first = torch.ones_like(last)
    first[:, 1:] = last[:, :-1]
    col = torch.arange(width, dtype=visits.dtype).expand(num_rows, width)
    # Position of the end of the run of every entry: a reversed cummin.
    end = torch.where(last, col, width).flip(1).cummin(1).values.flip(1)
    count = (end - col + 1).long()
    key = torch.where(first & (visits > 0),
                      count * (num_nodes + 2) + visits, -1)
    key = key.topk(min(int(top_k), width), dim=1).values
    keep = key > 0
    row = torch.arange(num_rows).view(-1, 1).expand_as(key).masked_select(
        keep)
    key = key.masked_select(keep)
    return (row, key.remainder(num_nodes + 2) - 1,
            key.div(num_nodes + 2, rounding_mode='floor'))


def importance_neighbors(visits: Tensor, seeds: Tensor, num_nodes: int,
                         top_k: int, exclude_seed: bool = False,
                         normalize: bool = False) -> Tuple[Tensor, Tensor]:
    r"""Importance neighbourhoods from the visits of random walks.

    Args:
        visits (torch.Tensor): :obj:`[S, M]` nodes visited by the walks of
            seed :obj:`seeds[s]` (start positions excluded), :obj:`-1` for
            none.
        seeds (torch.Tensor): :obj:`[S]` seed node ids.
        num_nodes (int): Number of nodes the visits range over.
        top_k (int): Neighbours kept per seed (:math:`T`).
        exclude_seed (bool): Drop visits of a seed to itself before ranking.
        normalize (bool): L1-normalise the weights per seed.

    Returns:
        :obj:`(edge_index, edge_weight)`, edges neighbour -> seed.
    """
    check_top_k(top_k)
    if visits.dim() != 2 or visits.size(0) != seeds.numel():
        raise ValueError(f"'visits' must have shape [len(seeds)="
                         f"{seeds.numel()}, M] (got {list(visits.shape)})")
    seeds = seeds.long().view(-1)
    seed_pos, node, count = top_visits(
        visits.long() + 1, num_nodes, top_k,
        seeds + 1 if exclude_seed else None)
    weight = count.to(torch.float)
    if normalize:
        weight = l1_normalize(weight, seed_pos, seeds.numel())
    return torch.stack([node, seeds.index_select(0, seed_pos)]), weight


def check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or int(top_k) != top_k or top_k <= 0:
        raise ValueError(f"'top_k' must be a positive integer (got {top_k})")


class ImportanceNeighborhood:
    r"""Samples PinSage importance neighbourhoods: from every seed,
    :obj:`num_walks` random walks of at most :obj:`num_traversals`
    traversals (item -> user -> item on a user--item graph, one step on a
    homogeneous graph), terminating with probability :obj:`restart_prob`
    after each traversal; the nodes reached at the end of the traversals
    are counted and the :obj:`top_k` most visited are the neighbours, their
    visit counts the weights

    .. math::
        \alpha_{v \to u} = \frac{c_u(v)}{\sum_{w \in N(u)} c_u(w)}
        \quad \text{(with } \texttt{normalize=True}\text{)},

    which approximate personalised PageRank from :math:`u` as the number of
    walks grows.

    The defaults are those of DGL's PinSAGE example (at most 2 traversals,
    termination probability 0.5, 10 walks, :math:`T = 3`, raw counts, the
    seed not removed, ties broken by larger node id). The paper uses
    :math:`T \in \{10, 20, 50\}` (50 best).

    Args:
        index (torch.Tensor): User--item interactions :obj:`[2, E]`.
        num_users (int): Number of users.
        num_items (int): Number of items; seeds and neighbours are items.
        num_walks (int): Walks per seed. (default: :obj:`10`)
        num_traversals (int): Maximum traversals per walk.
            (default: :obj:`2`)
        restart_prob (float): Termination probability in :math:`[0, 1)`
            checked after each traversal. (default: :obj:`0.5`)
        top_k (int): Neighbours per seed :math:`T`. (default: :obj:`3`)
        exclude_seed (bool): Do not count a walk's returns to its seed.
            (default: :obj:`False`)
        normalize (bool): L1-normalise the weights per seed; otherwise raw
            visit counts. (default: :obj:`False`)

    Use :meth:`from_edge_index` for a homogeneous graph, and
    :obj:`ImportanceNeighborhood(index.flip(0), num_items, num_users)` for
    the neighbourhoods of users (walks user -> item -> user).

    Shapes:
        - **input:** seeds :math:`(S)`
        - **output:** edge_index :math:`(2, E)`, edge_weight :math:`(E)`,
          :math:`E \le S \cdot T`
    """
    def __init__(self, index: Tensor, num_users: int, num_items: int,
                 num_walks: int = 10, num_traversals: int = 2,
                 restart_prob: float = 0.5, top_k: int = 3,
                 exclude_seed: bool = False, normalize: bool = False):
        if isinstance(index, Tensor) and index.dim() == 2 and index.size(
                1) == 0:
            raise ValueError("'index' is empty: importance neighbourhoods "
                             "need at least one interaction")
        self._setup(list(bipartite_csr(index, num_users, num_items)),
                    num_items, num_walks, num_traversals, restart_prob,
                    top_k, exclude_seed, normalize)

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int,
                        **kwargs) -> 'ImportanceNeighborhood':
        r"""Importance neighbourhoods on a homogeneous graph with directed
        edges :obj:`edge_index[0] -> edge_index[1]` (pass both directions
        for an undirected graph); one traversal is one step. Takes the
        keyword arguments of the constructor."""
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or \
                edge_index.size(0) != 2 or edge_index.dtype.is_floating_point:
            raise ValueError(f"'edge_index' must be an integer tensor of shape"
                             f" [2, E] (got "
                             f"{getattr(edge_index, 'shape', edge_index)})")
        if num_nodes <= 0 or edge_index.size(1) == 0:
            raise ValueError(f"the graph is empty (num_nodes={num_nodes}, "
                             f"{edge_index.size(1)} edges)")
        edge_index = edge_index.long()
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"'edge_index' holds node ids in [{lo}, {hi}], "
                             f"outside [0, {num_nodes - 1}]")
        self = cls.__new__(cls)
        self._setup([to_csr(edge_index[0], edge_index[1], num_nodes)],
                    num_nodes, **kwargs)
        return self

    @classmethod
    def user_item(cls, index: Tensor, num_users: int, num_items: int,
                  mixed: bool = False, **kwargs) -> 'ImportanceNeighborhood':
        r"""Importance neighbourhoods of users AND items on the bipartite
        graph of :obj:`num_users + num_items` nodes (users first, items
        offset by :obj:`num_users`, as
        :func:`~pyg_lightgode.data.bipartite.bipartite_to_homogeneous`).

        With :obj:`mixed=False` a traversal is two hops, so a user's
        neighbours are users (walks :obj:`user -> item -> user`) and an
        item's are items (:obj:`item -> user -> item`), the paper's
        neighbourhoods on both sides. With :obj:`mixed=True` a traversal is
        one hop and every node a walk reaches counts: a user's neighbours
        are its most important items *and* users (and likewise for items);
        :obj:`num_traversals` then counts single hops. Takes the keyword
        arguments of the constructor."""
        if isinstance(index, Tensor) and index.dim() == 2 and index.size(
                1) == 0:
            raise ValueError("'index' is empty: importance neighbourhoods "
                             "need at least one interaction")
        edge_index = bipartite_to_homogeneous(index, num_users, num_items)
        num_nodes = int(num_users) + int(num_items)
        csr = to_csr(edge_index[0], edge_index[1], num_nodes)
        self = cls.__new__(cls)
        self._setup([csr] if mixed else [csr, csr], num_nodes, **kwargs)
        return self

    def _setup(self, hops: Sequence[CSR], num_nodes: int, num_walks: int = 10,
               num_traversals: int = 2, restart_prob: float = 0.5,
               top_k: int = 3, exclude_seed: bool = False,
               normalize: bool = False):
        check_walk_args(torch.empty(0, dtype=torch.long), num_nodes,
                        num_traversals, restart_prob, num_walks)
        check_top_k(top_k)
        self.hops: List[WalkHop] = prepare_hops(hops)
        self.num_nodes = int(num_nodes)
        self.num_walks = int(num_walks)
        self.num_traversals = int(num_traversals)
        self.restart_prob = float(restart_prob)
        self.top_k = int(top_k)
        self.exclude_seed = bool(exclude_seed)
        self.normalize = bool(normalize)

    def _walk_blocks(self, seeds: Tensor,
                     generator: Optional[torch.Generator]
                     ) -> Iterator[Tuple[int, Tensor, Tensor]]:
        r"""Walks from :obj:`seeds` in blocks of at most :data:`BLOCK_SIZE`
        visits and yields :obj:`(offset, block, visits)` per block: the
        shifted seeds :obj:`block` (id :obj:`+ 1`) from position
        :obj:`offset` on, and :obj:`visits` :obj:`[S, num_walks *
        num_traversals]`, the shifted nodes reached at the end of the
        traversals of their walks (walk :obj:`w`, traversal :obj:`t` in
        column :obj:`w * num_traversals + t`; :obj:`0` for none)."""
        step, walks = len(self.hops), self.num_walks
        width = walks * self.num_traversals
        per_block = rows_per_block(width, BLOCK_SIZE)
        dtype = self.hops[0].col.dtype
        for offset in range(0, seeds.numel(), per_block):
            block = seeds[offset:offset + per_block].to(dtype).add_(1)
            cur = block.repeat_interleave(walks)
            ends = [
                cur for position, cur in walk_steps(
                    self.hops, cur, self.num_traversals, self.restart_prob,
                    generator) if position % step == 0
            ]
            visits = torch.stack(ends, dim=1) if ends else cur.new_empty(
                cur.numel(), 0)
            yield offset, block, visits.view(block.numel(), width)

    def blocks(self, seeds: Tensor, top_k: Optional[int] = None,
               generator: Optional[torch.Generator] = None,
               normalize: Optional[bool] = None
               ) -> Iterator[Tuple[int, int, Tensor, Tensor, Tensor]]:
        r"""The neighbourhoods of :obj:`seeds` block by block (every seed's
        whole neighbourhood in one block): yields :obj:`(offset, size, row,
        neighbour, weight)` for the :obj:`size` seeds from position
        :obj:`offset` on, :obj:`row` the target's position in the block,
        edges grouped by row and ranked as :func:`top_visits`. Every
        operation works on at most about :data:`BLOCK_SIZE` elements."""
        seeds = check_walk_args(seeds, self.num_nodes, self.num_traversals,
                                self.restart_prob, name='seeds')
        return self._blocks(seeds, top_k, generator, normalize)

    def _blocks(self, seeds: Tensor, top_k: Optional[int],
                generator: Optional[torch.Generator],
                normalize: Optional[bool]
                ) -> Iterator[Tuple[int, int, Tensor, Tensor, Tensor]]:
        top_k = self.top_k if top_k is None else top_k
        check_top_k(top_k)
        normalize = self.normalize if normalize is None else normalize
        for offset, block, visits in self._walk_blocks(seeds, generator):
            row, node, count = top_visits(
                visits, self.num_nodes, top_k,
                block if self.exclude_seed else None)
            weight = count.to(torch.float)
            if normalize:
                weight = l1_normalize(weight, row, block.numel())
            yield offset, block.numel(), row, node, weight

    def visits(self, seeds: Tensor,
               generator: Optional[torch.Generator] = None) -> Tensor:
        r"""The nodes reached at the end of every traversal of every walk,
        :obj:`[S, num_walks * num_traversals]` (walk :obj:`w`, traversal
        :obj:`t` in column :obj:`w * num_traversals + t`), :obj:`-1` for
        none."""
        seeds = check_walk_args(seeds, self.num_nodes, self.num_traversals,
                                self.restart_prob, name='seeds')
        width = self.num_walks * self.num_traversals
        parts = [v.view(-1) for _, _, v in self._walk_blocks(seeds,
                                                             generator)]
        return cat_blocks(parts).view(seeds.numel(), width).sub_(1)

    def sample_positions(
        self, seeds: Tensor, top_k: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        normalize: Optional[bool] = None
    ) -> Tuple[Tensor, Tensor, Tensor]:
        r"""Like :meth:`__call__` but returns :obj:`(seed_pos, neighbour,
        weight)` with :obj:`seed_pos` the position in :obj:`seeds` (so
        repeated seeds keep separate neighbourhoods)."""
        rows, nodes, weights = [], [], []
        for offset, _, row, node, weight in self.blocks(
                seeds, top_k, generator, normalize):
            rows.append(row.add_(offset))
            nodes.append(node)
            weights.append(weight)
        return (cat_blocks(rows), cat_blocks(nodes),
                cat_blocks(weights, dtype=torch.float))

    def __call__(self, seeds: Tensor,
                 generator: Optional[torch.Generator] = None,
                 top_k: Optional[int] = None) -> Tuple[Tensor, Tensor]:
        r"""Importance neighbourhoods of :obj:`seeds` as
        :obj:`(edge_index, edge_weight)`, edges neighbour -> seed."""
        targets, nodes, weights = [], [], []
        seeds = check_walk_args(seeds, self.num_nodes, self.num_traversals,
                                self.restart_prob, name='seeds')
        for offset, _, row, node, weight in self._blocks(
                seeds, top_k, generator, None):
            targets.append(seeds[offset:].index_select(0, row))
            nodes.append(node)
            weights.append(weight)
        num_edges = sum(node.numel() for node in nodes)
        edge_index = torch.empty(2, num_edges, dtype=torch.long)
        cat_blocks(nodes, out=edge_index[0])
        cat_blocks(targets, out=edge_index[1])
        return edge_index, cat_blocks(weights, dtype=torch.float)

    def all_neighborhoods(self, generator: Optional[torch.Generator] = None,
                          top_k: Optional[int] = None
                          ) -> Tuple[Tensor, Tensor]:
        r"""The neighbourhoods of all nodes (e.g. every item of the
        catalogue, for layer-wise inference), edges grouped by target in
        increasing order."""
        return self(torch.arange(self.num_nodes), generator, top_k)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_nodes={self.num_nodes}, '
                f'num_walks={self.num_walks}, num_traversals='
                f'{self.num_traversals}, restart_prob={self.restart_prob}, '
                f'top_k={self.top_k}, exclude_seed={self.exclude_seed}, '
                f'normalize={self.normalize})')
