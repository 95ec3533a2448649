r"""Training-free graph filters (SPEC section 7): the operators of
:mod:`pyg_lightgode.nn.filters` against dense float64 references, the GF-CF,
BSPM, ChebyCF and Turbo-CF models against the formulas of SPEC section 7
(ChebyCF: through an eigendecomposition), inductive scoring, the evaluator /
recommend path, score fusion and input validation.

Everything runs on small synthetic graphs (40 users x 30 items, and a
hand-made 9 x 9 graph of two disjoint communities whose scores are worked
out by hand)."""
import math

import pytest
import torch

from pyg_lightgode.apps.hybrid.fusion import (
    EmbeddingScorer,
    ScoreFusion,
    standardize,
)
from pyg_lightgode.nn.filters.operators import (
    ITEM_ITEM_BLOCK,
    MAX_CHEBYSHEV_ORDER,
    LinearFlow,
    chebyshev_filter,
    check_flow,
    ideal_basis,
    ideal_filter,
    interaction_matrix,
    item_item,
    normalize_interactions,
    plateau_coefficients,
    rows_to_item_major,
    solve_flow,
    turbo_item_item,
)
from pyg_lightgode.nn.models import (
    BSPM,
    GFCF,
    ChebyCF,
    TurboCF,
)

U, I = 40, 30
EMPTY_USER, EMPTY_ITEM = 5, 7  # No interactions in the random graph.
F64 = torch.float64


# ---------------------------------------------------------------------------
# Graphs and dense float64 references
# ---------------------------------------------------------------------------
def random_dense(num_users=U, num_items=I, p=0.15, seed=0):
    gen = torch.Generator().manual_seed(seed)
    R = (torch.rand(num_users, num_items, generator=gen) < p).to(F64)
    R[EMPTY_USER] = 0
    R[:, EMPTY_ITEM] = 0
    return R


def index_of(R):
    return R.nonzero().t().contiguous()


def inv_pow(degree, power):
    return torch.where(degree > 0, degree.clamp_min(1e-300).pow(-power),
                       torch.zeros_like(degree))


def dense_norm(R, a=0.5, b=0.5):
    r""":math:`D_U^{-a} R D_I^{-b}` (zero-degree rows/columns stay zero)."""
    return inv_pow(R.sum(1), a)[:, None] * R * inv_pow(R.sum(0), b)[None, :]


def dense_item_item(R):
    Rt = dense_norm(R)
    return Rt.t() @ Rt


def dense_basis(R, k):
    r"""Top-k right singular vectors and values of R~ (float64 SVD)."""
    _, S, Vh = torch.linalg.svd(dense_norm(R))
    return Vh[:k].t(), S[:k]


def dense_ideal(R, V):
    r""":math:`M = D_I^{-1/2} V V^\top D_I^{1/2}` so Ideal(r) = r M."""
    d = R.sum(0)
    right = torch.where(d > 0, d.sqrt(), torch.zeros_like(d))
    return inv_pow(d, 0.5)[:, None] * (V @ V.t()) * right[None, :]


def dense_turbo(R, alpha, power):
    Ra = dense_norm(R, alpha, 1 - alpha)
    return (Ra.t() @ Ra).pow(power)


def chebyshev_response(coefficients, eigenvalues):
    r""":math:`\sum_n c_n T_n(1 - 2\lambda)` with :math:`T_n(x) = \cos(n
    \arccos x)` (the closed form, not the recurrence under test)."""
    x = (1 - 2 * eigenvalues).clamp(-1, 1)
    n = torch.arange(len(coefficients), dtype=F64)
    return (coefficients.to(F64)[:, None] * torch.cos(
        n[:, None] * torch.arccos(x)[None, :])).sum(0)


def dense_chebycf(X, R, k, order, flatness, alpha, beta):
    r"""ChebyCF on rows X [b, I] through the eigendecomposition of P~."""
    lam, Q = torch.linalg.eigh(dense_item_item(R))
    H = Q @ torch.diag(chebyshev_response(
        plateau_coefficients(order, flatness), lam)) @ Q.t()
    d = R.sum(0)
    pre = inv_pow(d, beta)
    post = torch.where(d > 0, d.clamp_min(1e-300).pow(beta),
                       torch.zeros_like(d))
    V, _ = dense_basis(R, k)
    signal = X * pre[None, :]
    return (signal @ H + alpha * signal @ V @ V.t()) * post[None, :]


def gap_k(R, candidates=range(3, 11)):
    r"""The k with the largest spectral gap sigma_k - sigma_{k+1}, so that
    the top-k subspace is well defined."""
    S = torch.linalg.svdvals(dense_norm(R))
    return max(candidates, key=lambda k: float(S[k - 1] - S[k]))


def step_matrix(A, h, method):
    r"""One solver step of dX/dt = X A (row form) as a matrix."""
    n = A.size(0)
    Id = torch.eye(n, dtype=A.dtype)
    if method == 'exact':
        return torch.linalg.matrix_exp(h * A)
    if method == 'euler':
        return Id + h * A
    if method == 'rk4':
        hA = h * A
        hA2 = hA @ hA
        hA3 = hA2 @ hA
        return Id + hA + hA2 / 2 + hA3 / 6 + hA3 @ hA / 24
    raise AssertionError(method)


def flow_points(X, A, T, K, method):
    r"""Row-form solutions of dX/dt = X A at the K grid points T/K..T."""
    step = step_matrix(A, T / K, method)
    out, Y = [], X
    for _ in range(K):
        Y = Y @ step
        out.append(Y)
    return out


def bspm_reference(X, P, M, beta=0.2, ideal=(1.0, 1, 'euler'),
                   blur=(1.0, 1, 'euler'), sharpen=(2.5, 1, 'rk4'),
                   merge='early', tpc=False):
    r"""BSPM of SPEC section 7 on rows X [b, I] with dense P~ and Ideal
    matrix M; (T, K, method) per ODE."""
    Id = torch.eye(P.size(0), dtype=P.dtype)
    r_idl = None
    if ideal is not None and beta > 0:
        r_idl = flow_points(X, M - Id, *ideal)[-1]
    blurred = flow_points(X, P - Id, *blur)
    start = blurred[-1]
    if r_idl is not None and merge == 'early':
        start = start + beta * r_idl
    sharpened = flow_points(start, -P, *sharpen) if sharpen[0] > 0 else []
    if tpc:
        out = torch.stack(blurred + sharpened).mean(0)
    else:
        out = sharpened[-1] if sharpened else start
    if r_idl is not None and merge == 'late':
        out = out + beta * r_idl
    return out


def assert_close(actual, expected, tol=1e-4):
    actual, expected = actual.double(), expected.double()
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


@pytest.fixture(scope='module')
def R():
    return random_dense()


@pytest.fixture(scope='module')
def edge_index(R):
    return index_of(R)


@pytest.fixture(scope='module')
def k_gap(R):
    return gap_k(R)


def new_rows(num=3, seed=1, num_items=I):
    r"""Interaction rows of users that are not in the fitted matrix."""
    gen = torch.Generator().manual_seed(seed)
    rows = (torch.rand(num, num_items, generator=gen) < 0.2).float()
    rows[0, :5] = 1  # At least a few interactions.
    return rows


def community_split():
    r"""Two disjoint communities: users 0-3 x items 0-3 and users 4-8 x
    items 4-8. Every user has every item of their community except one,
    held out for test (user u misses item u)."""
    train, test = [], []
    for users, items in ((range(0, 4), range(0, 4)),
                         (range(4, 9), range(4, 9))):
        for j, u in enumerate(users):
            for i in items:
                (test if i == items[j] else train).append((u, i))
    return torch.tensor(train).t(), torch.tensor(test).t()


# Models, each with the dense reference of its scores on rows X.
def model_cases(k):
    return {
        'gfcf': (lambda: GFCF(U, I, k=k, alpha=0.3),
                 lambda X, P, M, R: X @ P + 0.3 * X @ M),
        'gfcf_linear': (lambda: GFCF(U, I, k=k, alpha=0.0),
                        lambda X, P, M, R: X @ P),
        'bspm_em': (lambda: BSPM(U, I, k=k),
                    lambda X, P, M, R: bspm_reference(X, P, M)),
        'bspm_lm_tpc': (lambda: BSPM(U, I, k=k, beta=0.3, sharpen_t=1.2,
                                     sharpen_method='euler', merge='late',
                                     t_point_combination=True),
                        lambda X, P, M, R: bspm_reference(
                            X, P, M, beta=0.3, sharpen=(1.2, 1, 'euler'),
                            merge='late', tpc=True)),
        'bspm_exact': (lambda: BSPM(U, I, k=k, ideal_method='exact',
                                    blur_method='exact',
                                    sharpen_method='exact'),
                       lambda X, P, M, R: bspm_reference(
                           X, P, M, ideal=(1.0, 1, 'exact'),
                           blur=(1.0, 1, 'exact'),
                           sharpen=(2.5, 1, 'exact'))),
        'chebycf': (lambda: ChebyCF(U, I, k=k),
                    lambda X, P, M, R: dense_chebycf(X, R, k, 8, 1.5, 0.2,
                                                     0.4)),
        'chebycf_odd': (lambda: ChebyCF(U, I, order=5, flatness=3.0,
                                        alpha=0.0, beta=0.0),
                        lambda X, P, M, R: dense_chebycf(X, R, k, 5, 3.0,
                                                         0.0, 0.0)),
        'turbo1': (lambda: TurboCF(U, I, alpha=0.6, power=0.7, filter=1),
                   lambda X, P, M, R: X @ dense_turbo(R, 0.6, 0.7)),
        'turbo2': (lambda: TurboCF(U, I, alpha=0.6, power=1.0, filter=2),
                   lambda X, P, M, R: X @ (
                       2 * dense_turbo(R, 0.6, 1.0)
                       - dense_turbo(R, 0.6, 1.0) @ dense_turbo(R, 0.6, 1.0))),
    }


MODEL_NAMES = list(model_cases(4))


@pytest.fixture(scope='module')
def fitted(edge_index, k_gap):
    return {name: make().fit(edge_index)
            for name, (make, _) in model_cases(k_gap).items()}


@pytest.fixture(scope='module')
def dense_ops(R, k_gap):
    V, _ = dense_basis(R, k_gap)
    return dense_item_item(R), dense_ideal(R, V)


# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------
def test_interaction_matrix_sorted_and_coalesced():
    index = torch.tensor([[2, 0, 2, 0, 1, 2], [1, 3, 0, 3, 2, 1]])
    user, item, value = interaction_matrix(index, 3, 4)
    assert user.tolist() == [0, 1, 2, 2]
    assert item.tolist() == [3, 2, 0, 1]
    assert value.tolist() == [1.0] * 4
    # Sparse values are summed, as coalesce() does:
    sparse = torch.sparse_coo_tensor(index, torch.ones(6), (3, 4))
    user, item, value = interaction_matrix(sparse, 3, 4)
    assert (user.tolist(), item.tolist()) == ([0, 1, 2, 2], [3, 2, 0, 1])
    assert value.tolist() == [2.0, 1.0, 1.0, 2.0]
    # Empty graph:
    user, item, value = interaction_matrix(
        torch.empty(2, 0, dtype=torch.long), 3, 4)
    assert user.numel() == item.numel() == value.numel() == 0


@pytest.mark.parametrize('a,b', [(0.5, 0.5), (0.6, 0.4), (1.0, 0.0),
                                 (0.3, 0.9)])
def test_normalize_interactions_dense(R, edge_index, a, b):
    graph = normalize_interactions(edge_index, U, I, a, b)
    expected = dense_norm(R, a, b)
    assert graph.matrix.layout == torch.sparse_csr
    assert_close(graph.matrix.to_dense(), expected, 1e-6)
    assert_close(graph.matrix_t.to_dense(), expected.t(), 1e-6)
    assert_close(graph.user_degree, R.sum(1), 0)
    assert_close(graph.item_degree, R.sum(0), 0)
    dense = graph.matrix.to_dense()
    assert bool((dense[EMPTY_USER] == 0).all())
    assert bool((dense[:, EMPTY_ITEM] == 0).all())
    assert bool(torch.isfinite(dense).all())
    assert (graph.num_users, graph.num_items) == (U, I)


def graph_forms(R):
    index = index_of(R)
    values = torch.ones(index.size(1))
    coo = torch.sparse_coo_tensor(index, values, (U, I))
    forms = {
        'index': index,
        'index_int32_shuffled': index[:, torch.randperm(
            index.size(1), generator=torch.Generator().manual_seed(3))
        ].int(),
        'coo': coo,
        'coo_uncoalesced_order': torch.sparse_coo_tensor(
            index.flip(1), values, (U, I)),
        'csr': coo.to_sparse_csr(),
    }
    return forms


@pytest.mark.parametrize('form', ['index', 'index_int32_shuffled', 'coo',
                                  'coo_uncoalesced_order', 'csr',
                                  'sparse_tensor'])
def test_every_graph_form_gives_the_same_result(R, fitted, k_gap, form):
    if form == 'sparse_tensor':
        torch_sparse = pytest.importorskip('torch_sparse')
        index = index_of(R)
        graph = torch_sparse.SparseTensor(row=index[0], col=index[1],
                                          sparse_sizes=(U, I))
    else:
        graph = graph_forms(R)[form]
    norm = normalize_interactions(graph, U, I)
    assert_close(norm.matrix.to_dense(), dense_norm(R), 1e-6)
    assert_close(turbo_item_item(graph, U, I, 0.6, 0.7).to_dense(),
                 dense_turbo(R, 0.6, 0.7), 1e-5)
    users = torch.arange(U)
    for name in ('gfcf', 'bspm_em', 'turbo2'):
        model = model_cases(k_gap)[name][0]().fit(graph)
        assert_close(model.score(users), fitted[name].score(users), 1e-5)


def test_sparse_tensor_with_values(R):
    torch_sparse = pytest.importorskip('torch_sparse')
    index = index_of(R)
    weight = torch.rand(index.size(1),
                        generator=torch.Generator().manual_seed(0)) + 0.5
    graph = torch_sparse.SparseTensor(row=index[0], col=index[1],
                                      value=weight, sparse_sizes=(U, I))
    W = torch.zeros(U, I, dtype=F64)
    W[index[0], index[1]] = weight.double()
    assert_close(normalize_interactions(graph, U, I).matrix.to_dense(),
                 dense_norm(W), 1e-6)


def test_duplicate_edges_are_coalesced(R, edge_index, fitted, k_gap):
    gen = torch.Generator().manual_seed(4)
    repeat = torch.randint(1, 4, (edge_index.size(1), ), generator=gen)
    dup = edge_index.repeat_interleave(repeat, dim=1)
    dup = dup[:, torch.randperm(dup.size(1), generator=gen)]
    assert dup.size(1) > edge_index.size(1)
    a = normalize_interactions(edge_index, U, I)
    b = normalize_interactions(dup, U, I)
    assert torch.equal(a.matrix.to_dense(), b.matrix.to_dense())
    assert torch.equal(a.item_degree, b.item_degree)
    assert torch.equal(a.user_degree, b.user_degree)
    assert torch.equal(turbo_item_item(dup, U, I, 0.6, 0.7).to_dense(),
                       turbo_item_item(edge_index, U, I, 0.6, 0.7).to_dense())
    users = torch.arange(U)
    for name in ('gfcf', 'bspm_em', 'turbo1'):
        model = model_cases(k_gap)[name][0]().fit(dup)
        # The fitted rows are binary too (no duplicate counted twice):
        assert torch.equal(model.user_rows(users).t(), R.float())
        assert_close(model.score(users), fitted[name].score(users), 1e-6)


@pytest.mark.parametrize('b', [1, 7, ITEM_ITEM_BLOCK, ITEM_ITEM_BLOCK + 13,
                               2 * ITEM_ITEM_BLOCK + 1])
def test_item_item_dense(R, edge_index, b):
    graph = normalize_interactions(edge_index, U, I)
    x = torch.randn(I, b, generator=torch.Generator().manual_seed(b))
    expected = dense_item_item(R) @ x.double()
    assert_close(item_item(x, graph), expected, 1e-5)
    # Every block size gives the same result:
    assert_close(item_item(x, graph, block=3), expected, 1e-5)
    # A non-contiguous (transposed) input:
    y = torch.randn(b, I, generator=torch.Generator().manual_seed(b + 1))
    assert_close(item_item(y.t(), graph), dense_item_item(R) @ y.t().double(),
                 1e-5)


def test_rows_to_item_major():
    rows = torch.tensor([[0, 1, 1], [1, 0, 0]])
    expected = rows.t().float()
    for form in (rows, rows.to_sparse(), rows.float().to_sparse_csr(),
                 rows.bool()):
        out = rows_to_item_major(form, 3)
        assert out.dtype == torch.float32 and out.is_contiguous()
        assert torch.equal(out, expected)


def projector(V):
    V = V.double()
    return V @ V.t()


@pytest.mark.parametrize('method,kwargs', [
    ('lowrank', dict(niter=40, oversample=4)),  # q = k + 4 < min(U, I)
    ('lowrank', dict()),
    ('svds', dict()),
])
def test_ideal_basis_matches_dense_svd(R, edge_index, k_gap, method, kwargs):
    k = k_gap
    graph = normalize_interactions(edge_index, U, I)
    basis = ideal_basis(graph, k, method, **kwargs)
    V, S = dense_basis(R, k)
    assert basis.vectors.shape == (I, k) and basis.values.shape == (k, )
    assert basis.vectors.dtype == torch.float32
    assert_close(basis.values, S, 1e-4)
    assert bool((basis.values[:-1] >= basis.values[1:] - 1e-6).all())
    assert_close(projector(basis.vectors), projector(V), 1e-4)
    # Orthonormal columns:
    assert_close(basis.vectors.double().t() @ basis.vectors.double(),
                 torch.eye(k, dtype=F64), 1e-4)
    # The largest singular value of D_U^-1/2 R D_I^-1/2 is 1:
    assert abs(float(basis.values[0]) - 1.0) < 1e-4


def test_ideal_basis_seeded_and_leaves_global_rng(edge_index):
    graph = normalize_interactions(edge_index, U, I)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = ideal_basis(graph, 4, 'lowrank', niter=2, oversample=2, seed=7)
    assert torch.equal(torch.rand(3), expected)
    b = ideal_basis(graph, 4, 'lowrank', niter=2, oversample=2, seed=7)
    assert torch.equal(a.vectors, b.vectors)


def test_ideal_filter_dense_and_idempotent(R, edge_index, k_gap):
    graph = normalize_interactions(edge_index, U, I)
    V = ideal_basis(graph, k_gap, 'svds').vectors
    x = torch.randn(I, 6, generator=torch.Generator().manual_seed(0))
    out = ideal_filter(x, V, graph.item_degree)
    M = dense_ideal(R, V.double())
    assert_close(out, (x.double().t() @ M).t(), 1e-5)
    assert_close(ideal_filter(out, V, graph.item_degree), out, 1e-4)
    # The zero-degree item neither receives nor sends anything:
    assert bool((out[EMPTY_ITEM] == 0).all())
    y = x.clone()
    y[EMPTY_ITEM] = 1e6
    assert_close(ideal_filter(y, V, graph.item_degree), out, 1e-5)
    # Against the independent float64 SVD:
    Vd, _ = dense_basis(R, k_gap)
    assert_close(out, (x.double().t() @ dense_ideal(R, Vd)).t(), 1e-4)


# --- solve_flow -------------------------------------------------------------
BLUR = dict(scale=1.0, shift=-1.0)  # dx/dt = P x - x
SHARPEN = dict(scale=-1.0, shift=0.0)  # dx/dt = -P x


@pytest.fixture(scope='module')
def flow_setup(R, edge_index):
    graph = normalize_interactions(edge_index, U, I)
    x = torch.rand(I, 4, generator=torch.Generator().manual_seed(5))
    P = dense_item_item(R)
    Id = torch.eye(I, dtype=F64)
    return graph, x, {'blur': P - Id, 'sharpen': -P}


def row_form(out):
    r"""[K, I, b] item-major solutions -> list of K [b, I] rows."""
    return [o.double().t() for o in out]


@pytest.mark.parametrize('kind,T', [('blur', 1.0), ('blur', 3.0),
                                    ('sharpen', 2.5), ('sharpen', 1.2)])
def test_solve_flow_exact_vs_matrix_exp(flow_setup, kind, T):
    graph, x, A = flow_setup
    K = 3
    flow = LinearFlow(T, K, 'exact', **(BLUR if kind == 'blur' else SHARPEN))
    out = solve_flow(x, lambda v: item_item(v, graph), flow)
    assert out.shape == (K, I, x.size(1))
    X = x.double().t()
    for j, got in enumerate(row_form(out)):
        expected = X @ torch.linalg.matrix_exp(T * (j + 1) / K * A[kind])
        assert_close(got, expected, 1e-5)


@pytest.mark.parametrize('kind,T', [('blur', 1.0), ('sharpen', 2.5)])
@pytest.mark.parametrize('method,tol', [('dopri5', 1e-4), ('bosh3', 2e-3)])
def test_solve_flow_adaptive_vs_matrix_exp(flow_setup, kind, T, method, tol):
    graph, x, A = flow_setup
    flow = LinearFlow(T, 2, method, **(BLUR if kind == 'blur' else SHARPEN))
    out = solve_flow(x, lambda v: item_item(v, graph), flow)
    X = x.double().t()
    for j, got in enumerate(row_form(out)):
        expected = X @ torch.linalg.matrix_exp(T * (j + 1) / 2 * A[kind])
        assert_close(got, expected, tol)


@pytest.mark.parametrize('method,K,tol', [('rk4', 40, 1e-5),
                                          ('midpoint', 200, 1e-4),
                                          ('euler', 1000, 3e-3)])
def test_solve_flow_fixed_many_steps_vs_matrix_exp(flow_setup, method, K,
                                                   tol):
    graph, x, A = flow_setup
    X = x.double().t()
    for kind, T in (('blur', 1.0), ('sharpen', 2.5)):
        flow = LinearFlow(T, K, method,
                          **(BLUR if kind == 'blur' else SHARPEN))
        out = solve_flow(x, lambda v: item_item(v, graph), flow)
        assert out.shape[0] == K
        expected = X @ torch.linalg.matrix_exp(T * A[kind])
        assert_close(row_form(out)[-1], expected, tol)
        # A few steps are NOT the exponential (the test can fail):
    coarse = solve_flow(x, lambda v: item_item(v, graph),
                        LinearFlow(2.5, 1, 'euler', **SHARPEN))[-1]
    assert (coarse.double().t()
            - X @ torch.linalg.matrix_exp(2.5 * A['sharpen'])).abs().max() \
        > 1e-2


@pytest.mark.parametrize('kind,T', [('blur', 1.0), ('blur', 0.7),
                                    ('sharpen', 2.5), ('sharpen', 2.2)])
def test_solve_flow_one_step_polynomials(flow_setup, R, kind, T):
    graph, x, A = flow_setup
    op = lambda v: item_item(v, graph)  # noqa: E731
    params = BLUR if kind == 'blur' else SHARPEN
    X = x.double().t()
    P = dense_item_item(R)
    # Euler, one step: r + T (dr/dt at r).
    euler = solve_flow(x, op, LinearFlow(T, 1, 'euler', **params))
    if kind == 'blur':
        expected = X + T * (X @ P - X)
    else:
        expected = X - T * X @ P
    assert_close(row_form(euler)[0], expected, 1e-5)
    # RK4, one step: r (I + hA + h^2A^2/2 + h^3A^3/6 + h^4A^4/24).
    rk4 = solve_flow(x, op, LinearFlow(T, 1, 'rk4', **params))
    hA = T * A[kind]
    poly = torch.eye(I, dtype=F64) + hA + hA @ hA / 2 + hA @ hA @ hA / 6 \
        + hA @ hA @ hA @ hA / 24
    assert_close(row_form(rk4)[0], X @ poly, 1e-5)
    # K = 2 steps: the grid points are poly(h A) and poly(h A)^2.
    for method in ('euler', 'rk4'):
        out = row_form(solve_flow(x, op, LinearFlow(T, 2, method, **params)))
        step = step_matrix(A[kind], T / 2, method)
        assert_close(out[0], X @ step, 1e-5)
        assert_close(out[1], X @ step @ step, 1e-5)


def test_solve_flow_zero_time_and_zero_signal(flow_setup):
    graph, x, _ = flow_setup
    op = lambda v: item_item(v, graph)  # noqa: E731
    for method in ('exact', 'euler', 'rk4', 'dopri5'):
        out = solve_flow(x, op, LinearFlow(0.0, 3, method, **SHARPEN))
        assert out.shape == (3, I, x.size(1))
        assert torch.equal(out, x.expand(3, -1, -1))
        zero = solve_flow(torch.zeros_like(x), op,
                          LinearFlow(1.0, 2, method, **BLUR))
        assert torch.equal(zero, torch.zeros_like(zero))


def test_check_flow_names_the_argument():
    with pytest.raises(ValueError, match="'blur_t'"):
        check_flow(LinearFlow(-1.0), 'blur')
    with pytest.raises(ValueError, match="'ideal_t'"):
        check_flow(LinearFlow(float('inf')), 'ideal')
    with pytest.raises(ValueError, match="'sharpen_steps'"):
        check_flow(LinearFlow(1.0, 0), 'sharpen')
    with pytest.raises(ValueError, match="'sharpen_method'"):
        check_flow(LinearFlow(1.0, 1, 'rk5'), 'sharpen')
    with pytest.raises(ValueError, match="'blur_steps'"):
        check_flow(LinearFlow(1.0, 11, 'euler'), 'blur', max_steps=10)


@pytest.mark.parametrize('order,flatness', [(1, 1.0), (2, 0.5), (8, 1.5),
                                            (13, 4.0)])
def test_plateau_coefficients_interpolate_the_plateau(order, flatness):
    c = plateau_coefficients(order, flatness)
    assert c.shape == (order + 1, ) and c.dtype == F64
    # The interpolant passes through the plateau's samples at the
    # Chebyshev nodes (ascending), samples taken on the Lobatto points:
    j = torch.arange(order + 1, dtype=F64)
    nodes = torch.cos((2 * (order - j) + 1) / (2 * order + 2) * math.pi)
    lobatto = torch.cos((order - j) / order * math.pi)
    target = torch.where(lobatto < 0, 0.5 + 0.5 * (-lobatto).pow(flatness),
                         0.5 - 0.5 * lobatto.clamp_min(0).pow(flatness))
    lam = (1 - nodes) / 2  # x = 1 - 2 lambda
    torch.testing.assert_close(chebyshev_response(c, lam), target,
                               atol=2e-3, rtol=0)
    # Low pass: the smoothest item signal (lambda = 1) passes, the
    # roughest (lambda = 0) is removed, to the interpolation error.
    ends = chebyshev_response(c, torch.tensor([1.0, 0.0], dtype=F64))
    if order >= 8:
        assert ends[0] > 0.9 and abs(float(ends[1])) < 0.1


def test_chebyshev_filter_matches_eigendecomposition(R):
    P = dense_item_item(R)
    lam, Q = torch.linalg.eigh(P)
    X = torch.randn(I, 4, dtype=F64, generator=torch.Generator().manual_seed(
        3))
    for coefficients in (torch.tensor([0.7], dtype=F64),
                         torch.tensor([0.2, -0.5], dtype=F64),
                         plateau_coefficients(8, 1.5),
                         torch.randn(12, dtype=F64)):
        out = chebyshev_filter(X, lambda v: P @ v, coefficients)
        H = Q @ torch.diag(chebyshev_response(coefficients, lam)) @ Q.t()
        assert_close(out, H @ X, 1e-9)


@pytest.mark.parametrize('kwargs,match', [
    (dict(order=0), "'order'"),
    (dict(order=MAX_CHEBYSHEV_ORDER + 1), "'order'"),
    (dict(order=2.5), "'order'"),
    (dict(flatness=0.0), "'flatness'"),
    (dict(flatness=float('nan')), "'flatness'"),
    (dict(alpha=-0.2), "'alpha'"),
    (dict(beta=float('inf')), "'beta'"),
    (dict(k=0), "'k'"),
    (dict(svd='arpack'), "'svd'"),
])
def test_chebycf_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ChebyCF(U, I, **kwargs)


def test_chebycf_without_ideal_skips_the_svd(edge_index):
    model = ChebyCF(U, I, alpha=0.0).fit(edge_index)
    assert model.basis is None
    with pytest.raises(ValueError, match="'k'"):  # k checked at fit
        ChebyCF(U, I, k=I).fit(edge_index)


@pytest.mark.parametrize('block_size', [1, 4, 7, I, 100])
@pytest.mark.parametrize('alpha,power', [(0.5, 1.0), (0.6, 0.7),
                                         (0.5, 1.4)])
def test_turbo_item_item_dense(R, edge_index, block_size, alpha, power):
    P = turbo_item_item(edge_index, U, I, alpha, power, block_size)
    assert P.layout == torch.sparse_csr and P.shape == (I, I)
    expected = dense_turbo(R, alpha, power)
    assert_close(P.to_dense(), expected, 1e-5)
    # Sparse: exactly the pairs of items with a common user.
    assert P.values().numel() == int((expected != 0).sum())
    # Symmetric (up to the summation order of the block products):
    assert_close(P.to_dense(), P.to_dense().t(), 1e-6)


# ---------------------------------------------------------------------------
# Models against dense references
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', MODEL_NAMES)
def test_model_scores_match_dense_reference(R, fitted, dense_ops, k_gap,
                                            name):
    P, M = dense_ops
    users = torch.arange(U)
    scores = fitted[name].score(users)
    assert scores.shape == (U, I) and scores.dtype == torch.float32
    expected = model_cases(k_gap)[name][1](R, P, M, R)
    assert_close(scores, expected, 2e-4)


def test_gfcf_exact_formula_with_model_basis(R, fitted):
    model = fitted['gfcf']
    M = dense_ideal(R, model.basis.double())
    assert_close(model.score(torch.arange(U)),
                 R @ dense_item_item(R) + 0.3 * R @ M, 1e-5)
    assert fitted['gfcf_linear'].basis is None  # alpha = 0: no SVD.


BSPM_CONFIGS = [
    # (kwargs, reference kwargs); K = 2 steps on every ODE.
    (dict(merge='early'), dict(merge='early')),
    (dict(merge='late'), dict(merge='late')),
    (dict(merge='early', t_point_combination=True),
     dict(merge='early', tpc=True)),
    (dict(merge='late', t_point_combination=True),
     dict(merge='late', tpc=True)),
]


@pytest.mark.parametrize('kwargs,ref', BSPM_CONFIGS)
@pytest.mark.parametrize('methods', [('euler', 'euler', 'rk4'),
                                     ('euler', 'rk4', 'euler'),
                                     ('exact', 'exact', 'exact')])
def test_bspm_two_steps_dense(R, edge_index, k_gap, dense_ops, kwargs, ref,
                              methods):
    P, M = dense_ops
    model = BSPM(U, I, k=k_gap, beta=0.3, ideal_t=0.8, ideal_steps=2,
                 ideal_method=methods[0], blur_t=1.1, blur_steps=2,
                 blur_method=methods[1], sharpen_t=1.7, sharpen_steps=2,
                 sharpen_method=methods[2], **kwargs).fit(edge_index)
    expected = bspm_reference(R, P, M, beta=0.3, ideal=(0.8, 2, methods[0]),
                              blur=(1.1, 2, methods[1]),
                              sharpen=(1.7, 2, methods[2]), **ref)
    assert_close(model.score(torch.arange(U)), expected, 2e-4)


def test_bspm_official_settings_dense(R, edge_index, k_gap, dense_ops):
    P, M = dense_ops
    users = torch.arange(U)
    # Yelp2018: euler everywhere, sharpen T 1.2, t-point combination, EM.
    yelp = BSPM(U, I, k=k_gap, beta=0.3, sharpen_t=1.2,
                sharpen_method='euler', t_point_combination=True
                ).fit(edge_index)
    assert_close(yelp.score(users), bspm_reference(
        R, P, M, beta=0.3, sharpen=(1.2, 1, 'euler'), tpc=True), 2e-4)
    # Amazon-Book: no ideal branch, rk4 T 2.2 K 2, LM.
    amazon = BSPM(U, I, k=k_gap, ideal_t=None, sharpen_t=2.2,
                  sharpen_steps=2, merge='late').fit(edge_index)
    assert amazon.basis is None
    assert_close(amazon.score(users), bspm_reference(
        R, P, M, ideal=None, sharpen=(2.2, 2, 'rk4'), merge='late'), 2e-4)
    # Closed forms by hand for the official Gowalla EM: ideal = r M,
    # blurred = r P~, then one rk4 step of -P~ for 2.5.
    gowalla = BSPM(U, I, k=k_gap).fit(edge_index)
    start = R @ P + 0.2 * R @ M
    assert_close(gowalla.score(users),
                 start @ step_matrix(-P, 2.5, 'rk4'), 2e-4)


def test_bspm_all_exact_equals_matrix_exponentials(R, edge_index, k_gap,
                                                   dense_ops):
    P, M = dense_ops
    Id = torch.eye(I, dtype=F64)
    expm = torch.linalg.matrix_exp
    for merge in ('early', 'late'):
        model = BSPM(U, I, k=k_gap, beta=0.25, ideal_t=1.5,
                     ideal_method='exact', blur_t=0.9, blur_method='exact',
                     sharpen_t=2.0, sharpen_method='exact',
                     merge=merge).fit(edge_index)
        ideal = R @ expm(1.5 * (M - Id))
        # The idempotent closed form agrees with the exponential:
        assert_close(ideal, math.exp(-1.5) * R
                     + (1 - math.exp(-1.5)) * R @ M, 1e-8)
        blurred = R @ expm(-0.9 * (Id - P))
        if merge == 'early':
            expected = (blurred + 0.25 * ideal) @ expm(-2.0 * P)
        else:
            expected = blurred @ expm(-2.0 * P) + 0.25 * ideal
        assert_close(model.score(torch.arange(U)), expected, 1e-4)


@pytest.mark.parametrize('method', ['dopri5'])
def test_bspm_adaptive_close_to_exact(edge_index, k_gap, method):
    users = torch.arange(U)
    exact = BSPM(U, I, k=k_gap, ideal_method='exact', blur_method='exact',
                 sharpen_method='exact').fit(edge_index)
    adaptive = BSPM(U, I, k=k_gap, ideal_method=method, blur_method=method,
                    sharpen_method=method).fit(edge_index)
    assert_close(adaptive.score(users), exact.score(users), 1e-3)


def test_bspm_without_sharpening(R, edge_index, k_gap, dense_ops):
    P, M = dense_ops
    for merge in ('early', 'late'):
        model = BSPM(U, I, k=k_gap, beta=0.3, blur_steps=2, sharpen_t=0,
                     merge=merge).fit(edge_index)
        blurred = R @ step_matrix(P - torch.eye(I, dtype=F64), 0.5,
                                  'euler').matrix_power(2)
        assert_close(model.score(torch.arange(U)), blurred + 0.3 * R @ M,
                     2e-4)


def test_bspm_tpc_without_sharpening_averages_blur_points(R, edge_index,
                                                          k_gap, dense_ops):
    P, M = dense_ops
    model = BSPM(U, I, k=k_gap, beta=0.3, blur_steps=2, sharpen_t=0,
                 merge='late', t_point_combination=True).fit(edge_index)
    points = flow_points(R, P - torch.eye(I, dtype=F64), 1.0, 2, 'euler')
    expected = torch.stack(points).mean(0) + 0.3 * R @ M
    assert_close(model.score(torch.arange(U)), expected, 2e-4)


def test_turbo_filters_differ_and_match(R, fitted):
    users = torch.arange(U)
    P1 = dense_turbo(R, 0.6, 0.7)
    assert_close(fitted['turbo1'].score(users), R @ P1, 1e-5)
    P2 = dense_turbo(R, 0.6, 1.0)
    assert_close(fitted['turbo2'].score(users), R @ (2 * P2 - P2 @ P2), 1e-5)
    model = TurboCF(U, I, alpha=0.5, power=1.4, filter=2,
                    block_size=3).fit(index_of(R))
    P3 = dense_turbo(R, 0.5, 1.4)
    assert_close(model.score(users), R @ (2 * P3 - P3 @ P3), 1e-5)


# ---------------------------------------------------------------------------
# Inductive scoring
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', MODEL_NAMES)
def test_forward_on_fitted_rows_equals_score(R, fitted, name):
    model = fitted[name]
    users = torch.tensor([0, 3, EMPTY_USER, 17, 39, 3])
    assert_close(model(R[users].float()), model.score(users), 1e-6)
    assert torch.equal(model.user_rows(users).t(), R[users].float())


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_new_user_dense_and_sparse_rows(R, fitted, dense_ops, k_gap, name):
    model = fitted[name]
    rows = new_rows()
    assert not any(bool((rows[i] == R.float()).all(1).any())
                   for i in range(rows.size(0)))
    dense = model(rows)
    assert dense.shape == (rows.size(0), I)
    for sparse in (rows.to_sparse(), rows.to_sparse_csr(),
                   rows.long().to_sparse()):
        assert_close(model(sparse), dense, 1e-6)
    # The new user is scored with the fitted graph and basis:
    P, M = dense_ops
    expected = model_cases(k_gap)[name][1](rows.double(), P, M, R)
    assert_close(dense, expected, 2e-4)


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_batch_equals_one_by_one(fitted, name):
    model = fitted[name]
    users = torch.tensor([1, 0, 39, EMPTY_USER, 20, 20, 11])
    batch = model.score(users)
    single = torch.cat([model.score(users[i:i + 1])
                        for i in range(users.numel())])
    assert_close(batch, single, 1e-6)
    # More rows than ITEM_ITEM_BLOCK: the blocked product path.
    rows = torch.cat([new_rows(ITEM_ITEM_BLOCK + 9, seed=2),
                      torch.zeros(1, I)])
    batch = model(rows)
    single = torch.cat([model(rows[i:i + 1]) for i in range(rows.size(0))])
    assert_close(batch, single, 1e-5)


def test_batch_equals_one_by_one_adaptive(edge_index, k_gap):
    model = BSPM(U, I, k=k_gap, blur_method='dopri5',
                 sharpen_method='dopri5').fit(edge_index)
    users = torch.tensor([2, 9, 30])
    single = torch.cat([model.score(users[i:i + 1]) for i in range(3)])
    # The adaptive step control sees the whole batch: equal to tolerance.
    assert_close(model.score(users), single, 1e-3)


@pytest.mark.parametrize('name', MODEL_NAMES + ['bspm_dopri5'])
def test_empty_rows_give_zero_scores(edge_index, fitted, k_gap, name):
    if name == 'bspm_dopri5':
        model = BSPM(U, I, k=k_gap, ideal_method='dopri5',
                     blur_method='dopri5',
                     sharpen_method='dopri5').fit(edge_index)
    else:
        model = fitted[name]
    scores = model.score(torch.tensor([EMPTY_USER, EMPTY_USER]))
    assert torch.equal(scores, torch.zeros(2, I))
    assert torch.equal(model(torch.zeros(3, I)), torch.zeros(3, I))
    # Finite scores everywhere, also for the item nobody interacted with:
    full = model.score(torch.arange(U))
    assert bool(torch.isfinite(full).all())
    assert bool((full[:, EMPTY_ITEM] == 0).all())


def test_graph_with_no_interactions_at_all():
    empty = torch.empty(2, 0, dtype=torch.long)
    for model in (GFCF(U, I, alpha=0.0), TurboCF(U, I),
                  BSPM(U, I, ideal_t=None)):
        model.fit(empty)
        scores = model.score(torch.arange(4))
        assert torch.equal(scores, torch.zeros(4, I))


# ---------------------------------------------------------------------------
# Hand-made communities: known scores, evaluator and recommend
# ---------------------------------------------------------------------------
def test_gfcf_hand_computed_scores():
    train, _ = community_split()
    # Community A: R~ = (J - I) / 3, P~ = (2J + I) / 9, so r P~ = 6/9 on
    # the unseen item and 7/9 on the seen ones. The top two singular values
    # of R~ are both 1, with the communities' constant vectors: for k = 2
    # (uniform degrees) Ideal(r) = (sum(r) / n) on the user's community.
    model = GFCF(9, 9, k=2, alpha=0.3).fit(train)
    scores = model.score(torch.tensor([0, 4]))
    a = [6 / 9 + 0.3 * 3 / 4] + [7 / 9 + 0.3 * 3 / 4] * 3 + [0.0] * 5
    # Community B: R~ = (J - I) / 4, P~ = (3J + I) / 16, Ideal = 4/5 each.
    b = [0.0] * 4 + [12 / 16 + 0.3 * 4 / 5] + [13 / 16 + 0.3 * 4 / 5] * 4
    assert_close(scores, torch.tensor([a, b], dtype=F64), 1e-5)


def community_models():
    return {
        'gfcf': GFCF(9, 9, k=2, alpha=0.3),
        'gfcf_svds': GFCF(9, 9, k=5, alpha=1.0, svd='svds'),
        'bspm_em': BSPM(9, 9, k=2),
        'bspm_lm': BSPM(9, 9, k=2, merge='late', sharpen_t=2.2,
                        sharpen_steps=2),
        'bspm_yelp': BSPM(9, 9, k=2, beta=0.3, sharpen_t=1.2,
                          sharpen_method='euler', t_point_combination=True),
        'chebycf': ChebyCF(9, 9, k=2),
        'turbo1': TurboCF(9, 9, alpha=0.6, power=0.7),
        'turbo2': TurboCF(9, 9, alpha=0.6, power=1.0, filter=2),
    }


def _metrics():
    try:
        from pyg_lightgode.metrics import RankingEvaluator
    except ImportError:  # pragma: no cover
        pytest.skip('pyg_lightgode.metrics.RankingEvaluator missing')
    if not hasattr(RankingEvaluator, 'evaluate_scorer'):
        pytest.skip('RankingEvaluator.evaluate_scorer not there yet')
    return RankingEvaluator


@pytest.mark.parametrize('name', list(community_models()))
def test_evaluate_scorer_on_communities(name):
    RankingEvaluator = _metrics()
    train, test = community_split()
    model = community_models()[name].fit(train)
    # The held-out item is the only unseen item of the user's community
    # and every item of the other community scores 0: recall@1 = 1.
    evaluator = RankingEvaluator(test, exclude_links=train, ks=(1, 3),
                                 metrics=('recall', 'ndcg', 'precision'),
                                 batch_size=4)
    out = evaluator.evaluate_scorer(model.score, 9, 9)
    assert out['recall@1'] == pytest.approx(1.0)
    assert out['ndcg@1'] == pytest.approx(1.0)
    assert out['precision@3'] == pytest.approx(1 / 3)
    # Without the exclusion, the training items of a dense community
    # outrank the held-out one for every model here: recall@1 = 0.
    plain = RankingEvaluator(test, ks=(1, ), metrics=('recall', ))
    assert plain.evaluate_scorer(model.score, 9, 9)['recall@1'] == 0.0
    # The scorer interface is the same through inductive rows:
    rows = torch.zeros(9, 9)
    rows[train[0], train[1]] = 1
    via_rows = evaluator.evaluate_scorer(lambda u: model(rows[u]), 9, 9)
    assert via_rows == pytest.approx(out)


@pytest.mark.parametrize('name', list(community_models()))
def test_recommend_excludes_training_and_pads(name):
    train, test = community_split()
    model = community_models()[name].fit(train)
    users = torch.arange(9)
    index = model.recommend(users, k=8, exclude_links=train)
    assert index.shape == (9, 8)
    # Top-1 is the held-out item of the user's own community:
    assert index[:, 0].tolist() == test[1].tolist()
    for u in range(9):
        seen = set(train[1][train[0] == u].tolist())
        recs = index[u].tolist()
        assert not seen & set(recs)
        remaining = 9 - len(seen)  # 6 in community A, 5 in B
        assert recs[remaining:] == [-1] * (8 - remaining)
        assert -1 not in recs[:remaining]
        assert len(set(recs[:remaining])) == remaining
        # Own community first (items 0-3 or 4-8):
        own = set(range(4)) if u < 4 else set(range(4, 9))
        assert recs[0] in own
    # A list of exclusions, and a subset of users: user 4 has seen or
    # holds out every item of community B, so only A's four remain.
    index = model.recommend(torch.tensor([4]), k=8,
                               exclude_links=[train, test])
    assert sorted(index[0, :4].tolist()) == [0, 1, 2, 3]
    assert index[0, 4:].tolist() == [-1] * 4


def test_recommend_matches_dense_topk(R, fitted):
    model = fitted['gfcf']
    users = torch.tensor([0, 1, 2, 3])
    index = model.recommend(users, k=5, exclude_links=index_of(R))
    scores = model.score(users).clone()
    scores[R[users] > 0] = float('-inf')
    expected_score, _ = scores.topk(5, dim=1)
    assert_close(scores.gather(1, index), expected_score, 1e-6)
    assert not bool((R[users.unsqueeze(1), index] > 0).any())


# ---------------------------------------------------------------------------
# ScoreFusion
# ---------------------------------------------------------------------------
def z(scores):
    r"""Per-user z-score (sample std); rows without spread give zeros."""
    scores = scores.double()
    std = scores.std(1, keepdim=True, correction=0)
    out = (scores - scores.mean(1, keepdim=True)) / std
    return torch.where(std > 0, out, torch.zeros_like(out))


def test_score_fusion_weighted_sum_of_standardised(fitted):
    gen = torch.Generator().manual_seed(0)
    emb = EmbeddingScorer(torch.randn(U, 8, generator=gen),
                          torch.randn(I, 8, generator=gen))
    parts = [emb, fitted['gfcf'], fitted['turbo1']]
    weights = [1.0, 0.5, 0.25]
    fusion = ScoreFusion(parts, weights)
    users = torch.tensor([0, 1, 2, 39, 13])
    expected = sum(w * z(p.score(users)) for p, w in zip(parts, weights))
    assert_close(fusion.score(users), expected, 1e-5)
    # Scale invariance of each part (why the standardisation is there):
    scaled = EmbeddingScorer(emb.user_emb * 100, emb.item_emb)
    assert_close(ScoreFusion([scaled, fitted['gfcf']], [1.0, 0.5]).score(
        users), ScoreFusion([emb, fitted['gfcf']], [1.0, 0.5]).score(users),
        1e-5)
    # standardize: zero mean, unit std per row; constant rows -> zeros.
    s = standardize(torch.randn(4, I, generator=gen) * 7 + 3)
    assert_close(s.mean(1), torch.zeros(4, dtype=F64), 1e-5)
    assert_close(s.std(1, correction=0), torch.ones(4, dtype=F64), 1e-5)
    assert torch.equal(standardize(torch.full((2, I), 5.0)),
                       torch.zeros(2, I))
    # An empty user of a filter (all-zero scores) stays finite:
    assert bool(torch.isfinite(fusion.score(torch.tensor([EMPTY_USER])))
                .all())


def test_score_fusion_zero_weight_drops_the_part(fitted):
    class Exploding(EmbeddingScorer):
        def score(self, users):
            raise AssertionError('a part of weight 0 must not be scored')

    boom = Exploding(torch.zeros(U, 2), torch.zeros(I, 2))
    users = torch.arange(6)
    fusion = ScoreFusion([fitted['gfcf'], boom], [0.7, 0.0])
    assert_close(fusion.score(users), 0.7 * z(fitted['gfcf'].score(users)),
                 1e-5)
    assert torch.equal(ScoreFusion([boom], [0.0]).score(users),
                       torch.zeros(6, I))
    # The fusion is a Scorer: recommend works through it.
    index = fusion.recommend(users, k=3)
    assert index.shape == (6, 3)


def test_score_fusion_bad_input(fitted):
    small = EmbeddingScorer(torch.zeros(U, 2), torch.zeros(I - 1, 2))
    with pytest.raises(ValueError, match='same users and items'):
        ScoreFusion([fitted['gfcf'], small], [1.0, 1.0])
    with pytest.raises(ValueError, match="'scorers'"):
        ScoreFusion([fitted['gfcf']], [1.0, 1.0])
    with pytest.raises(ValueError, match="'scorers'"):
        ScoreFusion([], [])
    with pytest.raises(ValueError, match="'weights'"):
        ScoreFusion([fitted['gfcf']], [float('inf')])
    with pytest.raises(ValueError, match="'weights'"):
        ScoreFusion([fitted['gfcf']], [float('nan')])
    with pytest.raises(ValueError, match="'user_emb'"):
        EmbeddingScorer(torch.zeros(U, 2), torch.zeros(I, 3))


@pytest.mark.filterwarnings('ignore:std_mean')
def test_standardize_single_item_is_zero_not_nan():
    fusion = ScoreFusion([EmbeddingScorer(torch.randn(3, 2),
                                          torch.randn(1, 2))], [1.0])
    assert torch.equal(fusion.score(torch.arange(3)), torch.zeros(3, 1))


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
def test_k_must_be_below_users_and_items(edge_index):
    with pytest.raises(ValueError, match="'k'"):
        GFCF(U, I, k=0)
    with pytest.raises(ValueError, match="'k'"):
        BSPM(U, I, k=-3)
    with pytest.raises(ValueError, match="'k'"):
        GFCF(U, I, k=I).fit(edge_index)  # equal to the catalogue
    with pytest.raises(ValueError, match="'k'"):
        BSPM(U, I, k=I + 5).fit(edge_index)
    few_users = edge_index[:, edge_index[0] < 12]
    with pytest.raises(ValueError, match="'k'"):
        GFCF(12, I, k=12).fit(few_users)  # equal to the user count
    graph = normalize_interactions(edge_index, U, I)
    for k in (0, I, 100, True, 2.0):
        with pytest.raises(ValueError, match="'k'"):
            ideal_basis(graph, k)
    # alpha = 0 needs no SVD, so any k is fine:
    GFCF(U, I, k=I, alpha=0.0).fit(edge_index)


def test_svd_method_and_options(edge_index):
    graph = normalize_interactions(edge_index, U, I)
    with pytest.raises(ValueError, match="'method'"):
        ideal_basis(graph, 4, 'eigh')
    with pytest.raises(ValueError, match="'niter'"):
        ideal_basis(graph, 4, 'lowrank', niter=-1)
    with pytest.raises(ValueError, match='(?i)svd'):
        GFCF(U, I, k=4, svd='arpack').fit(edge_index)
    with pytest.raises(ValueError, match='(?i)svd'):
        BSPM(U, I, k=4, svd='arpack').fit(edge_index)


def test_unknown_svd_rejected_at_construction():
    with pytest.raises(ValueError, match="'svd'"):
        GFCF(U, I, k=4, svd='arpack')


@pytest.mark.parametrize('kwargs,match', [
    (dict(blur_t=-1.0), "'blur_t'"),
    (dict(sharpen_t=-0.5), "'sharpen_t'"),
    (dict(ideal_t=-1.0), "'ideal_t'"),
    (dict(blur_t=float('nan')), "'blur_t'"),
    (dict(sharpen_method='rk5'), "'sharpen_method'"),
    (dict(blur_method='Euler'), "'blur_method'"),
    (dict(ideal_method='magic'), "'ideal_method'"),
    (dict(blur_steps=0), "'blur_steps'"),
    (dict(sharpen_steps=1.5), "'sharpen_steps'"),
    (dict(merge='middle'), "'merge'"),
    (dict(beta=-0.1), "'beta'"),
    (dict(beta=float('inf')), "'beta'"),
    (dict(k=0), "'k'"),
])
def test_bspm_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        BSPM(U, I, **kwargs)


@pytest.mark.parametrize('make,match', [
    (lambda: GFCF(U, I, alpha=-0.3), "'alpha'"),
    (lambda: GFCF(0, I), "'num_users'"),
    (lambda: GFCF(U, 0), "'num_items'"),
    (lambda: TurboCF(U, I, filter=3), "'filter'"),
    (lambda: TurboCF(U, I, filter=0), "'filter'"),
    (lambda: TurboCF(U, I, power=0.0), "'power'"),
    (lambda: TurboCF(U, I, power=-1.0), "'power'"),
    (lambda: TurboCF(U, I, alpha=float('nan')), "'alpha'"),
    (lambda: TurboCF(U, I, block_size=0), "'block_size'"),
])
def test_model_bad_options(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_turbo_item_item_bad_options(edge_index):
    with pytest.raises(ValueError, match="'power'"):
        turbo_item_item(edge_index, U, I, power=0)
    with pytest.raises(ValueError, match="'block_size'"):
        turbo_item_item(edge_index, U, I, block_size=0)
    with pytest.raises(ValueError, match="'alpha'"):
        turbo_item_item(edge_index, U, I, alpha=float('inf'))


@pytest.mark.parametrize('users', [
    torch.tensor([0, U]), torch.tensor([-1]), torch.tensor([0.0, 1.0]),
    torch.tensor([[0, 1]]), torch.tensor([True, False]), [0, 1],
])
def test_user_ids_out_of_range(fitted, users):
    for name in ('gfcf', 'bspm_em', 'turbo1'):
        with pytest.raises(ValueError, match="'users'"):
            fitted[name].score(users)
    with pytest.raises(ValueError, match="'users'"):
        fitted['gfcf'].recommend(users, k=3)


def test_embedding_scorer_rejects_bad_users():
    emb = EmbeddingScorer(torch.randn(U, 4), torch.randn(I, 4))
    with pytest.raises(ValueError, match="'users'"):
        emb.score(torch.tensor([-1]))


@pytest.mark.parametrize('rows,exc', [
    (torch.zeros(2, I + 1), ValueError),
    (torch.zeros(2, I - 1).to_sparse(), ValueError),
    (torch.zeros(I), ValueError),
    (torch.zeros(1, 2, I), ValueError),
    ([[0.0] * I], TypeError),
])
def test_rows_of_wrong_shape(fitted, rows, exc):
    for name in ('gfcf', 'bspm_em', 'turbo2'):
        with pytest.raises(exc, match="'rows'"):
            fitted[name](rows)


def assert_every_fit_refuses(graph):
    for fit in (lambda g: normalize_interactions(g, U, I),
                lambda g: GFCF(U, I, k=4).fit(g),
                lambda g: TurboCF(U, I).fit(g),
                lambda g: BSPM(U, I, k=4).fit(g)):
        with pytest.raises(ValueError, match="'graph'"):
            fit(graph)


def test_graph_of_wrong_shape_or_values(R, edge_index):
    index = edge_index
    values = torch.ones(index.size(1))
    bad = {
        'sparse_shape': torch.sparse_coo_tensor(index, values, (U + 1, I)),
        'csr_shape': torch.sparse_coo_tensor(index, values,
                                             (U, I + 2)).to_sparse_csr(),
        'three_rows': torch.cat([index, index[:1]]),
        'float_index': index.float(),
        'bool_index': index.bool(),
        'one_dim': index[0],
        'item_out_of_range': torch.cat([index, torch.tensor([[0], [I]])], 1),
        'user_negative': torch.cat([index, torch.tensor([[-1], [0]])], 1),
    }
    for name, graph in bad.items():
        assert_every_fit_refuses(graph)
    for graph in ([[0, 1], [1, 2]], R, None):
        if isinstance(graph, torch.Tensor):
            # A dense float [U, I] matrix is not an interaction index:
            with pytest.raises(ValueError, match="'graph'"):
                GFCF(U, I, k=4).fit(graph)
        else:
            with pytest.raises(TypeError, match="'graph'"):
                GFCF(U, I, k=4).fit(graph)
    torch_sparse = pytest.importorskip('torch_sparse')
    st = torch_sparse.SparseTensor(row=index[0], col=index[1],
                                   sparse_sizes=(U, I + 1))
    with pytest.raises(ValueError, match="'graph'"):
        TurboCF(U, I).fit(st)


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -1.0])
def test_sparse_values_non_finite_or_negative(edge_index, value):
    values = torch.ones(edge_index.size(1))
    values[3] = value
    for graph in (torch.sparse_coo_tensor(edge_index, values, (U, I)),
                  torch.sparse_coo_tensor(edge_index, values,
                                          (U, I)).to_sparse_csr()):
        assert_every_fit_refuses(graph)


def test_scoring_before_fit():
    for model in (GFCF(U, I, k=4), BSPM(U, I, k=4), TurboCF(U, I)):
        assert not model.is_fitted
        with pytest.raises(RuntimeError, match='fit'):
            model.score(torch.tensor([0]))
        with pytest.raises(RuntimeError, match='fit'):
            model(torch.zeros(1, I))
        with pytest.raises(RuntimeError, match='fit'):
            model.recommend(torch.tensor([0]), k=3)


def test_failed_fit_leaves_model_unfitted(edge_index):
    model = GFCF(U, I, k=I)
    with pytest.raises(ValueError, match="'k'"):
        model.fit(edge_index)
    assert not model.is_fitted
    with pytest.raises(RuntimeError, match='fit'):
        model.score(torch.tensor([0]))


def test_recommend_bad_k(fitted):
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="'k'"):
            fitted['gfcf'].recommend(torch.tensor([0]), k=k)


def test_repr_names_the_settings(fitted):
    assert 'alpha=0.3' in repr(fitted['gfcf'])
    assert "merge='early'" in repr(fitted['bspm_em'])
    assert 'filter=2' in repr(fitted['turbo2'])
    assert 'order=8' in repr(fitted['chebycf'])
