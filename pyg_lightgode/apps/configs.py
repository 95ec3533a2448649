r"""Experiment files: one JSON file describes a benchmark run, a tuned model
or a hybrid (the folder :file:`configs/` holds one per published result),
and is validated completely before anything trains.

A file is a JSON object with these keys (all optional but ``dataset``)::

    {
      "description": "what this run reproduces",
      "dataset": "gowalla",                 # a name load_dataset knows
      "models": ["lightgode", "hybrid"],    # rows of benchmarks/run.py
      "mode": "full",                       # "quick" (smoke) or "full"
      "seed": 2020,
      "epochs": null, "patience": null,     # override the mode's
      "lightgode": {"dim": 64, "t": 3.0, "refit": false},
      "filters": {"bspm": {"beta": 0.2}},   # overrides of filter settings
      "hybrid": {
        "parts": ["bspm", "chebycf"],       # filters fused with LightGODE
        "t": [2.0],                         # candidate ODE times
        "popularity": [-0.15],              # candidate popularity weights
        "runs": [{"seed": 2021, "dim": 256}],   # other runs, own weights
        "ensemble_seeds": [],               # other runs, summed in
        "weights": {"bspm": [0.75], "chebycf": [0, 0.5],
                    "lightgode-s2021-d256": [0, 0.5, 1]},
        "candidates": {"bspm": [{"beta": 0.1}, {"beta": 0.2}]}
      },
      "tune": {"budget": 600, "models": ["gfcf", "bspm"], "fold": 0.25,
               "space": {"gfcf": {"alpha": [0.1, 0.3]}}},
      "expected": {"hybrid": {"recall@20": 0.1967, "ndcg@20": 0.1637}}
    }

``tune`` chooses the listed filters' settings on validation within
``budget`` seconds each (:mod:`pyg_lightgode.apps.tuning`; ``space``
overrides its grids). Every candidate is chosen on validation;
``expected`` records the test
figures the file produced when it was committed (the results page quotes
them). An unknown key, a model or part that does not exist, a weight list
for a part that is not fused, or a weight that is not a finite number
raises :class:`ConfigError` naming the key and the file.
"""
import json
import math
import os
from typing import Any, Dict, List, Mapping

#: The rows :file:`benchmarks/run.py` knows (trained models, training-free
#: filters, the hybrid).
TRAINED_MODELS = ('lightgode', 'mf-bpr', 'lightgcn-2', 'lightgcn-3',
                  'pinsage')
FILTER_MODELS = ('gfcf', 'bspm', 'chebycf', 'turbocf', 'ease', 'rp3beta',
                 'userknn', 'itemknn')
MODELS = TRAINED_MODELS + FILTER_MODELS + ('hybrid', )
DATASETS = ('movielens100k', 'gowalla', 'yelp2018')
MODES = ('quick', 'full')
METRICS = ('recall@20', 'ndcg@20')

_TOP = {'description', 'dataset', 'models', 'mode', 'seed', 'epochs',
        'patience', 'lightgode', 'filters', 'hybrid', 'tune', 'expected'}
_LIGHTGODE = {'dim', 't', 'refit'}
_HYBRID = {'parts', 't', 'popularity', 'runs', 'ensemble_seeds', 'weights',
           'candidates'}
_RUN = {'seed', 'dim'}
_TUNE = {'budget', 'models', 'fold', 'space'}
#: Largest file read (an experiment file is a few hundred bytes).
MAX_BYTES = 1 << 20


class ConfigError(ValueError):
    r"""An experiment file that cannot be used: names the file and key."""


def _where(path: str, key: str) -> str:
    return f"{path}: '{key}'" if key else path


def _fail(path: str, key: str, message: str):
    raise ConfigError(f'{_where(path, key)} {message}')


def _check_keys(obj: Any, allowed, path: str, key: str) -> Dict:
    if not isinstance(obj, dict):
        _fail(path, key, f'must be an object (got {type(obj).__name__})')
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        prefix = f'{key}.' if key else ''
        _fail(path, f'{prefix}{unknown[0]}',
              f'is not a known key; valid keys are '
              f'{", ".join(sorted(allowed))}')
    return obj


def _int(value: Any, path: str, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or \
            value < minimum:
        _fail(path, key, f'must be an integer >= {minimum} (got {value!r})')
    return value


def _number(value: Any, path: str, key: str,
            positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or (positive and value <= 0):
        kind = 'a positive' if positive else 'a finite'
        _fail(path, key, f'must be {kind} number (got {value!r})')
    return float(value)


def _numbers(value: Any, path: str, key: str, positive: bool = False,
             allow_empty: bool = False) -> List[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or (not value and not allow_empty):
        _fail(path, key, f'must be a number or a non-empty list of numbers '
              f'(got {value!r})')
    return [_number(v, path, f'{key}[{i}]', positive)
            for i, v in enumerate(value)]


def _names(value: Any, valid, path: str, key: str) -> List[str]:
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, str) for v in value):
        _fail(path, key, f'must be a non-empty list of names (got '
              f'{value!r})')
    for v in value:
        if v not in valid:
            _fail(path, key, f'names {v!r}, which is not one of '
                  f'{", ".join(valid)}')
    if len(set(value)) != len(value):
        _fail(path, key, f'repeats a name (got {value!r})')
    return list(value)


def run_name(seed: int, dim: int) -> str:
    r"""The part name of another LightGODE run fused in the hybrid."""
    return f'lightgode-s{seed}-d{dim}'


def validate_config(config: Mapping[str, Any], path: str = '<config>'
                    ) -> Dict[str, Any]:
    r"""Checks an experiment description (the parsed JSON of a file) and
    returns it with every default filled in. Raises :class:`ConfigError`
    naming :obj:`path` and the key for anything it cannot use."""
    config = dict(_check_keys(config, _TOP, path, ''))
    if 'dataset' not in config:
        _fail(path, 'dataset', 'is missing')
    if config['dataset'] not in DATASETS:
        _fail(path, 'dataset', f'must be one of {", ".join(DATASETS)} (got '
              f'{config["dataset"]!r})')
    config['models'] = _names(config.get('models', list(MODELS)), MODELS,
                              path, 'models')
    mode = config.setdefault('mode', 'quick')
    if mode not in MODES:
        _fail(path, 'mode', f'must be one of {", ".join(MODES)} (got '
              f'{mode!r})')
    config['seed'] = _int(config.get('seed', 2020), path, 'seed')
    for key in ('epochs', 'patience'):
        if config.get(key) is not None:
            _int(config[key], path, key, 1)
        config.setdefault(key, None)
    if 'description' in config and not isinstance(config['description'],
                                                  str):
        _fail(path, 'description', 'must be a string')

    lightgode = dict(_check_keys(config.get('lightgode', {}), _LIGHTGODE,
                                 path, 'lightgode'))
    lightgode['dim'] = _int(lightgode.get('dim', 64), path, 'lightgode.dim',
                            1)
    if lightgode.get('t') is not None:
        _number(lightgode['t'], path, 'lightgode.t', positive=True)
    lightgode.setdefault('t', None)
    if not isinstance(lightgode.setdefault('refit', False), bool):
        _fail(path, 'lightgode.refit', 'must be true or false')
    config['lightgode'] = lightgode

    filters = _check_keys(config.get('filters', {}), FILTER_MODELS, path,
                          'filters')
    for name, settings in filters.items():
        if not isinstance(settings, dict):
            _fail(path, f'filters.{name}', 'must be an object of settings')
    config['filters'] = dict(filters)

    config['hybrid'] = _check_hybrid(config.get('hybrid', {}), path)
    config['tune'] = _check_tune(config.get('tune'), path)
    config['expected'] = _check_expected(config.get('expected', {}), path)
    return config


def _check_hybrid(hybrid: Any, path: str) -> Dict[str, Any]:
    hybrid = dict(_check_keys(hybrid, _HYBRID, path, 'hybrid'))
    hybrid['parts'] = _names(hybrid.get('parts', ['bspm', 'gfcf']),
                             FILTER_MODELS, path, 'hybrid.parts')
    if hybrid.get('t') is not None:
        hybrid['t'] = _numbers(hybrid['t'], path, 'hybrid.t', positive=True)
    hybrid.setdefault('t', None)
    hybrid['popularity'] = _numbers(hybrid.get('popularity', []), path,
                                    'hybrid.popularity', allow_empty=True)
    seeds = hybrid.get('ensemble_seeds', [])
    if not isinstance(seeds, list):
        _fail(path, 'hybrid.ensemble_seeds', 'must be a list of seeds')
    hybrid['ensemble_seeds'] = [
        _int(s, path, f'hybrid.ensemble_seeds[{i}]')
        for i, s in enumerate(seeds)]
    runs = hybrid.get('runs', [])
    if not isinstance(runs, list):
        _fail(path, 'hybrid.runs', 'must be a list of {"seed", "dim"}')
    checked = []
    for i, run in enumerate(runs):
        key = f'hybrid.runs[{i}]'
        run = _check_keys(run, _RUN, path, key)
        if 'seed' not in run:
            _fail(path, f'{key}.seed', 'is missing')
        checked.append({'seed': _int(run['seed'], path, f'{key}.seed'),
                        'dim': _int(run.get('dim', 64), path, f'{key}.dim',
                                    1)})
    hybrid['runs'] = checked
    fused = hybrid['parts'] + [run_name(r['seed'], r['dim'])
                               for r in checked]
    weights = hybrid.get('weights')
    if weights is not None:
        if isinstance(weights, list):
            weights = _numbers(weights, path, 'hybrid.weights')
        else:
            weights = dict(_check_keys(weights, fused, path,
                                       'hybrid.weights'))
            missing = [name for name in fused if name not in weights]
            if missing:
                _fail(path, 'hybrid.weights', f'has no candidate weights '
                      f'for the fused part {missing[0]!r}')
            weights = {name: _numbers(values, path,
                                      f'hybrid.weights.{name}')
                       for name, values in weights.items()}
    hybrid['weights'] = weights
    candidates = hybrid.get('candidates', {})
    candidates = _check_keys(candidates, hybrid['parts'], path,
                             'hybrid.candidates')
    for name, options in candidates.items():
        if not isinstance(options, list) or not options or not all(
                isinstance(option, dict) for option in options):
            _fail(path, f'hybrid.candidates.{name}', 'must be a non-empty '
                  'list of settings objects')
    hybrid['candidates'] = dict(candidates)
    return hybrid


def _check_tune(tune: Any, path: str):
    if tune is None:
        return None
    tune = dict(_check_keys(tune, _TUNE, path, 'tune'))
    if 'budget' not in tune:
        _fail(path, 'tune.budget', 'is missing (seconds per filter)')
    _number(tune['budget'], path, 'tune.budget')
    if tune['budget'] < 0:
        _fail(path, 'tune.budget', 'must be >= 0 seconds')
    tune['models'] = _names(tune.get('models', list(FILTER_MODELS)),
                            FILTER_MODELS, path, 'tune.models')
    fold = _number(tune.get('fold', 0.25), path, 'tune.fold', positive=True)
    if fold > 1:
        _fail(path, 'tune.fold', f'must be in (0, 1] (got {fold!r})')
    tune['fold'] = fold
    space = _check_keys(tune.get('space', {}), tune['models'], path,
                        'tune.space')
    for name, grid in space.items():
        grid = _check_keys(grid, set(grid) if isinstance(grid, dict) else
                           (), path, f'tune.space.{name}')
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                _fail(path, f'tune.space.{name}.{key}', 'must be a '
                      'non-empty list of values')
    tune['space'] = dict(space)
    return tune


def _check_expected(expected: Any, path: str) -> Dict[str, Dict]:
    expected = _check_keys(expected, MODELS, path, 'expected')
    out = {}
    for model, figures in expected.items():
        figures = _check_keys(figures, METRICS, path, f'expected.{model}')
        out[model] = {metric: _number(value, path,
                                      f'expected.{model}.{metric}')
                      for metric, value in figures.items()}
    return out


def load_config(path: str) -> Dict[str, Any]:
    r"""Reads and validates the experiment file :obj:`path` (JSON)."""
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise ConfigError(f'{path}: cannot read the experiment file '
                          f'({error.strerror})') from None
    if size > MAX_BYTES:
        raise ConfigError(f'{path}: {size} bytes is too large for an '
                          f'experiment file (at most {MAX_BYTES})')
    with open(path, encoding='utf-8-sig') as f:
        text = f.read()
    try:
        # NaN / Infinity parse as floats and are refused at their key.
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f'{path}: not valid JSON: {error.msg} at line '
                          f'{error.lineno}, column {error.colno}') from None
    return validate_config(config, path)


def merge_overrides(config: Dict[str, Any], overrides: Mapping[str, Any],
                    path: str = '<command line>') -> Dict[str, Any]:
    r"""The experiment :obj:`config` with command-line values (those that
    are not :obj:`None`) put over it, validated again."""
    merged = dict(config)
    merged.update({key: value for key, value in overrides.items()
                   if value is not None})
    return validate_config(merged, path)


__all__ = [
    'ConfigError',
    'DATASETS',
    'MODELS',
    'load_config',
    'merge_overrides',
    'run_name',
    'validate_config',
]
