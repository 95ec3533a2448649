r"""The bipartite user--item interaction form every model of the package
consumes, and its conversions to the homogeneous graph that a
:class:`~torch_geometric.nn.conv.MessagePassing` layer sees.

Convention: an *interaction index* is a :obj:`[2, E]` long tensor whose first
row holds user ids in :obj:`0..num_users-1` and whose second row holds item ids
in :obj:`0..num_items-1`. In the homogeneous graph users keep their ids and
items are offset by :obj:`num_users`.
"""
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.index import index2ptr
from torch_geometric.utils import to_torch_csr_tensor

USER, ITEM = 'user', 'item'
RATES = (USER, 'rates', ITEM)
RATED_BY = (ITEM, 'rated_by', USER)


def check_interactions(index: Tensor, num_users: int, num_items: int,
                       name: str = 'index') -> Tensor:
    r"""Validates an interaction index and returns it as a contiguous long
    tensor. Raises :class:`ValueError` naming :obj:`name` on a wrong shape,
    dtype or an id out of range."""
    if not isinstance(index, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor of shape [2, E] "
                        f"(got {type(index).__name__})")
    if index.dim() != 2 or index.size(0) != 2:
        raise ValueError(f"'{name}' must have shape [2, E] with user ids in "
                         f"row 0 and item ids in row 1 (got shape "
                         f"{list(index.shape)})")
    if index.dtype.is_floating_point or index.dtype == torch.bool:
        raise ValueError(f"'{name}' must hold integer ids (got {index.dtype})")
    index = index.long().contiguous()
    if num_users <= 0 or num_items <= 0:
        raise ValueError(f"the graph of '{name}' is empty: num_users="
                         f"{num_users}, num_items={num_items} (both must be "
                         f"positive)")
    if index.numel() > 0:
        for row, size, what in ((0, num_users, 'user'), (1, num_items,
                                                         'item')):
            lo, hi = int(index[row].min()), int(index[row].max())
            if lo < 0 or hi >= size:
                raise ValueError(
                    f"'{name}' holds {what} ids in [{lo}, {hi}], outside the "
                    f"valid range [0, {size - 1}] (num_{what}s={size})")
    return index


def bipartite_to_homogeneous(index: Tensor, num_users: int,
                             num_items: int) -> Tensor:
    r"""Turns a user--item interaction index into the symmetric homogeneous
    :obj:`edge_index` of :obj:`num_users + num_items` nodes (items offset by
    :obj:`num_users`), both directions, user->item edges first."""
    index = check_interactions(index, num_users, num_items)
    row, col = index[0], index[1] + num_users
    return torch.stack([torch.cat([row, col]), torch.cat([col, row])])


def homogeneous_to_bipartite(edge_index: Tensor, num_users: int) -> Tensor:
    r"""Inverse of :func:`bipartite_to_homogeneous`: keeps the user->item
    edges of a homogeneous :obj:`edge_index` and removes the item offset."""
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, E] (got "
                         f"{list(edge_index.shape)})")
    mask = (edge_index[0] < num_users) & (edge_index[1] >= num_users)
    out = edge_index[:, mask].clone()
    out[1] -= num_users
    return out


def bipartite_to_adj_t(index: Tensor, num_users: int, num_items: int,
                       edge_weight: Optional[Tensor] = None) -> Tensor:
    r"""The transposed torch.sparse CSR adjacency of the symmetric homogeneous
    graph (as :meth:`MessagePassing.propagate` expects :obj:`adj_t`).
    :obj:`edge_weight`, if given, has one entry per interaction and is used
    for both directions."""
    edge_index = bipartite_to_homogeneous(index, num_users, num_items)
    if edge_weight is not None:
        if edge_weight.numel() != index.size(1):
            raise ValueError(f"'edge_weight' must have one entry per "
                             f"interaction ({index.size(1)}), got "
                             f"{edge_weight.numel()}")
        edge_weight = torch.cat([edge_weight, edge_weight])
    n = num_users + num_items
    # Symmetric, so the transpose equals the matrix itself.
    with quiet_sparse_csr():
        return to_torch_csr_tensor(edge_index, edge_weight, size=(n, n))


def to_csr(row: Tensor, col: Tensor, num_rows: int,
           value: Optional[Tensor] = None, num_cols: Optional[int] = None,
           is_sorted: bool = False):
    r"""The package's one CSR builder: the entries :obj:`(row, col[,
    value])` in CSR order (stable within a row, so a row keeps the order
    its entries came in). Returns :obj:`(rowptr, col)` for a structure
    (random walks, neighbour lists) or, with :obj:`num_cols`, a
    :obj:`[num_rows, num_cols]` torch.sparse CSR matrix of :obj:`value`
    (ones if not given). :obj:`is_sorted` skips the sort of entries
    already grouped by row."""
    if not is_sorted:
        perm = torch.argsort(row, stable=True)
        row, col = row.index_select(0, perm), col.index_select(0, perm)
        if value is not None:
            value = value.index_select(0, perm)
    rowptr = index2ptr(row, num_rows)
    if num_cols is None:
        return rowptr, col
    return csr_tensor(rowptr, col, value, num_cols)


def csr_tensor(rowptr: Tensor, col: Tensor, value: Optional[Tensor],
               num_cols: int) -> Tensor:
    r"""The torch.sparse CSR matrix of a CSR structure whose rows are given
    by their pointers (as :func:`to_csr` builds it), with the values
    :obj:`value` (ones if not given)."""
    if value is None:
        value = torch.ones(col.numel(), device=col.device)
    with quiet_sparse_csr():
        return torch.sparse_csr_tensor(rowptr, col, value,
                                       size=(rowptr.numel() - 1, num_cols),
                                       check_invariants=False)


@contextmanager
def quiet_sparse_csr():
    r"""Silences the notices torch prints once per process when it first
    builds a sparse CSR tensor ("Sparse CSR tensor support is in beta
    state", "Sparse invariant checks are implicitly disabled"): the package
    builds its CSR adjacencies from validated indices and only multiplies
    with them, so on a user's run the notices would only alarm."""
    with warnings.catch_warnings():
        for message in ('Sparse CSR tensor support is in beta state',
                        'Sparse invariant checks are implicitly disabled'):
            warnings.filterwarnings('ignore', message, UserWarning)
        yield


def _user_items(index: Tensor, num_users: int) -> Sequence[Tensor]:
    order = torch.argsort(index[0], stable=True)
    counts = torch.bincount(index[0], minlength=num_users).tolist()
    return torch.split(index[1, order], counts)


@dataclass
class BipartiteSplit:
    r"""Training, validation and test interactions of one bipartite
    user--item dataset, in the form all models of the package consume.

    Args:
        num_users (int): Number of users :math:`U`.
        num_items (int): Number of items :math:`I`.
        train_index (torch.Tensor): Training interactions :obj:`[2, E_train]`.
        test_index (torch.Tensor): Test interactions :obj:`[2, E_test]`.
        val_index (torch.Tensor, optional): Validation interactions.
        user_x (torch.Tensor, optional): User features :obj:`[U, F_u]`.
        item_x (torch.Tensor, optional): Item features :obj:`[I, F_i]`.
        user_ids, item_ids (sequence, optional): The original (raw) id of
            every remapped user / item, so nothing is lost.
        name (str, optional): A name for reports.
    """
    num_users: int
    num_items: int
    train_index: Tensor
    test_index: Tensor
    val_index: Optional[Tensor] = None
    user_x: Optional[Tensor] = None
    item_x: Optional[Tensor] = None
    user_ids: Optional[Sequence] = None
    item_ids: Optional[Sequence] = None
    name: str = 'bipartite'
    _cache: Dict[str, Tensor] = field(default_factory=dict, repr=False,
                                      compare=False)

    def __post_init__(self):
        self.num_users, self.num_items = int(self.num_users), int(
            self.num_items)
        U, I = self.num_users, self.num_items
        self.train_index = check_interactions(self.train_index, U, I,
                                              'train_index')
        self.test_index = check_interactions(self.test_index, U, I,
                                             'test_index')
        if self.val_index is not None:
            self.val_index = check_interactions(self.val_index, U, I,
                                                'val_index')
        if self.train_index.size(1) == 0:
            raise ValueError("'train_index' is empty: a split needs at least "
                             "one training interaction")
        for name, x, n in (('user_x', self.user_x, U), ('item_x', self.item_x,
                                                        I)):
            if x is not None and (x.dim() != 2 or x.size(0) != n):
                raise ValueError(f"'{name}' must have shape [{n}, F] (got "
                                 f"{list(x.shape)})")

    @property
    def num_nodes(self) -> int:
        return self.num_users + self.num_items

    def _graph(self, key: str, build) -> Tensor:
        if key not in self._cache:
            self._cache[key] = build(self.train_index, self.num_users,
                                     self.num_items)
        return self._cache[key]

    def edge_index(self) -> Tensor:
        r"""Symmetric homogeneous :obj:`edge_index` of the training graph."""
        return self._graph('edge_index', bipartite_to_homogeneous)

    def adj_t(self) -> Tensor:
        r"""Transposed torch.sparse CSR adjacency of the training graph."""
        return self._graph('adj_t', bipartite_to_adj_t)

    def user_item_lists(self, part: str = 'train') -> Sequence[Tensor]:
        r"""Per-user item tensors of :obj:`part` ('train', 'val', 'test')."""
        return _user_items(self.part(part), self.num_users)

    def part(self, name: str) -> Tensor:
        index = {'train': self.train_index, 'val': self.val_index,
                 'test': self.test_index}.get(name, 'unknown')
        if isinstance(index, str):
            raise ValueError(f"'part' must be 'train', 'val' or 'test' (got "
                             f"{name!r})")
        if index is None:
            raise ValueError(f"this split has no '{name}' interactions")
        return index

    def known_interactions(self, part: str) -> List[Tensor]:
        r"""The interactions to exclude when ranking :obj:`part`: training
        for 'val', training and validation (if any) for 'test'."""
        self.part(part)  # Validates the name.
        known = [self.train_index]
        if part == 'test' and self.val_index is not None:
            known.append(self.val_index)
        return known

    def merge_validation(self) -> 'BipartiteSplit':
        r"""The split for the final fit after selection on validation: the
        validation interactions joined to the training ones, no validation
        part, the same test part (*e.g.* retrain for the epoch count chosen
        on validation, then evaluate on test)."""
        val = self.part('val')
        return BipartiteSplit(
            self.num_users, self.num_items,
            torch.cat([self.train_index, val], dim=1), self.test_index,
            user_x=self.user_x, item_x=self.item_x, user_ids=self.user_ids,
            item_ids=self.item_ids, name=self.name)

    def stats(self) -> Dict[str, int]:
        out = {'num_users': self.num_users, 'num_items': self.num_items,
               'num_train': self.train_index.size(1),
               'num_test': self.test_index.size(1)}
        if self.val_index is not None:
            out['num_val'] = self.val_index.size(1)
        return out

    def to_hetero_data(self) -> HeteroData:
        r"""The split as PyG :class:`HeteroData` shaped like
        :class:`~torch_geometric.datasets.AmazonBook`; validation pairs go to
        :obj:`edge_label_index_val`."""
        data = HeteroData()
        data[USER].num_nodes = self.num_users
        data[ITEM].num_nodes = self.num_items
        if self.user_x is not None:
            data[USER].x = self.user_x
        if self.item_x is not None:
            data[ITEM].x = self.item_x
        data[RATES].edge_index = self.train_index
        data[RATED_BY].edge_index = self.train_index.flip([0])
        data[RATES].edge_label_index = self.test_index
        if self.val_index is not None:
            data[RATES].edge_label_index_val = self.val_index
        return data

    @classmethod
    def from_hetero_data(cls, data: HeteroData, edge_type=None,
                         name: str = 'bipartite') -> 'BipartiteSplit':
        r"""Reads the split that a PyG recommendation dataset ships
        (:obj:`edge_index` for training, :obj:`edge_label_index` for test,
        as in :class:`AmazonBook`, :class:`MovieLens100K` and :class:`Gowalla`).
        """
        if edge_type is None:
            types = [t for t in data.edge_types
                     if 'edge_label_index' in data[t]]
            if len(types) != 1:
                raise ValueError(f"'edge_type' must be given: found "
                                 f"{len(types)} edge types with "
                                 f"'edge_label_index' in {data.edge_types}")
            edge_type = types[0]
        src, _, dst = edge_type
        store = data[edge_type]
        return cls(
            num_users=data[src].num_nodes, num_items=data[dst].num_nodes,
            train_index=store.edge_index, test_index=store.edge_label_index,
            val_index=store.get('edge_label_index_val'),
            user_x=data[src].get('x'), item_x=data[dst].get('x'), name=name)
