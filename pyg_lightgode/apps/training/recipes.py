r"""Ready training recipes: the model, its optimizer, shuffled batches of
observed pairs, validation NDCG@K after every epoch with early stopping,
checkpoint/resume and seeds, wired onto :class:`Trainer`."""
from typing import Callable, Dict, Optional

import torch
from torch_geometric.nn.models import LightGCN

from pyg_lightgode.apps.training.distributed import (
    all_gather_rows,
    get_rank,
    get_world_size,
    shard,
    wrap_ddp,
)
from pyg_lightgode.apps.training.trainer import (
    InteractionBatches,
    Trainer,
    TrainResult,
    seed_everything,
)
from pyg_lightgode.data.bipartite import BipartiteSplit
from pyg_lightgode.metrics import RankingEvaluator
from pyg_lightgode.sampler.uniform_negatives import UniformNegativeSampler

#: LightGODE settings chosen by measurement, per dataset (BENCHMARKS.md;
#: tuning runs in docs/history.md): :class:`LightGODE` arguments
#: (:obj:`t`, :obj:`gamma`,
#: :obj:`sparse`) and :func:`train_lightgode` arguments (:obj:`batch_size`,
#: :obj:`lr`, :obj:`weight_decay`). The paper's official recipe is gamma
#: 10, batch 256, lr 1e-3, dense Adam.
LIGHTGODE_SETTINGS = {
    # Gowalla: lazy (sparse) Adam learns a better MF than dense Adam, whose
    # stale moments keep moving rows absent from the batch; gamma 5 beat 2,
    # 4, 7 and 10, and batch 1024 / lr 5e-3 beat 512, 2048 and lr 1e-2.
    'gowalla': dict(t=3.0, gamma=5.0, sparse=True, batch_size=1024,
                    lr=5e-3, weight_decay=0.0),
    # MovieLens-100K: a dense catalogue wants much weaker uniformity, and
    # lazy Adam again beats dense Adam (best validation NDCG@20 of a gamma x
    # lr grid). The optimum is narrow: gamma 0.3 collapses after two epochs,
    # gamma 0.5 learns several times slower.
    'movielens100k': dict(t=3.0, gamma=0.4, sparse=True, batch_size=256,
                          lr=1e-2, weight_decay=0.0),
}


def validation_evaluator(split: BipartiteSplit, k: int = 20,
                         batch_size: int = 2048) -> RankingEvaluator:
    r"""Ranks validation items (training items excluded) and returns
    NDCG@k; falls back to the test part when the split has no validation
    interactions (as in the published LightGCN protocol)."""
    target = split.val_index if split.val_index is not None else \
        split.test_index
    return RankingEvaluator(target, exclude_links=split.train_index,
                            num_users=split.num_users,
                            num_items=split.num_items, ks=(k, ),
                            metrics=('ndcg', ), batch_size=batch_size)


def make_optimizer(model: torch.nn.Module, lr: float,
                   weight_decay: float = 0.0):
    r"""Adam, or :class:`torch.optim.SparseAdam` for parameters with sparse
    gradients (touching only the rows of the batch)."""
    sparse = [p for m in model.modules() if getattr(m, 'sparse', False)
              for p in m.parameters(recurse=False)]
    dense = [p for p in model.parameters()
             if all(p is not q for q in sparse)]
    optimizers = []
    if sparse:
        if weight_decay:
            raise ValueError("'weight_decay' is not supported with sparse "
                             "embeddings (SparseAdam); set sparse=False")
        optimizers.append(torch.optim.SparseAdam(sparse, lr=lr))
    if dense:
        # The fused kernel is the same algorithm, ~9x faster per step on CPU
        # for embedding tables, where the update dominates a step.
        fused = all(p.device.type in ('cpu', 'cuda') for p in dense)
        optimizers.append(torch.optim.Adam(dense, lr=lr,
                                           weight_decay=weight_decay,
                                           fused=fused or None))
    return optimizers


def train_on_pairs(model: torch.nn.Module, split: BipartiteSplit,
                   loss_fn: Callable, embed_fn: Callable, epochs: int,
                   batch_size: int, lr: float, weight_decay: float = 0.0,
                   patience: Optional[int] = 10, val_k: int = 20,
                   seed: int = 2020, checkpoint: Optional[str] = None,
                   resume: bool = True, progress: bool = True,
                   log: Optional[Callable[[Dict], None]] = None,
                   sample_fn: Optional[Callable] = None,
                   validate: bool = True) -> TrainResult:
    r"""The shared loop of every recipe: shuffled batches of training pairs,
    :obj:`loss_fn(*batch, generator)` minimised with Adam (SparseAdam
    for sparse embeddings), validation NDCG@:obj:`val_k` of
    :obj:`embed_fn() -> (user_emb, item_emb)` after every epoch, early
    stopping with restore of the best weights, checkpoint/resume, seeds.
    :obj:`batch` is :obj:`(users, items)`, or what
    :obj:`sample_fn(users, items, generator)` makes of it (e.g. adds
    negatives). With :obj:`validate=False` nothing is evaluated and the
    weights of the last of :obj:`epochs` epochs are kept: the final fit on
    :meth:`~pyg_lightgode.data.BipartiteSplit.merge_validation` for an
    epoch count chosen on validation (never on test).

    Under :mod:`torch.distributed` (see
    :mod:`pyg_lightgode.apps.training.distributed`) the same call runs on every
    rank with the model wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel`, and
    :obj:`batch_size` is the GLOBAL batch: every rank draws the same shuffled
    global batch (and runs :obj:`sample_fn` on all of it with the shared
    generator), computes the loss on its :math:`\approx B / W` pairs, and the
    gradients are averaged with weights that make the step the
    single-process one for losses that are means over pairs. :obj:`loss_fn`
    must then not draw from :obj:`generator` (draw in :obj:`sample_fn`), or
    the ranks' shuffling would drift apart. Global batches with fewer pairs
    than ranks are skipped.
    """
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    if not validate and patience is not None:
        raise ValueError("'patience' needs validation: pass patience=None "
                         "with validate=False")
    evaluator = validation_evaluator(split, val_k) if validate else None
    optimizers = make_optimizer(model, lr, weight_decay)
    rank, world_size = get_rank(), get_world_size()
    if batch_size < world_size:
        raise ValueError(f"'batch_size' is the global batch and must be >= "
                         f"the number of processes {world_size} (got "
                         f"{batch_size})")
    device = next(model.parameters()).device

    def objective(*batch):
        if world_size == 1:
            return loss_fn(*batch, generator)
        state = generator.get_state()
        loss = loss_fn(*batch, generator)
        if not torch.equal(state, generator.get_state()):
            raise RuntimeError("'loss_fn' drew from the shared generator "
                               "under torch.distributed, which desynchronises "
                               "the ranks' shuffling; draw in 'sample_fn'")
        return loss

    loss_module = wrap_ddp(model, objective)

    def step(batch):
        if sample_fn is not None:
            batch = sample_fn(*batch, generator)
        global_size = batch[0].size(0)
        batch = [t.to(device) for t in shard(batch, rank, world_size)]
        for opt in optimizers:
            opt.zero_grad()
        loss = loss_module(*batch)
        # DDP averages over ranks; weighting by the shard's share of the
        # global batch makes that the gradient of the global mean.
        (loss * (batch[0].size(0) * world_size / global_size)).backward()
        for opt in optimizers:
            opt.step()
        return loss.detach()

    def score() -> float:
        return evaluator(*embed_fn())[f'ndcg@{val_k}']

    batches = InteractionBatches(split.train_index, batch_size, generator)

    def epoch_batches(epoch):
        if world_size == 1:
            return batches
        return (b for b in batches if b[0].numel() >= world_size)

    trainer = Trainer(model, optimizers, max_epochs=epochs, patience=patience,
                      checkpoint=checkpoint, resume=resume,
                      generator=generator, progress=progress, log=log)
    return trainer.fit(epoch_batches, step, score if validate else None)


def train_lightgode(model, split: BipartiteSplit, epochs: int = 300,
                    batch_size: int = 256, lr: float = 1e-3,
                    **kwargs) -> TrainResult:
    r"""Trains a :class:`~pyg_lightgode.nn.models.LightGODE` on
    :obj:`split.train_index` with the official recipe (the paper's: Adam,
    batch 256 pairs, validation NDCG@20 every epoch, stop after 10 epochs
    without improvement) and restores the best weights. No graph work happens
    during training; validation propagates once per epoch. Further keyword
    arguments go to :func:`train_on_pairs`. Under :mod:`torch.distributed`
    the alignment term is taken on each rank's share of the batch and the
    uniformity term on the whole global batch (gathered by
    :func:`~pyg_lightgode.apps.training.distributed.all_gather_rows`), so the
    step equals the single-process one.
    """
    def loss_fn(users, items, _):
        gather = all_gather_rows if get_world_size() > 1 else None
        return model.recommendation_loss(users, items, gather=gather)

    U = split.num_users
    adj_t = split.adj_t().to(next(model.parameters()).device)

    def embed():
        emb = model.get_embedding(adj_t)
        return emb[:U], emb[U:]

    return train_on_pairs(model, split, loss_fn, embed, epochs, batch_size,
                          lr, **kwargs)


def train_bpr(model: LightGCN, split: BipartiteSplit, epochs: int = 1000,
              batch_size: int = 2048, lr: float = 1e-3,
              lambda_reg: float = 1e-4, **kwargs) -> TrainResult:
    r"""Trains PyG's :class:`~torch_geometric.nn.models.LightGCN` (users
    first, then items, as :meth:`BipartiteSplit.adj_t` numbers them) with
    PyG's BPR :meth:`~torch_geometric.nn.models.LightGCN.recommendation_loss`
    and one uniform negative item per positive pair (drawn for the global
    batch, so that runs on 1 or N processes see the same negatives). With
    :obj:`num_layers=0` this is MF-BPR. Further keyword arguments go to
    :func:`train_on_pairs`.
    """
    if model.num_nodes != split.num_nodes:
        raise ValueError(f"'model' has {model.num_nodes} nodes but the split "
                         f"has {split.num_users} users + {split.num_items} "
                         f"items")
    U = split.num_users
    adj_t = split.adj_t().to(next(model.parameters()).device)
    negatives = UniformNegativeSampler(split.train_index, U, split.num_items)

    def sample_fn(users, items, generator):
        return users, items, negatives(users, generator)

    def loss_fn(users, items, neg, _):
        emb = model.get_embedding(adj_t)  # No graph work with 0 layers.
        u, i, j = emb[users], emb[U + items], emb[U + neg]
        node_id = torch.cat([users, U + items, U + neg])
        return model.recommendation_loss(
            (u * i).sum(-1), (u * j).sum(-1), node_id=node_id,
            lambda_reg=lambda_reg)

    def embed():
        emb = model.get_embedding(adj_t)
        return emb[:U], emb[U:]

    return train_on_pairs(model, split, loss_fn, embed, epochs, batch_size,
                          lr, sample_fn=sample_fn, **kwargs)


def sweep_propagation(model, split: BipartiteSplit, times=None,
                      num_layers: int = 0, part: str = 'val',
                      ks=(20, ), batch_size: int = 2048):
    r"""Accuracy and :func:`embedding_discrepancy` of a trained
    :class:`~pyg_lightgode.nn.models.LightGODE` for every ODE time in
    :obj:`times` (ONE solve for all of them) and for 0..:obj:`num_layers`
    discrete LightGCN-style layers, on :obj:`part` ('val' excludes training
    items; 'test' also excludes validation items).

    Returns a list of dicts with keys :obj:`'propagation'`, :obj:`'t'` or
    :obj:`'layers'`, :obj:`'discrepancy'` and the metrics
    (:obj:`'recall@20'`, :obj:`'ndcg@20'`, ...).
    """
    from pyg_lightgode.nn.models.lightgode import embedding_discrepancy
    if part == 'val' and split.val_index is None:
        part = 'test'
    evaluator = RankingEvaluator(split.part(part),
                                 exclude_links=split.known_interactions(part),
                                 num_users=split.num_users,
                                 num_items=split.num_items, ks=ks,
                                 metrics=('recall', 'ndcg'),
                                 batch_size=batch_size)
    U = split.num_users
    adj_t = split.adj_t().to(next(model.parameters()).device)
    rows = []
    with torch.no_grad():
        e0 = model.embedding()
        if times is not None:
            times = torch.as_tensor(times, dtype=e0.dtype).flatten()
            out = model.get_embedding(adj_t, t=times)
            disc = embedding_discrepancy(e0, out)
            for j, t in enumerate(times.tolist()):
                rows.append({'propagation': f'ode ({model.conv.method})',
                             't': t, 'discrepancy': float(disc[j]),
                             **evaluator(out[j, :U], out[j, U:])})
        if num_layers:
            out = model.get_layer_embedding(adj_t, num_layers)
            disc = embedding_discrepancy(e0, out)
            for layer in range(num_layers + 1):
                rows.append({'propagation': 'lightgcn layer mean',
                             'layers': layer, 'discrepancy': float(
                                 disc[layer]),
                             **evaluator(out[layer, :U], out[layer, U:])})
    return rows
