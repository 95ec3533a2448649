import pytest
import torch

from pyg_lightgode.nn.models.pinsage import (
    PinSage,
    max_margin_loss,
    neighborhood_blocks,
    user_embedding,
    warmup_exponential_lr,
)


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


def test_neighborhood_blocks_by_hand():
    edge_index = torch.tensor([[1, 2, 3, 4, 5, 0], [0, 0, 1, 2, 4, 3]])
    weight = torch.tensor([1., 2., 3., 4., 5., 6.])
    n_id, blocks = neighborhood_blocks(edge_index, weight, torch.tensor([0]),
                                       num_layers=2, num_nodes=6)
    assert n_id.tolist() == [0, 1, 2, 3, 4]
    (bottom_index, bottom_weight, bottom_targets), top = blocks
    assert bottom_targets == 3 and top[2] == 1
    assert top[0].tolist() == [[1, 2], [0, 0]]
    assert top[1].tolist() == [1., 2.]
    assert bottom_index.tolist() == [[1, 2, 3, 4], [0, 0, 1, 2]]
    assert bottom_weight.tolist() == [1., 2., 3., 4.]


def full_graph_embedding(model, edge_index, weight, x=None):
    r"""The exact K-layer PinSage on the whole graph, no blocks, no chunks."""
    h = model.embed_input(x, torch.arange(model.num_nodes))
    for conv in model.convs:
        h = conv(h, edge_index, weight)
    return model.head(h)


@pytest.mark.parametrize('aggr', ['importance', 'mean', 'max'])
def test_minibatch_equals_full_graph_and_layerwise_inference(aggr):
    torch.manual_seed(0)
    edge_index, weight = random_neighborhood()
    x = torch.randn(30, 5)
    model = PinSage(num_nodes=30, in_channels=5, hidden_channels=8,
                    out_channels=4, num_layers=2, aggr=aggr).eval()
    seeds = torch.tensor([3, 28, 7, 0, 29])  # 28, 29 are isolated
    n_id, blocks = neighborhood_blocks(edge_index, weight, seeds, 2, 30)
    out = model(blocks, x=x[n_id], n_id=n_id)
    assert out.shape == (5, 4)
    expected = full_graph_embedding(model, edge_index, weight, x)
    assert torch.allclose(out, expected[seeds], atol=1e-6)
    for chunk_size in (7, 1000):
        full = model.inference(edge_index, weight, x=x, chunk_size=chunk_size)
        assert full.shape == (30, 4)
        assert torch.allclose(full, expected, atol=1e-6)


def test_inference_computes_messages_once_per_node_and_layer():
    edge_index, weight = random_neighborhood()
    model = PinSage(num_nodes=30, hidden_channels=8, out_channels=4).eval()
    rows = []
    for conv in model.convs:
        conv.lin_neighbor.register_forward_hook(
            lambda mod, inp, out: rows.append(inp[0].size(0)))
    model.inference(edge_index, weight, chunk_size=4)
    assert sum(rows) == 2 * 30


def test_input_variants_and_gradients():
    torch.manual_seed(1)
    edge_index, weight = random_neighborhood()
    n_id, blocks = neighborhood_blocks(edge_index, weight,
                                       torch.tensor([1, 2]), 2, 30)
    x = torch.randn(30, 5)
    ids_only = PinSage(num_nodes=30, hidden_channels=8, out_channels=4)
    feats_only = PinSage(in_channels=5, hidden_channels=8, out_channels=4)
    both = PinSage(num_nodes=30, in_channels=5, hidden_channels=8,
                   out_channels=4)
    assert ids_only(blocks, n_id=n_id).shape == (2, 4)
    assert feats_only(blocks, x=x[n_id]).shape == (2, 4)
    h0 = both.embed_input(x[n_id], n_id)
    assert torch.allclose(h0, both.lin_in(x[n_id]) +
                          both.embedding.weight[n_id])
    both(blocks, x=x[n_id], n_id=n_id).sum().backward()
    for name, param in both.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # Only the embedding rows of the computation graph get a gradient.
    untouched = torch.ones(30, dtype=torch.bool)
    untouched[n_id] = False
    assert both.embedding.weight.grad[untouched].abs().sum() == 0


def test_max_margin_loss_against_direct_computation():
    torch.manual_seed(2)
    q, p = torch.randn(3, 4), torch.randn(3, 4)
    shared, hard = torch.randn(5, 4), torch.randn(3, 2, 4)
    terms_shared = [max(0., float(q[b] @ shared[n] - q[b] @ p[b] + 0.5))
                    for b in range(3) for n in range(5)]
    terms_hard = [max(0., float(q[b] @ hard[b, h] - q[b] @ p[b] + 0.5))
                  for b in range(3) for h in range(2)]

    def mean(terms):
        return torch.tensor(sum(terms) / len(terms))

    assert torch.allclose(max_margin_loss(q, p, shared, margin=0.5),
                          mean(terms_shared))
    assert torch.allclose(max_margin_loss(q, p, hard, margin=0.5),
                          mean(terms_hard))
    assert torch.allclose(
        PinSage.max_margin_loss(q, p, shared, hard_neg_emb=hard, margin=0.5),
        mean(terms_shared + terms_hard))
    # The hinge is zero once positives beat negatives by the margin.
    assert max_margin_loss(q, 100 * q, -q[:, None], margin=1.0) == 0


def test_max_margin_loss_errors():
    q = torch.randn(3, 4)
    with pytest.raises(ValueError, match="'pos_emb'"):
        max_margin_loss(q, torch.randn(2, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match='neg_emb'):
        max_margin_loss(q, q)
    with pytest.raises(ValueError, match=r"'neg_emb' must have shape"):
        max_margin_loss(q, q, torch.randn(5, 3))
    with pytest.raises(ValueError, match="'hard_neg_emb' must have shape"):
        max_margin_loss(q, q, hard_neg_emb=torch.randn(2, 2, 4))
    with pytest.raises(ValueError, match='NaN'):
        max_margin_loss(q, q, torch.full((5, 4), float('nan')))


def test_warmup_exponential_lr_values():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = warmup_exponential_lr(optimizer, warmup_steps=4, gamma=0.5)
    lrs = []
    for _ in range(7):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.05, 0.025])
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_exponential_lr(optimizer, warmup_steps=0, gamma=0.9)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(1.0)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.9)
    with pytest.raises(ValueError, match='gamma'):
        warmup_exponential_lr(optimizer, 2, gamma=0.0)
    with pytest.raises(ValueError, match='warmup_steps'):
        warmup_exponential_lr(optimizer, -1, gamma=0.5)


def test_user_embedding_against_per_user_mean():
    torch.manual_seed(3)
    item_emb = torch.randn(5, 3)
    index = torch.tensor([[0, 0, 2, 2, 2, 1], [1, 3, 0, 2, 4, 4]])
    weight = torch.tensor([1., 3., 2., 0., 2., 5.])
    out = user_embedding(item_emb, index, weight, num_users=4)
    expected = torch.stack([
        (1 * item_emb[1] + 3 * item_emb[3]) / 4,
        item_emb[4],
        (2 * item_emb[0] + 0 * item_emb[2] + 2 * item_emb[4]) / 4,
        torch.zeros(3),  # user 3 has no items
    ])
    assert torch.allclose(out, expected, atol=1e-6)
    plain = PinSage.user_embedding(item_emb, index)
    assert plain.shape == (3, 3)
    assert torch.allclose(plain[2], item_emb[[0, 2, 4]].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match='item ids'):
        user_embedding(item_emb, torch.tensor([[0], [5]]))
    with pytest.raises(ValueError, match='negative'):
        user_embedding(item_emb, index, -weight)
    with pytest.raises(ValueError, match='NaN'):
        user_embedding(torch.full((5, 3), float('nan')), index)


def test_model_errors_and_repr():
    with pytest.raises(ValueError, match='num_nodes'):
        PinSage()
    with pytest.raises(ValueError, match='num_layers'):
        PinSage(num_nodes=5, num_layers=0)
    model = PinSage(num_nodes=6, hidden_channels=4, out_channels=2)
    edge_index = torch.tensor([[1, 2, 3], [0, 0, 1]])
    n_id, blocks = neighborhood_blocks(edge_index, None, torch.tensor([0]), 2,
                                       6)
    with pytest.raises(ValueError, match='2 blocks'):
        model(blocks[:1], n_id=n_id)
    with pytest.raises(ValueError, match="'n_id'"):
        model(blocks)
    with pytest.raises(ValueError, match='outside'):
        model(blocks, n_id=n_id + 10)
    with pytest.raises(ValueError, match='num_targets'):
        model([blocks[0], (blocks[1][0], None, 99)], n_id=n_id)
    with pytest.raises(ValueError, match="'x'"):
        PinSage(in_channels=3).inference(edge_index)
    with pytest.raises(ValueError, match='chunk_size'):
        model.inference(edge_index, chunk_size=0)
    with pytest.raises(ValueError, match='distinct'):
        neighborhood_blocks(edge_index, None, torch.tensor([0, 0]), 2, 6)
    with pytest.raises(ValueError, match='seeds'):
        neighborhood_blocks(edge_index, None, torch.tensor([9]), 2, 6)
    assert repr(model) == ('PinSage(num_nodes=6, in_channels=None, '
                           'hidden_channels=4, out_channels=2, num_layers=2, '
                           "aggr='importance')")
    before = model.embedding.weight.clone()
    model.reset_parameters()
    assert not torch.equal(before, model.embedding.weight)


def test_training_decreases_max_margin_loss():
    torch.manual_seed(4)
    # Two clusters of 10 items; neighbourhoods and positives stay within a
    # cluster, negatives come from the other cluster.
    num_items, gen = 20, torch.Generator().manual_seed(4)
    dst = torch.arange(num_items).repeat_interleave(3)
    src = (dst // 10) * 10 + torch.randint(0, 10, dst.shape, generator=gen)
    weight = torch.randint(1, 4, dst.shape, generator=gen).float()
    edge_index = torch.stack([src, dst])
    query = torch.tensor([0, 1, 2, 10, 11, 12])
    pos = torch.tensor([3, 4, 5, 13, 14, 15])
    neg = torch.tensor([16, 17, 18, 6, 7, 8])
    seeds = torch.cat([query, pos, neg])

    model = PinSage(num_nodes=num_items, hidden_channels=16, out_channels=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = warmup_exponential_lr(optimizer, warmup_steps=2, gamma=0.99)
    n_id, blocks = neighborhood_blocks(edge_index, weight, seeds, 2,
                                       num_items)
    losses = []
    for _ in range(12):
        z_q, z_p, z_n = model(blocks, n_id=n_id).split(6)
        loss = max_margin_loss(z_q, z_p, z_n[:, None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
