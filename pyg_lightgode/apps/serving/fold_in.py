r"""Fold-in for LightGODE: new interactions, new users and new items enter a
trained model through the graph, without a gradient step.

LightGODE's training fixes the tables :math:`\mathbf{E}_0` (one row per user
and item) and its graph work happens after training, so a node or an edge
that arrives later only changes the graph and, for a new node, needs a row
of :math:`\mathbf{E}_0`. This module works on tensors only (trained tables
and a bipartite interaction index in, propagated tables out); it never
touches a model object.

**Propagation.** The one-step form of
:class:`~pyg_lightgode.nn.conv.LightGODEConv` (the official Euler step, the
default), in bipartite form (:math:`\hat{\mathbf{A}} =
\mathbf{D}^{-1/2}\mathbf{A}\mathbf{D}^{-1/2}` of the homogeneous user+item
graph, no self-loops):

.. math::
    \mathbf{e}_v(t) = \mathbf{e}^0_v + t\,\Bigl(\sum_{w \in \mathcal{N}(v)}
    \frac{\mathbf{e}^0_w}{\sqrt{d_v d_w}} + \mathbf{e}^0_v\Bigr),

the operator of :class:`~pyg_lightgode.nn.conv.LightGODEConv` (equal to it
up to float rounding; tested), computed with :obj:`gcn_norm`'s values and
one sparse CSR product per side.

**Incremental propagation.** Row :math:`v` depends on :math:`\mathbf{e}^0_v`,
:math:`d_v`, and the rows and degrees of its neighbours only (one hop). When
edges are added, the changed rows are those of the set :math:`S` of nodes
with a new edge or a new :math:`\mathbf{E}_0` row, and of their neighbours
:math:`\mathcal{N}(S)` (whose normalisation saw a degree change). Only those
rows are recomputed (:meth:`LightGODEFoldIn.add`), with the same kernel on
the same neighbour lists in the same order as a full recompute, so the
result is *equal* to a full recompute, not close to it (tested).
An accurate solver (:obj:`method="exact"`, :obj:`"rk4"`, ...) mixes all
powers :math:`\hat{\mathbf{A}}^k`: a change reaches every node within
:math:`K` hops for :math:`K` series terms or solver stages, which on a
small-world interaction graph is the whole graph after 3--4 hops, and an
update would also need the :math:`K` intermediate tables
:math:`\hat{\mathbf{A}}^k\mathbf{E}_0` kept. With such a method
:class:`LightGODEFoldIn` recomputes everything on every update (a full
:class:`~pyg_lightgode.nn.conv.LightGODEConv` solve).

**A new node's** :math:`\mathbf{E}_0` **row** (:obj:`rule`, from the rows of
its neighbours that existed before the update; a new node whose neighbours
are all new too gets zeros):

* :obj:`'zero'`: :math:`\mathbf{e}^0_v = \mathbf{0}`; propagation alone
  fills the row, :math:`\mathbf{e}_v(t) = t \sum_w \mathbf{e}^0_w /
  \sqrt{d_v d_w}`.
* :obj:`'neighbour-mean'`: the closed-form optimum of the alignment term
  given the fixed rows of its neighbours. The loss works on L2-normalised
  rows; :math:`\sum_w \|\tilde{\mathbf{e}}_v - \tilde{\mathbf{e}}_w\|^2`
  over unit :math:`\tilde{\mathbf{e}}_v` is minimised by the normalised sum
  (or mean) of the neighbours' normalised rows. The loss does not fix the
  norm, so the row gets the mean norm of the trained rows of its type
  (users or items with at least one interaction).
* :obj:`'mean'`: the plain mean of the neighbours' raw rows (norms kept).

The default (:data:`DEFAULT_E0_RULE`) is the rule that won on validation in
:file:`benchmarks/fold_in.py` (BENCHMARKS.md, fold-in section).
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.index import index2ptr
from torch_geometric.utils import cumsum

from pyg_lightgode.data.bipartite import check_interactions, csr_tensor
from pyg_lightgode.data.validation import check_matrix
from pyg_lightgode.nn.conv import LightGODEConv
from pyg_lightgode.nn.ode import check_method

#: The rules for a new node's :math:`\mathbf{E}_0` row.
E0_RULES = ('zero', 'neighbour-mean', 'mean')
#: Chosen on validation by benchmarks/fold_in.py (BENCHMARKS.md).
DEFAULT_E0_RULE = 'neighbour-mean'
#: Node ids are below this bound (an int64 key ``row * _KEY + col`` then
#: never overflows).
_KEY = 1 << 31


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------
def _check_table(x, name: str) -> Tensor:
    check_matrix(x, name)
    if x.numel() > 0 and not bool(torch.isfinite(x).all()):
        raise ValueError(f"'{name}' contains NaN or infinite values")
    return x.detach()


def _check_time(t) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or \
            not math.isfinite(t) or t < 0:
        raise ValueError(f"'t' must be a finite number >= 0 (got {t!r})")
    return float(t)


def _check_rule(rule: str) -> str:
    if rule not in E0_RULES:
        raise ValueError(f"unknown E0 rule {rule!r}; valid rules are: "
                         f"{', '.join(E0_RULES)}")
    return rule


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"'{name}' must be an integer >= 0 (got "
                         f"{value!r})")
    return value


# --------------------------------------------------------------------------
# Kernels shared by the full and the incremental paths
# --------------------------------------------------------------------------
def inv_sqrt_degree(degree: Tensor) -> Tensor:
    r""":math:`d^{-1/2}` with :math:`0` for isolated nodes, as
    :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm` computes it."""
    out = degree.pow(-0.5)
    return out.masked_fill_(out == float('inf'), 0.0)


def _sorted_rows(row: Tensor, col: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Sorts entries by :obj:`(row, col)`: the order of a CSR row."""
    perm = torch.argsort(row * _KEY + col)
    return row[perm], col[perm]


def _step(ptr: Tensor, col: Tensor, row_scale: Tensor, col_scale: Tensor,
          table: Tensor, x: Tensor, t: float) -> Tensor:
    r"""One Euler step of the CSR rows :math:`v` with
    :class:`~pyg_lightgode.nn.conv.LightGODEConv` on the bipartite pair
    :obj:`(table, x)`: :math:`(1 + t)\mathbf{x}_v + t \sum_w s_v s_w
    \mathbf{e}_w` (:obj:`row_scale` per row, :obj:`col_scale` per column:
    :obj:`gcn_norm`'s values for the degrees of the whole graph)."""
    count = ptr[1:] - ptr[:-1]
    value = torch.repeat_interleave(row_scale, count,
                                    output_size=col.numel()) * col_scale[col]
    conv = LightGODEConv(t=t, normalize=False)
    return conv((table, x), csr_tensor(ptr, col, value, table.size(0)))


def _gather_rows(ptr: Tensor, col: Tensor, rows: Tensor
                 ) -> Tuple[Tensor, Tensor]:
    r"""The entries of CSR rows :obj:`rows` (ids beyond the CSR have none)
    as :obj:`(local row, col)`."""
    num = ptr.numel() - 1
    inside = rows < num
    start = torch.zeros_like(rows)
    count = torch.zeros_like(rows)
    start[inside] = ptr[rows[inside]]
    count[inside] = ptr[rows[inside] + 1] - start[inside]
    total = int(count.sum())
    local = torch.repeat_interleave(
        torch.arange(rows.numel(), device=rows.device), count,
        output_size=total)
    offset = torch.cumsum(count, 0) - count
    pos = torch.arange(total, device=rows.device) - offset[local] + \
        start[local]
    return local, col[pos]


def new_node_rows(rule: str, ptr: Tensor, col: Tensor, table: Tensor,
                  scale: float) -> Tensor:
    r""":math:`\mathbf{E}_0` rows of new nodes by :obj:`rule`
    (:data:`E0_RULES`) from their neighbours' rows :obj:`table[col]`,
    given as a CSR (:obj:`ptr` over the new nodes, :obj:`col` sorted within
    each row). :obj:`scale` is the norm of an :obj:`'neighbour-mean'` row.
    Nodes without neighbours get zeros."""
    rule = _check_rule(rule)
    num = ptr.numel() - 1
    if rule == 'zero' or num == 0:
        return table.new_zeros(num, table.size(1))
    count = (ptr[1:] - ptr[:-1]).to(table.dtype)
    # Only the neighbours' rows are read (one per entry); a CSR over them
    # sums each node's rows in entry order, whatever the other nodes are.
    rows = table[col]
    if rule == 'neighbour-mean':
        rows = F.normalize(rows, dim=-1)
    out = csr_tensor(ptr, torch.arange(col.numel(), device=col.device),
                     table.new_ones(col.numel()), col.numel()) @ rows
    if rule == 'mean':
        return out / count.clamp_min(1).unsqueeze(-1)
    return F.normalize(out, dim=-1) * scale


def mean_row_norm(table: Tensor, degree: Tensor) -> float:
    r"""Mean L2 norm of the rows of nodes with at least one interaction
    (the trained ones); of all rows if none has one; :obj:`1.0` for an
    empty table."""
    if table.size(0) == 0:
        return 1.0
    norms = table.norm(dim=-1)
    seen = degree[:table.size(0)] > 0
    out = norms[seen].mean() if bool(seen.any()) else norms.mean()
    return float(out)


def one_step(user_e0: Tensor, item_e0: Tensor, edge_index: Tensor,
             t: float = 3.0) -> Tuple[Tensor, Tensor]:
    r"""Full one-step LightGODE propagation of the tables over the
    bipartite :obj:`edge_index`: the full recompute a fold-in equals
    exactly. The operator of :class:`~pyg_lightgode.nn.conv.LightGODEConv`
    (default one-step Euler) on the homogeneous graph.

    Returns:
        :obj:`(user_emb [U, F], item_emb [I, F])`.
    """
    user_e0 = _check_table(user_e0, 'user_e0')
    item_e0 = _check_table(item_e0, 'item_e0')
    t = _check_time(t)
    U, I = user_e0.size(0), item_e0.size(0)
    index = check_interactions(edge_index, U, I, 'edge_index')
    du = torch.bincount(index[0], minlength=U).to(user_e0.dtype)
    di = torch.bincount(index[1], minlength=I).to(item_e0.dtype)
    su, si = inv_sqrt_degree(du), inv_sqrt_degree(di)
    row, col = _sorted_rows(index[0], index[1])
    user = _step(index2ptr(row, U), col, su, si, item_e0, user_e0, t)
    row, col = _sorted_rows(index[1], index[0])
    item = _step(index2ptr(row, I), col, si, su, user_e0, item_e0, t)
    return user, item


# --------------------------------------------------------------------------
# State with incremental updates
# --------------------------------------------------------------------------
class _Rows:
    r"""A table whose rows can be appended without copying it every time
    (capacity grows geometrically); :obj:`view` is the used part."""
    def __init__(self, data: Tensor):
        self._data, self.n = data, data.size(0)

    @property
    def view(self) -> Tensor:
        return self._data[:self.n]

    def append(self, rows: Tensor) -> None:
        need = self.n + rows.size(0)
        if need > self._data.size(0):
            cap = max(need, int(self._data.size(0) * 1.5) + 16)
            data = self._data.new_empty((cap, ) + self._data.shape[1:])
            data[:self.n] = self.view
            self._data = data
        self._data[self.n:need] = rows
        self.n = need


@dataclass
class FoldInUpdate:
    r"""What :meth:`LightGODEFoldIn.add` changed.

    Attributes:
        users (torch.Tensor): Ids of the user rows that were recomputed.
        items (torch.Tensor): Ids of the item rows that were recomputed.
        new_users (torch.Tensor): Ids given to the new users.
        new_items (torch.Tensor): Ids given to the new items.
        num_edges (int): Interactions added.
        num_dropped (int): Interactions dropped because the graph already
            held them or the update repeated them.
        full (bool): Whether everything was recomputed instead.
    """
    users: Tensor
    items: Tensor
    new_users: Tensor
    new_items: Tensor
    num_edges: int
    num_dropped: int
    full: bool


class LightGODEFoldIn:
    r"""Trained LightGODE tables, their interaction graph and their
    propagation, kept up to date as interactions, users and items arrive,
    without gradient steps (see :mod:`pyg_lightgode.apps.serving.fold_in`).

    .. code-block:: python

        fold = LightGODEFoldIn(model.user_embedding.weight,
                               model.item_embedding.weight,
                               split.train_index, t=3.0)
        # Two new users (ids U, U+1) with their first interactions:
        fold.add(torch.tensor([[U, U, U + 1], [4, 9, 4]]), num_new_users=2)
        users, items = fold.user_embedding, fold.item_embedding

    Args:
        user_emb (torch.Tensor): Trained user table :math:`[U, F]`.
        item_emb (torch.Tensor): Trained item table :math:`[I, F]`.
        edge_index (torch.Tensor): The bipartite training interactions
            :obj:`[2, E]` (user ids, item ids). Repeated pairs count as
            many times as they occur, as in
            :class:`~pyg_lightgode.nn.conv.LightGODEConv`.
        t (float, optional): ODE end time. (default: :obj:`3.0`)
        rule (str, optional): Default :math:`\mathbf{E}_0` rule for new
            nodes, see :data:`E0_RULES`. (default: :data:`DEFAULT_E0_RULE`)
        method (str, optional): :obj:`'euler'` (the one-step form,
            updated incrementally) or any other
            :class:`~pyg_lightgode.nn.conv.LightGODEConv` method, for which
            every update recomputes the whole propagation.
        compact_every (float, optional): Added interactions are kept in a
            side list and merged into the sorted adjacency once they exceed
            this share of it (a merge sorts all interactions once).
            (default: :obj:`0.05`)

    Attributes:
        user_embedding, item_embedding (torch.Tensor): The propagated
            tables :math:`[U, F]`, :math:`[I, F]` (views; updated in place).
        user_e0, item_e0 (torch.Tensor): The :math:`\mathbf{E}_0` tables,
            trained rows followed by folded-in ones.
        user_scale, item_scale (float): Norm of an :obj:`'neighbour-mean'`
            row (mean norm of the trained rows with an interaction).
    """
    def __init__(self, user_emb: Tensor, item_emb: Tensor,
                 edge_index: Tensor, t: float = 3.0,
                 rule: str = DEFAULT_E0_RULE, method: str = 'euler',
                 compact_every: float = 0.05):
        user_emb = _check_table(user_emb, 'user_emb')
        item_emb = _check_table(item_emb, 'item_emb')
        if user_emb.size(1) != item_emb.size(1) or \
                user_emb.dtype != item_emb.dtype:
            raise ValueError(f"'user_emb' and 'item_emb' must have the same "
                             f"width and dtype (got {list(user_emb.shape)} "
                             f"{user_emb.dtype} and {list(item_emb.shape)} "
                             f"{item_emb.dtype})")
        if user_emb.size(0) == 0 or item_emb.size(0) == 0:
            raise ValueError("'user_emb' and 'item_emb' need at least one "
                             "row each")
        if user_emb.size(0) >= _KEY or item_emb.size(0) >= _KEY:
            raise ValueError(f"at most {_KEY - 1} users and items")
        self.t = _check_time(t)
        self.rule = _check_rule(rule)
        if not isinstance(method, str):
            raise ValueError(f"'method' must be a string (got {method!r})")
        if method != 'euler':
            check_method(method)
        self.method = method
        if isinstance(compact_every, bool) or \
                not isinstance(compact_every, (int, float)) or \
                not compact_every >= 0:
            raise ValueError(f"'compact_every' must be a number >= 0 (got "
                             f"{compact_every!r})")
        self.compact_every = float(compact_every)
        index = check_interactions(edge_index, user_emb.size(0),
                                   item_emb.size(0), 'edge_index')
        dtype = user_emb.dtype
        self._user_e0 = _Rows(user_emb.clone())
        self._item_e0 = _Rows(item_emb.clone())
        self._du = _Rows(torch.bincount(index[0], minlength=user_emb.size(
            0)).to(dtype))
        self._di = _Rows(torch.bincount(index[1], minlength=item_emb.size(
            0)).to(dtype))
        self.user_scale = mean_row_norm(user_emb, self._du.view)
        self.item_scale = mean_row_norm(item_emb, self._di.view)
        self._base(index)
        self._new_u = index.new_empty(0)
        self._new_i = index.new_empty(0)
        users, items = self._full()
        self._user_out, self._item_out = _Rows(users), _Rows(items)

    # -- graph -------------------------------------------------------------
    def _base(self, index: Tensor) -> None:
        row, col = _sorted_rows(index[0], index[1])
        self._keys = row * _KEY + col  # sorted: duplicate look-ups
        self._uptr = index2ptr(row, self._user_e0.n)
        self._ucol = col
        row, col = _sorted_rows(index[1], index[0])
        self._iptr = index2ptr(row, self._item_e0.n)
        self._icol = col

    @property
    def num_users(self) -> int:
        return self._user_e0.n

    @property
    def num_items(self) -> int:
        return self._item_e0.n

    @property
    def num_edges(self) -> int:
        return self._ucol.numel() + self._new_u.numel()

    @property
    def edge_index(self) -> Tensor:
        r"""Every interaction :obj:`[2, E]`, sorted by (user, item)."""
        row, col = _sorted_rows(torch.cat([self._base_rows(), self._new_u]),
                                torch.cat([self._ucol, self._new_i]))
        return torch.stack([row, col])

    def _base_rows(self) -> Tensor:
        count = self._uptr[1:] - self._uptr[:-1]
        return torch.repeat_interleave(
            torch.arange(count.numel(), device=count.device), count,
            output_size=self._ucol.numel())

    @property
    def user_e0(self) -> Tensor:
        return self._user_e0.view

    @property
    def item_e0(self) -> Tensor:
        return self._item_e0.view

    @property
    def user_embedding(self) -> Tensor:
        return self._user_out.view

    @property
    def item_embedding(self) -> Tensor:
        return self._item_out.view

    @property
    def user_degree(self) -> Tensor:
        return self._du.view

    @property
    def item_degree(self) -> Tensor:
        return self._di.view

    def compact(self) -> None:
        r"""Merges the added interactions into the sorted adjacency (the
        results do not change)."""
        if self._new_u.numel():
            self._base(self.edge_index)
            self._new_u = self._new_u[:0]
            self._new_i = self._new_i[:0]

    def _neighbours(self, side: str, rows: Tensor) -> Tuple[Tensor, Tensor]:
        r"""CSR :obj:`(ptr, col)` of the neighbour lists of :obj:`rows`
        (sorted ids) of :obj:`side`, sorted as a full rebuild sorts them."""
        if side == 'user':
            ptr, col, new_row, new_col = (self._uptr, self._ucol,
                                          self._new_u, self._new_i)
        else:
            ptr, col, new_row, new_col = (self._iptr, self._icol,
                                          self._new_i, self._new_u)
        if rows.numel() == ptr.numel() - 1 and not new_row.numel():
            return ptr, col  # Every row (rows are sorted ids): as stored.
        local, cols = _gather_rows(ptr, col, rows)
        if new_row.numel() and rows.numel():
            pos = torch.searchsorted(rows, new_row).clamp_max(rows.numel() - 1)
            hit = rows[pos] == new_row
            if bool(hit.any()):
                local = torch.cat([local, pos[hit]])
                cols = torch.cat([cols, new_col[hit]])
                local, cols = _sorted_rows(local, cols)
        return index2ptr(local, rows.numel()), cols

    # -- propagation -------------------------------------------------------
    def _rows(self, side: str, rows: Tensor) -> Tensor:
        r"""Propagated rows :obj:`rows` (sorted ids) of :obj:`side`."""
        ptr, col = self._neighbours(side, rows)
        if side == 'user':
            x, own, other, table = (self.user_e0[rows], self._du.view,
                                    self._di.view, self.item_e0)
        else:
            x, own, other, table = (self.item_e0[rows], self._di.view,
                                    self._du.view, self.user_e0)
        return _step(ptr, col, inv_sqrt_degree(own[rows]),
                     inv_sqrt_degree(other), table, x, self.t)

    def _full(self) -> Tuple[Tensor, Tensor]:
        if self.method == 'euler':
            device = self._ucol.device
            return (self._rows('user', torch.arange(self.num_users,
                                                    device=device)),
                    self._rows('item', torch.arange(self.num_items,
                                                    device=device)))
        from pyg_lightgode.data.bipartite import bipartite_to_adj_t
        from pyg_lightgode.nn.conv import LightGODEConv
        adj_t = bipartite_to_adj_t(self.edge_index, self.num_users,
                                   self.num_items)
        out = LightGODEConv(t=self.t, method=self.method)(
            torch.cat([self.user_e0, self.item_e0]), adj_t)
        return out[:self.num_users], out[self.num_users:]

    def recompute(self) -> Tuple[Tensor, Tensor]:
        r"""Recomputes the whole propagation from the current tables and
        graph (the reference for :meth:`add`); returns fresh tensors and
        leaves the state as it is."""
        return self._full()

    # -- updates -----------------------------------------------------------
    def _new_edges(self, index: Tensor) -> Tuple[Tensor, int]:
        r"""Drops pairs the graph already holds and repeats within
        :obj:`index`."""
        if index.size(1) == 0:
            return index, 0
        key = index[0] * _KEY + index[1]
        key = torch.unique(key)
        keep = torch.ones_like(key, dtype=torch.bool)
        if self._keys.numel():
            pos = torch.searchsorted(self._keys, key).clamp_max(
                self._keys.numel() - 1)
            keep &= self._keys[pos] != key
        if self._new_u.numel():
            keep &= ~torch.isin(key, self._new_u * _KEY + self._new_i)
        key = key[keep]
        out = torch.stack([key // _KEY, key % _KEY])
        return out, index.size(1) - out.size(1)

    def add(self, edge_index: Optional[Tensor] = None,
            num_new_users: int = 0, num_new_items: int = 0,
            user_e0: Optional[Tensor] = None,
            item_e0: Optional[Tensor] = None,
            rule: Optional[str] = None) -> FoldInUpdate:
        r"""Folds in :obj:`num_new_users` new users (ids
        :obj:`num_users..`), :obj:`num_new_items` new items and the
        interactions :obj:`edge_index` (between any users and items,
        old or new; ids after the new nodes are appended), then recomputes
        only the rows that change.

        A pair that the graph already holds, or that :obj:`edge_index`
        repeats, is dropped (counted in :obj:`num_dropped`): interactions
        are a set once training is over. Removing interactions is not
        supported.

        Args:
            edge_index (torch.Tensor, optional): New interactions
                :obj:`[2, E_new]`.
            num_new_users (int, optional): New users to append.
            num_new_items (int, optional): New items to append.
            user_e0 (torch.Tensor, optional): :math:`\mathbf{E}_0` rows of
                the new users :obj:`[num_new_users, F]` (default: by
                :obj:`rule`).
            item_e0 (torch.Tensor, optional): Same for the new items.
            rule (str, optional): :math:`\mathbf{E}_0` rule for new nodes
                without given rows (default: the one given at construction).
        """
        rule = self.rule if rule is None else _check_rule(rule)
        nu = _check_count(num_new_users, 'num_new_users')
        ni = _check_count(num_new_items, 'num_new_items')
        U0, I0 = self.num_users, self.num_items
        U, I = U0 + nu, I0 + ni
        if U >= _KEY or I >= _KEY:
            raise ValueError(f"at most {_KEY - 1} users and items")
        if edge_index is None:
            edge_index = self._ucol.new_empty(2, 0)
        index = check_interactions(edge_index, U, I, 'edge_index').to(
            self._ucol.device)
        F_ = self.user_e0.size(1)
        for name, rows, n in (('user_e0', user_e0, nu),
                              ('item_e0', item_e0, ni)):
            if rows is not None:
                rows = _check_table(rows, name)
                if list(rows.shape) != [n, F_]:
                    raise ValueError(f"'{name}' must have shape [{n}, {F_}] "
                                     f"(got {list(rows.shape)})")
        index, dropped = self._new_edges(index)
        new_users = torch.arange(U0, U, device=index.device)
        new_items = torch.arange(I0, I, device=index.device)
        # E0 rows of the new nodes from the neighbours that existed before.
        if user_e0 is None:
            user_e0 = self._rule_rows(rule, index, 0, U0, I0, nu)
        if item_e0 is None:
            item_e0 = self._rule_rows(rule, index, 1, I0, U0, ni)
        dtype = self.user_e0.dtype
        self._user_e0.append(user_e0.to(dtype))
        self._item_e0.append(item_e0.to(dtype))
        self._du.append(self._du.view.new_zeros(nu))
        self._di.append(self._di.view.new_zeros(ni))
        self._du.view.index_add_(0, index[0], self._du.view.new_ones(
            index.size(1)))
        self._di.view.index_add_(0, index[1], self._di.view.new_ones(
            index.size(1)))
        self._new_u = torch.cat([self._new_u, index[0]])
        self._new_i = torch.cat([self._new_i, index[1]])
        # Rows to recompute: nodes with a new edge or E0 row, and their
        # neighbours (their normalisation saw the degree change).
        su = torch.unique(torch.cat([index[0], new_users]))
        si = torch.unique(torch.cat([index[1], new_items]))
        if self.method != 'euler':
            users, items = self._full()
            self._user_out = _Rows(users)
            self._item_out = _Rows(items)
            self._maybe_compact()
            return FoldInUpdate(torch.arange(U, device=index.device),
                                torch.arange(I, device=index.device),
                                new_users,
                                new_items, index.size(1), dropped, True)
        ptr, cols = self._neighbours('item', si)
        users = torch.unique(torch.cat([su, cols]))
        ptr, cols = self._neighbours('user', su)
        items = torch.unique(torch.cat([si, cols]))
        self._user_out.append(self.user_e0.new_zeros(nu, F_))
        self._item_out.append(self.item_e0.new_zeros(ni, F_))
        user_rows = self._rows('user', users)
        item_rows = self._rows('item', items)
        self._user_out.view[users] = user_rows
        self._item_out.view[items] = item_rows
        self._maybe_compact()
        return FoldInUpdate(users, items, new_users, new_items, index.size(1),
                            dropped, False)

    def _maybe_compact(self) -> None:
        if self._new_u.numel() > self.compact_every * max(
                self._ucol.numel(), 1):
            self.compact()

    def _rule_rows(self, rule: str, index: Tensor, side: int, old: int,
                   old_other: int, num: int) -> Tensor:
        r""":math:`\mathbf{E}_0` rows of the :obj:`num` new nodes of
        :obj:`side` (0 users, 1 items) from their neighbours that existed
        before the update."""
        node, other = index[side], index[1 - side]
        mask = (node >= old) & (other < old_other)
        row, col = _sorted_rows(node[mask] - old, other[mask])
        table = self.item_e0 if side == 0 else self.user_e0
        scale = self.user_scale if side == 0 else self.item_scale
        return new_node_rows(rule, index2ptr(row, num), col, table, scale)

    # -- anonymous users ---------------------------------------------------
    def history_rows(self, histories, rule: Optional[str] = None) -> Tensor:
        r"""Propagated rows :math:`[b, F]` of :math:`b` anonymous users,
        each given by the item ids of its history, *as if* each had been
        folded in alone by :meth:`add` (the state does not change): the
        row :meth:`add` would give that user, bit for bit. Repeated items
        in a history count once.

        Only the user's own row and the rows of its items change when it
        is folded in, so scoring this row against :attr:`item_embedding`
        with the history's items excluded ranks exactly as after a full
        fold-in.

        Args:
            histories (list of torch.Tensor): 1-D item id tensors (checked
                by the caller; ids in :obj:`0..num_items-1`).
            rule (str, optional): :math:`\mathbf{E}_0` rule (default: the
                state's).
        """
        rule = self.rule if rule is None else _check_rule(rule)
        if len(histories) == 0:
            return self.user_e0.new_empty(0, self.user_e0.size(1))
        items = [torch.unique(h.long()).to(self._ucol.device)
                 for h in histories]
        count = torch.tensor([h.numel() for h in items],
                             device=self._ucol.device)
        col = torch.cat(items)
        ptr = cumsum(count)
        e0 = new_node_rows(rule, ptr, col, self.item_e0, self.user_scale)
        if self.method != 'euler':
            raise NotImplementedError(
                "history_rows needs the one-step 'euler' method (an accurate "
                "solver changes every row; fold the user in with add())")
        own = count.to(self.item_e0.dtype)
        # Each user sees its items' degrees with itself added (histories
        # are folded in one at a time, not together).
        return _step(ptr, col, inv_sqrt_degree(own),
                     inv_sqrt_degree(self._di.view + 1), self.item_e0, e0,
                     self.t)
