import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
    models = json.loads(out.read_text())['models']
    assert list(models) == ['lightgode', 'mf-bpr', 'lightgcn-2', 'lightgcn-3',
                            'pinsage', 'gfcf', 'bspm', 'chebycf', 'turbocf',
                            'userknn', 'itemknn', 'hybrid']
    for name, row in models.items():
        assert 0 < row['test']['recall@20'] <= 1, name
        assert 0 < row['test']['ndcg@20'] <= 1, name
        assert row['peak_mib'] > 0 and row['seconds'], name
    for name in ('lightgode', 'mf-bpr', 'pinsage'):
        assert models[name]['epochs_run'] == 1
    for name in ('gfcf', 'bspm', 'chebycf', 'turbocf', 'userknn',
                 'itemknn'):
        assert set(models[name]['seconds']) == {'fit', 'score_and_rank'}
    hybrid = models['hybrid']
    assert hybrid['weights']['lightgode'] == 1.0 and hybrid['validation']
    assert 'select_val' in hybrid['seconds']
    rows = list(models.values())
    study = [s for r in rows for s in r.get('study', [])]
    trained = {s['trained'] for s in study}
    assert {'MF (align+uniform)', 'MF-BPR', 'LightGCN-2'} <= trained
    layers = [s['layers'] for s in study
              if s['trained'] == 'MF-BPR' and 'layers' in s]
    assert layers == list(range(11))
    table = md.read_text()
    assert 'Command: `python benchmarks/run.py' in table
    assert '| lightgode |' in table and '| pinsage |' in table
    assert '| gfcf |' in table and '| hybrid (t ' in table


FIXTURE = ROOT / 'tests' / 'fixtures' / 'yelp2018_tiny'


@pytest.mark.slow
def test_benchmark_runner_filters_on_yelp2018_fixture(tmp_path):
    r"""``run.py --dataset yelp2018`` with the filters, LightGODE and the
    hybrid on the tiny fixture in the real LightGCN format; the filters'
    spectral rank is capped by the stated rule (k <= min(U, I) / 4)."""
    out = tmp_path / 'rows.json'
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--dataset',
        'yelp2018', '--root', str(tmp_path / 'data'), '--raw-dir',
        str(FIXTURE), '--mode', 'quick', '--epochs', '1', '--models',
        'gfcf,bspm,chebycf,turbocf,lightgode,hybrid', '--cache',
        str(tmp_path / 'cache'), '--json', str(out)
    ], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['dataset'] == 'yelp2018'
    models = result['models']
    assert set(models) == {'gfcf', 'bspm', 'chebycf', 'turbocf', 'lightgode',
                           'hybrid'}
    assert models['gfcf']['settings']['k'] == 1  # min(6, 9) // 4
    assert models['chebycf']['settings']['k'] == 1
    assert models['turbocf']['settings'] == dict(alpha=0.6, power=1.0,
                                                 filter=2)
    for row in models.values():
        assert 0 <= row['test']['ndcg@20'] <= 1
    # The hybrid reused the lightgode row's tables from the cache:
    training = models['hybrid']['lightgode_training']
    assert training == {key: models['lightgode'][key] for key in training}


@pytest.mark.slow
def test_benchmark_runner_refit_on_train_and_validation(tmp_path):
    r"""``--refit``: LightGODE selects its epoch count on validation, is
    retrained on training + validation for exactly that many epochs
    (cached under its own key), and the hybrid's test stage uses those
    tables."""
    out = tmp_path / 'rows.json'
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--dataset',
        'yelp2018', '--root', str(tmp_path / 'data'), '--raw-dir',
        str(FIXTURE), '--mode', 'full', '--epochs', '3', '--patience', '1',
        '--models', 'lightgode,hybrid', '--refit', '--hybrid-parts', 'gfcf',
        '--hybrid-t', '1,3', '--hybrid-popularity', '0,-0.1',
        '--hybrid-seeds', '7', '--hybrid-weights',
        'gfcf=0,0.5;lightgode-s7-d16=0,0.5',
        '--hybrid-runs', '7:16', '--hybrid-candidates',
        '{"gfcf": [{"alpha": 0.0}, {"alpha": 0.3}]}',
        '--cache', str(tmp_path / 'cache'), '--json', str(out)
    ], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = json.loads(out.read_text())['models']
    info = models['lightgode']
    refit = info['refit']
    assert 1 <= info['best_epoch'] <= info['epochs_run'] <= 3
    assert refit['epochs_run'] == refit['best_epoch'] == info['best_epoch']
    hybrid = models['hybrid']
    training = hybrid['lightgode_training']
    assert training['refit'] == refit
    # The ensemble: the lightgode row's run (seed 2020) and one with seed 7,
    # each selected and refitted, cached under its own keys.
    assert training['seeds'] == [2020, 7]
    assert [run['refit']['epochs_run'] for run in training['runs']] == [
        run['best_epoch'] for run in training['runs']]
    # --hybrid-runs: seed 7 with d = 16, selected and refitted too, fused
    # as its own part with weight and t chosen on validation.
    extra = training['extra_runs']['lightgode-s7-d16']
    assert extra['refit']['epochs_run'] == extra['best_epoch']
    assert hybrid['weights']['lightgode-s7-d16'] in (0.0, 0.5)
    assert hybrid['extra_t'] == {'lightgode-s7-d16': hybrid['extra_t'][
        'lightgode-s7-d16']} and hybrid['extra_t'][
            'lightgode-s7-d16'] in (1.0, 3.0)
    dims = sorted(torch.load(path, weights_only=True)['user'].size(1)
                  for path in (tmp_path / 'cache').iterdir())
    assert dims == [16, 16, 64, 64, 64, 64]
    # The ODE time and the popularity weight were chosen on validation
    # among the candidates, and every candidate was evaluated.
    assert hybrid['t'] in (1.0, 3.0)
    assert hybrid['weights']['popularity'] in (0.0, -0.1)
    assert hybrid['weights']['gfcf'] in (0.0, 0.5)
    assert hybrid['filter_settings']['gfcf'] in ({'alpha': 0.0},
                                                 {'alpha': 0.3})
    tried = {(name, row['weights'][name]) for row in hybrid['validation']
             for name in row['weights']}
    assert {('lightgode@1', 1.0), ('lightgode@3', 1.0), ('popularity', 0.0),
            ('popularity', -0.1)} <= tried


@pytest.mark.slow
def test_benchmark_runner_reports_a_failed_model_and_goes_on(tmp_path):
    r"""A model whose run raises is reported (row, stderr, exit status 1)
    with the error named, and the other models still run."""
    out = tmp_path / 'rows.json'
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--dataset',
        'yelp2018', '--root', str(tmp_path / 'data'), '--raw-dir',
        str(FIXTURE), '--mode', 'quick', '--epochs', '1', '--models',
        'lightgode,itemknn', '--dim', '0', '--json', str(out)
    ], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 1
    assert 'lightgode: FAILED' in proc.stderr
    models = json.loads(out.read_text())['models']
    assert 'embedding_dim' in models['lightgode']['error']
    assert 0 <= models['itemknn']['test']['ndcg@20'] <= 1
