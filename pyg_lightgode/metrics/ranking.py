r"""All-item ranking: top-:math:`k` retrieval and the ranking metrics of the
evaluation protocol of LightGCN and NGCF.

For every user :math:`u` every item is scored (inner product
:math:`\mathbf{e}_u^{\top} \mathbf{e}_i` or a custom :obj:`score_fn`), the
items of the user's *excluded* interactions (training, and validation when
testing) are removed, and the top :math:`K` are kept. With
:math:`T_u` the test items of :math:`u` and :math:`\mathrm{rel}_u(p) = 1`
if the item at 1-based position :math:`p` is in :math:`T_u`:

.. math::
    \mathrm{Recall@K} &= \frac{1}{|T_u|} \sum_{p=1}^{K} \mathrm{rel}_u(p),
    \qquad
    \mathrm{Precision@K} = \frac{1}{K} \sum_{p=1}^{K} \mathrm{rel}_u(p),

    \mathrm{HitRate@K} &= \max_{p \le K} \mathrm{rel}_u(p), \qquad
    \mathrm{MRR@K} = \max_{p \le K} \frac{\mathrm{rel}_u(p)}{p},

    \mathrm{NDCG@K} &= \frac{\sum_{p=1}^{K} \mathrm{rel}_u(p) /
    \log_2(p + 1)}{\sum_{p=1}^{\min(|T_u|, K)} 1 / \log_2(p + 1)},

each averaged over the users with :math:`|T_u| \ge 1`. These are exactly the
definitions of :class:`torch_geometric.metrics.LinkPredRecall`,
:class:`~torch_geometric.metrics.LinkPredPrecision`,
:class:`~torch_geometric.metrics.LinkPredHitRatio`,
:class:`~torch_geometric.metrics.LinkPredMRR` and
:class:`~torch_geometric.metrics.LinkPredNDCG`, which do the counting here;
this module adds the batched, exclusion-aware retrieval that feeds them.

Users are taken in batches of :obj:`batch_size` (and items optionally in
chunks of :obj:`item_chunk_size`, merging the partial top-:math:`k` lists)
and scored in cache-sized blocks by
:func:`~pyg_lightgode.metrics.retrieval.exact_topk`, so the full users
:math:`\times` items score matrix never exists. Models that score users
directly (no embeddings) go through :func:`recommend_from_scorer` and
:meth:`RankingEvaluator.evaluate_scorer`.
"""
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMetricCollection,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPrecision,
    LinkPredRecall,
)
from torch_geometric.metrics.link_pred import LinkPredMetricData
from torch_geometric.nn.pool.knn import KNNOutput
from torch_geometric.utils import cumsum

from pyg_lightgode.data.bipartite import check_interactions
from pyg_lightgode.data.progress import Progress
from pyg_lightgode.data.validation import check_index_range
from pyg_lightgode.metrics.beyond import (
    gini_index,
    item_coverage,
    mean_popularity_rank,
    recommendation_counts,
)
from pyg_lightgode.metrics.retrieval import (
    INDEX_KINDS,
    ItemIndex,
    _check_scores,
    dense_topk,
    exact_topk,
    finish_topk,
    mask_excluded,
)

ScoreFn = Callable[[Tensor, Tensor], Tensor]
Scorer = Callable[[Tensor], Tensor]
Interactions = Union[Tensor, Sequence[Tensor]]

#: Metric names accepted by :func:`evaluate_ranking` and their PyG classes.
RANKING_METRICS = {
    'recall': LinkPredRecall,
    'precision': LinkPredPrecision,
    'ndcg': LinkPredNDCG,
    'hit_rate': LinkPredHitRatio,
    'mrr': LinkPredMRR,
}
#: Metrics of the recommendation lists as a whole (not averaged over users;
#: :mod:`pyg_lightgode.metrics.beyond`), also accepted by
#: :class:`RankingEvaluator`: item coverage, Gini index of the
#: recommendation counts, mean popularity rank of the recommended items.
LIST_METRICS = ('coverage', 'gini', 'popularity_rank')
DEFAULT_METRICS = ('recall', 'ndcg', 'precision', 'hit_rate', 'mrr')
DEFAULT_BATCH_SIZE = 1024


class UserItemCSR:
    r"""Per-user item lists of an interaction index in compressed sparse row
    form (duplicates removed, items sorted within a user), with vectorised
    gathering of the lists of a batch of users.

    Args:
        index (torch.Tensor or list of torch.Tensor): Interaction index(es)
            :obj:`[2, E]`; a list is united (*e.g.* train and validation).
        num_users (int): Number of users :math:`U`.
        num_items (int): Number of items :math:`I`.
        name (str, optional): Argument name used in error messages.
    """
    def __init__(self, index: Interactions, num_users: int, num_items: int,
                 name: str = 'index'):
        if not isinstance(index, (Tensor, list, tuple)):
            raise TypeError(f"'{name}' must be a [2, E] tensor or a list of "
                            f"them (got {type(index).__name__})")
        indices = [index] if isinstance(index, Tensor) else list(index)
        indices = [
            check_interactions(idx, num_users, num_items, f'{name}[{i}]'
                               if len(indices) > 1 else name)
            for i, idx in enumerate(indices)
        ]
        index = torch.cat(indices, dim=1) if indices else torch.empty(
            2, 0, dtype=torch.long)
        # One sorted key per distinct (user, item) pair:
        key = torch.unique(index[0] * num_items + index[1])
        user = key.div(num_items, rounding_mode='floor')
        self.rowptr = cumsum(torch.bincount(user, minlength=num_users))
        self.col = key - user * num_items
        self.num_users, self.num_items = num_users, num_items

    @property
    def count(self) -> Tensor:
        r"""The number of items of every user."""
        return self.rowptr.diff()

    def rows(self, users: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Returns :obj:`(batch_row, item)` of all items of :obj:`users`,
        where :obj:`batch_row` is the position of the user in :obj:`users`."""
        start = self.rowptr[users]
        count = self.rowptr[users + 1] - start
        batch_row = torch.repeat_interleave(
            torch.arange(users.numel(), device=users.device), count)
        # Position of every output entry inside its user's list:
        within = torch.arange(batch_row.numel(), device=users.device)
        within -= cumsum(count)[:-1][batch_row]
        return batch_row, self.col[start[batch_row] + within]


def _check_embeddings(user_emb: Tensor, item_emb: Tensor,
                      score_fn: Optional[ScoreFn]) -> Tuple[Tensor, Tensor]:
    for name, emb in (('user_emb', user_emb), ('item_emb', item_emb)):
        if not isinstance(emb, Tensor):
            raise TypeError(f"'{name}' must be a torch.Tensor (got "
                            f"{type(emb).__name__})")
        if emb.dim() != 2 or emb.size(0) == 0:
            raise ValueError(f"'{name}' must have shape [N, F] with N > 0 "
                             f"(got {list(emb.shape)})")
        if not emb.is_floating_point():
            raise ValueError(f"'{name}' must be floating point (got "
                             f"{emb.dtype})")
        if not bool(torch.isfinite(emb).all()):
            raise ValueError(f"'{name}' holds NaN or infinite values")
    if score_fn is None:
        if user_emb.size(1) != item_emb.size(1):
            raise ValueError(f"'user_emb' {list(user_emb.shape)} and "
                             f"'item_emb' {list(item_emb.shape)} must have "
                             f"the same feature size F for inner-product "
                             f"scores")
        dtype = torch.promote_types(user_emb.dtype, item_emb.dtype)
        user_emb, item_emb = user_emb.to(dtype), item_emb.to(dtype)
    return user_emb, item_emb


def _check_positive(value: Optional[int], name: str,
                    optional: bool = False) -> Optional[int]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"'{name}' must be a positive integer (got "
                         f"{value!r})")
    return value


def _check_users(users: Optional[Tensor], num_users: int,
                 device: torch.device) -> Tensor:
    if users is None:
        return torch.arange(num_users, device=device)
    if not isinstance(users, Tensor) or users.dim() != 1 or \
            users.is_floating_point() or users.dtype == torch.bool:
        raise ValueError(f"'users' must be a 1-D integer tensor of user ids "
                         f"(got {users!r:.80})")
    return check_index_range(users.long().to(device), num_users, 'users')


def _scorer_topk_batch(scorer: Scorer, batch_users: Tensor, num_items: int,
                       k: int, excluded: Optional[Tuple[Tensor, Tensor]]
                       ) -> Tuple[Tensor, Tensor]:
    r"""Top-:obj:`k` of one user batch from the dense scores
    :obj:`scorer(batch_users)`, padded as :func:`exact_topk`."""
    scores = _check_scores(scorer(batch_users),
                           (batch_users.numel(), num_items), 'scorer')
    if excluded is not None:
        excluded = _to_device(excluded, scores.device)
    # The scores may be a view of the scorer's own data: no in-place.
    scores = mask_excluded(scores, excluded, inplace=False)
    index, score = dense_topk(scores, k)
    return finish_topk(index, score, k, name="'scorer'")


def _check_scorer(scorer: Callable) -> Callable:
    if not callable(scorer):
        raise TypeError(f"'scorer' must be callable (got "
                        f"{type(scorer).__name__})")
    return scorer


def _user_batches(users: Tensor, batch_size: int,
                  *lists: Optional[UserItemCSR]) -> Iterator[tuple]:
    r"""Yields :obj:`(batch_users, *rows)` per user batch, with
    :obj:`rows = (batch_row, item)` of every given per-user list (or
    :obj:`None`)."""
    for start in range(0, users.numel(), batch_size):
        batch_users = users[start:start + batch_size]
        yield (batch_users, ) + tuple(
            None if csr is None else csr.rows(batch_users) for csr in lists)


def _to_device(obj, device: Optional[torch.device]):
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(x, device) for x in obj)
    return obj


def _check_index(index: Union[str, ItemIndex], item_emb: Tensor,
                 item_chunk_size: Optional[int],
                 score_fn: Optional[ScoreFn]) -> Optional[ItemIndex]:
    r"""The :class:`ItemIndex` to search with, or :obj:`None` for the exact
    path (which also handles :obj:`item_chunk_size` and :obj:`score_fn`)."""
    if isinstance(index, ItemIndex):
        if index.item_emb is not item_emb and (
                index.item_emb.shape != item_emb.shape):
            raise ValueError(f"'index' was built for {index.num_items} "
                             f"items, but 'item_emb' has {item_emb.size(0)}")
    elif index not in INDEX_KINDS:
        raise ValueError(f"'index' must be one of {list(INDEX_KINDS)} or an "
                         f"ItemIndex (got {index!r:.80})")
    elif index == 'exact':
        return None
    if score_fn is not None:
        raise ValueError(f"'score_fn' can only be used with index='exact' "
                         f"(got index={index!r})")
    if isinstance(index, ItemIndex):
        return index
    if item_chunk_size is not None:
        raise ValueError(f"'item_chunk_size' only applies to "
                         f"index='exact' (got index={index!r})")
    return ItemIndex(item_emb, kind=index)


@torch.no_grad()
def recommend(
    user_emb: Tensor,
    item_emb: Tensor,
    users: Optional[Tensor] = None,
    k: int = 20,
    exclude_links: Optional[Interactions] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    item_chunk_size: Optional[int] = None,
    score_fn: Optional[ScoreFn] = None,
    index: Union[str, ItemIndex] = 'exact',
) -> Tuple[Tensor, Tensor]:
    r"""Top-:math:`k` items of every user in :obj:`users` by the score
    :math:`\mathbf{e}_u^{\top} \mathbf{e}_i` (or :obj:`score_fn`), leaving out
    the items of :obj:`exclude_links`.

    Users are taken :obj:`batch_size` at a time, and, if
    :obj:`item_chunk_size` is set, scored against :obj:`item_chunk_size`
    items at a time, merging partial top-:math:`k` lists, so peak memory is
    :math:`O(\textrm{batch\_size} \cdot \textrm{item\_chunk\_size})` scores
    (inner products are computed in smaller blocks still, see
    :func:`~pyg_lightgode.metrics.retrieval.exact_topk`).
    Where fewer than :math:`k` items remain for a user, the list is padded
    with index :obj:`-1` and score :obj:`-inf`; items scored :obj:`-inf` are
    never recommended.

    For large catalogues, :obj:`index="mips"` or :obj:`"approx-mips"`
    retrieves through :obj:`faiss`
    (:class:`~pyg_lightgode.metrics.retrieval.ItemIndex`, default settings);
    build an :class:`~pyg_lightgode.metrics.retrieval.ItemIndex` of
    :obj:`item_emb` once and pass it to tune or reuse it.

    Args:
        user_emb (torch.Tensor): User embeddings :obj:`[U, F]`.
        item_emb (torch.Tensor): Item embeddings :obj:`[I, F]`.
        users (torch.Tensor, optional): User ids to recommend for
            (default: all users).
        k (int, optional): Number of items per user. (default: :obj:`20`)
        exclude_links (torch.Tensor or list of torch.Tensor, optional):
            Interaction index :obj:`[2, E]` of (user, item) pairs never to
            recommend, or
            a list of them (*e.g.* training and validation).
        batch_size (int, optional): Users scored at once.
        item_chunk_size (int, optional): Items scored at once (default: all).
        score_fn (callable, optional): :obj:`score_fn(user_emb[batch],
            item_emb[chunk])` returning scores :obj:`[b, c]`; replaces the
            inner product (:obj:`index="exact"` only).
        index (str or ItemIndex, optional): :obj:`"exact"`, :obj:`"mips"`
            (exact, faiss), :obj:`"approx-mips"` (approximate, faiss) or a
            prebuilt :class:`~pyg_lightgode.metrics.retrieval.ItemIndex` of
            :obj:`item_emb`. (default: :obj:`"exact"`)

    Shapes:
        - **input:** :math:`(U, F)`, :math:`(I, F)`, users :math:`(B)`
        - **output:** :obj:`KNNOutput(score, index)` as
          :meth:`torch_geometric.nn.pool.MIPSKNNIndex.search` answers:
          scores :math:`(B, k)` and item indices :math:`(B, k)` (long),
          best first
    """
    user_emb, item_emb = _check_embeddings(user_emb, item_emb, score_fn)
    k = _check_positive(k, 'k')
    batch_size = _check_positive(batch_size, 'batch_size')
    item_chunk_size = _check_positive(item_chunk_size, 'item_chunk_size',
                                      optional=True)
    num_users, num_items = user_emb.size(0), item_emb.size(0)
    users = _check_users(users, num_users, user_emb.device)
    csr = None if exclude_links is None else UserItemCSR(
        _to_device(exclude_links, user_emb.device), num_users, num_items,
        'exclude_links')
    item_index = _check_index(index, item_emb, item_chunk_size, score_fn)
    outs = [
        exact_topk(user_emb[batch_users], item_emb, k, excluded,
                   item_chunk_size, score_fn) if item_index is None else
        item_index.search(user_emb[batch_users], k, excluded)[::-1]
        for batch_users, excluded in _user_batches(users, batch_size, csr)
    ]
    if not outs:
        return KNNOutput(user_emb.new_empty(0, k),
                         torch.empty(0, k, dtype=torch.long,
                                     device=user_emb.device))
    return KNNOutput(torch.cat([score for _, score in outs]),
                     torch.cat([index for index, _ in outs]))


@torch.no_grad()
def recommend_from_scorer(
    scorer: Scorer,
    num_users: int,
    num_items: int,
    users: Optional[Tensor] = None,
    k: int = 20,
    exclude_links: Optional[Interactions] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: Optional[Union[torch.device, str]] = None,
) -> Tuple[Tensor, Tensor]:
    r"""Top-:math:`k` items of every user in :obj:`users` from a model that
    scores users directly (*e.g.* a training-free graph filter) rather than
    through embeddings, leaving out the items of :obj:`exclude_links`;
    otherwise as :func:`recommend`.

    :obj:`scorer(batch_users)` is called with :obj:`batch_size` user ids at
    a time and returns their dense scores :obj:`[b, num_items]` (it may
    return a view of its own data: it is not modified).

    Args:
        scorer (callable): :obj:`scorer(users: LongTensor[b]) -> Tensor[b,
            num_items]`.
        num_users (int): Number of users :math:`U`.
        num_items (int): Number of items :math:`I`.
        users (torch.Tensor, optional): User ids to recommend for
            (default: all users).
        k (int, optional): Number of items per user. (default: :obj:`20`)
        exclude_links (torch.Tensor or list of torch.Tensor, optional):
            Interaction index :obj:`[2, E]` of (user, item) pairs never to
            recommend, or
            a list of them.
        batch_size (int, optional): Users scored at once.
        device (torch.device, optional): Device of the user ids handed to
            :obj:`scorer`. (default: CPU)

    Shapes:
        - **output:** :obj:`KNNOutput(score, index)`: scores
          :math:`(B, k)` and item indices :math:`(B, k)` (long, :obj:`-1`
          where fewer than :math:`k` items remain), best first
    """
    scorer = _check_scorer(scorer)
    num_users = _check_positive(num_users, 'num_users')
    num_items = _check_positive(num_items, 'num_items')
    k = _check_positive(k, 'k')
    batch_size = _check_positive(batch_size, 'batch_size')
    device = torch.device('cpu' if device is None else device)
    users = _check_users(users, num_users, device)
    csr = None if exclude_links is None else UserItemCSR(
        _to_device(exclude_links, device), num_users, num_items,
        'exclude_links')
    outs = [
        _scorer_topk_batch(scorer, batch_users, num_items, k, excluded)
        for batch_users, excluded in _user_batches(users, batch_size, csr)
    ]
    if not outs:
        return KNNOutput(torch.empty(0, k, device=device),
                         torch.empty(0, k, dtype=torch.long, device=device))
    return KNNOutput(torch.cat([score for _, score in outs]),
                     torch.cat([index for index, _ in outs]))


def _check_ks(ks: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    ks = (ks, ) if isinstance(ks, int) else tuple(ks)
    if not ks:
        raise ValueError("'ks' must hold at least one cut-off K")
    return tuple(sorted({_check_positive(k, 'ks') for k in ks}))


def _check_metrics(metrics: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    metrics = (metrics, ) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics
               if m not in RANKING_METRICS and m not in LIST_METRICS]
    if unknown or not metrics:
        raise ValueError(f"'metrics' must be a non-empty selection of "
                         f"{sorted(RANKING_METRICS) + list(LIST_METRICS)} "
                         f"(got unknown {unknown})")
    return tuple(dict.fromkeys(metrics))


class RankingEvaluator:
    r"""All-item ranking evaluation of user and item embeddings against
    held-out interactions (LightGCN's protocol; metric definitions in
    :mod:`pyg_lightgode.metrics.ranking`).

    The per-user exclusion and test lists are built once, so calling the
    evaluator every epoch costs only the scoring: per user batch, the scores
    of the excluded items are set to :obj:`-inf` directly from the CSR lists
    (no Python loop over users), the top :math:`\max(K)` items are taken once
    for all cut-offs, and :class:`torch_geometric.metrics` counts the hits.
    Only users with at least one test item are scored and averaged over.
    Test items that are also excluded stay in :math:`|T_u|` (they cannot be
    hit), as in the LightGCN protocol.

    .. code-block:: python

        evaluator = RankingEvaluator(split.test_index,
                                     exclude_links=split.train_index,
                                     ks=(10, 20))
        evaluator(user_emb, item_emb)
        >>> {'recall@10': 0.12, 'ndcg@10': 0.09, ..., 'mrr@20': 0.21}

    Args:
        test_index (torch.Tensor): Held-out interactions :obj:`[2, E]`.
        exclude_links (torch.Tensor or list of torch.Tensor, optional):
            Interactions to leave out of every ranking (training, plus
            validation when testing).
        num_users (int, optional): :math:`U`; taken from :obj:`user_emb` at
            call time if not given.
        num_items (int, optional): :math:`I`; taken from :obj:`item_emb` at
            call time if not given.
        ks (int or list of int, optional): Cut-offs :math:`K`.
            (default: :obj:`(20, )`)
        metrics (list of str, optional): Any of :obj:`'recall'`,
            :obj:`'ndcg'`, :obj:`'precision'`, :obj:`'hit_rate'`,
            :obj:`'mrr'` (averaged over users; default: all five) and of
            the list metrics :obj:`'coverage'`, :obj:`'gini'`,
            :obj:`'popularity_rank'` (:mod:`pyg_lightgode.metrics.beyond`;
            the popularity ranks come from :obj:`exclude_links`).
        batch_size (int, optional): Users scored at once.
        item_chunk_size (int, optional): Items scored at once (default: all).
        score_fn (callable, optional): Replaces the inner product, see
            :func:`recommend`.
        users (torch.Tensor, optional): Restricts the evaluation to these
            user ids.

    After every evaluation, :attr:`per_user` holds the value of every
    averaged metric for each evaluated user (:obj:`{'ndcg@20': [N],
    ...}`, PyG's definitions, their means are the returned values) and
    :attr:`user_index` those users' ids, in the same order for every model
    evaluated by the same evaluator: the paired samples of
    :func:`~pyg_lightgode.metrics.wilcoxon_signed_rank`.
    """
    def __init__(
        self,
        test_index: Tensor,
        exclude_links: Optional[Interactions] = None,
        num_users: Optional[int] = None,
        num_items: Optional[int] = None,
        ks: Union[int, Sequence[int]] = (20, ),
        metrics: Union[str, Sequence[str]] = DEFAULT_METRICS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        item_chunk_size: Optional[int] = None,
        score_fn: Optional[ScoreFn] = None,
        users: Optional[Tensor] = None,
    ):
        self.ks = _check_ks(ks)
        self.metrics = _check_metrics(metrics)
        self.batch_size = _check_positive(batch_size, 'batch_size')
        self.item_chunk_size = _check_positive(item_chunk_size,
                                               'item_chunk_size',
                                               optional=True)
        self.test_index, self.exclude_links = test_index, exclude_links
        self.score_fn, self.users = score_fn, users
        ranking = [name for name in self.metrics if name in RANKING_METRICS]
        self.collection = LinkPredMetricCollection({
            f'{name}@{k}': RANKING_METRICS[name](k)
            for k in self.ks for name in ranking
        }) if ranking else None
        self.list_metrics = [m for m in self.metrics if m in LIST_METRICS]
        if 'popularity_rank' in self.list_metrics and exclude_links is None:
            raise ValueError("'popularity_rank' ranks items by their "
                             "training interactions: pass them as "
                             "'exclude_links'")
        #: Per-user values of the last evaluation, :obj:`{'<metric>@<K>':
        #: [N]}` for the averaged metrics, aligned with :attr:`user_index`.
        self.per_user: Dict[str, Tensor] = {}
        #: The :obj:`N` users of :attr:`per_user` (those with a test item).
        self.user_index: Optional[Tensor] = None
        self._parts: Dict[str, list] = {}
        self._counts: Dict[int, Tensor] = {}
        self._degree: Optional[Tensor] = None
        self._cache: Dict[Tuple[int, int], dict] = {}
        self.num_users, self.num_items = num_users, num_items
        if num_users is not None or num_items is not None:
            if num_users is None or num_items is None:
                raise ValueError("'num_users' and 'num_items' must be given "
                                 "together")
            self.batches(num_users, num_items)

    def batches(self, num_users: int, num_items: int,
                 device: Optional[torch.device] = None) -> list:
        r"""The user batches this evaluator ranks, built once per size and
        device: a list of :obj:`(batch_users, excluded, label_index)` with
        the batch's user ids, its excluded items (for
        :func:`~pyg_lightgode.metrics.retrieval.mask_excluded`) and its
        held-out items in :class:`torch_geometric.metrics` label form. For
        code that ranks several candidates per batch (*e.g.* a grid of
        fusion weights)
        with the evaluator's exclusions and users."""
        if (num_users, num_items) not in self._cache:
            cpu = torch.device('cpu')  # Built on CPU, moved per device.
            test = UserItemCSR(_to_device(self.test_index, cpu), num_users,
                               num_items, 'test_index')
            exclude = None if self.exclude_links is None else UserItemCSR(
                _to_device(self.exclude_links, cpu), num_users, num_items,
                'exclude_links')
            has_test = test.count > 0
            if self.users is not None:
                users = _check_users(self.users, num_users, cpu)
                has_test &= torch.zeros_like(has_test).index_fill_(
                    0, users, True)
            eval_users = has_test.nonzero().view(-1)
            if eval_users.numel() == 0:
                raise ValueError("no user to evaluate has a test item "
                                 "('test_index' is empty or 'users' holds "
                                 "none of its users)")
            batches = [(batch_users, excluded, torch.stack(label))
                       for batch_users, excluded, label in _user_batches(
                           eval_users, self.batch_size, exclude, test)]
            self._cache = {(num_users, num_items): {None: batches}}
            self._degree = None if exclude is None else torch.bincount(
                exclude.col, minlength=num_items)
        per_device = self._cache[(num_users, num_items)]
        if device not in per_device:
            per_device[device] = _to_device(per_device[None], device)
        return per_device[device]

    @torch.no_grad()
    def __call__(self, user_emb: Tensor, item_emb: Tensor) -> Dict[str, float]:
        r"""Returns :obj:`{'<metric>@<K>': value}` for every metric and
        cut-off.

        Args:
            user_emb (torch.Tensor): User embeddings :obj:`[U, F]`.
            item_emb (torch.Tensor): Item embeddings :obj:`[I, F]`.
        """
        user_emb, item_emb = _check_embeddings(user_emb, item_emb,
                                               self.score_fn)
        num_users, num_items = user_emb.size(0), item_emb.size(0)
        if self.num_users is not None and (num_users, num_items) != (
                self.num_users, self.num_items):
            raise ValueError(f"'user_emb' / 'item_emb' have {num_users} / "
                             f"{num_items} rows, but the evaluator was built "
                             f"for num_users={self.num_users}, "
                             f"num_items={self.num_items}")
        batches = self.batches(num_users, num_items, user_emb.device)
        self._reset(user_emb.device)
        for batch_users, excluded, label_index in batches:
            index, _ = exact_topk(user_emb[batch_users], item_emb,
                                  self.ks[-1], excluded,
                                  self.item_chunk_size, self.score_fn)
            self._update(index, label_index, num_items, batch_users)
        return self._compute(num_items)

    @torch.no_grad()
    def evaluate_scorer(
        self,
        scorer: Scorer,
        num_users: int,
        num_items: int,
        device: Optional[Union[torch.device, str]] = None,
    ) -> Dict[str, float]:
        r"""Evaluates a model that scores users directly (*e.g.* a
        training-free graph filter) instead of through embeddings; returns
        :obj:`{'<metric>@<K>': value}` as :meth:`__call__`.

        Progress (users done, time left) is logged at INFO level to the
        :obj:`'pyg_lightgode'` logger every few seconds
        (:mod:`pyg_lightgode.data.progress`; silent by default).

        :obj:`scorer(batch_users)` is called with :obj:`batch_size` user ids
        at a time and returns their dense scores :obj:`[b, num_items]`; the
        excluded items are masked to :obj:`-inf` (on a copy) and the top
        :math:`\max(K)` are counted as for embeddings. :obj:`item_chunk_size`
        and :obj:`score_fn` do not apply.

        Args:
            scorer (callable): :obj:`scorer(users: LongTensor[b]) ->
                Tensor[b, num_items]`.
            num_users (int): Number of users :math:`U`.
            num_items (int): Number of items :math:`I`.
            device (torch.device, optional): Device of the user ids handed to
                :obj:`scorer`; the counting runs on the device of the scores.
                (default: CPU)
        """
        scorer = _check_scorer(scorer)
        num_users = _check_positive(num_users, 'num_users')
        num_items = _check_positive(num_items, 'num_items')
        if self.num_users is not None and (num_users, num_items) != (
                self.num_users, self.num_items):
            raise ValueError(f"'num_users' / 'num_items' are {num_users} / "
                             f"{num_items}, but the evaluator was built for "
                             f"num_users={self.num_users}, "
                             f"num_items={self.num_items}")
        device = torch.device('cpu' if device is None else device)
        batches = self.batches(num_users, num_items, device)
        self._reset(None)
        progress = Progress('evaluate_scorer', sum(
            b[0].numel() for b in batches), 'users')
        for i, (batch_users, excluded, label_index) in enumerate(batches):
            index, _ = _scorer_topk_batch(scorer, batch_users, num_items,
                                          self.ks[-1], excluded)
            progress.update(batch_users.numel())
            if index.device != device:  # Count where the scores are.
                label_index = self.batches(num_users, num_items,
                                            index.device)[i][2]
            if self.collection is not None:
                self.collection.to(index.device)
            self._update(index, label_index, num_items, batch_users)
        progress.close()
        return self._compute(num_items)

    def _reset(self, device: Optional[torch.device]) -> None:
        if self.collection is not None:
            if device is not None:
                self.collection.to(device)
            self.collection.reset()
        self._parts = {'users': []}
        self._counts = {}

    def _update(self, index: Tensor, label_index: Tensor, num_items: int,
                batch_users: Tensor) -> None:
        # Padding (-1) must never match a label, so point it past all
        # items (PyG offsets rows by the largest index + 1).
        index.masked_fill_(index < 0, num_items)
        self._parts['users'].append(batch_users.cpu())
        if self.collection is not None:
            self.collection.update(index, label_index)
            # The same PyG definitions, one value per user:
            data = LinkPredMetricData(index, label_index)
            for name, metric in self.collection.items():
                self._parts.setdefault(name, []).append(
                    metric._compute(data).float().cpu())
        if self.list_metrics:
            for k in self.ks:
                counts = recommendation_counts(index[:, :k], num_items).cpu()
                self._counts[k] = counts if k not in self._counts else \
                    self._counts[k] + counts

    def _compute(self, num_items: int) -> Dict[str, float]:
        parts = self._parts
        self.user_index = torch.cat(parts.pop('users'))
        self.per_user = {name: torch.cat(values)
                         for name, values in parts.items()}
        out = {} if self.collection is None else {
            name: float(value)
            for name, value in self.collection.compute().items()
        }
        for k in self.ks:
            counts = self._counts.get(k)
            for name in self.list_metrics:
                if name == 'coverage':
                    out[f'coverage@{k}'] = item_coverage(counts)
                elif name == 'gini':
                    out[f'gini@{k}'] = gini_index(counts)
                else:
                    out[f'popularity_rank@{k}'] = mean_popularity_rank(
                        counts, self._degree)
        return out


def evaluate_ranking(user_emb: Tensor, item_emb: Tensor, test_index: Tensor,
                     **kwargs) -> Dict[str, float]:
    r"""One-off all-item ranking evaluation, returning
    :obj:`{'recall@20': ..., 'ndcg@20': ..., ...}`; the keyword arguments
    (:obj:`exclude_links`, :obj:`ks`, :obj:`metrics`, ...) are
    :class:`RankingEvaluator`'s (build one to evaluate repeatedly)."""
    user_emb, item_emb = _check_embeddings(user_emb, item_emb,
                                           kwargs.get('score_fn'))
    evaluator = RankingEvaluator(test_index, num_users=user_emb.size(0),
                                 num_items=item_emb.size(0), **kwargs)
    return evaluator(user_emb, item_emb)
