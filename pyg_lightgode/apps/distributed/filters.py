r"""The training-free filters with their users split across ranks.

Every rank holds the interaction rows of its users only (:math:`\tilde{R}_r`,
:math:`|U_r| \times |I|`). The item degrees are summed over the ranks, the
ideal filter's basis comes from the core's block Krylov method with every
product :math:`\tilde{P} X = \sum_r \tilde{R}_r^\top \tilde{R}_r X` and the
Gram matrix all-reduced (so every rank holds the same :math:`V`), and
scoring a batch of each rank's users runs the core filter with that same
distributed item--item product: the ranks' batches are gathered as the
columns of one signal, each rank multiplies by its :math:`\tilde{R}_r`, the
partial products are summed, and each rank keeps its own columns.

Scoring is collective: every rank calls :meth:`score` the same number of
times (:func:`score_users` pads with empty batches).
"""
import time
from typing import Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from pyg_lightgode.apps.distributed.partition import (
    _world,
    all_reduce,
    collective_device,
    count_comm,
    edge_balanced_bounds,
)
from pyg_lightgode.nn.filters.operators import item_item
from pyg_lightgode.nn.models import BSPM, GFCF, ChebyCF
from pyg_lightgode.nn.ode import FIXED_STEP_METHODS


def user_bounds(index: Tensor, num_users: int, world_size: int) -> List[int]:
    r"""Contiguous user ranges balanced by interactions, one per rank."""
    return edge_balanced_bounds(torch.bincount(index[0],
                                               minlength=num_users),
                                world_size)


def local_interactions(index: Tensor, bounds: List[int],
                       rank: int) -> Tensor:
    r"""The interactions of rank :obj:`rank`'s users, user ids made local
    (:obj:`user - bounds[rank]`)."""
    mine = (index[0] >= bounds[rank]) & (index[0] < bounds[rank + 1])
    out = index[:, mine].clone()
    out[0] -= bounds[rank]
    return out


def gather_columns(x: Tensor, group=None) -> Tuple[Tensor, List[int]]:
    r"""The columns :obj:`[I, b_r]` of every rank side by side
    :obj:`[I, sum b]`, and each rank's :math:`b_r`."""
    _, world_size = _world(group)
    if world_size == 1:
        return x, [x.size(1)]
    begin = time.perf_counter()
    device = collective_device(group)
    size = torch.tensor([x.size(1)], device=device)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s) for s in sizes]
    width = max(sizes)
    pad = x.new_zeros(x.size(0), width).to(device)
    pad[:, :x.size(1)] = x
    parts = [torch.empty_like(pad) for _ in range(world_size)]
    dist.all_gather(parts, pad, group=group)
    count_comm(world_size * pad.numel() * pad.element_size(), begin)
    return torch.cat([p[:, :n] for p, n in zip(parts, sizes)],
                     dim=1).to(x.device), sizes


class _UserPartitioned:
    r"""Mixin of a core filter whose fitted users are one rank's block."""
    group = None

    def fit(self, graph, group=None):
        r"""Fits to this rank's users' interactions :obj:`graph`
        (:obj:`[2, E_r]`, local user ids, :obj:`num_users` of them); the
        item degrees and the basis are those of all ranks together
        (collective)."""
        self.group = group
        return self._fit_spectral(graph, self._needs_basis(),
                                  lambda t: all_reduce(t, group))

    def _item_item(self, x: Tensor) -> Tensor:
        rank, _ = _world(self.group)
        signal, sizes = gather_columns(x, self.group)
        out = all_reduce(item_item(signal, self.graph), self.group)
        start = sum(sizes[:rank])
        return out[:, start:start + sizes[rank]]


class DistributedGFCF(_UserPartitioned, GFCF):
    r""":class:`~pyg_lightgode.nn.models.GFCF` over this rank's users
    (same arguments, :obj:`num_users` the rank's users)."""


class DistributedBSPM(_UserPartitioned, BSPM):
    r""":class:`~pyg_lightgode.nn.models.BSPM` over this rank's users.
    Blurring and sharpening take the fixed-step solvers only: the
    :obj:`'exact'` series and the adaptive methods would stop or step on
    each rank's own norms."""
    def fit(self, graph, group=None):
        for name, flow in (('blur', self.blur), ('sharpen', self.sharpen)):
            if flow.method not in FIXED_STEP_METHODS:
                raise ValueError(f"'{name}_method' must be a fixed-step "
                                 f"method across ranks (got "
                                 f"{flow.method!r})")
        return super().fit(graph, group)


class DistributedChebyCF(_UserPartitioned, ChebyCF):
    r""":class:`~pyg_lightgode.nn.models.ChebyCF` over this rank's users."""


def score_users(model, batch_size: int, users: Optional[Tensor] = None,
                group=None) -> Iterator[Tuple[Tensor, Tensor]]:
    r"""Yields :obj:`(users, scores [b, I])` for batches of this rank's
    fitted :obj:`users` (local ids; default: all) in order; every rank runs
    the same number of (possibly empty) batches (collective)."""
    if users is None:
        users = torch.arange(model.num_users)
    num_users = users.numel()
    steps = torch.tensor([float(-(-num_users // batch_size))],
                         dtype=torch.float64)
    if _world(group)[1] > 1:
        steps = steps.to(collective_device(group))
        dist.all_reduce(steps, op=dist.ReduceOp.MAX, group=group)
    for step in range(int(steps)):
        batch = users[step * batch_size:(step + 1) * batch_size]
        if batch.numel():
            yield batch, model.score(batch)
        else:  # Keeps the collectives in step with the other ranks.
            model.filter(torch.zeros(model.num_items, 0))
