import pytest
import torch

from pyg_lightgode.apps.training.pinsage import (
    PinSageTraining,
    catalogue_neighborhood,
    hard_negative_curriculum,
    max_margin_loss,
    pinsage_embeddings,
    train_pinsage,
    user_embedding,
    user_item_importance,
    warmup_exponential_lr,
)
from pyg_lightgode.data import BipartiteSplit
from pyg_lightgode.data.preprocess import random_split
from pyg_lightgode.metrics import evaluate_ranking
from pyg_lightgode.metrics.item_to_item import (
    item_to_item_metrics,
    item_to_item_pairs,
    item_to_item_ranks,
)
from pyg_lightgode.nn.models.pinsage import PinSage
from pyg_lightgode.sampler import (
    HardNegativeSampler,
    PinSageNodeLoader,
    PinSageSampler,
)
from pyg_lightgode.sampler.pinsage_sampler import item_data

NUM_CLUSTERS, USERS_PER, ITEMS_PER, ITEMS_PER_USER = 4, 12, 10, 7


def clustered_split(seed=0, with_features=False):
    r"""Users of cluster c engage only items of cluster c (7 of its 10)."""
    gen = torch.Generator().manual_seed(seed)
    users, items = [], []
    for u in range(NUM_CLUSTERS * USERS_PER):
        c = u // USERS_PER
        pick = torch.randperm(ITEMS_PER, generator=gen)[:ITEMS_PER_USER]
        users += [u] * ITEMS_PER_USER
        items += (c * ITEMS_PER + pick).tolist()
    index = torch.tensor([users, items])
    U, I = NUM_CLUSTERS * USERS_PER, NUM_CLUSTERS * ITEMS_PER
    train, rest = random_split(index, U, (0.6, 0.4), seed)
    val, test = random_split(rest, U, (0.5, 0.5), seed)
    item_x = torch.randn(I, 3, generator=gen) if with_features else None
    return BipartiteSplit(U, I, train, test, val_index=val, item_x=item_x)


SMALL = dict(batch_size=64, num_negatives=16, num_neighbors=[3, 3],
             num_walks=4, pairs_per_epoch=256, lr=0.02, margin=0.2)


def small_model(split, **kwargs):
    torch.manual_seed(0)
    return PinSage(num_nodes=split.num_items, hidden_channels=16,
                   out_channels=16, normalize_output=True, **kwargs)


def test_training_beats_random_ranking():
    split = clustered_split()
    model = small_model(split)
    result = train_pinsage(model, split, epochs=6, patience=None,
                           progress=False, max_hard_negatives=2, **SMALL)
    assert result.epochs_run == 6 and len(result.history) == 6
    assert 1 <= result.best_epoch <= 6
    user_emb, item_emb = pinsage_embeddings(model, split, top_k=3,
                                            num_walks=4)
    assert user_emb.shape == (split.num_users, 16)
    assert item_emb.shape == (split.num_items, 16)
    test = evaluate_ranking(user_emb, item_emb, split.test_index,
                            exclude_links=[split.train_index, split.val_index],
                            ks=(5, ), metrics=('recall', ))
    # A user has 3 unseen items of its cluster among 36 candidates: random
    # top-5 recalls about 5/36; the cluster structure allows 1.
    assert test['recall@5'] > 0.6, test
    # Evaluation is deterministic (one fixed catalogue neighbourhood).
    again = pinsage_embeddings(model, split, top_k=3, num_walks=4)
    assert torch.equal(again[1], item_emb)


def test_features_and_importance_user_weighting():
    split = clustered_split(with_features=True)
    model = small_model(split, in_channels=3)
    result = train_pinsage(model, split, epochs=2, progress=False,
                           user_weighting='importance', num_workers=1,
                           **SMALL)
    assert all(torch.isfinite(torch.tensor(h['loss']))
               for h in result.history)
    with pytest.raises(ValueError, match='user_weighting'):
        PinSageTraining(model, split, user_weighting='max')
    no_x = BipartiteSplit(split.num_users, split.num_items, split.train_index,
                          split.test_index)
    with pytest.raises(ValueError, match='item_x'):
        pinsage_embeddings(model, no_x)
    with pytest.raises(ValueError, match='num_neighbors'):
        PinSageTraining(model, split, num_neighbors=[3])


def test_hard_negative_curriculum():
    assert [hard_negative_curriculum(e, 3) for e in range(1, 7)] == \
        [0, 1, 2, 3, 3, 3]
    split = clustered_split()
    model = small_model(split)
    for hard, expected in ((True, [0, 1, 2, 2]), (False, [0, 0, 0, 0])):
        training = PinSageTraining(model, split, hard_negatives=hard,
                                   max_hard_negatives=2, **SMALL)
        assert training.amount == 1  # 16 shared negatives from 64 queries
        widths = []
        for epoch in range(1, 5):
            batch = next(iter(training.loader(epoch)))
            assert training.sampler.num_hard_negatives == expected[epoch - 1]
            num_queries = batch.src_index.numel()
            widths.append(batch.dst_neg_index.view(num_queries, -1).size(1))
            assert torch.isfinite(training.step(batch))
        assert widths == [1 + h for h in expected]


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    split = clustered_split()
    kwargs = dict(patience=None, progress=False, max_hard_negatives=2,
                  user_weighting='importance', **SMALL)
    full = small_model(split)
    full_result = train_pinsage(full, split, epochs=4,
                                checkpoint=str(tmp_path / 'a.pt'), **kwargs)

    path = str(tmp_path / 'b.pt')
    first = small_model(split)
    train_pinsage(first, split, epochs=2, checkpoint=path, **kwargs)
    resumed = small_model(split)
    torch.nn.init.normal_(resumed.embedding.weight)  # overwritten on resume
    result = train_pinsage(resumed, split, epochs=4, checkpoint=path,
                           **kwargs)
    assert [h['loss'] for h in result.history] == \
        [h['loss'] for h in full_result.history]
    assert result.best_epoch == full_result.best_epoch
    for a, b in zip(full.state_dict().values(),
                    resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_precomputed_hard_negatives_draw_the_same():
    split = clustered_split()
    index, U, I = split.train_index, split.num_users, split.num_items
    queries = torch.tensor([0, 5, 17, 33, 5])
    lazy = HardNegativeSampler(index, U, I, rank_range=(2, 6), chunk_size=7)
    eager = HardNegativeSampler(index, U, I, rank_range=(2, 6),
                                chunk_size=7).precompute()
    for seed in range(3):
        a = lazy(queries, 9, torch.Generator().manual_seed(seed))
        b = eager(queries, 9, torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)


# Item-to-item metrics ########################################################


def test_item_to_item_metrics_by_hand():
    item_emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.5],
                             [-1.0, 0.0]])
    # Query 0 scores items 1..4 as 0.9, 0, 0.5, -1 (itself excluded).
    query, target = torch.tensor([0, 0, 0, 2]), torch.tensor([1, 3, 4, 3])
    # Query 2 scores items 0, 1, 3, 4 as 0, 0.1, 0.5, 0: target 3 first.
    ranks = item_to_item_ranks(item_emb, query, target, batch_size=3)
    assert ranks.tolist() == [1, 2, 4, 1]
    out = item_to_item_metrics(item_emb, query, target, ks=(1, 2),
                               mrr_scale=1)
    assert out['hit_rate@1'] == pytest.approx(2 / 4)
    assert out['hit_rate@2'] == pytest.approx(3 / 4)
    assert out['scaled_mrr'] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1) / 4)
    scaled = item_to_item_metrics(item_emb, query, target, mrr_scale=2)
    # ceil(rank / 2) = 1, 1, 2, 1.
    assert scaled['scaled_mrr'] == pytest.approx((1 + 1 + 1 / 2 + 1) / 4)
    # Ties count against the target: constant embeddings rank it last.
    flat = item_to_item_ranks(torch.ones(5, 2), query, target)
    assert flat.tolist() == [4, 4, 4, 4]


def test_item_to_item_pairs_and_errors():
    train = torch.tensor([[0, 0, 1, 2], [1, 3, 2, 4]])
    test = torch.tensor([[0, 1, 3, 2], [2, 0, 1, 4]])  # user 3 has no train
    query, target = item_to_item_pairs(train, test, 4, 5,
                                       torch.Generator().manual_seed(0))
    # User 0: query 1 or 3 for target 2; user 1: query 2 for target 0;
    # user 2's only training item is its test item 4: dropped.
    assert target.tolist() == [2, 0]
    assert query[0].item() in (1, 3) and query[1].item() == 2
    drawn = {
        item_to_item_pairs(train, test, 4, 5,
                           torch.Generator().manual_seed(s))[0][0].item()
        for s in range(20)
    }
    assert drawn == {1, 3}
    emb = torch.randn(5, 2)
    with pytest.raises(ValueError, match='target'):
        item_to_item_ranks(emb, torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ValueError, match='query'):
        item_to_item_ranks(emb, torch.tensor([7]), torch.tensor([0]))
    with pytest.raises(ValueError, match='NaN'):
        item_to_item_ranks(emb * float('nan'), torch.tensor([1]),
                           torch.tensor([0]))
    with pytest.raises(ValueError, match='mrr_scale'):
        item_to_item_metrics(emb, torch.tensor([1]), torch.tensor([0]),
                             mrr_scale=0)


def test_user_item_importance_prefers_central_items():
    # User 0 has items 0 and 1; item 0 is also the only item of users 1, 2,
    # so walks from user 0 come back to item 0 more often.
    index = torch.tensor([[0, 0, 1, 2], [0, 1, 0, 0]])
    # Per walk: the first item is 0 or 1 (1/2 each), then from user 0, 1 or
    # 2 (after item 0) or user 0 (after item 1) the walk goes on with
    # probability 1/2 to item 0 with probability 2/3: expected visits
    # 1/2 + 1/2 * 2/3 to item 0 and 1/2 + 1/2 * 1/3 to item 1, ratio 1.25.
    weight = user_item_importance(index, 3, 2, num_walks=4000,
                                  generator=torch.Generator().manual_seed(0))
    assert weight.shape == (4, ) and (weight >= 1).all()
    assert 1.15 < float(weight[0] / weight[1]) < 1.35
    # User 1 always starts at item 0, then (from user 0 w.p. 1/3, else
    # user 1 or 2) returns to item 0 with probability 1/2 * (1/6 + 2/3).
    assert abs(float(weight[2]) / 4000 - (1 + 5 / 12)) < 0.05


# Minibatch path == layer-wise inference on the loader's neighbourhoods #######


@pytest.mark.parametrize('pooling', ['importance', 'mean', 'max'])
def test_loader_batch_matches_layerwise_inference(pooling):
    split = clustered_split(with_features=True)
    I = split.num_items
    sampler = PinSageSampler(split.train_index, split.num_users, I,
                             num_neighbors=[4, 3], num_walks=5, seed=3)
    loader = PinSageNodeLoader(item_data(I, split.item_x), sampler,
                               batch_size=7, shuffle=True)
    torch.manual_seed(0)
    model = PinSage(num_nodes=I, in_channels=3, hidden_channels=8,
                    out_channels=5, num_layers=2, pooling=pooling).eval()
    for batch in loader:
        # The loader's batch goes into forward as PyG's BasicGNN takes it.
        out = model(batch.x, batch.edge_index, batch.edge_weight,
                    n_id=batch.n_id,
                    num_sampled_nodes_per_hop=batch.num_sampled_nodes,
                    num_sampled_edges_per_hop=batch.num_sampled_edges)
        seeds = batch.n_id[:batch.batch_size]
        assert out.shape == (batch.batch_size, 5)
        # The same neighbourhoods in global ids, every node's computed
        # layer by layer over the whole catalogue.
        full = model.inference(batch.n_id[batch.edge_index],
                               batch.edge_weight, x=split.item_x)
        assert torch.allclose(out, full[seeds], atol=1e-6)
        chunked = model.inference(batch.n_id[batch.edge_index],
                                  batch.edge_weight, x=split.item_x,
                                  chunk_size=11)
        assert torch.allclose(chunked, full, atol=1e-6)
        # Dropping the second hop changes the seeds' embeddings: the test
        # sees both layers.
        cut = batch.num_sampled_edges[0]
        partial = model.inference(batch.n_id[batch.edge_index[:, :cut]],
                                  batch.edge_weight[:cut], x=split.item_x)
        assert not torch.allclose(out, partial[seeds], atol=1e-4)


# Loss, learning-rate schedule, user read-out #################################


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
        max_margin_loss(q, p, shared, hard_neg_emb=hard, margin=0.5),
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
    plain = user_embedding(item_emb, index)
    assert plain.shape == (3, 3)
    assert torch.allclose(plain[2], item_emb[[0, 2, 4]].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match='item ids'):
        user_embedding(item_emb, torch.tensor([[0], [5]]))
    with pytest.raises(ValueError, match='negative'):
        user_embedding(item_emb, index, -weight)
    with pytest.raises(ValueError, match='NaN'):
        user_embedding(torch.full((5, 3), float('nan')), index)


def test_max_margin_training_on_fixed_neighborhoods():
    from pyg_lightgode.sampler.pinsage_sampler import hop_subgraph

    torch.manual_seed(4)
    # Two clusters of 10 items; neighbourhoods and positives stay within a
    # cluster, negatives come from the other cluster.
    num_items, gen = 20, torch.Generator().manual_seed(4)
    dst = torch.arange(num_items).repeat_interleave(3)
    src = (dst // 10) * 10 + torch.randint(0, 10, dst.shape, generator=gen)
    weight = torch.randint(1, 4, dst.shape, generator=gen).float()
    query = torch.tensor([0, 1, 2, 10, 11, 12])
    pos = torch.tensor([3, 4, 5, 13, 14, 15])
    neg = torch.tensor([16, 17, 18, 6, 7, 8])
    out = hop_subgraph(torch.stack([src, dst]), weight,
                       torch.cat([query, pos, neg]), 2, num_items)

    model = PinSage(num_nodes=num_items, hidden_channels=16, out_channels=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = warmup_exponential_lr(optimizer, warmup_steps=2, gamma=0.99)
    losses = []
    for _ in range(12):
        z = model(None, torch.stack([out.row, out.col]), out.metadata[-1],
                  n_id=out.node,
                  num_sampled_nodes_per_hop=out.num_sampled_nodes,
                  num_sampled_edges_per_hop=out.num_sampled_edges)
        z_q, z_p, z_n = z.split(6)
        loss = max_margin_loss(z_q, z_p, z_n[:, None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_catalogue_neighborhood_is_fixed():
    split = clustered_split()
    a = catalogue_neighborhood(split, top_k=3, num_walks=4)
    b = catalogue_neighborhood(split, top_k=3, num_walks=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.bincount(a[0][1], minlength=split.num_items).max() <= 3


def test_normalized_output_is_unit_norm():
    split = clustered_split()
    model = small_model(split)
    _, item_emb = pinsage_embeddings(model, split, top_k=3, num_walks=4)
    assert torch.allclose(item_emb.norm(dim=-1), torch.ones(split.num_items),
                          atol=1e-5)
    raw = PinSage(num_nodes=split.num_items, hidden_channels=16,
                  out_channels=16)
    _, raw_emb = pinsage_embeddings(raw, split, top_k=3, num_walks=4)
    assert not torch.allclose(raw_emb.norm(dim=-1),
                              torch.ones(split.num_items), atol=1e-2)
