import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import HELP_PROBE
from pyg_lightgode.apps import cli

ROOT = Path(__file__).resolve().parents[1]

# Each example and the model and dataset its --help must name.
EXAMPLES = {
    'lightgode_gowalla.py': ('LightGODE on Gowalla', 'gowalla'),
    'lightgode_movielens.py': ('LightGODE on MovieLens-100K',
                               'movielens100k'),
    'pinsage_gowalla.py': ('PinSage on Gowalla', 'gowalla'),
    'pinsage_movielens.py': ('PinSage on MovieLens-100K', 'movielens100k'),
}



@pytest.mark.parametrize('script', sorted(EXAMPLES))
def test_help_names_the_dataset_shows_defaults_without_torch(script):
    proc = subprocess.run([sys.executable, '-c', HELP_PROBE,
                           f'examples/{script}'], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    title, dataset = EXAMPLES[script]
    assert result['code'] == 0
    description = result['help'].split('\n\n')[1]  # After the usage.
    assert description.startswith(title)
    text = ' '.join(result['help'].split())
    assert f'(default: {dataset})' in text
    assert '(default: 0.1)' in text  # --val-ratio
    assert not result['torch'], 'torch was imported to print --help'
    assert result['seconds'] < 2.0


def test_help_formatter_shows_unset_defaults_and_hides_flags():
    parser = cli.make_parser('Title.\n\n    indented usage line')
    parser.add_argument('--n', type=int, default=3, help='a number')
    parser.add_argument('--path', default=None, help='a path')
    parser.add_argument('--flag', action='store_true', help='a flag')
    text = parser.format_help()
    assert '    indented usage line' in text  # Kept as written.
    assert 'a number (default: 3)' in text
    assert 'a path (default: none)\n' in text and 'a flag\n' in text


def test_dataset_options():
    # MovieLens and CSV tables: a per-user random split with 10% test;
    # --val-ratio 0.1 is the usual 8:1:1 exactly.
    assert cli.dataset_options('movielens100k', 0.1) == {
        'ratios': (0.8, 0.1, 0.1), 'seed': 2020}
    assert cli.dataset_options('ml-1m', 0.2, seed=1) == {
        'ratios': (0.7, 0.2, 0.1), 'seed': 1}
    assert cli.dataset_options('csv:some/file.csv', 0.0)['ratios'] == \
        (0.9, 0.1)
    # The LightGCN datasets ship their test split: validation comes out of
    # training.
    assert cli.dataset_options('gowalla', 0.3) == {'val_ratio': 0.3,
                                                   'seed': 2020}
    assert cli.dataset_options('amazon-book', 0.95)['val_ratio'] == 0.95
    with pytest.raises(ValueError, match=r'\[0, 0.9\)'):
        cli.dataset_options('movielens100k', 0.9)
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        cli.dataset_options('gowalla', 1.0)


def test_val_ratio_changes_a_random_split(tmp_path):
    table = tmp_path / 'pairs.csv'
    table.write_text('user,item\n' + ''.join(
        f'{u},{i}\n' for u in range(10) for i in range(20)))
    parser = cli.make_parser('A test.')
    cli.add_data_arguments(parser, dataset=f'csv:{table}')
    sizes = {}
    for ratio in ('0', '0.1', '0.3'):
        split = cli.load_split(parser.parse_args(['--val-ratio', ratio]))
        val = 0 if split.val_index is None else split.val_index.size(1)
        sizes[ratio] = (split.train_index.size(1), val,
                        split.test_index.size(1))
    assert sizes == {'0': (180, 0, 20), '0.1': (160, 20, 20),
                     '0.3': (120, 60, 20)}


def test_fill_defaults_sets_only_unset_arguments():
    args = argparse.Namespace(gamma=None, lr=0.5, other=1)
    cli.fill_defaults(args, {'gamma': 5.0, 'lr': 1e-3})
    assert (args.gamma, args.lr, args.other) == (5.0, 0.5, 1)


def test_save_plot_without_anything_to_plot(tmp_path, capsys):
    path = tmp_path / 'empty.png'
    assert not cli.save_plot([{'x': [], 'xlabel': 'x', 'lines': {}}],
                             str(path))
    assert not path.exists() and 'not writing' in capsys.readouterr().out


def test_package_import_is_torch_free_and_subpackages_are_lazy():
    code = ('import sys, pyg_lightgode, pyg_lightgode.apps.cli; '
            'assert "torch" not in sys.modules; '
            'print(pyg_lightgode.__version__); '
            'print(pyg_lightgode.nn.LightGODEConv.__name__)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    version, name = proc.stdout.split()
    assert version.count('.') == 2 and name == 'LightGODEConv'
