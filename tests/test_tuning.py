r"""Filter settings chosen on validation within a budget
(pyg_lightgode.apps.tuning)."""
import pytest
import torch

from pyg_lightgode.apps.hybrid.recipe import filter_settings
from pyg_lightgode.apps.tuning import SPACES, tune_filter, tuning_split
from pyg_lightgode.data import BipartiteSplit


def split_with_validation(seed=0, U=40, I=30):
    # Two communities of users and items with noise: validation pairs are
    # predictable from training, as in real data.
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for u in range(U):
        side = torch.arange(I // 2) + (I // 2 if u % 2 else 0)
        items = side[torch.randperm(I // 2, generator=gen)[:9]]
        noise = torch.randint(I, (1, ), generator=gen)
        pairs += [(u, int(i)) for i in torch.cat([items, noise])]
    index = torch.tensor(sorted(set(pairs))).t()
    perm = torch.randperm(index.size(1), generator=gen)
    index = index[:, perm]
    n = index.size(1)
    return BipartiteSplit(U, I, index[:, :n * 6 // 10],
                          index[:, n * 8 // 10:],
                          val_index=index[:, n * 6 // 10:n * 8 // 10],
                          name='synthetic')


def test_tuning_graph_keeps_most_validation_pairs():
    split = split_with_validation()
    graph, target = tuning_split(split, fold=0.25)
    val = split.val_index.size(1)
    assert graph.size(1) + target.size(1) == split.train_index.size(1) + val
    assert 0.1 * val < target.size(1) < 0.4 * val
    # Every held-out pair is a validation pair missing from the graph.
    graph_pairs = set(map(tuple, graph.t().tolist()))
    assert not graph_pairs & set(map(tuple, target.t().tolist()))
    # Seeded: the same fold again.
    assert torch.equal(tuning_split(split, 0.25)[1], target)


@pytest.mark.parametrize('name', ['gfcf', 'bspm', 'turbocf', 'itemknn'])
def test_tuned_settings_never_lose_on_validation(name):
    split = split_with_validation()
    settings, report = tune_filter(name, split, budget=60)
    assert report['tuned'] >= report['published']
    assert report['trials'] == len(report['rows']) >= 2
    assert report['rows'][0]['settings'] == filter_settings(
        name, 'synthetic', split.num_users, split.num_items)
    best = max(report['rows'], key=lambda row: row['ndcg@20'])
    assert best['ndcg@20'] == report['tuned']
    assert set(settings) >= set(SPACES[name]) - {'k'}
    assert 0.9 < report['density'] < 1


def test_zero_budget_returns_the_published_settings():
    split = split_with_validation()
    settings, report = tune_filter('gfcf', split, budget=0)
    assert settings == filter_settings('gfcf', 'synthetic', 40, 30)
    assert report['trials'] == 1


def test_tuning_bad_input():
    split = split_with_validation()
    with pytest.raises(ValueError, match="unknown filter 'svd'"):
        tune_filter('svd', split, budget=1)
    with pytest.raises(ValueError, match="'budget'"):
        tune_filter('gfcf', split, budget=float('nan'))
    with pytest.raises(ValueError, match="'fold'"):
        tune_filter('gfcf', split, budget=1, fold=0)
    with pytest.raises(ValueError, match="does not have: \\['gamma'\\]"):
        tune_filter('gfcf', split, budget=1, space={'gamma': [1]})
    no_val = BipartiteSplit(4, 4, torch.tensor([[0, 1], [0, 1]]),
                            torch.tensor([[2], [2]]))
    with pytest.raises(ValueError, match='validation part'):
        tune_filter('gfcf', no_val, budget=1)
