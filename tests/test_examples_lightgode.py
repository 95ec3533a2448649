import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import tiny_gowalla

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared' / 'data'
HAS_MATPLOTLIB = importlib.util.find_spec('matplotlib') is not None


def run_example(script, *argv):
    proc = subprocess.run([sys.executable, str(ROOT / 'examples' / script),
                           *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # A user's run shows no torch notices about sparse CSR tensors.
    assert 'Sparse CSR tensor support is in beta' not in proc.stderr
    assert 'Sparse invariant checks' not in proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_lightgode_gowalla_example_on_a_tiny_fixture(tmp_path):
    tiny_gowalla(tmp_path / 'src')
    out_json = tmp_path / 'out.json'
    plot = tmp_path / 'sweep.png'
    stdout = run_example(
        'lightgode_gowalla.py', '--root', str(tmp_path / 'data'),
        '--raw-dir', str(tmp_path / 'src'), '--epochs', '3', '--dim', '8',
        '--batch-size', '16', '--val-ratio', '0.2', '--sweep-t', '0,1,3',
        '--sweep-methods', 'euler,exact', '--layers', '2', '--quiet',
        '--json', str(out_json), '--plot', str(plot), '--checkpoint',
        str(tmp_path / 'ck.pt'))
    assert 'best on validation' in stdout
    report = json.loads(out_json.read_text())
    assert 0 <= report['test']['recall@20'] <= 1
    assert report['best_t'] in (0.0, 1.0, 3.0)
    assert [r.get('t', r.get('layers')) for r in report['sweep']] == \
        [0.0, 1.0, 3.0, 0.0, 1.0, 3.0, 0, 1, 2]
    assert report['best_method'] in ('euler', 'exact')
    # t=0 is the unpropagated model for every solver.
    assert report['sweep'][0]['ndcg@20'] == report['sweep'][3]['ndcg@20']
    # Unset settings come from LIGHTGODE_SETTINGS['gowalla'].
    assert report['args']['gamma'] == 5.0 and report['args']['sparse']
    assert [h['epoch'] for h in report['history']] == [1, 2, 3]
    assert plot.exists() == HAS_MATPLOTLIB
    # Resuming a finished run trains nothing more and reports the same.
    again = run_example(
        'lightgode_gowalla.py', '--root', str(tmp_path / 'data'),
        '--epochs', '3', '--dim', '8', '--batch-size', '16', '--val-ratio',
        '0.2', '--sweep-t', '0,1,3', '--layers', '2', '--quiet',
        '--checkpoint', str(tmp_path / 'ck.pt'))
    line = [x for x in stdout.splitlines() if x.startswith('test (t=')]
    assert line and line[0] in again


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / 'ml-100k' / 'u.data').exists(),
                    reason='../shared/data/ml-100k is not present')
def test_lightgode_movielens_example_one_epoch(tmp_path):
    stdout = run_example(
        'lightgode_movielens.py', '--root', str(tmp_path / 'data'),
        '--raw-dir', str(SHARED / 'ml-100k'), '--epochs', '1',
        '--sweep-t', '1', '--layers', '1', '--quiet', '--val-ratio', '0.2')
    assert "'num_users': 943" in stdout
    assert 'test (t=' in stdout
    # --val-ratio 0.2: a 7:2:1 split instead of 8:1:1.
    stats = {k: int(v) for k, v in re.findall(r"'(num_\w+)': (\d+)", stdout)}
    assert 0.19 < stats['num_val'] / (stats['num_train'] + stats['num_val'] +
                                      stats['num_test']) < 0.21
    assert "LIGHTGODE_SETTINGS['movielens100k']" in stdout
