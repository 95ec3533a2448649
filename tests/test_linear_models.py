r"""EASE and RP3beta against dense float64 references on small graphs."""
import pytest
import torch

from pyg_lightgode.metrics import RankingEvaluator
from pyg_lightgode.nn.filters.operators import knn_item_item, rp3beta_item_item
from pyg_lightgode.nn.models import EASE, RP3beta
from pyg_lightgode.nn.models.graph_filters import GraphFilter


def random_matrix(num_users, num_items, p=0.2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    R = (torch.rand(num_users, num_items, generator=generator) < p).double()
    R[torch.arange(num_users), torch.arange(num_users) % num_items] = 1.0
    return R


def index_of(R):
    return R.nonzero().t().contiguous()


def dense_ease(R, reg):
    r"""B = I - P diagMat(1 / diag(P)), P = (X^T X + reg I)^-1."""
    P = torch.linalg.inv(R.t() @ R + reg * torch.eye(R.size(1),
                                                     dtype=R.dtype))
    return torch.eye(R.size(1), dtype=R.dtype) - P / P.diagonal()


# (users, items): fewer users than items (auto: user side) and the reverse.
SHAPES = [(12, 30), (30, 12)]


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('side', ['user', 'item', 'auto'])
@pytest.mark.parametrize('reg', [0.5, 20.0])
def test_ease_matches_dense_reference(shape, side, reg):
    R = random_matrix(*shape)
    B = dense_ease(R, reg)
    assert B.diagonal().abs().max() < 1e-12
    model = EASE(*shape, reg=reg, side=side, dtype='float64').fit(
        index_of(R))
    users = torch.arange(shape[0])
    torch.testing.assert_close(model.score(users), R @ B, atol=1e-9,
                               rtol=1e-9)
    # forward() on the fitted rows and on new rows: x B on both sides.
    torch.testing.assert_close(model(R), R @ B, atol=1e-9, rtol=1e-9)
    new = random_matrix(4, shape[1], p=0.3, seed=5)
    torch.testing.assert_close(model(new), new @ B, atol=1e-9, rtol=1e-9)
    assert model.solved_side == (side if side != 'auto' else (
        'user' if shape[0] < shape[1] else 'item'))


def test_ease_push_through_equals_direct_in_float32():
    R = random_matrix(40, 60, p=0.1, seed=2)
    index = index_of(R)
    user = EASE(40, 60, reg=3.0, side='user').fit(index)
    item = EASE(40, 60, reg=3.0, side='item').fit(index)
    users = torch.arange(40)
    assert user.score(users).dtype == torch.float32
    reference = (R @ dense_ease(R, 3.0)).float()
    torch.testing.assert_close(user.score(users), reference, atol=2e-5,
                               rtol=1e-4)
    torch.testing.assert_close(item.score(users), reference, atol=2e-5,
                               rtol=1e-4)
    # Ranking is what matters: the same top-5 of every user.
    exclude = index
    top_user = user.recommend(k=5, exclude_links=exclude)
    top_item = item.recommend(k=5, exclude_links=exclude)
    top_ref = reference.masked_fill(R.bool(), float('-inf')).topk(5).indices
    assert (top_user == top_ref).float().mean() > 0.95
    assert (top_item == top_ref).float().mean() > 0.95


def test_ease_empty_items_and_users_and_duplicates():
    R = random_matrix(10, 15, seed=3)
    R[:, 7] = 0.0  # An item nobody interacted with.
    index = index_of(R)
    doubled = torch.cat([index, index[:, :5]], dim=1)
    for side in ('user', 'item'):
        model = EASE(11, 15, reg=1.0, side=side, dtype=torch.float64).fit(
            doubled)  # User 10 has no interaction.
        R11 = torch.cat([R, torch.zeros(1, 15, dtype=R.dtype)])
        expected = R11 @ dense_ease(R11, 1.0)
        torch.testing.assert_close(model.score(torch.arange(11)), expected,
                                   atol=1e-9, rtol=1e-9)
        assert model.score(torch.tensor([10])).abs().max() == 0


def test_ease_is_a_graph_filter_and_evaluates():
    R = random_matrix(20, 25, seed=4)
    index = index_of(R)
    perm = torch.randperm(index.size(1), generator=torch.Generator()
                          .manual_seed(0))
    train, test = index[:, perm[:-20]], index[:, perm[-20:]]
    model = EASE(20, 25, reg=1.0).fit(train)
    assert isinstance(model, GraphFilter)
    evaluator = RankingEvaluator(test, exclude_links=train, ks=(5, ))
    out = evaluator.evaluate_scorer(model.score, 20, 25)
    assert 0 <= out['recall@5'] <= 1
    items = model.recommend(torch.tensor([0, 3]), k=4,
                            exclude_links=train)
    assert items.shape == (2, 4)
    seen = set(map(tuple, train.t().tolist()))
    assert not any((u, int(i)) in seen for u, row in zip([0, 3], items)
                   for i in row)


def test_ease_arguments():
    with pytest.raises(ValueError, match='reg'):
        EASE(3, 4, reg=0.0)
    with pytest.raises(ValueError, match='side'):
        EASE(3, 4, side='both')
    with pytest.raises(ValueError, match='dtype'):
        EASE(3, 4, dtype='float16')
    with pytest.raises(RuntimeError, match='not fitted'):
        EASE(3, 4).score(torch.tensor([0]))
    assert 'reg=2.0' in repr(EASE(3, 4, reg=2.0))


def dense_rp3beta(R, k, alpha, beta):
    r"""W_ij = d_i^-alpha d_j^-beta sum_u r_ui r_uj d_u^-alpha, diagonal
    zeroed, the k largest of every row kept (row i: item i's
    neighbours)."""
    du, di = R.sum(1), R.sum(0)
    inv = lambda d, p: torch.where(d > 0, d.pow(-p), torch.zeros_like(d))  # noqa
    W = inv(di, alpha)[:, None] * (R.t() * inv(du, alpha)) @ R * \
        inv(di, beta)[None, :]
    W.fill_diagonal_(0.0)
    out = torch.zeros_like(W)
    value, col = W.topk(k, dim=1)
    out.scatter_(1, col, value)
    return out.clamp(min=0)


@pytest.mark.parametrize('alpha,beta', [(1.0, 0.0), (0.566, 0.001),
                                        (0.5, 0.7)])
@pytest.mark.parametrize('block_size', [4, 2048])
def test_rp3beta_matches_dense_reference(alpha, beta, block_size):
    # Random real weights make ties in the top-k unlikely.
    R = random_matrix(25, 18, p=0.3, seed=6)
    k = 5
    W = dense_rp3beta(R, k, alpha, beta)
    M = rp3beta_item_item(index_of(R), 25, 18, k, alpha, beta, block_size,
                          dtype=torch.float64).to_dense()
    torch.testing.assert_close(M, W.t(), atol=1e-12, rtol=1e-9)
    model = RP3beta(25, 18, k=k, alpha=alpha, beta=beta,
                    block_size=block_size).fit(index_of(R))
    torch.testing.assert_close(model.score(torch.arange(25)).double(),
                               R @ W, atol=1e-5, rtol=1e-5)
    new = random_matrix(3, 18, seed=9)
    torch.testing.assert_close(model(new.float()).double(), new @ W,
                               atol=1e-5, rtol=1e-5)


def test_rp3beta_alpha_one_beta_zero_is_a_transition_matrix():
    # alpha = 1, beta = 0, k = all: rows of the full walk sum to 1 minus
    # the probability of returning to the start item.
    R = random_matrix(15, 10, p=0.4, seed=7)
    M = rp3beta_item_item(index_of(R), 15, 10, k=9, alpha=1.0, beta=0.0,
                          dtype=torch.float64).to_dense()
    du, di = R.sum(1), R.sum(0)
    back = ((R / du[:, None]) * R).sum(0) / di  # P(i -> u -> i)
    torch.testing.assert_close(M.sum(0), 1 - back)


def test_knn_item_item_unchanged_by_shared_top_k():
    # ItemKNN shares the top-k block reduction with RP3beta.
    R = random_matrix(20, 12, p=0.3, seed=8)
    M = knn_item_item(index_of(R), 20, 12, k=3, dtype=torch.float64)
    d = R.sum(0)
    C = (R.t() @ R) / torch.sqrt(d[:, None] * d[None, :])
    C.fill_diagonal_(0)
    value, row = C.topk(3, dim=0)
    expected = torch.zeros_like(C).scatter_(0, row, value)
    torch.testing.assert_close(M.to_dense(), expected)


def test_rp3beta_arguments():
    with pytest.raises(ValueError, match='alpha'):
        RP3beta(3, 4, alpha=-1.0)
    with pytest.raises(ValueError, match='beta'):
        RP3beta(3, 4, beta=-0.5)
    assert 'k=7' in repr(RP3beta(3, 4, k=7))


def test_rp3beta_user_without_interactions_scores_zero():
    R = random_matrix(8, 10, p=0.4, seed=11)
    index = index_of(R)
    model = RP3beta(9, 10, k=3).fit(index)  # User 8 has no row.
    scores = model.score(torch.tensor([8, 0, 8]))
    assert scores[0].abs().max() == 0 and scores[2].abs().max() == 0
    torch.testing.assert_close(scores[1], model(R[:1].float())[0])


ROOT = __import__('pathlib').Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'


@pytest.mark.slow
@pytest.mark.skipif(not (ML100K / 'u.data').exists(),
                    reason='../shared/data/ml-100k is not present')
def test_bench_linear_chooses_on_validation(tmp_path):
    r"""``benchmarks/bench_linear.py`` on MovieLens-100K: the validation
    stage on half of the users, lambda scaled, refit and test."""
    import json
    import subprocess
    import sys
    out = tmp_path / 'row.json'
    proc = subprocess.run([
        sys.executable, str(ROOT / 'benchmarks' / 'bench_linear.py'),
        '--dataset', 'movielens100k', '--root', str(tmp_path / 'data'),
        '--raw-dir', str(ML100K), '--model', 'ease', '--reg', '50,300',
        '--val-users', '0.5', '--json', str(out)
    ], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads(out.read_text())
    assert [r['settings']['reg'] for r in row['validation']] == [50, 300]
    best = max(row['validation'], key=lambda r: r['ndcg@20'])
    users = json.loads(proc.stdout.splitlines()[0])['users']
    assert row['settings']['reg'] == pytest.approx(
        best['settings']['reg'] * 943 / users, rel=1e-3)
    assert 0 < row['ndcg@20'] <= row['recall@20'] <= 1
    assert row['tuning']['trials'] == 2 and row['peak_mib'] > 0
