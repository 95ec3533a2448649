from .chunked import (
    EmbeddingStore,
    EmbeddingWriter,
    chunked_recommend,
    save_embeddings,
)
from .io import atomic_save, atomic_write

__all__ = [
    'EmbeddingStore',
    'EmbeddingWriter',
    'atomic_save',
    'atomic_write',
    'chunked_recommend',
    'save_embeddings',
]
