from .distributed import (
    LossModule,
    all_gather_rows,
    destroy_distributed,
    init_distributed,
    wrap_ddp,
)
from .pinsage import (
    PinSageTraining,
    max_margin_loss,
    pinsage_embeddings,
    train_pinsage,
    user_embedding,
    warmup_exponential_lr,
)
from .recipes import (
    LIGHTGODE_SETTINGS,
    train_bpr,
    train_lightgode,
    train_on_pairs,
)
from .trainer import (
    CheckpointError,
    InteractionBatches,
    Trainer,
    TrainResult,
    format_epoch,
    print_epochs,
    read_checkpoint,
    seed_everything,
)

__all__ = [
    'LossModule',
    'all_gather_rows',
    'destroy_distributed',
    'init_distributed',
    'wrap_ddp',
    'CheckpointError',
    'InteractionBatches',
    'Trainer',
    'read_checkpoint',
    'format_epoch',
    'print_epochs',
    'TrainResult',
    'seed_everything',
    'PinSageTraining',
    'max_margin_loss',
    'pinsage_embeddings',
    'train_pinsage',
    'user_embedding',
    'warmup_exponential_lr',
    'LIGHTGODE_SETTINGS',
    'train_bpr',
    'train_lightgode',
    'train_on_pairs',
]
