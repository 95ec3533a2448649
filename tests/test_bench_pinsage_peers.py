import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks' / 'bench_pinsage_peers.py'


def test_help_answers_without_torch():
    proc = subprocess.run(
        [sys.executable, '-c', 'import sys, runpy; sys.argv = ["x", '
         '"--help"]\ntry:\n    runpy.run_path(%r, run_name="__main__")\n'
         'except SystemExit:\n    pass\nassert "torch" not in sys.modules' %
         str(SCRIPT)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '--max-minutes' in proc.stdout


def tiny_table(tmp_path):
    r"""Users of cluster c engage items of cluster c."""
    rows = ['user,item']
    for u in range(40):
        rows += [f'{u},{(u // 10) * 8 + i}' for i in range(8) if
                 (u + i) % 4 != 0]
    table = tmp_path / 'tiny.csv'
    table.write_text('\n'.join(rows) + '\n')
    return table


@pytest.mark.slow
def test_every_model_trains_on_a_tiny_table(tmp_path):
    r"""Every model of the peers benchmark trains one epoch on a tiny
    clustered table and reports its row (in this process, as the
    benchmark's per-model child does)."""
    spec = importlib.util.spec_from_file_location('bench_peers', SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = tiny_table(tmp_path)
    for name in bench.MODELS:
        out = tmp_path / f'{name}.json'
        bench.main(['--dataset', f'csv:{table}', '--root',
                    str(tmp_path / 'data'), '--epochs', '1', '--single',
                    name, '--out', str(out)])
        row = json.loads(out.read_text())
        assert row['model'] == name
        assert 0 <= row['recall@20'] <= 1 and 0 <= row['ndcg@20'] <= 1
        assert row['epochs_run'] == 1 and row['best_epoch'] == 1, name
        assert row['seconds_per_epoch'] > 0 and row['peak_mib'] > 0, name
        if name == 'pinsage-i2i':
            assert 'hit_rate@10' in row['item_to_item']
    # The cluster structure is learnt in one epoch by user-item PinSage.
    assert json.loads((tmp_path / 'pinsage.json').read_text())[
        'recall@20'] > 0.5


@pytest.mark.slow
def test_report_of_a_run(tmp_path):
    out = tmp_path / 'peers.json'
    proc = subprocess.run([
        sys.executable, str(SCRIPT), '--dataset',
        f'csv:{tiny_table(tmp_path)}', '--root', str(tmp_path / 'data'),
        '--epochs', '1', '--models', 'mf-bpr', '--json', str(out)
    ], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert list(report['models']) == ['mf-bpr']
    assert report['models']['mf-bpr']['epochs_run'] == 1
    assert report['command'].startswith(
        'python benchmarks/bench_pinsage_peers.py --dataset csv:')
