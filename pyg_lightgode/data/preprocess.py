r"""Pure, vectorised preprocessing of user--item interaction tables: id
remapping, rating threshold, duplicate removal, iterative k-core filtering
and per-user train/validation/test splits, composed by :func:`build_split`
into the :class:`~pyg_lightgode.data.BipartiteSplit` every model consumes.

All functions take an interaction index (a :obj:`[2, E]` long tensor of
compact user ids in row 0 and item ids in row 1) plus optional per-edge
tensors (ratings, timestamps) that are filtered alongside it.
"""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from pyg_lightgode.data.bipartite import BipartiteSplit, check_interactions

RawIds = Union[Sequence, np.ndarray, Tensor]


def _to_numpy_ids(raw: RawIds, name: str) -> np.ndarray:
    if isinstance(raw, Tensor):
        raw = raw.detach().cpu().numpy()
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise ValueError(f"'{name}' must be a 1-dimensional sequence of raw "
                         f"ids (got shape {list(arr.shape)})")
    if arr.dtype.kind == 'f' and np.isnan(arr).any():
        raise ValueError(f"'{name}' holds missing (NaN) ids at positions "
                         f"{np.flatnonzero(np.isnan(arr))[:5].tolist()}")
    if arr.dtype.kind == 'O' and any(v is None for v in arr):
        raise ValueError(f"'{name}' holds missing (None) ids")
    return arr


def _factorize_objects(arr: np.ndarray,
                       name: str) -> Tuple[Tensor, np.ndarray]:
    # Hashes first and sorts only the distinct ids: a fixed-width string
    # array of all rows would cost rows x longest id x 4 bytes.
    import pandas as pd
    codes, uniques = pd.factorize(arr)
    if (codes < 0).any():
        raise ValueError(f"'{name}' holds missing (NaN/None) ids at "
                         f"positions {np.flatnonzero(codes < 0)[:5].tolist()}")
    try:
        order = np.argsort(uniques, kind='stable')
    except TypeError as e:  # mixed types cannot be ordered
        raise TypeError(f"'{name}' must hold ids of one kind (all integers "
                        f"or all strings): {e}") from None
    uniques = uniques[order]
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    if all(isinstance(v, str) for v in uniques):
        uniques = uniques.astype(str)
    return torch.from_numpy(rank[codes]), uniques


def _factorize(raw: RawIds, name: str) -> Tuple[Tensor, np.ndarray]:
    arr = _to_numpy_ids(raw, name)
    if arr.dtype.kind == 'O':
        return _factorize_objects(arr, name)
    try:
        uniques, inverse = np.unique(arr, return_inverse=True)
    except TypeError as e:  # mixed types cannot be ordered
        raise TypeError(f"'{name}' must hold ids of one kind (all integers "
                        f"or all strings): {e}") from None
    return torch.from_numpy(inverse.reshape(-1).astype(np.int64)), uniques


def remap_ids(raw_users: RawIds,
              raw_items: RawIds) -> Tuple[Tensor, np.ndarray, np.ndarray]:
    r"""Maps arbitrary raw user and item ids (integers or strings) of
    :math:`E` interactions to contiguous 0-based ids.

    Ids are assigned in sorted order of the raw ids, so the result does not
    depend on the row order of the input.

    Returns:
        (index, user_ids, item_ids): the :obj:`[2, E]` long interaction index
        and the raw id of every compact id, i.e.
        :obj:`user_ids[index[0]]` reproduces :obj:`raw_users` exactly (same
        for items).
    """
    users, user_ids = _factorize(raw_users, 'raw_users')
    items, item_ids = _factorize(raw_items, 'raw_items')
    if users.numel() != items.numel():
        raise ValueError(f"'raw_users' and 'raw_items' must have the same "
                         f"length (got {users.numel()} and {items.numel()})")
    return torch.stack([users, items]), user_ids, item_ids


def _edge_tensor(values, num_edges: int, name: str) -> Optional[Tensor]:
    if values is None:
        return None
    values = torch.as_tensor(values)
    if values.dim() != 1 or values.numel() != num_edges:
        raise ValueError(f"'{name}' must have one entry per interaction "
                         f"(shape [{num_edges}], got {list(values.shape)})")
    if values.dtype.is_floating_point and bool(torch.isnan(values).any()):
        raise ValueError(f"'{name}' holds NaN values at interactions "
                         f"{torch.isnan(values).nonzero().view(-1)[:5].tolist()}")
    return values


def _mask_edges(mask: Tensor, index: Tensor,
                *edge_attrs: Optional[Tensor]) -> Tuple:
    return (index[:, mask], ) + tuple(None if a is None else a[mask]
                                      for a in edge_attrs)


def filter_by_rating(index: Tensor, rating: Tensor, min_rating: float,
                     *edge_attrs: Optional[Tensor]) -> Tuple:
    r"""Keeps the interactions with :obj:`rating >= min_rating` (implicit
    feedback from explicit ratings).

    Args:
        index (torch.Tensor): Interactions :obj:`[2, E]`.
        rating (torch.Tensor): Rating of every interaction :obj:`[E]`.
        min_rating (float): Smallest rating that counts as a positive.
        *edge_attrs (torch.Tensor, optional): Further per-interaction tensors
            (e.g. timestamps) filtered alongside; :obj:`None` passes through.

    Returns:
        :obj:`(index, rating, *edge_attrs)`, filtered.

    Example:
        >>> index, rating, time = filter_by_rating(index, rating, 4, time)
    """
    E = index.size(1)
    rating = _edge_tensor(rating, E, 'rating')
    if rating is None:
        raise ValueError("'rating' is required to filter by 'min_rating'")
    edge_attrs = tuple(
        _edge_tensor(a, E, f'edge_attrs[{i}]')
        for i, a in enumerate(edge_attrs))
    return _mask_edges(rating >= min_rating, index, rating, *edge_attrs)


def _pair_keys(index: Tensor) -> Tensor:
    num_items = int(index[1].max()) + 1 if index.numel() > 0 else 1
    return index[0] * num_items + index[1]


def remove_duplicates(index: Tensor, *edge_attrs: Optional[Tensor]) -> Tuple:
    r"""Removes repeated (user, item) pairs, keeping the first occurrence in
    input order (so its rating / timestamp in :obj:`edge_attrs`).

    Returns:
        :obj:`(index, *edge_attrs)` without duplicates, in input order.
    """
    keys = _pair_keys(index).numpy()
    _, first = np.unique(keys, return_index=True)
    mask = torch.zeros(index.size(1), dtype=torch.bool)
    mask[torch.from_numpy(first)] = True
    return _mask_edges(mask, index, *edge_attrs)


def _check_no_duplicates(index: Tensor, name: str = 'index') -> None:
    keys = _pair_keys(index)
    num_repeated = keys.numel() - torch.unique(keys).numel()
    if num_repeated > 0:
        raise ValueError(
            f"'{name}' holds {num_repeated} "
            f"repeated (user, item) pairs; a split would put the same pair "
            f"in two parts. Call 'remove_duplicates' first")


class KCoreResult(NamedTuple):
    r"""Result of :func:`k_core_filter`.

    Attributes:
        index (torch.Tensor): Remaining interactions with re-compacted ids.
        kept_users (torch.Tensor): Old id of every new user id, i.e.
            :obj:`new user u = old user kept_users[u]`.
        kept_items (torch.Tensor): Old id of every new item id.
        edge_mask (torch.Tensor): Which input interactions remain :obj:`[E]`.

    The mappings compose by indexing: raw ids after filtering are
    :obj:`raw_user_ids[kept_users]`, features :obj:`user_x[kept_users]`, and
    two filters in a row give :obj:`first.kept_users[second.kept_users]`.
    """
    index: Tensor
    kept_users: Tensor
    kept_items: Tensor
    edge_mask: Tensor


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"'{name}' must be a non-negative int (got "
                        f"{type(value).__name__})")
    if value < 0:
        raise ValueError(f"'{name}' must be non-negative (got {value})")
    return int(value)


def _num_nodes(index: Tensor, row: int, num: Optional[int]) -> int:
    if num is not None:
        return int(num)
    return int(index[row].max()) + 1 if index.numel() > 0 else 0


def k_core_filter(index: Tensor, user_k: int, item_k: int,
                  num_users: Optional[int] = None,
                  num_items: Optional[int] = None) -> KCoreResult:
    r"""Iterative k-core filtering: repeatedly removes users with fewer than
    :obj:`user_k` interactions and items with fewer than :obj:`item_k`
    interactions until a fixpoint, where

    .. math::
        \deg(u) \geq k_u \quad \forall u, \qquad
        \deg(i) \geq k_i \quad \forall i

    holds for every remaining user and item (removing an item can drop a
    user below :math:`k_u` and vice versa, hence the iteration). Repeated
    pairs count once per occurrence. With :obj:`user_k = 0` (:obj:`item_k =
    0`) every user (item) is kept, including ones without interactions.

    Args:
        index (torch.Tensor): Interactions :obj:`[2, E]`.
        user_k (int): Minimum number of interactions per user.
        item_k (int): Minimum number of interactions per item.
        num_users (int, optional): Number of users (default: max id + 1).
        num_items (int, optional): Number of items (default: max id + 1).

    Returns:
        :class:`KCoreResult` with the filtered, re-compacted index, the kept
        old ids and the edge mask.
    """
    user_k, item_k = _check_count(user_k, 'user_k'), _check_count(
        item_k, 'item_k')
    U, I = _num_nodes(index, 0, num_users), _num_nodes(index, 1, num_items)
    if index.numel() > 0:
        index = check_interactions(index, U, I, 'index')
    edge_ids = torch.arange(index.size(1))
    while True:  # each round removes at least one edge, or stops
        row, col = index[0, edge_ids], index[1, edge_ids]
        user_deg = torch.bincount(row, minlength=U)
        item_deg = torch.bincount(col, minlength=I)
        keep = (user_deg[row] >= user_k) & (item_deg[col] >= item_k)
        if bool(keep.all()):
            break
        edge_ids = edge_ids[keep]
    kept_users = (user_deg >= user_k).nonzero().view(-1)
    kept_items = (item_deg >= item_k).nonzero().view(-1)
    user_map = torch.full((U, ), -1, dtype=torch.long)
    user_map[kept_users] = torch.arange(kept_users.numel())
    item_map = torch.full((I, ), -1, dtype=torch.long)
    item_map[kept_items] = torch.arange(kept_items.numel())
    edge_mask = torch.zeros(index.size(1), dtype=torch.bool)
    edge_mask[edge_ids] = True
    out = torch.stack([user_map[row], item_map[col]])
    return KCoreResult(out, kept_users, kept_items, edge_mask)


def _check_ratios(ratios: Sequence[float]) -> Tuple[float, ...]:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) < 2 or any(not r >= 0 for r in ratios) or ratios[0] <= 0:
        raise ValueError(f"'ratios' must hold at least two non-negative "
                         f"numbers with a positive first (train) entry "
                         f"(got {ratios})")
    total = sum(ratios)
    return tuple(r / total for r in ratios)


def _group_by_user(user: Tensor, num_users: int,
                   order: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Stable-sorts the edges :obj:`order` by user. Returns the sorted edge
    ids, their users and each edge's 0-based position within its user."""
    order = order[torch.argsort(user[order], stable=True)]
    sorted_user = user[order]
    counts = torch.bincount(sorted_user, minlength=num_users)
    start = torch.cumsum(counts, 0) - counts
    position = torch.arange(order.numel()) - start[sorted_user]
    return order, sorted_user, position


def _parts_by_position(index: Tensor, order: Tensor, position: Tensor,
                       bounds: Tensor) -> Tuple[Tensor, ...]:
    r"""Edge :obj:`order[j]` goes to part :math:`p` when its position lies in
    :obj:`[bounds[p-1], bounds[p])` of its user (:obj:`bounds` is
    :obj:`[P - 1, num_sorted_edges]`, per edge, cumulative)."""
    part_sorted = (position.view(1, -1) >= bounds).sum(0)
    part = torch.empty(index.size(1), dtype=torch.long)
    part[order] = part_sorted
    return tuple(index[:, part == p] for p in range(bounds.size(0) + 1))


def random_split(index: Tensor, num_users: int,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1),
                 seed: int = 2020) -> Tuple[Tensor, ...]:
    r"""Per-user random split as in RecBole (:obj:`split: {RS: ratios}`,
    :obj:`group_by: user`): the interactions of every user are shuffled and
    cut by :obj:`ratios` (normalised to sum 1).

    Rounding (RecBole's :obj:`_calcu_split_ids`): for a user with :math:`n`
    interactions every part :math:`p > 0` gets
    :math:`\lfloor r_p n \rfloor` and the first (train) part the rest; then,
    from the last part backwards and while train still holds more than one
    interaction, a part with :math:`0 < r_p n < 1` takes one interaction
    from train. So with :obj:`(0.8, 0.1, 0.1)` a user with 1 interaction
    keeps it in train, 2 give 1/0/1 and 3 to 10 give :math:`n-2`/1/1.

    Args:
        index (torch.Tensor): Interactions :obj:`[2, E]` without repeated
            pairs (see :func:`remove_duplicates`).
        num_users (int): Number of users.
        ratios (sequence of float): Relative sizes of the parts, train first
            (default: :obj:`(0.8, 0.1, 0.1)`).
        seed (int): Seed of the shuffle.

    Returns:
        One :obj:`[2, E_p]` index per entry of :obj:`ratios` (edges keep
        their input order); they are disjoint and their union is the input.
    """
    ratios = _check_ratios(ratios)
    index = check_interactions(index, num_users,
                               _num_nodes(index, 1, None) or 1, 'index')
    _check_no_duplicates(index)
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(index.size(1), generator=generator)
    order, user, position = _group_by_user(index[0], num_users, perm)

    n = torch.bincount(index[0], minlength=num_users).to(torch.float64)
    counts = [None] + [torch.floor(r * n).long() for r in ratios[1:]]
    counts[0] = n.long() - sum(counts[1:])
    for p in range(len(ratios) - 1, 0, -1):
        share = ratios[p] * n
        bump = ((counts[0] > 1) & (share > 0) & (share < 1)).long()
        counts[p] += bump
        counts[0] -= bump
    bounds = torch.cumsum(torch.stack(counts[:-1]), 0)[:, user]
    return _parts_by_position(index, order, position, bounds)


def temporal_split(
    index: Tensor,
    time: Tensor,
    num_users: int,
    num_val: int = 1,
    num_test: int = 1,
) -> Tuple[Tensor, Optional[Tensor], Tensor]:
    r"""Per-user leave-last-out split by time: each user's latest
    :obj:`num_test` interactions go to test, the :obj:`num_val` before them
    to validation and the rest to train.

    Equal timestamps are ordered by input position (a later row counts as
    later), so the split is deterministic. Train keeps at least one
    interaction of every user: a user with :math:`n` interactions gives
    :math:`\min(\text{num\_test}, n - 1)` to test and then at most what is
    left beyond one to validation.

    Returns:
        :obj:`(train, val, test)` indices; :obj:`val` is :obj:`None` when
        :obj:`num_val = 0`.
    """
    num_val, num_test = _check_count(num_val, 'num_val'), _check_count(
        num_test, 'num_test')
    index = check_interactions(index, num_users,
                               _num_nodes(index, 1, None) or 1, 'index')
    time = _edge_tensor(time, index.size(1), 'time')
    if time is None:
        raise ValueError("'time' is required for a temporal split")
    _check_no_duplicates(index)
    by_time = torch.argsort(time, stable=True)
    order, user, position = _group_by_user(index[0], num_users, by_time)

    n = torch.bincount(index[0], minlength=num_users)
    test = torch.clamp(torch.clamp(n - 1, min=0), max=num_test)
    val = torch.clamp(n - 1 - test, min=0, max=num_val)
    train = n - test - val
    bounds = torch.stack([train, train + val])[:, user]
    train_index, val_index, test_index = _parts_by_position(
        index, order, position, bounds)
    return train_index, (val_index if num_val > 0 else None), test_index


def _take(values, positions: Tensor):
    r"""Rows :obj:`positions` of a tensor, array or sequence."""
    if values is None:
        return None
    if isinstance(values, Tensor):
        return values[positions]
    if isinstance(values, np.ndarray):
        return values[positions.numpy()]
    return [values[i] for i in positions.tolist()]


def _check_node_values(values, num: int, name: str) -> None:
    if values is not None and len(values) != num:
        raise ValueError(f"'{name}' must have one row per node ({num}), got "
                         f"{len(values)}")


def build_split(
    index: Tensor,
    num_users: int,
    num_items: int,
    *,
    rating: Optional[Tensor] = None,
    time: Optional[Tensor] = None,
    min_rating: Optional[float] = None,
    user_k: int = 0,
    item_k: int = 0,
    split: str = 'random',
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 2020,
    num_val: int = 1,
    num_test: int = 1,
    user_x: Optional[Tensor] = None,
    item_x: Optional[Tensor] = None,
    user_ids: Optional[Sequence] = None,
    item_ids: Optional[Sequence] = None,
    name: str = 'bipartite',
) -> BipartiteSplit:
    r"""The one pipeline every dataset goes through:

    1. keep :obj:`rating >= min_rating` (if :obj:`min_rating` is given),
    2. drop repeated (user, item) pairs, keeping the first,
    3. iterative k-core filtering with :obj:`user_k` / :obj:`item_k`
       (ids re-compacted; features and raw ids follow),
    4. split per user: :obj:`'random'` (:func:`random_split` with
       :obj:`ratios` and :obj:`seed`) or :obj:`'temporal'`
       (:func:`temporal_split` with :obj:`num_val` / :obj:`num_test`).

    With a random split of two :obj:`ratios` there is no validation part.

    Returns:
        :class:`~pyg_lightgode.data.BipartiteSplit`.
    """
    if split not in ('random', 'temporal'):
        raise ValueError(f"'split' must be 'random' or 'temporal' (got "
                         f"{split!r})")
    if split == 'random' and len(ratios) not in (2, 3):
        raise ValueError(f"'ratios' must be (train, test) or (train, val, "
                         f"test) (got {tuple(ratios)})")
    index = check_interactions(index, num_users, num_items, 'index')
    E = index.size(1)
    rating = _edge_tensor(rating, E, 'rating')
    time = _edge_tensor(time, E, 'time')
    if split == 'temporal' and time is None:
        raise ValueError("split='temporal' needs 'time' (one timestamp per "
                         "interaction)")
    _check_node_values(user_x, num_users, 'user_x')
    _check_node_values(user_ids, num_users, 'user_ids')
    _check_node_values(item_x, num_items, 'item_x')
    _check_node_values(item_ids, num_items, 'item_ids')

    if min_rating is not None:
        index, rating, time = filter_by_rating(index, rating, min_rating,
                                               time)
    index, time = remove_duplicates(index, time)
    core = k_core_filter(index, user_k, item_k, num_users, num_items)
    index = core.index
    time = None if time is None else time[core.edge_mask]
    num_users, num_items = core.kept_users.numel(), core.kept_items.numel()
    if index.size(1) == 0 or num_users == 0 or num_items == 0:
        raise ValueError(f"no interactions are left after filtering "
                         f"(min_rating={min_rating}, user_k={user_k}, "
                         f"item_k={item_k})")

    if split == 'random':
        parts = random_split(index, num_users, ratios, seed)
        train, test = parts[0], parts[-1]
        val = parts[1] if len(parts) > 2 else None
    else:
        train, val, test = temporal_split(index, time, num_users, num_val,
                                          num_test)
    return BipartiteSplit(
        num_users=num_users, num_items=num_items, train_index=train,
        test_index=test, val_index=val,
        user_x=_take(user_x, core.kept_users),
        item_x=_take(item_x, core.kept_items),
        user_ids=_take(user_ids, core.kept_users),
        item_ids=_take(item_ids, core.kept_items), name=name)
