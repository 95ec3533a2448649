from .lightgode import LightGODE, embedding_discrepancy
from .pinsage import (
    PinSage,
    max_margin_loss,
    neighborhood_blocks,
    sampled_blocks,
    user_embedding,
    warmup_exponential_lr,
)

__all__ = [
    'LightGODE',
    'PinSage',
    'embedding_discrepancy',
    'max_margin_loss',
    'neighborhood_blocks',
    'sampled_blocks',
    'user_embedding',
    'warmup_exponential_lr',
]
