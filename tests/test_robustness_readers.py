r"""Readers never turn bad input into silent nonsense: every bad file gives a
:class:`ValueError` naming the file (and the line where there is one), and
well-formed files round-trip exactly (property-based, bounded)."""
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import pairs, write_files
from pyg_lightgode.datasets import Gowalla
from pyg_lightgode.datasets.interaction_table import (
    MAX_LINE_BYTES,
    read_interaction_table,
)
from pyg_lightgode.datasets.lightgcn import (
    read_lightgcn_file,
    remove_stale_tmp_files,
)

TRAIN = '0 0 1 2\n1 1 3\n2 0 4\n'
TEST = '0 3\n1 0\n2 2\n'
# ROBUSTNESS_EXAMPLES=2000 runs a deeper search (the default stays quick).
EXAMPLES = int(os.environ.get('ROBUSTNESS_EXAMPLES', 40))
BOUNDED = settings(max_examples=EXAMPLES, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


def raw_ids_of(table, rows):
    r"""Checks that :obj:`table` maps every pair back to the raw ids of
    :obj:`rows` (canonical integers as ints, other ids as strings) and
    yields :obj:`(k, ids, raw)` per side."""
    canonical = re.compile(r'-?(0|[1-9][0-9]{0,17})')
    out = []
    for k, ids in ((0, table.user_ids), (1, table.item_ids)):
        raw = [row[k] for row in rows]
        if all(canonical.fullmatch(v) for v in raw):
            raw = [int(v) for v in raw]
        assert ids[table.index[k].numpy()].tolist() == raw
        out.append((k, ids, raw))
    return out


# LightGCN files: catalogue size and repeated pairs ###########################


@pytest.mark.parametrize('train,match', [
    (TRAIN + '0 999999999\n', r'train.txt, line 4: item id 999999999 is the '
     r'largest, but 999999994 of the item ids .* add item_list.txt'),
    (TRAIN + '99999999 1\n', r'train.txt, line 4: user id 99999999 is the '
     r'largest, but 99999996 of the user ids .* add user_list.txt'),
    ('0 0 1 2\n1 1 3\n3 0 4\n', r'train.txt, line 3: user id 3 is the '
     r'largest, but 1 of the user ids 0..3 occur in neither train.txt nor '
     r'test.txt \(the first is 2\)'),
])
def test_ids_must_be_dense_without_id_lists(tmp_path, no_download, train,
                                            match):
    test = '0 3\n1 0\n'  # no line of user 2
    write_files(tmp_path / 'raw', {'train.txt': train, 'test.txt': test})
    with pytest.raises(ValueError, match=match):
        Gowalla(str(tmp_path))
    assert not osp.exists(tmp_path / 'processed' / 'data.pt')


def test_repeated_pairs_are_dropped_with_a_warning(tmp_path, no_download):
    train = '0 0 1 2 1\n1 1 3\n2 0 4\n1 1 3\n'  # a repeated item and line
    write_files(tmp_path / 'raw', {'train.txt': train, 'test.txt': TEST})
    with pytest.warns(UserWarning, match=r'train.txt: dropped 3 repeated '
                      r'\(user, item\) pair\(s\).* on line 1 \(user 0, '
                      r'item 1\)'):
        data = Gowalla(str(tmp_path))[0]
    index = data['user', 'rates', 'item'].edge_index
    assert index.tolist() == [[0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 1, 3, 0, 4]]
    with pytest.warns(UserWarning, match='dropped 3'):
        assert read_lightgcn_file(str(tmp_path / 'raw' /
                                      'train.txt')).num_duplicates == 3


# Interaction tables (CSV) ####################################################


@pytest.mark.parametrize('content,match', [
    (b'user,rating\n1,5\n2,4\n', r'line 1: cannot tell which columns hold '
     r"user and item ids: the header \['user', 'rating'\] names no item"),
    (b'user,item,rating\n1,2,5\n1,3,inf\n', r"line 3: rating 'inf' is not a "
     r'finite number'),
    (b'user,item,rating\n1,2,nan\n', r"line 2: rating 'nan' is not a number"),
    (b'user,item,rating\n', r'bad.csv: holds a header but no interactions'),
    (b'user,item\n1,2\n\xff\xfe\x00garbage\n', r'bad.csv, line 3: is not '
     r'utf-8 text'),
    (b'user,item\n1,2\n3,' + b'x' * (MAX_LINE_BYTES + 1) + b'\n',
     r'bad.csv, line 3: the line is longer than 1048576 bytes'),
    (b'user,item\n1,' + b'x' * 300 + b'\n', r'line 2: the item id is 300 '
     r'characters long \(at most 256\)'),
    (b'user,item,rating\n1,2,5,7\n1,2,5\n', r'line 2: expected 3 fields'),
    (b'user,user_name,item\n1,a,2\n', r'line 1: the header names more than '
     r'one user column'),
])
def test_interaction_table_errors(tmp_path, content, match):
    path = tmp_path / 'bad.csv'
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as e:
        read_interaction_table(str(path))
    assert str(path) in str(e.value)


def test_random_bytes_name_the_file(tmp_path):
    gen = np.random.default_rng(0)
    for k in range(20):
        path = tmp_path / f'random{k}.csv'
        path.write_bytes(gen.integers(0, 256, 300, dtype=np.uint8).tobytes())
        with pytest.raises(ValueError, match=re.escape(str(path))):
            read_interaction_table(str(path))


def test_interaction_table_byte_order_mark_and_encodings(tmp_path):
    path = tmp_path / 'bom.csv'
    path.write_bytes(b'\xef\xbb\xbfuser,item,rating\nu1,i1,5\nu2,i1,3\n')
    table = read_interaction_table(str(path))
    assert table.user_ids.tolist() == ['u1', 'u2']
    assert table.rating.tolist() == [5.0, 3.0]
    path.write_text('user\titem\nzoë\tb\n', encoding='utf-16')
    assert read_interaction_table(str(path), encoding='utf-16'
                                  ).user_ids.tolist() == ['zoë']
    with pytest.raises(ValueError, match="'encoding'"):
        read_interaction_table(str(path), encoding='no-such-codec')


def test_interaction_table_header_inference(tmp_path):
    path = tmp_path / 'ids.csv'
    path.write_text('user_1,item_1\nuser_2,item_2\n')  # data, not a header
    assert read_interaction_table(str(path)).user_ids.tolist() == [
        'user_1', 'user_2'
    ]
    path.write_text('user,item,rating\n\n1,2,3\n')  # blank line after header
    assert read_interaction_table(str(path)).rating.tolist() == [3.0]
    path.write_text('user,item,time\n1,2,2020-01-01T01:00:00+01:00\n'
                    '1,3,2020-01-01\n')  # mixed time zone notations
    assert read_interaction_table(str(path)).time.tolist() == [1577836800] * 2


def test_long_field_is_refused_without_huge_allocations(tmp_path):
    path = tmp_path / 'long.csv'
    with open(path, 'wb') as f:
        f.write(b'user,item,rating\n' + b'1,2,5\n' * 1000 + b'1,')
        f.write(b'y' * (50 << 20))  # one 50 MB field
        f.write(b',5\n')
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r'line 1002: the line is longer'):
        read_interaction_table(str(path))
    assert time.perf_counter() - start < 10


# Stale temporary files #######################################################


def dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_stale_tmp_files_are_removed(tmp_path, no_download):
    write_files(tmp_path / 'raw', {'train.txt': TRAIN, 'test.txt': TEST})
    processed = tmp_path / 'processed'
    os.makedirs(processed)
    dead, alive = dead_pid(), os.getppid()
    stale = [f'data.pt.tmp-{dead}', 'data.pt.tmp-0', 'data.pt.tmp-99999999']
    kept = [
        f'data.pt.tmp-{alive}',  # a live writer
        f'other.pt.tmp-{dead}', f'data.pt.tmp-{dead}x', 'data.pt.tmp-',
        'notes.txt'
    ]
    write_files(processed, {name: b'partial' for name in stale + kept})
    Gowalla(str(tmp_path))
    left = sorted(os.listdir(processed))
    assert not set(stale) & set(left)
    assert set(kept) <= set(left) and 'data.pt' in left
    # Written before the live process started: the pid was reused.
    os.utime(processed / f'data.pt.tmp-{alive}', (0, 0))
    Gowalla(str(tmp_path))  # cleans up without re-processing too
    assert f'data.pt.tmp-{alive}' not in os.listdir(processed)
    assert remove_stale_tmp_files(str(tmp_path / 'nope'), ['data.pt']) == []
    own = processed / f'data.pt.tmp-{os.getpid()}'  # this run's own
    own.write_bytes(b'partial')
    os.utime(own, (0, 0))
    assert remove_stale_tmp_files(str(processed), ['data.pt']) == []


# Property-based: round trips #################################################

ID_CHARS = 'abcdfgh0123456789_-'  # cannot spell a column name such as 'user'
raw_ids = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.text(ID_CHARS, min_size=1, max_size=12),
)


@BOUNDED
@given(rows=st.lists(st.tuples(raw_ids, raw_ids,
                               st.floats(-1e6, 1e6, allow_nan=False)),
                     min_size=1, max_size=40),
       header=st.booleans(), sep=st.sampled_from([',', '\t', ';']),
       eol=st.sampled_from(['\n', '\r\n']), last_eol=st.booleans())
def test_csv_round_trip(rows, header, sep, eol, last_eol):
    lines = ['user' + sep + 'item' + sep + 'rating'] if header else []
    lines += [sep.join((u, i, repr(r))) for u, i, r in rows]
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'table.csv')
        with open(path, 'w', newline='') as f:
            f.write(eol.join(lines) + (eol if last_eol else ''))
        table = read_interaction_table(path)
    for k, ids, raw in raw_ids_of(table, rows):
        assert len(ids) == len(set(raw))
    assert table.rating.tolist() == [r for _, _, r in rows]


def lightgcn_text(lines, layout):
    sep, eol, blank = layout
    out = []
    for user, items in lines:
        out.append(sep.join(map(str, [user] + items)) + eol)
        if blank:
            out.append(eol)
    return ''.join(out)


def first_occurrences(lines):
    seen, out = set(), []
    for user, items in lines:
        for item in items:
            if (user, item) not in seen:
                seen.add((user, item))
                out.append((user, item))
    return out


lightgcn_lines = st.lists(
    st.tuples(st.integers(0, 30), st.lists(st.integers(0, 10**12 - 1),
                                           max_size=8)), min_size=1,
    max_size=25)
layouts = st.tuples(st.sampled_from([' ', '\t', '  ', ' \t']),
                    st.sampled_from(['\n', '\r\n', ' \n']), st.booleans())


@BOUNDED
@given(lines=lightgcn_lines, layout=layouts)
def test_lightgcn_file_round_trip(lines, layout):
    expected = first_occurrences(lines)
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'train.txt')
        with open(path, 'w', newline='') as f:
            f.write(lightgcn_text(lines, layout))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', UserWarning)
            file = read_lightgcn_file(path)
    assert list(map(tuple, file.index.t().tolist())) == expected
    assert file.num_duplicates == sum(map(len, (i for _, i in lines))) - \
        len(expected)
    assert file.line_user.tolist() == [u for u, _ in lines]


@settings(max_examples=max(EXAMPLES // 2, 1), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(num_users=st.integers(1, 8), num_items=st.integers(1, 8),
       seed=st.integers(0, 2**16))
def test_lightgcn_dataset_round_trip(num_users, num_items, seed):
    gen = np.random.default_rng(seed)
    known = gen.random((num_users, num_items)) < 0.5
    known[np.arange(num_users), gen.integers(0, num_items, num_users)] = True
    known[gen.integers(0, num_users, num_items), np.arange(num_items)] = True
    in_test = known & (gen.random(known.shape) < 0.3)
    files = {}
    for name, mask in (('train.txt', known & ~in_test), ('test.txt',
                                                         in_test)):
        files[name] = ''.join(
            f'{u} ' + ' '.join(map(str, np.flatnonzero(mask[u]))) + '\n'
            for u in range(num_users))
    with tempfile.TemporaryDirectory() as root:
        write_files(osp.join(root, 'raw'), files)
        if not (known & ~in_test).any():
            with pytest.raises(ValueError, match='holds no interactions'):
                Gowalla(root)
            return
        data = Gowalla(root)[0]
    assert data['user'].num_nodes == num_users
    assert data['item'].num_nodes == num_items
    rates = data['user', 'rates', 'item']
    assert pairs(rates.edge_index) == sorted(
        map(tuple, np.argwhere(known & ~in_test).tolist()))
    assert pairs(rates.edge_label_index) == sorted(
        map(tuple, np.argwhere(in_test).tolist()))


# Property-based: corruptions #################################################


def lightgcn_oracle(raw: bytes):
    r"""What reading :obj:`raw` must give: :obj:`('ok', pairs)` or
    :obj:`('error', line)` (:obj:`line` is :obj:`None` for a file-level
    error)."""
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        return 'error', raw[:e.start].count(b'\n') + 1
    if text.strip() == '':
        return 'error', None
    if not text.endswith('\n'):
        return 'error', text.count('\n') + 1
    lines = []
    for lineno, line in enumerate(text.split('\n')[:-1], 1):
        tokens = [t for t in re.split(r'[ \t\r]+', line) if t]
        if re.search(r'[^0-9 \t\r]', line) or any(len(t) > 12
                                                  for t in tokens):
            return 'error', lineno
        if tokens:
            lines.append((int(tokens[0]), [int(t) for t in tokens[1:]]))
    return 'ok', first_occurrences(lines)


def corrupt(data: bytes, draw, alphabet: str) -> bytes:
    r"""Truncates, flips 1-3 bytes or inserts a line; new bytes are random or
    drawn from :obj:`alphabet` (so that many corruptions stay readable)."""
    kind = draw(st.sampled_from(['truncate', 'flip', 'insert']))
    if kind == 'truncate':
        return data[:draw(st.integers(0, len(data)))]
    if kind == 'flip':
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            out[draw(st.integers(0, len(out) - 1))] = draw(
                st.one_of(st.integers(0, 255),
                          st.sampled_from(alphabet.encode())))
        return bytes(out)
    lines = data.split(b'\n')
    at = draw(st.integers(0, len(lines)))
    new = draw(st.one_of(st.binary(max_size=20),
                         st.text(max_size=20).map(str.encode),
                         st.text(alphabet, max_size=20).map(str.encode)))
    return b'\n'.join(lines[:at] + [new] + lines[at:])


@BOUNDED
@given(lines=lightgcn_lines, data=st.data())
def test_corrupt_lightgcn_file_is_read_right_or_refused(lines, data):
    raw = corrupt(lightgcn_text(lines, (' ', '\n', False)).encode(),
                  data.draw, '0123456789 \t\r\n-x')
    outcome, detail = lightgcn_oracle(raw)
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'train.txt')
        with open(path, 'wb') as f:
            f.write(raw)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', UserWarning)
                file = read_lightgcn_file(path)
        except ValueError as e:
            assert outcome == 'error', f'refused a valid file: {e}'
            where = path if detail is None else f'{path}, line {detail}:'
            assert where in str(e)
            return
    assert outcome == 'ok', f'accepted a corrupt file (error {detail})'
    assert list(map(tuple, file.index.t().tolist())) == detail


SIMPLE_CSV = re.compile(r'[a-h0-9_.,\n-]*')


def csv_oracle(text: str):
    r"""For a table under the header :obj:`user,item,rating` whose rows hold
    only :obj:`SIMPLE_CSV` characters (no quotes, no names of columns): the
    expected rows, or :obj:`None` when reading must fail."""
    rows = []
    for line in text.split('\n')[1:]:
        fields = line.split(',')
        if all(f == '' for f in fields) and len(fields) <= 3:
            continue  # a blank line
        if len(fields) != 3 or '' in fields[:2] or max(map(
                len, fields[:2])) > 256:
            return None
        rating = pd.to_numeric(pd.Series([fields[2]]), errors='coerce')[0]
        if not np.isfinite(rating):
            return None
        rows.append((fields[0], fields[1], float(rating)))
    return rows or None


@BOUNDED
@given(rows=st.lists(st.tuples(st.text(ID_CHARS, min_size=1, max_size=6),
                               st.text(ID_CHARS, min_size=1, max_size=6),
                               st.integers(1, 5)), min_size=1, max_size=15),
       data=st.data())
def test_corrupt_csv_is_read_right_or_refused(rows, data):
    text = 'user,item,rating\n' + ''.join(f'{u},{i},{r}\n'
                                          for u, i, r in rows)
    raw = corrupt(text.encode(), data.draw, 'abc0123456789,.-_\n')
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'table.csv')
        with open(path, 'wb') as f:
            f.write(raw)
        try:
            table = read_interaction_table(path)
        except ValueError as e:
            assert path in str(e)
            table = None
    try:
        decoded = raw.decode('utf-8')
    except UnicodeDecodeError:
        assert table is None
        return
    header = 'user,item,rating\n'
    if not (decoded.startswith(header)
            and SIMPLE_CSV.fullmatch(decoded[len(header):])):
        if table is not None:  # no oracle; the result must be coherent
            assert table.index.dim() == 2 and table.index.size(0) == 2
            assert table.index.size(1) > 0
            assert int(table.index[0].max()) < len(table.user_ids)
            assert int(table.index[1].max()) < len(table.item_ids)
            if table.rating is not None:  # None: a header name was hit
                assert table.rating.numel() == table.index.size(1)
                assert bool(torch.isfinite(table.rating).all())
        return
    expected = csv_oracle(decoded)
    if expected is None:
        assert table is None, f'accepted {decoded!r}'
        return
    assert table is not None, f'refused {decoded!r}'
    raw_ids_of(table, expected)
    assert table.rating.tolist() == [r for _, _, r in expected]
