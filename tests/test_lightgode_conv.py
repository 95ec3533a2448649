import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_geometric
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.testing import assert_module
from torch_geometric.typing import WITH_TORCH_SPARSE, SparseTensor
from torch_geometric.utils import to_torch_csr_tensor

from pyg_lightgode.nn.conv import LightGODEConv

# A method with the settings that make it accurate on the graph below, and
# the times it is checked at (adaptive_heun is slow, so it gets short ones).
ACCURATE = [
    ('exact', {}, [0.5, 1.5, 3.0]),
    ('rk4', dict(step_size=0.05), [0.5, 1.5, 3.0]),
    ('heun3', dict(step_size=0.05), [0.5, 1.5, 3.0]),
    ('midpoint', dict(step_size=0.005), [0.5, 1.5, 3.0]),
    ('heun2', dict(step_size=0.005), [0.5, 1.5, 3.0]),
    # torchdiffeq's Adams-Bashforth goes up to order 12: stable only for
    # small steps (0.01 diverges here).
    ('explicit_adams', dict(step_size=0.004), [0.5, 1.5, 3.0]),
    ('implicit_adams', dict(step_size=0.05), [0.5, 1.5, 3.0]),
    ('dopri5', dict(rtol=1e-7, atol=1e-9), [0.5, 1.5, 3.0]),
    ('dopri8', dict(rtol=1e-9, atol=1e-11), [0.5, 1.5, 3.0]),
    ('bosh3', dict(rtol=1e-7, atol=1e-9), [0.5, 1.5, 3.0]),
    ('fehlberg2', dict(rtol=1e-6, atol=1e-8), [0.5, 1.5, 3.0]),
    ('adaptive_heun', dict(rtol=1e-4, atol=1e-6), [0.5, 1.0]),
]


def random_bipartite(num_users=6, num_items=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(num_users, num_items, generator=gen) < 0.4
    mask[torch.arange(num_users), torch.arange(num_users) % num_items] = True
    user, item = mask.nonzero().t()
    item = item + num_users
    edge_index = torch.stack([torch.cat([user, item]), torch.cat([item,
                                                                  user])])
    x = torch.randn(num_users + num_items, 5, generator=gen,
                    dtype=torch.float64)
    return x, edge_index


def dense_normalized(edge_index, num_nodes):
    # out[i] = sum over edges j->i of w_ji * x[j], so A_hat[i, j] = w_ji.
    edge_index, weight = gcn_norm(edge_index, None, num_nodes,
                                  add_self_loops=False, dtype=torch.float64)
    adj = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
    adj.index_put_((edge_index[1], edge_index[0]), weight, accumulate=True)
    return adj


def expm_solution(adj, x, t):
    r"""E(t) of dE/dt = A E + x, E(0) = x, from the augmented linear system
    d[E; x]/dt = [[A, I], [0, 0]] [E; x]."""
    n = adj.size(0)
    system = np.zeros((2 * n, 2 * n))
    system[:n, :n] = adj.numpy()
    system[:n, n:] = np.eye(n)
    flow = scipy.linalg.expm(system * t)
    return torch.from_numpy(flow[:n, :n] + flow[:n, n:]) @ x


def rel_err(a, b):
    return float((a - b).norm() / b.norm())


def test_one_euler_step_by_hand():
    # Path 0 - 1 - 2: degrees 1, 2, 1, so every edge weighs 1/sqrt(2).
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    x = torch.tensor([[1.0], [2.0], [4.0]], dtype=torch.float64)
    r = 1 / math.sqrt(2)
    prop = torch.tensor([[2 * r], [5 * r], [2 * r]], dtype=torch.float64)
    conv = LightGODEConv(t=3.0)  # The default: one Euler step.
    assert conv.method == 'euler' and conv.step_size is None
    assert torch.allclose(conv(x, edge_index), 4 * x + 3 * prop)
    # Overriding t per call, and torchdiffeq's single step agrees.
    out = conv(x, edge_index, t=0.5)
    assert torch.allclose(out, 1.5 * x + 0.5 * prop)
    stepped = LightGODEConv(t=0.5, method='euler', step_size=0.5)
    assert torch.allclose(stepped(x, edge_index), out)


@pytest.mark.parametrize('method,kwargs,times', ACCURATE)
def test_accurate_solvers_match_expm(method, kwargs, times):
    x, edge_index = random_bipartite()
    adj = dense_normalized(edge_index, x.size(0))
    conv = LightGODEConv(t=times, method=method, **kwargs)
    out = conv(x, edge_index)
    assert out.shape == (len(times), *x.shape)
    for t, out_t in zip(times, out):
        assert rel_err(out_t, expm_solution(adj, x, t)) < 1e-4, t


def test_exact_in_float32_and_large_t():
    x, edge_index = random_bipartite()
    adj = dense_normalized(edge_index, x.size(0))
    out = LightGODEConv(t=10.0, method='exact')(x.float(), edge_index)
    assert out.dtype == torch.float32
    assert rel_err(out.double(), expm_solution(adj, x, 10.0)) < 1e-4


def test_exact_max_terms_guard():
    x, edge_index = random_bipartite()
    with pytest.raises(RuntimeError, match='max_terms'):
        LightGODEConv(t=3.0, method='exact', max_terms=3)(x, edge_index)


def weighted_directed_graph():
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 0, 3, 2], [1, 0, 2, 3, 1, 3, 2,
                                                          0]])
    edge_weight = torch.tensor([0.5, 2.0, 1.0, 3.0, 0.25, 1.5, 0.75, 1.25],
                               dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    return x, edge_index, edge_weight


def as_form(form, edge_index, edge_weight, num_nodes):
    r"""The graph in :obj:`form`, and the edge weights to pass with it."""
    adj_t = edge_index.flip(0)  # adj_t[i, j] holds the weight of j -> i.
    size = (num_nodes, num_nodes)
    if form == 'csr':
        return to_torch_csr_tensor(adj_t, edge_weight, size=size), None
    if form == 'coo':
        return torch.sparse_coo_tensor(adj_t, edge_weight, size), None
    if form == 'SparseTensor':
        if not WITH_TORCH_SPARSE:
            pytest.skip('torch_sparse is not installed')
        return SparseTensor(row=adj_t[0], col=adj_t[1], value=edge_weight,
                            sparse_sizes=size), None
    return edge_index, edge_weight


@pytest.mark.parametrize('form', ['csr', 'coo', 'SparseTensor'])
@pytest.mark.parametrize('normalize', [True, False])
@pytest.mark.parametrize('method,kwargs', [('euler', {}), ('exact', {}),
                                           ('rk4', dict(step_size=0.1))])
def test_graph_forms_agree(form, normalize, method, kwargs):
    x, edge_index, edge_weight = weighted_directed_graph()
    conv = LightGODEConv(t=[0.5, 2.0], method=method, normalize=normalize,
                         **kwargs)
    graph, weight = as_form(form, edge_index, edge_weight, x.size(0))
    out = conv(x, graph, weight)
    assert torch.allclose(out, conv(x, edge_index, edge_weight), atol=1e-10)
    # Different weights give a different answer: the test can fail.
    assert not torch.allclose(out, conv(x, edge_index), atol=1e-3)


@pytest.mark.parametrize('normalize', [True, False])
def test_one_step_on_csr_matches_edge_index_with_gradients(normalize):
    # A CSR adjacency takes the fused sparse product (1 + t) x + t A x.
    x, edge_index, edge_weight = weighted_directed_graph()
    adj_t, _ = as_form('csr', edge_index, edge_weight, x.size(0))
    conv = LightGODEConv(t=1.5, normalize=normalize)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = conv(a, adj_t)
    expected = conv(b, edge_index, edge_weight)
    assert torch.allclose(out, expected)
    weight = torch.randn(x.shape, dtype=x.dtype)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    assert torch.allclose(a.grad, b.grad)


@pytest.mark.parametrize('method', ['euler', 'exact', 'rk4'])
def test_unfused_message_path_agrees(method):
    # Explainers switch fusion off; messages then carry adj_t's values.
    x, edge_index, edge_weight = weighted_directed_graph()
    conv = LightGODEConv(t=[0.5, 2.0], method=method)
    expected = conv(x, edge_index, edge_weight)
    conv.fuse = False
    assert torch.allclose(conv(x, edge_index, edge_weight), expected)


def test_normalize_false_uses_weights_as_given():
    x, edge_index, edge_weight = weighted_directed_graph()
    adj = torch.zeros(4, 4, dtype=torch.float64)
    adj[edge_index[1], edge_index[0]] = edge_weight
    conv = LightGODEConv(t=0.7, normalize=False)
    expected = 1.7 * x + 0.7 * adj @ x
    assert torch.allclose(conv(x, edge_index, edge_weight), expected)
    # Without weights every edge weighs one.
    ones = (adj != 0).double()
    assert torch.allclose(conv(x, edge_index), 1.7 * x + 0.7 * ones @ x)
    # And the accurate solution of the unnormalized system.
    exact = LightGODEConv(t=0.7, method='exact', normalize=False)
    out = exact(x, edge_index, edge_weight)
    assert rel_err(out, expm_solution(adj, x, 0.7)) < 1e-4


def test_normalize_true_directed_weighted_by_hand():
    x, edge_index, edge_weight = weighted_directed_graph()
    # gcn_norm: w_ji / sqrt(deg(j) deg(i)) with in-degrees (weighted).
    deg = torch.zeros(4, dtype=torch.float64).index_add_(
        0, edge_index[1], edge_weight)
    adj = torch.zeros(4, 4, dtype=torch.float64)
    src, dst = edge_index
    adj[dst, src] = edge_weight / (deg[src] * deg[dst]).sqrt()
    out = LightGODEConv(t=2.0)(x, edge_index, edge_weight)
    assert torch.allclose(out, 3.0 * x + 2.0 * adj @ x)


@pytest.mark.parametrize('method,kwargs', [
    ('euler', {}),
    ('exact', dict(rtol=1e-10, atol=1e-12)),  # Truncation depends on max t.
    ('midpoint', {}),
    ('rk4', dict(step_size=0.25)),
    ('dopri5', dict(rtol=1e-8, atol=1e-10)),
])
def test_multiple_times_equal_separate_solves(method, kwargs):
    x, edge_index = random_bipartite()
    times = [0.0, 0.5, 1.0, 2.5]
    conv = LightGODEConv(method=method, **kwargs)
    together = conv(x, edge_index, t=torch.tensor(times))
    assert together.shape == (len(times), *x.shape)
    for t, out_t in zip(times, together):
        separate = conv(x, edge_index, t=t)
        assert torch.allclose(out_t, separate, rtol=1e-6, atol=1e-8), t


def test_euler_without_step_size_is_one_step_per_time():
    # The official semantics per time, not chained steps 0 -> 1 -> 3.
    x, edge_index = random_bipartite()
    adj = dense_normalized(edge_index, x.size(0))
    out = LightGODEConv(t=[1.0, 3.0])(x, edge_index)
    assert torch.allclose(out[1], 4 * x + 3 * adj @ x)


@pytest.mark.parametrize('method,kwargs', [('euler', {}), ('exact', {}),
                                           ('rk4', dict(step_size=0.1)),
                                           ('rk4', {}), ('dopri5', {})])
def test_zero_time_is_identity(method, kwargs):
    x, edge_index = random_bipartite()
    conv = LightGODEConv(t=0.0, method=method, **kwargs)
    assert torch.equal(conv(x, edge_index), x)
    assert torch.equal(conv(x, edge_index, t=[0.0, 1.0])[0], x)


def test_fixed_steps_hit_requested_times():
    # 0.3 is no multiple of 0.25; the grid still ends exactly there.
    x, edge_index = random_bipartite()
    adj = dense_normalized(edge_index, x.size(0))
    out = LightGODEConv(t=[0.3, 1.0], method='rk4', step_size=0.25)(
        x, edge_index)
    for t, out_t in zip([0.3, 1.0], out):
        assert rel_err(out_t, expm_solution(adj, x, t)) < 1e-4


@pytest.mark.parametrize('method,kwargs', [('exact', {}), ('euler', {}),
                                           ('rk4', dict(step_size=0.1)),
                                           ('dopri5', dict(rtol=1e-9,
                                                           atol=1e-11))])
def test_gradient_matches_analytic(method, kwargs):
    # E(t) = P(A) x with P(A) symmetric, so d<W, E(t)>/dx = P(A) W.
    x, edge_index = random_bipartite()
    adj = dense_normalized(edge_index, x.size(0))
    t = 1.5
    if method == 'euler':
        operator = (1 + t) * torch.eye(x.size(0), dtype=x.dtype) + t * adj
    else:
        operator = expm_solution(adj, torch.eye(x.size(0), dtype=x.dtype), t)
    weight = torch.randn(x.shape, dtype=x.dtype,
                         generator=torch.Generator().manual_seed(2))
    x = x.clone().requires_grad_()
    out = LightGODEConv(t=t, method=method, **kwargs)(x, edge_index)
    (out * weight).sum().backward()
    assert rel_err(x.grad, operator.t() @ weight) < 1e-4


@pytest.mark.parametrize('method,kwargs', [('euler', {}),
                                           ('rk4', dict(step_size=0.5))])
def test_gradcheck(method, kwargs):
    x, edge_index, edge_weight = weighted_directed_graph()
    conv = LightGODEConv(t=[0.5, 1.0], method=method, **kwargs)
    x = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: conv(x, edge_index, edge_weight), (x, ))


def test_compile_fullgraph_edge_index():
    # The one-step default with an edge_index: one graph, no break (a host
    # sync or a sparse tensor would raise under fullgraph=True).
    torch._dynamo.reset()
    x, edge_index = random_bipartite()
    x = x.float()
    weight = torch.rand(edge_index.size(1)) + 0.5
    conv = LightGODEConv(t=2.0)
    compiled = torch.compile(conv, fullgraph=True)
    expected = conv(x, edge_index, weight)
    assert torch.allclose(compiled(x, edge_index, weight), expected,
                          atol=1e-5)
    assert torch.allclose(compiled(2 * x, edge_index, weight), 2 * expected,
                          atol=1e-5)


@pytest.mark.parametrize('conv', [
    LightGODEConv(t=[0.5, 2.0]),
    LightGODEConv(t=1.5, normalize=False),
])
def test_compile_fullgraph_variants(conv):
    torch._dynamo.reset()
    x, edge_index = random_bipartite()
    compiled = torch.compile(conv, fullgraph=True, backend='aot_eager')
    assert torch.allclose(compiled(x, edge_index), conv(x, edge_index))
    assert torch.allclose(compiled(x, edge_index, t=0.0), x)


def test_compile_exact_and_sparse_adjacency():
    # The series reads its norms to stop, torchdiffeq checks its inputs'
    # values and sparse tensors are no Dynamo inputs: these run with graph
    # breaks.
    torch._dynamo.reset()
    x, edge_index = random_bipartite()
    adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(x.size(0), ) * 2)
    for conv, graph in ((LightGODEConv(t=2.0, method='exact'), edge_index),
                        (LightGODEConv(t=2.0, method='rk4', step_size=0.5),
                         edge_index),
                        (LightGODEConv(t=2.0), adj_t)):
        compiled = torch.compile(conv, backend='aot_eager')
        assert torch.allclose(compiled(x, graph), conv(x, edge_index))


@pytest.mark.parametrize('kwargs,match', [
    (dict(method='rk5'), "Unknown 'method' 'rk5'.*exact.*euler.*dopri5"),
    (dict(t=-1.0), 'non-negative'),
    (dict(t=[1.0, 0.5]), 'strictly increasing'),
    (dict(t=[1.0, 1.0]), 'strictly increasing'),
    (dict(t=[]), 'at least one'),
    (dict(t=float('nan')), 'finite'),
    (dict(t=torch.ones(2, 2)), '1-D'),
    (dict(method='dopri5', step_size=0.1), 'fixed-step'),
    (dict(method='exact', step_size=0.1), 'fixed-step'),
    (dict(method='rk4', step_size=0.0), 'step_size'),
    (dict(rtol=0.0), 'rtol'),
    (dict(max_terms=0), 'max_terms'),
    (dict(aggr='mean'), 'aggr'),
    (dict(flow='target_to_source'), 'flow'),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LightGODEConv(**kwargs)


def test_bad_time_type():
    with pytest.raises(TypeError, match="'t'"):
        LightGODEConv(t='3')


def test_bad_forward_arguments():
    # Shapes, dtypes and types: always checked (no synchronisation).
    x, edge_index, edge_weight = weighted_directed_graph()
    conv = LightGODEConv(t=1.0)
    with pytest.raises(ValueError, match='non-negative'):
        conv(x, edge_index, t=-0.5)
    with pytest.raises(ValueError, match='strictly increasing'):
        conv(x, edge_index, t=torch.tensor([2.0, 1.0]))
    with pytest.raises(ValueError, match=r'shape \[5, 5\]'):
        adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(4, 4))
        conv(torch.cat([x, x[:1]]), adj_t)
    with pytest.raises(ValueError, match="'x' must be a 2-D"):
        conv(x[0], edge_index)
    with pytest.raises(ValueError, match="'x' must be a floating"):
        conv(x.long(), edge_index)
    with pytest.raises(ValueError, match="'x' has no rows"):
        conv(x[:0], edge_index[:, :0])
    with pytest.raises(ValueError, match='one entry per edge'):
        conv(x, edge_index, edge_weight[:-1])
    with pytest.raises(ValueError, match='must be None'):
        adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(4, 4))
        conv(x, adj_t, edge_weight)
    with pytest.raises(ValueError, match=r"shape \[2, E\]"):
        conv(x, edge_index.t())
    with pytest.raises(ValueError, match='integer node ids'):
        conv(x, edge_index.double())
    with pytest.raises(TypeError, match="'edge_index'"):
        conv(x, edge_index.tolist())


def test_value_checks_run_in_debug_mode():
    # Values are read only under torch_geometric.debug(); models check them
    # at their entry points.
    x, edge_index, edge_weight = weighted_directed_graph()
    conv = LightGODEConv(t=1.0)
    nan_x = x.clone()
    nan_x[1, 2] = float('nan')
    assert torch.isnan(conv(nan_x, edge_index)).any()  # No check.
    with torch_geometric.debug():
        with pytest.raises(ValueError, match=r'node ids in \[0, 3\].*'
                           r'\[0, 2\] \(num_nodes=3\)'):
            conv(x[:3], edge_index)
        with pytest.raises(ValueError, match="'x' contains NaN"):
            conv(nan_x, edge_index)
        with pytest.raises(ValueError, match='2 negative values'):
            conv(x, edge_index, edge_weight * torch.tensor(
                [1, -1, 1, 1, -1, 1, 1, 1]))
        LightGODEConv(normalize=False)(x, edge_index, -edge_weight)
        with pytest.raises(ValueError, match='1 NaN or infinite'):
            bad = edge_weight.clone()
            bad[0] = float('inf')
            conv(x, to_torch_csr_tensor(edge_index.flip(0), bad,
                                        size=(4, 4)))
        assert torch.allclose(conv(x, edge_index, edge_weight),
                              LightGODEConv(t=1.0)(x, edge_index,
                                                   edge_weight))


def duplicated_graph():
    # 0 -> 1 twice (weights 1 and 0.5) and 1 -> 0 twice.
    edge_index = torch.tensor([[0, 1, 1, 2, 0, 1, 3], [1, 0, 2, 1, 1, 0, 2]])
    edge_weight = torch.tensor([1.0, 2.0, 1.0, 1.0, 0.5, 3.0, 0.25],
                               dtype=torch.float64)
    x = torch.randn(4, 3, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(3))
    return x, edge_index, edge_weight


@pytest.mark.parametrize('form', ['coo', 'coalesced', 'csr', 'csc',
                                  'SparseTensor', 'chunked'])
@pytest.mark.parametrize('normalize', [True, False])
@pytest.mark.parametrize('method', ['euler', 'exact'])
def test_duplicate_edges_add_up_in_every_form(form, normalize, method):
    x, edge_index, edge_weight = duplicated_graph()
    conv = LightGODEConv(t=1.5, method=method, normalize=normalize)
    # The summed graph: each duplicate pair as one edge of summed weight.
    merged = torch.tensor([[0, 1, 1, 2, 3], [1, 0, 2, 1, 2]])
    merged_weight = torch.tensor([1.5, 5.0, 1.0, 1.0, 0.25],
                                 dtype=torch.float64)
    expected = conv(x, merged, merged_weight)
    assert torch.allclose(conv(x, edge_index, edge_weight), expected)
    size = (4, 4)
    coo = torch.sparse_coo_tensor(edge_index.flip(0), edge_weight, size)
    if form == 'chunked':
        out = conv(x, edge_index, edge_weight, chunk_size=2)
    elif form == 'coo':
        out = conv(x, coo)
    elif form == 'coalesced':
        out = conv(x, coo.coalesce())
    elif form == 'csr':
        out = conv(x, to_torch_csr_tensor(edge_index.flip(0), edge_weight,
                                          size=size))
    elif form == 'csc':
        out = conv(x, coo.coalesce().to_sparse_csc())
    else:
        if not WITH_TORCH_SPARSE:
            pytest.skip('torch_sparse is not installed')
        out = conv(x, SparseTensor(row=edge_index[1], col=edge_index[0],
                                   value=edge_weight, sparse_sizes=size))
    assert torch.allclose(out, expected)


@pytest.mark.parametrize('dtype,tol', [(torch.float16, 5e-3),
                                       (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize('method,kwargs', [('euler', {}), ('exact', {}),
                                           ('rk4', dict(step_size=0.25))])
def test_half_precision_matches_float32(dtype, tol, method, kwargs):
    x, edge_index = random_bipartite()
    x = x.float()
    conv = LightGODEConv(t=[0.5, 2.0], method=method, **kwargs)
    out = conv(x.to(dtype), edge_index)
    assert out.dtype == dtype
    assert rel_err(out.float(), conv(x, edge_index)) < tol


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_errors_name_the_dtype(dtype):
    x, edge_index = random_bipartite()
    x = x.to(dtype)
    adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(x.size(0), ) * 2)
    name = str(dtype).replace('.', r'\.')
    with pytest.raises(TypeError, match=f'on CPU do not support {name}'):
        LightGODEConv()(x, adj_t)  # CPU sparse products: float32/64 only.
    with pytest.raises(TypeError, match=f'on CPU do not support {name}'):
        LightGODEConv(chunk_size=4)(x, edge_index)
    with pytest.raises(TypeError, match=f"'dopri5' cannot .* {name}"):
        LightGODEConv(method='dopri5')(x, edge_index)


@pytest.mark.parametrize('method,kwargs', [('euler', {}), ('exact', {}),
                                           ('rk4', dict(step_size=0.25)),
                                           ('dopri5', {})])
def test_float64_matches_float32_in_every_form(method, kwargs):
    x, edge_index = random_bipartite()
    adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(x.size(0), ) * 2)
    conv = LightGODEConv(t=1.0, method=method, **kwargs)
    for graph in (edge_index, adj_t):
        out = conv(x, graph)
        assert out.dtype == torch.float64
        assert rel_err(conv(x.float(), graph).double(), out) < 1e-5


def test_reset_parameters_and_repr():
    conv = LightGODEConv(t=3.0, method='rk4', step_size=0.25)
    conv.reset_parameters()
    assert list(conv.parameters()) == []
    assert repr(conv) == "LightGODEConv(t=3.0, method='rk4', step_size=0.25)"


@pytest.mark.parametrize('method,kwargs', [('euler', {}), ('exact', {}),
                                           ('rk4', dict(step_size=0.5))])
def test_assert_module(method, kwargs):
    r"""PyG's layer contract: output shape, invariance to the order of the
    edges and the same output for every sparse layout PyG tests (CSC, COO
    and, when installed, torch_sparse's SparseTensor)."""
    x, edge_index = random_bipartite()
    conv = LightGODEConv(t=1.5, method=method, **kwargs)
    out = assert_module(conv, x, edge_index, expected_size=tuple(x.shape),
                        atol=1e-10)
    assert torch.allclose(out, conv(x, edge_index))
    # With edge weights (PyG's assert_module permutes them along with the
    # edges; its sparse layouts carry no values).
    weight = torch.rand(edge_index.size(1), dtype=torch.float64) + 0.5
    assert_module(conv, x, edge_index, edge_weight=weight,
                  expected_size=tuple(x.shape), test_sparse_layouts=[],
                  atol=1e-10)


def test_bipartite_pair_is_one_euler_step_of_a_block_of_rows():
    # A block of rows of the normalised adjacency, as fold-in and a graph
    # partition use it: equal to the same rows of the full-graph step.
    gen = torch.Generator().manual_seed(0)
    N, F = 12, 5
    edge_index = torch.randint(0, N, (2, 40), generator=gen)
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    x = torch.randn(N, F, generator=gen)
    full = LightGODEConv(t=2.5)(x, edge_index)
    norm_index, norm_weight = gcn_norm(edge_index, None, N,
                                       add_self_loops=False)
    adj_t = to_torch_csr_tensor(norm_index.flip(0), norm_weight,
                                size=(N, N))
    rows = torch.tensor([1, 4, 5, 9])
    dense = adj_t.to_dense()[rows]
    conv = LightGODEConv(t=2.5, normalize=False)
    out = conv((x, x[rows]), dense.to_sparse_csr())
    assert torch.allclose(out, full[rows], atol=1e-6)
    # The edge_index form gives the same rows.
    mask = torch.isin(norm_index[1], rows)
    local = torch.searchsorted(rows, norm_index[1, mask])
    out2 = conv((x, x[rows]), torch.stack([norm_index[0, mask], local]),
                norm_weight[mask])
    assert torch.allclose(out2, full[rows], atol=1e-6)
    # Several times at once, and an empty block.
    both = conv((x, x[rows]), dense.to_sparse_csr(), t=[1.0, 2.5])
    assert torch.allclose(both[1], full[rows], atol=1e-6)
    empty = conv((x, x[:0]), torch.zeros(0, N).to_sparse_csr())
    assert empty.shape == (0, F)


def test_bipartite_pair_needs_one_euler_step_without_normalisation():
    x = torch.randn(4, 3)
    adj = torch.eye(4).to_sparse_csr()
    for conv in (LightGODEConv(), LightGODEConv(method='rk4',
                                                normalize=False)):
        with pytest.raises(ValueError, match='one-step'):
            conv((x, x), adj)
    with pytest.raises(ValueError, match=r'\[3, 4\]'):
        LightGODEConv(normalize=False)((x, x[:3]), adj)
