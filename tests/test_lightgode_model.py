import inspect
import math

import pytest
import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.nn.models import LightGCN
from torch_geometric.typing import WITH_TORCH_SPARSE, SparseTensor
from torch_geometric.utils import to_dense_adj

from helpers import clustered_split
from pyg_lightgode.apps.training.recipes import (
    sweep_propagation,
    train_lightgode,
)
from pyg_lightgode.data.bipartite import bipartite_to_homogeneous
from pyg_lightgode.metrics import evaluate_ranking
from pyg_lightgode.nn.models import LightGODE
from pyg_lightgode.nn.models.lightgode import (
    embedding_discrepancy,
    uniformity_loss,
)


def dense_norm_adj(index, U, I):
    edge_index = bipartite_to_homogeneous(index, U, I)
    ei, w = gcn_norm(edge_index, None, U + I, add_self_loops=False)
    return to_dense_adj(ei, edge_attr=w, max_num_nodes=U + I)[0]


def test_loss_matches_direct_computation():
    torch.manual_seed(0)
    model = LightGODE(5, 7, embedding_dim=4, gamma=2.5)
    users, items = torch.tensor([0, 1, 4, 2]), torch.tensor([6, 0, 3, 3])
    u = model.user_embedding.weight[users].detach()  # The reference.
    i = model.item_embedding.weight[items].detach()
    u, i = u / u.norm(dim=1, keepdim=True), i / i.norm(dim=1, keepdim=True)
    align = ((u - i)**2).sum(1).mean()

    def unif(x):
        vals = [math.exp(-2 * float(((x[a] - x[b])**2).sum()))
                for a in range(len(x)) for b in range(a + 1, len(x))]
        return math.log(sum(vals) / len(vals))

    expected = float(align) + 2.5 * (unif(u) + unif(i)) / 2
    assert model.loss(users, items).item() == pytest.approx(expected,
                                                           rel=1e-5)


def test_uniformity_gradient_matches_pdist_form():
    # The loss takes the gradient through one factor of x x^T and doubles
    # it; that must equal autograd through torch.pdist, repeated rows too.
    torch.manual_seed(0)
    x = torch.randn(9, 5, dtype=torch.float64)
    x[3] = x[0]
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    uniformity_loss(a).backward()
    y = torch.nn.functional.normalize(b, dim=-1)
    torch.pdist(y).pow(2).mul(-2).exp().mean().log().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    assert a.grad.abs().max() > 1e-3


def test_get_embedding_is_the_one_step_euler_by_default():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8, t=3.0)
    A = dense_norm_adj(split.train_index, split.num_users, split.num_items)
    e0 = model.embedding().detach()
    expected = 4.0 * e0 + 3.0 * A @ e0
    graphs = [split.edge_index(), split.adj_t()]
    if WITH_TORCH_SPARSE:
        graphs.append(SparseTensor.from_edge_index(
            split.edge_index().flip(0), sparse_sizes=(split.num_nodes, ) * 2))
    with torch.no_grad():
        for graph in graphs:
            out = model.get_embedding(graph)
            assert out.shape == (split.num_nodes, 8)
            assert torch.allclose(out, expected, atol=1e-5)
        users, items = model.user_item_embeddings(split.train_index)
    assert torch.allclose(torch.cat([users, items]), expected, atol=1e-5)


def test_mirrors_lightgcn_signatures():
    for name in ('get_embedding', 'forward', 'predict_link', 'recommend'):
        ours = list(inspect.signature(getattr(LightGODE, name)).parameters)
        theirs = list(inspect.signature(getattr(LightGCN,
                                                name)).parameters)
        assert ours[:len(theirs)] == theirs, name
    assert LightGODE.loss is LightGODE.recommendation_loss


def test_forward_and_predict_link_score_pairs():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8)
    edge_index, adj_t = split.edge_index(), split.adj_t()
    with torch.no_grad():
        out = model.get_embedding(edge_index)
        pairs = torch.tensor([[0, 5, 47], [48, 60, 87]])
        expected = (out[pairs[0]] * out[pairs[1]]).sum(-1)
        assert torch.allclose(model(edge_index, pairs), expected)
        assert torch.allclose(model(adj_t, pairs), expected, atol=1e-6)
        # Without pairs: the edges of the graph, as LightGCN.
        all_edges = (out[edge_index[0]] * out[edge_index[1]]).sum(-1)
        assert torch.allclose(model(edge_index), all_edges)
        prob = model.predict_link(edge_index, pairs, prob=True)
        assert torch.allclose(prob, expected.sigmoid())
        assert torch.equal(model.predict_link(edge_index, pairs),
                           prob.round())
    with pytest.raises(ValueError, match="'edge_label_index' holds node"):
        model(edge_index, torch.tensor([[0], [88]]))


def brute_force_top(out, src, dst, k, exclude):
    scores = out[src] @ out[dst].t()
    for s, d in exclude.t().tolist():
        scores[(src == s).nonzero().flatten()[:, None],
               (dst == d).nonzero().flatten()] = -float('inf')
    return dst[scores.topk(k).indices]


def test_recommend_items_for_users_excluding_training():
    split = clustered_split()
    U, I = split.num_users, split.num_items
    model = LightGODE(U, I, 8)
    edge_index = split.edge_index()
    train = edge_index[:, :split.train_index.size(1)]  # user -> item
    users = torch.tensor([0, 13, 13, 40])  # A repeated user too.
    items = torch.arange(U, U + I)
    with torch.no_grad():
        out = model.get_embedding(edge_index)
        top = model.recommend(edge_index, src_index=users, dst_index=items,
                              k=5, exclude_links=train)
    assert top.shape == (4, 5)
    assert torch.equal(top, brute_force_top(out, users, items, 5, train))
    seen = {tuple(p) for p in train.t().tolist()}
    assert not any((u, i) in seen for u, row in zip(users.tolist(),
                                                    top.tolist())
                   for i in row)
    # LightGCN's default: every node is a source and a candidate.
    with torch.no_grad():
        top = model.recommend(edge_index, k=2)
    assert torch.equal(top, (out @ out.t()).topk(2).indices)
    # Fewer candidates than k: padded with -1.
    with torch.no_grad():
        seen_by_0 = train[1, train[0] == 0]
        candidates = torch.cat([seen_by_0, torch.tensor([U + I - 1])])
        top = model.recommend(edge_index, src_index=users[:1],
                              dst_index=candidates, k=3,
                              exclude_links=train)
    assert top.tolist() == [[U + I - 1, -1, -1]]  # 5 seen, 1 left.


def test_no_hidden_state_propagation_follows_the_weights():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8)
    assert [name for name, _ in model.named_buffers()] == []
    adj_t = split.adj_t()

    def fresh(state):
        other = LightGODE(split.num_users, split.num_items, 8)
        other.load_state_dict(state)
        with torch.no_grad():
            return other.get_embedding(adj_t)

    for change in ('step', 'fused step', 'data write', 'load'):
        with torch.no_grad():
            before = model.get_embedding(adj_t)
        if change == 'load':
            model.load_state_dict(LightGODE(split.num_users, split.num_items,
                                            8).state_dict())
        elif change == 'data write':
            model.item_embedding.weight.data.mul_(2)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=0.1,
                                   fused=change == 'fused step')
            model.loss(*split.train_index[:, :8]).backward()
            opt.step()
        with torch.no_grad():
            after = model.get_embedding(adj_t)
        assert not torch.allclose(before, after), change
        assert torch.allclose(after, fresh(model.state_dict())), change


def test_gradients_flow_through_propagation():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8)
    model(split.adj_t(), torch.tensor([[0, 1], [50, 60]])).sum().backward()
    assert model.user_embedding.weight.grad.abs().sum() > 0


def test_multi_time_embedding_and_discrepancy():
    split = clustered_split()
    U = split.num_users
    model = LightGODE(U, split.num_items, 8, method='exact')
    times = torch.tensor([0.0, 0.5, 2.0])
    adj_t = split.adj_t()
    with torch.no_grad():
        out = model.get_embedding(adj_t, t=times)
        assert out.shape == (3, split.num_nodes, 8)
        users, items = model.user_item_embeddings(split.train_index,
                                                  t=times)
        assert users.shape == (3, U, 8)
        assert items.shape == (3, split.num_items, 8)
        assert torch.allclose(torch.cat([users, items], 1), out)
        single = model.get_embedding(adj_t, t=2.0)
        assert torch.allclose(out[2], single, atol=1e-5)
        disc = model.embedding_discrepancy(adj_t, t=times)
    assert disc[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 < disc[1] < disc[2] <= 2

    e0 = model.embedding().detach()
    flipped = embedding_discrepancy(e0, -e0)
    assert float(flipped) == pytest.approx(2.0, abs=1e-6)


def test_discrete_layers_match_lightgcn_readout():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8)
    A = dense_norm_adj(split.train_index, split.num_users, split.num_items)
    e0 = model.embedding().detach()
    with torch.no_grad():
        out = model.get_layer_embedding(split.edge_index(), 2)
        assert torch.allclose(model.get_layer_embedding(split.adj_t(), 2),
                              out, atol=1e-6)
        disc = model.embedding_discrepancy(split.adj_t(), num_layers=2)
    assert out.shape == (3, split.num_nodes, 8)
    assert torch.allclose(out[2], (e0 + A @ e0 + A @ A @ e0) / 3, atol=1e-5)
    assert torch.allclose(out[0], e0)
    assert disc.shape == (3, ) and float(disc[0]) < 1e-6


@pytest.mark.parametrize('dtype', [torch.float64, torch.float16,
                                   torch.bfloat16])
def test_precision(dtype):
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8)
    with torch.no_grad():
        expected = model.get_embedding(split.edge_index())
        model.to(dtype)
        out = model.get_embedding(split.edge_index())
    assert out.dtype == dtype
    tol = {torch.float64: 1e-6, torch.float16: 5e-3, torch.bfloat16: 3e-2}
    assert float((out.float() - expected).norm() / expected.norm()) < \
        tol[dtype]
    if dtype != torch.float64:  # CPU sparse products: float32/64 only.
        with pytest.raises(TypeError, match=str(dtype).replace('.', r'\.')):
            model.get_embedding(split.adj_t())
    else:
        assert torch.allclose(model.get_embedding(split.adj_t()), out)


def test_tiny_training_run_beats_random(tmp_path):
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 16, t=1.0, gamma=1.0)
    result = train_lightgode(model, split, epochs=30, batch_size=64,
                             lr=0.05, patience=None, progress=False,
                             checkpoint=str(tmp_path / 'ck.pt'))
    assert result.epochs_run == 30
    with torch.no_grad():
        users, items = model.user_item_embeddings(split.train_index)
    metrics = evaluate_ranking(users, items, split.test_index,
                               exclude_links=split.train_index, ks=(5, ),
                               metrics=('recall', ))
    # Random ranking: 2 test items among 35 candidates -> recall@5 ~ 0.14.
    assert metrics['recall@5'] > 0.6

    rows = sweep_propagation(model, split, times=[0.0, 1.0], num_layers=2)
    assert [r.get('t', r.get('layers')) for r in rows] == [0.0, 1.0, 0, 1, 2]
    assert all(0 <= r['ndcg@20'] <= 1 for r in rows)


def test_sparse_embeddings_train_with_sparse_adam():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 16, t=1.0, gamma=1.0,
                      sparse=True)
    before = model.item_embedding.weight.detach().clone()
    train_lightgode(model, split, epochs=2, batch_size=64, lr=0.05,
                    patience=None, progress=False)
    assert not torch.allclose(before, model.item_embedding.weight)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_users=0, num_items=3), 'num_users'),
    (dict(num_users=3, num_items=3, gamma=-1), 'gamma'),
    (dict(num_users=3, num_items=3, method='nope'), 'method'),
    (dict(num_users=3, num_items=3, t=-1.0), 't'),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LightGODE(**kwargs)


def test_bad_batches_and_graphs():
    model = LightGODE(3, 4, 8)
    with pytest.raises(ValueError, match='item'):
        model.loss(torch.tensor([0, 1]), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match='equal length'):
        model.loss(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="'interactions' holds user"):
        model.user_item_embeddings(torch.tensor([[3], [0]]))
    # The model's entry points read the values (the layer does not).
    with pytest.raises(ValueError, match=r"'edge_index' holds node ids in "
                       r"\[0, 7\].*num_nodes=7"):
        model.get_embedding(torch.tensor([[0, 7], [7, 0]]))
    edge_index = torch.tensor([[0, 3], [3, 0]])
    with pytest.raises(ValueError, match='1 NaN or infinite'):
        model.get_embedding(edge_index, torch.tensor([1.0, float('nan')]))
    with pytest.raises(ValueError, match='1 negative'):
        model.get_embedding(edge_index, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"shape \[7, 7\]"):
        model.get_embedding(torch.eye(6).to_sparse_csr())
    with pytest.raises(ValueError, match="'src_index' holds node"):
        model.recommend(edge_index, src_index=torch.tensor([9]))
    with pytest.raises(ValueError, match="'exclude_links' must have shape"):
        model.recommend(edge_index, exclude_links=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="'num_layers'"):
        model.get_layer_embedding(edge_index, -1)
