r"""A new user's first hour (issue 26): --threads and --help of every
script, the per-epoch line, checkpoints by default and resume after a
kill."""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import HELP_PROBE, tiny_gowalla
from pyg_lightgode.apps import cli
from pyg_lightgode.apps.training import Trainer, format_epoch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    [f'examples/{p.name}' for p in (ROOT / 'examples').glob('*.py')] +
    [f'benchmarks/{p.name}' for p in (ROOT / 'benchmarks').glob('*.py')])

# Options without a default.
REQUIRED = {('benchmarks/bench_retrieval.py', '--raw-dir'),
            ('examples/serve.py', 'artefact')}


def option_entries(help_text):
    r"""The help entry of every option: its lines from the one naming it
    to the next option."""
    section = help_text.split('\noptions:\n', 1)[1]
    entries, current = [], None
    for line in section.splitlines():
        if re.match(r'  {1,4}-', line):
            current = [line]
            entries.append(current)
        elif current is not None and line.startswith(' ' * 6):
            current.append(line)
        else:
            current = None  # A group title or a blank line.
    return [(e[0], ' '.join(' '.join(e).split())) for e in entries]


@pytest.mark.parametrize('script', SCRIPTS)
def test_help_answers_without_torch_and_shows_every_default(script):
    proc = subprocess.run([sys.executable, '-c', HELP_PROBE, script],
                          capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result['code'] == 0
    # Loosely "under a second": nothing heavy is imported to print it.
    assert not result['torch'], f'{script} --help imported torch'
    text = result['help']
    assert '--threads' in text
    for first, entry in option_entries(text):
        name = entry.split()[0].rstrip(',')
        takes_value = re.match(r' +-[-\w]+(?:, -[-\w]+)* [A-Z_{]\S*( {2,}|$)',
                               first)
        if name in ('-h', '--child', '--stage') or not takes_value:
            continue  # Flags have no default to show.
        if (script, name) in REQUIRED:
            continue
        assert 'default' in entry, f'{script}: {entry}'
    # The description is the whole docstring, not a first line cut short.
    source = (ROOT / script).read_text()
    doc = source.split('"""', 2)[1].strip().splitlines()
    assert ' '.join(doc[-1].split()) in ' '.join(text.split())


def test_set_threads_and_thread_counts():
    before = torch.get_num_threads()
    try:
        assert cli.set_threads(1) == 1 and torch.get_num_threads() == 1
        assert cli.set_threads(0) == (os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match='--threads'):
        cli.set_threads(-1)
    assert cli.thread_counts('1,2') == [1, 2]
    with pytest.raises(ValueError, match='--threads'):
        cli.thread_counts('1,x')
    parser = cli.make_parser('Title.')
    cli.add_threads_argument(parser)
    assert parser.parse_args([]).threads == cli.DEFAULT_THREADS == 1


def test_checkpoint_path_is_named_after_the_settings(tmp_path):
    parser = cli.make_parser('Title.')
    cli.add_data_arguments(parser, 'gowalla')
    cli.add_output_arguments(parser, checkpoint=cli.AUTO_CHECKPOINT)
    args = parser.parse_args(['--root', str(tmp_path)])
    a = cli.checkpoint_path(args, 'lightgode', {'lr': 0.1, 'dim': 64})
    b = cli.checkpoint_path(args, 'lightgode', {'dim': 64, 'lr': 0.1})
    c = cli.checkpoint_path(args, 'lightgode', {'lr': 0.2, 'dim': 64})
    assert a == b != c
    assert a.startswith(str(tmp_path / 'gowalla' / 'checkpoints'))
    assert cli.checkpoint_path(parser.parse_args(['--no-checkpoint']),
                               'lightgode', {}) is None
    assert cli.checkpoint_path(parser.parse_args(['--checkpoint', 'x.pt']),
                               'lightgode', {}) == 'x.pt'


def _toy(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.1, 0.1])

    def step(_):
        opt.zero_grad()
        loss = model(torch.ones(1, 2)).pow(2).sum()
        loss.backward()
        opt.step()
        return loss.detach()

    return model, opt, step, lambda: next(scores)


def test_epoch_records_and_line_name_metric_best_patience_and_time():
    model, opt, step, validate = _toy()
    records = []
    Trainer(model, [opt], max_epochs=20, patience=3, progress=False,
            log=records.append).fit(lambda e: [0, 1], step, validate)
    assert [r['best_epoch'] for r in records] == [1, 2, 2, 2, 2]
    assert [r['patience_left'] for r in records] == [3, 3, 2, 1, 0]
    assert records[2]['epochs_left_at_most'] == 2
    assert records[0]['epochs_left_at_most'] == 3  # patience, not 19
    assert all(r['eta_seconds'] >= 0 for r in records)
    line = format_epoch(records[2], 'val ndcg@20')
    assert line.startswith('epoch 3: loss ')
    assert 'val ndcg@20 0.2000 (best 0.3000 at epoch 2, patience 2 left)' \
        in line
    assert 's/epoch' in line and 'left (2 epochs)' in line
    # Without validation: no best/patience, still the time left.
    model, opt, step, _ = _toy()
    records = []
    Trainer(model, [opt], max_epochs=3, patience=None, progress=False,
            log=records.append).fit(lambda e: [0], step)
    assert 'best_epoch' not in records[0]
    assert records[0]['epochs_left_at_most'] == 2
    assert 'left (2 epochs)' in format_epoch(records[0])


def test_trainer_removes_stale_tmp_files_of_a_killed_run(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()  # Its pid now names no process (or a later one).
    path = tmp_path / 'ckpt.pt'
    stale = tmp_path / f'ckpt.pt.tmp-{dead.pid}'
    stale.write_bytes(b'half a checkpoint')
    other = tmp_path / f'other.pt.tmp-{dead.pid}'
    other.write_bytes(b'not ours')
    model, opt, step, validate = _toy()
    Trainer(model, [opt], max_epochs=1, patience=None, checkpoint=str(path),
            progress=False).fit(lambda e: [0], step, validate)
    assert path.exists() and not stale.exists()
    assert other.exists()  # Only the checkpoint's own leftovers go.


@pytest.mark.slow
def test_main_job_checkpoints_by_default_and_resumes_after_a_kill(
        tmp_path):
    tiny_gowalla(tmp_path / 'src')
    argv = ['--raw-dir', str(tmp_path / 'src'), '--epochs', '40',
            '--patience', '40', '--dim', '8', '--batch-size', '4',
            '--val-ratio', '0.2', '--sweep-t', '3', '--layers', '0',
            '--quiet']
    script = str(ROOT / 'examples' / 'lightgode_gowalla.py')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    root = tmp_path / 'data'
    proc = subprocess.Popen([sys.executable, script, '--root', str(root),
                             *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=env)
    pattern = str(root / 'gowalla' / 'checkpoints' / 'lightgode-*.pt')
    deadline = time.time() + 120
    while not glob.glob(pattern) and proc.poll() is None and \
            time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, 'finished before the kill'
    checkpoint, = glob.glob(pattern)  # The default: no option needed.
    done = torch.load(checkpoint, weights_only=True)['epoch']
    assert 1 <= done < 40

    resumed = subprocess.run([sys.executable, script, '--root', str(root),
                              '--json', str(tmp_path / 'resumed.json'),
                              *argv], capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resuming it' in resumed.stdout
    epochs = [int(n) for n in re.findall(r'^epoch (\d+):', resumed.stdout,
                                         re.M)]
    assert epochs[0] == done + 1 and epochs[-1] == 40
    assert re.search(r'val ndcg@20 \d\.\d{4} \(best \d\.\d{4} at epoch \d+, '
                     r'patience \d+ left\), [\d.]+ s/epoch, at most .* left',
                     resumed.stdout)
    # The same run uninterrupted, without a checkpoint: the same result.
    whole = subprocess.run([sys.executable, script, '--root',
                            str(tmp_path / 'data2'), '--no-checkpoint',
                            '--json', str(tmp_path / 'whole.json'), *argv],
                           capture_output=True, text=True, cwd=ROOT, env=env,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert not (tmp_path / 'data2' / 'gowalla' / 'checkpoints').exists()
    a = json.loads((tmp_path / 'resumed.json').read_text())
    b = json.loads((tmp_path / 'whole.json').read_text())
    assert a['test'] == b['test'] and a['best_epoch'] == b['best_epoch']
    assert [h['loss'] for h in a['history']] == \
        [h['loss'] for h in b['history']]
    # Again, the dataset now read from its cache instead of processed:
    # bit-identical (processing draws from the global generator, so the
    # seed must come after it).
    cached = subprocess.run([sys.executable, script, '--root',
                             str(tmp_path / 'data2'), '--no-checkpoint',
                             '--json', str(tmp_path / 'cached.json'),
                             *argv], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=300)
    assert cached.returncode == 0, cached.stderr[-3000:]
    c = json.loads((tmp_path / 'cached.json').read_text())
    assert c['test'] == b['test'] and c['history'][-1]['loss'] == \
        b['history'][-1]['loss']


def test_filter_fit_and_evaluation_log_progress_only_when_asked(caplog):
    import logging

    from pyg_lightgode.metrics import RankingEvaluator
    from pyg_lightgode.nn.models import GFCF
    gen = torch.Generator().manual_seed(0)
    index = torch.stack([torch.randint(0, 40, (300, ), generator=gen),
                         torch.randint(0, 30, (300, ), generator=gen)])
    test = torch.stack([torch.arange(40), torch.arange(40) % 30])
    with caplog.at_level(logging.WARNING, logger='pyg_lightgode'):
        model = GFCF(40, 30, k=4).fit(index)
    assert not caplog.records  # Silent by default.
    with caplog.at_level(logging.INFO, logger='pyg_lightgode'):
        model = GFCF(40, 30, k=4).fit(index)
        RankingEvaluator(test, exclude_links=index, ks=(5, ),
                         batch_size=16).evaluate_scorer(model.score, 40, 30)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith('ideal basis (block Krylov, k=4): 5/5 '
                               'blocks (100%)') for line in lines), lines
    assert any(line.startswith('evaluate_scorer: 40/40 users (100%)')
               for line in lines), lines


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT.parent / 'shared' / 'data' / 'ml-100k' /
                         'u.data').exists(),
                    reason='../shared/data/ml-100k is absent')
def test_run_is_bit_identical_whether_the_dataset_was_processed_or_cached(
        tmp_path):
    # The run that processes the dataset and the next one, on the cache,
    # train the same model bit for bit.
    script = str(ROOT / 'examples' / 'lightgode_movielens.py')
    argv = [script, '--root', str(tmp_path / 'data'), '--raw-dir',
            str(ROOT.parent / 'shared' / 'data' / 'ml-100k'), '--epochs',
            '1', '--sweep-t', '3', '--layers', '0', '--quiet',
            '--no-checkpoint', '--threads', '1']
    reports = []
    processed = tmp_path / 'data' / 'movielens100k' / 'processed' / 'data.pt'
    for run in ('processed', 'cached'):
        assert processed.exists() == (run == 'cached')
        out = tmp_path / f'{run}.json'
        proc = subprocess.run([sys.executable, *argv, '--json', str(out)],
                              capture_output=True, text=True, cwd=ROOT,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        reports.append(json.loads(out.read_text()))
    a, b = reports
    assert a['history'][0]['loss'] == b['history'][0]['loss']
    assert a['test'] == b['test']


def test_fold_in_benchmark_models_depend_on_the_seed_alone():
    # benchmarks/fold_in.py built its models from torch's global generator
    # unseeded, and torch seeds it differently in every process: its
    # retrain figures changed from run to run (0.3485, 0.3463).
    import argparse
    import importlib.util

    from helpers import clustered_split
    spec = importlib.util.spec_from_file_location(
        'fold_in_bench', ROOT / 'benchmarks' / 'fold_in.py')
    fold_in = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fold_in)
    split = clustered_split()
    split.val_index = split.test_index
    args = argparse.Namespace(dataset='movielens100k', epochs=2,
                              patience=10, seed=0, quiet=True)
    tables = []
    for state in (1, 2):
        torch.manual_seed(state)  # Another process, another start state.
        user, item, _ = fold_in.train(args, split, 'test')
        tables.append(torch.cat([user, item]))
    assert torch.equal(*tables)
