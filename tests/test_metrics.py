import math

import pytest
import torch

from pyg_lightgode.metrics import RankingEvaluator, evaluate_ranking, recommend
from pyg_lightgode.metrics.ranking import (
    RANKING_METRICS,
    UserItemCSR,
    recommend_from_scorer,
)

# Hand-made ranking: with one-hot item embeddings, user u's embedding row IS
# its score for every item, so the rankings below are readable directly.
ITEM_EMB = torch.eye(6)
USER_EMB = torch.tensor([
    [6., 5., 4., 3., 2., 1.],  # u0: 0 1 2 3 4 5
    [1., 2., 3., 4., 5., 6.],  # u1: 5 4 3 2 1 0
    [3., 6., 1., 5., 2., 4.],  # u2: 1 3 5 0 4 2
    [2., 1., 6., 5., 4., 3.],  # u3: 2 3 4 5 0 1 (no test items)
])
TRAIN = torch.tensor([[0, 2, 2], [1, 1, 3]])
VAL = torch.tensor([[2], [5]])
TEST = torch.tensor([[0, 0, 1, 2, 2], [2, 5, 5, 4, 2]])
NEG = float('-inf')


def idcg(n):
    return sum(1 / math.log2(p + 1) for p in range(1, n + 1))


# Per-user values by hand, after excluding TRAIN + VAL:
# u0 ranks 0 2 3 4 5 (test {2, 5}), u1 ranks 5 4 3 2 1 0 (test {5}),
# u2 ranks 0 4 2 (test {2, 4}).
HAND = {
    1: [
        dict(recall=0, precision=0, hit_rate=0, ndcg=0, mrr=0),
        dict(recall=1, precision=1, hit_rate=1, ndcg=1, mrr=1),
        dict(recall=0, precision=0, hit_rate=0, ndcg=0, mrr=0),
    ],
    3: [
        dict(recall=1 / 2, precision=1 / 3, hit_rate=1,
             ndcg=(1 / math.log2(3)) / idcg(2), mrr=1 / 2),
        dict(recall=1, precision=1 / 3, hit_rate=1, ndcg=1, mrr=1),
        dict(recall=1, precision=2 / 3, hit_rate=1,
             ndcg=(1 / math.log2(3) + 1 / 2) / idcg(2), mrr=1 / 2),
    ],
    5: [
        dict(recall=1, precision=2 / 5, hit_rate=1,
             ndcg=(1 / math.log2(3) + 1 / math.log2(6)) / idcg(2), mrr=1 / 2),
        dict(recall=1, precision=1 / 5, hit_rate=1, ndcg=1, mrr=1),
        dict(recall=1, precision=2 / 5, hit_rate=1,
             ndcg=(1 / math.log2(3) + 1 / 2) / idcg(2), mrr=1 / 2),
    ],
}


def hand_mean(k, users=(0, 1, 2)):
    return {
        f'{name}@{k}': sum(HAND[k][u][name] for u in users) / len(users)
        for name in RANKING_METRICS
    }


def assert_metrics(out, expected, tol=1e-6):
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=tol), key


def test_recommend_hand_ranking_with_exclusion_and_padding():
    score, index = recommend(USER_EMB, ITEM_EMB, k=6, exclude_links=[TRAIN,
                                                                     VAL])
    assert index.tolist() == [
        [0, 2, 3, 4, 5, -1],
        [5, 4, 3, 2, 1, 0],
        [0, 4, 2, -1, -1, -1],
        [2, 3, 4, 5, 0, 1],
    ]
    assert index.dtype == torch.long and score.shape == (4, 6)
    assert score[0].tolist() == [6., 4., 3., 2., 1., NEG]
    assert score[2].tolist() == [3., 2., 1., NEG, NEG, NEG]

    # Without the validation item, u2 gets item 5 back at the top:
    _, index = recommend(USER_EMB, ITEM_EMB, k=6, exclude_links=TRAIN)
    assert index[2].tolist() == [5, 0, 4, 2, -1, -1]
    # No exclusion, a subset of users, k smaller than the catalogue:
    score, index = recommend(USER_EMB, ITEM_EMB, users=torch.tensor([2, 0]),
                             k=2)
    assert index.tolist() == [[1, 3], [0, 1]]
    assert score.tolist() == [[6., 5.], [6., 5.]]


def test_recommend_pads_when_k_exceeds_items():
    user_emb, item_emb = torch.tensor([[1.], [-1.]]), torch.tensor([[1.], [
        2.
    ], [3.]])
    for chunk in (None, 1, 2):
        score, index = recommend(user_emb, item_emb, k=5,
                                 exclude_links=torch.tensor([[1], [0]]),
                                 item_chunk_size=chunk)
        assert index.tolist() == [[2, 1, 0, -1, -1], [1, 2, -1, -1, -1]]
        assert score.tolist() == [[3., 2., 1., NEG, NEG],
                                  [-2., -3., NEG, NEG, NEG]]


@pytest.mark.parametrize('k', [1, 3, 5])
def test_metric_values_by_hand(k):
    out = evaluate_ranking(USER_EMB, ITEM_EMB, TEST, exclude_links=[TRAIN,
                                                                    VAL],
                           ks=(k, ))
    assert_metrics(out, hand_mean(k))


def test_all_ks_in_one_pass_and_metric_selection():
    out = evaluate_ranking(USER_EMB, ITEM_EMB, TEST, exclude_links=[TRAIN,
                                                                    VAL],
                           ks=(5, 1, 3), metrics=('ndcg', 'mrr'))
    expected = {}
    for k in (1, 3, 5):
        expected.update({
            key: value
            for key, value in hand_mean(k).items()
            if key.startswith(('ndcg', 'mrr'))
        })
    assert_metrics(out, expected)


def test_users_without_test_items_are_ignored():
    # u3 has no test item: evaluating it explicitly changes nothing.
    out = evaluate_ranking(USER_EMB, ITEM_EMB, TEST, exclude_links=[TRAIN,
                                                                    VAL],
                           ks=3, users=torch.tensor([0, 1, 2, 3]))
    assert_metrics(out, hand_mean(3))
    out = evaluate_ranking(USER_EMB, ITEM_EMB, TEST, exclude_links=[TRAIN,
                                                                    VAL],
                           ks=3, users=torch.tensor([2, 3]))
    assert_metrics(out, hand_mean(3, users=(2, )))


def test_duplicate_test_pairs_count_once():
    test = torch.cat([TEST, TEST[:, :2]], dim=1)
    out = evaluate_ranking(USER_EMB, ITEM_EMB, test, exclude_links=[TRAIN,
                                                                    VAL],
                           ks=5)
    assert_metrics(out, hand_mean(5))


def test_evaluator_is_reusable():
    evaluator = RankingEvaluator(TEST, exclude_links=[TRAIN, VAL], num_users=4,
                                 num_items=6, ks=(3, ))
    first = evaluator(USER_EMB, ITEM_EMB)
    assert_metrics(first, hand_mean(3))
    # Reversing every user's preferences gives other values...
    other = evaluator(-USER_EMB, ITEM_EMB)
    assert other['recall@3'] != pytest.approx(first['recall@3'])
    # ... and the accumulated state is reset between calls.
    assert evaluator(USER_EMB, ITEM_EMB) == first


def test_user_item_csr_rows():
    csr = UserItemCSR([TRAIN, VAL, TRAIN], 4, 6)  # Duplicates removed.
    assert csr.count.tolist() == [1, 0, 3, 0]
    row, col = csr.rows(torch.tensor([2, 1, 0, 2]))
    assert row.tolist() == [0, 0, 0, 2, 3, 3, 3]
    assert col.tolist() == [1, 3, 5, 1, 1, 3, 5]


def random_problem(seed, num_users=40, num_items=30, dim=8):
    gen = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(num_users, dim, generator=gen)
    item_emb = torch.randn(num_items, dim, generator=gen)

    def pairs(n):
        return torch.stack([
            torch.randint(num_users, (n, ), generator=gen),
            torch.randint(num_items, (n, ), generator=gen)
        ])

    # Users >= num_users - 5 get no test items; dense exclusion leaves
    # some users with fewer than 20 items.
    test = pairs(120)
    test = test[:, test[0] < num_users - 5]
    exclude = [pairs(300), torch.stack([
        torch.zeros(num_items - 3, dtype=torch.long),
        torch.arange(num_items - 3)
    ])]
    return user_emb, item_emb, test, exclude


def reference_metrics(user_emb, item_emb, test, exclude, ks):
    r"""Direct per-user implementation of SPEC section 3."""
    scores = user_emb @ item_emb.t()
    excluded = {(u, i) for idx in exclude for u, i in idx.t().tolist()}
    truth = {}
    for u, i in test.t().tolist():
        truth.setdefault(u, set()).add(i)
    sums = {f'{m}@{k}': 0.0 for k in ks for m in RANKING_METRICS}
    for u, items in truth.items():
        ranked = [
            i for i in scores[u].argsort(descending=True).tolist()
            if (u, i) not in excluded
        ]
        for k in ks:
            hits = [p for p, i in enumerate(ranked[:k], 1) if i in items]
            sums[f'recall@{k}'] += len(hits) / len(items)
            sums[f'precision@{k}'] += len(hits) / k
            sums[f'hit_rate@{k}'] += float(len(hits) > 0)
            sums[f'ndcg@{k}'] += sum(1 / math.log2(p + 1)
                                     for p in hits) / idcg(min(len(items), k))
            sums[f'mrr@{k}'] += 1 / hits[0] if hits else 0.0
    return {key: value / len(truth) for key, value in sums.items()}


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_agrees_with_per_user_reference(seed):
    user_emb, item_emb, test, exclude = random_problem(seed)
    ks = (1, 5, 10, 20)
    out = evaluate_ranking(user_emb, item_emb, test, exclude_links=exclude,
                           ks=ks,
                           batch_size=7)
    assert_metrics(out, reference_metrics(user_emb, item_emb, test, exclude,
                                          ks), tol=1e-5)


def test_batching_and_chunking_are_exact():
    user_emb, item_emb, test, exclude = random_problem(3)
    ref_score, ref_index = recommend(user_emb, item_emb, k=10,
                                     exclude_links=exclude, batch_size=1000)
    ref = evaluate_ranking(user_emb, item_emb, test, exclude_links=exclude,
                           ks=(5, 10), batch_size=1000)
    assert (ref_index[0] == -1).sum() >= 10 - 3  # u0 keeps at most 3 items.
    for batch_size, item_chunk_size in [(1, None), (7, None), (7, 1),
                                        (16, 4), (1, 13), (7, 64)]:
        score, index = recommend(user_emb, item_emb, k=10,
                                 exclude_links=exclude,
                                 batch_size=batch_size,
                                 item_chunk_size=item_chunk_size)
        assert torch.equal(index, ref_index)
        # Matmul blocking differs with the batch shape: scores are equal up
        # to rounding, and exactly -inf at the same (padded) places.
        assert torch.allclose(score, ref_score, rtol=0, atol=1e-5)
        out = evaluate_ranking(user_emb, item_emb, test, exclude_links=exclude,
                               ks=(5, 10), batch_size=batch_size,
                               item_chunk_size=item_chunk_size)
        assert_metrics(out, ref, tol=1e-6)


def test_score_fn():
    user_emb, item_emb, test, exclude = random_problem(4, dim=5)

    def neg_sq_dist(u, i):
        return -torch.cdist(u, i).pow(2)

    score, index = recommend(user_emb, item_emb, k=4, score_fn=neg_sq_dist,
                             batch_size=9, item_chunk_size=7)
    full = neg_sq_dist(user_emb, item_emb)
    ref_score, ref_index = full.topk(4, dim=-1)
    assert torch.equal(index, ref_index)
    assert torch.allclose(score, ref_score)
    assert not torch.equal(index, recommend(user_emb, item_emb, k=4)[0])

    # The evaluation through score_fn equals that of embeddings whose inner
    # product is the same score: [u, |u|^2, 1] . [2i, -1, -|i|^2].
    lift_u = torch.cat([user_emb, user_emb.pow(2).sum(1, keepdim=True),
                        torch.ones(user_emb.size(0), 1)], 1)
    lift_i = torch.cat([2 * item_emb, -torch.ones(item_emb.size(0), 1),
                        -item_emb.pow(2).sum(1, keepdim=True)], 1)
    out = evaluate_ranking(user_emb, item_emb, test, exclude_links=exclude,
                           ks=5,
                           score_fn=neg_sq_dist)
    assert_metrics(out, evaluate_ranking(lift_u, lift_i, test,
                                         exclude_links=exclude, ks=5),
                   tol=1e-5)

    # score_fn may use embeddings of other widths (here a bilinear form):
    weight = torch.randn(5, 3)
    _, index = recommend(user_emb, item_emb[:, :3], k=2,
                         score_fn=lambda u, i: u @ weight @ i.t())
    assert index.shape == (user_emb.size(0), 2)

    with pytest.raises(ValueError, match="'score_fn' must return"):
        recommend(user_emb, item_emb, k=2, score_fn=lambda u, i: u @ u.t())
    with pytest.raises(ValueError, match='NaN'):
        recommend(user_emb, item_emb, k=2,
                  score_fn=lambda u, i: torch.full((u.size(0), i.size(0)),
                                                   float('nan')))


def test_bad_input():
    u, i = USER_EMB, ITEM_EMB
    with pytest.raises(ValueError, match='same feature size'):
        evaluate_ranking(u, i[:, :5], TEST)
    with pytest.raises(ValueError, match=r"'user_emb' must have shape"):
        recommend(u[0], i)
    with pytest.raises(TypeError, match="'item_emb' must be a torch.Tensor"):
        recommend(u, i.tolist())
    for bad in (float('nan'), float('inf')):
        nan_emb = i.clone()
        nan_emb[2, 3] = bad
        with pytest.raises(ValueError, match="'item_emb' holds NaN"):
            evaluate_ranking(u, nan_emb, TEST)
    with pytest.raises(ValueError, match="'test_index' holds item ids"):
        evaluate_ranking(u, i, torch.tensor([[0], [6]]))
    with pytest.raises(ValueError,
                       match=r"'exclude_links\[1\]' holds user ids"):
        recommend(u, i, exclude_links=[TRAIN, torch.tensor([[4], [0]])])
    with pytest.raises(ValueError, match="'exclude_links' must have shape"):
        recommend(u, i, exclude_links=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="'users' holds ids"):
        recommend(u, i, users=torch.tensor([0, 4]))
    for k in (0, -3, 2.5):
        with pytest.raises(ValueError, match="'k' must be a positive"):
            recommend(u, i, k=k)
    with pytest.raises(ValueError, match="'ks' must be a positive"):
        evaluate_ranking(u, i, TEST, ks=(20, 0))
    with pytest.raises(ValueError, match="'batch_size' must be a positive"):
        evaluate_ranking(u, i, TEST, batch_size=0)
    with pytest.raises(ValueError, match=r"hit_rate.*got unknown \['map'\]"):
        evaluate_ranking(u, i, TEST, metrics=('recall', 'map'))
    with pytest.raises(ValueError, match='no user to evaluate'):
        evaluate_ranking(u, i, TEST, users=torch.tensor([3]))
    with pytest.raises(ValueError, match='no user to evaluate'):
        evaluate_ranking(u, i, torch.empty(2, 0, dtype=torch.long))
    evaluator = RankingEvaluator(TEST, num_users=4, num_items=6)
    with pytest.raises(ValueError, match='built for num_users=4'):
        evaluator(u[:3], i)


# ---------------------------------------------------------------------------
# Models that score users directly
# ---------------------------------------------------------------------------


def test_scorer_path_equals_embedding_path():
    user_emb, item_emb, test, exclude = random_problem(5)
    users = torch.tensor([3, 0, 39, 17, 17, 8])
    calls = []

    def scorer(u):
        calls.append(u.numel())
        return user_emb[u] @ item_emb.t()

    for batch_size in (1, 7, 1000):
        for selected in (None, users):
            for k in (5, 40):  # 40 > 30 items: padded.
                expected = recommend(user_emb, item_emb, selected, k=k,
                                     exclude_links=exclude,
                                     batch_size=batch_size)
                out = recommend_from_scorer(scorer, 40, 30, selected, k=k,
                                            exclude_links=exclude,
                                            batch_size=batch_size)
                assert torch.equal(out[0], expected[0])
                assert torch.equal(out[1], expected[1])
        evaluator = RankingEvaluator(test, exclude_links=exclude, ks=(1, 5,
                                                                      20),
                                     batch_size=batch_size)
        calls.clear()
        out = evaluator.evaluate_scorer(scorer, 40, 30)
        assert max(calls) <= batch_size
        assert out == evaluator(user_emb, item_emb)
        assert_metrics(out, reference_metrics(user_emb, item_emb, test,
                                              exclude, (1, 5, 20)), tol=1e-5)


def test_scorer_scores_are_not_modified():
    scores = USER_EMB @ ITEM_EMB.t()
    before = scores.clone()
    evaluator = RankingEvaluator(TEST, exclude_links=[TRAIN, VAL], ks=(1, 3,
                                                                       5))
    out = evaluator.evaluate_scorer(lambda u: scores[u], 4, 6)
    for k in (1, 3, 5):
        assert_metrics({key: v for key, v in out.items()
                        if key.endswith(f'@{k}')}, hand_mean(k))
    # A full-batch scorer returning a view of its data:
    _, index = recommend_from_scorer(lambda u: scores[:u.numel()], 4, 6, k=6,
                                     exclude_links=[TRAIN, VAL])
    assert index[2].tolist() == [0, 4, 2, -1, -1, -1]
    assert torch.equal(scores, before)


def test_scorer_bad_input():
    evaluator = RankingEvaluator(TEST, num_users=4, num_items=6)
    with pytest.raises(TypeError, match="'scorer' must be callable"):
        evaluator.evaluate_scorer(None, 4, 6)
    with pytest.raises(ValueError, match='built for num_users=4'):
        evaluator.evaluate_scorer(lambda u: USER_EMB[u], 3, 6)
    with pytest.raises(ValueError, match="'num_items' must be a positive"):
        recommend_from_scorer(lambda u: USER_EMB[u], 4, 0)
    with pytest.raises(ValueError, match=r"'scorer' must return scores of "
                       r"shape \[4, 5\]"):
        recommend_from_scorer(lambda u: USER_EMB[u], 4, 5)
    with pytest.raises(ValueError, match="'scorer' must return floating"):
        recommend_from_scorer(lambda u: USER_EMB[u].long(), 4, 6)
    with pytest.raises(ValueError, match=r"NaN \(check 'scorer'\)"):
        recommend_from_scorer(lambda u: USER_EMB[u] * float('nan'), 4, 6)
    with pytest.raises(ValueError, match="'users' holds ids"):
        recommend_from_scorer(lambda u: USER_EMB[u], 4, 6,
                              users=torch.tensor([4]))


def test_evaluator_batches_are_the_ranked_users_with_their_exclusions():
    from pyg_lightgode.metrics.retrieval import mask_excluded
    gen = torch.Generator().manual_seed(3)
    U, I = 9, 12
    train = torch.stack([torch.randint(0, U, (30, ), generator=gen),
                         torch.randint(0, I, (30, ), generator=gen)])
    test = torch.tensor([[0, 0, 2, 5, 8], [1, 3, 4, 4, 11]])
    evaluator = RankingEvaluator(test, exclude_links=train, num_users=U,
                                 num_items=I, ks=(3, ), batch_size=2)
    batches = evaluator.batches(U, I)
    users = torch.cat([b[0] for b in batches])
    assert users.tolist() == [0, 2, 5, 8]  # Only users with a test item.
    scores = torch.randn(U, I, generator=gen)
    for batch_users, excluded, _ in batches:
        masked = mask_excluded(scores[batch_users].clone(), excluded)
        for row, user in enumerate(batch_users.tolist()):
            seen = set(train[1, train[0] == user].tolist())
            assert {i for i in range(I)
                    if masked[row, i] == float('-inf')} == seen
    assert evaluator.batches(U, I) is batches  # Built once.
