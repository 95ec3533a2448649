from .io import atomic_save, atomic_write

__all__ = ['atomic_save', 'atomic_write']
