r"""A graph whose rows are split across :mod:`torch.distributed` ranks.

Every rank owns some nodes (contiguous ranges of node ids, balanced by
edges), their rows of the adjacency and their rows of every node table. A
rank's rows of the adjacency form an :math:`n \times (n + h)` CSR matrix
whose first :math:`n` columns are its own nodes (in its local order) and
whose last :math:`h` columns are the *halo*: the remote nodes its rows
reach. :meth:`GraphPartition.gather` fetches the halo rows of a node table
from their owners with one :func:`torch.distributed.all_to_all_single`, so
that one product is the core's sparse product on the local block
(:class:`~pyg_lightgode.nn.conv.LightGODEConv` takes the partition as its
:obj:`partition` argument).

Every function of this module that takes a process group is collective:
all ranks call it, in the same order.
"""
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor

from pyg_lightgode.data.bipartite import check_interactions, quiet_sparse_csr
from pyg_lightgode.nn.filters.operators import inv_degree_power
from pyg_lightgode.sampler.random_walk import to_csr

#: What the collectives of this package moved since the last
#: :func:`reset_comm_stats`: calls, bytes sent plus received by this rank,
#: and seconds spent in them (for the benchmarks' communication cost).
COMM_STATS: Dict[str, float] = {'calls': 0, 'bytes': 0, 'seconds': 0.0}


def reset_comm_stats() -> Dict[str, float]:
    r"""Returns a copy of :obj:`COMM_STATS` and sets it to zero."""
    out = dict(COMM_STATS)
    COMM_STATS.update(calls=0, bytes=0, seconds=0.0)
    return out


def count_comm(num_bytes: int, begin: float) -> None:
    r"""Adds one collective of :obj:`num_bytes` that started at
    :obj:`begin` (:func:`time.perf_counter`) to :obj:`COMM_STATS`."""
    COMM_STATS['calls'] += 1
    COMM_STATS['bytes'] += num_bytes
    COMM_STATS['seconds'] += time.perf_counter() - begin


def _world(group=None):
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def collective_device(group=None) -> torch.device:
    r"""The device collectives of :obj:`group` need: the current CUDA device
    under NCCL, the CPU otherwise."""
    if dist.is_available() and dist.is_initialized() and \
            dist.get_backend(group) == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def edge_balanced_bounds(degree: Tensor, world_size: int) -> List[int]:
    r"""Splits nodes :obj:`0..N-1` into :obj:`world_size` contiguous ranges
    :obj:`[bounds[r], bounds[r + 1])` of about equal cost, a node costing
    its degree plus one (its table row).

    Shapes:
        - **input:** degrees :math:`(N)`
        - **output:** :math:`W + 1` bounds, :obj:`bounds[0] = 0`,
          :obj:`bounds[W] = N`
    """
    if world_size < 1:
        raise ValueError(f"'world_size' must be positive (got {world_size})")
    num_nodes = degree.numel()
    if num_nodes == 0:
        return [0] * (world_size + 1)
    cost = torch.cumsum(degree.double() + 1, 0)
    targets = cost[-1] * torch.arange(1, world_size, dtype=torch.float64) \
        / world_size
    bounds = [0]
    for target, first in zip(targets.tolist(),
                             torch.searchsorted(cost, targets).tolist()):
        # Cut before or after the node whose cumulative cost first reaches
        # the target, whichever is closer to it.
        below = float(cost[first - 1]) if first > 0 else 0.0
        cut = first + 1 if float(cost[first]) - target <= target - below \
            else first
        bounds.append(max(bounds[-1], min(cut, num_nodes)))
    return bounds + [num_nodes]


@dataclass
class NodeSplit:
    r"""Which rank owns which node: node ids are cut into contiguous
    segments (sorted by start), each owned by one rank and placed at an
    offset of its owner's local rows. :func:`bipartite_split` builds the
    usual one (users and items each split by edges)."""
    #: First node id of every segment :obj:`[S]` (ascending).
    starts: Tensor
    #: Owner of every segment :obj:`[S]`.
    owners: Tensor
    #: Local row of every segment's first node on its owner :obj:`[S]`.
    offsets: Tensor
    #: Number of nodes.
    num_nodes: int
    world_size: int

    @classmethod
    def from_segments(cls, segments: Sequence[tuple], num_nodes: int,
                      world_size: int) -> 'NodeSplit':
        r"""From :obj:`(start, end, owner)` segments covering
        :obj:`0..num_nodes-1`, each owner's in its local order; empty
        segments are dropped (they would shadow a neighbour's start)."""
        offsets, rows = [], [0] * world_size
        for start, end, owner in segments:
            offsets.append(rows[owner])
            rows[owner] += end - start
        kept = sorted((start, owner, offset) for (start, end, owner), offset
                      in zip(segments, offsets) if end > start)
        return cls(torch.tensor([k[0] for k in kept], dtype=torch.long),
                   torch.tensor([k[1] for k in kept], dtype=torch.long),
                   torch.tensor([k[2] for k in kept], dtype=torch.long),
                   int(num_nodes), world_size)

    @classmethod
    def contiguous(cls, bounds: Sequence[int]) -> 'NodeSplit':
        r"""Rank :obj:`r` owns nodes :obj:`bounds[r]..bounds[r + 1] - 1`."""
        world_size = len(bounds) - 1
        return cls.from_segments([(bounds[r], bounds[r + 1], r)
                                  for r in range(world_size)],
                                 bounds[-1], world_size)

    def segment(self, ids: Tensor) -> Tensor:
        return torch.bucketize(ids, self.starts, right=True) - 1

    def owner(self, ids: Tensor) -> Tensor:
        r"""The rank owning each node of :obj:`ids`."""
        return self.owners[self.segment(ids)]

    def local(self, ids: Tensor) -> Tensor:
        r"""Each node's row on its owner."""
        seg = self.segment(ids)
        return ids - self.starts[seg] + self.offsets[seg]

    def ranges(self, rank: int) -> List[tuple]:
        r"""The :obj:`(start, end)` node ranges rank :obj:`rank` owns, in
        its local order."""
        ends = torch.cat([self.starts[1:], torch.tensor([self.num_nodes])])
        segs = (self.owners == rank).nonzero().flatten().tolist()
        segs.sort(key=lambda s: int(self.offsets[s]))
        return [(int(self.starts[s]), int(ends[s])) for s in segs]

    def nodes(self, rank: int) -> Tensor:
        r"""The global ids of rank :obj:`rank`'s nodes, in local order."""
        parts = [torch.arange(s, e) for s, e in self.ranges(rank)]
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)

    def num_local(self, rank: int) -> int:
        return sum(e - s for s, e in self.ranges(rank))

    def take(self, table: Tensor, rank: int) -> Tensor:
        r"""Rank :obj:`rank`'s rows of a full node table (for tests and for
        tables every rank can read)."""
        return torch.cat([table[s:e] for s, e in self.ranges(rank)])


def bipartite_split(index: Optional[Tensor], num_users: int,
                    num_items: int, world_size: int,
                    degree: Optional[Tensor] = None) -> NodeSplit:
    r"""Users (nodes :obj:`0..U-1`) and items (:obj:`U..U+I-1`) each split
    into :obj:`world_size` contiguous ranges balanced by edges; rank
    :obj:`r` holds its users first, then its items. The degrees come from
    the interactions :obj:`index` or are given as :obj:`degree` (users then
    items)."""
    if degree is None:
        degree = torch.cat([torch.bincount(index[0], minlength=num_users),
                            torch.bincount(index[1], minlength=num_items)])
    user_deg, item_deg = degree[:num_users], degree[num_users:]
    ub = edge_balanced_bounds(user_deg, world_size)
    ib = edge_balanced_bounds(item_deg, world_size)
    segments = []
    for r in range(world_size):  # Each rank: its users, then its items.
        segments += [(ub[r], ub[r + 1], r),
                     (num_users + ib[r], num_users + ib[r + 1], r)]
    return NodeSplit.from_segments(segments, num_users + num_items,
                                   world_size)


@dataclass
class GraphPartition:
    r"""This rank's rows of a graph split by a :class:`NodeSplit`: the local
    block :obj:`adj` :obj:`[n, n + h]` (CSR, values as given), the global
    ids of the :obj:`halo` columns, and the plan of the halo exchange.
    Implements the :class:`~pyg_lightgode.nn.conv.utils.Partition` protocol.
    :obj:`stats` counts the exchanges, their bytes and seconds."""
    split: NodeSplit
    rank: int
    adj: Tensor
    halo: Tensor
    recv_splits: List[int]
    send_index: Tensor
    send_splits: List[int]
    group: Optional[object] = None
    stats: Dict[str, float] = field(default_factory=lambda: {
        'exchanges': 0, 'bytes': 0, 'seconds': 0.0})

    @property
    def num_local(self) -> int:
        return self.adj.size(0)

    @property
    def nodes(self) -> Tensor:
        return self.split.nodes(self.rank)

    def gather(self, x: Tensor) -> Tensor:
        r"""This rank's rows :obj:`x` :obj:`[n, F]` followed by the halo
        rows :obj:`[h, F]` fetched from their owners."""
        if self.split.world_size == 1:
            return x
        begin = time.perf_counter()
        device = collective_device(self.group)
        send = x.index_select(0, self.send_index.to(x.device)).to(device)
        n = x.size(0)
        if device == x.device:  # Received straight behind the own rows.
            out = x.new_empty((n + self.halo.numel(), ) + x.shape[1:])
            out[:n] = x
            recv = out[n:]
        else:
            recv = send.new_empty((self.halo.numel(), ) + x.shape[1:])
        dist.all_to_all_single(recv, send.contiguous(), self.recv_splits,
                               self.send_splits, group=self.group)
        num_bytes = (send.numel() + recv.numel()) * send.element_size()
        self.stats['exchanges'] += 1
        self.stats['bytes'] += num_bytes
        self.stats['seconds'] += time.perf_counter() - begin
        count_comm(num_bytes, begin)
        if device == x.device:
            return out
        return torch.cat([x, recv.to(x.device)])

    def all_reduce(self, value: Tensor) -> Tensor:
        r"""The sum of :obj:`value` over all ranks."""
        return all_reduce(value, self.group)

    def to(self, device) -> 'GraphPartition':
        r"""This partition with its block and exchange plan on
        :obj:`device` (*e.g.* the rank's GPU under NCCL)."""
        return GraphPartition(self.split, self.rank, self.adj.to(device),
                              self.halo, self.recv_splits,
                              self.send_index.to(device), self.send_splits,
                              self.group, self.stats)

    def entries(self):
        r"""The global :obj:`(row, col)` ids of this rank's entries."""
        crow, col = self.adj.crow_indices(), self.adj.col_indices()
        row = torch.repeat_interleave(self.nodes, crow[1:] - crow[:-1])
        ids = torch.cat([self.nodes, self.halo])
        return row, ids[col]


def all_reduce(value: Tensor, group=None) -> Tensor:
    r"""The sum of :obj:`value` over the ranks of :obj:`group` (a copy;
    identity without a process group)."""
    if _world(group)[1] == 1:
        return value
    begin = time.perf_counter()
    out = value.to(collective_device(group), copy=True)
    dist.all_reduce(out, group=group)
    count_comm(2 * out.numel() * out.element_size(), begin)
    return out.to(value.device)


def partition_rows(row: Tensor, col: Tensor, value: Tensor,
                   split: NodeSplit, group=None) -> GraphPartition:
    r"""This rank's :class:`GraphPartition` of the matrix with entries
    :obj:`(row, col, value)` over the nodes of :obj:`split` (collective).
    Entries of rows other ranks own are dropped, so a rank may pass all
    entries or only its own; duplicates are kept (products add them up) and
    the order of the entries within a row is kept."""
    return _partition_entries([row, col, value], split, group)


def _partition_entries(entries: List[Tensor], split: NodeSplit,
                       group=None) -> GraphPartition:
    r""":func:`partition_rows` of :obj:`entries = [row, col, value]`,
    which it empties, so that a caller handing over its only references
    lets every array go as soon as it is used."""
    row, col, value = entries
    entries.clear()
    rank, world_size = _world(group)
    if world_size != split.world_size:
        raise ValueError(f"The split is for {split.world_size} ranks, the "
                         f"process group has {world_size}")
    mine = split.owner(row) == rank
    if not bool(mine.all()):  # Copies only when other ranks' rows came.
        row, col, value = row[mine], col[mine], value[mine]
    del mine
    n = split.num_local(rank)
    own_col = split.owner(col) == rank
    # The halo ordered by (owner, id): each owner's rows are contiguous.
    halo = torch.unique(col[~own_col])
    halo_owner = split.owner(halo)
    order = torch.argsort(halo_owner * split.num_nodes + halo)
    halo, halo_owner = halo[order], halo_owner[order]
    new_col = torch.empty_like(col)
    new_col[own_col] = split.local(col[own_col])
    sorted_halo, perm = torch.sort(halo)
    new_col[~own_col] = n + perm[torch.searchsorted(sorted_halo,
                                                    col[~own_col])]
    del own_col, sorted_halo, perm, order, col
    rowptr, eid = to_csr(split.local(row), torch.arange(row.numel()), n)
    del row
    new_col = new_col[eid]
    value = value[eid]
    del eid
    with quiet_sparse_csr():
        adj = torch.sparse_csr_tensor(rowptr, new_col, value,
                                      size=(n, n + halo.numel()))
    recv_splits = torch.bincount(halo_owner, minlength=world_size)
    if world_size == 1:
        return GraphPartition(split, rank, adj, halo, recv_splits.tolist(),
                              torch.empty(0, dtype=torch.long), [0], group)
    device = collective_device(group)
    send_splits = torch.empty_like(recv_splits, device=device)
    dist.all_to_all_single(send_splits, recv_splits.to(device), group=group)
    send_splits = send_splits.cpu()
    requested = torch.empty(int(send_splits.sum()), dtype=torch.long,
                            device=device)
    dist.all_to_all_single(requested, halo.to(device),
                           send_splits.tolist(), recv_splits.tolist(),
                           group=group)
    return GraphPartition(split, rank, adj, halo, recv_splits.tolist(),
                          split.local(requested.cpu()), send_splits.tolist(),
                          group)


Interactions = Union[Tensor, Callable[[], Iterable[Tensor]]]


def _chunks(index: Interactions, num_users: int,
            num_items: int) -> Iterable[Tensor]:
    if isinstance(index, Tensor):
        return [check_interactions(index, num_users, num_items)]
    return (check_interactions(c, num_users, num_items) for c in index())


def partition_bipartite(index: Interactions, num_users: int, num_items: int,
                        split: Optional[NodeSplit] = None,
                        dtype: torch.dtype = torch.float32,
                        normalize: bool = True,
                        group=None) -> GraphPartition:
    r"""This rank's rows of LightGCN's normalised adjacency
    :math:`\hat{A} = D^{-1/2} A D^{-1/2}` of the bipartite graph (users then
    items, both directions, no self-loops; the
    :func:`~torch_geometric.nn.conv.gcn_norm` of
    :func:`~pyg_lightgode.data.bipartite.bipartite_to_adj_t`), for
    :class:`~pyg_lightgode.nn.conv.LightGODEConv` with
    :obj:`normalize=False` (collective). Only the interactions touching this
    rank's nodes are kept; the degrees come from all of :obj:`index`.

    Args:
        index (torch.Tensor or callable): Interactions :obj:`[2, E]`, users
            in row 0, or a function returning an iterator over chunks
            :obj:`[2, E_c]` of them (read twice: degrees, then this rank's
            entries), so that no rank holds all interactions.
        num_users (int): Number of users.
        num_items (int): Number of items.
        split (NodeSplit, optional): Who owns which node (default:
            :func:`bipartite_split`).
        dtype (torch.dtype, optional): Of the values.
        normalize (bool, optional): If :obj:`False`, every entry is 1 (the
            plain adjacency, *e.g.* as PinSage's neighbourhood graph).
    """
    num_nodes = num_users + num_items
    degree = torch.zeros(num_nodes, dtype=torch.long)
    for chunk in _chunks(index, num_users, num_items):
        degree += torch.bincount(torch.cat([chunk[0], chunk[1] + num_users]),
                                 minlength=num_nodes)
    if split is None:
        split = bipartite_split(None, num_users, num_items,
                                _world(group)[1], degree)
    rank = _world(group)[0]
    rows, cols = [], []
    for chunk in _chunks(index, num_users, num_items):
        user, item = chunk[0], chunk[1] + num_users
        mine_u = split.owner(user) == rank  # user rows: user -> item
        mine_i = split.owner(item) == rank  # item rows: item -> user
        rows += [user[mine_u], item[mine_i]]
        cols += [item[mine_u], user[mine_i]]
    row, col = torch.cat(rows), torch.cat(cols)
    del rows, cols
    if normalize:
        inv_sqrt = inv_degree_power(degree.to(dtype), 0.5)
        value = inv_sqrt[row] * inv_sqrt[col]
    else:
        value = torch.ones(row.numel(), dtype=dtype)
    entries = [row, col, value]
    del degree, row, col, value
    return _partition_entries(entries, split, group)
