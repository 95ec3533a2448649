r"""PinSage's sampling: random-walk importance neighbourhoods, PPR hard
negatives, and a PyG :class:`~torch_geometric.sampler.BaseSampler` with
node and link loaders (the walks themselves are in
:mod:`~pyg_lightgode.sampler.random_walk`)."""
from .hard_negatives import HardNegativeSampler
from .importance import ImportanceNeighborhood
from .pinsage_sampler import (
    PinSageLinkLoader,
    PinSageNodeLoader,
    PinSageSampler,
)

__all__ = [
    'PinSageSampler',
    'PinSageNodeLoader',
    'PinSageLinkLoader',
    'ImportanceNeighborhood',
    'HardNegativeSampler',
]
