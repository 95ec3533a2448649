r"""Exact top-:math:`k` retrieval with the items split across ranks.

Each rank holds the embeddings of its users and of its shard of the items.
Batches of every rank's users are gathered, every rank ranks them against
its item shard with :func:`~pyg_lightgode.metrics.retrieval.exact_topk`
(leaving out the excluded pairs that fall in its shard), the partial lists
go back to the users' owners (one :func:`torch.distributed.all_to_all_single`)
and :func:`~pyg_lightgode.metrics.retrieval.merge_topk` merges them.
"""
import time
from typing import Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from pyg_lightgode.apps.distributed.partition import (
    _world,
    collective_device,
    count_comm,
)
from pyg_lightgode.apps.training.distributed import all_gather_rows
from pyg_lightgode.metrics.retrieval import exact_topk, merge_topk
from pyg_lightgode.sampler.random_walk import to_csr


def _excluded_rows(users: Tensor, rowptr: Tensor,
                   items: Tensor) -> Tuple[Tensor, Tensor]:
    r""":obj:`(row, item)` of the excluded pairs of the batch :obj:`users`
    from the CSR :obj:`(rowptr, items)` over users."""
    start, count = rowptr[users], rowptr[users + 1] - rowptr[users]
    row = torch.repeat_interleave(torch.arange(users.numel()), count)
    offset = torch.arange(row.numel()) - torch.repeat_interleave(
        torch.cumsum(count, 0) - count, count)
    return row, items[start[row] + offset]


@torch.no_grad()
def sharded_topk(user_emb: Tensor, user_ids: Tensor, item_emb: Tensor,
                 item_ids: Tensor, k: int, num_users: int,
                 exclude_links: Tensor = None, batch_size: int = 1024,
                 group=None) -> Tuple[Tensor, Tensor]:
    r"""The top-:obj:`k` items of this rank's users over all ranks' items
    (collective).

    Args:
        user_emb (torch.Tensor): This rank's users' embeddings :obj:`[U_r,
            F]`.
        user_ids (torch.Tensor): Their global ids :obj:`[U_r]`.
        item_emb (torch.Tensor): This rank's item shard :obj:`[I_r, F]`.
        item_ids (torch.Tensor): Its global item ids :obj:`[I_r]`.
        k (int): Items per user.
        num_users (int): Number of users of all ranks.
        exclude_links (torch.Tensor, optional): :obj:`(user, item)` pairs
            never to return :obj:`[2, E]` (global ids); only those with an
            item of this rank's shard are used.
        batch_size (int, optional): Users per rank and round.

    Returns:
        :obj:`(index, score)` of shape :obj:`[U_r, k]`, global item ids,
        best first (:func:`~pyg_lightgode.metrics.retrieval.exact_topk`'s
        padding where fewer remain).
    """
    rank, world_size = _world(group)
    local_of = torch.full((int(item_ids.max()) + 1 if item_ids.numel()
                           else 1, ), -1, dtype=torch.long)
    local_of[item_ids] = torch.arange(item_ids.numel())
    if exclude_links is not None:
        inside = exclude_links[1] < local_of.numel()
        links = exclude_links[:, inside]
        links = links[:, local_of[links[1]] >= 0]
        rowptr, items = to_csr(links[0], local_of[links[1]], num_users)
    steps = torch.tensor([-(-user_emb.size(0) // batch_size)],
                         device=collective_device(group))
    if world_size > 1:
        dist.all_reduce(steps, op=dist.ReduceOp.MAX, group=group)
    index_out, score_out = [], []
    for step in range(int(steps)):
        query = user_emb[step * batch_size:(step + 1) * batch_size]
        ids = user_ids[step * batch_size:(step + 1) * batch_size]
        begin = time.perf_counter()
        all_query, all_ids = all_gather_rows(query), all_gather_rows(ids)
        count_comm(all_query.numel() * all_query.element_size(), begin)
        excluded = None if exclude_links is None else \
            _excluded_rows(all_ids, rowptr, items)
        if item_emb.size(0):
            index, score = exact_topk(all_query, item_emb, k, excluded)
            index = torch.where(index >= 0, item_ids[index.clamp_min(0)],
                                index)
        else:
            index = torch.full((all_query.size(0), k), -1, dtype=torch.long)
            score = all_query.new_full((all_query.size(0), k),
                                       float('-inf'))
        if world_size > 1:  # Each user's partial lists to its owner.
            begin = time.perf_counter()
            sizes = all_gather_rows(torch.tensor([query.size(0)]))
            splits = sizes.tolist()
            device = collective_device(group)
            recv_index = torch.empty(world_size * query.size(0), k,
                                     dtype=torch.long, device=device)
            recv_score = score.new_empty(world_size * query.size(0),
                                         k).to(device)
            dist.all_to_all_single(recv_index, index.to(device),
                                   [query.size(0)] * world_size, splits,
                                   group=group)
            dist.all_to_all_single(recv_score, score.to(device),
                                   [query.size(0)] * world_size, splits,
                                   group=group)
            count_comm(2 * (index.numel() * 8 + score.numel() *
                            score.element_size()), begin)
            best = None
            for part_index, part_score in zip(
                    recv_index.cpu().split(query.size(0)),
                    recv_score.cpu().split(query.size(0))):
                best = merge_topk(best, part_index, part_score, k)
            index, score = best
        index_out.append(index)
        score_out.append(score)
    return torch.cat(index_out), torch.cat(score_out)
