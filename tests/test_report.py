r"""Significance table and seed summaries of the app's results reports."""
import math

import pytest
import torch

from pyg_lightgode.apps.report import (
    format_mean_std,
    run_seeds,
    seed_summary,
    significance_table,
)
from pyg_lightgode.metrics.significance import holm, wilcoxon_signed_rank


def test_significance_table_against_the_best_model():
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(300, generator=gen)
    per_user = {
        'best': base + 0.05,
        'close': base + 0.049 + 0.01 * torch.randn(300, generator=gen),
        'worse': base,
    }
    table = significance_table(per_user)
    assert table['reference'] == 'best' and table['metric'] == 'ndcg@20'
    assert set(table['rows']) == {'close', 'worse'}
    p = [wilcoxon_signed_rank(per_user[m], per_user['best'])
         for m in ('close', 'worse')]
    assert [table['rows'][m]['p_value'] for m in ('close', 'worse')] == \
        pytest.approx(p)
    assert [table['rows'][m]['p_holm'] for m in ('close', 'worse')] == \
        pytest.approx(holm(p))
    assert table['rows']['worse']['p_holm'] < 1e-10
    assert table['rows']['close']['p_value'] > table['rows']['worse'][
        'p_value']


def test_significance_table_reads_evaluator_dictionaries():
    a = {'ndcg@20': torch.tensor([0.1, 0.5, 0.3, 0.2]),
         'recall@20': torch.tensor([0.2, 0.6, 0.4, 0.3])}
    b = {'ndcg@20': torch.tensor([0.0, 0.4, 0.3, 0.1]),
         'recall@20': torch.tensor([0.1, 0.6, 0.4, 0.2])}
    table = significance_table({'a': a, 'b': b}, reference='b',
                               metric='recall@20')
    assert table['reference'] == 'b' and list(table['rows']) == ['a']
    with pytest.raises(KeyError, match='mrr'):
        significance_table({'a': a, 'b': b}, metric='mrr@20')
    with pytest.raises(ValueError, match='same users'):
        significance_table({'a': torch.ones(3), 'b': torch.ones(4)})
    with pytest.raises(ValueError, match='two models'):
        significance_table({'a': torch.ones(3)})
    with pytest.raises(KeyError, match='reference'):
        significance_table({'a': torch.ones(3), 'b': torch.ones(3)}, 'c')


def test_seed_summary_and_run_seeds():
    runs = [{'recall@20': 0.1, 'ndcg@20': 0.05},
            {'recall@20': 0.3, 'ndcg@20': 0.07}]
    out = seed_summary(runs)
    assert out['seeds'] == 2
    assert out['test_mean'] == pytest.approx({'recall@20': 0.2,
                                              'ndcg@20': 0.06})
    assert out['test_std']['recall@20'] == pytest.approx(math.sqrt(0.02))
    assert seed_summary(runs[:1])['test_std']['ndcg@20'] == 0.0
    assert format_mean_std(out, 'ndcg@20') == '0.0600 ± 0.0141'
    with pytest.raises(ValueError, match='run 1'):
        seed_summary([{'a': 1.0}, {'b': 1.0}])
    seen = []

    def train(seed):
        seen.append(seed)
        return {'recall@20': seed / 10}

    out = run_seeds(train, [1, 2, 3])
    assert seen == [1, 2, 3] and out['runs'][2] == {'recall@20': 0.2}
    assert out['test_mean']['recall@20'] == pytest.approx(0.2)
    assert out['test_std']['recall@20'] == pytest.approx(0.1)
