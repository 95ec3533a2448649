r"""MovieLens-100K and MovieLens-1M as :class:`BipartiteSplit`: PyG's
:class:`~torch_geometric.datasets.MovieLens100K` /
:class:`~torch_geometric.datasets.MovieLens1M` download the data and encode
the user and item features; the full rating table with timestamps
(:obj:`u.data` / :obj:`ratings.dat`) is read and checked here and passed
through :func:`~pyg_lightgode.data.build_split`."""
import os.path as osp
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.datasets import MovieLens1M, MovieLens100K

from pyg_lightgode.data.bipartite import BipartiteSplit
from pyg_lightgode.data.preprocess import build_split
from pyg_lightgode.datasets.interaction_table import file_error, read_int_rows
from pyg_lightgode.datasets.safe import SafeProcessing

RATING_COLUMNS = ('user', 'item', 'rating', 'timestamp')


class SafeMovieLens100K(SafeProcessing, MovieLens100K):
    r"""PyG's :class:`~torch_geometric.datasets.MovieLens100K` with
    :class:`~pyg_lightgode.datasets.safe.SafeProcessing`: atomic processed
    file, recovery from interrupted runs, missing raw files named."""


class SafeMovieLens1M(SafeProcessing, MovieLens1M):
    r"""PyG's :class:`~torch_geometric.datasets.MovieLens1M` with
    :class:`~pyg_lightgode.datasets.safe.SafeProcessing`."""


class MovieLensVersion(NamedTuple):
    dataset_cls: Callable
    ratings_file: str
    item_file: str
    user_file: str
    sep: str  # of the rating file
    meta_sep: str  # of the item and user files
    year_pattern: str  # extracts the release year from the item column
    year_column: int


VERSIONS = {
    '100k': MovieLensVersion(SafeMovieLens100K, 'u.data', 'u.item', 'u.user',
                             '\t', '|', r'(\d{4})\s*$', 2),
    '1m': MovieLensVersion(SafeMovieLens1M, 'ratings.dat', 'movies.dat',
                           'users.dat', '::', '::', r'\((\d{4})\)\s*$', 1),
}


def read_movielens_ratings(path: str, sep: str = '\t') -> np.ndarray:
    r"""Reads a MovieLens rating file (:obj:`u.data`: tab-separated,
    :obj:`ratings.dat`: :obj:`'::'`-separated) of lines
    :obj:`user item rating timestamp`, all non-negative integers. Returns an
    :obj:`int64` array :obj:`[N, 4]`; a malformed line raises a
    :class:`ValueError` naming file and line."""
    return read_int_rows(path, sep, RATING_COLUMNS)


def _read_columns(path: str, sep: str, columns: Sequence[int]):
    import pandas as pd
    return pd.read_csv(path, sep=sep, header=None, encoding='ISO-8859-1',
                       engine='python' if len(sep) > 1 else 'c',
                       usecols=list(columns), dtype=str,
                       keep_default_na=False)


def normalised_year(values: Sequence[str], pattern: str) -> Tensor:
    r"""Release years extracted by the regular expression :obj:`pattern`,
    scaled to :math:`[0, 1]` by min--max; items without a year get the mean.
    Returns a :obj:`[N, 1]` float tensor."""
    import pandas as pd
    years = pd.Series(values).str.extract(pattern)[0].astype(float)
    years = years.to_numpy()
    known = ~np.isnan(years)
    out = np.zeros_like(years)
    if known.any():
        lo, hi = years[known].min(), years[known].max()
        out[known] = (years[known] - lo) / (hi - lo) if hi > lo else 0.0
        out[~known] = out[known].mean()
    return torch.from_numpy(out).to(torch.float).view(-1, 1)


def _compact(raw: np.ndarray, ids: np.ndarray, path: str, what: str,
             defined_in: str) -> Tensor:
    import pandas as pd
    pos = pd.Index(ids).get_indexer(raw)
    if (pos < 0).any():
        k = int((pos < 0).argmax())
        raise file_error(path, k + 1, f'{what} id {int(raw[k])} is not '
                         f'listed in {defined_in}')
    return torch.from_numpy(pos.astype(np.int64))


def load_movielens(
    root: str,
    version: str = '100k',
    min_rating: float = 4,
    split: str = 'random',
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 2020,
    user_k: int = 0,
    item_k: int = 0,
    num_val: int = 1,
    num_test: int = 1,
    year_feature: bool = True,
    force_reload: bool = False,
) -> BipartiteSplit:
    r"""MovieLens-100K (:obj:`version='100k'`) or MovieLens-1M
    (:obj:`'1m'`) as a :class:`~pyg_lightgode.data.BipartiteSplit`.

    Files live in :obj:`root/raw` (PyG downloads them when missing). User
    features are PyG's (100K: normalised age, gender, occupation one-hot;
    1M: age group, gender, occupation one-hot), item features PyG's genre
    one-hot plus, with :obj:`year_feature`, the min--max normalised release
    year as last column. The full rating table is filtered and split by
    :func:`~pyg_lightgode.data.build_split` (default: ratings
    :math:`\geq 4` are positives, random per-user 8:1:1 split, seed 2020).
    :obj:`user_ids` / :obj:`item_ids` hold the original MovieLens ids.
    """
    if version not in VERSIONS:
        raise ValueError(f"'version' must be one of {sorted(VERSIONS)} (got "
                         f"{version!r})")
    spec = VERSIONS[version]
    raw_dir = osp.join(root, 'raw')
    ratings_path = osp.join(raw_dir, spec.ratings_file)
    # Check the ratings before PyG parses them (its errors are opaque).
    table = (read_movielens_ratings(ratings_path, spec.sep)
             if osp.exists(ratings_path) else None)
    data = spec.dataset_cls(root, force_reload=force_reload)[0]
    if table is None:
        if not osp.exists(ratings_path):
            raise FileNotFoundError(
                f"'{ratings_path}' is missing: MovieLens-{version.upper()} "
                f"needs its rating file '{spec.ratings_file}' in '{raw_dir}'")
        table = read_movielens_ratings(ratings_path, spec.sep)

    item_path = osp.join(raw_dir, spec.item_file)
    items = _read_columns(item_path, spec.meta_sep, [0, spec.year_column])
    item_ids = items[0].astype(np.int64).to_numpy()
    user_ids = _read_columns(osp.join(raw_dir, spec.user_file), spec.meta_sep,
                             [0])[0].astype(np.int64).to_numpy()
    user_x, item_x = data['user'].x, data['movie'].x
    if user_x.size(0) != len(user_ids) or item_x.size(0) != len(item_ids):
        raise ValueError(f"the processed PyG features ({user_x.size(0)} "
                         f"users, {item_x.size(0)} items) do not match the "
                         f"raw files ({len(user_ids)}, {len(item_ids)}); "
                         f"reload with force_reload=True")
    if year_feature:
        item_x = torch.cat([
            item_x,
            normalised_year(items[spec.year_column], spec.year_pattern)
        ], dim=-1)

    index = torch.stack([
        _compact(table[:, 0], user_ids, ratings_path, 'user',
                 spec.user_file),
        _compact(table[:, 1], item_ids, ratings_path, 'item',
                 spec.item_file),
    ])
    return build_split(
        index, len(user_ids), len(item_ids),
        rating=torch.from_numpy(table[:, 2]),
        time=torch.from_numpy(table[:, 3]), min_rating=min_rating,
        user_k=user_k, item_k=item_k, split=split, ratios=ratios, seed=seed,
        num_val=num_val, num_test=num_test, user_x=user_x, item_x=item_x,
        user_ids=user_ids, item_ids=item_ids, name=f'movielens{version}')
