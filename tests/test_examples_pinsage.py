import importlib.util
import json
import sys
from pathlib import Path

import pytest

import pyg_lightgode.datasets.lightgcn as lightgcn_module

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'
sys.path.insert(0, str(EXAMPLES))

import pinsage_gowalla  # noqa: E402
import pinsage_movielens  # noqa: E402

NUM_USERS, NUM_ITEMS, ITEMS_PER_USER = 16, 12, 7
HAS_MATPLOTLIB = importlib.util.find_spec('matplotlib') is not None


def user_items(user):
    r"""Two clusters of users and items; every user engages 7 items, 5 of
    its own cluster."""
    half = NUM_ITEMS // 2
    own = [(user % 2) * half + (user + k) % half for k in range(5)]
    other = [(1 - user % 2) * half + (user + k) % half for k in range(2)]
    return own + other


def write(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def small_args(tmp_path, raw):
    return ['--root', str(tmp_path / 'data'), '--raw-dir', str(raw),
            '--epochs', '2', '--batch-size', '32', '--dim', '8',
            '--neighbors', '3', '--walks', '4', '--num-negatives', '10',
            '--pairs-per-epoch', '64', '--quiet', '--json',
            str(tmp_path / 'out.json')]


def check_report(report, tmp_path, num_items):
    assert report['epochs_run'] == 2 and len(report['history']) == 2
    for key in ('recall@20', 'ndcg@20'):
        assert 0.0 <= report['test'][key] <= 1.0
    i2i = report['item_to_item']
    assert i2i['num_pairs'] > 0
    assert 0.0 <= i2i['hit_rate@10'] <= i2i['hit_rate@100'] <= 1.0
    # Fewer than 100 items: every target is within the first 100 ranks.
    assert i2i['hit_rate@100'] == 1.0 and i2i['scaled_mrr'] == 1.0
    assert json.loads((tmp_path / 'out.json').read_text())['test'] == \
        report['test']


@pytest.mark.slow
def test_pinsage_movielens_example(tmp_path, capsys):
    genres = '|0' * 19
    data = ''.join(f'{u + 1}\t{i + 1}\t{4 + (u + i) % 2}\t{1000 + 7 * u + i}\n'
                   for u in range(NUM_USERS) for i in user_items(u))
    raw = tmp_path / 'raw'
    write(raw, {
        'u.item': ''.join(f'{i + 1}|Movie {i + 1}|01-Jan-{1980 + i}||http://x'
                          f'{genres}\n' for i in range(NUM_ITEMS)),
        'u.user': ''.join(f'{u + 1}|{20 + u}|{"MF"[u % 2]}|other|{u}\n'
                          for u in range(NUM_USERS)),
        'u.data': data, 'u1.base': data, 'u1.test': data.split('\n')[0] +
        '\n',
    })
    report = pinsage_movielens.main(argv=small_args(tmp_path, raw) + [
        '--aggr', 'mean', '--checkpoint', str(tmp_path / 'ckpt.pt')])
    check_report(report, tmp_path, NUM_ITEMS)
    assert report['args']['input'] == 'both'
    assert (tmp_path / 'ckpt.pt').exists()
    assert 'item-to-item' in capsys.readouterr().out
    # Resuming the finished run trains no further epoch, same results.
    again = pinsage_movielens.main(argv=small_args(tmp_path, raw) + [
        '--aggr', 'mean', '--checkpoint', str(tmp_path / 'ckpt.pt')])
    assert again['test'] == report['test']
    ablation = pinsage_movielens.main(argv=small_args(tmp_path, raw) + [
        '--no-hard-negatives', '--input', 'features', '--aggr', 'max'])
    check_report(ablation, tmp_path, NUM_ITEMS)


@pytest.mark.slow
def test_pinsage_gowalla_example(tmp_path, monkeypatch):
    def no_download(url, *args, **kwargs):
        raise AssertionError(f'unexpected download of {url}')

    monkeypatch.setattr(lightgcn_module, 'download_url', no_download)
    train = test = ''
    for u in range(NUM_USERS):
        items = user_items(u)
        train += ' '.join(map(str, [u] + items[:-1])) + '\n'
        test += f'{u} {items[-1]}\n'
    raw = tmp_path / 'raw'
    write(raw, {'train.txt': train, 'test.txt': test})
    report = pinsage_movielens.main(
        pinsage_gowalla.GOWALLA,
        small_args(tmp_path, raw) + ['--val-ratio', '0.2',
                                     '--num-workers', '1', '--plot',
                                     str(tmp_path / 'curve.png')])
    check_report(report, tmp_path, NUM_ITEMS)
    assert report['args']['input'] == 'ids'
    assert (tmp_path / 'curve.png').exists() == HAS_MATPLOTLIB
    with pytest.raises(ValueError, match='item features'):
        pinsage_movielens.main(pinsage_gowalla.GOWALLA,
                               small_args(tmp_path, raw) +
                               ['--input', 'features'])
