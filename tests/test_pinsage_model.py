import pytest
import torch

from pyg_lightgode.nn.models.pinsage import PinSage
from pyg_lightgode.sampler.pinsage_sampler import hop_subgraph


def random_neighborhood(num_nodes=30, num_neighbors=3, num_isolated=3,
                        seed=0):
    r"""Top-T style neighbourhoods: every node but the last
    :obj:`num_isolated` gets :obj:`num_neighbors` weighted neighbours."""
    gen = torch.Generator().manual_seed(seed)
    num_targets = num_nodes - num_isolated
    dst = torch.arange(num_targets).repeat_interleave(num_neighbors)
    src = torch.randint(0, num_nodes, (dst.numel(), ), generator=gen)
    weight = torch.randint(1, 6, (dst.numel(), ), generator=gen).float()
    return torch.stack([src, dst]), weight


def minibatch(edge_index, weight, seeds, num_hops, num_nodes):
    r"""The hop-ordered minibatch of :obj:`seeds` in the fixed graph, as the
    keyword arguments of :meth:`PinSage.forward` (but :obj:`x`)."""
    out = hop_subgraph(edge_index, weight, seeds, num_hops, num_nodes)
    return dict(edge_index=torch.stack([out.row, out.col]),
                edge_weight=out.metadata[-1], n_id=out.node,
                num_sampled_nodes_per_hop=out.num_sampled_nodes,
                num_sampled_edges_per_hop=out.num_sampled_edges)


def full_graph_embedding(model, edge_index, weight, x=None):
    r"""The exact K-layer PinSage on the whole graph, layer by layer with
    plain calls of the convolutions."""
    h = model.embed_input(x, torch.arange(model.num_nodes))
    for conv in model.convs:
        h = conv(h, edge_index, weight)
    return model.head(h)


@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_minibatch_equals_full_graph_and_layerwise_inference(pooling):
    torch.manual_seed(0)
    edge_index, weight = random_neighborhood()
    x = torch.randn(30, 5)
    model = PinSage(num_nodes=30, in_channels=5, hidden_channels=8,
                    out_channels=4, num_layers=2, pooling=pooling).eval()
    expected = full_graph_embedding(model, edge_index, weight, x)
    seeds = torch.tensor([3, 28, 7, 0, 29])  # 28, 29 are isolated
    batch = minibatch(edge_index, weight, seeds, 2, 30)
    out = model(x[batch['n_id']], **batch)
    assert out.shape == (5, 4)
    assert torch.allclose(out, expected[seeds], atol=1e-6)
    # Without per-hop counts: every node of the given graph.
    full = model(x, edge_index, weight, n_id=torch.arange(30))
    assert torch.allclose(full, expected, atol=1e-6)
    for chunk_size in (None, 7, 1000):
        full = model.inference(edge_index, weight, x=x, chunk_size=chunk_size)
        assert full.shape == (30, 4)
        assert torch.allclose(full, expected, atol=1e-6)


def test_forward_trims_as_basic_gnn():
    r"""Layer l runs on the nodes and edges trim_to_layer keeps, and the
    seeds' rows come out: the result of the layers' own forward on those
    slices."""
    from torch_geometric.utils import trim_to_layer

    torch.manual_seed(1)
    edge_index, weight = random_neighborhood(seed=1)
    model = PinSage(num_nodes=30, hidden_channels=8, out_channels=4,
                    num_layers=2).eval()
    batch = minibatch(edge_index, weight, torch.tensor([1, 5, 9]), 2, 30)
    nodes = batch['num_sampled_nodes_per_hop']
    edges = batch['num_sampled_edges_per_hop']
    h = model.embed_input(None, batch['n_id'])
    ei, w = batch['edge_index'], batch['edge_weight']
    for i, conv in enumerate(model.convs):
        h, ei, w = trim_to_layer(i, nodes, edges, h, ei, w)
        h = conv(h, ei, w)
    expected = model.head(h[:nodes[0]])
    assert torch.allclose(model(None, **batch), expected, atol=1e-6)


def test_inference_computes_messages_once_per_node_and_layer():
    edge_index, weight = random_neighborhood()
    model = PinSage(num_nodes=30, hidden_channels=8, out_channels=4).eval()
    rows = []
    for conv in model.convs:
        conv.lin_neighbor.register_forward_hook(
            lambda mod, inp, out: rows.append(inp[0].size(0)))
    model.inference(edge_index, weight)
    assert rows == [30, 30]
    rows.clear()
    # In chunks, every chunk transforms its targets' distinct neighbours.
    model.inference(edge_index, weight, chunk_size=4)
    assert len(rows) == 2 * 8 and sum(rows) > 2 * 30


def test_input_variants_and_gradients():
    torch.manual_seed(1)
    edge_index, weight = random_neighborhood()
    batch = minibatch(edge_index, weight, torch.tensor([1, 2]), 2, 30)
    n_id = batch['n_id']
    x = torch.randn(30, 5)
    ids_only = PinSage(num_nodes=30, hidden_channels=8, out_channels=4)
    feats_only = PinSage(in_channels=5, hidden_channels=8, out_channels=4)
    both = PinSage(num_nodes=30, in_channels=5, hidden_channels=8,
                   out_channels=4)
    assert ids_only(None, **batch).shape == (2, 4)
    no_ids = {k: v for k, v in batch.items() if k != 'n_id'}
    assert feats_only(x[n_id], **no_ids).shape == (2, 4)
    h0 = both.embed_input(x[n_id], n_id)
    assert torch.allclose(h0, both.lin_in(x[n_id]) +
                          both.embedding.weight[n_id])
    both(x[n_id], **batch).sum().backward()
    for name, param in both.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # Only the embedding rows of the computation graph get a gradient.
    untouched = torch.ones(30, dtype=torch.bool)
    untouched[n_id] = False
    assert both.embedding.weight.grad[untouched].abs().sum() == 0


def test_model_errors_and_repr():
    with pytest.raises(ValueError, match='num_nodes'):
        PinSage()
    with pytest.raises(ValueError, match='num_layers'):
        PinSage(num_nodes=5, num_layers=0)
    with pytest.raises(ValueError, match="'pooling'"):
        PinSage(num_nodes=5, pooling='sum')
    model = PinSage(num_nodes=6, hidden_channels=4, out_channels=2)
    edge_index = torch.tensor([[1, 2, 3], [0, 0, 1]])
    batch = minibatch(edge_index, None, torch.tensor([0]), 2, 6)
    nodes = batch['num_sampled_nodes_per_hop']
    edges = batch['num_sampled_edges_per_hop']
    with pytest.raises(ValueError, match='one per layer'):
        model(None, **{**batch, 'num_sampled_nodes_per_hop': nodes[:2],
                       'num_sampled_edges_per_hop': edges[:1]})
    with pytest.raises(ValueError, match='or neither'):
        model(None, **{**batch, 'num_sampled_edges_per_hop': None})
    with pytest.raises(ValueError, match='the minibatch has'):
        model(None, **{**batch, 'num_sampled_nodes_per_hop': [1, 2, 9]})
    with pytest.raises(ValueError, match=r'\[2, E\] tensor'):
        adj_t = torch.sparse_coo_tensor(batch['edge_index'].flip(0),
                                        batch['edge_weight'], (5, 5))
        model(None, **{**batch, 'edge_index': adj_t, 'edge_weight': None})
    with pytest.raises(ValueError, match="'n_id'"):
        model(None, **{**batch, 'n_id': None})
    with pytest.raises(ValueError, match='outside'):
        model(None, **{**batch, 'n_id': batch['n_id'] + 10})
    with pytest.raises(ValueError, match="'x'"):
        PinSage(in_channels=3).inference(edge_index)
    with pytest.raises(ValueError, match='chunk_size'):
        model.inference(edge_index, chunk_size=0)
    assert repr(model) == ('PinSage(num_nodes=6, in_channels=None, '
                           'hidden_channels=4, out_channels=2, num_layers=2, '
                           "pooling='importance')")
    before = model.embedding.weight.clone()
    model.reset_parameters()
    assert not torch.equal(before, model.embedding.weight)
