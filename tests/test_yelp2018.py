import os.path as osp
import shutil
from pathlib import Path

import pytest
import torch

import pyg_lightgode.datasets.lightgcn as lightgcn_module
from pyg_lightgode.datasets import (
    AmazonBook,
    Gowalla,
    LightGCNDataset,
    Yelp2018,
    load_dataset,
)
from pyg_lightgode.datasets.load import DATASET_NAMES

FIXTURE = Path(__file__).parent / 'fixtures' / 'yelp2018_tiny'
SHARED_DATA = Path(__file__).resolve().parents[2] / 'shared' / 'data'


def read_pairs(path):
    out = []
    for line in Path(path).read_text().splitlines():
        user, *items = map(int, line.split())
        out += [(user, item) for item in items]
    return sorted(out)


def pairs(index):
    return sorted(map(tuple, index.t().tolist()))


@pytest.fixture
def no_download(monkeypatch):
    def fail(url, folder, *args, **kwargs):
        raise AssertionError(f'unexpected download of {url}')

    monkeypatch.setattr(lightgcn_module, 'download_url', fail)


def test_lightgcn_splits_share_one_reader():
    for cls in (Gowalla, Yelp2018, AmazonBook):
        assert issubclass(cls, LightGCNDataset)
        assert cls.process is LightGCNDataset.process
        assert cls.url.startswith('https://raw.githubusercontent.com/'
                                  'gusye1234/LightGCN-PyTorch/master/data/')
    assert Yelp2018.url.endswith('/yelp2018')
    assert 'yelp2018' in DATASET_NAMES


def test_yelp2018_fixture(tmp_path, no_download):
    shutil.copytree(FIXTURE, tmp_path / 'raw')
    data = Yelp2018(str(tmp_path))[0]
    assert data['user'].num_nodes == 6 and data['item'].num_nodes == 9
    rates = data['user', 'rates', 'item']
    assert pairs(rates.edge_index) == read_pairs(FIXTURE / 'train.txt')
    assert pairs(rates.edge_label_index) == read_pairs(FIXTURE / 'test.txt')
    assert torch.equal(data['item', 'rated_by', 'user'].edge_index,
                       rates.edge_index.flip([0]))
    assert 'raw_id' not in data['user']  # Yelp ids are strings


def test_load_dataset_yelp2018(tmp_path, no_download):
    plain = load_dataset('yelp2018', str(tmp_path), raw_dir=str(FIXTURE))
    assert plain.name == 'yelp2018' and plain.val_index is None
    assert plain.stats() == {'num_users': 6, 'num_items': 9, 'num_train': 18,
                             'num_test': 12}
    assert osp.islink(tmp_path / 'yelp2018' / 'raw' / 'user_list.txt')
    split = load_dataset('Yelp2018', str(tmp_path), val_ratio=1 / 3, seed=1,
                         force_reload=True)
    assert torch.equal(split.test_index, plain.test_index)
    assert torch.bincount(split.val_index[0]).tolist() == [1] * 6
    assert pairs(torch.cat([split.train_index, split.val_index], 1)) == \
        pairs(plain.train_index)
    with pytest.raises(ValueError, match='val_ratio'):
        load_dataset('yelp2018', str(tmp_path), val_ratio=-0.1)


def test_yelp2018_downloads_the_four_files(tmp_path, monkeypatch):
    urls = []

    def fake_download(url, folder, *args, **kwargs):
        urls.append(url)
        name = url.rsplit('/', 1)[1]
        shutil.copy(FIXTURE / name, folder)
        return osp.join(folder, name)

    monkeypatch.setattr(lightgcn_module, 'download_url', fake_download)
    Yelp2018(str(tmp_path))
    base = ('https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/'
            'master/data/yelp2018')
    assert sorted(urls) == sorted(f'{base}/{name}' for name in [
        'train.txt', 'test.txt', 'user_list.txt', 'item_list.txt'])


def test_real_yelp2018(tmp_path, no_download):
    source = SHARED_DATA / 'yelp2018'
    if not (source / 'train.txt').exists():
        pytest.skip(f'{source}/train.txt is missing')
    split = load_dataset('yelp2018', str(tmp_path), raw_dir=str(source))
    assert split.stats() == {'num_users': 31_668, 'num_items': 38_048,
                             'num_train': 1_237_259, 'num_test': 324_147}
