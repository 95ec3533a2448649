import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyg_lightgode.apps.serving.fold_in import LightGODEFoldIn
from pyg_lightgode.apps.serving.recommenders import (
    ARTEFACT_FORMAT,
    ARTEFACT_VERSION,
    ArtefactError,
    FilterRecommender,
    ItemEmbeddingRecommender,
    LightGODERecommender,
    check_history,
    load_recommender,
    recommend_history,
)
from pyg_lightgode.nn.models import (
    EASE,
    GFCF,
    ChebyCF,
    ItemKNN,
    RP3beta,
    TurboCF,
    UserKNN,
)

ROOT = Path(__file__).resolve().parents[1]
U, I, D = 40, 30, 8


def graph(seed=0):
    gen = torch.Generator().manual_seed(seed)
    index = torch.stack([torch.randint(0, U, (240, ), generator=gen),
                         torch.randint(0, I, (240, ), generator=gen)])
    return (torch.randn(U, D, generator=gen), torch.randn(I, D, generator=gen),
            index.unique(dim=1))


@pytest.fixture
def lightgode():
    user, item, index = graph()
    return LightGODERecommender(user, item, index, t=3.0,
                                item_ids=[f'i{j}' for j in range(I)])


def ranking(scores, exclude, k):
    scores = scores.clone()
    scores[exclude] = float('-inf')
    return torch.topk(scores, k)


def test_lightgode_history_ranks_as_a_full_fold_in(lightgode):
    user, item, index = graph()
    history = [4, 17, 4, 2]
    ids, scores = lightgode.recommend(history, k=6)
    fold = LightGODEFoldIn(user, item, index, t=3.0)
    h = torch.tensor([2, 4, 17])
    fold.add(torch.stack([torch.full((3, ), U), h]), num_new_users=1)
    full = fold.item_embedding @ fold.user_embedding[U]
    ref_scores, ref_ids = ranking(full, h, 6)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(scores, ref_scores)
    assert not set(ids.tolist()) & set(history)


def test_filters_score_the_history_row():
    user, item, index = graph()
    for cls, name, kwargs in ((TurboCF, 'turbocf', {}),
                              (GFCF, 'gfcf', {'k': 4}),
                              (ChebyCF, 'chebycf', {'k': 4}),
                              (UserKNN, 'userknn', {'k': 3}),
                              (ItemKNN, 'itemknn', {'k': 3}),
                              (EASE, 'ease', {'reg': 2.0}),
                              (RP3beta, 'rp3beta', {'k': 4, 'beta': 0.2})):
        rec = FilterRecommender(name, U, I, index, **kwargs)
        model = cls(U, I, **kwargs).fit(index)
        row = torch.zeros(1, I)
        row[0, [1, 6]] = 1
        ref_scores, ref_ids = ranking(model(row)[0], [1, 6], 5)
        ids, scores = rec.recommend(torch.tensor([6, 1]), k=5)
        assert torch.equal(ids, ref_ids)
        torch.testing.assert_close(scores, ref_scores)


def test_item_embeddings_score_the_mean_of_the_history():
    emb = torch.randn(I, D)
    rec = ItemEmbeddingRecommender(emb)
    ids, scores = rec.recommend([3, 5], k=4)
    ref_scores, ref_ids = ranking(emb @ emb[[3, 5]].mean(0), [3, 5], 4)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(scores, ref_scores)


def test_exclusions_and_short_results(lightgode):
    ids, _ = lightgode.recommend([0], k=50)
    assert ids.numel() == I - 1 and 0 not in ids.tolist()
    ids, _ = lightgode.recommend([0, 1], k=5, exclude=range(2, I - 2))
    assert sorted(ids.tolist()) == [I - 2, I - 1]
    # History and exclusions cover the catalogue: an empty result.
    ids, scores = lightgode.recommend([0, 1], k=5, exclude=range(I))
    assert ids.numel() == 0 and scores.numel() == 0
    # A history made only of excluded items is still answered.
    ids, _ = lightgode.recommend([0, 1], k=3, exclude=[0, 1])
    assert ids.numel() == 3 and not {0, 1} & set(ids.tolist())


@pytest.mark.parametrize('history, error, match', [
    ([], ValueError, 'empty'),
    (torch.tensor([], dtype=torch.long), ValueError, 'empty'),
    ([I], ValueError, r'outside the catalogue \[0, 29\]: \[30\]'),
    ([-1, 3], ValueError, 'outside the catalogue'),
    ([1.5], TypeError, 'integer item ids'),
    ([True], TypeError, 'integer item ids'),
    (['i3'], TypeError, 'lookup'),
    ('3 4', TypeError, 'sequence'),
    (torch.tensor([[1, 2]]), ValueError, '1-D'),
    (torch.tensor([1.0]), TypeError, 'integer item ids'),
])
def test_bad_histories(lightgode, history, error, match):
    with pytest.raises(error, match=match):
        lightgode.recommend(history)


def test_bad_arguments(lightgode):
    with pytest.raises(ValueError, match="'k'"):
        lightgode.recommend([1], k=0)
    with pytest.raises(ValueError, match="'exclude'"):
        lightgode.recommend([1], exclude=[I + 5])
    with pytest.raises(ValueError, match='unknown filter'):
        FilterRecommender('svd', U, I, graph()[2])
    with pytest.raises(TypeError, match='JSON'):
        FilterRecommender('turbocf', U, I, graph()[2],
                          alpha=torch.tensor(0.5))
    with pytest.raises(ValueError, match='one raw id per item'):
        ItemEmbeddingRecommender(torch.randn(I, D), item_ids=['a'])


def test_raw_ids(lightgode):
    assert lightgode.lookup(['i3', 'i7']).tolist() == [3, 7]
    with pytest.raises(ValueError, match=r"unknown item id\(s\): \['zz'\]"):
        lightgode.lookup(['i3', 'zz'])
    assert lightgode.lookup(['i3', 'zz'], unknown='ignore').tolist() == [3]
    assert lightgode.raw(torch.tensor([1, 0])) == ['i1', 'i0']
    with pytest.raises(ValueError, match='no raw item ids'):
        ItemEmbeddingRecommender(torch.randn(I, D)).lookup(['1'])


def test_check_history_sorts_and_deduplicates():
    assert check_history([5, 1, 5], 10).tolist() == [1, 5]


def test_artefacts_round_trip(tmp_path, lightgode):
    user, item, index = graph()
    lightgode.fold.add(torch.tensor([[U], [3]]), num_new_users=1)
    recs = {
        'lightgode': lightgode,
        'filter': FilterRecommender('gfcf', U, I, index, k=4, alpha=0.3),
        'item-embedding': ItemEmbeddingRecommender(torch.randn(I, D)),
    }
    for kind, rec in recs.items():
        path = str(tmp_path / f'{kind}.pt')
        rec.save(path)
        loaded = load_recommender(path)
        assert loaded.kind == kind and loaded.num_items == I
        for history in ([1, 2], [7]):
            a, b = rec.recommend(history, k=5), loaded.recommend(history,
                                                                 k=5)
            assert torch.equal(a[0], b[0])
            torch.testing.assert_close(a[1], b[1])
        a = recommend_history(path, [1, 2], k=3)
        assert torch.equal(a[0], rec.recommend([1, 2], k=3)[0])
    loaded = load_recommender(str(tmp_path / 'lightgode.pt'))
    assert loaded.item_ids == lightgode.item_ids
    assert loaded.fold.num_users == U + 1
    assert torch.equal(loaded.fold.user_embedding,
                       lightgode.fold.user_embedding)


class Boom:
    def __reduce__(self):
        return (os.system, ('touch /tmp/pyg_lightgode_serving_pwned', ))


def test_bad_artefacts(tmp_path, lightgode):
    def write(obj, name='a.pt'):
        path = str(tmp_path / name)
        torch.save(obj, path)
        return path

    with pytest.raises(ArtefactError, match='does not exist'):
        load_recommender(str(tmp_path / 'missing.pt'))
    empty = tmp_path / 'empty.pt'
    empty.write_bytes(b'')
    with pytest.raises(ArtefactError, match="'.*empty.pt' is empty"):
        load_recommender(str(empty))
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a torch file at all')
    with pytest.raises(ArtefactError, match='junk.pt.*weights-only'):
        load_recommender(str(junk))
    flag = Path('/tmp/pyg_lightgode_serving_pwned')
    flag.unlink(missing_ok=True)
    with pytest.raises(ArtefactError, match='refused'):
        load_recommender(write({'format': ARTEFACT_FORMAT, 'x': Boom()}))
    assert not flag.exists()
    with pytest.raises(ArtefactError, match='is not a'):
        load_recommender(write({'format': 'other'}))
    base = {'format': ARTEFACT_FORMAT, 'version': ARTEFACT_VERSION,
            'kind': 'lightgode', 'config': '{}', 'tensors': {}}
    with pytest.raises(ArtefactError, match='version 99'):
        load_recommender(write(dict(base, version=99)))
    with pytest.raises(ArtefactError, match="unknown kind 'x'"):
        load_recommender(write(dict(base, kind='x')))
    with pytest.raises(ArtefactError, match='not valid JSON'):
        load_recommender(write(dict(base, config='{')))
    with pytest.raises(ArtefactError, match="'num_items'"):
        load_recommender(write(dict(base)))
    path = str(tmp_path / 'good.pt')
    lightgode.save(path)
    state = torch.load(path, weights_only=True)
    del state['tensors']['item_e0']
    with pytest.raises(ArtefactError, match="lacks the tensor 'item_e0'"):
        load_recommender(write(state, 'cut.pt'))
    state = torch.load(path, weights_only=True)
    state['tensors']['edge_index'] = state['tensors']['edge_index'] + I
    with pytest.raises(ArtefactError, match='bad.pt.*ids in'):
        load_recommender(write(state, 'bad.pt'))
    with pytest.raises(TypeError, match='Recommender or the path'):
        recommend_history(42, [1])


@pytest.mark.slow
def test_serve_example_answers_a_scripted_history(tmp_path, lightgode):
    path = str(tmp_path / 'model.pt')
    lightgode.save(path)
    script = '4 17,2\n\n1 99\nfoo\n4 17 2\n'
    run = subprocess.run(
        [sys.executable, str(ROOT / 'examples' / 'serve.py'), path, '--k',
         '3', '--exclude', '5'], input=script, capture_output=True,
        text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == 5
    ids, scores = lightgode.recommend([4, 17, 2], k=3, exclude=[5])
    assert lines[0]['items'] == ids.tolist() == lines[4]['items']
    assert lines[0]['scores'] == pytest.approx(scores.tolist(), abs=1e-5)
    assert 'empty' in lines[1]['error']
    assert 'outside the catalogue' in lines[2]['error']
    assert 'not an integer' in lines[3]['error']
    # Raw ids in and out.
    run = subprocess.run(
        [sys.executable, str(ROOT / 'examples' / 'serve.py'), path, '--k',
         '2', '--raw-ids'], input='i4 i17 i2\ni4 nope\n',
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines[0]['items'] == lightgode.raw(
        lightgode.recommend([4, 17, 2], k=2)[0])
    assert 'unknown item id' in lines[1]['error']
    # A broken artefact: a clear message and exit status 2.
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'garbage')
    run = subprocess.run([sys.executable, str(ROOT / 'examples' /
                                              'serve.py'), str(bad)],
                         input='', capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2 and 'bad.pt' in run.stderr


def test_from_model_reads_the_trained_tables_and_t():
    from pyg_lightgode.nn.models import LightGODE
    user, item, index = graph()
    model = LightGODE(U, I, D, t=2.0)
    with torch.no_grad():
        model.user_embedding.weight.copy_(user)
        model.item_embedding.weight.copy_(item)
    rec = LightGODERecommender.from_model(model, index)
    ref = LightGODERecommender(user, item, index, t=2.0)
    assert rec.fold.t == 2.0
    assert torch.equal(rec.recommend([1, 3])[0], ref.recommend([1, 3])[0])
