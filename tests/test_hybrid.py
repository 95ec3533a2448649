r"""The hybrid's final fit: validation merged into training, a fixed-epoch
retraining without evaluation, and test-stage tables in :func:`fit_hybrid`."""
import pytest
import torch

from helpers import clustered_split
from pyg_lightgode.apps.hybrid.fusion import (
    EmbeddingScorer,
    ScoreFusion,
    standardize,
)
from pyg_lightgode.apps.hybrid.recipe import (
    fit_hybrid,
    known_graph,
    make_filter,
    propagate_tables,
)
from pyg_lightgode.apps.hybrid.selection import select_fusion, weight_grid
from pyg_lightgode.apps.training import recipes
from pyg_lightgode.apps.training.recipes import train_lightgode
from pyg_lightgode.data import BipartiteSplit
from pyg_lightgode.nn.models import (
    BSPM,
    GFCF,
    LightGODE,
    Popularity,
    TurboCF,
    UserKNN,
)


def split_with_validation(seed=0):
    base = clustered_split(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(base.train_index.size(1), generator=gen)
    cut = base.train_index.size(1) // 5
    return BipartiteSplit(base.num_users, base.num_items,
                          base.train_index[:, perm[cut:]], base.test_index,
                          val_index=base.train_index[:, perm[:cut]],
                          name='clustered')


def test_merge_validation_joins_val_to_train():
    split = split_with_validation()
    merged = split.merge_validation()
    assert merged.val_index is None
    assert merged.name == split.name
    assert torch.equal(merged.test_index, split.test_index)
    assert torch.equal(
        merged.train_index,
        torch.cat([split.train_index, split.val_index], dim=1))
    # Ranking test on the merged split excludes exactly what the original
    # split excludes for test.
    assert torch.equal(torch.cat(merged.known_interactions('test'), 1),
                       known_graph(split, 'test'))
    with pytest.raises(ValueError, match="no 'val'"):
        merged.merge_validation()


def test_training_without_validation_keeps_last_epoch(monkeypatch):
    split = split_with_validation().merge_validation()

    def train(validate):
        torch.manual_seed(0)
        model = LightGODE(split.num_users, split.num_items, 8, gamma=1.0)
        result = train_lightgode(model, split, epochs=3, batch_size=32,
                                 lr=0.05, patience=None, progress=False,
                                 validate=validate)
        return model, result

    reference, ref_result = train(True)  # Evaluates (on test: no val).
    # Without validation nothing may be evaluated: not even the test part.
    monkeypatch.setattr(recipes, 'validation_evaluator',
                        lambda *a, **k: pytest.fail('evaluated'))
    model, result = train(False)
    assert result.epochs_run == 3 and result.best_epoch == 3
    assert all('val' not in record for record in result.history)
    # The validated run improves every epoch here, so it keeps epoch 3 too:
    # same seed, same steps, same weights.
    assert ref_result.best_epoch == 3
    assert torch.equal(model.item_embedding.weight,
                       reference.item_embedding.weight)
    with pytest.raises(ValueError, match="'patience'"):
        train_lightgode(model, split, epochs=3, batch_size=32, patience=2,
                        progress=False, validate=False)


def test_fit_hybrid_uses_test_tables_in_the_test_stage():
    split = split_with_validation()
    gen = torch.Generator().manual_seed(1)
    U, I = split.num_users, split.num_items
    user, item = torch.randn(U, 8, generator=gen), torch.randn(I, 8,
                                                               generator=gen)
    refit = (torch.randn(U, 8, generator=gen), torch.randn(I, 8,
                                                           generator=gen))
    users = torch.arange(U)
    fusion, report = fit_hybrid(split, user, item, parts=('gfcf', ),
                                coarse=(0.0, ), test_tables=refit)
    assert report['weights'] == {'lightgode': 1.0, 'gfcf': 0.0}
    expected = propagate_tables(*refit, known_graph(split, 'test'))
    assert torch.allclose(fusion.scorers[0].score(users),
                          expected[0] @ expected[1].t(), atol=1e-5)
    plain, _ = fit_hybrid(split, user, item, parts=('gfcf', ),
                          coarse=(0.0, ))
    unrefit = propagate_tables(user, item, known_graph(split, 'test'))
    assert torch.allclose(plain.scorers[0].score(users),
                          unrefit[0] @ unrefit[1].t(), atol=1e-5)
    with pytest.raises(ValueError, match="'test_tables'"):
        fit_hybrid(split, user, item, parts=('gfcf', ), coarse=(0.0, ),
                   test_tables=(refit[0][:, :4], refit[1]))


def test_popularity_scores_log_degree_for_every_user():
    graph = torch.tensor([[0, 1, 2, 2, 2], [1, 1, 1, 0, 0]])  # (2, 0) twice
    model = Popularity(3, 4).fit(graph)
    expected = torch.log1p(torch.tensor([1.0, 3.0, 0.0, 0.0]))
    assert torch.allclose(model.score(torch.tensor([0, 2])),
                          expected.expand(2, -1))
    # Inductive: a row of an unseen user gets the same scores.
    assert torch.allclose(model(torch.zeros(1, 4)), expected.unsqueeze(0))
    with pytest.raises(RuntimeError, match='not fitted'):
        Popularity(3, 4).score(torch.tensor([0]))
    with pytest.raises(ValueError, match="'users'"):
        model.score(torch.tensor([3]))


def test_score_fusion_negative_weight_subtracts():
    gen = torch.Generator().manual_seed(0)
    a = EmbeddingScorer(torch.randn(4, 3, generator=gen),
                        torch.randn(6, 3, generator=gen))
    pop = Popularity(4, 6).fit(torch.tensor([[0, 1, 2, 3], [0, 0, 0, 5]]))
    users = torch.arange(4)
    fused = ScoreFusion([a, pop], [1.0, -0.5]).score(users)
    expected = standardize(a.score(users)) - 0.5 * standardize(
        pop.score(users))
    assert torch.allclose(fused, expected, atol=1e-6)


def test_weight_grid_per_part_values():
    grid = weight_grid(['a', 'b'], {'a': [0.0, 1.0], 'b': [0.0, -0.5]},
                       fixed={'x': 1.0})
    assert grid == [{'x': 1.0, 'a': 0.0, 'b': 0.0},
                    {'x': 1.0, 'a': 0.0, 'b': -0.5},
                    {'x': 1.0, 'a': 1.0, 'b': 0.0},
                    {'x': 1.0, 'a': 1.0, 'b': -0.5}]
    with pytest.raises(ValueError, match="'values'"):
        weight_grid(['a', 'b'], {'a': [1.0]})


def test_select_fusion_picks_among_alternative_anchors():
    r"""Two candidate anchors (one scores the validation items on top, one
    at the bottom) and a useless part: the good anchor alone wins, and
    every weighting uses exactly one anchor."""
    U, I = 6, 8
    val = torch.stack([torch.arange(U), torch.arange(U) % I])
    good = torch.zeros(U, I).index_put_((val[0], val[1]), torch.tensor(5.))
    good += torch.linspace(0, 1, I)  # Ties broken the same for every part.
    bad = -good
    noise = torch.randn(U, I, generator=torch.Generator().manual_seed(0))
    eye = torch.eye(U)
    parts = {'good': EmbeddingScorer(eye, good.t().contiguous()),
             'bad': EmbeddingScorer(eye, bad.t().contiguous()),
             'noise': EmbeddingScorer(eye, noise.t().contiguous())}
    weights, rows = select_fusion(parts, val, None, U, I,
                                  anchor=['bad', 'good'],
                                  coarse={'noise': [0.0, 1.0]}, refine=())
    assert weights == {'bad': 0.0, 'good': 1.0, 'noise': 0.0}
    assert len(rows) == 4
    assert all(row['weights']['bad'] + row['weights']['good'] == 1.0
               for row in rows)
    with pytest.raises(ValueError, match="'anchor'"):
        select_fusion(parts, val, None, U, I, anchor=['missing'])


def test_fit_hybrid_chooses_t_and_popularity_on_validation():
    split = split_with_validation()
    gen = torch.Generator().manual_seed(2)
    user = torch.randn(split.num_users, 8, generator=gen)
    item = torch.randn(split.num_items, 8, generator=gen)
    fusion, report = fit_hybrid(split, user, item, parts=(), t=[1.0, 2.0],
                                popularity=[0.0, -0.2])
    best = max(report['validation'], key=lambda row: row['ndcg@20'])
    chosen = 1.0 if best['weights']['lightgode@1'] == 1.0 else 2.0
    assert report['t'] == chosen and report['times'] == [1.0, 2.0]
    assert report['weights'] == {
        'lightgode': 1.0, 'popularity': best['weights']['popularity']}
    assert len(report['validation']) == 4
    # The test stage propagates the chosen t over all known interactions.
    users = torch.arange(split.num_users)
    expected = propagate_tables(user, item, known_graph(split, 'test'),
                                t=chosen)
    assert torch.allclose(fusion.scorers[0].score(users),
                          expected[0] @ expected[1].t(), atol=1e-5)
    with pytest.raises(ValueError, match="'t'"):
        fit_hybrid(split, user, item, parts=(), t=[])


def test_fit_like_equals_fit_and_shares_the_basis():
    split = split_with_validation()
    graph = known_graph(split, 'test')
    U, I = split.num_users, split.num_items
    users = torch.arange(U)
    base = BSPM(U, I, k=6, beta=0.2).fit(graph)
    for kwargs in (dict(k=6, beta=0.5, sharpen_t=1.0), dict(k=4, beta=0.2),
                   dict(k=6, beta=0.0)):
        shared = BSPM(U, I, **kwargs).fit_like(base)
        fresh = BSPM(U, I, **kwargs).fit(graph)
        assert torch.allclose(shared.score(users), fresh.score(users),
                              atol=1e-4)
        if kwargs['k'] == 6 and kwargs['beta'] > 0:
            assert shared.basis is base.basis  # No second SVD.
    gfcf = GFCF(U, I, k=6).fit(graph)
    assert torch.allclose(GFCF(U, I, k=6, alpha=1.0).fit_like(gfcf).score(
        users), GFCF(U, I, k=6, alpha=1.0).fit(graph).score(users),
                          atol=1e-4)
    with pytest.raises(ValueError, match="'other'"):
        BSPM(U, I, k=6).fit_like(gfcf)
    with pytest.raises(ValueError, match="'other'"):
        BSPM(U, I, k=6).fit_like(BSPM(U, I, k=6))  # Not fitted.
    with pytest.raises(TypeError, match='spectral'):
        TurboCF(U, I).fit_like(TurboCF(U, I).fit(graph))


def test_select_fusion_alternatives_use_one_member_per_slot():
    U, I = 6, 8
    val = torch.stack([torch.arange(U), torch.arange(U) % I])
    good = torch.zeros(U, I).index_put_((val[0], val[1]), torch.tensor(5.))
    good += torch.linspace(0, 1, I)
    noise = torch.randn(U, I, generator=torch.Generator().manual_seed(0))
    eye = torch.eye(U)
    parts = {'anchor': EmbeddingScorer(eye, noise.t().contiguous()),
             'f#0': EmbeddingScorer(eye, (-good).t().contiguous()),
             'f#1': EmbeddingScorer(eye, good.t().contiguous())}
    weights, rows = select_fusion(parts, val, None, U, I, anchor='anchor',
                                  coarse={'f': [0.0, 4.0]}, refine=(),
                                  alternatives={'f': ['f#0', 'f#1']})
    assert weights == {'anchor': 1.0, 'f#0': 0.0, 'f#1': 4.0}
    # Weight 0 for the slot needs no choice: 1 + 2 weightings.
    assert len(rows) == 3
    assert all((row['weights']['f#0'] == 0) or (row['weights']['f#1'] == 0)
               for row in rows)
    with pytest.raises(ValueError, match="'alternatives'"):
        select_fusion(parts, val, None, U, I, anchor='anchor',
                      alternatives={'f': ['f#0', 'missing']})
    with pytest.raises(ValueError, match="'alternatives'"):
        select_fusion(parts, val, None, U, I, anchor='anchor',
                      alternatives={'f': ['anchor', 'f#1']})


def test_fit_hybrid_chooses_filter_settings_on_validation():
    split = split_with_validation()
    gen = torch.Generator().manual_seed(3)
    user = torch.randn(split.num_users, 8, generator=gen)
    item = torch.randn(split.num_items, 8, generator=gen)
    candidates = [dict(alpha=0.0), dict(alpha=1.0)]
    fusion, report = fit_hybrid(split, user, item, parts=('gfcf', ),
                                coarse=(0.0, 1.0),
                                filter_candidates={'gfcf': candidates},
                                filter_overrides={'gfcf': dict(k=4)})
    best = max(report['validation'], key=lambda row: row['ndcg@20'])
    chosen = 1 if best['weights']['gfcf#1'] != 0 else 0
    assert report['filter_settings'] == {'gfcf': candidates[chosen]}
    assert report['weights'] == {'lightgode': 1.0,
                                 'gfcf': best['weights'][f'gfcf#{chosen}']}
    assert len(report['validation']) == 3  # gfcf 0, and 1 with either.
    # Random tables, clustered data: the filter must be fused; the test
    # stage fits the chosen settings on all known interactions.
    assert report['weights']['gfcf'] != 0
    users = torch.arange(split.num_users)
    fresh = GFCF(split.num_users, split.num_items, k=4,
                 **candidates[chosen]).fit(known_graph(split, 'test'))
    assert torch.allclose(fusion.scorers[1].score(users), fresh.score(users),
                          atol=1e-4)
    with pytest.raises(ValueError, match="'filter_candidates'"):
        fit_hybrid(split, user, item, parts=('gfcf', ),
                   filter_candidates={'bspm': candidates})
    with pytest.raises(ValueError, match="'filter_candidates'"):
        fit_hybrid(split, user, item, parts=('gfcf', ),
                   filter_candidates={'gfcf': []})


def test_fit_hybrid_candidates_of_a_non_spectral_filter_are_fitted():
    r"""Turbo-CF has no SVD to share: each candidate is fitted on its own
    (``fit_like`` would refuse it)."""
    split = split_with_validation()
    gen = torch.Generator().manual_seed(4)
    user = torch.randn(split.num_users, 8, generator=gen)
    item = torch.randn(split.num_items, 8, generator=gen)
    candidates = [dict(alpha=0.5), dict(alpha=0.6, power=0.7)]
    fusion, report = fit_hybrid(split, user, item, parts=('turbocf', ),
                                coarse=(1.0, ),
                                filter_candidates={'turbocf': candidates})
    assert report['filter_settings']['turbocf'] in candidates
    assert not TurboCF(3, 4).spectral and BSPM(3, 4, k=1).spectral


def test_fit_hybrid_with_the_linear_models_as_parts():
    r"""EASE and RP3beta are hybrid members like the filters: their
    settings are chosen on validation and they are refitted for test."""
    split = split_with_validation()
    gen = torch.Generator().manual_seed(5)
    user = torch.randn(split.num_users, 8, generator=gen)
    item = torch.randn(split.num_items, 8, generator=gen)
    candidates = [dict(reg=1.0), dict(reg=50.0)]
    fusion, report = fit_hybrid(split, user, item, parts=('ease', 'rp3beta'),
                                coarse=(0.0, 1.0),
                                filter_candidates={'ease': candidates})
    assert report['filter_settings']['ease'] in candidates
    assert set(report['weights']) >= {'ease', 'rp3beta'}


def test_fit_hybrid_weighs_extra_runs_on_validation():
    r"""An extra run whose tables score the validation items on top beside
    a noise anchor: validation gives it a weight, its ODE time is chosen
    among the candidates, and the test stage propagates its test tables
    at that time over every known interaction."""
    split = split_with_validation()
    U, I = split.num_users, split.num_items
    gen = torch.Generator().manual_seed(3)
    noise = (torch.randn(U, 4, generator=gen), torch.randn(I, 4,
                                                           generator=gen))
    # One-hot users, items carrying their validation (and test) users.
    good_items = torch.zeros(I, U)
    good_items[split.val_index[1], split.val_index[0]] = 1.0
    good = (torch.eye(U), good_items)
    refit_items = torch.zeros(I, U)
    refit_items[split.test_index[1], split.test_index[0]] = 1.0
    fusion, report = fit_hybrid(
        split, *noise, parts=(), t=[0.0, 1.0], coarse=(0.0, 1.0, 4.0),
        refine=(), extra_tables={'good': (*good, (torch.eye(U),
                                                  refit_items))})
    best = max(report['validation'], key=lambda row: row['ndcg@20'])
    assert report['weights']['good'] > 0
    assert report['weights']['good'] == max(
        best['weights']['good@0'], best['weights']['good@1'])
    chosen = report['extra_t']['good']
    assert best['weights'][f'good@{chosen:g}'] == report['weights']['good']
    # Every weighting uses at most one propagated member of the slot.
    assert all(row['weights']['good@0'] == 0 or row['weights']['good@1'] == 0
               for row in report['validation'])
    users = torch.arange(U)
    expected = propagate_tables(torch.eye(U), refit_items,
                                known_graph(split, 'test'), t=chosen)
    assert torch.allclose(fusion.scorers[1].score(users),
                          expected[0] @ expected[1].t(), atol=1e-5)
    # One candidate time: the run is a plain part with its own weight.
    _, single = fit_hybrid(split, *noise, parts=(), t=1.0,
                           coarse=(0.0, 1.0), refine=(),
                           extra_tables={'good': good})
    assert single['weights']['good'] == 1.0
    assert single['extra_t'] == {'good': 1.0}
    for bad in ({'good': (good[0][:-1], good[1])},
                {'good': (*good, (good[0], good[1][:, :3]))},
                {'bspm': good}, {'a@b': good}):
        with pytest.raises(ValueError, match="'extra_tables'"):
            fit_hybrid(split, *noise, parts=(), extra_tables=bad)


def test_fit_hybrid_per_part_weights_and_userknn_part():
    split = split_with_validation()
    gen = torch.Generator().manual_seed(4)
    user = torch.randn(split.num_users, 8, generator=gen)
    item = torch.randn(split.num_items, 8, generator=gen)
    fusion, report = fit_hybrid(
        split, user, item, parts=('gfcf', 'userknn'), refine=(),
        coarse={'gfcf': [0.0, 0.5], 'userknn': [0.0, 0.3, 3.0]},
        filter_overrides={'gfcf': {'k': 4}, 'userknn': {'k': 5}})
    rows = report['validation']
    assert len(rows) == 6
    assert {row['weights']['userknn'] for row in rows} == {0.0, 0.3, 3.0}
    assert {row['weights']['gfcf'] for row in rows} == {0.0, 0.5}
    best = max(rows, key=lambda row: row['ndcg@20'])['weights']
    assert report['weights'] == {'lightgode': 1.0, 'gfcf': best['gfcf'],
                                 'userknn': best['userknn']}
    # Random tables: the neighbours win here. The test-stage user-kNN part
    # is fitted on every known interaction.
    assert best['userknn'] == 3.0
    part = fusion.scorers[-1]
    assert isinstance(part, UserKNN) and part.k == 5
    users = torch.arange(split.num_users)
    expected = make_filter('userknn', split.name, split.num_users,
                           split.num_items, k=5).fit(
        known_graph(split, 'test')).score(users)
    assert torch.allclose(part.score(users), expected)
    with pytest.raises(ValueError, match="'coarse'"):
        fit_hybrid(split, user, item, parts=('gfcf', 'userknn'),
                   coarse={'gfcf': [0.0]})
