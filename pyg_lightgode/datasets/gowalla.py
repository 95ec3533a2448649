r"""The Gowalla dataset in the LightGCN split, and the checked reader of
LightGCN's adjacency-list files."""
import os.path as osp
import re
from typing import Callable, List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from torch_geometric.data import HeteroData, InMemoryDataset, download_url
from torch_geometric.data.data import BaseData

from pyg_lightgode.data.bipartite import ITEM, RATED_BY, RATES, USER
from pyg_lightgode.utils.io import atomic_write
from pyg_lightgode.datasets.interaction_table import (
    UINT_PATTERN,
    file_error,
    read_complete_text,
)

_TEXT = re.compile(r'[0-9 \t\r\n]*')
_MAX_DIGITS = 12  # far above any real catalogue; guards int64 overflow


def _is_id(token: str) -> bool:
    return len(token) <= _MAX_DIGITS and bool(UINT_PATTERN.fullmatch(token))


class LightGCNFile(NamedTuple):
    r"""One parsed LightGCN adjacency-list file (:obj:`user item item ...`
    per line): the :obj:`[2, E]` interactions, the line of every
    interaction, and the user id and line of every non-blank line."""
    index: torch.Tensor
    edge_line: np.ndarray
    line_user: np.ndarray
    line_number: np.ndarray


def _bad_token_error(path: str, lines: Sequence[str]) -> ValueError:
    for lineno, line in enumerate(lines, 1):
        for token in line.split():
            if not _is_id(token):
                what = ('a negative id' if token.startswith('-') else
                        'not a non-negative integer id')
                return file_error(path, lineno, f'{token!r} is {what} '
                                  f"(expected 'user item item ...')")
    return file_error(path, None, 'holds characters other than digits and '
                      'whitespace')


def read_lightgcn_file(path: str) -> LightGCNFile:
    r"""Reads and checks a LightGCN/NGCF :obj:`train.txt` / :obj:`test.txt`:
    every non-blank line is :obj:`user item item ...` of non-negative
    integer ids (a line with only a user id is a user without items).
    An empty file, a last line without line break (truncated file) or a
    malformed token raise a :class:`ValueError` naming file and line."""
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
    return LightGCNFile(torch.from_numpy(index), np.repeat(line_numbers,
                                                           counts), line_user,
                        line_numbers)


def read_id_list(path: str) -> np.ndarray:
    r"""Reads a LightGCN :obj:`user_list.txt` / :obj:`item_list.txt`
    (header :obj:`org_id remap_id`, then one :obj:`org_id remap_id` per
    line with :obj:`remap_id` counting up from 0) and returns the original
    ids in remapped order (integers when all are integers)."""
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
    if all(UINT_PATTERN.fullmatch(o) for o in org_ids):
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


class Gowalla(InMemoryDataset):
    r"""The Gowalla check-in dataset in the split of the `"LightGCN:
    Simplifying and Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ paper (and NGCF), with 29,858 users,
    40,981 locations, 810,128 training and 217,242 test interactions.

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
    as :obj:`raw_id`; without them :obj:`num_nodes` is the largest id in
    either file plus one. Every line is checked; a malformed or truncated
    file or an id out of range raises a :class:`ValueError` naming the file
    and line. The processed file is written atomically.

    Args:
        root (str): Root directory where the dataset should be saved.
        transform (callable, optional): A function/transform applied to the
            :class:`~torch_geometric.data.HeteroData` on every access.
        pre_transform (callable, optional): A function/transform applied to
            the :class:`~torch_geometric.data.HeteroData` before saving.
        force_reload (bool, optional): Whether to re-process the dataset.
            (default: :obj:`False`)
    """
    url = ('https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/'
           'master/data/gowalla')
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
        for name in self.raw_file_names + self.optional_file_names:
            if not osp.exists(osp.join(self.raw_dir, name)):
                download_url(f'{self.url}/{name}', self.raw_dir)

    def process(self) -> None:
        train_path, test_path = self.raw_paths
        train = read_lightgcn_file(train_path)
        test = read_lightgcn_file(test_path)
        raw_ids, list_names = {}, []
        for node_type, name, row in ((USER, 'user_list.txt', 0),
                                     (ITEM, 'item_list.txt', 1)):
            path = osp.join(self.raw_dir, name)
            if osp.exists(path):
                raw_ids[node_type] = read_id_list(path)
                list_names.append(name)
            else:
                list_names.append(f'the largest {node_type} id of '
                                  f'train.txt and test.txt')
        num_users = len(raw_ids[USER]) if USER in raw_ids else 1 + max(
            int(f.line_user.max(initial=-1)) for f in (train, test))
        num_items = len(raw_ids[ITEM]) if ITEM in raw_ids else 1 + max(
            int(f.index[1].max()) if f.index.numel() else -1
            for f in (train, test))
        for file, path in ((train, train_path), (test, test_path)):
            _check_range(file, path, num_users, num_items, list_names)
        if train.index.size(1) == 0:
            raise file_error(train_path, None, 'holds no interactions')

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

    @classmethod
    def save(cls, data_list: Sequence[BaseData], path: str) -> None:
        atomic_write(lambda tmp: super(Gowalla, cls).save(data_list, tmp),
                    path)
