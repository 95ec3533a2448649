import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'


@pytest.mark.slow
@pytest.mark.skipif(not (ML100K / 'u.data').exists(),
                    reason='../shared/data/ml-100k is not present')
def test_benchmark_runner_quick_mode(tmp_path):
    r"""The CI smoke run of ``benchmarks/run.py``: every model trains one
    epoch on MovieLens-100K through the same split; no timing assertion."""
    out = tmp_path / 'rows.json'
    md = tmp_path / 'bench.md'
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--dataset',
        'movielens100k', '--root', str(tmp_path / 'data'), '--raw-dir',
        str(ML100K), '--mode', 'quick', '--epochs', '1', '--study',
        '--json', str(out), '--append', str(md)
    ], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r['model'] for r in rows] == [
        'lightgode', 'mf-bpr', 'lightgcn-2', 'lightgcn-3', 'pinsage']
    for row in rows:
        assert 0 < row['recall@20'] <= 1 and 0 < row['ndcg@20'] <= 1
        assert row['epochs_run'] == 1 and row['peak_mib'] > 0
    study = [s for r in rows for s in r['study']]
    trained = {s['trained'] for s in study}
    assert {'MF (align+uniform)', 'MF-BPR', 'LightGCN-2'} <= trained
    layers = [s['layers'] for s in study
              if s['trained'] == 'MF-BPR' and 'layers' in s]
    assert layers == list(range(11))
    table = md.read_text()
    assert 'Command: `python benchmarks/run.py' in table
    assert '| lightgode |' in table and '| pinsage |' in table
