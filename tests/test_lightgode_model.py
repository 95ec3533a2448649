import math

import pytest
import torch

from pyg_lightgode.data import bipartite_to_homogeneous
from pyg_lightgode.metrics import evaluate_ranking
from pyg_lightgode.nn.models import LightGODE, embedding_discrepancy
from pyg_lightgode.nn.models.lightgode import uniformity_loss
from pyg_lightgode.training.recipes import sweep_propagation, train_lightgode
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_dense_adj

from helpers import clustered_split


def dense_norm_adj(index, U, I):
    edge_index = bipartite_to_homogeneous(index, U, I)
    ei, w = gcn_norm(edge_index, None, U + I, add_self_loops=False)
    return to_dense_adj(ei, edge_attr=w, max_num_nodes=U + I)[0]


def test_loss_matches_direct_computation():
    torch.manual_seed(0)
    model = LightGODE(5, 7, embedding_dim=4, gamma=2.5)
    users, items = torch.tensor([0, 1, 4, 2]), torch.tensor([6, 0, 3, 3])
    u = model.user_embedding.weight[users]
    i = model.item_embedding.weight[items]
    u, i = u / u.norm(dim=1, keepdim=True), i / i.norm(dim=1, keepdim=True)
    align = ((u - i)**2).sum(1).mean()

    def unif(x):
        vals = [math.exp(-2 * float(((x[a] - x[b])**2).sum()))
                for a in range(len(x)) for b in range(a + 1, len(x))]
        return math.log(sum(vals) / len(vals))

    expected = float(align) + 2.5 * (unif(u) + unif(i)) / 2
    assert float(model.loss(users, items)) == pytest.approx(expected, rel=1e-5)


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
    with torch.no_grad():
        users, items = model.get_embedding(split.train_index)
    expected = 4.0 * e0 + 3.0 * A @ e0
    assert torch.allclose(torch.cat([users, items]), expected, atol=1e-5)


def test_cache_is_invalidated_by_steps_and_state_dicts():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8)
    with torch.no_grad():
        first = model.get_embedding(split.train_index)[0].clone()
        assert model.get_embedding(split.train_index)[0] is \
            model.get_embedding(split.train_index)[0]  # Cached.
    state = {k: v.clone() for k, v in model.state_dict().items()}

    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model.loss(*split.train_index[:, :8]).backward()
    opt.step()
    with torch.no_grad():
        after_step = model.get_embedding(split.train_index)[0].clone()
    assert not torch.allclose(after_step, first)

    model.load_state_dict(state)  # Back to the first weights ...
    with torch.no_grad():
        reloaded = model.get_embedding(split.train_index)[0]
    assert torch.allclose(reloaded, first)  # ... and no stale result.

    # Writes that do not bump version counters (fused optimizers, .data).
    model.item_embedding.weight.data.mul_(2)
    with torch.no_grad():
        doubled = model.get_embedding(split.train_index)[1]
    assert torch.allclose(doubled, fresh_items(model.state_dict(), split))

    for fused in (False, True):
        opt = torch.optim.Adam(model.parameters(), lr=0.1, fused=fused)
        with torch.no_grad():
            before = model.get_embedding(split.train_index)[0].clone()
        model.loss(*split.train_index[:, :8]).backward()
        opt.step()
        with torch.no_grad():
            after = model.get_embedding(split.train_index)[0]
        assert not torch.allclose(before, after)

    other = LightGODE(split.num_users, split.num_items, 8)
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.allclose(model.get_embedding(split.train_index)[0],
                              other.get_embedding(split.train_index)[0])


def fresh_items(state, split):
    r"""Item embeddings propagated from :obj:`state` by a fresh model."""
    fresh = LightGODE(split.num_users, split.num_items, 8)
    fresh.load_state_dict(state)
    with torch.no_grad():
        return fresh.get_embedding(split.train_index)[1]


def test_multi_time_embedding_and_discrepancy():
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 8, method='exact')
    times = torch.tensor([0.0, 0.5, 2.0])
    with torch.no_grad():
        users, items = model.get_embedding(split.train_index, t=times)
        assert users.shape == (3, split.num_users, 8)
        assert items.shape == (3, split.num_items, 8)
        single = model.get_embedding(split.train_index, t=2.0)[1]
        assert torch.allclose(items[2], single, atol=1e-5)
        disc = model.embedding_discrepancy(split.train_index, t=times)
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
        users, items = model.get_layer_embedding(split.train_index, 2)
    expected = (e0 + A @ e0 + A @ A @ e0) / 3
    assert torch.allclose(torch.cat([users[2], items[2]]), expected,
                          atol=1e-5)
    assert torch.allclose(torch.cat([users[0], items[0]]), e0)


def test_tiny_training_run_beats_random(tmp_path):
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 16, t=1.0, gamma=1.0)
    result = train_lightgode(model, split, epochs=30, batch_size=64,
                             lr=0.05, patience=None, progress=False,
                             checkpoint=str(tmp_path / 'ck.pt'))
    assert result.epochs_run == 30
    with torch.no_grad():
        users, items = model.get_embedding(split.train_index)
    metrics = evaluate_ranking(users, items, split.test_index,
                               exclude=split.train_index, ks=(5, ),
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
    with pytest.raises(ValueError, match='user'):
        model.get_embedding(torch.tensor([[3], [0]]))
