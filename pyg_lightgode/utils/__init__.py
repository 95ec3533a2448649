from .chunked import (
    EmbeddingStore,
    EmbeddingWriter,
    chunked_recommend,
    save_embeddings,
)
from .io import atomic_save, atomic_write, write_json

__all__ = [
    'EmbeddingStore',
    'EmbeddingWriter',
    'atomic_save',
    'atomic_write',
    'chunked_recommend',
    'save_embeddings',
    'write_json',
]
