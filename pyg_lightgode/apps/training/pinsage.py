r"""PinSage training and embedding: item-to-item max-margin
training (:func:`max_margin_loss`) on
:class:`~pyg_lightgode.sampler.PinSageLinkLoader` minibatches (CPU workers
sample while the model computes), shared random plus curriculum hard
negatives, linear warm-up then exponential learning-rate decay
(:func:`warmup_exponential_lr`), and validation by all-item user-to-item
ranking with user embeddings pooled from their items' layer-wise inference
embeddings (:func:`user_embedding`), on :class:`Trainer` (early stopping,
best weights, checkpoint/resume, seeds, progress)."""
import math
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch_geometric.typing
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR
from torch_geometric.data import Data
from torch_geometric.sampler import NegativeSampling
from torch_geometric.typing import OptTensor, SparseTensor
from torch_geometric.utils import scatter

from pyg_lightgode.apps.training.recipes import validation_evaluator
from pyg_lightgode.apps.training.trainer import (
    InteractionBatches,
    Trainer,
    TrainResult,
    seed_everything,
)
from pyg_lightgode.data.bipartite import (
    BipartiteSplit,
    check_interactions,
    quiet_sparse_csr,
)
from pyg_lightgode.data.validation import (
    check_finite,
    check_finite_float,
    check_floating,
)
from pyg_lightgode.nn.conv.pinsage_conv import (
    check_edge_weight,
    importance_weights,
)
from pyg_lightgode.nn.models.pinsage import PinSage, neighborhood_adj_t
from pyg_lightgode.sampler import (
    HardNegativeSampler,
    ImportanceNeighborhood,
    PinSageLinkLoader,
    PinSageSampler,
)
from pyg_lightgode.sampler.hard_negatives import DEFAULT_RANK_RANGE, RankRange
from pyg_lightgode.sampler.pinsage_sampler import item_data
from pyg_lightgode.sampler.random_walk import (
    BLOCK_SIZE,
    bipartite_csr,
    cat_blocks,
    full_blocks,
    metapath_random_walk,
    rows_per_block,
    sample_item_pairs,
)

USER_WEIGHTINGS = ('mean', 'importance')

#: Hard-negative bands of all items are precomputed up to this size.
MAX_PRECOMPUTED_BAND_ENTRIES = 10**8

#: Seed of the one whole-catalogue neighbourhood used for evaluation, so
#: that every evaluation (and a later test run) sees the same graph.
EVAL_NEIGHBORHOOD_SEED = 0


def _check_embedding(emb: Tensor, name: str, dim: int) -> Tensor:
    if not isinstance(emb, Tensor) or emb.dim() != dim:
        shape = '[B, D]' if dim == 2 else '[B, H, D]'
        raise ValueError(f"'{name}' must be a {dim}-D tensor {shape} (got "
                         f"{getattr(emb, 'shape', type(emb).__name__)})")
    check_floating(emb, name)
    return check_finite(emb, name)


def max_margin_loss(
    query_emb: Tensor,
    pos_emb: Tensor,
    neg_emb: OptTensor = None,
    hard_neg_emb: OptTensor = None,
    margin: float = 1.0,
) -> Tensor:
    r"""The max-margin ranking loss of PinSage,

    .. math::
        \frac{1}{|\mathcal{P}|} \sum_{(q, n) \in \mathcal{P}}
        \max(0, \mathbf{z}_q^{\top}\mathbf{z}_n -
        \mathbf{z}_q^{\top}\mathbf{z}_i + \Delta),

    averaged over all (query, negative) pairs :math:`\mathcal{P}`: every
    query against every shared negative, plus every query against each of
    its own hard negatives.

    Args:
        query_emb (torch.Tensor): Query embeddings :obj:`[B, D]`.
        pos_emb (torch.Tensor): The positive of each query :obj:`[B, D]`.
        neg_emb (torch.Tensor, optional): Negatives shared by the minibatch
            :obj:`[N_neg, D]`, or per-query negatives :obj:`[B, H, D]`.
        hard_neg_emb (torch.Tensor, optional): Per-query hard negatives
            :obj:`[B, H, D]`, combined with :obj:`neg_emb`.
        margin (float, optional): The margin :math:`\Delta`.
            (default: :obj:`1.0`)
    """
    margin = check_finite_float(margin, 'margin')
    query_emb = _check_embedding(query_emb, 'query_emb', 2)
    pos_emb = _check_embedding(pos_emb, 'pos_emb', 2)
    if pos_emb.shape != query_emb.shape:
        raise ValueError(f"'pos_emb' must have the shape of 'query_emb' "
                         f"{list(query_emb.shape)} (got "
                         f"{list(pos_emb.shape)})")
    if neg_emb is None and hard_neg_emb is None:
        raise ValueError("give 'neg_emb' and/or 'hard_neg_emb'")
    B, D = query_emb.shape
    neg_scores = []
    for name, emb in (('neg_emb', neg_emb), ('hard_neg_emb', hard_neg_emb)):
        if emb is None:
            continue
        shared = name == 'neg_emb' and isinstance(emb, Tensor) and \
            emb.dim() == 2
        emb = _check_embedding(emb, name, 2 if shared else 3)
        if emb.size(-1) != D or (not shared and emb.size(0) != B):
            expected = f'[N_neg, {D}]' if shared else f'[{B}, H, {D}]'
            raise ValueError(f"'{name}' must have shape {expected} (got "
                             f"{list(emb.shape)})")
        neg_scores.append(query_emb @ emb.t() if shared else torch.einsum(
            'bd,bhd->bh', query_emb, emb))
    pos_score = (query_emb * pos_emb).sum(dim=-1, keepdim=True)
    neg_score = torch.cat(neg_scores, dim=-1)
    if neg_score.numel() == 0:
        raise ValueError("no negatives were given (zero negatives per query)")
    return (neg_score - pos_score + margin).clamp(min=0).mean()


def warmup_exponential_lr(optimizer: torch.optim.Optimizer,
                          warmup_steps: int, gamma: float) -> LambdaLR:
    r"""A :class:`~torch.optim.lr_scheduler.LambdaLR` that warms the
    learning rate up linearly over the first :obj:`warmup_steps` calls of
    :meth:`step`, then decays it exponentially by :obj:`gamma` per call:

    .. math::
        \eta_s = \eta \cdot \begin{cases}
        (s + 1) / W & s < W \\ \gamma^{s - W} & s \geq W \end{cases}

    so the base rate :math:`\eta` is reached at the last warm-up step
    :math:`s = W - 1` and :math:`W = 0` gives
    :class:`~torch.optim.lr_scheduler.ExponentialLR`."""
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"'warmup_steps' must be a non-negative int (got "
                         f"{warmup_steps!r})")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"'gamma' must be in (0, 1] (got {gamma})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return gamma**(step - warmup_steps)

    return LambdaLR(optimizer, factor)


def user_embedding(item_emb: Tensor, user_item_index: Tensor,
                   edge_weight: OptTensor = None,
                   num_users: Optional[int] = None) -> Tensor:
    r"""User embeddings as PinSage computes board embeddings: the
    (importance-weighted) mean of the final embeddings of the user's items,

    .. math::
        \mathbf{z}_u = \sum_{i \in \mathcal{I}(u)} \frac{\alpha_{u,i}}
        {\sum_{i' \in \mathcal{I}(u)} \alpha_{u,i'}} \mathbf{z}_i,

    with uniform weights when :obj:`edge_weight` is :obj:`None`. Users
    without items (or with all-zero weights) get the zero vector.

    Args:
        item_emb (torch.Tensor): Item embeddings :obj:`[I, D]`.
        user_item_index (torch.Tensor): :obj:`[2, E]` (user, item) pairs.
        edge_weight (torch.Tensor, optional): Non-negative weights
            :obj:`[E]`.
        num_users (int, optional): Number of users :math:`U`.
            (default: largest user id + 1)

    Returns:
        :obj:`[U, D]` user embeddings.
    """
    item_emb = _check_embedding(item_emb, 'item_emb', 2)
    if num_users is None:
        num_users = int(user_item_index[0].max()) + 1 \
            if isinstance(user_item_index, Tensor) and \
            user_item_index.dim() == 2 and user_item_index.numel() > 0 else 0
    index = check_interactions(user_item_index, num_users, item_emb.size(0),
                               'user_item_index')
    user, item = index[0], index[1]
    if edge_weight is None:
        edge_weight = item_emb.new_ones(user.numel())
    edge_weight = check_edge_weight(edge_weight, user.numel())
    weight = importance_weights(edge_weight.to(item_emb.dtype), user,
                                num_users)
    return scatter(weight.view(-1, 1) * item_emb[item], user, dim=0,
                   dim_size=num_users, reduce='sum')


def hard_negative_curriculum(epoch: int, max_hard_negatives: int) -> int:
    r"""Hard negatives per query in :obj:`epoch` (from 1): none in the first
    epoch, :math:`n - 1` in epoch :math:`n`, at most
    :obj:`max_hard_negatives`."""
    return max(0, min(int(epoch) - 1, int(max_hard_negatives)))


def catalogue_neighborhood(split: BipartiteSplit, top_k: int = 10,
                           num_walks: int = 10, num_traversals: int = 2,
                           restart_prob: float = 0.5,
                           seed: int = EVAL_NEIGHBORHOOD_SEED
                           ) -> Tuple[Tensor, Tensor]:
    r"""ONE importance neighbourhood of every item on the training
    interactions (walks item -> user -> item), drawn with a generator seeded
    by :obj:`seed` so that it is the same at every call. Returns
    :obj:`(edge_index, edge_weight)`, edges neighbour -> item."""
    neighborhood = ImportanceNeighborhood(
        split.train_index, split.num_users, split.num_items,
        num_walks=num_walks, num_traversals=num_traversals,
        restart_prob=restart_prob, top_k=top_k)
    return neighborhood.all_neighborhoods(
        generator=torch.Generator().manual_seed(seed))


def user_item_importance(index: Tensor, num_users: int, num_items: int,
                         num_walks: int = 10, num_traversals: int = 2,
                         restart_prob: float = 0.5,
                         generator: Optional[torch.Generator] = None
                         ) -> Tensor:
    r"""Importance of each interaction :math:`(u, i)` of :obj:`index` for
    user :math:`u`: :math:`1 +` the number of visits to :math:`i` by
    :obj:`num_walks` random walks :obj:`u -> item -> user -> item ...` from
    :math:`u` (each of at most :obj:`num_traversals` user -> item -> user
    traversals, ending with probability :obj:`restart_prob` after each), so
    items central to the user's taste weigh more. Returns :obj:`[E]` float
    weights for :func:`user_embedding`."""
    item_csr, user_csr = bipartite_csr(index, num_users, num_items)
    users = torch.arange(num_users).masked_select(
        user_csr[0][1:] > user_csr[0][:-1])
    trace = metapath_random_walk([user_csr, item_csr], users, num_traversals,
                                 restart_prob, num_walks, generator)
    # The visits of every user as sorted keys user * (I + 1) + item (items
    # are reached by the first hop; ended walks count as item I) with their
    # counts: a user's walks follow each other in the trace, so sorting
    # within users, in blocks of users of at most BLOCK_SIZE visits (see
    # BLOCK_SIZE), sorts all the keys.
    width, stride = num_walks * num_traversals, num_items + 1
    keys, counts = [], []
    step = rows_per_block(width, BLOCK_SIZE)
    for lo in range(0, users.numel() if width > 0 else 0, step):
        visits = trace[lo * num_walks:(lo + step) * num_walks, 1::2].reshape(
            -1, width)
        visits = visits.masked_fill(visits < 0, num_items).sort(dim=1).values
        visits += users[lo:lo + step].unsqueeze(1) * stride
        key, count = torch.unique_consecutive(visits.view(-1),
                                              return_counts=True)
        keys.append(key)
        counts.append(count)
    index = index.long()
    weight = full_blocks(index.size(1), 1, torch.float)
    if len(keys) == 0:
        return weight
    key, count = cat_blocks(keys), cat_blocks(counts)
    query = index.new_empty(index.size(1))
    for lo in range(0, query.numel(), BLOCK_SIZE):
        torch.add(index[1, lo:lo + BLOCK_SIZE],
                  index[0, lo:lo + BLOCK_SIZE] * stride,
                  out=query[lo:lo + BLOCK_SIZE])
    # One search of all: its parallel grain is 200 queries, so blocks would
    # not keep it on one thread, and one parallel region costs the least.
    pos = torch.searchsorted(key, query)
    for lo in range(0, query.numel(), BLOCK_SIZE):
        at = pos[lo:lo + BLOCK_SIZE].clamp_(max=key.numel() - 1)
        found = key.index_select(0, at) == query[lo:lo + BLOCK_SIZE]
        weight[lo:lo + at.numel()] += torch.where(
            found, count.index_select(0, at), 0).to(torch.float)
    return weight


def item_features(model: PinSage, split: BipartiteSplit) -> Optional[Tensor]:
    r"""The item features :obj:`split.item_x` if :obj:`model` takes
    features, else :obj:`None`."""
    if model.lin_in is None:
        return None
    if split.item_x is None:
        raise ValueError(f"the model takes {model.in_channels} input "
                         f"features, but the split has no 'item_x'; build "
                         f"it with 'num_nodes' (ID embeddings) instead")
    if split.item_x.shape != (split.num_items, model.in_channels):
        raise ValueError(f"'split.item_x' must have shape [{split.num_items}"
                         f", {model.in_channels}] (got "
                         f"{list(split.item_x.shape)})")
    return split.item_x.float()


def _check_model(model: PinSage, split: BipartiteSplit) -> None:
    if not isinstance(model, PinSage):
        raise TypeError(f"'model' must be a PinSage model (got "
                        f"{type(model).__name__})")
    if model.num_nodes is not None and model.num_nodes != split.num_items:
        raise ValueError(f"'model' has ID embeddings for {model.num_nodes} "
                         f"nodes, but the split has {split.num_items} items")


def _user_weight(split: BipartiteSplit, user_weighting: str,
                 walk_kwargs: Dict) -> Optional[Tensor]:
    if user_weighting not in USER_WEIGHTINGS:
        raise ValueError(f"'user_weighting' must be one of {USER_WEIGHTINGS}"
                         f" (got {user_weighting!r})")
    if user_weighting == 'mean':
        return None
    return user_item_importance(
        split.train_index, split.num_users, split.num_items,
        generator=torch.Generator().manual_seed(EVAL_NEIGHBORHOOD_SEED),
        **walk_kwargs)


@torch.no_grad()
def pinsage_embeddings(
    model: PinSage, split: BipartiteSplit, top_k: int = 10,
    num_walks: int = 10, num_traversals: int = 2, restart_prob: float = 0.5,
    user_weighting: str = 'mean',
    neighborhood: Optional[Tuple[Tensor, Tensor]] = None,
    user_weight: Optional[Tensor] = None, chunk_size: Optional[int] = None
) -> Tuple[Tensor, Tensor]:
    r"""User and item embeddings of a trained :class:`PinSage` for
    retrieval: every item is embedded ONCE, layer by layer
    (:meth:`PinSage.inference`), on one whole-catalogue importance
    neighbourhood (:func:`catalogue_neighborhood` with the walk arguments,
    or the given :obj:`neighborhood`); a user is the mean
    (:obj:`user_weighting='mean'`) or the
    :func:`user_item_importance`-weighted mean (:obj:`'importance'`, or the
    given :obj:`user_weight` :obj:`[E_train]`) of the embeddings of the
    user's training items (:func:`user_embedding`).

    Returns:
        :obj:`(user_emb [U, D], item_emb [I, D])`.
    """
    _check_model(model, split)
    walk_kwargs = dict(num_walks=num_walks, num_traversals=num_traversals,
                       restart_prob=restart_prob)
    if neighborhood is None:
        neighborhood = catalogue_neighborhood(split, top_k, **walk_kwargs)
    if user_weight is None:
        user_weight = _user_weight(split, user_weighting, walk_kwargs)
    device = next(model.parameters()).device
    x = item_features(model, split)
    training = model.training
    model.eval()
    try:
        item_emb = model.inference(
            neighborhood[0].to(device), neighborhood[1].to(device),
            x=None if x is None else x.to(device), chunk_size=chunk_size)
    finally:
        model.train(training)
    user_emb = user_embedding(
        item_emb, split.train_index.to(device),
        None if user_weight is None else user_weight.to(device),
        num_users=split.num_users)
    return user_emb, item_emb


class _PerBatchScheduler:
    r"""Lets :class:`Trainer` checkpoint a scheduler that is stepped after
    every batch: its per-epoch :meth:`step` does nothing."""
    def __init__(self, scheduler):
        self.scheduler = scheduler

    def step(self):
        pass

    def step_batch(self):
        self.scheduler.step()

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state)


class PinSageTraining:
    r"""The pieces of PinSage training that :func:`train_pinsage` hands to
    :class:`Trainer`: :meth:`loader` (the minibatches of an epoch),
    :meth:`step` (one optimisation step) and :meth:`validate`. See
    :func:`train_pinsage` for the arguments."""
    def __init__(self, model: PinSage, split: BipartiteSplit,
                 batch_size: int = 512, lr: float = 1e-3,
                 lr_decay: float = 0.95, weight_decay: float = 0.0,
                 margin: float = 1.0, num_negatives: int = 500,
                 hard_negatives: bool = True, max_hard_negatives: int = 5,
                 hard_rank_range: RankRange = DEFAULT_RANK_RANGE,
                 num_neighbors: Optional[Sequence[int]] = None,
                 num_walks: int = 10, num_traversals: int = 2,
                 restart_prob: float = 0.5,
                 pairs_per_epoch: Optional[int] = None, num_workers: int = 0,
                 user_weighting: str = 'mean', val_k: int = 20,
                 seed: int = 2020,
                 generator: Optional[torch.Generator] = None):
        _check_model(model, split)
        for name, value in (('batch_size', batch_size),
                            ('num_negatives', num_negatives)):
            if int(value) != value or value < 1:
                raise ValueError(f"'{name}' must be a positive integer (got "
                                 f"{value})")
        if int(max_hard_negatives) != max_hard_negatives or \
                max_hard_negatives < 0:
            raise ValueError(f"'max_hard_negatives' must be a non-negative "
                             f"integer (got {max_hard_negatives})")
        if int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f"'num_workers' must be a non-negative integer "
                             f"(got {num_workers})")
        if not 0.0 < lr_decay <= 1.0:
            raise ValueError(f"'lr_decay' must be in (0, 1] (got "
                             f"{lr_decay})")
        if num_neighbors is None:
            num_neighbors = [10] * model.num_layers
        num_neighbors = list(num_neighbors)
        if len(num_neighbors) != model.num_layers:
            raise ValueError(f"'num_neighbors' needs one entry per layer "
                             f"({model.num_layers}), got {num_neighbors}")
        if split.train_index.size(1) == 0:
            raise ValueError("'split.train_index' is empty")
        U, I = split.num_users, split.num_items
        self.model, self.split = model, split
        self.batch_size = int(batch_size)
        self.margin = check_finite_float(margin, 'margin')
        self.num_negatives = min(int(num_negatives), I)
        # Random negatives come as num_negatives / B per query (PyG's
        # triplet sampling); they are pooled and shared by all queries.
        self.amount = math.ceil(self.num_negatives / self.batch_size)
        self.max_hard_negatives = (int(max_hard_negatives)
                                   if hard_negatives else 0)
        self.num_workers = int(num_workers)
        self.generator = generator if generator is not None else \
            torch.Generator().manual_seed(seed)
        walk_kwargs = dict(num_walks=num_walks, num_traversals=num_traversals,
                           restart_prob=restart_prob)
        hard = None
        if self.max_hard_negatives > 0:
            hard = HardNegativeSampler(split.train_index, U, I,
                                       rank_range=hard_rank_range,
                                       alpha=restart_prob)
            lo, hi = hard.band
            # One PPR per item once, rather than one per query and batch.
            if I * (hi - lo) <= MAX_PRECOMPUTED_BAND_ENTRIES:
                hard.precompute()
        self.sampler = PinSageSampler(split.train_index, U, I,
                                      num_neighbors=num_neighbors,
                                      hard_negatives=hard, seed=seed,
                                      **walk_kwargs)
        self.data = item_data(I, item_features(model, split))
        self.item_csr, self.user_csr = bipartite_csr(split.train_index, U, I)
        self.pairs_per_epoch = int(pairs_per_epoch or
                                   split.train_index.size(1))
        self.device = next(model.parameters()).device

        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr,
                                          weight_decay=weight_decay)
        steps = math.ceil(self.pairs_per_epoch / self.batch_size)
        self.scheduler = _PerBatchScheduler(
            warmup_exponential_lr(self.optimizer, warmup_steps=steps,
                                  gamma=lr_decay**(1.0 / steps)))

        self.val_k = val_k
        self.evaluator = validation_evaluator(split, val_k)
        self.neighborhood = catalogue_neighborhood(
            split, max(num_neighbors), **walk_kwargs)
        self.user_weight = _user_weight(split, user_weighting, walk_kwargs)

    def loader(self, epoch: int) -> PinSageLinkLoader:
        r"""The minibatches of :obj:`epoch` (from 1): fresh co-engagement
        pairs drawn by the generator, and the curriculum's number of hard
        negatives (set on the sampler, so that the epoch's non-persistent
        workers pick it up)."""
        self.sampler.num_hard_negatives = hard_negative_curriculum(
            epoch, self.max_hard_negatives)
        pairs = sample_item_pairs(self.item_csr, self.user_csr,
                                  self.pairs_per_epoch, self.generator)
        return PinSageLinkLoader(
            self.data, self.sampler, pairs,
            neg_sampling=NegativeSampling('triplet', self.amount),
            batch_size=self.batch_size, shuffle=False,
            num_workers=self.num_workers)

    def loss(self, batch: Data) -> Tensor:
        r"""The max-margin loss of a triplet minibatch: every query against
        the pooled random negatives of the batch and its own hard
        negatives (the last columns of :obj:`dst_neg_index`)."""
        batch = batch.to(self.device)
        z = self.model(batch.get('x'), batch.edge_index, batch.edge_weight,
                       n_id=batch.n_id,
                       num_sampled_nodes_per_hop=batch.num_sampled_nodes,
                       num_sampled_edges_per_hop=batch.num_sampled_edges)
        num_queries = batch.src_index.numel()
        negatives = batch.dst_neg_index.view(num_queries, -1)
        shared = negatives[:, :self.amount].reshape(-1)[:self.num_negatives]
        hard = negatives[:, self.amount:]
        return max_margin_loss(z[batch.src_index], z[batch.dst_pos_index],
                               z[shared],
                               z[hard] if hard.size(1) > 0 else None,
                               margin=self.margin)

    def step(self, batch: Data) -> Tensor:
        self.optimizer.zero_grad()
        loss = self.loss(batch)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step_batch()
        return loss.detach()

    def embeddings(self) -> Tuple[Tensor, Tensor]:
        r"""User and item embeddings on the fixed evaluation
        neighbourhood."""
        return pinsage_embeddings(self.model, self.split,
                                  neighborhood=self.neighborhood,
                                  user_weight=self.user_weight)

    def validate(self) -> float:
        return self.evaluator(*self.embeddings())[f'ndcg@{self.val_k}']


def train_pinsage(model: PinSage, split: BipartiteSplit, epochs: int = 30,
                  patience: Optional[int] = 10,
                  checkpoint: Optional[str] = None, resume: bool = True,
                  progress: bool = True,
                  log: Optional[Callable[[Dict], None]] = None,
                  seed: int = 2020, **kwargs) -> TrainResult:
    r"""Trains :class:`PinSage` item-to-item and restores the
    weights of the best validation epoch.

    Positives are pairs of items co-engaged by a user in
    :obj:`split.train_index` (:func:`~pyg_lightgode.sampler.sample_item_pairs`,
    :obj:`pairs_per_epoch` fresh pairs per epoch, default one per training
    interaction), served in minibatches of :obj:`batch_size` by a
    :class:`~pyg_lightgode.sampler.PinSageLinkLoader` whose
    :obj:`num_workers` CPU processes sample the next computation graphs
    while the model computes (0: in the main process). The loss is the
    max-margin loss with margin :obj:`margin` (:math:`\Delta = 1`, as
    DGL, suits the paper's unnormalised output; with
    :obj:`PinSage(normalize_output=True)` the scores are cosines and
    :math:`\Delta \approx 0.05` works, see the MovieLens example) of every
    query against
    :obj:`num_negatives` random items shared by the minibatch (at most the
    catalogue) and, from epoch 2 on, :math:`\min(n - 1,`
    :obj:`max_hard_negatives`:math:`)` hard negatives per query in epoch
    :math:`n` (PPR band :obj:`hard_rank_range`; :obj:`hard_negatives=False`
    disables them). Adam with learning rate :obj:`lr`, warmed up linearly
    over the first epoch, then decayed by :obj:`lr_decay` per epoch
    (smoothly, per batch).

    Validation after every epoch: NDCG@:obj:`val_k` of all-item ranking on
    :obj:`split.val_index` (training items excluded; test when there is no
    validation part) with the embeddings of :func:`pinsage_embeddings` on
    ONE fixed whole-catalogue neighbourhood (:obj:`max(num_neighbors)`
    neighbours, the training walk arguments). Early stopping after
    :obj:`patience` epochs without improvement, checkpoint/resume and seeds
    as :class:`Trainer`.

    Args:
        model (PinSage): The model: item features (:obj:`in_channels`, from
            :obj:`split.item_x`), ID embeddings (:obj:`num_nodes =
            split.num_items`) or both.
        split (BipartiteSplit): The data.
        epochs (int): Maximum number of epochs. (default: :obj:`30`)
        **kwargs: :obj:`batch_size` (512), :obj:`lr` (1e-3), :obj:`lr_decay`
            (0.95), :obj:`weight_decay` (0), :obj:`margin` (1),
            :obj:`num_negatives` (500), :obj:`hard_negatives` (True),
            :obj:`max_hard_negatives` (5), :obj:`hard_rank_range`,
            :obj:`num_neighbors` (:obj:`[10] * num_layers`), :obj:`num_walks`
            (10), :obj:`num_traversals` (2), :obj:`restart_prob` (0.5),
            :obj:`pairs_per_epoch`, :obj:`num_workers` (0),
            :obj:`user_weighting` (:obj:`'mean'` or :obj:`'importance'`),
            :obj:`val_k` (20); see :class:`PinSageTraining`.
    """
    seed_everything(seed)
    training = PinSageTraining(model, split, seed=seed, **kwargs)
    return _fit(training, epochs, patience, checkpoint, resume, progress,
                log)


def _fit(training, epochs: int, patience: Optional[int],
         checkpoint: Optional[str], resume: bool, progress: bool,
         log: Optional[Callable[[Dict], None]]) -> TrainResult:
    r"""Runs a :class:`PinSageTraining` or
    :class:`PinSageUserItemTraining` on :class:`Trainer`."""
    trainer = Trainer(training.model, [training.optimizer],
                      max_epochs=epochs, patience=patience,
                      checkpoint=checkpoint, resume=resume,
                      generator=training.generator,
                      schedulers=[training.scheduler], progress=progress,
                      log=log)
    return trainer.fit(training.loader, training.step, training.validate)


# User-to-item PinSage ########################################################

LOSSES = ('max_margin', 'bpr')


def pair_loss(query_emb: Tensor, pos_emb: Tensor, neg_emb: OptTensor = None,
              hard_neg_emb: OptTensor = None, loss: str = 'max_margin',
              margin: float = 1.0) -> Tensor:
    r"""The ranking loss over every (query, negative) pair of
    :func:`max_margin_loss` (shared negatives :obj:`[N, D]`, per-query hard
    negatives :obj:`[B, H, D]`): :obj:`loss='max_margin'` is
    :func:`max_margin_loss`; :obj:`'bpr'` is
    :math:`\mathrm{softplus}((\mathbf{z}_q^{\top}\mathbf{z}_n -
    \mathbf{z}_q^{\top}\mathbf{z}_i) / \Delta)` averaged over the same
    pairs (:math:`\Delta` acts as a temperature)."""
    if loss not in LOSSES:
        raise ValueError(f"'loss' must be one of {LOSSES} (got {loss!r})")
    if loss == 'max_margin':
        return max_margin_loss(query_emb, pos_emb, neg_emb, hard_neg_emb,
                               margin)
    pos_score = (query_emb * pos_emb).sum(dim=-1, keepdim=True)
    neg_score = [query_emb @ neg_emb.t()] if neg_emb is not None else []
    if hard_neg_emb is not None:
        neg_score.append(torch.einsum('bd,bhd->bh', query_emb, hard_neg_emb))
    return torch.nn.functional.softplus(
        (torch.cat(neg_score, dim=-1) - pos_score) / margin).mean()


def user_item_features(split: BipartiteSplit) -> Optional[Tensor]:
    r"""The input features of the :obj:`U + I` nodes of user-item PinSage
    (users first): the block-diagonal :obj:`[U + I, F_u + F_i]` matrix
    with the user features :obj:`split.user_x` in the first columns of the
    user rows and the item features :obj:`split.item_x` in the last
    columns of the item rows (a missing side is zeros), so one
    :class:`~torch_geometric.nn.dense.Linear` acts as one projection per
    node type. :obj:`None` if the split has no features."""
    U, I = split.num_users, split.num_items
    xs = [split.user_x, split.item_x]
    if all(x is None for x in xs):
        return None
    widths = [0 if x is None else x.size(1) for x in xs]
    out = torch.zeros(U + I, sum(widths))
    if xs[0] is not None:
        out[:U, :widths[0]] = xs[0].float()
    if xs[1] is not None:
        out[U:, widths[0]:] = xs[1].float()
    return out


def user_item_pinsage(split: BipartiteSplit, features: bool = True,
                      embedding_std: Optional[float] = None,
                      **kwargs) -> PinSage:
    r"""A :class:`PinSage` whose nodes are the :obj:`U + I` users and items
    of :obj:`split` (users first): ID embeddings of all nodes plus, with
    :obj:`features` and where the split has them, a projection of
    :func:`user_item_features`. With :obj:`embedding_std`, the ID
    embeddings start from :math:`\mathcal{N}(0, \sigma^2)` instead of
    :class:`PinSage`'s Xavier initialisation, whose scale
    (:math:`\approx 1 / \sqrt{N}`) is far below that of the layers'
    biases on large graphs, so that all nodes start with nearly the same
    vector. :obj:`kwargs` go to :class:`PinSage` (:obj:`hidden_channels`,
    :obj:`num_layers`, ...)."""
    x = user_item_features(split) if features else None
    model = PinSage(num_nodes=split.num_nodes,
                    in_channels=None if x is None else x.size(1), **kwargs)
    if embedding_std is not None:
        torch.nn.init.normal_(model.embedding.weight, std=embedding_std)
    return model


def _check_user_item_model(model: PinSage, split: BipartiteSplit):
    if not isinstance(model, PinSage):
        raise TypeError(f"'model' must be a PinSage model (got "
                        f"{type(model).__name__})")
    if model.num_nodes != split.num_nodes:
        raise ValueError(f"user-item PinSage needs ID embeddings of the "
                         f"{split.num_users} + {split.num_items} nodes "
                         f"(num_nodes={split.num_nodes}); the model has "
                         f"num_nodes={model.num_nodes} (see "
                         f"user_item_pinsage)")


def user_item_input(model: PinSage, split: BipartiteSplit) -> OptTensor:
    r"""The features :func:`user_item_features` if :obj:`model` takes
    features, else :obj:`None`."""
    if model.lin_in is None:
        return None
    x = user_item_features(split)
    if x is None or x.size(1) != model.in_channels:
        raise ValueError(f"the model takes {model.in_channels} input "
                         f"features, but the split's user and item "
                         f"features have "
                         f"{0 if x is None else x.size(1)} columns")
    return x


def user_item_neighborhood(split: BipartiteSplit, top_k: int = 10,
                           mixed: bool = True, num_walks: int = 10,
                           num_traversals: Optional[int] = None,
                           restart_prob: float = 0.5,
                           index: OptTensor = None
                           ) -> ImportanceNeighborhood:
    r"""The importance-neighbourhood sampler of user-item PinSage on the
    training interactions
    (:meth:`~pyg_lightgode.sampler.ImportanceNeighborhood.user_item`,
    visits of a node to itself not counted): :obj:`mixed` neighbourhoods
    (users and items, walks of :obj:`num_traversals` single hops, default
    4) or same-type ones (users of users, items of items, walks of
    :obj:`num_traversals` two-hop traversals, default 2). :obj:`index`
    replaces the training interactions as the walk graph."""
    if num_traversals is None:
        num_traversals = 4 if mixed else 2
    index = split.train_index if index is None else index
    return ImportanceNeighborhood.user_item(
        index, split.num_users, split.num_items, mixed=mixed,
        num_walks=num_walks, num_traversals=num_traversals,
        restart_prob=restart_prob, top_k=top_k, exclude_seed=True)


@torch.no_grad()
def user_item_embeddings(model: PinSage, split: BipartiteSplit,
                         neighborhood: Tuple[Tensor, Tensor]
                         ) -> Tuple[Tensor, Tensor]:
    r"""User and item embeddings of a user-item :class:`PinSage`, every
    node embedded ONCE per layer (:meth:`PinSage.inference`) on the
    neighbourhood graph :obj:`neighborhood` :obj:`(edge_index,
    edge_weight)` of all :obj:`U + I` nodes. Returns :obj:`(user_emb [U,
    D], item_emb [I, D])`."""
    _check_user_item_model(model, split)
    device = next(model.parameters()).device
    x = user_item_input(model, split)
    training = model.training
    model.eval()
    try:
        emb = model.inference(neighborhood[0].to(device),
                              neighborhood[1].to(device),
                              x=None if x is None else x.to(device))
    finally:
        model.train(training)
    return emb[:split.num_users], emb[split.num_users:]


def _epoch_adjacency(edge_index: Tensor, edge_weight: Tensor,
                     num_nodes: int):
    r"""The neighbourhood graph of an epoch as the transposed adjacency
    every step multiplies with: a :class:`torch_sparse.SparseTensor` with
    its transpose cached (the backward pass of every step needs it), or
    the torch.sparse CSR of :func:`neighborhood_adj_t` without
    :obj:`torch_sparse`."""
    if not torch_geometric.typing.WITH_TORCH_SPARSE:
        return neighborhood_adj_t(edge_index, edge_weight, num_nodes)
    adj_t = SparseTensor(row=edge_index[1], col=edge_index[0],
                         value=edge_weight,
                         sparse_sizes=(num_nodes, num_nodes))
    return adj_t.fill_cache_()


def _adjacency_rows(adj_t, rows: Tensor):
    r"""The rows :obj:`rows` (targets) of a transposed adjacency."""
    if isinstance(adj_t, SparseTensor):
        return adj_t.index_select(0, rows)
    crow, col, value = (adj_t.crow_indices(), adj_t.col_indices(),
                        adj_t.values())
    begin, end = crow.index_select(0, rows), crow.index_select(0, rows + 1)
    count = end - begin
    row = torch.repeat_interleave(count)
    offset = torch.arange(row.numel(), device=row.device) - (
        count.cumsum(0) - count).index_select(0, row)
    entry = begin.index_select(0, row) + offset
    with quiet_sparse_csr():
        return torch.sparse_csr_tensor(
            torch.cat([count.new_zeros(1), count.cumsum(0)]),
            col.index_select(0, entry), value.index_select(0, entry),
            size=(rows.numel(), adj_t.size(1)))


class PinSageUserItemTraining:
    r"""User-to-item PinSage training (see :func:`train_pinsage_user_item`
    for the arguments): the pieces :class:`Trainer` runs."""
    def __init__(self, model: PinSage, split: BipartiteSplit,
                 batch_size: int = 2048, lr: float = 1e-2,
                 lr_decay: float = 0.95, weight_decay: float = 0.0,
                 loss: str = 'max_margin', margin: float = 0.1,
                 num_negatives: int = 500, hard_negatives: bool = True,
                 max_hard_negatives: int = 5,
                 hard_rank_range: RankRange = DEFAULT_RANK_RANGE,
                 num_neighbors: int = 10, mixed: bool = True,
                 num_walks: int = 10, num_traversals: Optional[int] = None,
                 restart_prob: float = 0.5, disjoint_train_ratio: float = 0.0,
                 val_k: int = 20, max_minutes: Optional[float] = None,
                 seed: int = 2020,
                 generator: Optional[torch.Generator] = None):
        _check_user_item_model(model, split)
        for name, value in (('batch_size', batch_size),
                            ('num_negatives', num_negatives),
                            ('num_neighbors', num_neighbors)):
            if int(value) != value or value < 1:
                raise ValueError(f"'{name}' must be a positive integer (got "
                                 f"{value})")
        if loss not in LOSSES:
            raise ValueError(f"'loss' must be one of {LOSSES} (got {loss!r})")
        if not 0.0 < lr_decay <= 1.0:
            raise ValueError(f"'lr_decay' must be in (0, 1] (got "
                             f"{lr_decay})")
        if not 0.0 <= disjoint_train_ratio < 1.0:
            raise ValueError(f"'disjoint_train_ratio' must be in [0, 1) (got "
                             f"{disjoint_train_ratio})")
        self.disjoint_train_ratio = float(disjoint_train_ratio)
        self.walk_options = (int(num_neighbors), mixed, num_walks,
                             num_traversals, restart_prob)
        U, I = split.num_users, split.num_items
        self.model, self.split = model, split
        self.num_users, self.num_items = U, I
        self.loss_name = loss
        self.margin = check_finite_float(margin, 'margin')
        self.num_negatives = min(int(num_negatives), I)
        self.max_hard_negatives = (int(max_hard_negatives)
                                   if hard_negatives else 0)
        self.num_hard_negatives = 0
        self.generator = generator if generator is not None else \
            torch.Generator().manual_seed(seed)
        self.seed = seed
        self.device = next(model.parameters()).device
        x = user_item_input(model, split)
        self.x = None if x is None else x.to(self.device)
        self.n_id = torch.arange(split.num_nodes, device=self.device)
        self.sampler = user_item_neighborhood(split, *self.walk_options)
        self.hard = None
        if self.max_hard_negatives > 0:
            self.hard = HardNegativeSampler(
                split.train_index, U, I, rank_range=hard_rank_range,
                alpha=restart_prob, query='user')
            lo, hi = self.hard.band
            if U * (hi - lo) <= MAX_PRECOMPUTED_BAND_ENTRIES:
                self.hard.precompute()
        self.batch_size = int(batch_size)
        self.batches = InteractionBatches(split.train_index, self.batch_size,
                                          self.generator)
        # The fused kernel: the same algorithm, several times faster on the
        # ID-embedding table, which every step updates in full.
        fused = self.device.type in ('cpu', 'cuda')
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr,
                                          weight_decay=weight_decay,
                                          fused=fused or None)
        steps = math.ceil(split.train_index.size(1) * (
            self.disjoint_train_ratio or 1.0) / self.batch_size)
        self.scheduler = _PerBatchScheduler(
            warmup_exponential_lr(self.optimizer, warmup_steps=steps,
                                  gamma=lr_decay**(1.0 / steps)))
        self.val_k = val_k
        self.evaluator = validation_evaluator(split, val_k)
        # ONE fixed neighbourhood graph for every evaluation.
        self.eval_neighborhood = self.sampler.all_neighborhoods(
            torch.Generator().manual_seed(EVAL_NEIGHBORHOOD_SEED))
        self.adj_t = None
        self.max_minutes = max_minutes
        self.start = time.perf_counter()

    def loader(self, epoch: int):
        r"""The minibatches of :obj:`epoch` (from 1): a fresh importance
        neighbourhood of every node (walks drawn by the generator) and
        the curriculum's number of hard negatives, then shuffled training
        pairs. Once :obj:`max_minutes` have passed since the training was
        set up, an epoch has no batches (it only validates, so early
        stopping ends the run)."""
        if self.max_minutes is not None and time.perf_counter() - \
                self.start > 60 * self.max_minutes:
            return []
        self.num_hard_negatives = hard_negative_curriculum(
            epoch, self.max_hard_negatives)
        sampler, batches = self.sampler, self.batches
        if self.disjoint_train_ratio > 0:
            # Supervision pairs apart from the walk graph: the label edges
            # are not in the neighbourhoods, as held-out pairs are not.
            index = self.split.train_index
            label = torch.rand(index.size(1), generator=self.generator) < \
                self.disjoint_train_ratio
            sampler = user_item_neighborhood(self.split, *self.walk_options,
                                             index=index[:, ~label])
            batches = InteractionBatches(index[:, label], self.batch_size,
                                         self.generator)
        edge_index, edge_weight = sampler.all_neighborhoods(self.generator)
        self.adj_t = _epoch_adjacency(edge_index.to(self.device),
                                      edge_weight.to(self.device),
                                      self.split.num_nodes)
        return batches

    def embed(self, nodes: Tensor) -> Tensor:
        r"""The output embeddings of :obj:`nodes` on this epoch's
        neighbourhoods: every layer but the last on all nodes (each node's
        layer-:math:`k` vector computed once), the last layer and the head
        on :obj:`nodes` only."""
        model, adj_t = self.model, self.adj_t
        h = model.embed_input(self.x, self.n_id)
        for conv in model.convs[:-1]:
            h = conv(h, adj_t)
        rows = _adjacency_rows(adj_t, nodes)
        h = model.convs[-1]((h, h.index_select(0, nodes)), rows)
        return model.head(h)

    def loss(self, users: Tensor, items: Tensor) -> Tensor:
        r"""The loss of a minibatch of (user, item) pairs: every user
        against :obj:`num_negatives` random items shared by the batch and
        its own PPR hard negatives."""
        U = self.num_users
        shared = torch.randint(self.num_items, (self.num_negatives, ),
                               generator=self.generator)
        hard = None
        if self.num_hard_negatives > 0:
            hard = self.hard(users, self.num_hard_negatives, self.generator)
        parts = [users, items + U, shared + U]
        if hard is not None:
            parts.append(hard.view(-1) + U)
        nodes, inverse = torch.cat(parts).unique(return_inverse=True)
        z = self.embed(nodes.to(self.device))
        z = z[inverse.to(self.device)]
        B, S = users.numel(), shared.numel()
        return pair_loss(
            z[:B], z[B:2 * B], z[2 * B:2 * B + S],
            None if hard is None else z[2 * B + S:].view(B, -1, z.size(-1)),
            loss=self.loss_name, margin=self.margin)

    def step(self, batch: Tuple[Tensor, Tensor]) -> Tensor:
        self.optimizer.zero_grad()
        loss = self.loss(*batch)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step_batch()
        return loss.detach()

    def embeddings(self) -> Tuple[Tensor, Tensor]:
        return user_item_embeddings(self.model, self.split,
                                    self.eval_neighborhood)

    def validate(self) -> float:
        return self.evaluator(*self.embeddings())[f'ndcg@{self.val_k}']


def train_pinsage_user_item(model: PinSage, split: BipartiteSplit,
                            epochs: int = 100, patience: Optional[int] = 5,
                            checkpoint: Optional[str] = None,
                            resume: bool = True, progress: bool = True,
                            log: Optional[Callable[[Dict], None]] = None,
                            seed: int = 2020,
                            **kwargs) -> Tuple[TrainResult,
                                               PinSageUserItemTraining]:
    r"""Trains a user-item :class:`PinSage` (nodes: the :obj:`U + I`
    users and items, see :func:`user_item_pinsage`) on the (user, item)
    pairs of :obj:`split.train_index` and restores the weights of the best
    validation epoch.

    Every epoch draws ONE importance neighbourhood of every node
    (:func:`user_item_neighborhood`: :obj:`num_neighbors` neighbours,
    :obj:`mixed` users-and-items or same-type neighbourhoods), and every
    step embeds all nodes layer by layer on it (each node's layer-:math:`k`
    vector computed once, as the paper's inference) and takes the loss of
    :obj:`batch_size` shuffled training pairs: every user against
    :obj:`num_negatives` random items shared by the batch and, from epoch
    2 on, :math:`\min(n - 1,` :obj:`max_hard_negatives`:math:`)` of its own
    hard negatives (items in the PPR band :obj:`hard_rank_range` from the
    user, its own items excluded), with :func:`pair_loss`
    (:obj:`loss='max_margin'`, margin :obj:`margin`, or :obj:`'bpr'`). On
    graphs of tens of thousands of nodes the 2-hop computation graphs of a
    minibatch cover most nodes anyway, so one computation of all nodes per
    step costs less than per-target computation graphs. Adam with
    learning rate :obj:`lr` warmed up linearly over the first epoch, then
    decayed by :obj:`lr_decay` per epoch (per batch). Validation NDCG@20
    after every epoch on ONE fixed neighbourhood, early stopping after
    :obj:`patience` epochs, checkpoint/resume and seeds as
    :class:`Trainer`.

    Returns:
        The :class:`TrainResult` and the :class:`PinSageUserItemTraining`
        (its :meth:`~PinSageUserItemTraining.embeddings` are the user and
        item embeddings for retrieval).
    """
    seed_everything(seed)
    training = PinSageUserItemTraining(model, split, seed=seed, **kwargs)
    return _fit(training, epochs, patience, checkpoint, resume, progress,
                log), training


#: User-item PinSage settings chosen on validation NDCG@20, per dataset
#: (:class:`PinSage` arguments under :obj:`'model'`, those of
#: :func:`train_pinsage_user_item` under :obj:`'train'`).
PINSAGE_SETTINGS = {
    'movielens100k': dict(
        model=dict(hidden_channels=64, out_channels=64, num_layers=2,
                   normalize_output=True),
        train=dict(batch_size=512, lr=1e-2, margin=0.1, num_negatives=500,
                   num_neighbors=10, mixed=True)),
    'gowalla': dict(
        model=dict(hidden_channels=64, out_channels=64, num_layers=2,
                   normalize_output=True, embedding_std=0.1),
        train=dict(batch_size=8192, lr=1e-2, margin=0.1, num_negatives=500,
                   num_neighbors=10, mixed=True, hard_negatives=False)),
}


def run_pinsage_user_item(split: BipartiteSplit,
                          dataset: Optional[str] = None, epochs: int = 100,
                          patience: Optional[int] = 5, seed: int = 2020,
                          progress: bool = False,
                          checkpoint: Optional[str] = None,
                          model_options: Optional[Dict] = None, **overrides
                          ) -> Tuple[Tensor, Tensor, TrainResult]:
    r"""Builds, trains (:func:`train_pinsage_user_item`) and embeds a
    user-item :class:`PinSage` with the :data:`PINSAGE_SETTINGS` of
    :obj:`dataset` (those of Gowalla for other names), model arguments
    overridden by :obj:`model_options` and training arguments by
    :obj:`overrides`. Returns :obj:`(user_emb, item_emb,
    result)`, the embeddings of the best validation epoch."""
    settings = PINSAGE_SETTINGS.get(dataset, PINSAGE_SETTINGS['gowalla'])
    seed_everything(seed)
    model = user_item_pinsage(split, **dict(settings['model'],
                                            **(model_options or {})))
    result, training = train_pinsage_user_item(
        model, split, epochs=epochs, patience=patience, seed=seed,
        progress=progress, checkpoint=checkpoint,
        **dict(settings['train'], **overrides))
    user_emb, item_emb = training.embeddings()
    return user_emb, item_emb, result
