from .interaction_table import (
    InteractionTable,
    from_interaction_table,
    read_int_rows,
    read_interaction_table,
)
from .gowalla import Gowalla, read_id_list, read_lightgcn_file
from .movielens import load_movielens, read_movielens_ratings
from .load import DATASET_NAMES, link_raw_files, load_dataset

__all__ = [
    'Gowalla',
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
    'read_movielens_ratings',
]
