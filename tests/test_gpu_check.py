r"""``benchmarks/gpu_check.py`` runs end to end with ``--device cpu`` on a
tiny input (the first 200 Gowalla users, or a synthetic graph), so the
script a lent GPU runs is known to work before the device is there."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOWALLA = ROOT.parent / 'shared' / 'data' / 'gowalla'
CASES = ['LightGODEConv euler', 'LightGODEConv exact', 'LightGODEConv rk4',
         'PinSAGEConv', 'LightGODE.get_embedding',
         'PinSage forward+inference', 'GFCF fit+score', 'BSPM fit+score',
         'ChebyCF fit+score', 'TurboCF fit+score', 'UserKNN fit+score',
         'ItemKNN fit+score']


def run_check(tmp_path, *args):
    out = tmp_path / 'out.json'
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'gpu_check.py'),
        '--device', 'cpu', '--quick', '--cpu-users', '100', '--threads',
        '1', '--json', str(out), *args
    ], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '| check | max abs diff |' in proc.stdout
    return json.loads(out.read_text())


def check_result(result):
    assert [row['name'] for row in result['equality']] == CASES
    assert result['all_equal'], result['equality']
    for row in result['equality']:
        assert row['max_abs_diff'] == 0.0, row  # CPU against itself
    assert len(result['timings']) == 5
    for row in result['timings']:
        assert 'device_error' not in row and 'cpu_error' not in row, row
        assert row['device_s'] >= 0 and row['cpu_s'] >= 0, row
    extrapolated = [row for row in result['timings']
                    if row.get('cpu_extrapolated')]
    assert extrapolated and all(row['cpu_users'] == 100
                                for row in extrapolated)


@pytest.mark.slow
@pytest.mark.skipif(not (GOWALLA / 'train.txt').exists(),
                    reason='../shared/data/gowalla is not present')
def test_gpu_check_on_cpu_with_gowalla_users(tmp_path):
    result = run_check(tmp_path, '--raw-dir', str(GOWALLA), '--root',
                       str(tmp_path / 'data'), '--max-users', '200')
    assert result['data'].startswith('gowalla, first 200 users')
    check_result(result)


@pytest.mark.slow
def test_gpu_check_on_cpu_synthetic(tmp_path):
    result = run_check(tmp_path, '--synthetic')
    assert result['data'].startswith('synthetic')
    check_result(result)


def test_gpu_check_requires_data():
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'gpu_check.py'),
        '--device', 'cpu'
    ], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and '--raw-dir' in proc.stderr
