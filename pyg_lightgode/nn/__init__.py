from .conv import LightGODEConv, PinSAGEConv
from .models import (
    LightGODE,
    PinSage,
    embedding_discrepancy,
    max_margin_loss,
    neighborhood_blocks,
    sampled_blocks,
    user_embedding,
    warmup_exponential_lr,
)

__all__ = [
    'LightGODEConv',
    'PinSAGEConv',
    'LightGODE',
    'PinSage',
    'embedding_discrepancy',
    'max_margin_loss',
    'neighborhood_blocks',
    'sampled_blocks',
    'user_embedding',
    'warmup_exponential_lr',
]
