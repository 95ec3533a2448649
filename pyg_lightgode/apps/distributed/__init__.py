r"""Past one process after training, on :mod:`torch.distributed` (gloo on
CPU, NCCL on GPU; launched with :obj:`torchrun`): a graph whose rows are
split across ranks with a halo exchange, LightGODE propagation over it,
the training-free filters' block Krylov basis and scoring, PinSage's
layer-wise inference, sharded exact top-:math:`k` retrieval and row-sharded
embedding tables."""
from .embedding import ShardedEmbedding, sharded_recommendation_loss
from .filters import (
    DistributedBSPM,
    DistributedChebyCF,
    DistributedGFCF,
    local_interactions,
    score_users,
    user_bounds,
)
from .partition import (
    GraphPartition,
    NodeSplit,
    bipartite_split,
    edge_balanced_bounds,
    partition_bipartite,
    partition_rows,
)
from .pinsage import partition_neighborhood, pinsage_inference
from .topk import sharded_topk

__all__ = [
    'DistributedBSPM',
    'DistributedChebyCF',
    'DistributedGFCF',
    'GraphPartition',
    'NodeSplit',
    'ShardedEmbedding',
    'bipartite_split',
    'edge_balanced_bounds',
    'partition_bipartite',
    'local_interactions',
    'partition_neighborhood',
    'partition_rows',
    'pinsage_inference',
    'score_users',
    'sharded_recommendation_loss',
    'sharded_topk',
    'user_bounds',
]
