r"""User-item PinSage: neighbourhoods of both node types, user hard
negatives, the lazy convolution inside ``to_hetero``, empty minibatches and
training on a clustered graph with a known answer."""
import pytest
import torch
from test_pinsage_training import ITEMS_PER, USERS_PER
from test_pinsage_training import clustered_split as pinsage_clustered_split
from torch_geometric.data import HeteroData
from torch_geometric.nn import to_hetero

from pyg_lightgode.apps.training.pinsage import (
    PinSageUserItemTraining,
    pair_loss,
    train_pinsage_user_item,
    user_item_embeddings,
    user_item_features,
    user_item_pinsage,
)
from pyg_lightgode.metrics import evaluate_ranking
from pyg_lightgode.nn.conv import PinSAGEConv
from pyg_lightgode.nn.models.pinsage import PinSage
from pyg_lightgode.sampler import HardNegativeSampler, ImportanceNeighborhood
from pyg_lightgode.sampler.pinsage_sampler import hop_subgraph


def clustered_split(seed=0, features=False):
    r"""Users of cluster c engage only items of cluster c (7 of its 10),
    with user and item features if :obj:`features`."""
    split = pinsage_clustered_split(seed, with_features=features)
    if features:
        split.user_x = torch.randn(
            split.num_users, 2, generator=torch.Generator().manual_seed(seed))
    return split


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# Neighbourhoods and negatives ###############################################

def test_same_type_neighborhoods_of_users_and_items():
    split = clustered_split()
    U, I = split.num_users, split.num_items
    sampler = ImportanceNeighborhood.user_item(split.train_index, U, I,
                                               top_k=4, exclude_seed=True)
    seeds = torch.tensor([0, 13, U + 0, U + 25])
    (src, dst), weight = sampler(seeds, gen())
    assert weight.numel() == src.numel() > 0 and bool((weight > 0).all())
    is_user = dst < U
    assert torch.equal(src[is_user] < U, torch.ones_like(src[is_user] < U))
    assert bool((src[~is_user] >= U).all())
    assert bool((src != dst).all())  # no self-visits
    # Walks never leave a cluster.
    cluster = torch.where(src < U, src // USERS_PER, (src - U) // ITEMS_PER)
    cluster_dst = torch.where(dst < U, dst // USERS_PER,
                              (dst - U) // ITEMS_PER)
    assert torch.equal(cluster, cluster_dst)
    assert all(int((dst == s).sum()) <= 4 for s in seeds)


def test_mixed_neighborhoods_hold_the_users_items():
    split = clustered_split()
    U, I = split.num_users, split.num_items
    sampler = ImportanceNeighborhood.user_item(
        split.train_index, U, I, mixed=True, num_walks=50, num_traversals=2,
        restart_prob=0.0, top_k=100, exclude_seed=True)
    (src, dst), _ = sampler(torch.tensor([5]), gen())
    own = set((split.train_index[1, split.train_index[0] == 5] + U).tolist())
    # Two single hops: items at hop 1 (exactly the user's own items) and
    # users at hop 2.
    assert own == set(src[src >= U].tolist())
    assert bool((src[src < U] // USERS_PER == 0).all())


def test_user_hard_negatives_avoid_the_users_items():
    split = clustered_split()
    U, I = split.num_users, split.num_items
    sampler = HardNegativeSampler(split.train_index, U, I, rank_range=(0, 3),
                                  query='user')
    users = torch.arange(U)
    negs = sampler(users, 6, gen())
    assert negs.shape == (U, 6)
    own = torch.zeros(U, I, dtype=torch.bool)
    own[split.train_index[0], split.train_index[1]] = True
    assert not bool(own.gather(1, negs).any())
    # The top of the band: unseen items of the user's own cluster.
    assert bool((negs // ITEMS_PER == (users // USERS_PER).view(-1, 1)
                 ).all())
    precomputed = HardNegativeSampler(split.train_index, U, I,
                                      rank_range=(0, 3), query='user')
    assert torch.equal(precomputed.precompute()(users, 6, gen()), negs)
    with pytest.raises(ValueError, match='query_users'):
        sampler(torch.tensor([U]), 2)
    with pytest.raises(ValueError, match='query'):
        HardNegativeSampler(split.train_index, U, I, query='board')


# Convolution and model ######################################################

def test_lazy_pinsage_conv_and_to_hetero():
    conv = PinSAGEConv(-1, 8)
    x, edge_index = torch.randn(5, 3), torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert conv(x, edge_index).shape == (5, 8)
    assert conv.lin_update.weight.shape == (8, 3 + 8)
    bipartite = PinSAGEConv((-1, -1), 6, hidden_channels=4)
    out = bipartite((torch.randn(5, 3), torch.randn(2, 7)),
                    torch.tensor([[0, 4], [0, 1]]))
    assert out.shape == (2, 6)
    assert bipartite.lin_update.weight.shape == (6, 7 + 4)

    data = HeteroData()
    data['user'].x = torch.randn(4, 3)
    data['item'].x = torch.randn(6, 5)
    data['user', 'rates', 'item'].edge_index = torch.tensor([[0, 1, 2, 3],
                                                             [0, 2, 4, 5]])
    data['item', 'rated_by', 'user'].edge_index = torch.tensor(
        [[0, 2, 4, 5], [0, 1, 2, 3]])

    class GNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = PinSAGEConv((-1, -1), 16)
            self.conv2 = PinSAGEConv((-1, -1), 8)

        def forward(self, x, edge_index):
            return self.conv2(self.conv1(x, edge_index), edge_index)

    model = to_hetero(GNN(), data.metadata(), aggr='sum')
    out = model(data.x_dict, data.edge_index_dict)
    assert out['user'].shape == (4, 8) and out['item'].shape == (6, 8)
    # Unit rows (l2-normalised) where the ReLU left something.
    norm = out['item'].norm(dim=-1)
    assert bool((((norm - 1).abs() < 1e-5) | (norm == 0)).all())
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_forward_with_zero_seeds_is_empty(pooling):
    model = PinSage(num_nodes=10, in_channels=3, hidden_channels=8,
                    out_channels=4, pooling=pooling)
    empty = torch.empty(2, 0, dtype=torch.long)
    ids = torch.empty(0, dtype=torch.long)
    for weight in (None, torch.empty(0)):
        out = model(torch.empty(0, 3), empty, weight, n_id=ids,
                    num_sampled_nodes_per_hop=[0, 0, 0],
                    num_sampled_edges_per_hop=[0, 0])
        assert out.shape == (0, 4)
        assert model(torch.empty(0, 3), empty, weight,
                     n_id=ids).shape == (0, 4)
    # Zero seeds whose later hops are not empty: still no seed embedding.
    out = model(torch.randn(3, 3), torch.tensor([[1, 2], [0, 1]]), n_id=ids
                .new_tensor([0, 1, 2]), num_sampled_nodes_per_hop=[0, 2, 1],
                num_sampled_edges_per_hop=[0, 2])
    assert out.shape == (0, 4)


def test_layerwise_inference_equals_per_target_on_users_and_items():
    split = clustered_split(features=True)
    model = user_item_pinsage(split, hidden_channels=8, out_channels=4,
                              num_layers=2).eval()
    x = user_item_features(split)
    assert x.shape == (split.num_nodes, 5)
    assert bool((x[:split.num_users, 2:] == 0).all())
    assert bool((x[split.num_users:, :2] == 0).all())
    sampler = ImportanceNeighborhood.user_item(
        split.train_index, split.num_users, split.num_items, mixed=True,
        num_traversals=4, top_k=3, exclude_seed=True)
    edge_index, weight = sampler.all_neighborhoods(gen())
    users, items = user_item_embeddings(model, split, (edge_index, weight))
    assert users.shape == (split.num_users, 4)
    assert items.shape == (split.num_items, 4)
    seeds = torch.tensor([0, 47, split.num_users + 3, split.num_users + 39])
    out = hop_subgraph(edge_index, weight, seeds, 2, split.num_nodes)
    per_target = model(x[out.node], torch.stack([out.row, out.col]),
                       out.metadata[-1], n_id=out.node,
                       num_sampled_nodes_per_hop=out.num_sampled_nodes,
                       num_sampled_edges_per_hop=out.num_sampled_edges)
    expected = torch.cat([users, items])[seeds]
    assert torch.allclose(per_target, expected, atol=1e-6)


# Training ###################################################################

SMALL = dict(batch_size=32, num_negatives=16, num_neighbors=4, num_walks=8,
             lr=0.03, margin=0.2, max_hard_negatives=2,
             hard_rank_range=(0, 4))


def small_model(split, **kwargs):
    torch.manual_seed(0)
    return user_item_pinsage(split, hidden_channels=16, out_channels=16,
                             normalize_output=True, **kwargs)


@pytest.mark.parametrize('mixed', [True, False])
def test_user_item_training_ranks_the_cluster_first(mixed):
    split = clustered_split()
    model = small_model(split)
    result, training = train_pinsage_user_item(
        model, split, epochs=8, patience=None, progress=False, mixed=mixed,
        **SMALL)
    assert result.epochs_run == 8
    user_emb, item_emb = training.embeddings()
    test = evaluate_ranking(user_emb, item_emb, split.test_index,
                            exclude_links=split.known_interactions('test'),
                            ks=(5, ), metrics=('recall', ))
    # A user has 1-2 unseen items of its cluster among 33+ candidates:
    # random top-5 recalls about 0.15, the cluster structure allows 1.
    assert test['recall@5'] > 0.8, test
    # Scores: the user's own cluster first.
    top = (user_emb @ item_emb.t()).topk(3, dim=1).indices
    cluster = (torch.arange(split.num_users) // USERS_PER).view(-1, 1)
    assert float((top // ITEMS_PER == cluster).float().mean()) > 0.9


def test_user_item_training_bpr_features_and_errors():
    split = clustered_split(features=True)
    model = small_model(split)
    assert model.in_channels == 5
    wide = user_item_pinsage(split, embedding_std=1.0).embedding.weight
    assert 0.9 < float(wide.std()) < 1.1
    assert float(model.embedding.weight.std()) < 0.3  # Xavier
    result, _ = train_pinsage_user_item(model, split, epochs=2,
                                        progress=False, loss='bpr', **SMALL)
    assert all(torch.isfinite(torch.tensor(h['loss']))
               for h in result.history)
    with pytest.raises(ValueError, match='loss'):
        PinSageUserItemTraining(model, split, loss='hinge')
    item_only = PinSage(num_nodes=split.num_items, hidden_channels=8)
    with pytest.raises(ValueError, match='num_nodes'):
        PinSageUserItemTraining(item_only, split)


def test_user_item_checkpoint_resume_matches_uninterrupted(tmp_path):
    split = clustered_split()
    path = str(tmp_path / 'ckpt.pt')
    model = small_model(split)
    full, _ = train_pinsage_user_item(model, split, epochs=3,
                                      patience=None, progress=False, **SMALL)
    first = small_model(split)
    train_pinsage_user_item(first, split, epochs=2, patience=None,
                            checkpoint=path, progress=False, **SMALL)
    resumed = small_model(split)
    again, _ = train_pinsage_user_item(resumed, split, epochs=3,
                                       patience=None, checkpoint=path,
                                       progress=False, **SMALL)
    assert [h['loss'] for h in again.history] == pytest.approx(
        [h['loss'] for h in full.history])
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_pair_loss_bpr_against_direct_computation():
    gen_ = gen(1)
    q, p = torch.randn(3, 4, generator=gen_), torch.randn(3, 4,
                                                           generator=gen_)
    n, h = torch.randn(5, 4, generator=gen_), torch.randn(3, 2, 4,
                                                          generator=gen_)
    pos = (q * p).sum(-1)
    terms = [torch.nn.functional.softplus((q[b] @ n[j] - pos[b]) / 0.5)
             for b in range(3) for j in range(5)]
    terms += [torch.nn.functional.softplus((q[b] @ h[b, j] - pos[b]) / 0.5)
              for b in range(3) for j in range(2)]
    expected = torch.stack(terms).mean()
    assert torch.allclose(pair_loss(q, p, n, h, 'bpr', 0.5), expected)
    assert torch.allclose(pair_loss(q, p, n, None, 'max_margin', 0.5),
                          torch.stack([(q[b] @ n[j] - pos[b] + 0.5).clamp(
                              min=0) for b in range(3)
                                       for j in range(5)]).mean())


def test_layerwise_step_without_torch_sparse(monkeypatch):
    r"""The torch.sparse CSR path of a step (no torch_sparse) gives the
    embeddings and gradients of the SparseTensor path."""
    import torch_geometric.typing
    split = clustered_split()
    outs = []
    for with_sparse in (True, False):
        monkeypatch.setattr(torch_geometric.typing, 'WITH_TORCH_SPARSE',
                            with_sparse)
        model = small_model(split)
        training = PinSageUserItemTraining(model, split, seed=3, **SMALL)
        training.loader(1)
        nodes = torch.tensor([0, 5, split.num_users + 2, split.num_nodes - 1])
        z = training.embed(nodes)
        z.square().sum().backward()
        outs.append((z.detach(), model.embedding.weight.grad.clone()))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-5)
    assert torch.allclose(outs[0][1], outs[1][1], atol=1e-5)
