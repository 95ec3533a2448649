r"""Nearest-neighbour scorers (:class:`UserKNN`, :class:`ItemKNN` and its
operator :func:`knn_item_item`): against dense float64 references,
inductive scoring of a user left out of the fit, batches, empty rows, the
evaluator on a hand-checkable graph, and bad input."""
import pytest
import torch

from pyg_lightgode.metrics import RankingEvaluator
from pyg_lightgode.nn.filters.operators import knn_item_item
from pyg_lightgode.nn.models import ItemKNN, UserKNN

U, I = 30, 25
F64 = torch.float64


def random_dense(seed=0, p=0.2):
    gen = torch.Generator().manual_seed(seed)
    R = (torch.rand(U, I, generator=gen) < p).to(F64)
    R[4] = 0  # A user without interactions.
    return R


def dense_reference(R, rows, k, alpha, power, own=None):
    r"""Scores of :obj:`rows` by the formula of the docstring, float64;
    :obj:`own` are the rows' user ids (left out of their neighbours)."""
    d = R.sum(1)
    own_degree = rows.sum(1).clamp_min(1e-12) ** alpha
    sim = (rows @ R.t()) / own_degree[:, None] / (
        d.clamp_min(1e-12) ** (1 - alpha))[None, :]
    if own is not None:
        sim[torch.arange(rows.size(0)), own] = 0
    weight, index = sim.topk(k, dim=1)
    S = torch.zeros_like(sim).scatter_(1, index, weight.clamp_min(0) ** power)
    return S @ R


@pytest.mark.parametrize('k,alpha,power', [(3, 0.5, 1.0), (8, 0.0, 2.0),
                                           (1, 1.0, 0.5), (U, 0.5, 1.0)])
def test_scores_match_dense_reference(k, alpha, power):
    R = random_dense()
    model = UserKNN(U, I, k=k, alpha=alpha, power=power).fit(
        R.nonzero().t())
    users = torch.arange(U)
    expected = dense_reference(R, R, k, alpha, power, own=users)
    torch.testing.assert_close(model.score(users).double(), expected,
                               atol=1e-5, rtol=1e-5)


def test_inductive_user_equals_fitted_user():
    R = random_dense(seed=1)
    full = UserKNN(U, I, k=4).fit(R.nonzero().t())
    for user in (0, 7, 29):
        without = R.clone()
        without[user] = 0
        model = UserKNN(U, I, k=4).fit(without.nonzero().t())
        row = R[user:user + 1].float()
        torch.testing.assert_close(model(row), full.score(
            torch.tensor([user])), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(model(row.to_sparse()), model(row))


def test_batches_empty_rows_and_graph_forms():
    R = random_dense(seed=2)
    index = R.nonzero().t()
    model = UserKNN(U, I, k=5).fit(index)
    users = torch.tensor([3, 4, 0, 29, 3])
    batch = model.score(users)
    single = torch.cat([model.score(users[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(batch, single)
    assert torch.equal(batch[1], torch.zeros(I))  # No interactions.
    assert torch.equal(model(torch.zeros(2, I)), torch.zeros(2, I))
    # Duplicate edges count once; a sparse matrix gives the same scores.
    twice = UserKNN(U, I, k=5).fit(torch.cat([index, index[:, :7]], 1))
    torch.testing.assert_close(twice.score(users), batch)
    sparse = UserKNN(U, I, k=5).fit(R.float().to_sparse())
    torch.testing.assert_close(sparse.score(users), batch)


def test_evaluator_on_two_communities():
    r"""Users 0-2 share items 0-2, users 3-5 items 3-5; each user misses
    one item of their community in training, which only their community's
    neighbours hold: with k = 2 it ranks first (recall@1 = 1)."""
    pairs = [(u, i) for u in range(3) for i in range(3)] + \
        [(u, i) for u in range(3, 6) for i in range(3, 6)]
    test = torch.tensor([[u, (u + 1) % 3 + 3 * (u // 3)]
                         for u in range(6)]).t()
    train = torch.tensor([p for p in pairs
                          if p not in set(map(tuple, test.t().tolist()))]).t()
    model = UserKNN(6, 6, k=2).fit(train)
    evaluator = RankingEvaluator(test, exclude_links=train, ks=(1, ),
                                 metrics=('recall', ))
    assert evaluator.evaluate_scorer(model.score, 6, 6)['recall@1'] == 1.0
    # Every item of the other community scores 0.
    scores = model.score(torch.arange(6))
    assert torch.equal(scores[:3, 3:], torch.zeros(3, 3))
    assert torch.equal(scores[3:, :3], torch.zeros(3, 3))


def test_bad_input_names_the_argument():
    for kwargs, name in ((dict(k=0), "'k'"), (dict(alpha=1.5), "'alpha'"),
                         (dict(alpha=-0.1), "'alpha'"),
                         (dict(power=0.0), "'power'")):
        with pytest.raises(ValueError, match=name):
            UserKNN(U, I, **kwargs)
    assert UserKNN(U, I, k=10 * U).k == U
    with pytest.raises(RuntimeError, match='not fitted'):
        UserKNN(U, I).score(torch.tensor([0]))
    model = UserKNN(U, I).fit(random_dense().nonzero().t())
    with pytest.raises(ValueError, match="'users'"):
        model.score(torch.tensor([U]))
    with pytest.raises(ValueError, match="'graph'"):
        UserKNN(U, I).fit(torch.tensor([[0], [I]]))


def dense_item_knn(R, k, power):
    r""":math:`M_{ij} = c_{ij}^p` for the top-k items i of every item j."""
    d = R.sum(0).clamp_min(1e-12).sqrt()
    c = (R.t() @ R) / d[:, None] / d[None, :]
    c.fill_diagonal_(0)
    value, index = c.topk(k, dim=0)  # Column j: its k neighbours.
    return torch.zeros_like(c).scatter_(0, index, value ** power)


@pytest.mark.parametrize('k,power,block', [(4, 1.0, 2048), (4, 2.0, 3),
                                           (I - 1, 0.5, 7), (1, 3.0, 1)])
def test_knn_item_item_matches_dense(k, power, block):
    R = random_dense(seed=3)
    M = knn_item_item(R.nonzero().t(), U, I, k=k, power=power,
                      block_size=block)
    assert M.layout == torch.sparse_csr
    expected = dense_item_knn(R, k, power)
    torch.testing.assert_close(M.to_dense().double(), expected, atol=1e-6,
                               rtol=1e-5)
    # At most k entries per column, none on the diagonal, none zero.
    dense = M.to_dense()
    assert int((dense != 0).sum(0).max()) <= k
    assert bool((dense.diagonal() == 0).all())
    assert M.values().numel() == int((dense != 0).sum())


def test_item_knn_scores_inductive_and_batched():
    R = random_dense(seed=4)
    model = ItemKNN(U, I, k=5, power=2.0, block_size=4).fit(
        R.nonzero().t())
    users = torch.arange(U)
    expected = R @ dense_item_knn(R, 5, 2.0).t()
    torch.testing.assert_close(model.score(users).double(), expected,
                               atol=1e-5, rtol=1e-5)
    # A new user's row is scored with the fitted neighbours.
    row = torch.zeros(2, I)
    row[0, [1, 2, 9]] = 1
    torch.testing.assert_close(
        model(row).double(), row.double() @ dense_item_knn(R, 5, 2.0).t(),
        atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(row.to_sparse()), model(row))
    assert torch.equal(model(row)[1], torch.zeros(I))
    single = torch.cat([model.score(users[i:i + 1]) for i in range(U)])
    torch.testing.assert_close(model.score(users), single)


def test_item_knn_on_two_communities_and_bad_input():
    pairs = [(u, i) for u in range(3) for i in range(3)] + \
        [(u, i) for u in range(3, 6) for i in range(3, 6)]
    test = torch.tensor([[u, (u + 1) % 3 + 3 * (u // 3)]
                         for u in range(6)]).t()
    held = set(map(tuple, test.t().tolist()))
    train = torch.tensor([p for p in pairs if p not in held]).t()
    model = ItemKNN(6, 6, k=2).fit(train)
    evaluator = RankingEvaluator(test, exclude_links=train, ks=(1, ),
                                 metrics=('recall', ))
    assert evaluator.evaluate_scorer(model.score, 6, 6)['recall@1'] == 1.0
    for kwargs, name in ((dict(k=0), "'k'"), (dict(power=-1.0), "'power'"),
                         (dict(block_size=0), "'block_size'")):
        with pytest.raises(ValueError, match=name):
            ItemKNN(6, 6, **kwargs)
    with pytest.raises(RuntimeError, match='not fitted'):
        ItemKNN(6, 6).score(torch.tensor([0]))
    with pytest.raises(ValueError, match="'users'"):
        model.score(torch.tensor([6]))
