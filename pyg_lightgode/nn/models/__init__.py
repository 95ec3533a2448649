from .graph_filters import (
    BSPM,
    GFCF,
    EmbeddingScorer,
    GraphFilter,
    ScoreFusion,
    Scorer,
    TurboCF,
    standardize,
)
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
    'BSPM',
    'EmbeddingScorer',
    'GFCF',
    'GraphFilter',
    'ScoreFusion',
    'Scorer',
    'TurboCF',
    'standardize',
    'LightGODE',
    'PinSage',
    'embedding_discrepancy',
    'max_margin_loss',
    'neighborhood_blocks',
    'sampled_blocks',
    'user_embedding',
    'warmup_exponential_lr',
]
