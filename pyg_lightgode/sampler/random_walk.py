r"""Vectorised random walks in pure PyTorch over CSR adjacencies.

All walkers advance together (one tensor operation per hop, a Python loop only
over the steps); there is no loop over nodes. A neighbour is drawn uniformly
as :obj:`col[rowptr[v] + floor(rand * deg(v))]`.

A walk is a sequence of *traversals*. A traversal is a fixed sequence of
hops, each through its own CSR adjacency (a "metapath"):

* homogeneous graph: one hop :obj:`v -> w` per traversal,
* user--item graph: two hops :obj:`item -> user -> item` per traversal
  (built from the item->users and user->items CSRs of the interaction index).

After every traversal but the last, a walker terminates with probability
:obj:`restart_prob` (the termination check of DGL's PinSAGE sampler). A
walker that reaches a node without neighbours (dead end, isolated node)
stops. Positions after the end of a walk hold :obj:`-1`.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.index import index2ptr

from pyg_lightgode.data.bipartite import check_interactions

CSR = Tuple[Tensor, Tensor]


def to_csr(row: Tensor, col: Tensor, num_rows: int) -> CSR:
    r"""Returns :obj:`(rowptr, col)` of the adjacency given as COO
    :obj:`(row, col)` with :obj:`num_rows` rows (order within a row kept)."""
    perm = torch.argsort(row, stable=True)
    return (index2ptr(row.index_select(0, perm), num_rows),
            col.index_select(0, perm))


def bipartite_csr(index: Tensor, num_users: int,
                  num_items: int) -> Tuple[CSR, CSR]:
    r"""The item->users and user->items CSRs of an interaction index
    :obj:`[2, E]` (users in row 0, items in row 1), i.e. the two hops of one
    :obj:`item -> user -> item` traversal."""
    index = check_interactions(index, num_users, num_items)
    return (to_csr(index[1], index[0], num_items),
            to_csr(index[0], index[1], num_users))


def check_csr(rowptr: Tensor, col: Tensor, name: str = 'graph') -> None:
    r"""Raises a :class:`ValueError` unless :obj:`(rowptr, col)` is a valid
    CSR adjacency with at least one row."""
    for arg, t in (('rowptr', rowptr), ('col', col)):
        if not isinstance(t, Tensor) or t.dim() != 1 or t.dtype != torch.long:
            raise ValueError(f"'{arg}' of '{name}' must be a 1-D long tensor "
                             f"(got {getattr(t, 'dtype', type(t))} of shape "
                             f"{list(getattr(t, 'shape', []))})")
    if rowptr.numel() < 2:
        raise ValueError(f"'{name}' is empty: 'rowptr' must describe at "
                         f"least one node (got {rowptr.numel()} entries)")
    if int(rowptr[0]) != 0 or int(rowptr[-1]) != col.numel():
        raise ValueError(f"'rowptr' of '{name}' must start at 0 and end at "
                         f"len(col)={col.numel()} (got {int(rowptr[0])}, "
                         f"{int(rowptr[-1])})")


def check_walk_args(start: Tensor, num_nodes: int, num_traversals: int,
                    restart_prob: float, num_walks: int = 1,
                    name: str = 'start') -> Tensor:
    r"""Validates the common walk arguments and returns :obj:`start` as a
    1-D long tensor."""
    if not isinstance(start, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor of node ids (got "
                        f"{type(start).__name__})")
    if start.dtype.is_floating_point or start.dtype == torch.bool:
        raise ValueError(f"'{name}' must hold integer node ids (got "
                         f"{start.dtype})")
    start = start.long().view(-1)
    if start.numel() > 0:
        lo, hi = int(start.min()), int(start.max())
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"'{name}' holds node ids in [{lo}, {hi}], "
                             f"outside the valid range [0, {num_nodes - 1}]")
    if int(num_traversals) != num_traversals or num_traversals < 0:
        raise ValueError(f"'num_traversals' must be a non-negative integer "
                         f"(got {num_traversals})")
    if int(num_walks) != num_walks or num_walks < 1:
        raise ValueError(f"'num_walks' must be a positive integer (got "
                         f"{num_walks})")
    if not 0.0 <= float(restart_prob) < 1.0:
        raise ValueError(f"'restart_prob' must lie in [0, 1) (got "
                         f"{restart_prob})")
    return start


def _step(rowptr: Tensor, col: Tensor, cur: Tensor, alive: Tensor,
          generator: Optional[torch.Generator]) -> Tensor:
    r"""Moves every alive walker to a uniform random neighbour; walkers on a
    node without neighbours are marked dead in :obj:`alive` (in place)."""
    # index_select / masked_select rather than advanced indexing: the latter
    # is far slower on a busy multi-threaded CPU.
    walkers = alive.nonzero().view(-1)
    node = cur.index_select(0, walkers)
    begin = rowptr.index_select(0, node)
    deg = rowptr.index_select(0, node + 1) - begin
    moves = deg > 0
    if not bool(moves.all()):
        alive.index_fill_(0, walkers.masked_select(~moves), False)
        walkers = walkers.masked_select(moves)
        begin, deg = begin.masked_select(moves), deg.masked_select(moves)
    # float64: exact floor(rand * deg) even for hub nodes.
    rand = torch.rand(walkers.numel(), dtype=torch.float64,
                      generator=generator)
    offset = (rand * deg).long().clamp_(max=deg - 1)
    nxt = col.index_select(0, begin + offset)
    return torch.full_like(cur, -1).index_copy_(0, walkers, nxt)


def metapath_random_walk(hops: Sequence[CSR], start: Tensor,
                         num_traversals: int, restart_prob: float = 0.0,
                         num_walks: int = 1,
                         generator: Optional[torch.Generator] = None
                         ) -> Tensor:
    r"""Random walks of :obj:`num_traversals` traversals, each traversal
    following the CSR adjacencies in :obj:`hops` in turn (the columns of
    hop :math:`h` index the rows of hop :math:`h+1`, and the last hop leads
    back to the node type of the first).

    Args:
        hops (list of (rowptr, col)): The CSR adjacency of every hop of one
            traversal.
        start (torch.Tensor): Start nodes (rows of :obj:`hops[0]`).
        num_traversals (int): Maximum number of traversals per walk.
        restart_prob (float): Termination probability checked after every
            traversal but the last. (default: :obj:`0.0`)
        num_walks (int): Walks per start node. (default: :obj:`1`)
        generator (torch.Generator, optional): Source of randomness.

    Returns:
        A long tensor :obj:`[N * num_walks, num_traversals * len(hops) + 1]`:
        row :obj:`i * num_walks + w` is walk :obj:`w` of :obj:`start[i]`,
        column 0 the start node, column :obj:`t * len(hops) + h + 1` the node
        reached by hop :obj:`h` of traversal :obj:`t`; :obj:`-1` once the walk
        has ended.
    """
    if len(hops) == 0:
        raise ValueError("'hops' must hold at least one CSR adjacency")
    for h, (rowptr, col) in enumerate(hops):
        check_csr(rowptr, col, f'hops[{h}]')
    start = check_walk_args(start, hops[0][0].numel() - 1, num_traversals,
                            restart_prob, num_walks)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"'generator' must be a torch.Generator (got "
                        f"{type(generator).__name__})")

    cur = start.repeat_interleave(int(num_walks))
    num_hops = len(hops)
    trace = cur.new_full((cur.numel(), num_traversals * num_hops + 1), -1)
    trace[:, 0] = cur
    alive = torch.ones(cur.numel(), dtype=torch.bool)
    for t in range(num_traversals):
        if t > 0 and restart_prob > 0:
            alive &= torch.rand(cur.numel(), dtype=torch.float64,
                                generator=generator) >= restart_prob
        for h, (rowptr, col) in enumerate(hops):
            cur = _step(rowptr, col, cur, alive, generator)
            trace[:, t * num_hops + h + 1] = cur
    return trace


def random_walk(rowptr: Tensor, col: Tensor, start: Tensor, num_steps: int,
                restart_prob: float = 0.0, num_walks: int = 1,
                generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Uniform random walks on a homogeneous graph in CSR form (one
    traversal = one step; the termination check follows every step but the
    last).

    Returns:
        A long tensor :obj:`[N * num_walks, num_steps + 1]` of visited nodes,
        :obj:`-1` after the end of a walk (see
        :func:`metapath_random_walk`).
    """
    return metapath_random_walk([(rowptr, col)], start, num_steps,
                                restart_prob, num_walks, generator)


def bipartite_random_walk(item_csr: CSR, user_csr: CSR, start: Tensor,
                          num_traversals: int, restart_prob: float = 0.0,
                          num_walks: int = 1,
                          generator: Optional[torch.Generator] = None,
                          return_users: bool = False):
    r"""Random walks :obj:`item -> user -> item -> ...` on a user--item
    interaction graph, given the item->users CSR :obj:`item_csr` and the
    user->items CSR :obj:`user_csr` (see :func:`bipartite_csr`).

    Returns:
        The item trace :obj:`[N * num_walks, num_traversals + 1]` (column 0
        the start item, column :math:`t` the item reached by traversal
        :math:`t`, :obj:`-1` after the end of a walk) and, if
        :obj:`return_users`, the user trace :obj:`[N * num_walks,
        num_traversals]` (the user passed in traversal :math:`t+1`).
    """
    trace = metapath_random_walk([item_csr, user_csr], start, num_traversals,
                                 restart_prob, num_walks, generator)
    items = trace[:, 0::2]
    return (items, trace[:, 1::2]) if return_users else items


def sample_item_pairs(item_csr: CSR, user_csr: CSR, num_pairs: int,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    r"""Item-to-item positive pairs :math:`(q, i)` of items engaged by the
    same user, as DGL's PinSAGE example draws them: :math:`q` uniform among
    items with at least one interaction, :math:`i` the end of one
    :obj:`q -> user -> item` traversal. Pairs with :math:`i = q` (the user
    has no other item) are dropped, so at most :obj:`num_pairs` pairs are
    returned as a :obj:`[2, P]` long tensor."""
    rowptr = item_csr[0]
    active = (rowptr[1:] > rowptr[:-1]).nonzero().view(-1)
    if active.numel() == 0:
        raise ValueError("no item has an interaction: cannot sample pairs")
    pick = torch.randint(active.numel(), (int(num_pairs), ),
                         generator=generator)
    items = bipartite_random_walk(item_csr, user_csr, active[pick], 1,
                                  generator=generator)
    keep = items[:, 1] != items[:, 0]
    return items[keep].t().contiguous()


def walk_lengths(trace: Tensor) -> Tensor:
    r"""Number of moves of every walk of a trace (valid entries minus one)."""
    return (trace >= 0).sum(dim=1) - 1

