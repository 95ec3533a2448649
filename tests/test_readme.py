r"""Every Python snippet of the README runs, in order, in one namespace (on
MovieLens-100K), and the bash snippets name files that exist."""
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'
README = (ROOT / 'README.md').read_text()


def snippets(language):
    return re.findall(rf'```{language}\n(.*?)```', README, re.S)


def test_usage_snippet_is_short():
    usage = re.search(r'## Usage\n+```python\n(.*?)```', README, re.S)
    assert len(usage.group(1).strip().splitlines()) <= 12


@pytest.mark.slow
@pytest.mark.skipif(not (ML100K / 'u.data').exists(),
                    reason='../shared/data/ml-100k is not present')
def test_every_readme_python_snippet_runs(tmp_path, monkeypatch, capsys):
    code = '\n'.join(snippets('python'))
    assert code.count('import') >= 4
    code = code.replace("'../shared/data/ml-100k'", repr(str(ML100K)))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, 'README.md', 'exec'), namespace)
    out = capsys.readouterr().out
    recalls = [float(r) for r in re.findall(r"'recall@20': ([0-9.]+)", out)]
    assert len(recalls) == 2 and all(0.05 < r <= 1 for r in recalls)
    assert namespace['top'].shape == (2, 10)
    assert namespace['ids'].numel() == 20
    assert not set(namespace['ids'].tolist()) & {12, 7, 401}


def test_readme_commands_name_existing_files():
    for block in snippets('bash'):
        for line in block.strip().splitlines():
            for word in shlex.split(line):
                if word.endswith(('.py', '.json')) and '/' in word:
                    assert (ROOT / word).exists(), word
