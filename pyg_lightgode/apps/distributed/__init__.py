r"""Past one process after training, on :mod:`torch.distributed` (gloo on
CPU, NCCL on GPU; launched with :obj:`torchrun`): a graph whose rows are
split across ranks with a halo exchange, LightGODE propagation over it,
the training-free filters' block Krylov basis and scoring, PinSage's
layer-wise inference, sharded exact top-:math:`k` retrieval and row-sharded
embedding tables."""
from .partition import (
    GraphPartition,
    NodeSplit,
    bipartite_split,
    edge_balanced_bounds,
    partition_bipartite,
    partition_rows,
)

__all__ = [
    'GraphPartition',
    'NodeSplit',
    'bipartite_split',
    'edge_balanced_bounds',
    'partition_bipartite',
    'partition_rows',
]
