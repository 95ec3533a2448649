r"""Item-to-item retrieval metrics of PinSage's offline evaluation: for
held-out (query item, target item) pairs, the target is ranked among all
items by the inner product with the query's embedding (the query itself
left out).

With :math:`r` the 1-based rank of the target (ties counted against it:
:math:`r = |\{j \ne q : \mathbf{z}_q^{\top}\mathbf{z}_j \geq
\mathbf{z}_q^{\top}\mathbf{z}_t\}|`, so constant embeddings rank every
target last),

.. math::
    \mathrm{HitRate@K} = \frac{1}{|P|} \sum_{(q, t) \in P} [r \le K],
    \qquad
    \mathrm{MRR}_s = \frac{1}{|P|} \sum_{(q, t) \in P}
    \frac{1}{\lceil r / s \rceil},

the paper's scaled MRR with scale :math:`s = 100` (for a catalogue of
millions); :math:`s = 1` is the plain MRR.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from pyg_lightgode.data.bipartite import check_interactions


def _check_pairs(item_emb: Tensor, query: Tensor,
                 target: Tensor) -> Tuple[Tensor, Tensor]:
    if not isinstance(item_emb, Tensor) or item_emb.dim() != 2:
        raise ValueError(f"'item_emb' must be a 2-D tensor [I, D] (got "
                         f"{getattr(item_emb, 'shape', type(item_emb))})")
    if not bool(torch.isfinite(item_emb).all()):
        raise ValueError("'item_emb' holds NaN or infinite values")
    num_items = item_emb.size(0)
    out = []
    for name, ids in (('query', query), ('target', target)):
        if not isinstance(ids, Tensor) or ids.dim() != 1 or \
                ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"'{name}' must be a 1-D tensor of item ids "
                             f"(got {getattr(ids, 'shape', type(ids))})")
        ids = ids.long()
        if ids.numel() > 0 and (int(ids.min()) < 0
                                or int(ids.max()) >= num_items):
            raise ValueError(f"'{name}' holds item ids in [{int(ids.min())}, "
                             f"{int(ids.max())}], outside [0, "
                             f"{num_items - 1}]")
        out.append(ids.to(item_emb.device))
    query, target = out
    if query.numel() != target.numel() or query.numel() == 0:
        raise ValueError(f"'query' and 'target' must be non-empty and of "
                         f"equal length (got {query.numel()} and "
                         f"{target.numel()})")
    if bool((query == target).any()):
        raise ValueError("a pair has 'target' equal to its 'query' (the "
                         "query is excluded from its own ranking)")
    return query, target


@torch.no_grad()
def item_to_item_ranks(item_emb: Tensor, query: Tensor, target: Tensor,
                       batch_size: int = 1024) -> Tensor:
    r"""The 1-based rank of every :obj:`target[p]` among all items but
    :obj:`query[p]`, by inner product with :obj:`item_emb[query[p]]` (ties
    against the target). Queries are scored :obj:`batch_size` at a time.

    Shapes:
        - **input:** :math:`(I, D)`, :math:`(P)`, :math:`(P)`
        - **output:** ranks :math:`(P)` (long, in :math:`1..I-1`)
    """
    query, target = _check_pairs(item_emb, query, target)
    if int(batch_size) != batch_size or batch_size <= 0:
        raise ValueError(f"'batch_size' must be a positive integer (got "
                         f"{batch_size})")
    ranks = []
    for q, t in zip(query.split(int(batch_size)),
                    target.split(int(batch_size))):
        scores = item_emb[q] @ item_emb.t()
        target_score = scores.gather(1, t.view(-1, 1))
        scores.scatter_(1, q.view(-1, 1), float('-inf'))
        ranks.append((scores >= target_score).sum(dim=1))  # counts t itself
    return torch.cat(ranks)


def item_to_item_metrics(item_emb: Tensor, query: Tensor, target: Tensor,
                         ks: Union[int, Sequence[int]] = (10, ),
                         mrr_scale: float = 100.0,
                         batch_size: int = 1024) -> Dict[str, float]:
    r"""Hit-rate@K for every :obj:`ks` and the scaled MRR (scale
    :obj:`mrr_scale`) of held-out (query, target) item pairs, see the
    module docstring. Returns :obj:`{'hit_rate@K': ..., 'scaled_mrr':
    ...}`."""
    ks = (ks, ) if isinstance(ks, int) else tuple(ks)
    if not ks or any(int(k) != k or k <= 0 for k in ks):
        raise ValueError(f"'ks' must hold positive integers (got {ks})")
    if not mrr_scale > 0:
        raise ValueError(f"'mrr_scale' must be positive (got {mrr_scale})")
    ranks = item_to_item_ranks(item_emb, query, target, batch_size).double()
    out = {f'hit_rate@{k}': float((ranks <= k).double().mean()) for k in ks}
    out['scaled_mrr'] = float((1.0 / torch.ceil(ranks / mrr_scale)).mean())
    return out


def item_to_item_pairs(train_index: Tensor, test_index: Tensor,
                       num_users: int, num_items: int,
                       generator: Optional[torch.Generator] = None
                       ) -> Tuple[Tensor, Tensor]:
    r"""Held-out item-to-item pairs from a user--item split: for every test
    interaction :math:`(u, t)`, the query is one of :math:`u`'s training
    items drawn uniformly (by :obj:`generator`) and the target is
    :math:`t`. Test pairs whose user has no training item, or whose drawn
    query is :math:`t` itself, are dropped.

    Returns:
        :obj:`(query, target)`, two :obj:`[P]` long tensors.
    """
    train = check_interactions(train_index, num_users, num_items,
                               'train_index')
    test = check_interactions(test_index, num_users, num_items, 'test_index')
    perm = torch.argsort(train[0], stable=True)
    items = train[1, perm]
    count = torch.bincount(train[0], minlength=num_users)
    start = torch.cumsum(count, 0) - count
    user, target = test[0], test[1]
    deg = count[user]
    keep = deg > 0
    user, target, deg = user[keep], target[keep], deg[keep]
    rand = torch.rand(user.numel(), dtype=torch.float64, generator=generator)
    pick = start[user] + (rand * deg).long().clamp(max=deg - 1)
    query = items[pick]
    keep = query != target
    return query[keep], target[keep]
