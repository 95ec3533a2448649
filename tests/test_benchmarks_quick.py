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
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--dataset',
        'movielens100k', '--root', str(tmp_path / 'data'), '--raw-dir',
        str(ML100K), '--mode', 'quick', '--epochs', '1', '--study',
        '--json', str(out)
    ], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = json.loads(out.read_text())['models']
    assert list(models) == ['lightgode', 'mf-bpr', 'lightgcn-2', 'lightgcn-3',
                            'pinsage', 'gfcf', 'bspm', 'chebycf', 'turbocf',
                            'ease', 'rp3beta', 'userknn', 'itemknn',
                            'hybrid']
    for name, row in models.items():
        assert 0 < row['test']['recall@20'] <= 1, name
        assert 0 < row['test']['ndcg@20'] <= 1, name
        assert row['peak_mib'] > 0 and row['seconds'], name
    for name in ('lightgode', 'mf-bpr', 'pinsage'):
        assert models[name]['epochs_run'] == 1
    for name in ('gfcf', 'bspm', 'chebycf', 'turbocf', 'ease', 'rp3beta',
                 'userknn', 'itemknn'):
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
    table = proc.stdout
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
    config = tmp_path / 'refit.json'
    config.write_text(json.dumps({
        'dataset': 'yelp2018', 'mode': 'full', 'epochs': 3, 'patience': 1,
        'models': ['lightgode', 'hybrid'], 'lightgode': {'refit': True},
        'hybrid': {'parts': ['gfcf'], 't': [1, 3], 'popularity': [0, -0.1],
                   'ensemble_seeds': [7], 'runs': [{'seed': 7, 'dim': 16}],
                   'weights': {'gfcf': [0, 0.5],
                               'lightgode-s7-d16': [0, 0.5]},
                   'candidates': {'gfcf': [{'alpha': 0.0},
                                           {'alpha': 0.3}]}}}))
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--config',
        str(config), '--root', str(tmp_path / 'data'), '--raw-dir',
        str(FIXTURE), '--cache', str(tmp_path / 'cache'), '--json', str(out)
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
    config = tmp_path / 'bad_k.json'
    config.write_text(json.dumps({'dataset': 'yelp2018',
                                  'models': ['gfcf', 'itemknn'],
                                  'filters': {'gfcf': {'k': -1}}}))
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'run.py'), '--config',
        str(config), '--root', str(tmp_path / 'data'), '--raw-dir',
        str(FIXTURE), '--json', str(out)
    ], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 1
    assert 'gfcf: FAILED' in proc.stderr
    models = json.loads(out.read_text())['models']
    assert "'k'" in models['gfcf']['error']
    assert 0 <= models['itemknn']['test']['ndcg@20'] <= 1


BAD_CONFIGS = [
    ({'dataset': 'gowalla', 'hybird': {}}, "'hybird' is not a known key"),
    ({'dataset': 'gowalla', 'hybrid': {'parts': ['bspm'],
                                       'weights': {'bspm': [1],
                                                   'gfcf': [1]}}},
     "'hybrid.weights.gfcf' is not a known key"),
    ({'dataset': 'gowalla', 'hybrid': {'parts': ['bspm', 'gfcf'],
                                       'weights': {'bspm': [1]}}},
     "no candidate weights for the fused part 'gfcf'"),
    ({'dataset': 'gowalla', 'hybrid': {'parts': ['bspm'],
                                       'weights': {'bspm': [0.5, 'NAN']}}},
     "'hybrid.weights.bspm[1]' must be a finite number"),
    ({'dataset': 'gowalla', 'models': ['lightgode', 'sage']},
     "'models' names 'sage'"),
    ({'dataset': 'gowala'}, "'dataset' must be one of"),
    ({'dataset': 'gowalla', 'lightgode': {'dim': 0}},
     "'lightgode.dim' must be an integer >= 1"),
    ({'dataset': 'gowalla', 'hybrid': {'runs': [{'dim': 8}]}},
     "'hybrid.runs[0].seed' is missing"),
    ({'dataset': 'gowalla', 'tune': {'models': ['gfcf']}},
     "'tune.budget' is missing"),
    ({'dataset': 'gowalla', 'tune': {'budget': 10, 'models': ['lightgode']}},
     "'tune.models' names 'lightgode'"),
    ({'dataset': 'gowalla', 'tune': {'budget': 10, 'models': ['gfcf'],
                                     'space': {'bspm': {'beta': [0.1]}}}},
     "'tune.space.bspm' is not a known key"),
]


@pytest.mark.parametrize('config, message', BAD_CONFIGS)
def test_bad_experiment_file_names_the_key_and_the_file(tmp_path, config,
                                                        message):
    from pyg_lightgode.apps.configs import ConfigError, load_config
    path = tmp_path / 'experiment.json'
    path.write_text(json.dumps(config).replace('"NAN"', 'NaN'))
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(path) in str(info.value) and message in str(info.value)


def test_bad_experiment_file_stops_run_py_before_training(tmp_path):
    path = tmp_path / 'experiment.json'
    path.write_text('{"dataset": "gowalla", "hybrid": {"parts": ["bspm"], '
                    '"weights": {"bspm": [NaN]}}}')
    proc = subprocess.run([sys.executable, str(ROOT / 'benchmarks' /
                                               'run.py'),
                           '--config', str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert str(path) in proc.stderr
    assert "'hybrid.weights.bspm[0]' must be a finite" in proc.stderr
    assert 'plan:' not in proc.stderr  # Nothing started.


def test_run_py_help_and_plan_do_not_import_torch():
    code = ('import runpy, sys; sys.argv = ["run.py", "--config", '
            '"configs/gowalla_hybrid.json", "--dry-run"]\n'
            'try:\n    runpy.run_path("benchmarks/run.py", '
            'run_name="__main__")\nexcept SystemExit:\n    pass\n'
            'print("TORCH" if "torch" in sys.modules else "NO TORCH")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.stdout.strip().endswith('NO TORCH'), proc.stderr
    assert 'plan: lightgode, hybrid on gowalla' in proc.stderr


def test_tune_flag_sets_the_budget_over_the_config(tmp_path):
    path = tmp_path / 'experiment.json'
    path.write_text('{"dataset": "movielens100k", "models": ["gfcf"], '
                    '"tune": {"budget": 5, "space": {"gfcf": '
                    '{"alpha": [0.1]}}}}')
    proc = subprocess.run([sys.executable, str(ROOT / 'benchmarks' /
                                               'run.py'),
                           '--config', str(path), '--tune', '30',
                           '--dry-run'], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    tune = json.loads(proc.stdout)['tune']
    assert tune['budget'] == 30 and tune['space'] == {'gfcf': {'alpha':
                                                               [0.1]}}


def test_bare_long_run_is_refused_with_its_estimate():
    proc = subprocess.run([sys.executable, str(ROOT / 'benchmarks' /
                                               'run.py'),
                           '--dataset', 'gowalla'], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert 'runs every model on gowalla: about' in proc.stderr


@pytest.mark.parametrize('path', sorted((ROOT / 'configs').glob('*.json')),
                         ids=lambda path: path.name)
def test_every_shipped_config_is_valid(path):
    from pyg_lightgode.apps.configs import load_config
    config = load_config(str(path))
    assert config.get('description'), path
