r"""Datasets in PyG's form: the LightGCN splits (Gowalla, Yelp2018,
Amazon-Book) as :class:`~torch_geometric.data.InMemoryDataset`\ s,
MovieLens, and :func:`load_dataset`, which turns any of them (or a CSV
table) into a :class:`~pyg_lightgode.data.BipartiteSplit`."""
from .lightgcn import AmazonBook, Gowalla, LightGCNDataset, Yelp2018
from .load import load_dataset
from .movielens import load_movielens

__all__ = [
    'LightGCNDataset',
    'Gowalla',
    'Yelp2018',
    'AmazonBook',
    'load_movielens',
    'load_dataset',
]
