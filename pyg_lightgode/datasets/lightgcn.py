r"""The adjacency-list format of the LightGCN/NGCF splits (Gowalla,
Yelp2018, Amazon-Book): its checked readers (:func:`read_lightgcn_file`,
:func:`read_id_list`) and :class:`LightGCNDataset`, the PyG dataset the
three public splits share."""
import os.path as osp
import re
import warnings
from typing import Callable, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch_geometric.data import HeteroData, InMemoryDataset, download_url

from pyg_lightgode.data.bipartite import ITEM, RATED_BY, RATES, USER
from pyg_lightgode.data.io import remove_stale_tmp_files  # noqa: F401
from pyg_lightgode.datasets.interaction_table import (
    UINT_PATTERN,
    file_error,
    read_complete_text,
)
from pyg_lightgode.datasets.safe import SafeProcessing

_TEXT = re.compile(r'[0-9 \t\r\n]*')
_MAX_DIGITS = 12  # far above any real catalogue; guards int64 overflow
_CANONICAL_UINT = re.compile(r'0|[1-9][0-9]{0,17}')


def _is_id(token: str) -> bool:
    return len(token) <= _MAX_DIGITS and bool(UINT_PATTERN.fullmatch(token))


class LightGCNFile(NamedTuple):
    r"""One parsed LightGCN adjacency-list file (:obj:`user item item ...`
    per line): the :obj:`[2, E]` interactions (repeated pairs dropped), the
    line of every interaction, the user id and line of every non-blank
    line, and how many repeated pairs were dropped."""
    index: torch.Tensor
    edge_line: np.ndarray
    line_user: np.ndarray
    line_number: np.ndarray
    num_duplicates: int = 0


def _bad_token_error(path: str, lines: Sequence[str]) -> ValueError:
    for lineno, line in enumerate(lines, 1):
        for token in line.split():
            if not _is_id(token):
                what = ('a negative id' if token.startswith('-') else
                        'not a non-negative integer id of at most '
                        f'{_MAX_DIGITS} digits')
                return file_error(path, lineno, f'{token!r} is {what} '
                                  f"(expected 'user item item ...')")
        bad = re.search(r'[^0-9 \t\r]', line)
        if bad is not None:  # e.g. a form feed, which split() skips
            return file_error(path, lineno, f'{bad.group()!r} is not allowed '
                              f"(expected 'user item item ...' of digits "
                              f'separated by spaces)')
    return file_error(path, None, 'holds characters other than digits and '
                      'whitespace')


def _drop_repeated_pairs(index: np.ndarray, edge_line: np.ndarray,
                         path: str):
    r"""Keeps the first occurrence (in file order) of every pair."""
    order = np.lexsort((index[1], index[0]))  # stable: file order in ties
    pairs = index[:, order]
    same = (pairs[:, 1:] == pairs[:, :-1]).all(axis=0)
    if not same.any():
        return index, edge_line, 0
    keep = np.ones(index.shape[1], dtype=bool)
    keep[order[1:][same]] = False
    first = int(np.flatnonzero(~keep)[0])
    num = int((~keep).sum())
    warnings.warn(
        f'{path}: dropped {num} repeated (user, item) pair(s), keeping the '
        f'first occurrence of each; the first repeat is on line '
        f'{int(edge_line[first])} (user {int(index[0, first])}, item '
        f'{int(index[1, first])})', stacklevel=3)
    return index[:, keep], edge_line[keep], num


def read_lightgcn_file(path: str) -> LightGCNFile:
    r"""Reads and checks a LightGCN/NGCF :obj:`train.txt` / :obj:`test.txt`:
    every non-blank line is :obj:`user item item ...` of non-negative
    integer ids (a line with only a user id is a user without items).
    An empty file, a last line without line break (truncated file) or a
    malformed token raise a :class:`ValueError` naming file and line.

    A (user, item) pair that occurs more than once (a repeated item on a
    line, or a user's line repeated) is kept once, at its first occurrence;
    a :class:`UserWarning` names the file, the number of dropped pairs and
    the line of the first repeat (:obj:`num_duplicates` counts them).
    """
    text = read_complete_text(path)
    lines = text.split('\n')[:-1]
    if not _TEXT.fullmatch(text):
        raise _bad_token_error(path, lines)
    counts, tokens, line_numbers = [], [], []
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if parts:
            counts.append(len(parts) - 1)
            tokens.extend(parts)
            line_numbers.append(lineno)
    if tokens and max(map(len, tokens)) > _MAX_DIGITS:
        raise _bad_token_error(path, lines)
    values = np.array(tokens, dtype=np.int64)
    counts = np.array(counts, dtype=np.int64)
    line_numbers = np.array(line_numbers, dtype=np.int64)
    is_user = np.zeros(values.size, dtype=bool)
    is_user[np.cumsum(counts + 1) - counts - 1] = True
    line_user = values[is_user]
    index = np.stack([np.repeat(line_user, counts), values[~is_user]])
    edge_line = np.repeat(line_numbers, counts)
    index, edge_line, num_duplicates = _drop_repeated_pairs(
        index, edge_line, path)
    return LightGCNFile(torch.from_numpy(index), edge_line, line_user,
                        line_numbers, num_duplicates)


def read_id_list(path: str) -> np.ndarray:
    r"""Reads a LightGCN :obj:`user_list.txt` / :obj:`item_list.txt`
    (header :obj:`org_id remap_id`, then one :obj:`org_id remap_id` per
    line with :obj:`remap_id` counting up from 0) and returns the original
    ids in remapped order (integers when all are integers written without
    leading zeros, else strings, so ISBNs such as :obj:`'0060090383'` keep
    their spelling)."""
    text = read_complete_text(path)
    lines = text.split('\n')[1:-1]
    org_ids = []
    for lineno, line in enumerate(lines, 2):
        parts = line.split()
        if len(parts) != 2 or parts[1] != str(lineno - 2):
            raise file_error(
                path, lineno, f"expected 'org_id remap_id' with remap_id "
                f'{lineno - 2}, found {line!r}')
        org_ids.append(parts[0])
    if all(_CANONICAL_UINT.fullmatch(o) for o in org_ids):
        return np.array(org_ids, dtype=np.int64)
    return np.array(org_ids, dtype=str)


def _check_range(file: LightGCNFile, path: str, num_users: int,
                 num_items: int, list_names: Sequence[str]) -> None:
    for ids, lines, num, what, list_name in (
        (file.line_user, file.line_number, num_users, 'user', list_names[0]),
        (file.index[1].numpy(), file.edge_line, num_items, 'item',
         list_names[1]),
    ):
        bad = ids >= num
        if bad.any():
            k = int(bad.argmax())
            raise file_error(
                path, int(lines[k]), f'{what} id {int(ids[k])} is out of '
                f'range: {list_name} lists {num} {what}s (ids 0..{num - 1})')


def _dense_count(what: str, list_name: str, ids: Sequence[np.ndarray],
                 lines: Sequence[np.ndarray], paths: Sequence[str]) -> int:
    r"""The number of users / items without an id list: the largest id plus
    one, provided every id below it occurs (LightGCN ids are dense), so one
    stray huge id cannot blow the catalogue up."""
    unique = np.unique(np.concatenate(ids))
    num = int(unique[-1]) + 1 if unique.size else 0
    if unique.size == num:
        return num
    first_gap = int(np.flatnonzero(unique != np.arange(unique.size))[0])
    k, pos = max(((k, int(a.argmax())) for k, a in enumerate(ids) if a.size),
                 key=lambda kp: ids[kp[0]][kp[1]])
    names = ' nor '.join(osp.basename(p) for p in paths)
    raise file_error(
        paths[k], int(lines[k][pos]), f'{what} id {num - 1} is the largest, '
        f'but {num - unique.size} of the {what} ids 0..{num - 1} occur in '
        f'neither {names} (the first is {first_gap}); LightGCN files number '
        f'{what}s densely from 0, so without {list_name} every id up to the '
        f'largest must occur. Fix the line, or add {list_name} '
        f"('org_id remap_id' per {what}) to fix the number of {what}s")


class LightGCNDataset(SafeProcessing, InMemoryDataset):
    r"""Base class of the public splits in the format of the `"LightGCN:
    Simplifying and Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ (and NGCF) repositories; a
    subclass only sets :obj:`url` (the folder holding the files).

    Shaped like :class:`~torch_geometric.datasets.AmazonBook`: node types
    :obj:`'user'` and :obj:`'item'` (with :obj:`num_nodes`), training
    interactions in :obj:`data['user', 'rates', 'item'].edge_index` (and
    reversed in :obj:`('item', 'rated_by', 'user')`), test interactions in
    :obj:`data['user', 'rates', 'item'].edge_label_index`.

    Raw files are :obj:`train.txt` and :obj:`test.txt` (each line
    :obj:`user item item ...`, 0-based ids). If :obj:`raw/` already holds
    them nothing is downloaded (see
    :func:`~pyg_lightgode.datasets.link_raw_files` to use files fetched
    elsewhere). The optional :obj:`user_list.txt` / :obj:`item_list.txt`
    (:obj:`org_id remap_id`) fix the number of users / items and are kept
    as :obj:`raw_id` (integer original ids only).

    Checks:

    * every line is parsed and checked; a malformed or truncated file
      raises a :class:`ValueError` naming the file and line;
    * with an id list, an id out of its range raises (file and line);
    * without an id list, the number of users (items) is the largest id
      plus one **only if every id up to it occurs** in :obj:`train.txt` or
      :obj:`test.txt` (as the LightGCN files number ids densely); else a
      :class:`ValueError` names the line of the largest id, so one stray
      line such as :obj:`0 999999999` cannot create a billion items;
    * a repeated (user, item) pair within a file is kept once (first
      occurrence), with a :class:`UserWarning` giving the count (see
      :func:`read_lightgcn_file`).

    The processed file is written atomically; temporary files that a killed
    run left in :obj:`processed/` are removed by the next run, unreadable
    processed files are rebuilt, and a failed download names the missing
    files (see :class:`~pyg_lightgode.datasets.safe.SafeProcessing`).

    Args:
        root (str): Root directory where the dataset should be saved.
        transform (callable, optional): A function/transform applied to the
            :class:`~torch_geometric.data.HeteroData` on every access.
        pre_transform (callable, optional): A function/transform applied to
            the :class:`~torch_geometric.data.HeteroData` before saving.
        force_reload (bool, optional): Whether to re-process the dataset.
            (default: :obj:`False`)
    """
    url: str = ''
    optional_file_names = ['user_list.txt', 'item_list.txt']

    def __init__(
        self,
        root: str,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        force_reload: bool = False,
    ) -> None:
        super().__init__(root, transform, pre_transform,
                         force_reload=force_reload)
        self.load(self.processed_paths[0], data_cls=HeteroData)

    @property
    def raw_file_names(self) -> List[str]:
        return ['train.txt', 'test.txt']

    @property
    def processed_file_names(self) -> str:
        return 'data.pt'

    def download(self) -> None:
        if not self.url:
            raise ValueError(f'{type(self).__name__} has no download url; '
                             f'put train.txt and test.txt into '
                             f'{self.raw_dir}')
        for name in self.raw_file_names + self.optional_file_names:
            if not osp.exists(osp.join(self.raw_dir, name)):
                download_url(f'{self.url}/{name}', self.raw_dir)

    def process(self) -> None:
        train_path, test_path = self.raw_paths
        train = read_lightgcn_file(train_path)
        test = read_lightgcn_file(test_path)
        if train.index.size(1) == 0:
            raise file_error(train_path, None, 'holds no interactions')
        files, paths = (train, test), (train_path, test_path)
        raw_ids, list_names = {}, []
        for node_type, name in ((USER, 'user_list.txt'),
                                (ITEM, 'item_list.txt')):
            path = osp.join(self.raw_dir, name)
            if osp.exists(path):
                raw_ids[node_type] = read_id_list(path)
                list_names.append(name)
            else:
                list_names.append(f'the largest {node_type} id of '
                                  f'train.txt and test.txt')
        num_users = len(raw_ids[USER]) if USER in raw_ids else _dense_count(
            'user', 'user_list.txt', [f.line_user for f in files],
            [f.line_number for f in files], paths)
        num_items = len(raw_ids[ITEM]) if ITEM in raw_ids else _dense_count(
            'item', 'item_list.txt', [f.index[1].numpy() for f in files],
            [f.edge_line for f in files], paths)
        for file, path in zip(files, paths):
            _check_range(file, path, num_users, num_items, list_names)

        data = HeteroData()
        data[USER].num_nodes = num_users
        data[ITEM].num_nodes = num_items
        for node_type, ids in raw_ids.items():
            if ids.dtype.kind == 'i':
                data[node_type].raw_id = torch.from_numpy(ids)
        data[RATES].edge_index = train.index
        data[RATED_BY].edge_index = train.index.flip([0])
        data[RATES].edge_label_index = test.index

        if self.pre_transform is not None:
            data = self.pre_transform(data)

        self.save([data], self.processed_paths[0])


_LIGHTGCN_DATA = ('https://raw.githubusercontent.com/gusye1234/'
                  'LightGCN-PyTorch/master/data/')


class Gowalla(LightGCNDataset):
    r"""The Gowalla check-in dataset in the split of the `"LightGCN:
    Simplifying and Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ paper (and NGCF): 29,858 users,
    40,981 locations, 810,128 training and 217,242 test interactions.
    Files, checks and arguments as :class:`LightGCNDataset`."""
    url = _LIGHTGCN_DATA + 'gowalla'


class Yelp2018(LightGCNDataset):
    r"""The Yelp2018 dataset (reviews of local businesses) in the LightGCN
    split: 31,668 users, 38,048 businesses, 1,237,259 training and 324,147
    test interactions. Files, checks and arguments as
    :class:`LightGCNDataset`."""
    url = _LIGHTGCN_DATA + 'yelp2018'


class AmazonBook(LightGCNDataset):
    r"""The Amazon-Book dataset (book reviews) in the LightGCN split:
    52,643 users, 91,599 books, 2,380,730 training and 603,378 test
    interactions. The files of :class:`torch_geometric.datasets.AmazonBook`
    read with the checks of :class:`LightGCNDataset`; the item node type is
    :obj:`'item'` (PyG's calls it :obj:`'book'`), and the original ids are
    strings, so no :obj:`raw_id` is stored. Arguments as
    :class:`LightGCNDataset`."""
    url = _LIGHTGCN_DATA + 'amazon-book'
