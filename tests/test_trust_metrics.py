r"""Per-user metric vectors, beyond-accuracy metrics, the paired Wilcoxon
test and Holm's correction, and a cross-check of Recall@K / NDCG@K against
PyG's LinkPredRecall / LinkPredNDCG."""
import math

import pytest
import torch
from torch_geometric.metrics import LinkPredNDCG, LinkPredRecall

from pyg_lightgode.metrics import RankingEvaluator, recommend
from pyg_lightgode.metrics.beyond import (
    gini_index,
    item_coverage,
    mean_popularity_rank,
    popularity_ranks,
    recommendation_counts,
)
from pyg_lightgode.metrics.significance import holm, wilcoxon_signed_rank


def random_problem(seed, num_users=50, num_items=40, dim=6):
    gen = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(num_users, dim, generator=gen)
    item_emb = torch.randn(num_items, dim, generator=gen)

    def pairs(n):
        pairs = torch.stack([torch.randint(num_users, (n, ), generator=gen),
                             torch.randint(num_items, (n, ), generator=gen)])
        key = torch.unique(pairs[0] * num_items + pairs[1])  # No repeats.
        return torch.stack([key // num_items, key % num_items])

    train, test = pairs(400), pairs(150)
    return user_emb, item_emb, train, test


def spec_metrics(top, truth, k):
    r"""SPEC section 3 by hand: recall = hits / |T_u|; NDCG with IDCG over
    min(|T_u|, K) positions."""
    hits = [p for p, i in enumerate(top[:k], 1) if i in truth]
    idcg = sum(1 / math.log2(p + 1) for p in range(1, min(len(truth), k)
                                                   + 1))
    return (len(hits) / len(truth),
            sum(1 / math.log2(p + 1) for p in hits) / idcg)


@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('k', [1, 5, 20])
def test_recall_ndcg_agree_with_pyg_link_pred_metrics(seed, k):
    user_emb, item_emb, train, test = random_problem(seed)
    evaluator = RankingEvaluator(test, exclude_links=train, ks=(k, ),
                                 metrics=('recall', 'ndcg'), batch_size=16)
    out = evaluator(user_emb, item_emb)
    users = evaluator.user_index
    # Independent path: the package's top-k lists fed to PyG's metrics and
    # to a by-hand SPEC implementation, user by user.
    top = recommend(user_emb, item_emb, users=users, k=k,
                    exclude_links=train).index
    label = torch.stack([
        (users.unsqueeze(1) == test[0]).nonzero()[:, 0], test[1][
            (users.unsqueeze(1) == test[0]).nonzero()[:, 1]]])
    recall, ndcg = LinkPredRecall(k), LinkPredNDCG(k)
    pred = top.masked_fill(top < 0, item_emb.size(0))
    recall.update(pred, label)
    ndcg.update(pred, label)
    assert out[f'recall@{k}'] == pytest.approx(float(recall.compute()),
                                               abs=1e-6)
    assert out[f'ndcg@{k}'] == pytest.approx(float(ndcg.compute()), abs=1e-6)
    by_hand = []
    for row, u in enumerate(users.tolist()):
        truth = set(test[1][test[0] == u].tolist())
        by_hand.append(spec_metrics(top[row].tolist(), truth, k))
    by_hand = torch.tensor(by_hand)
    torch.testing.assert_close(evaluator.per_user[f'recall@{k}'],
                               by_hand[:, 0].float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(evaluator.per_user[f'ndcg@{k}'],
                               by_hand[:, 1].float(), atol=1e-6, rtol=0)


def test_pyg_counts_repeated_labels_the_package_does_not():
    # Where the definitions differ: a test pair listed twice counts twice
    # in PyG's |T_u| (recall 1/2 here) and once in the package's (1).
    pred = torch.tensor([[3, 1]])
    label = torch.tensor([[0, 0], [3, 3]])
    recall = LinkPredRecall(2)
    recall.update(pred, label)
    assert float(recall.compute()) == pytest.approx(0.5)
    out = RankingEvaluator(torch.tensor([[0, 0], [3, 3]]), ks=(2, ),
                           metrics='recall')(torch.tensor([[0., 1, 0, 2]]),
                                             torch.eye(4))
    assert out['recall@2'] == pytest.approx(1.0)


def test_per_user_vectors_average_to_the_metrics_and_follow_users():
    user_emb, item_emb, train, test = random_problem(3)
    evaluator = RankingEvaluator(test, exclude_links=train, ks=(5, 10),
                                 batch_size=7)
    out = evaluator(user_emb, item_emb)
    has_test = torch.unique(test[0])
    assert torch.equal(evaluator.user_index, has_test)
    assert set(evaluator.per_user) == set(out)
    for name, values in evaluator.per_user.items():
        assert values.shape == (has_test.numel(), )
        assert float(values.mean()) == pytest.approx(out[name], abs=1e-6)
    # The scorer path keeps the same vectors.
    scores = user_emb @ item_emb.t()
    per_user = dict(evaluator.per_user)
    evaluator.evaluate_scorer(lambda u: scores[u], 50, 40)
    for name, values in per_user.items():
        torch.testing.assert_close(evaluator.per_user[name], values)


def test_beyond_accuracy_by_hand():
    # 3 users x top-2 over 5 items; -1 is padding.
    index = torch.tensor([[0, 1], [0, 2], [0, -1]])
    counts = recommendation_counts(index, 5)
    assert counts.tolist() == [3, 1, 1, 0, 0]
    assert item_coverage(counts) == pytest.approx(3 / 5)
    # Sorted counts 0 0 1 1 3, weights 2j - n - 1 = -4 -2 0 2 4.
    assert gini_index(counts) == pytest.approx((0 + 0 + 0 + 2 + 12) /
                                               (5 * 5))
    assert gini_index(torch.ones(4, dtype=torch.long)) == 0.0
    degree = torch.tensor([10, 3, 7, 7, 0])
    assert popularity_ranks(degree).tolist() == [1, 4, 2, 2, 5]
    assert mean_popularity_rank(counts, degree) == pytest.approx(
        (3 * 1 + 4 + 2) / 5)


def test_gini_matches_recbole_formula():
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(30, (20, 10), generator=gen) ** 2 % 30
    counts = recommendation_counts(index, 30)
    # RecBole's GiniIndex on the recommended items only.
    values = sorted(c for c in counts.tolist() if c > 0)
    idx = torch.arange(30 - len(values) + 1, 30 + 1).double()
    expected = float(((2 * idx - 30 - 1) * torch.tensor(values).double())
                     .sum()) / index.numel() / 30
    assert gini_index(counts) == pytest.approx(expected)


def test_evaluator_list_metrics():
    user_emb, item_emb, train, test = random_problem(4)
    evaluator = RankingEvaluator(
        test, exclude_links=train, ks=(3, 10),
        metrics=('recall', 'coverage', 'gini', 'popularity_rank'))
    out = evaluator(user_emb, item_emb)
    users = evaluator.user_index
    for k in (3, 10):
        top = recommend(user_emb, item_emb, users=users, k=k,
                        exclude_links=train).index
        counts = recommendation_counts(top, 40)
        degree = torch.bincount(train[1], minlength=40)
        assert out[f'coverage@{k}'] == pytest.approx(item_coverage(counts))
        assert out[f'gini@{k}'] == pytest.approx(gini_index(counts))
        assert out[f'popularity_rank@{k}'] == pytest.approx(
            mean_popularity_rank(counts, degree))
    assert out['gini@3'] > out['gini@10'] - 1  # Both defined.
    assert 'coverage@3' not in evaluator.per_user
    with pytest.raises(ValueError, match='exclude'):
        RankingEvaluator(test, metrics='popularity_rank')
    only = RankingEvaluator(test, exclude_links=train, metrics='coverage')
    assert set(only(user_emb, item_emb)) == {'coverage@20'}


@pytest.mark.parametrize('case', range(12))
def test_wilcoxon_matches_scipy(case):
    stats = pytest.importorskip('scipy.stats')
    gen = torch.Generator().manual_seed(case)
    n = [8, 12, 30, 45, 60, 300][case % 6]
    a = torch.rand(n, generator=gen, dtype=torch.float64)
    b = a + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64) + 0.02
    if case >= 6:  # Ties and zero differences (metric values often tie).
        a, b = (a * 4).round() / 4, (b * 4).round() / 4
    if bool((a == b).all()):
        b[0] += 0.25
    expected = stats.wilcoxon(a.numpy(), b.numpy()).pvalue
    assert wilcoxon_signed_rank(a, b) == pytest.approx(expected, rel=1e-9,
                                                       abs=1e-12)
    approx = stats.wilcoxon(a.numpy(), b.numpy(), method='asymptotic')
    assert wilcoxon_signed_rank(a, b, method='approx') == pytest.approx(
        approx.pvalue, rel=1e-9, abs=1e-12)


def test_wilcoxon_edge_cases():
    a = torch.tensor([0.1, 0.2, 0.3])
    assert wilcoxon_signed_rank(a, a) == 1.0
    # Symmetric in its arguments; a clear shift is significant.
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, generator=gen)
    y = x + 0.05
    assert wilcoxon_signed_rank(x, y) == pytest.approx(
        wilcoxon_signed_rank(y, x))
    assert wilcoxon_signed_rank(x, y) < 1e-10
    with pytest.raises(ValueError, match='paired'):
        wilcoxon_signed_rank(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match='method'):
        wilcoxon_signed_rank(x, y, method='t')


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Sorted: 0.005 (x4) 0.01 (x3) 0.03 (x2) 0.04 (x1), running maximum.
    expected = [0.03, 0.06, 0.06, 0.02]
    assert holm(p) == pytest.approx(expected)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    gen = torch.Generator().manual_seed(1)
    p = torch.rand(7, generator=gen)
    adjusted = torch.tensor(holm(p), dtype=torch.float64)
    assert bool((adjusted >= p.double() - 1e-12).all())
    order = p.argsort()
    assert bool((adjusted[order].diff() >= 0).all())
    with pytest.raises(ValueError):
        holm([1.5])
