r"""The operators behind the training-free filters of
:mod:`pyg_lightgode.nn.models` (normalised interaction matrix, ideal
low-pass basis, linear flows, Chebyshev filters, item-item builders), in
:mod:`~pyg_lightgode.nn.filters.operators`; tensors in, tensors out."""
__all__ = []
