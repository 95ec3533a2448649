r"""pyg_lightgode: fast graph-based recommendation on bipartite user--item
graphs for PyTorch Geometric (LightGODE, PinSage)."""
__version__ = '0.1.0'
