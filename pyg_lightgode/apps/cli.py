r"""The command-line layer shared by the examples: argument parsers whose
``--help`` lists every default, dataset loading from the parsed arguments,
and optional plots.

Only the standard library is imported at the top of this module; torch, the
datasets and matplotlib are imported by the functions that need them, so a
script's ``--help`` answers without loading torch.

Example:
    >>> parser = make_parser(__doc__)
    >>> add_data_arguments(parser, dataset='movielens100k')
    >>> args = parser.parse_args(['--val-ratio', '0.2'])
    >>> split = load_split(args)  # MovieLens-100K, 7:2:1 per user
"""
import argparse
import hashlib
import json
import os
import sys
from typing import Any, Dict, Mapping, Optional, Sequence

#: Share of every user's interactions that the random splits (MovieLens, CSV
#: tables) keep for test: MovieLens's usual 8:1:1 is
#: :obj:`--val-ratio 0.1`. The LightGCN datasets (Gowalla, ...) ship their
#: own test split, and their validation part is cut from training.
TEST_RATIO = 0.1
DATASET_HELP = ('a name load_dataset knows (gowalla, movielens100k, '
                'movielens1m, amazon-book, ...) or csv:<path> for an own '
                'user,item[,rating,time] table')


def randomly_split(dataset: str) -> bool:
    r"""Whether :func:`~pyg_lightgode.datasets.load_dataset` splits
    :obj:`dataset` itself (MovieLens, CSV tables) rather than reading a
    shipped train/test split (the LightGCN datasets)."""
    key = dataset.lower().replace('_', '').replace('-', '')
    return key.startswith(('csv:', 'movielens', 'ml'))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    r"""Keeps the script's docstring as written and appends every
    argument's default to its help, except for flags and required
    arguments: a :obj:`None` default shows as :obj:`(default: none)`
    unless the help text already says what it means (names a
    default)."""
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ''
        if action.nargs == 0 or action.required or \
                action.default is argparse.SUPPRESS:
            return text
        if action.default is None:
            return text if 'default' in text else f'{text} (default: none)'
        return super()._get_help_string(action)


def make_parser(doc: str) -> argparse.ArgumentParser:
    r"""An :class:`argparse.ArgumentParser` that shows :obj:`doc` (a
    script's docstring) as written and every argument's default."""
    return argparse.ArgumentParser(description=doc.strip(),
                                   formatter_class=HelpFormatter)


def add_data_arguments(parser: argparse.ArgumentParser, dataset: str,
                       val_ratio: float = 0.1, root: str = 'data',
                       seed: int = 2020) -> argparse._ArgumentGroup:
    r"""Adds :obj:`--dataset`, :obj:`--root`, :obj:`--raw-dir`,
    :obj:`--val-ratio` and :obj:`--seed`, the arguments
    :func:`load_split` reads."""
    group = parser.add_argument_group('data')
    add = group.add_argument
    add('--dataset', default=dataset, help=DATASET_HELP)
    add_file_arguments(group, root)
    add('--val-ratio', type=float, default=val_ratio,
        help='share of every user\'s interactions held out for validation '
        f'(early stopping): beside the {TEST_RATIO:g} test share for '
        'MovieLens and CSV tables; of the training part for the LightGCN '
        'datasets (gowalla, ...), which ship their test split. 0: no '
        'validation (early stopping then watches test)')
    add('--seed', type=int, default=seed,
        help='seed of the split, the initialisation and the batches')
    return group


#: :obj:`--checkpoint auto`: a file named after the run's settings in
#: :obj:`<root>/<dataset>/checkpoints` (see :func:`checkpoint_path`).
AUTO_CHECKPOINT = 'auto'


def add_file_arguments(parser, root: str = 'data',
                       raw_dir_help: str = 'folder with already-downloaded '
                       'raw files (default: download what <root>/<dataset>/'
                       'raw lacks); they are linked into <root>/<dataset>/'
                       'raw', required: bool = False) -> None:
    r"""Adds :obj:`--root` (the datasets folder) and :obj:`--raw-dir`
    (already-downloaded files) to :obj:`parser` (a parser or a group)."""
    parser.add_argument(
        '--root', default=root,
        help='datasets folder: each dataset lives in <root>/<dataset>/raw '
        '(its files) and <root>/<dataset>/processed')
    parser.add_argument('--raw-dir', default=None, required=required,
                        help=raw_dir_help)


def add_output_arguments(parser: argparse.ArgumentParser,
                         plot_help: str = 'save a PNG of the run '
                         '(needs matplotlib)',
                         quiet_help: str = 'no progress bars',
                         checkpoint: Optional[str] = None,
                         ) -> argparse._ArgumentGroup:
    r"""Adds :obj:`--checkpoint` (default :obj:`checkpoint`; with
    :obj:`'auto'` also :obj:`--no-checkpoint`), :obj:`--json`,
    :obj:`--plot` and :obj:`--quiet`."""
    group = parser.add_argument_group('output')
    add = group.add_argument
    if checkpoint == AUTO_CHECKPOINT:
        add('--checkpoint', default=AUTO_CHECKPOINT,
            help="checkpoint file written after every epoch and resumed "
            "when it exists; 'auto': <root>/<dataset>/checkpoints/<a name "
            "made of the training settings>.pt, so that rerunning the same "
            "command after an interruption resumes it")
        add('--no-checkpoint', dest='checkpoint', action='store_const',
            const=None, help='write no checkpoint (and resume none)')
    else:
        add('--checkpoint', default=checkpoint,
            help='checkpoint file written after every epoch; an existing '
            'one is resumed')
    add('--json', default=None, help='write the results to this JSON file')
    add('--plot', default=None, help=plot_help)
    add('--quiet', action='store_true', help=quiet_help)
    return group


#: The default of :obj:`--threads`: one torch thread. On a 2-core machine
#: shared with other jobs, an epoch of LightGODE on MovieLens-100K took
#: THREADS_EVIDENCE (see :func:`add_threads_argument`).
DEFAULT_THREADS = 1
THREADS_HELP = ('torch (OpenMP) threads; 0: one per core. More threads '
                'help only on idle cores: when other jobs share them, '
                'OpenMP threads spin while waiting for each other and a '
                'run slows down many times')


def add_threads_argument(parser: argparse.ArgumentParser,
                         default: Any = DEFAULT_THREADS,
                         several: bool = False) -> argparse.Action:
    r"""Adds :obj:`--threads` (default :data:`DEFAULT_THREADS`, one torch
    thread), which :func:`set_threads` applies. One thread is the default
    because more collapse when the cores are shared (measured in the
    README: LightGODE on MovieLens-100K, 2 cores, other jobs running).
    With :obj:`several`, a comma-separated list of thread counts that a
    benchmark measures in turn (:func:`thread_counts` parses it)."""
    if several:
        return parser.add_argument(
            '--threads', default=str(default),
            help='comma-separated torch thread counts, each measured in '
            'turn (timings at more threads than idle cores mislead: '
            'OpenMP threads spin while waiting for each other)')
    return parser.add_argument('--threads', type=int, default=default,
                               help=THREADS_HELP)


def thread_counts(value: str) -> list:
    r"""The thread counts of a :obj:`--threads 1,2` list."""
    try:
        counts = [int(t) for t in str(value).split(',') if t.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise ValueError(f"'--threads' must be comma-separated positive "
                         f"integers (got {value!r})")
    return counts


def set_threads(threads: Optional[int]) -> int:
    r"""Applies :obj:`--threads`: :obj:`OMP_NUM_THREADS` and
    :obj:`MKL_NUM_THREADS` where torch is not imported yet (so that every
    OpenMP pool starts with that size) and
    :func:`torch.set_num_threads`. :obj:`0` or :obj:`None` means one thread
    per core (:func:`os.cpu_count`). Returns the thread count."""
    if threads is not None and threads < 0:
        raise ValueError(f"'--threads' must be >= 0 (got {threads})")
    count = threads or os.cpu_count() or 1
    if 'torch' not in sys.modules:
        for name in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
            os.environ[name] = str(count)
    import torch
    torch.set_num_threads(count)
    return count


def fill_defaults(args: argparse.Namespace,
                  values: Mapping[str, Any]) -> argparse.Namespace:
    r"""Sets every argument of :obj:`values` that was left at :obj:`None`
    (for defaults that depend on another argument, such as settings tuned
    per :obj:`--dataset`). Returns :obj:`args`."""
    for key, value in values.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def dataset_options(dataset: str, val_ratio: float,
                    seed: int = 2020) -> Dict[str, Any]:
    r"""The keyword arguments of
    :func:`~pyg_lightgode.datasets.load_dataset` that give :obj:`dataset` a
    validation part of :obj:`val_ratio` (see :func:`add_data_arguments`):
    per-user :obj:`ratios` :obj:`(1 - TEST_RATIO - val_ratio, val_ratio,
    TEST_RATIO)` where the loader splits the data itself
    (:func:`randomly_split`), :obj:`val_ratio` for the shipped splits."""
    if not randomly_split(dataset):
        if not 0 <= val_ratio < 1:
            raise ValueError(f"'val_ratio' must lie in [0, 1) for "
                             f"{dataset} (got {val_ratio})")
        return {'val_ratio': val_ratio, 'seed': seed}
    if not 0 <= val_ratio < 1 - TEST_RATIO:
        raise ValueError(f"'val_ratio' must lie in [0, {1 - TEST_RATIO:g}) "
                         f"for {dataset}, whose test part takes "
                         f"{TEST_RATIO:g} (got {val_ratio})")
    train = round(1 - TEST_RATIO - val_ratio, 12)
    ratios = (train, val_ratio, TEST_RATIO) if val_ratio > 0 else \
        (train, TEST_RATIO)
    return {'ratios': ratios, 'seed': seed}


def load_split(args: argparse.Namespace, **options):
    r"""Loads :obj:`args.dataset` as a
    :class:`~pyg_lightgode.data.BipartiteSplit` with the arguments of
    :func:`add_data_arguments`; :obj:`options` go to
    :func:`~pyg_lightgode.datasets.load_dataset` as well."""
    from pyg_lightgode.datasets import load_dataset
    return load_dataset(args.dataset, args.root, raw_dir=args.raw_dir,
                        **dataset_options(args.dataset, args.val_ratio,
                                          args.seed), **options)


def checkpoint_path(args: argparse.Namespace, prefix: str,
                    settings: Mapping[str, Any]) -> Optional[str]:
    r"""The checkpoint file of a run: :obj:`args.checkpoint` as given, or,
    for :data:`AUTO_CHECKPOINT`, :obj:`<root>/<dataset>/checkpoints/
    <prefix>-<hash>.pt` where the hash covers :obj:`settings` (those that
    change the training: a run with other settings gets another file
    rather than resuming a foreign one). :obj:`None`: no checkpoint."""
    if args.checkpoint != AUTO_CHECKPOINT:
        return args.checkpoint
    text = json.dumps({k: settings[k] for k in sorted(settings)},
                      sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    name = args.dataset.replace(':', '_').replace(os.sep, '_')
    return os.path.join(args.root, name, 'checkpoints',
                        f'{prefix}-{digest}.pt')


def save_plot(panels: Sequence[Mapping[str, Any]], path: str) -> bool:
    r"""Draws one panel per entry of :obj:`panels` side by side and saves
    the figure to :obj:`path`. A panel is a mapping with :obj:`'x'` (the
    x values), :obj:`'xlabel'`, :obj:`'lines'` (label -> y values) and
    optionally :obj:`'ylabel'`, :obj:`'twin'` (label -> y values on a
    second axis, dashed) and :obj:`'twin_label'`. Prints and returns
    :obj:`False` instead when matplotlib is not installed
    (:obj:`pip install matplotlib`)."""
    panels = [p for p in panels if len(p['x']) > 0]
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print(f'matplotlib is not installed; not writing {path} '
              f'(pip install matplotlib)')
        return False
    if not panels:
        print(f'nothing to plot; not writing {path}')
        return False
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(5 * len(panels), 4))
    for panel, axis in zip(panels, axes[0]):
        for (label, ys), marker in zip(panel['lines'].items(), 'os^vd'):
            axis.plot(panel['x'], ys, marker + '-', label=label)
        axis.set_xlabel(panel['xlabel'])
        axis.set_ylabel(panel.get('ylabel', ''))
        axis.legend(loc='lower right')
        if panel.get('twin'):
            twin = axis.twinx()
            for label, ys in panel['twin'].items():
                twin.plot(panel['x'], ys, 'k--', label=label)
            twin.set_ylabel(panel.get('twin_label', ''))
            twin.legend(loc='upper right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f'saved {path}')
    return True


def history_panels(history: Sequence[Mapping[str, float]],
                   metric: str = 'validation NDCG@20'
                   ) -> Sequence[Dict[str, Any]]:
    r"""The training curve of a :class:`~pyg_lightgode.apps.training.Trainer`
    history for :func:`save_plot`: the validation score per epoch, with
    the training loss on a second axis."""
    rows = [h for h in history if 'val' in h]
    return [{'x': [h['epoch'] for h in rows], 'xlabel': 'epoch',
             'ylabel': metric, 'lines': {metric: [h['val'] for h in rows]},
             'twin': {'training loss': [h['loss'] for h in rows]},
             'twin_label': 'training loss'}]

