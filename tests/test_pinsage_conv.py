import pytest
import torch
import torch_geometric
from torch_geometric.testing import assert_module
from torch_geometric.typing import WITH_TORCH_SPARSE, SparseTensor
from torch_geometric.utils import to_torch_csr_tensor

from pyg_lightgode.nn.conv.pinsage_conv import PinSAGEConv, importance_weights

# A 4-node graph, neighbour -> target with importance weights: node 0 pools
# {1: 1, 2: 3}, node 1 pools {0: 2, 3: 6}, node 2 pools {3: 1, 2: 1} (a self
# loop, as random-walk neighbourhoods keep the seed), node 3 is isolated.
X = torch.tensor([[1., 0.], [0., 1.], [1., 1.], [2., -1.]])
EDGE_INDEX = torch.tensor([[1, 2, 0, 3, 3, 2], [0, 0, 1, 1, 2, 2]])
EDGE_WEIGHT = torch.tensor([1., 3., 2., 6., 1., 1.])
NEIGHBORS = {0: [(1, 1.), (2, 3.)], 1: [(0, 2.), (3, 6.)],
             2: [(3, 1.), (2, 1.)], 3: []}

# Q = I, q = (0, -0.5): the messages are m = ((1, 0), (0, .5), (1, .5),
# (2, 0)); W = [[1, 0, 2, 0], [0, 1, 0, -1]], w = (0, 1), so (without
# normalisation) z' = ReLU(z_x + 2 n_x, z_y - n_y + 1), computed by hand:
EXPECTED = {
    'importance': [[2.5, 0.5], [3.5, 2.0], [4.0, 1.75], [2.0, 0.0]],
    'mean': [[2.0, 0.5], [3.0, 2.0], [4.0, 1.75], [2.0, 0.0]],
    'max': [[3.0, 0.5], [4.0, 2.0], [5.0, 1.5], [2.0, 0.0]],
}


def hand_conv(pooling, normalize=True):
    conv = PinSAGEConv(2, 2, pooling=pooling, normalize=normalize)
    with torch.no_grad():
        conv.lin_neighbor.weight.copy_(torch.eye(2))
        conv.lin_neighbor.bias.copy_(torch.tensor([0., -0.5]))
        conv.lin_update.weight.copy_(
            torch.tensor([[1., 0., 2., 0.], [0., 1., 0., -1.]]))
        conv.lin_update.bias.copy_(torch.tensor([0., 1.]))
    return conv


def reference(conv, x_src, x_dst, neighbors):
    r"""Algorithm 1 node by node with plain torch ops."""
    Q, q = conv.lin_neighbor.weight, conv.lin_neighbor.bias
    W, w = conv.lin_update.weight, conv.lin_update.bias
    out = []
    for u in range(x_dst.size(0)):
        pooled = torch.zeros(Q.size(0))
        if neighbors[u]:
            msgs = torch.stack([torch.relu(Q @ x_src[v] + q)
                                for v, _ in neighbors[u]])
            alpha = torch.tensor([a for _, a in neighbors[u]])
            if conv.pooling == 'mean':
                alpha = torch.ones_like(alpha)
            if conv.pooling == 'max':
                pooled = msgs.max(dim=0).values
            else:
                pooled = (alpha[:, None] * msgs).sum(0) / alpha.sum()
        z = torch.relu(W @ torch.cat([x_dst[u], pooled]) + w)
        out.append(z / z.norm() if conv.normalize else z)
    return torch.stack(out)


@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_hand_values(pooling):
    expected = torch.tensor(EXPECTED[pooling])
    out = hand_conv(pooling, normalize=False)(X, EDGE_INDEX, EDGE_WEIGHT)
    assert torch.allclose(out, expected)
    out = hand_conv(pooling)(X, EDGE_INDEX, EDGE_WEIGHT)
    assert torch.allclose(out, expected / expected.norm(dim=-1, keepdim=True))


def test_importance_weights_scale_invariant_and_default_is_mean():
    conv = hand_conv('importance')
    raw = conv(X, EDGE_INDEX, EDGE_WEIGHT)
    l1 = importance_weights(EDGE_WEIGHT, EDGE_INDEX[1], 4)
    assert torch.allclose(l1, torch.tensor([.25, .75, .25, .75, .5, .5]))
    assert torch.allclose(conv(X, EDGE_INDEX, l1), raw)
    assert torch.allclose(conv(X, EDGE_INDEX),
                          hand_conv('mean')(X, EDGE_INDEX, EDGE_WEIGHT))


@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_random_weights_against_reference(pooling):
    torch.manual_seed(1)
    conv = PinSAGEConv(2, 3, hidden_channels=5, pooling=pooling)
    out = conv(X, EDGE_INDEX, EDGE_WEIGHT)
    assert out.shape == (4, 3)
    assert torch.allclose(out, reference(conv, X, X, NEIGHBORS), atol=1e-6)


def sparse_forms(edge_index, edge_weight, num_src, num_dst):
    forms = {
        'csr': to_torch_csr_tensor(edge_index.flip(0), edge_weight,
                                   size=(num_dst, num_src)),
        'coo': torch.sparse_coo_tensor(edge_index.flip(0), edge_weight,
                                       (num_dst, num_src)),
    }
    if WITH_TORCH_SPARSE:
        forms['SparseTensor'] = SparseTensor.from_edge_index(
            edge_index.flip(0), edge_weight, sparse_sizes=(num_dst, num_src))
    return forms


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_sparse_inputs_equal_edge_index(pooling):
    torch.manual_seed(2)
    conv = PinSAGEConv(2, 3, pooling=pooling)
    x = X.clone().requires_grad_()
    out = conv(x, EDGE_INDEX, EDGE_WEIGHT)
    grad, = torch.autograd.grad(out.square().sum(), x)
    for name, adj_t in sparse_forms(EDGE_INDEX, EDGE_WEIGHT, 4, 4).items():
        out_sparse = conv(x, adj_t)
        grad_sparse, = torch.autograd.grad(out_sparse.square().sum(), x)
        assert torch.allclose(out_sparse, out, atol=1e-6), name
        assert torch.allclose(grad_sparse, grad, atol=1e-5), name


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason='torch_sparse missing')
def test_sparse_tensor_without_values_is_uniform():
    conv = hand_conv('importance')
    adj_t = SparseTensor.from_edge_index(EDGE_INDEX.flip(0),
                                         sparse_sizes=(4, 4))
    assert torch.allclose(conv(X, adj_t), conv(X, EDGE_INDEX))


def test_isolated_and_zero_weight_targets():
    conv = hand_conv('importance', normalize=False)
    # Node 2's only edges get weight 0: it pools nothing, like node 3.
    weight = torch.tensor([1., 3., 2., 6., 0., 0.])
    out = conv(X, EDGE_INDEX, weight)
    assert torch.allclose(out[2], torch.tensor([1., 2.]))  # ReLU(z_x, z_y+1)
    out = conv(X, torch.empty(2, 0, dtype=torch.long))
    assert torch.allclose(out, torch.relu(X + torch.tensor([0., 1.])))


def test_zero_norm_guard():
    conv = hand_conv('importance')
    with torch.no_grad():
        conv.lin_update.bias.fill_(-100.)  # every output ReLUs to zero
    x = X.clone().requires_grad_()
    out = conv(x, EDGE_INDEX, EDGE_WEIGHT)
    assert torch.equal(out, torch.zeros(4, 2))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(conv.lin_update.weight.grad).all()


def test_bipartite_pair_input():
    torch.manual_seed(3)
    x_src, x_dst = torch.randn(5, 3), torch.randn(2, 4)
    edge_index = torch.tensor([[0, 4, 2, 3], [0, 0, 1, 1]])
    weight = torch.tensor([2., 1., 5., 0.5])
    neighbors = {0: [(0, 2.), (4, 1.)], 1: [(2, 5.), (3, .5)]}
    conv = PinSAGEConv((3, 4), 6, hidden_channels=7)
    out = conv((x_src, x_dst), edge_index, weight)
    assert out.shape == (2, 6)
    assert torch.allclose(out, reference(conv, x_src, x_dst, neighbors),
                          atol=1e-6)
    adj_t = to_torch_csr_tensor(edge_index.flip(0), weight, size=(2, 5))
    assert torch.allclose(conv((x_src, x_dst), adj_t), out, atol=1e-6)


def test_gradients_flow():
    torch.manual_seed(4)
    conv = PinSAGEConv(2, 3)
    x = X.clone().requires_grad_()
    conv(x, EDGE_INDEX, EDGE_WEIGHT).sum().backward()
    for name, param in conv.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_dropout_and_reset_parameters():
    torch.manual_seed(5)
    conv = PinSAGEConv(2, 3, dropout=0.5)
    conv.eval()
    out_eval = conv(X, EDGE_INDEX, EDGE_WEIGHT)
    plain = PinSAGEConv(2, 3)
    plain.load_state_dict(conv.state_dict())
    assert torch.allclose(out_eval, plain(X, EDGE_INDEX, EDGE_WEIGHT))
    conv.train()
    assert not torch.allclose(conv(X, EDGE_INDEX, EDGE_WEIGHT), out_eval)
    before = conv.lin_update.weight.clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.lin_update.weight)
    assert repr(plain) == ("PinSAGEConv((2, 2), 3, hidden_channels=3, "
                           "pooling='importance', normalize=True)")


def test_output_is_unit_norm():
    torch.manual_seed(6)
    out = PinSAGEConv(2, 8)(X, EDGE_INDEX, EDGE_WEIGHT)
    norm = out.norm(dim=-1)
    assert torch.allclose(norm[norm > 0], torch.ones_like(norm[norm > 0]))


def test_errors():
    r"""Shape and dtype errors always; data errors (weights, ids) only under
    :func:`torch_geometric.debug`, where the layer may read values."""
    with pytest.raises(ValueError, match="'pooling'"):
        PinSAGEConv(2, 2, pooling='sum')
    with pytest.raises(ValueError, match="sets 'aggr' from 'pooling'"):
        PinSAGEConv(2, 2, aggr='mean')
    with pytest.raises(ValueError, match='in_channels'):
        PinSAGEConv(-2, 2)  # -1 is lazy initialisation
    conv = PinSAGEConv(2, 2)
    with pytest.raises(ValueError, match='width 2'):
        conv(torch.randn(4, 3), EDGE_INDEX)
    with pytest.raises(ValueError, match=r'shape \[6\]'):
        conv(X, EDGE_INDEX, EDGE_WEIGHT[:5])
    with pytest.raises(ValueError, match=r'\[2, E\]'):
        conv(X, torch.tensor([0, 1]))
    adj_t = to_torch_csr_tensor(EDGE_INDEX.flip(0), EDGE_WEIGHT, size=(4, 4))
    with pytest.raises(ValueError, match='values are the weights'):
        conv(X, adj_t, EDGE_WEIGHT)
    with pytest.raises(ValueError, match='num_sources'):
        conv((torch.randn(5, 2), X), adj_t)
    with pytest.raises(TypeError, match='pair'):
        conv([X, X, X], EDGE_INDEX)

    neg_adj_t = to_torch_csr_tensor(EDGE_INDEX.flip(0), -EDGE_WEIGHT,
                                    size=(4, 4))
    assert not torch_geometric.is_debug_enabled()
    conv(X, EDGE_INDEX, -EDGE_WEIGHT)  # No value is read: no error.
    conv(X, neg_adj_t)
    with torch_geometric.debug():
        with pytest.raises(ValueError, match='negative'):
            conv(X, EDGE_INDEX, -EDGE_WEIGHT)
        with pytest.raises(ValueError, match='NaN'):
            conv(X, EDGE_INDEX, torch.full((6, ), float('nan')))
        with pytest.raises(ValueError, match='source ids'):
            conv(X, torch.tensor([[7], [0]]))
        with pytest.raises(ValueError, match='target ids'):
            conv(X, torch.tensor([[0], [-1]]))
        with pytest.raises(ValueError, match="'adj_t.values'.*negative"):
            conv(X, neg_adj_t)
        coo = torch.sparse_coo_tensor(EDGE_INDEX.flip(0), -EDGE_WEIGHT,
                                      (4, 4))
        with pytest.raises(ValueError, match="'adj_t.values'.*negative"):
            conv(X, coo)


def test_forward_reads_no_values_outside_debug(monkeypatch):
    r"""Outside debug mode no data check runs (each one would be a host
    synchronisation)."""
    import pyg_lightgode.nn.conv.pinsage_conv as module

    def fail(*args, **kwargs):
        raise AssertionError('a data check ran outside debug mode')

    for name in ('check_index_range', 'check_finite'):
        monkeypatch.setattr(module, name, fail)
    conv = PinSAGEConv(2, 3)
    adj_t = to_torch_csr_tensor(EDGE_INDEX.flip(0), EDGE_WEIGHT, size=(4, 4))
    for args in ((EDGE_INDEX, EDGE_WEIGHT), (EDGE_INDEX, ), (adj_t, )):
        conv(X, *args)
    with torch_geometric.debug(), pytest.raises(AssertionError):
        conv(X, EDGE_INDEX, EDGE_WEIGHT)


@pytest.mark.parametrize('pooling', ['importance', 'max'])
def test_compile_fullgraph_equals_eager(pooling):
    r"""No host synchronisation, no graph break: the layer compiles into
    one graph on an edge_index input."""
    torch._dynamo.reset()
    torch.manual_seed(7)
    conv = PinSAGEConv(2, 3, hidden_channels=4, pooling=pooling).eval()
    expected = conv(X, EDGE_INDEX, EDGE_WEIGHT)
    compiled = torch.compile(conv, fullgraph=True, backend='aot_eager')
    out = compiled(X, EDGE_INDEX, EDGE_WEIGHT)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(compiled(X, EDGE_INDEX), conv(X, EDGE_INDEX),
                          atol=1e-6)


# Per dtype: the tolerance of a result against float32 (about a few units
# in the last place of the dtype).
DTYPE_ATOL = {torch.float64: 1e-6, torch.float16: 5e-3,
              torch.bfloat16: 4e-2}


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('dtype', list(DTYPE_ATOL))
@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_precision_matches_float32(dtype, pooling):
    r"""float64, float16 and bfloat16 give the float32 result within the
    dtype's tolerance, through edge_index and sparse inputs, zero output
    rows included (a 1e-12 guard rounds to 0 in float16: no NaN)."""
    torch.manual_seed(8)
    x = torch.randn(6, 3)
    x[5] = 0.  # Isolated target 5: ReLU(bias) = 0, a zero-norm row.
    edge_index = torch.tensor([[1, 2, 0, 3, 3, 2, 5], [0, 0, 1, 1, 2, 2, 4]])
    weight = torch.tensor([1., 3., 2., 600., 1., 1., 2.])
    conv = PinSAGEConv(3, 4, pooling=pooling).eval()
    with torch.no_grad():
        conv.lin_update.bias.fill_(-0.01)
    expected = conv(x, edge_index, weight)
    assert expected[5].norm() == 0 and (expected.norm(dim=-1) > 0).sum() > 3
    low = PinSAGEConv(3, 4, pooling=pooling).eval()
    low.load_state_dict(conv.state_dict())
    low = low.to(dtype)
    forms = {'edge_index': (edge_index, weight)}
    forms.update({name: (adj_t, ) for name, adj_t in sparse_forms(
        edge_index, weight, 6, 6).items()})
    for name, args in forms.items():
        out = low(x.to(dtype), *args)
        assert out.dtype == dtype, name
        assert torch.isfinite(out).all(), name
        assert torch.allclose(out.float(), expected,
                              atol=DTYPE_ATOL[dtype]), (name, dtype)


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_duplicate_edges_same_through_every_input_form(pooling):
    r"""Repeated edges are never coalesced: each copy is one neighbour entry
    with its own weight, through edge_index, an uncoalesced COO adjacency,
    a CSR adjacency and a SparseTensor."""
    from torch_geometric.index import index2ptr

    torch.manual_seed(9)
    # Target 0 hears 1 three times and 2 once; target 1 hears 0 twice.
    edge_index = torch.tensor([[1, 2, 1, 1, 0, 3, 0], [0, 0, 0, 0, 1, 1, 1]])
    weight = torch.tensor([1., 2., 3., 1., 4., 1., 0.5])
    conv = PinSAGEConv(2, 3, pooling=pooling)
    expected = conv(X, edge_index, weight)
    neighbors = {u: [(int(s), float(w)) for (s, t), w in zip(
        edge_index.t().tolist(), weight) if t == u] for u in range(4)}
    # Targets 0 and 1 (2 and 3 hear nobody) against the node-by-node loop.
    assert torch.allclose(expected[:2], reference(conv, X, X, neighbors)[:2],
                          atol=1e-6)
    perm = torch.argsort(edge_index[1], stable=True)
    csr = torch.sparse_csr_tensor(index2ptr(edge_index[1, perm], 4),
                                  edge_index[0, perm], weight[perm], (4, 4))
    forms = {
        'coo': torch.sparse_coo_tensor(edge_index.flip(0), weight, (4, 4)),
        'csr': csr,
    }
    if WITH_TORCH_SPARSE:
        forms['SparseTensor'] = SparseTensor(
            row=edge_index[1], col=edge_index[0], value=weight,
            sparse_sizes=(4, 4))
    for name, adj_t in forms.items():
        assert torch.allclose(conv(X, adj_t), expected, atol=1e-6), name
    if pooling != 'mean':  # Importance and max ignore how copies are split.
        merged = torch.sparse_coo_tensor(edge_index.flip(0), weight,
                                         (4, 4)).coalesce()
        assert torch.allclose(conv(X, merged), expected, atol=1e-6)


@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_assert_module(pooling):
    r"""PyG's layer contract on a homogeneous graph and on a bipartite
    (source, target) pair: output shape, invariance to the order of the
    edges (with and without importance weights) and the same output for
    every sparse layout PyG tests (CSC, COO and, when installed,
    torch_sparse's SparseTensor; these carry no weights)."""
    torch.manual_seed(5)
    conv = PinSAGEConv(2, 3, hidden_channels=4, pooling=pooling)
    out = assert_module(conv, X, EDGE_INDEX, expected_size=(4, 3),
                        atol=1e-6)
    assert torch.allclose(out, conv(X, EDGE_INDEX), atol=1e-6)
    assert_module(conv, X, EDGE_INDEX, edge_weight=EDGE_WEIGHT,
                  expected_size=(4, 3), test_sparse_layouts=[], atol=1e-6)

    x_src, x_dst = torch.randn(5, 3), torch.randn(2, 4)
    edge_index = torch.tensor([[0, 4, 2, 3, 1], [0, 0, 1, 1, 1]])
    conv = PinSAGEConv((3, 4), 6, pooling=pooling)
    assert_module(conv, (x_src, x_dst), edge_index, expected_size=(2, 6),
                  atol=1e-6)
