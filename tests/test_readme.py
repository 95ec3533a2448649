import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'


@pytest.mark.slow
@pytest.mark.skipif(not (ML100K / 'u.data').exists(),
                    reason='../shared/data/ml-100k is not present')
def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / 'README.md').read_text()
    code = re.search(r'## Usage\n+```python\n(.*?)```', readme, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    code = code.replace("'../shared/data/ml-100k'", repr(str(ML100K)))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, 'README.md', 'exec'), {})
    out = capsys.readouterr().out
    recall = float(re.search(r"'recall@20': ([0-9.]+)", out).group(1))
    assert 0.05 < recall <= 1
