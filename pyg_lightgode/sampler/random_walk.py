r"""Vectorised random walks in pure PyTorch over CSR adjacencies.

Walkers advance together, a few tensor operations per hop on blocks of
:data:`BLOCK_SIZE` walkers (a Python loop over the hops and the blocks
only, never over nodes). A neighbour is drawn uniformly as
:obj:`col[rowptr[v] + floor(rand * deg(v))]`, from tables built once per
graph (:func:`prepare_hops`).

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
from typing import (
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from torch import Tensor

from pyg_lightgode.data.bipartite import check_interactions, to_csr

CSR = Tuple[Tensor, Tensor]




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
        # In blocks, as the walk (see BLOCK_SIZE).
        lo, hi = torch.stack([
            torch.stack(torch.aminmax(piece))
            for piece in start.split(BLOCK_SIZE)
        ]).t().tolist()
        lo, hi = min(lo), max(hi)
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


class WalkHop(NamedTuple):
    r"""One hop of a walk, as the tables :func:`prepare_hops` builds from a
    CSR adjacency with :math:`R` rows and :math:`E` edges. Node ids are
    shifted by one so that :obj:`0` is the ended walk: row :obj:`v + 1`
    of :obj:`begin` / :obj:`deg` describes node :obj:`v`, row :obj:`0` the
    ended walk (degree 0). :obj:`col` holds the shifted neighbours
    followed by a :obj:`0` at position :math:`E`, where :obj:`begin`
    points for nodes without neighbours, so a walker that cannot move
    lands on :obj:`0` and stays there."""
    begin: Tensor  # [R + 1]
    deg: Tensor  # [R + 1]
    col: Tensor  # [E + 1]
    rand_dtype: torch.dtype


#: Walkers (and, for neighbourhoods, visits) handled by one tensor
#: operation. Below ATen's parallel grain size (32,768 elements), so every
#: operation of a walk runs on one thread whatever
#: :func:`torch.get_num_threads` is: a walk is a chain of many short,
#: memory-bound gathers, and with 2 threads on a busy 2-core machine each
#: of them waited for the second thread (3-10x slower than 1 thread).
BLOCK_SIZE = 16384


def rows_per_block(width: int, block_size: int) -> int:
    r"""Rows of an :obj:`[N, width]` tensor in a block of at most
    :obj:`block_size` elements (one row if wider). Callers pass their
    module's :data:`BLOCK_SIZE`, so tests can shrink it per module."""
    return max(1, block_size // max(width, 1))


def cat_blocks(parts: Sequence[Tensor], out: Optional[Tensor] = None,
               dtype: torch.dtype = torch.long) -> Tensor:
    r""":func:`torch.cat` of 1-D :obj:`parts` (into :obj:`out` if given)
    by copies of at most :data:`BLOCK_SIZE` elements, each of which runs on
    one thread (see :data:`BLOCK_SIZE`); :obj:`dtype` is that of the result
    when :obj:`parts` is empty."""
    total = sum(part.numel() for part in parts)
    if out is None:
        out = torch.empty(total, dtype=parts[0].dtype if parts else dtype)
    position = 0
    for part in parts:
        for piece in part.view(-1).split(BLOCK_SIZE):
            out[position:position + piece.numel()].copy_(piece)
            position += piece.numel()
    return out


def full_blocks(size: int, value: int, dtype: torch.dtype = torch.long
                ) -> Tensor:
    r""":func:`torch.full` of a 1-D tensor, filled in blocks of
    :data:`BLOCK_SIZE` elements (see :func:`cat_blocks`)."""
    out = torch.empty(size, dtype=dtype)
    for piece in out.split(BLOCK_SIZE):
        piece.fill_(value)
    return out


def prepare_hops(hops: Sequence[CSR]) -> List[WalkHop]:
    r"""Turns the CSR adjacencies :obj:`(rowptr, col)` of the hops of a
    traversal into the tables of the walk (:class:`WalkHop`), in
    :obj:`int32` unless a graph is too large for it. Builds them once for
    many walks (as :class:`~pyg_lightgode.sampler.ImportanceNeighborhood`
    does); :func:`metapath_random_walk` also takes them."""
    if len(hops) == 0:
        raise ValueError("'hops' must hold at least one CSR adjacency")
    for h, (rowptr, col) in enumerate(hops):
        check_csr(rowptr, col, f'hops[{h}]')
    largest = max(max(rowptr.numel(), col.numel() + 1) for rowptr, col in hops)
    dtype = torch.int32 if largest < 2**31 - 1 else torch.long
    out = []
    for rowptr, col in hops:
        # In blocks, as the walk itself (see BLOCK_SIZE).
        num_rows, num_edges = rowptr.numel() - 1, col.numel()
        begin = torch.empty(num_rows + 1, dtype=dtype)
        deg = torch.empty(num_rows + 1, dtype=dtype)
        begin[0], deg[0], max_deg = num_edges, 0, 0
        for lo in range(0, num_rows, BLOCK_SIZE):
            ptr = rowptr[lo:lo + BLOCK_SIZE + 1]
            count = ptr[1:] - ptr[:-1]
            deg[lo + 1:lo + 1 + count.numel()] = count
            begin[lo + 1:lo + 1 + count.numel()] = torch.where(
                count > 0, ptr[:-1], num_edges)
            max_deg = max(max_deg, int(count.max()))
        shifted = torch.empty(num_edges + 1, dtype=dtype)
        shifted[num_edges] = 0
        for lo in range(0, num_edges, BLOCK_SIZE):
            piece = col[lo:lo + BLOCK_SIZE]
            torch.add(piece, 1, out=shifted[lo:lo + piece.numel()])
        # float32 rand * deg never rounds up to deg below 2**24 neighbours.
        rand_dtype = torch.float32 if max_deg < 2**24 else torch.float64
        out.append(WalkHop(begin, deg, shifted, rand_dtype))
    return out


def walk_steps(hops: Sequence[WalkHop], cur: Tensor, num_traversals: int,
               restart_prob: float = 0.0,
               generator: Optional[torch.Generator] = None
               ) -> Iterator[Tuple[int, Tensor]]:
    r"""Advances the walkers at the shifted nodes :obj:`cur` (node id
    :obj:`+ 1`, in the dtype of the tables) hop by hop and yields
    :obj:`(position, cur)` after every hop, position :obj:`1` the first.
    A neighbour is drawn as :obj:`col[begin[v] + floor(rand * deg[v])]`;
    after every traversal but the last a walker ends with probability
    :obj:`restart_prob`. A fixed number of operations per hop, none of
    which reads data back to Python."""
    position = 0
    for t in range(num_traversals):
        if t > 0 and restart_prob > 0:
            cur = cur.masked_fill(
                torch.rand(cur.numel(), generator=generator) < restart_prob,
                0)
        for hop in hops:
            offset = torch.rand(cur.numel(), dtype=hop.rand_dtype,
                                generator=generator)
            offset = offset.mul_(hop.deg.index_select(0, cur)).to(cur.dtype)
            cur = hop.col.index_select(
                0, offset.add_(hop.begin.index_select(0, cur)))
            position += 1
            yield position, cur


def metapath_random_walk(hops: Sequence[Union[CSR, WalkHop]], start: Tensor,
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
            traversal (or the tables of :func:`prepare_hops`).
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
    if not all(isinstance(hop, WalkHop) for hop in hops):
        hops = prepare_hops(hops)
    start = check_walk_args(start, hops[0].begin.numel() - 1, num_traversals,
                            restart_prob, num_walks)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"'generator' must be a torch.Generator (got "
                        f"{type(generator).__name__})")

    num_walks, dtype = int(num_walks), hops[0].col.dtype
    trace = start.new_empty((start.numel() * num_walks,
                             num_traversals * len(hops) + 1))
    per_block = max(1, BLOCK_SIZE // num_walks)
    for lo in range(0, start.numel(), per_block):
        cur = start[lo:lo + per_block].repeat_interleave(num_walks)
        rows = trace[lo * num_walks:lo * num_walks + cur.numel()]
        rows[:, 0] = cur
        cur = cur.to(dtype).add_(1)
        for position, cur in walk_steps(hops, cur, num_traversals,
                                        restart_prob, generator):
            torch.sub(cur, 1, out=rows[:, position])
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

