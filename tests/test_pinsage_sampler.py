import pickle
from collections import Counter

import pytest
import torch
from torch_geometric.loader import NodeLoader
from torch_geometric.sampler import NegativeSampling
from torch_geometric.utils import trim_to_layer

from helpers import gen
from pyg_lightgode.sampler import (
    HardNegativeSampler,
    ImportanceNeighborhood,
    PinSageLinkLoader,
    PinSageNodeLoader,
    PinSageSampler,
)
from pyg_lightgode.sampler.hard_negatives import (
    hard_negatives,
    personalized_pagerank,
    resolve_rank_range,
)
from pyg_lightgode.sampler.importance import (
    importance_neighbors,
    top_visits,
    topk_visits,
)
from pyg_lightgode.sampler.pinsage_sampler import hop_subgraph, item_data


def random_interactions(num_users=30, num_items=40, num_edges=150, seed=0):
    g = gen(seed)
    index = torch.stack([
        torch.randint(num_users, (num_edges, ), generator=g),
        torch.randint(num_items, (num_edges, ), generator=g)
    ])
    return index.unique(dim=1), num_users, num_items


def co_engaged(index, num_users, num_items):
    r"""Dense item x item matrix: 1 where two items share a user."""
    a = torch.zeros(num_users, num_items)
    a[index[0], index[1]] = 1
    return (a.t() @ a) > 0


def reachable(index, num_users, num_items, num_traversals):
    step = co_engaged(index, num_users, num_items).float()
    reach, cur = torch.zeros_like(step), torch.eye(num_items)
    for _ in range(num_traversals):
        cur = ((cur @ step) > 0).float()
        reach = ((reach + cur) > 0).float()
    return reach > 0  # [q, j]: j reachable from q in 1..T traversals


# Importance neighbourhoods ##################################################


def test_topk_visits_counts_and_ties():
    # Seed 0 visits: 5 x3, 2 x2, 7 x2, 1 x1; seed 1 visits: 4 x1, -1 ignored.
    visits = torch.tensor([[5, 2, 7, 5, 1, 7, 2, 5], [4, -1, -1, -1, -1, -1,
                                                      -1, -1]])
    seed_pos = torch.arange(2).repeat_interleave(8)
    pos, node, count = topk_visits(seed_pos, visits.view(-1), 2, 10, 3)
    assert pos.tolist() == [0, 0, 0, 1]
    assert node.tolist() == [5, 7, 2, 4]  # tie 7 vs 2: larger id first
    assert count.tolist() == [3, 2, 2, 1]


def test_importance_neighbors_exclude_seed_and_normalize():
    visits = torch.tensor([[3, 3, 3, 1, 2, 1], [0, 0, 1, 1, 1, 1]])
    seeds = torch.tensor([3, 1])
    edge_index, weight = importance_neighbors(visits, seeds, 4, top_k=2)
    assert edge_index.tolist() == [[3, 1, 1, 0], [3, 3, 1, 1]]
    assert weight.tolist() == [3., 2., 4., 2.]
    edge_index, weight = importance_neighbors(visits, seeds, 4, top_k=2,
                                              exclude_seed=True,
                                              normalize=True)
    assert edge_index.tolist() == [[1, 2, 0], [3, 3, 1]]
    assert torch.allclose(weight, torch.tensor([2 / 3, 1 / 3, 1.0]))


def test_importance_neighborhood_by_hand():
    # User 0 engages items 0, 1; user 1 items 2, 3; item 4 has no user.
    index = torch.tensor([[0, 0, 1, 1], [0, 1, 2, 3]])
    sampler = ImportanceNeighborhood(index, 2, 5, num_walks=20, top_k=2,
                                     restart_prob=0.0)
    edge_index, weight = sampler(torch.tensor([0, 3, 4]), gen())
    # Every walk makes both traversals within {0, 1} resp. {2, 3}.
    assert sorted(edge_index.t().tolist()) == [[0, 0], [1, 0], [2, 3],
                                               [3, 3]]
    assert weight[:2].sum() == 40 and weight[2:].sum() == 40
    sampler = ImportanceNeighborhood(index, 2, 5, num_walks=20, top_k=1,
                                     exclude_seed=True)
    edge_index, weight = sampler(torch.tensor([0, 3, 4]), gen())
    assert edge_index.tolist() == [[1, 2], [0, 3]]  # 4: empty neighbourhood
    assert (weight >= 1).all() and (weight <= 40).all()


def test_neighbours_are_reachable_and_top_k():
    index, U, I = random_interactions()
    sampler = ImportanceNeighborhood(index, U, I, num_walks=10,
                                     num_traversals=2, top_k=3)
    edge_index, weight = sampler.all_neighborhoods(generator=gen())
    reach = reachable(index, U, I, 2)
    assert reach[edge_index[1], edge_index[0]].all()
    per_seed = torch.bincount(edge_index[1], minlength=I)
    assert per_seed.max() <= 3
    has_user = torch.bincount(index[1], minlength=I) > 0
    assert ((per_seed > 0) == has_user).all()
    assert (weight >= 1).all() and (weight == weight.round()).all()
    # Within a seed: weights non-increasing.
    same = edge_index[1, 1:] == edge_index[1, :-1]
    assert (weight[1:][same] <= weight[:-1][same]).all()


def test_importance_determinism():
    index, U, I = random_interactions()
    sampler = ImportanceNeighborhood(index, U, I, top_k=5)
    seeds = torch.arange(I)
    a, b, c = (sampler(seeds, gen(s)) for s in (3, 3, 4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not (torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]))


def test_homogeneous_importance_neighborhood():
    # Path 0 - 1 - 2 - 3 (both directions): from 0 in one step only 1.
    edges = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    sampler = ImportanceNeighborhood.from_edge_index(
        edges, 4, num_walks=10, num_traversals=1, top_k=2)
    edge_index, weight = sampler(torch.tensor([0, 3]), gen())
    assert edge_index.tolist() == [[1, 2], [0, 3]]
    assert weight.tolist() == [10., 10.]


def test_visit_counts_agree_with_personalized_pagerank():
    index, U, I = random_interactions()
    alpha, walks = 0.3, 20000
    sampler = ImportanceNeighborhood(index, U, I, num_walks=walks,
                                     num_traversals=25, restart_prob=alpha,
                                     top_k=I, exclude_seed=True)
    query = 3
    edge_index, count = sampler(torch.tensor([query]), gen())
    visits = torch.zeros(I).index_put_((edge_index[0], ), count) / walks
    ppr = personalized_pagerank(index, U, I, torch.tensor([query]), alpha,
                                num_iterations=60)[0]
    expected = ppr / (alpha * (1 - alpha))  # see hard_negatives docstring
    expected[query] = 0
    assert (visits - expected).abs().max() < 0.02
    rank = lambda v: v.argsort().argsort().float()  # noqa: E731
    spearman = torch.corrcoef(torch.stack([rank(visits),
                                           rank(expected)]))[0, 1]
    assert spearman > 0.95
    assert visits.topk(3).indices.tolist() == expected.topk(3).indices.tolist()


def test_importance_bad_input():
    index, U, I = random_interactions()
    with pytest.raises(ValueError, match='top_k'):
        ImportanceNeighborhood(index, U, I, top_k=0)
    with pytest.raises(ValueError, match='restart_prob'):
        ImportanceNeighborhood(index, U, I, restart_prob=1.0)
    with pytest.raises(ValueError, match='empty'):
        ImportanceNeighborhood(index[:, :0], U, I)
    with pytest.raises(ValueError, match='empty'):
        ImportanceNeighborhood(index, U, 0)
    with pytest.raises(ValueError, match='empty'):
        ImportanceNeighborhood.from_edge_index(
            torch.zeros(2, 0, dtype=torch.long), 3)
    sampler = ImportanceNeighborhood(index, U, I)
    with pytest.raises(ValueError, match='outside the valid range'):
        sampler(torch.tensor([I]))
    with pytest.raises(ValueError, match='top_k'):
        sampler(torch.tensor([0]), top_k=-1)


# Hard negatives #############################################################


def test_resolve_rank_range():
    assert resolve_rank_range((0.01, 0.025), 40981) == (409, 1025)
    assert resolve_rank_range((2000, 5000), 40981) == (2000, 5000)
    assert resolve_rank_range((0.5, 0.5001), 10) == (5, 6)
    assert resolve_rank_range((5, 50), 10) == (5, 10)
    for bad in ((3, 2), (0.1, 2.0), (1, 0.5), (1, ), 'x', (True, 3)):
        with pytest.raises(ValueError, match='rank_range'):
            resolve_rank_range(bad, 100)


def assert_in_band(sampler, queries, negs, lo, hi, neighbours):
    for q, row, neg in zip(queries.tolist(), sampler.pagerank(queries),
                           negs):
        candidates = ~neighbours[q]
        candidates[q] = False
        ranked = row[candidates].sort(descending=True).values
        assert not neighbours[q, neg].any() and (neg != q).all()
        hi_q = min(hi, ranked.numel())
        assert (row[neg] <= ranked[lo]).all()
        assert (row[neg] >= ranked[hi_q - 1]).all()


def test_hard_negatives_lie_in_band():
    index, U, I = random_interactions(40, 120, 400, seed=1)
    sampler = HardNegativeSampler(index, U, I, rank_range=(10, 20))
    queries = torch.tensor([0, 5, 17, 42, 99])
    negs = sampler(queries, 30, gen())
    assert negs.shape == (5, 30)
    assert_in_band(sampler, queries, negs, 10, 20, co_engaged(index, U, I))
    assert len(set(negs.view(-1).tolist())) > 5  # spread over the band
    again = hard_negatives(index, U, I, queries, 30, (10, 20), gen())
    assert torch.equal(negs, again)
    # The band test can fail: the most related items are not in it.
    top = sampler.pagerank(queries).topk(3).indices
    with pytest.raises(AssertionError):
        assert_in_band(sampler, queries, top, 10, 20,
                       torch.zeros(I, I, dtype=torch.bool))


def test_hard_negatives_bad_input():
    index, U, I = random_interactions()
    sampler = HardNegativeSampler(index, U, I)
    with pytest.raises(ValueError, match='query_items'):
        sampler(torch.tensor([I]), 3)
    with pytest.raises(ValueError, match='num_negatives'):
        sampler(torch.tensor([0]), -1)
    with pytest.raises(ValueError, match='alpha'):
        HardNegativeSampler(index, U, I, alpha=1.0)


# PyG sampler and loaders ####################################################


def check_batch(batch, index, U, I, num_neighbors, num_traversals=2):
    K = len(num_neighbors)
    n_id, (row, col) = batch.n_id, batch.edge_index
    assert len(batch.num_sampled_nodes) == K + 1
    assert len(batch.num_sampled_edges) == K
    assert sum(batch.num_sampled_nodes) == n_id.numel()
    assert sum(batch.num_sampled_edges) == row.numel()
    assert batch.edge_weight.shape == row.shape
    assert (batch.edge_weight > 0).all()
    # Every sampled edge maps back via n_id to a visited (reachable) pair.
    reach = reachable(index, U, I, num_traversals)
    assert reach[n_id[col], n_id[row]].all()
    # Hop h: targets are exactly the nodes first reached at hop h - 1, with
    # at most num_neighbors[h - 1] neighbours each.
    node_ptr = torch.tensor([0] + batch.num_sampled_nodes).cumsum(0)
    edge_ptr = torch.tensor([0] + batch.num_sampled_edges).cumsum(0)
    for h in range(K):
        e = slice(int(edge_ptr[h]), int(edge_ptr[h + 1]))
        assert (col[e] >= node_ptr[h]).all()
        assert (col[e] < node_ptr[h + 1]).all()
        assert (row[e] < node_ptr[h + 2]).all()
        assert torch.bincount(col[e], minlength=1).max() <= num_neighbors[h]
    # Nodes of hop h + 1 are new: they are neighbours sampled at hop h + 1.
    for h in range(1, K + 1):
        e = slice(int(edge_ptr[h - 1]), int(edge_ptr[h]))
        new = torch.arange(int(node_ptr[h]), int(node_ptr[h + 1]))
        assert torch.isin(new, row[e]).all()
    # PyG's trim_to_layer slices it layer by layer.
    x = torch.arange(n_id.numel()).float().view(-1, 1)
    x1, ei1, _ = trim_to_layer(1, batch.num_sampled_nodes,
                               batch.num_sampled_edges, x, batch.edge_index)
    assert x1.size(0) == node_ptr[K] and ei1.size(1) == edge_ptr[K - 1]


def test_node_loader_batches():
    index, U, I = random_interactions()
    sampler = PinSageSampler(index, U, I, num_neighbors=[3, 2], seed=0)
    x = torch.randn(I, 4)
    loader = PinSageNodeLoader(item_data(I, x), sampler, batch_size=8,
                               shuffle=True)
    seen = []
    for batch in loader:
        check_batch(batch, index, U, I, [3, 2])
        assert torch.equal(batch.x, x[batch.n_id])
        assert batch.batch_size == batch.num_sampled_nodes[0]
        seen.append(batch.n_id[:batch.batch_size])
    assert torch.cat(seen).sort().values.tolist() == list(range(I))


def test_normalized_weights_sum_to_one():
    index, U, I = random_interactions()
    sampler = PinSageSampler(index, U, I, num_neighbors=[4], normalize=True)
    out = sampler.sample(torch.arange(10), gen())
    total = torch.zeros(10).index_add_(0, out.col, out.metadata[-1])
    has = torch.bincount(out.col, minlength=10) > 0
    assert torch.allclose(total[has], torch.ones(int(has.sum())))


def test_repeated_seeds_keep_order():
    index, U, I = random_interactions()
    sampler = PinSageSampler(index, U, I, num_neighbors=[3])
    seeds = torch.tensor([5, 2, 5, 9])
    out = sampler.sample(seeds, gen())
    assert out.node[:4].tolist() == seeds.tolist()
    assert len(set(out.node[4:].tolist()) & set(seeds.tolist())) == 0


def test_plain_pyg_node_loader_runs_the_sampler():
    index, U, I = random_interactions()
    sampler = PinSageSampler(index, U, I, num_neighbors=[3, 3])
    loader = NodeLoader(item_data(I), sampler, batch_size=16)
    batch = next(iter(loader))
    assert batch.num_sampled_nodes[0] == 16 and batch.n_id.numel() > 16


def test_loader_with_worker_matches_main_process():
    index, U, I = random_interactions()
    sampler = PinSageSampler(index, U, I, num_neighbors=[3, 2], seed=11)
    sampler = pickle.loads(pickle.dumps(sampler))
    data = item_data(I)
    batches = [
        list(PinSageNodeLoader(data, sampler, batch_size=16,
                               num_workers=workers))
        for workers in (0, 1)
    ]
    assert len(batches[0]) == len(batches[1]) == 3
    for a, b in zip(*batches):
        assert torch.equal(a.n_id, b.n_id)
        assert torch.equal(a.edge_index, b.edge_index)
        assert torch.equal(a.edge_weight, b.edge_weight)


def test_seeded_sampler_is_reproducible_and_varies_with_seed():
    index, U, I = random_interactions()
    seeds = torch.arange(10)
    outs = [
        PinSageSampler(index, U, I, seed=s).sample_from_nodes(
            _node_input(seeds)) for s in (1, 1, 2)
    ]
    assert torch.equal(outs[0].row, outs[1].row)
    assert torch.equal(outs[0].metadata[-1], outs[1].metadata[-1])
    assert not (torch.equal(outs[0].node, outs[2].node)
                and torch.equal(outs[0].row, outs[2].row)
                and torch.equal(outs[0].metadata[-1], outs[2].metadata[-1]))


def _node_input(seeds):
    from torch_geometric.sampler import NodeSamplerInput
    return NodeSamplerInput(input_id=None, node=seeds)


def _label_edges(batch, pairs):
    n_id, (row, col) = batch.n_id, batch.edge_index
    got = set(zip(n_id[row].tolist(), n_id[col].tolist()))
    return [(q, i) for q, i in pairs if (q, i) in got or (i, q) in got]


def test_link_loader_removes_label_edges():
    # Items 0 and 1 are engaged by the same 5 users and nothing else: each
    # is the other's top neighbour, so the label edge would always appear.
    users = torch.arange(5)
    index = torch.cat([torch.stack([users, torch.zeros(5, dtype=torch.long)]),
                       torch.stack([users, torch.ones(5, dtype=torch.long)]),
                       torch.tensor([[5, 5, 6], [2, 3, 3]])], dim=1)
    pairs = torch.tensor([[0, 2], [1, 3]])
    kwargs = dict(num_neighbors=[2, 2], num_walks=20, seed=0)
    for remove in (True, False):
        sampler = PinSageSampler(index, 7, 4, remove_label_edges=remove,
                                 **kwargs)
        batch = next(iter(PinSageLinkLoader(item_data(4), sampler, pairs,
                                            batch_size=2)))
        leaked = _label_edges(batch, pairs.t().tolist())
        assert (leaked == []) == remove, leaked
        check_batch(batch, index, 7, 4, [2, 2])
        # edge_label_index points at the pairs in local ids.
        assert batch.n_id[batch.edge_label_index].tolist() == pairs.tolist()


def test_link_loader_triplet_with_hard_negatives():
    index, U, I = random_interactions(40, 120, 400, seed=1)
    hard = HardNegativeSampler(index, U, I, rank_range=(10, 20))
    sampler = PinSageSampler(index, U, I, num_neighbors=[3, 3],
                             hard_negatives=hard, num_hard_negatives=2,
                             seed=0)
    pairs = index[1].view(-1)[:40].view(2, 20)
    loader = PinSageLinkLoader(item_data(I), sampler, pairs,
                               neg_sampling=NegativeSampling('triplet', 3),
                               batch_size=10)
    batch = next(iter(loader))
    assert batch.dst_neg_index.shape == (10, 5)
    q = batch.n_id[batch.src_index]
    assert q.tolist() == pairs[0, :10].tolist()
    assert batch.n_id[batch.dst_pos_index].tolist() == pairs[1, :10].tolist()
    assert_in_band(hard, q, batch.n_id[batch.dst_neg_index[:, 3:]], 10, 20,
                   co_engaged(index, U, I))
    check_batch(batch, index, U, I, [3, 3])


def test_binary_link_loader():
    index, U, I = random_interactions()
    sampler = PinSageSampler(index, U, I, num_neighbors=[2])
    pairs = torch.tensor([[0, 1, 2], [3, 4, 5]])
    batch = next(iter(PinSageLinkLoader(item_data(I), sampler, pairs,
                                        neg_sampling='binary',
                                        batch_size=3)))
    assert batch.edge_label.tolist() == [1, 1, 1, 0, 0, 0]
    assert batch.n_id[batch.edge_label_index[:, :3]].tolist() == \
        pairs.tolist()


def test_sampler_bad_input():
    index, U, I = random_interactions()
    with pytest.raises(ValueError, match='num_neighbors'):
        PinSageSampler(index, U, I, num_neighbors=[])
    with pytest.raises(ValueError, match='top_k'):
        PinSageSampler(index, U, I, num_neighbors=[3, 0])
    with pytest.raises(ValueError, match='hard_negatives'):
        PinSageSampler(index, U, I, num_hard_negatives=2)
    sampler = PinSageSampler(index, U, I)
    with pytest.raises(ValueError, match='outside'):
        sampler.sample(torch.tensor([I]))
    with pytest.raises(ValueError, match='items'):
        PinSageNodeLoader(item_data(I + 1), sampler, batch_size=4)
    loader = PinSageNodeLoader(item_data(I), sampler,
                               input_nodes=torch.tensor([0, I + 3]),
                               batch_size=2)
    with pytest.raises(ValueError, match='input_nodes'):
        next(iter(loader))


def reference_top_visits(visits, top_k, seeds=None):
    r"""Counts per row with Python's Counter; ties: larger id first."""
    out = []
    for r, row in enumerate(visits.tolist()):
        counts = Counter(v for v in row if v > 0 and (
            seeds is None or v != int(seeds[r])))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -kv[0]))
        out += [(r, v - 1, c) for v, c in ranked[:top_k]]
    return out


@pytest.mark.parametrize('width, top_k', [(1, 1), (8, 3), (40, 50)])
def test_top_visits_against_counter(width, top_k):
    g = gen(width)
    visits = torch.randint(0, 6, (30, width), generator=g, dtype=torch.int32)
    seeds = torch.randint(1, 6, (30, ), generator=g, dtype=torch.int32)
    for s in (None, seeds):
        row, node, count = top_visits(visits, 5, top_k, s)
        got = list(zip(row.tolist(), node.tolist(), count.tolist()))
        assert got == reference_top_visits(visits, top_k, s)


def test_importance_neighborhood_across_blocks(monkeypatch):
    import pyg_lightgode.sampler.importance as module

    index, U, I = random_interactions()
    sampler = ImportanceNeighborhood(index, U, I, num_walks=6, top_k=4,
                                     exclude_seed=True)
    monkeypatch.setattr(module, 'BLOCK_SIZE', 50)  # 4 seeds per block
    visits = sampler.visits(torch.arange(I), gen(1))
    assert visits.shape == (I, 12)
    expected = importance_neighbors(visits, torch.arange(I), I, 4,
                                    exclude_seed=True)
    got = sampler(torch.arange(I), gen(1))
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[1], expected[1])


def test_hop_subgraph_by_hand_and_errors():
    edge_index = torch.tensor([[1, 2, 3, 4, 5, 0], [0, 0, 1, 2, 4, 3]])
    weight = torch.tensor([1., 2., 3., 4., 5., 6.])
    out = hop_subgraph(edge_index, weight, torch.tensor([0]), 2, 6)
    assert out.node.tolist() == [0, 1, 2, 3, 4]
    assert out.num_sampled_nodes == [1, 2, 2]
    assert out.num_sampled_edges == [2, 2]
    assert out.row.tolist() == [1, 2, 3, 4]
    assert out.col.tolist() == [0, 0, 1, 2]
    assert out.metadata[-1].tolist() == [1., 2., 3., 4.]
    # Repeated seeds keep their positions and own neighbourhoods.
    out = hop_subgraph(edge_index, None, torch.tensor([2, 0, 2]), 1, 6)
    assert out.node.tolist() == [2, 0, 2, 1, 4]
    assert out.col.tolist() == [0, 1, 1, 2]
    assert out.row.tolist() == [4, 3, 0, 4]
    assert out.metadata[-1].tolist() == [1., 1., 1., 1.]
    with pytest.raises(ValueError, match='seeds'):
        hop_subgraph(edge_index, None, torch.tensor([9]), 2, 6)
    with pytest.raises(ValueError, match='empty'):
        hop_subgraph(edge_index, None, torch.tensor([], dtype=torch.long), 2,
                     6)
    with pytest.raises(ValueError, match='outside the valid range'):
        hop_subgraph(edge_index, None, torch.tensor([0]), 2, 4)
    with pytest.raises(ValueError, match='num_hops'):
        hop_subgraph(edge_index, None, torch.tensor([0]), 0, 6)
    with pytest.raises(ValueError, match=r'shape \[6\]'):
        hop_subgraph(edge_index, weight[:5], torch.tensor([0]), 1, 6)
