from .trainer import (
    InteractionBatches,
    Trainer,
    TrainResult,
    atomic_save,
    seed_everything,
)

__all__ = [
    'InteractionBatches',
    'Trainer',
    'TrainResult',
    'atomic_save',
    'seed_everything',
]
