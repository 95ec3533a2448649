r"""Readers for interaction tables: the user's own CSV/TSV files with
arbitrary ids (:func:`read_interaction_table`), and the checked integer
tables of the public datasets (:func:`read_int_rows`). Every malformed row
raises a :class:`ValueError` naming the file and the line."""
import codecs
import io
import os.path as osp
import re
import warnings
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from pyg_lightgode.data.bipartite import BipartiteSplit
from pyg_lightgode.data.preprocess import build_split, remap_ids

ROLES = ('user', 'item', 'rating', 'time')
UINT_PATTERN = re.compile(r'[0-9]+')  # a non-negative integer
NUMBER_PATTERN = re.compile(r'[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)'
                            r'([eE][-+]?[0-9]+)?')
MAX_LINE_BYTES = 1 << 20  # an interaction is a short line
MAX_ID_LENGTH = 256  # characters of one raw user / item id
_SCAN_BLOCK = 1 << 23


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
    with open(path, encoding=encoding, newline='') as f:
        for lineno, line in enumerate(f, 1):
            fields = _split_fields(line.rstrip('\r\n'), sep)
            if line.strip() and len(fields) != num_fields:
                return file_error(
                    path, lineno, f'expected {num_fields} fields separated '
                    f'by {sep!r}, found {len(fields)}: {line.rstrip()!r}')
    return file_error(path, None, 'malformed table (an unclosed quote?)')


def _text_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise ValueError(f"'encoding' must name a text encoding (got "
                         f'{encoding!r})') from None
    # 'utf-8-sig' reads plain UTF-8 too, and drops a byte order mark that
    # would otherwise glue itself to the first header name.
    return 'utf-8-sig' if name == 'utf-8' else encoding


def _line_too_long(path: str, line: int) -> ValueError:
    return file_error(
        path, line, f'the line is longer than {MAX_LINE_BYTES} bytes; an '
        f'interaction table holds short lines (is this the right file?)')


def _scan_text_file(path: str, encoding: str) -> str:
    r"""Checks in one streaming pass that :obj:`path` decodes and that no
    line is longer than :data:`MAX_LINE_BYTES`; returns the decoded start
    of the file (at least its first lines)."""
    plain = encoding.replace('-sig', '')  # the BOM only starts a file
    if '\n'.encode(plain) != b'\n':  # e.g. UTF-16: no byte-wise lines
        with open(path, 'rb') as f:
            raw = f.read()
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise file_error(path, None, f'is not {plain} text '
                             f'({e.reason})') from None
        for lineno, line in enumerate(text.split('\n'), 1):
            if len(line) > MAX_LINE_BYTES:
                raise _line_too_long(path, lineno)
        return text
    head, carry, lines_before = None, b'', 0
    with open(path, 'rb') as f:
        while True:
            block = f.read(_SCAN_BLOCK)
            data = carry + block
            cut = max(data.rfind(b'\n'), data.rfind(b'\r')) + 1 if block \
                else len(data)
            chunk, carry = data[:cut], data[cut:]
            if len(carry) > MAX_LINE_BYTES:
                raise _line_too_long(path, lines_before +
                                     chunk.count(b'\n') + 1)
            byte = np.frombuffer(chunk, dtype=np.uint8)
            breaks = np.flatnonzero((byte == 10) | (byte == 13))
            lengths = np.diff(breaks, prepend=-1, append=len(chunk)) - 1
            if lengths.size and lengths.max() > MAX_LINE_BYTES:
                start = int(np.concatenate([[-1], breaks])[lengths.argmax()])
                raise _line_too_long(path, lines_before +
                                     chunk[:start + 1].count(b'\n') + 1)
            try:
                text = chunk.decode(encoding if head is None else plain)
            except UnicodeDecodeError as e:
                raise file_error(
                    path, lines_before + chunk[:e.start].count(b'\n') + 1,
                    f"is not {plain} text ({e.reason}); pass the file's "
                    f"'encoding' (e.g. 'latin-1')") from None
            if head is None and (chunk or not block):
                head = text
            lines_before += chunk.count(b'\n')
            if not block:
                return head


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


def _looks_like_header(fields: Sequence[str],
                       next_fields: Optional[Sequence[str]]) -> bool:
    r"""A first line is a header when it names a column role, holds no
    number, and the next line does not name the same roles (ids such as
    :obj:`user_7` / :obj:`item_3` name roles on every line)."""
    roles = [_role_of_name(f) for f in fields]
    if not any(roles) or any(NUMBER_PATTERN.fullmatch(f.strip())
                             for f in fields):
        return False
    return next_fields is None or roles != [_role_of_name(f)
                                            for f in next_fields]


def _resolve_roles(path: str, fields: list, columns: Optional[Sequence],
                   header: bool) -> list:
    if columns is not None:
        roles = list(columns)
        bad = [r for r in roles if r is not None and r not in ROLES]
        if bad:
            raise ValueError(f"'columns' may only hold {ROLES} or None (got "
                             f'{bad})')
        for role in ROLES:
            if roles.count(role) > 1:
                raise ValueError(f"'columns' names {role!r} more than once "
                                 f'(got {roles})')
    elif header:
        roles = [_role_of_name(f) for f in fields]
        for role in ROLES:
            if roles.count(role) > 1:
                raise file_error(
                    path, 1, f'the header names more than one {role} column '
                    f"({fields}); pass 'columns' to pick the roles, e.g. "
                    f"columns=('user', 'item', None, 'rating')")
    else:
        roles = list(ROLES[:len(fields)]) + [None] * (len(fields) - 4)
    if header and columns is None and ('user' not in roles
                                       or 'item' not in roles):
        missing = ' and '.join(r for r in ('user', 'item') if r not in roles)
        raise file_error(
            path, 1, f'cannot tell which columns hold user and item ids: '
            f'the header {fields} names no {missing} column; name it (e.g. '
            f"'item_id'), or pass 'columns', e.g. columns=('user', 'item', "
            f"'rating') (and header=False if line 1 is data)")
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
    too_long = (values.str.len() > MAX_ID_LENGTH).to_numpy()
    if too_long.any():
        row = int(too_long.argmax())
        raise file_error(
            path, int(lines[row]), f'the {role} id is '
            f'{len(values.iloc[row])} characters long (at most '
            f'{MAX_ID_LENGTH}); is the separator right?')
    # Only canonical integers become ints, so '007' keeps its spelling.
    if values.str.fullmatch(r'-?(0|[1-9][0-9]{0,17})').all():
        return values.astype(np.int64).to_numpy()
    return values.to_numpy(dtype=object)  # remap_ids hashes, then sorts


def _numbers(values, path: str, lines: np.ndarray, role: str) -> Tensor:
    import pandas as pd
    out = pd.to_numeric(values, errors='coerce')
    if role == 'time' and out.isna().any():  # e.g. ISO dates
        dates = pd.to_datetime(values, errors='coerce', utc=True,
                               format='ISO8601')
        if dates.isna().any():  # other formats, parsed one by one
            dates = pd.to_datetime(values, errors='coerce', utc=True,
                                   format='mixed')
        if not dates.isna().any():  # as Unix seconds
            seconds = (dates - pd.Timestamp(0, tz='UTC')) // pd.Timedelta(
                seconds=1)
            return torch.from_numpy(seconds.to_numpy(dtype=np.int64).copy())
    bad = ~np.isfinite(out.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row = bad.argmax()
        what = ('is not a finite number' if not np.isnan(out.iloc[row])
                else 'is neither a number nor a date' if role == 'time'
                else 'is not a number')
        raise file_error(path, int(lines[row]),
                         f'{role} {values.iloc[row]!r} {what}')
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
            :obj:`'infer'` treats it as one when a field names a column role
            (see above), no field is a number, and the second line does not
            name the same roles. A header must name a user and an item
            column (unless :obj:`columns` is given): a header such as
            :obj:`user,rating` raises instead of being read as data.
        encoding (str): Text encoding. A UTF-8 byte order mark is dropped.

    Timestamps may be numbers or ISO dates (stored as Unix seconds).
    Blank lines are skipped. Every failure is a :class:`ValueError` naming
    the file (and the line where there is one): a row with a missing or
    malformed field, a rating or time that is not a finite number (so no
    :obj:`nan` / :obj:`inf`), a file with no interactions (e.g. only a
    header), bytes that are not :obj:`encoding` text, a line longer than
    :data:`MAX_LINE_BYTES` (1 MiB) or an id longer than
    :data:`MAX_ID_LENGTH` (256) characters.
    """
    import pandas as pd

    if header not in (True, False, 'infer'):
        raise ValueError(f"'header' must be True, False or 'infer' (got "
                         f"{header!r})")
    encoding = _text_encoding(encoding)
    head = _scan_text_file(path, encoding)
    head_lines = head.splitlines()
    first_line = head_lines[0] if head_lines else ''
    if first_line.strip() == '':
        what = 'the file is empty' if head.strip() == '' else \
            'the first line is empty'
        raise file_error(path, 1, f'{what} (expected a header or an '
                         f'interaction)')
    sep = _detect_sep(first_line) if sep is None else sep
    fields = _split_fields(first_line, sep)
    if header == 'infer':
        following = [line for line in head_lines[1:3] if line.strip()]
        header = _looks_like_header(
            fields, _split_fields(following[0], sep) if following else None)
    roles = _resolve_roles(path, fields, columns, header)

    try:
        with warnings.catch_warnings():
            # A first row with too many fields would be cut to fit 'names'.
            warnings.simplefilter('error', pd.errors.ParserWarning)
            df = pd.read_csv(path, sep=sep, header=None,
                             names=list(range(len(roles))), index_col=False,
                             skiprows=int(header), dtype=str,
                             keep_default_na=False, skip_blank_lines=False,
                             encoding=encoding,
                             engine='c' if len(sep) == 1 or sep == r'\s+'
                             else 'python')
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError,
            OverflowError):
        df = None
    if df is None or df.shape[1] != len(roles):
        raise _ragged_line_error(path, sep, len(roles), encoding)
    lines = np.arange(len(df)) + 1 + int(header)
    blank = (df == '').all(axis=1).to_numpy()
    df, lines = df[~blank], lines[~blank]
    if len(df) == 0:
        raise file_error(path, None, 'holds a header but no interactions'
                         if header else 'the table holds no interactions')
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
