r"""The failure modes of issue 26: each case with the clear error (naming
the file, argument or token) or the recovery that replaced it."""
import importlib.util
import io
import json
import os
import os.path as osp
import shutil
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch

from pyg_lightgode.apps.serving import (
    ArtefactError,
    FilterRecommender,
    ItemEmbeddingRecommender,
    LightGODERecommender,
    NonFiniteScoresError,
    load_recommender,
)
from pyg_lightgode.datasets import Gowalla, load_dataset
from pyg_lightgode.nn.models import GFCF

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'
needs_ml100k = pytest.mark.skipif(not (ML100K / 'u.data').exists(),
                                  reason='../shared/data/ml-100k is absent')
U, I, D = 30, 20, 4


def graph(seed=0):
    gen = torch.Generator().manual_seed(seed)
    index = torch.stack([torch.randint(0, U, (150, ), generator=gen),
                         torch.randint(0, I, (150, ), generator=gen)])
    index = index.unique(dim=1)
    index = torch.cat([index, torch.tensor([[U - 1], [I - 1]])], 1)
    return (torch.randn(U, D, generator=gen), torch.randn(I, D, generator=gen),
            index.unique(dim=1))


def rewrite(path, edit):
    state = torch.load(path, weights_only=True)
    config = json.loads(state['config'])
    edit(state, config)
    state['config'] = json.dumps(config)
    torch.save(state, path)
    return path


# --------------------------------------------------------------------------
# 1. A processed file cut short by kill -9
# --------------------------------------------------------------------------
@needs_ml100k
def test_truncated_processed_movielens_file_is_rebuilt(tmp_path):
    first = load_dataset('movielens100k', str(tmp_path),
                         raw_dir=str(ML100K))
    processed = tmp_path / 'movielens100k' / 'processed' / 'data.pt'
    data = processed.read_bytes()
    processed.write_bytes(data[:len(data) // 2])  # What kill -9 left.
    with pytest.warns(UserWarning, match=r"processed file '.*data\.pt' "
                      r"cannot be read"):
        again = load_dataset('movielens100k', str(tmp_path),
                             raw_dir=str(ML100K))
    assert torch.equal(first.train_index, again.train_index)
    torch.load(processed, weights_only=False)  # Whole again.
    # PyG's own marker files, written after processing, are checked too.
    marker = processed.parent / 'pre_transform.pt'
    marker.write_bytes(marker.read_bytes()[:5])
    with pytest.warns(UserWarning, match='pre_transform.pt'):
        load_dataset('movielens100k', str(tmp_path), raw_dir=str(ML100K))


@needs_ml100k
def test_movielens_processing_is_atomic(tmp_path, monkeypatch):
    from torch_geometric.data import InMemoryDataset

    def interrupted(data_list, path):
        with open(path, 'wb') as f:
            f.write(b'PK\x03\x04 half a zip')
        raise KeyboardInterrupt  # as a kill in the middle of the write

    monkeypatch.setattr(InMemoryDataset, 'save', classmethod(
        lambda cls, data_list, path: interrupted(data_list, path)))
    with pytest.raises(KeyboardInterrupt):
        load_dataset('movielens100k', str(tmp_path), raw_dir=str(ML100K))
    processed = tmp_path / 'movielens100k' / 'processed'
    assert not (processed / 'data.pt').exists()
    assert not [p for p in os.listdir(processed) if '.tmp-' in p]
    monkeypatch.undo()
    split = load_dataset('movielens100k', str(tmp_path), raw_dir=str(ML100K))
    assert split.num_users == 943


def test_truncated_processed_lightgcn_file_is_rebuilt(tmp_path):
    raw = tmp_path / 'gowalla' / 'raw'
    raw.mkdir(parents=True)
    (raw / 'train.txt').write_text('0 0 1\n1 1 2\n2 0 2\n')
    (raw / 'test.txt').write_text('0 2\n1 0\n')
    first = Gowalla(str(tmp_path / 'gowalla'))[0]
    processed = tmp_path / 'gowalla' / 'processed' / 'data.pt'
    processed.write_bytes(processed.read_bytes()[:100])
    with pytest.warns(UserWarning, match='data.pt'):
        again = Gowalla(str(tmp_path / 'gowalla'))[0]
    assert torch.equal(first['user', 'rates', 'item'].edge_index,
                       again['user', 'rates', 'item'].edge_index)


# --------------------------------------------------------------------------
# 2. A small artefact that claims a huge catalogue
# --------------------------------------------------------------------------
def test_filter_artefact_claiming_millions_of_users_is_refused(tmp_path):
    _, _, index = graph()
    path = str(tmp_path / 'gfcf.pt')
    FilterRecommender('gfcf', U, I, index, k=4).save(path)
    load_recommender(path)  # The honest file loads.
    assert os.path.getsize(path) < 10_000
    rewrite(path, lambda s, c: c.update(num_users=10**7))
    with pytest.raises(ArtefactError, match=r"gfcf\.pt.*'num_users' = "
                       r"10000000 is implausible"):
        load_recommender(path)
    rewrite(path, lambda s, c: c.update(num_users=U, num_items=10**7))
    with pytest.raises(ArtefactError, match="'num_items' = 10000000"):
        load_recommender(path)
    rewrite(path, lambda s, c: c.update(num_items=I - 1))  # ids need I
    with pytest.raises(ArtefactError, match='implausible'):
        load_recommender(path)


def test_artefact_item_count_is_checked_against_the_stored_ids(tmp_path):
    path = str(tmp_path / 'emb.pt')
    ItemEmbeddingRecommender(torch.randn(I, D),
                             item_ids=[f'i{j}' for j in range(I)]).save(path)
    rewrite(path, lambda s, c: c.update(item_ids=c['item_ids'][:3]))
    with pytest.raises(ArtefactError, match=f'says {I} items but lists 3'):
        load_recommender(path)


def test_embedding_store_header_claims_are_checked_before_reading(tmp_path):
    from pyg_lightgode.apps.serving import EmbeddingStore, save_embeddings
    path = str(tmp_path / 'emb.npy')
    save_embeddings(path, torch.randn(10, 4))
    header = json.loads(Path(path + '.json').read_text())
    header['shape'] = [10**9, 4]
    Path(path + '.json').write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r'emb\.npy.*\[10, 4\].*header says'):
        EmbeddingStore(path)


# --------------------------------------------------------------------------
# 3. Extreme but finite inputs
# --------------------------------------------------------------------------
def test_extreme_tables_or_time_raise_instead_of_ranking_nan(tmp_path):
    user, item, index = graph()
    path = str(tmp_path / 'lg.pt')
    LightGODERecommender(user, item, index, t=3.0).save(path)
    rewrite(path, lambda s, c: c.update(t=1e30))
    with pytest.raises(NonFiniteScoresError, match='NaN or infinite'):
        load_recommender(path).recommend([1, 2], k=3)
    rewrite(path, lambda s, c: c.update(t=1e38))  # Tables overflow too.
    with pytest.raises(ArtefactError, match=r'lg\.pt.*propagated .* NaN or '
                       r'infinite.*t = 1e\+38'):
        load_recommender(path)
    rec = ItemEmbeddingRecommender(torch.full((I, D), 1e20))
    with pytest.raises(NonFiniteScoresError, match='NaN or infinite'):
        rec.recommend([1, 2], k=3)
    huge = LightGODERecommender(user * 1e19, item * 1e19, index, t=3.0)
    with pytest.raises(NonFiniteScoresError):
        huge.recommend([1, 2], k=3)


def test_filter_forward_rejects_non_finite_rows():
    _, _, index = graph()
    model = GFCF(U, I, k=4).fit(index)
    rows = torch.zeros(3, I)
    rows[1, 2] = float('nan')
    with pytest.raises(ValueError, match=r"'rows' holds NaN.*rows \[1\]"):
        model(rows)
    rows[1, 2] = 1.0
    assert torch.isfinite(model(rows)).all()


# --------------------------------------------------------------------------
# 4. A missing raw file
# --------------------------------------------------------------------------
def test_missing_raw_file_with_raw_dir_names_it_and_never_downloads(
        tmp_path):
    source = tmp_path / 'ml'
    source.mkdir()
    (source / 'u.data').write_text('1\t1\t5\t0\n')
    with pytest.raises(FileNotFoundError, match=r"\['u.item', 'u.user', "
                       r"'u1.base', 'u1.test'\].*--raw-dir.*ml'"):
        load_dataset('movielens100k', str(tmp_path / 'data'),
                     raw_dir=str(source))
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        load_dataset('gowalla', str(tmp_path / 'data'),
                     raw_dir=str(tmp_path / 'nowhere'))


def test_failed_download_names_the_missing_files(tmp_path, monkeypatch):
    import pyg_lightgode.datasets.lightgcn as lightgcn

    def offline(url, folder, *args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name '
                                    'resolution')

    monkeypatch.setattr(lightgcn, 'download_url', offline)
    raw = tmp_path / 'gowalla' / 'raw'
    raw.mkdir(parents=True)
    (raw / 'train.txt').write_text('0 0 1\n')
    with pytest.raises(FileNotFoundError, match=r"Gowalla needs \['test.txt'"
                       r"\] in '.*gowalla/raw'.*URLError.*name resolution"):
        load_dataset('gowalla', str(tmp_path))


# --------------------------------------------------------------------------
# 5. Malformed artefacts and queries
# --------------------------------------------------------------------------
def test_float_edge_index_in_an_artefact_is_not_cast(tmp_path):
    user, item, index = graph()
    path = str(tmp_path / 'lg.pt')
    LightGODERecommender(user, item, index).save(path)

    def to_float(state, config):
        state['tensors']['edge_index'] = \
            state['tensors']['edge_index'].float() + 0.5

    rewrite(path, to_float)
    with pytest.raises(ArtefactError, match=r"tensor 'edge_index' must hold "
                       r"integer node ids \(got torch.float32\)"):
        load_recommender(path)


def test_forty_digit_id_is_named():
    user, item, index = graph()
    rec = LightGODERecommender(user, item, index)
    big = 10**40 + 7
    with pytest.raises(ValueError, match=str(big)):
        rec.recommend([1, big])
    with pytest.raises(ValueError, match=str(-big)):
        rec.recommend([1], exclude=[-big])


def _serve():
    spec = importlib.util.spec_from_file_location(
        'serve_example', ROOT / 'examples' / 'serve.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _serve_run(monkeypatch, capsys, argv, stdin):
    monkeypatch.setattr('sys.stdin', io.StringIO(stdin))
    before = torch.get_num_threads()
    try:
        status = _serve().main(argv)
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr()
    return status, [json.loads(line) for line in out.out.splitlines()], \
        out.err


def test_serve_checks_exclude_at_start_strips_bom_names_big_ids(
        tmp_path, monkeypatch, capsys):
    user, item, index = graph()
    path = str(tmp_path / 'lg.pt')
    rec = LightGODERecommender(user, item, index)
    rec.save(path)
    status, lines, err = _serve_run(monkeypatch, capsys,
                                    [path, '--exclude', '3,999'], '1 2\n')
    assert status == 2 and lines == []  # No query was answered.
    assert '999' in err and 'exclude' in err
    big = '1' * 40
    status, lines, _ = _serve_run(monkeypatch, capsys, [path, '--k', '3'],
                                  f'\ufeff1 2\n{big}\n4\n')
    assert status == 0
    assert lines[0]['items'] == rec.recommend([1, 2], k=3)[0].tolist()
    assert big in lines[1]['error'] and 'outside the catalogue' in \
        lines[1]['error']
    assert len(lines[2]['items']) == 3


def test_serve_answers_non_finite_scores_with_json_and_a_status(
        tmp_path, monkeypatch, capsys):
    path = str(tmp_path / 'emb.pt')
    ItemEmbeddingRecommender(torch.full((I, D), 1e20)).save(path)
    status, lines, err = _serve_run(monkeypatch, capsys, [path], '1 2\n3\n')
    assert status == 3 and len(lines) == 2  # Every line parsed as JSON.
    assert all(line['non_finite'] and 'NaN or infinite' in line['error']
               for line in lines)
    assert 'not finite' in err


# --------------------------------------------------------------------------
# 6. Leftovers of a killed trainer (tests/test_first_hour.py) and
# 7. value checks of the convs only under torch_geometric.debug()
# --------------------------------------------------------------------------
def test_conv_value_checks_are_debug_only():
    import torch_geometric

    from pyg_lightgode.nn.conv import LightGODEConv
    x = torch.randn(4, 2)
    edge_index = torch.tensor([[0, 1], [1, 9]])  # 9: no such node
    conv = LightGODEConv(t=1.0)
    with torch_geometric.debug(), pytest.raises((ValueError, IndexError)):
        conv(x, edge_index)


def test_nothing_left_behind(tmp_path):
    # SafeProcessing removes the tmp files of a dead writer (what a kill
    # during the atomic write leaves) before processing again.
    raw = tmp_path / 'gowalla' / 'raw'
    raw.mkdir(parents=True)
    (raw / 'train.txt').write_text('0 0 1\n1 1 2\n')
    (raw / 'test.txt').write_text('0 2\n')
    processed = tmp_path / 'gowalla' / 'processed'
    processed.mkdir(parents=True)
    stale = processed / 'data.pt.tmp-2147483647'  # no such process
    stale.write_bytes(b'half')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        Gowalla(str(tmp_path / 'gowalla'))
    assert not stale.exists()
    shutil.rmtree(processed)
    assert not osp.exists(processed)
