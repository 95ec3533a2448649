from .distributed import (
    LossModule,
    all_gather_rows,
    destroy_distributed,
    init_distributed,
    wrap_ddp,
)
from .trainer import (
    InteractionBatches,
    Trainer,
    TrainResult,
    seed_everything,
)

__all__ = [
    'LossModule',
    'all_gather_rows',
    'destroy_distributed',
    'init_distributed',
    'wrap_ddp',
    'InteractionBatches',
    'Trainer',
    'TrainResult',
    'seed_everything',
]
