from .amazon_book import AmazonBook
from .gowalla import Gowalla
from .interaction_table import (
    InteractionTable,
    from_interaction_table,
    read_int_rows,
    read_interaction_table,
)
from .lightgcn import (
    LightGCNDataset,
    read_id_list,
    read_lightgcn_file,
    remove_stale_tmp_files,
)
from .load import DATASET_NAMES, link_raw_files, load_dataset
from .movielens import load_movielens, read_movielens_ratings
from .yelp2018 import Yelp2018

__all__ = [
    'LightGCNDataset',
    'Gowalla',
    'Yelp2018',
    'AmazonBook',
    'load_movielens',
    'load_dataset',
    'link_raw_files',
    'DATASET_NAMES',
    'InteractionTable',
    'read_interaction_table',
    'from_interaction_table',
    'read_int_rows',
    'read_lightgcn_file',
    'read_id_list',
    'remove_stale_tmp_files',
    'read_movielens_ratings',
]
