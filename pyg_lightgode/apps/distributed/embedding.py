r"""Embedding tables whose rows are split across ranks, for tables larger
than one process: a lookup sends each id to the rank owning its row and
gets the row back (two :func:`torch.distributed.all_to_all_single`), and
the backward pass sends each row's gradient back to its owner, where the
gradients of all ranks add up. With every rank's share of a global batch,
the gradients of the local rows are those of the replicated table (the
DDP path of :mod:`pyg_lightgode.apps.training.distributed`), without any
rank holding the whole table.

TorchRec's sharded tables are the production form of this; no TorchRec
wheel is installed for the package's torch (2.13), so this module uses
:mod:`torch.distributed` alone.
"""
import time
from typing import List, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from pyg_lightgode.apps.distributed.partition import (
    NodeSplit,
    _world,
    collective_device,
    count_comm,
)
from pyg_lightgode.apps.training.distributed import all_gather_rows
from pyg_lightgode.nn.models.lightgode import alignment_loss, uniformity_loss


def _exchange(x: Tensor, send: List[int], recv: List[int],
              group) -> Tensor:
    begin = time.perf_counter()
    device = collective_device(group)
    out = x.new_empty((sum(recv), ) + x.shape[1:], device=device)
    dist.all_to_all_single(out, x.to(device).contiguous(), recv, send,
                           group=group)
    count_comm((x.numel() + out.numel()) * x.element_size(), begin)
    return out.to(x.device)


def _route(ids: Tensor, split: NodeSplit,
           group) -> Tuple[Tensor, Tensor, List[int], List[int]]:
    r"""Sends :obj:`ids` to their owners: returns the order that groups
    them by owner, the local rows requested from this rank, and the
    split sizes (sent, received)."""
    world_size = split.world_size
    owner = split.owner(ids)
    order = torch.argsort(owner, stable=True)
    send = torch.bincount(owner, minlength=world_size)
    recv = _exchange(send, [1] * world_size, [1] * world_size, group)
    send, recv = send.tolist(), recv.tolist()
    requested = _exchange(split.local(ids[order]), send, recv, group)
    return order, requested, send, recv


class _Lookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: Tensor, ids: Tensor, split: NodeSplit,
                group) -> Tensor:
        order, requested, send, recv = _route(ids, split, group)
        rows = _exchange(weight.index_select(0, requested), recv, send,
                         group)
        out = torch.empty_like(rows)
        out[order] = rows
        ctx.save_for_backward(order, requested)
        ctx.splits, ctx.group, ctx.num_rows = (send, recv), group, \
            weight.size(0)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        order, requested = ctx.saved_tensors
        send, recv = ctx.splits
        rows = _exchange(grad[order], send, recv, ctx.group)
        out = grad.new_zeros((ctx.num_rows, ) + grad.shape[1:])
        out.index_add_(0, requested, rows)
        return out, None, None, None


class ShardedEmbedding(torch.nn.Module):
    r"""This rank's rows of an embedding table split by a
    :class:`~pyg_lightgode.apps.distributed.partition.NodeSplit`;
    :meth:`forward` looks up any global ids (collective: every rank calls
    it, possibly with no ids).

    Args:
        split (NodeSplit): Who owns which row.
        weight (torch.Tensor): This rank's rows :obj:`[n, F]` (its local
            order), *e.g.* :obj:`split.take(full_init, rank)` or a seeded
            initialisation of its rows.
    """
    def __init__(self, split: NodeSplit, weight: Tensor, group=None):
        super().__init__()
        self.split, self.group = split, group
        rank = _world(group)[0]
        if weight.size(0) != split.num_local(rank):
            raise ValueError(f"'weight' must hold this rank's "
                             f"{split.num_local(rank)} rows (got "
                             f"{weight.size(0)})")
        self.weight = torch.nn.Parameter(weight.detach().clone())

    def forward(self, ids: Tensor) -> Tensor:
        if self.split.world_size == 1:
            return self.weight[self.split.local(ids)]
        return _Lookup.apply(self.weight, ids, self.split, self.group)


def sharded_recommendation_loss(user_table: ShardedEmbedding,
                                item_table: ShardedEmbedding,
                                user_index: Tensor, item_index: Tensor,
                                batch_size: int, gamma: float,
                                group=None) -> Tensor:
    r"""This rank's part of
    :meth:`~pyg_lightgode.nn.models.LightGODE.recommendation_loss` on its
    share :obj:`(user_index, item_index)` of a global batch of
    :obj:`batch_size` pairs, scaled so that the gradients reaching the
    owners' rows add up to those of the loss on the whole batch: the
    alignment by :math:`n_r / B`, the uniformity (over the gathered batch,
    the same on every rank) by :math:`1 / W`."""
    world_size = _world(group)[1]
    u, i = user_table(user_index), item_table(item_index)
    align = alignment_loss(u, i) * (user_index.numel() / batch_size) \
        if user_index.numel() else u.sum() * 0
    u, i = all_gather_rows(u), all_gather_rows(i)
    return align + gamma * (uniformity_loss(u) + uniformity_loss(i)) / 2 \
        / world_size
