r"""Readers for interaction tables: the user's own CSV/TSV files with
arbitrary ids (:func:`read_interaction_table`), and the checked integer
tables of the public datasets (:func:`read_int_rows`). Every malformed row
raises a :class:`ValueError` naming the file and the line."""
import io
import os.path as osp
import re
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from pyg_lightgode.data.bipartite import BipartiteSplit
from pyg_lightgode.data.preprocess import build_split, remap_ids

ROLES = ('user', 'item', 'rating', 'time')
UINT_PATTERN = re.compile(r'[0-9]+')  # a non-negative integer


def file_error(path: str, line: Optional[int], message: str) -> ValueError:
    r"""A :class:`ValueError` that names the file (and line, 1-based)."""
    where = path if line is None else f'{path}, line {line}'
    return ValueError(f'{where}: {message}')


def read_complete_text(path: str, encoding: str = 'utf-8') -> str:
    r"""Reads a machine-written text file, refusing an empty one and one
    whose last line lacks its line break (a sign of a truncated download
    or copy)."""
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise file_error(path, raw[:e.start].count(b'\n') + 1,
                         f'is not {encoding} text ({e.reason})') from None
    if text.strip() == '':
        raise file_error(path, None, 'the file is empty')
    if not text.endswith('\n'):
        raise file_error(
            path, text.count('\n') + 1, 'the last line has no line break; '
            'the file looks truncated (re-download it)')
    return text


def _locate_bad_int_row(path: str, lines: Sequence[str], sep: str,
                        names: Sequence[str]) -> ValueError:
    for lineno, line in enumerate(lines, 1):
        fields = line.rstrip('\r').split(sep)
        if len(fields) != len(names):
            return file_error(
                path, lineno, f'expected {len(names)} fields '
                f'({", ".join(names)}) separated by {sep!r}, found '
                f'{len(fields)}: {line!r}')
        for name, value in zip(names, fields):
            if not UINT_PATTERN.fullmatch(value.strip()):
                return file_error(
                    path, lineno, f'{name} {value!r} is not a non-negative '
                    f'integer')
    return file_error(path, None, 'could not be parsed as a table of '
                      'non-negative integers')


def read_int_rows(path: str, sep: str, names: Sequence[str],
                  encoding: str = 'latin-1') -> np.ndarray:
    r"""Reads a table of non-negative integers with exactly
    :obj:`len(names)` fields per line separated by :obj:`sep` (which may be
    multi-character, e.g. :obj:`'::'` in MovieLens-1M), such as MovieLens'
    :obj:`u.data`. Checks that the file is complete (see
    :func:`read_complete_text`); a malformed line raises a
    :class:`ValueError` naming file, line and field.

    Returns:
        An :obj:`int64` array of shape :obj:`[num_lines, len(names)]`.
    """
    import pandas as pd

    text = read_complete_text(path, encoding)
    if len(sep) > 1:  # pandas' C parser only splits on one character
        if '\t' in text:
            raise _locate_bad_int_row(path, text.split('\n')[:-1], sep,
                                      names)
        text, sep = text.replace(sep, '\t'), '\t'
    try:
        out = pd.read_csv(io.StringIO(text), sep=sep, header=None,
                          dtype='int64', skip_blank_lines=False).to_numpy()
        if out.shape[1] != len(names) or (out < 0).any():
            raise ValueError
    except (ValueError, pd.errors.ParserError, OverflowError):
        raise _locate_bad_int_row(path, text.split('\n')[:-1], sep,
                                  names) from None
    return out


class InteractionTable(NamedTuple):
    r"""Result of :func:`read_interaction_table`: remapped interactions and
    the raw id of every compact user / item id."""
    index: Tensor
    num_users: int
    num_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    rating: Optional[Tensor]
    time: Optional[Tensor]


def _detect_sep(first_line: str) -> str:
    for sep in ('\t', ',', ';'):
        if sep in first_line:
            return sep
    return r'\s+'


def _split_fields(line: str, sep: str) -> list:
    return line.split() if sep == r'\s+' else line.split(sep)


def _ragged_line_error(path: str, sep: str, num_fields: int,
                       encoding: str) -> ValueError:
    with open(path, encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
            fields = _split_fields(line.rstrip('\r\n'), sep)
            if line.strip() and len(fields) != num_fields:
                return file_error(
                    path, lineno, f'expected {num_fields} fields separated '
                    f'by {sep!r}, found {len(fields)}: {line.rstrip()!r}')
    return file_error(path, None, 'malformed table')


def _role_of_name(name: str) -> Optional[str]:
    # RecBole headers look like 'user_id:token'.
    name = name.strip().strip('"').split(':')[0].lower()
    if name.startswith('user') or name == 'uid':
        return 'user'
    if name.startswith(('item', 'movie', 'product', 'book')) or name == 'iid':
        return 'item'
    if name.startswith('rating') or name == 'score':
        return 'rating'
    if name.startswith('time') or name in ('ts', 'date', 'datetime'):
        return 'time'
    return None


def _resolve_roles(path: str, fields: list, columns: Optional[Sequence],
                   header: bool) -> list:
    if columns is not None:
        roles = list(columns)
    elif header:
        roles = [_role_of_name(f) for f in fields]
    else:
        roles = list(ROLES[:len(fields)]) + [None] * (len(fields) - 4)
    bad = [r for r in roles if r is not None and r not in ROLES]
    if bad:
        raise ValueError(f"'columns' may only hold {ROLES} or None (got "
                         f"{bad})")
    for role in ROLES:
        if roles.count(role) > 1:
            raise ValueError(f"'columns' names {role!r} more than once "
                             f"(got {roles})")
    if 'user' not in roles or 'item' not in roles:
        raise file_error(
            path, 1, f'cannot tell which columns hold user and item ids '
            f'(column roles {roles} from the first line {fields}); pass '
            f"'columns', e.g. columns=('user', 'item', 'rating', 'time')")
    if len(roles) != len(fields):
        raise file_error(
            path, 1, f"'columns' names {len(roles)} columns but the line has "
            f'{len(fields)} fields: {fields}')
    return roles


def _ids(values, path: str, lines: np.ndarray, role: str) -> np.ndarray:
    values = values.str.strip()
    missing = (values == '').to_numpy()
    if missing.any():
        raise file_error(path, int(lines[missing.argmax()]),
                         f'the {role} id is missing')
    # Only canonical integers become ints, so '007' keeps its spelling.
    if values.str.fullmatch(r'-?(0|[1-9][0-9]{0,17})').all():
        return values.astype(np.int64).to_numpy()
    return values.to_numpy(dtype=str)


def _numbers(values, path: str, lines: np.ndarray, role: str) -> Tensor:
    import pandas as pd
    out = pd.to_numeric(values, errors='coerce')
    if role == 'time' and out.isna().any():  # e.g. ISO dates
        dates = pd.to_datetime(values, errors='coerce')
        if not dates.isna().any():  # as Unix seconds
            seconds = (dates - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
            return torch.from_numpy(seconds.to_numpy(dtype=np.int64).copy())
    bad = out.isna().to_numpy()
    if bad.any():
        row = bad.argmax()
        raise file_error(path, int(lines[row]),
                         f'{role} {values.iloc[row]!r} is not a number')
    return torch.from_numpy(out.to_numpy(dtype=np.float64).copy())


def read_interaction_table(
    path: str,
    sep: Optional[str] = None,
    columns: Optional[Sequence[Optional[str]]] = None,
    header: Union[bool, str] = 'infer',
    encoding: str = 'utf-8',
) -> InteractionTable:
    r"""Reads a user's own interaction table (CSV, TSV, whitespace separated
    or a RecBole :obj:`.inter` file) with arbitrary user and item ids
    (integers or strings), remapped to compact ids by
    :func:`~pyg_lightgode.data.remap_ids`.

    Args:
        path (str): The file.
        sep (str, optional): Field separator. :obj:`None` detects it from
            the first line: tab, else comma, else semicolon, else runs of
            whitespace.
        columns (sequence, optional): Role of every column in order, from
            :obj:`'user'`, :obj:`'item'`, :obj:`'rating'`, :obj:`'time'` or
            :obj:`None` (ignored column). By default taken from the header
            names (:obj:`user*`, :obj:`item*`/:obj:`movie*`, :obj:`rating*`,
            :obj:`time*`; RecBole's :obj:`name:type` works), or without a
            header positionally as :obj:`('user', 'item', 'rating', 'time')`
            cut to the number of fields.
        header (bool or str): Whether the first line is a header.
            :obj:`'infer'` treats it as one when its fields name both a user
            and an item column.
        encoding (str): Text encoding.

    Timestamps may be numbers or ISO dates (stored as Unix seconds).
    Blank lines are skipped; a row with a missing or malformed field raises
    a :class:`ValueError` naming the file and line.
    """
    import pandas as pd

    if header not in (True, False, 'infer'):
        raise ValueError(f"'header' must be True, False or 'infer' (got "
                         f"{header!r})")
    with open(path, encoding=encoding) as f:
        first_line = f.readline().rstrip('\r\n')
    if first_line.strip() == '':
        raise file_error(path, 1, 'the first line is empty (expected a '
                         'header or an interaction)')
    sep = _detect_sep(first_line) if sep is None else sep
    fields = _split_fields(first_line, sep)
    if header == 'infer':
        named = {_role_of_name(f) for f in fields}
        header = 'user' in named and 'item' in named
    roles = _resolve_roles(path, fields, columns, header)

    try:
        df = pd.read_csv(path, sep=sep, header=None, skiprows=int(header),
                         dtype=str, keep_default_na=False,
                         skip_blank_lines=False, encoding=encoding,
                         engine='c' if len(sep) == 1 or sep == r'\s+' else
                         'python')
    except pd.errors.ParserError:
        df = None
    if df is None or df.shape[1] != len(roles):
        raise _ragged_line_error(path, sep, len(roles), encoding)
    lines = np.arange(len(df)) + 1 + int(header)
    blank = (df == '').all(axis=1).to_numpy()
    df, lines = df[~blank], lines[~blank]
    if len(df) == 0:
        raise file_error(path, None, 'the table holds no interactions')
    col = {role: df[i] for i, role in enumerate(roles) if role is not None}
    raw_users = _ids(col['user'], path, lines, 'user')
    raw_items = _ids(col['item'], path, lines, 'item')
    index, user_ids, item_ids = remap_ids(raw_users, raw_items)
    rating, time = (_numbers(col[r], path, lines, r) if r in col else None
                    for r in ('rating', 'time'))
    return InteractionTable(index, len(user_ids), len(item_ids), user_ids,
                            item_ids, rating, time)


def from_interaction_table(
    path: str,
    sep: Optional[str] = None,
    columns: Optional[Sequence[Optional[str]]] = None,
    header: Union[bool, str] = 'infer',
    encoding: str = 'utf-8',
    name: Optional[str] = None,
    **split_options,
) -> BipartiteSplit:
    r"""Reads a table with :func:`read_interaction_table` and passes it
    through :func:`~pyg_lightgode.data.build_split` with
    :obj:`split_options` (:obj:`min_rating`, :obj:`user_k`, :obj:`item_k`,
    :obj:`split`, :obj:`ratios`, :obj:`seed`, ...). Raw ids are kept in
    :obj:`user_ids` / :obj:`item_ids`."""
    table = read_interaction_table(path, sep, columns, header, encoding)
    return build_split(table.index, table.num_users, table.num_items,
                       rating=table.rating, time=table.time,
                       user_ids=table.user_ids, item_ids=table.item_ids,
                       name=name or osp.basename(path), **split_options)
