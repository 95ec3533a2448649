r"""One entry point, :func:`load_dataset`, from a dataset name to the
:class:`~pyg_lightgode.data.BipartiteSplit` every model consumes."""
import os
import os.path as osp
import shutil
from typing import List, Optional, Sequence

from torch_geometric.data import HeteroData

from pyg_lightgode.data.bipartite import BipartiteSplit
from pyg_lightgode.data.preprocess import random_split
from pyg_lightgode.datasets.interaction_table import from_interaction_table
from pyg_lightgode.datasets.lightgcn import AmazonBook, Gowalla, Yelp2018
from pyg_lightgode.datasets.movielens import load_movielens

LIGHTGCN_FILES = ['train.txt', 'test.txt', 'user_list.txt', 'item_list.txt']
RAW_FILES = {
    'gowalla': LIGHTGCN_FILES,
    'yelp2018': LIGHTGCN_FILES,
    'amazon-book': LIGHTGCN_FILES,
    'movielens100k': ['u.data', 'u.item', 'u.user', 'u1.base', 'u1.test'],
    'movielens1m': ['ratings.dat', 'movies.dat', 'users.dat'],
}
#: The raw files without which a dataset cannot be built (the LightGCN id
#: lists are optional).
REQUIRED_RAW_FILES = {key: names[:2] if names is LIGHTGCN_FILES else names
                      for key, names in RAW_FILES.items()}
DATASET_NAMES = tuple(RAW_FILES) + ('csv:<path>', )
LIGHTGCN_DATASETS = {'gowalla': Gowalla, 'yelp2018': Yelp2018,
                     'amazon-book': AmazonBook}


def link_raw_files(source_dir: str, raw_dir: str, names: Sequence[str],
                   copy: bool = False) -> List[str]:
    r"""Makes already-downloaded files usable by a PyG dataset: every file
    of :obj:`names` that :obj:`source_dir` holds and :obj:`raw_dir` lacks is
    symlinked (or, with :obj:`copy=True` or where symlinks fail, copied)
    into :obj:`raw_dir`. Files already in :obj:`raw_dir` are left alone and
    files missing from :obj:`source_dir` are skipped (the dataset then
    downloads what it still needs).

    Returns:
        The names that were linked or copied.

    Example:
        >>> link_raw_files('../shared/data/gowalla', 'data/gowalla/raw',
        ...                ['train.txt', 'test.txt'])
        >>> Gowalla('data/gowalla')  # no download
    """
    if not osp.isdir(source_dir):
        raise ValueError(f"'source_dir' must be an existing folder (got "
                         f"'{source_dir}')")
    os.makedirs(raw_dir, exist_ok=True)
    done = []
    for name in names:
        src, dst = osp.join(source_dir, name), osp.join(raw_dir, name)
        if osp.lexists(dst) or not osp.isfile(src):
            continue
        if not copy:
            try:
                os.symlink(osp.abspath(src), dst)
                done.append(name)
                continue
            except OSError:  # e.g. a file system without symlinks
                pass
        shutil.copyfile(src, dst)
        done.append(name)
    return done


def _canonical_name(name: str) -> str:
    key = name.lower().replace('_', '').replace('-', '')
    aliases = {'gowalla': 'gowalla', 'yelp2018': 'yelp2018',
               'amazonbook': 'amazon-book',
               'movielens100k': 'movielens100k', 'ml100k': 'movielens100k',
               'movielens1m': 'movielens1m', 'ml1m': 'movielens1m'}
    if key not in aliases:
        raise ValueError(f"unknown dataset {name!r}; valid names are "
                         f"{', '.join(DATASET_NAMES)}")
    return aliases[key]


def _with_validation(data: HeteroData, name: str, val_ratio: float,
                     seed: int) -> BipartiteSplit:
    out = BipartiteSplit.from_hetero_data(data, name=name)
    if val_ratio > 0:
        out.train_index, out.val_index = random_split(
            out.train_index, out.num_users, (1 - val_ratio, val_ratio), seed)
    (src, _, dst), = [t for t in data.edge_types
                      if 'edge_label_index' in data[t]]
    out.user_ids = data[src].get('raw_id')
    out.item_ids = data[dst].get('raw_id')
    return out


def load_dataset(name: str, root: Optional[str] = None,
                 raw_dir: Optional[str] = None, **options) -> BipartiteSplit:
    r"""Loads a dataset by name as a
    :class:`~pyg_lightgode.data.BipartiteSplit`.

    Args:
        name (str): :obj:`'gowalla'`, :obj:`'yelp2018'`,
            :obj:`'amazon-book'` (the official LightGCN splits, see
            :class:`~pyg_lightgode.datasets.LightGCNDataset`),
            :obj:`'movielens100k'`, :obj:`'movielens1m'`,
            or :obj:`'csv:<path>'` for an own interaction table (see
            :func:`~pyg_lightgode.datasets.read_interaction_table`).
        root (str): Folder for the datasets; each goes to
            :obj:`root/<name>/{raw,processed}` (not needed for CSV).
        raw_dir (str, optional): Folder with already-downloaded raw files,
            linked into :obj:`root/<name>/raw` by :func:`link_raw_files`;
            when it is given, nothing is downloaded: a required file that
            neither folder holds raises :class:`FileNotFoundError` naming
            it and both folders. Without it, missing files are downloaded,
            and a failed download names them.
        **options: For the LightGCN splits:
            :obj:`val_ratio` (default :obj:`0`: no validation; else this
            share of every user's training interactions becomes validation
            by :func:`~pyg_lightgode.data.random_split`, so early stopping
            never sees test), :obj:`seed` (2020), :obj:`force_reload`.
            For MovieLens: the arguments of
            :func:`~pyg_lightgode.datasets.load_movielens`. For CSV: those
            of :func:`~pyg_lightgode.datasets.from_interaction_table`.
    """
    if not isinstance(name, str):
        raise TypeError(f"'name' must be a string (got "
                        f"{type(name).__name__})")
    if name.lower().startswith('csv:'):
        return from_interaction_table(name[4:], **options)
    key = _canonical_name(name)
    if root is None:
        raise ValueError(f"'root' is required to load {name!r}")
    root = osp.join(root, key)
    if raw_dir is not None:
        if not osp.isdir(raw_dir):
            raise FileNotFoundError(f"'raw_dir' (--raw-dir) '{raw_dir}' is "
                                    f"not a folder")
        link_raw_files(raw_dir, osp.join(root, 'raw'), RAW_FILES[key])
        lacking = [name for name in REQUIRED_RAW_FILES[key]
                   if not osp.exists(osp.join(root, 'raw', name))]
        if lacking:  # A folder was given: never download behind its back.
            raise FileNotFoundError(
                f"{key} needs the raw files {lacking}, which neither "
                f"'raw_dir' (--raw-dir) '{raw_dir}' nor "
                f"'{osp.join(root, 'raw')}' holds; put them into one of "
                f"them, or drop raw_dir to download the dataset")
    if key.startswith('movielens'):
        return load_movielens(root, key[len('movielens'):], **options)
    return _load_lightgcn(key, root, **options)


def _load_lightgcn(key: str, root: str, val_ratio: float = 0.0,
                   seed: int = 2020,
                   force_reload: bool = False) -> BipartiteSplit:
    if not 0 <= val_ratio < 1:
        raise ValueError(f"'val_ratio' must lie in [0, 1) (got {val_ratio})")
    cls = LIGHTGCN_DATASETS[key]
    data = cls(root, force_reload=force_reload)[0]
    return _with_validation(data, key, val_ratio, seed)
