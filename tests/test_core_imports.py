r"""The wall between core and app: the core (layers, models, ODE solver,
samplers, metrics, the bipartite data form and its checks, datasets)
depends on torch, torch_geometric and torchdiffeq only and never imports
the app (:mod:`pyg_lightgode.apps`: training loops and recipes, the
hybrid, fold-in and serving, configs, command line). Every module of the
package is on one side of the wall, and every one imports."""
import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'pyg_lightgode'

CORE = ('pyg_lightgode.nn', 'pyg_lightgode.sampler', 'pyg_lightgode.metrics',
        'pyg_lightgode.data', 'pyg_lightgode.datasets')
APP = ('pyg_lightgode.apps', )
#: What the core may import at module level, besides the standard library
#: and itself (numpy comes with torch).
REQUIRED = {'torch', 'torch_geometric', 'torchdiffeq', 'numpy'}
#: Imported inside the one function that needs them, for an option off by
#: default: faiss (metrics: the 'mips' item indexes), scipy (filters: the
#: ARPACK eigensolver), pandas (data: factorizing string ids).
OPTIONAL = {'faiss', 'scipy', 'pandas'}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def core_files():
    files = []
    for name in CORE:
        path = ROOT / name.replace('.', '/')
        files += sorted(path.rglob('*.py')) if path.is_dir() else \
            [path.with_suffix('.py')]
    return files


def imports(path: Path):
    r"""Every module :obj:`path` imports (relative imports resolved), and
    whether the import sits at module level."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path)
    if path.name != '__init__.py':
        package = package.rpartition('.')[0]
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parent = package.rsplit('.', node.level - 1)[0]
                base = f'{parent}.{base}' if base else parent
            names = [base]
        else:
            continue
        for name in names:
            yield name, id(node) in top_level


def all_files():
    return sorted(PACKAGE.rglob('*.py'))


def test_every_module_is_core_or_app():
    for path in all_files():
        name = module_name(path)
        if name == 'pyg_lightgode':
            continue
        assert name.startswith(CORE) or name.startswith(APP), \
            f'{name} is neither core ({CORE}) nor app ({APP})'


@pytest.mark.parametrize('path', all_files(),
                         ids=lambda path: module_name(path))
def test_every_module_imports(path):
    importlib.import_module(module_name(path))


def test_core_modules_are_found():
    names = {module_name(path) for path in core_files()}
    assert {'pyg_lightgode.nn.conv.lightgode_conv',
            'pyg_lightgode.nn.models.lightgode', 'pyg_lightgode.nn.ode',
            'pyg_lightgode.nn.filters', 'pyg_lightgode.data.validation',
            'pyg_lightgode.datasets.lightgcn',
            'pyg_lightgode.sampler', 'pyg_lightgode.metrics.ranking',
            'pyg_lightgode.data.bipartite'} <= names


@pytest.mark.parametrize('path', core_files(),
                         ids=lambda path: module_name(path))
def test_core_module_imports(path):
    stdlib = sys.stdlib_module_names
    for name, top_level in imports(path):
        root = name.split('.')[0]
        if name.startswith('pyg_lightgode'):
            assert not name.startswith(APP), \
                f'{module_name(path)} imports the app module {name}'
            assert name == 'pyg_lightgode' or name.startswith(CORE), name
        elif top_level:
            assert root in stdlib or root in REQUIRED, \
                f'{module_name(path)} imports {name} at module level'
        else:
            assert root in stdlib or root in REQUIRED | OPTIONAL, \
                f'{module_name(path)} imports {name}'


SCRIPT = r'''
import importlib, json, sys
before = set(sys.modules)
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps(sorted(set(sys.modules) - before)))
'''


def loaded_by(names):
    r"""The modules a fresh interpreter loads to import :obj:`names`."""
    out = subprocess.run([sys.executable, '-c', SCRIPT, json.dumps(names)],
                         capture_output=True, text=True, cwd=ROOT,
                         check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_core_loads_no_app_module_or_other_dependency():
    core = sorted({module_name(path) for path in core_files()})
    loaded = loaded_by(core)
    app = sorted(name for name in loaded if name.startswith(APP))
    assert app == [], f'importing the core loads {app}'
    # Third-party packages beyond what torch, torch_geometric and
    # torchdiffeq load themselves.
    baseline = loaded_by(sorted(REQUIRED))

    def third_party(names):
        return {name.split('.')[0] for name in names} - set(
            sys.stdlib_module_names) - {'pyg_lightgode'}

    extra = third_party(loaded) - third_party(baseline)
    assert extra == set(), f'the core loads {sorted(extra)}'
