import os
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_geometric.io.fs

import pyg_lightgode.datasets.lightgcn as lightgcn_module
from helpers import pairs, write_files
from pyg_lightgode.data import BipartiteSplit
from pyg_lightgode.datasets import Gowalla, load_dataset, load_movielens
from pyg_lightgode.datasets.interaction_table import (
    from_interaction_table,
    read_interaction_table,
)
from pyg_lightgode.datasets.load import DATASET_NAMES, link_raw_files
from pyg_lightgode.datasets.movielens import read_movielens_ratings

SHARED_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'

TRAIN = '0 0 1 2\n1 1 3\n2 0 4\n'
TEST = '0 3\n1 0\n2 2\n'


# Gowalla #####################################################################


def test_gowalla_parses_lightgcn_files(tmp_path, no_download):
    write_files(tmp_path / 'raw', {'train.txt': TRAIN, 'test.txt': TEST})
    data = Gowalla(str(tmp_path))[0]
    assert data['user'].num_nodes == 3 and data['item'].num_nodes == 5
    rates = data['user', 'rates', 'item']
    assert pairs(rates.edge_index) == [(0, 0), (0, 1), (0, 2), (1, 1),
                                       (1, 3), (2, 0), (2, 4)]
    assert pairs(rates.edge_label_index) == [(0, 3), (1, 0), (2, 2)]
    assert torch.equal(data['item', 'rated_by', 'user'].edge_index,
                       rates.edge_index.flip([0]))
    split = BipartiteSplit.from_hetero_data(data)
    assert split.stats() == {'num_users': 3, 'num_items': 5, 'num_train': 7,
                             'num_test': 3}


def test_gowalla_counts_users_without_items_and_uses_id_lists(
        tmp_path, no_download):
    write_files(
        tmp_path / 'raw', {
            'train.txt': TRAIN + '4\n',  # user 4 without training items
            'test.txt': TEST,
            'user_list.txt': 'org_id remap_id\n' + ''.join(
                f'{100 + u} {u}\n' for u in range(6)),
            'item_list.txt': 'org_id remap_id\n' + ''.join(
                f'{900 + i} {i}\n' for i in range(7)),
        })
    data = Gowalla(str(tmp_path))[0]
    assert data['user'].num_nodes == 6 and data['item'].num_nodes == 7
    assert data['user'].raw_id.tolist() == list(range(100, 106))
    assert data['item'].raw_id.tolist() == list(range(900, 907))
    split = load_dataset('gowalla', str(tmp_path.parent), raw_dir=str(
        tmp_path / 'raw'))
    assert split.user_ids.tolist() == list(range(100, 106))


def test_gowalla_download_only_when_missing(tmp_path, monkeypatch):
    urls = []

    def fake_download(url, folder, *args, **kwargs):
        urls.append(url)
        name = url.rsplit('/', 1)[1]
        text = {'train.txt': TRAIN, 'test.txt': TEST}.get(
            name, 'org_id remap_id\n0 0\n1 1\n2 2\n3 3\n4 4\n')
        write_files(folder, {name: text})
        return osp.join(folder, name)

    monkeypatch.setattr(lightgcn_module, 'download_url', fake_download)
    data = Gowalla(str(tmp_path / 'a'))[0]
    assert sorted(urls) == sorted(f'{Gowalla.url}/{name}' for name in [
        'train.txt', 'test.txt', 'user_list.txt', 'item_list.txt'])
    assert data['user'].num_nodes == 5
    # Raw files already there: nothing is downloaded.
    urls.clear()
    write_files(tmp_path / 'b' / 'raw', {'train.txt': TRAIN,
                                         'test.txt': TEST})
    Gowalla(str(tmp_path / 'b'))
    assert urls == []


def test_gowalla_reuses_processed_cache(tmp_path, no_download):
    write_files(tmp_path / 'raw', {'train.txt': TRAIN, 'test.txt': TEST})
    Gowalla(str(tmp_path))
    write_files(tmp_path / 'raw', {'train.txt': '0 x\n'})
    data = Gowalla(str(tmp_path))[0]  # not re-processed
    assert data['user', 'rates', 'item'].edge_index.size(1) == 7
    with pytest.raises(ValueError, match='train.txt, line 1'):
        Gowalla(str(tmp_path), force_reload=True)


@pytest.mark.parametrize('name,text,match', [
    ('train.txt', '0 0 1\n1 x 2\n', r"train.txt, line 2: 'x' is not a"),
    ('train.txt', '0 0 1\n\n2 -3\n', r"train.txt, line 3: '-3' is a negative"),
    ('train.txt', '0 1.5\n', r"train.txt, line 1: '1.5' is not"),
    ('test.txt', '', r'test.txt: the file is empty'),
    ('test.txt', '0 3\n1 0\n2 2', r'test.txt, line 3: the last line has no '
     r'line break'),
    ('train.txt', '0 0 1\n1 12345678901234567890\n', r'train.txt, line 2'),
])
def test_gowalla_corrupt_files(tmp_path, no_download, name, text, match):
    files = {'train.txt': TRAIN, 'test.txt': TEST}
    files[name] = text
    write_files(tmp_path / 'raw', files)
    with pytest.raises(ValueError, match=match):
        Gowalla(str(tmp_path))
    assert not osp.exists(tmp_path / 'processed' / 'data.pt')


@pytest.mark.parametrize('files,match', [
    ({'item_list.txt': 'org_id remap_id\n7 0\n8 1\n9 2\n'},
     r'train.txt, line 2: item id 3 is out of range: item_list.txt lists 3'),
    ({'user_list.txt': 'org_id remap_id\n7 0\n8 1\n'},
     r'train.txt, line 3: user id 2 is out of range: user_list.txt lists 2'),
    ({'user_list.txt': 'org_id remap_id\n7 0\n8 2\n'},
     r"user_list.txt, line 3: expected 'org_id remap_id' with remap_id 1"),
])
def test_gowalla_out_of_range(tmp_path, no_download, files, match):
    write_files(tmp_path / 'raw', {
        'train.txt': '0 0 1\n1 1 3\n2 0\n',
        'test.txt': TEST,
        **files
    })
    with pytest.raises(ValueError, match=match):
        Gowalla(str(tmp_path))


def test_gowalla_processing_is_atomic(tmp_path, no_download, monkeypatch):
    write_files(tmp_path / 'raw', {'train.txt': TRAIN, 'test.txt': TEST})

    def crash_mid_write(obj, path):
        with open(path, 'wb') as f:
            f.write(b'partial')
        raise RuntimeError('disk full')

    monkeypatch.setattr(torch_geometric.io.fs, 'torch_save', crash_mid_write)
    with pytest.raises(RuntimeError, match='disk full'):
        Gowalla(str(tmp_path))
    assert os.listdir(tmp_path / 'processed') == []
    monkeypatch.undo()
    data = Gowalla(str(tmp_path))[0]
    assert data['user', 'rates', 'item'].edge_index.size(1) == 7


# link_raw_files / load_dataset ###############################################


def test_link_raw_files(tmp_path):
    write_files(tmp_path / 'src', {'a.txt': 'A\n', 'b.txt': 'B\n'})
    write_files(tmp_path / 'raw', {'b.txt': 'mine\n'})
    done = link_raw_files(str(tmp_path / 'src'), str(tmp_path / 'raw'),
                          ['a.txt', 'b.txt', 'missing.txt'])
    assert done == ['a.txt']
    assert osp.islink(tmp_path / 'raw' / 'a.txt')
    assert (tmp_path / 'raw' / 'a.txt').read_text() == 'A\n'
    assert (tmp_path / 'raw' / 'b.txt').read_text() == 'mine\n'
    assert not osp.exists(tmp_path / 'raw' / 'missing.txt')
    done = link_raw_files(str(tmp_path / 'src'), str(tmp_path / 'copy'),
                          ['a.txt'], copy=True)
    assert done == ['a.txt'] and not osp.islink(tmp_path / 'copy' / 'a.txt')
    with pytest.raises(ValueError, match='source_dir'):
        link_raw_files(str(tmp_path / 'nope'), str(tmp_path / 'raw'), [])


def test_load_dataset_gowalla_validation_from_train(tmp_path, no_download):
    train = ''.join(f'{u} ' + ' '.join(str((u + j) % 40) for j in range(12))
                    + '\n' for u in range(6))
    write_files(tmp_path / 'src', {'train.txt': train, 'test.txt': TEST})
    plain = load_dataset('gowalla', str(tmp_path), raw_dir=str(
        tmp_path / 'src'))
    assert plain.val_index is None and plain.name == 'gowalla'
    assert osp.islink(tmp_path / 'gowalla' / 'raw' / 'train.txt')
    split = load_dataset('Gowalla', str(tmp_path), val_ratio=0.25, seed=3)
    assert torch.equal(split.test_index, plain.test_index)
    assert pairs(torch.cat([split.train_index, split.val_index], 1)) == \
        pairs(plain.train_index)
    assert torch.bincount(split.val_index[0]).tolist() == [3] * 6
    again = load_dataset('gowalla', str(tmp_path), val_ratio=0.25, seed=3)
    assert torch.equal(again.val_index, split.val_index)
    with pytest.raises(ValueError, match='val_ratio'):
        load_dataset('gowalla', str(tmp_path), val_ratio=1.0)


def test_load_dataset_amazon_book_format(tmp_path):
    lists = {
        'user_list.txt': 'org_id remap_id\nA 0\nB 1\nC 2\n',
        'item_list.txt': 'org_id remap_id\n' + ''.join(
            f'isbn{i} {i}\n' for i in range(5)),
    }
    write_files(tmp_path / 'src', {'train.txt': TRAIN, 'test.txt': TEST,
                                   **lists})
    split = load_dataset('amazon-book', str(tmp_path),
                         raw_dir=str(tmp_path / 'src'), val_ratio=0.5)
    assert (split.num_users, split.num_items) == (3, 5)
    assert split.stats()['num_val'] == 3  # floor(n / 2) of n = 3, 2, 2
    assert pairs(split.test_index) == pairs(torch.tensor([[0, 1, 2],
                                                          [3, 0, 2]]))


def test_load_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match='valid names are gowalla') as e:
        load_dataset('yelp', str(tmp_path))
    assert all(name in str(e.value) for name in DATASET_NAMES)
    with pytest.raises(ValueError, match="'root' is required"):
        load_dataset('gowalla')
    with pytest.raises(TypeError):
        load_dataset('gowalla', str(tmp_path), min_rating=4)


# read_interaction_table ######################################################


def test_read_csv_with_header_and_string_ids(tmp_path):
    path = tmp_path / 'inter.csv'
    path.write_text('user,item,rating,timestamp\nbob,book-1,5,30\n'
                    'alice,book-2,3,10\n\nbob,book-2,4,20\n')
    table = read_interaction_table(str(path))
    assert table.num_users == 2 and table.num_items == 2
    raw = [(table.user_ids[u], table.item_ids[i])
           for u, i in table.index.t().tolist()]
    assert raw == [('bob', 'book-1'), ('alice', 'book-2'),
                   ('bob', 'book-2')]
    assert table.rating.tolist() == [5, 3, 4]
    assert table.time.tolist() == [30, 10, 20]
    split = from_interaction_table(str(path), min_rating=4,
                                   ratios=(0.5, 0.5))
    assert split.name == 'inter.csv'
    assert split.stats()['num_train'] + split.stats()['num_test'] == 2
    assert split.num_users == 2  # k-core 0 keeps alice (no positives)


def test_read_tables_in_other_layouts(tmp_path):
    tsv = tmp_path / 'a.tsv'
    tsv.write_text('10\t7\n3\t7\n10\t8\n')  # no header: user, item
    table = read_interaction_table(str(tsv))
    assert table.user_ids.tolist() == [3, 10]
    tsv.write_text('007\t1\n7\t1\n')  # ids keep their spelling
    assert read_interaction_table(str(tsv)).user_ids.tolist() == ['007', '7']
    assert table.rating is None and table.time is None
    ws = tmp_path / 'b.txt'
    ws.write_text('u1   i1  4.5\nu2 i1 2\n')
    assert read_interaction_table(str(ws)).rating.tolist() == [4.5, 2.0]
    recbole = tmp_path / 'c.inter'
    recbole.write_text('user_id:token\titem_id:token\trating:float\t'
                       'timestamp:float\n1\t2\t3\t4\n')
    table = read_interaction_table(str(recbole))
    assert table.time.tolist() == [4.0]
    semi = tmp_path / 'd.csv'
    semi.write_text('a;x;p;5\nb;y;q;1\n')
    table = read_interaction_table(str(semi),
                                   columns=('user', None, 'item', 'rating'))
    assert table.item_ids.tolist() == ['p', 'q']
    dates = tmp_path / 'e.csv'
    dates.write_text('user,item,time\n1,2,2020-01-02\n1,3,2020-01-01\n')
    time = read_interaction_table(str(dates)).time
    assert time.tolist() == [1577923200, 1577836800]


@pytest.mark.parametrize('text,kwargs,match', [
    ('user,item,rating\n1,2,5\n1,3,abc\n', {}, r"line 3: rating 'abc'"),
    ('1,2,5\n1,3,4\n1,3,4,9\n', {}, r'line 3: expected 3 fields'),
    ('1,2,5\n,3,4\n', {}, r'line 2: the user id is missing'),
    ('\n1,2\n', {}, r'line 1: the first line is empty'),
    ('a,b,c\n', {'header': True}, r'cannot tell which columns'),
    ('1,2\n', {'columns': ('user', 'thing')}, r"'columns' may only hold"),
    ('1,2\n', {'columns': ('user', 'item', 'rating')}, r'names 3 columns'),
])
def test_read_interaction_table_errors(tmp_path, text, kwargs, match):
    path = tmp_path / 'bad.csv'
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        read_interaction_table(str(path), **kwargs)
    assert 'bad.csv' in str(e.value) or 'columns' in match


def test_load_dataset_csv(tmp_path):
    path = tmp_path / 'x.csv'
    path.write_text(''.join(f'u{u},i{(u * 7 + j) % 9},{j % 5 + 1}\n'
                            for u in range(8) for j in range(6)))
    split = load_dataset(f'csv:{path}', min_rating=2, seed=1)
    assert split.num_users == 8 and split.val_index is not None
    # Ratings cycle 1..5, 1: four of every user's six are >= 2.
    assert sum(split.stats()[k] for k in ('num_train', 'num_val',
                                          'num_test')) == 8 * 4


# MovieLens ###################################################################

GENRES = '|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0'
ML100K = {
    'u.item': ''.join(f'{i}|Movie {i}|{d}||http://x{GENRES}\n' for i, d in [
        (1, '01-Jan-1990'), (2, '01-Jan-2000'), (3, ''), (4, '01-Jan-1995')]),
    'u.user': '1|20|M|writer|1\n2|40|F|other|2\n3|30|M|other|3\n',
    'u.data': ('1\t1\t5\t100\n1\t2\t4\t200\n1\t3\t2\t300\n2\t1\t4\t100\n'
               '2\t4\t5\t400\n3\t2\t1\t100\n3\t4\t4\t500\n'),
}
ML100K['u1.base'] = ML100K['u.data']
ML100K['u1.test'] = '1\t4\t3\t600\n'


def test_movielens_100k_fixture(tmp_path):
    write_files(tmp_path / 'raw', ML100K)
    split = load_movielens(str(tmp_path), ratios=(0.5, 0.5))
    assert split.num_users == 3 and split.num_items == 4
    assert split.user_ids.tolist() == [1, 2, 3]
    assert split.item_ids.tolist() == [1, 2, 3, 4]
    positives = {(1, 1), (1, 2), (2, 1), (2, 4), (3, 4)}
    got = {(int(split.user_ids[u]), int(split.item_ids[i]))
           for part in ('train', 'test')
           for u, i in split.part(part).t().tolist()}
    assert got == positives
    assert split.user_x.shape == (3, 1 + 2 + 2)  # age, gender, occupation
    assert split.user_x[:, 0].tolist() == [0.5, 1.0, 0.75]
    assert split.item_x.shape == (4, 19)
    year = split.item_x[:, -1]
    assert year[:2].tolist() == [0.0, 1.0] and year[3] == 0.5
    assert torch.isclose(year[2], year[[0, 1, 3]].mean())

    temporal = load_movielens(str(tmp_path), split='temporal',
                              min_rating=None, year_feature=False)
    assert temporal.item_x.shape == (4, 18)
    test = {(int(temporal.user_ids[u]), int(temporal.item_ids[i]))
            for u, i in temporal.test_index.t().tolist()}
    assert test == {(1, 3), (2, 4), (3, 4)}


@pytest.mark.parametrize('u_data,match', [
    ('1\t1\t5\t100\n1\tx\t4\t200\n', r"u.data, line 2: item 'x' is not"),
    ('1\t1\t5\t100\n1\t2\t4\n', r'u.data, line 2: expected 4 fields'),
    ('1\t1\t5\t100\n1\t2\t-4\t9\n', r"u.data, line 2: rating '-4'"),
    ('1\t1\t5\t100\n1\t9\t4\t200\n',
     r'u.data, line 2: item id 9 is not listed in u.item'),
    ('1\t1\t5\t100\n1\t2\t4\t200', r'u.data, line 2: the last line has no'),
])
def test_movielens_corrupt_ratings(tmp_path, u_data, match):
    write_files(tmp_path / 'raw', {**ML100K, 'u.data': u_data})
    with pytest.raises(ValueError, match=match):
        load_movielens(str(tmp_path))


def test_movielens_1m_fixture(tmp_path):
    write_files(
        tmp_path / 'raw', {
            'movies.dat': '1::Toy Story (1995)::Animation|Comedy\n'
            '5::Heat (1985)::Action\n7::Untitled::Comedy\n',
            'users.dat': '1::F::1::10::48067\n2::M::56::16::70072\n',
            'ratings.dat': '1::1::5::978300760\n1::5::4::978302109\n'
            '2::7::3::978301968\n2::5::4::978300000\n',
        })
    split = load_movielens(str(tmp_path), '1m', ratios=(0.5, 0.5))
    assert split.num_users == 2 and split.num_items == 3
    assert split.item_ids.tolist() == [1, 5, 7]
    assert split.item_x[:, -1].tolist() == [1.0, 0.0, 0.5]
    assert split.stats()['num_train'] + split.stats()['num_test'] == 3
    assert read_movielens_ratings(str(tmp_path / 'raw' / 'ratings.dat'),
                                  '::')[:, 3].tolist()[-1] == 978300000
    with pytest.raises(ValueError, match="'version'"):
        load_movielens(str(tmp_path), '20m')


# Real data (skipped without ../shared/data) ##################################


def need(path):
    if not path.exists():
        pytest.skip(f'{path} is missing')
    return path


def test_real_gowalla(tmp_path, no_download):
    source = need(SHARED_DATA / 'gowalla')
    split = load_dataset('gowalla', str(tmp_path), raw_dir=str(source))
    assert split.stats() == {'num_users': 29_858, 'num_items': 40_981,
                             'num_train': 810_128, 'num_test': 217_242}
    assert split.user_ids[0] == 343 and split.item_ids[0] == 8975
    assert bool(torch.isin(split.test_index[1].unique(),
                           split.train_index[1].unique()).all())
    assert torch.bincount(split.test_index[0]).min() >= 1


def test_real_movielens_100k(tmp_path):
    source = need(SHARED_DATA / 'ml-100k')
    ratings = read_movielens_ratings(str(source / 'u.data'))
    assert ratings.shape == (100_000, 4)
    assert len(np.unique(ratings[:, 0])) == 943
    assert len(np.unique(ratings[:, 1])) == 1_682
    assert int((ratings[:, 2] >= 4).sum()) == 55_375
    split = load_dataset('movielens100k', str(tmp_path), raw_dir=str(source))
    stats = split.stats()
    assert (stats['num_users'], stats['num_items']) == (943, 1_682)
    assert stats['num_train'] + stats['num_val'] + stats['num_test'] == 55_375
    assert split.user_x.shape == (943, 24) and split.item_x.shape == (1682,
                                                                      19)
    recbole = SHARED_DATA / 'ml-100k-recbole' / 'ml-100k.inter'
    if recbole.exists():  # the RecBole copy holds the same rows
        table = read_interaction_table(str(recbole))
        raw_user = table.user_ids[table.index[0].numpy()]
        assert (raw_user == ratings[:, 0]).all()
        assert (table.rating.numpy() == ratings[:, 2]).all()


def test_known_interactions_exclude_what_ranking_a_part_must_skip():
    train = torch.tensor([[0, 1], [0, 1]])
    val = torch.tensor([[0], [2]])
    test = torch.tensor([[1], [2]])
    split = BipartiteSplit(2, 3, train, test, val_index=val)
    assert [t.tolist() for t in split.known_interactions('val')] == \
        [train.tolist()]
    assert [t.tolist() for t in split.known_interactions('test')] == \
        [train.tolist(), val.tolist()]
    no_val = BipartiteSplit(2, 3, train, test)
    assert len(no_val.known_interactions('test')) == 1
    with pytest.raises(ValueError, match="'part'"):
        split.known_interactions('train+val')
