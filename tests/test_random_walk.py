import sys

import pytest
import torch

from helpers import gen
from pyg_lightgode.sampler.random_walk import (
    bipartite_csr,
    bipartite_random_walk,
    metapath_random_walk,
    random_walk,
    sample_item_pairs,
    to_csr,
    walk_lengths,
)


def csr_of(edges, num_nodes):
    edge_index = torch.tensor(edges).t()
    return to_csr(edge_index[0], edge_index[1], num_nodes)


# A directed graph: 0 <-> 1 <-> 2, 2 -> 3 (dead end), 4 isolated, 1 -> 4
EDGES = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (1, 4)]

# Users 0..2, items 0..4; item 4 has no user.
INTERACTIONS = torch.tensor([[0, 0, 1, 1, 1, 2], [0, 1, 1, 2, 3, 3]])


def assert_valid_trace(trace, edge_set):
    for walk in trace.tolist():
        ended = False
        for a, b in zip(walk, walk[1:]):
            if b < 0:
                ended = True
            else:
                assert not ended, f'walk continues after its end: {walk}'
                assert (a, b) in edge_set, f'({a}, {b}) is not an edge'


def test_to_csr():
    rowptr, col = csr_of(EDGES, 5)
    assert rowptr.tolist() == [0, 1, 4, 6, 6, 6]
    assert col.tolist() == [1, 0, 2, 4, 1, 3]


def test_homogeneous_walk_moves_along_edges_and_stops_at_dead_ends():
    rowptr, col = csr_of(EDGES, 5)
    start = torch.tensor([0, 1, 2, 3, 4])
    trace = random_walk(rowptr, col, start, num_steps=6, num_walks=50,
                        generator=gen())
    assert trace.shape == (5 * 50, 7)
    assert trace[:, 0].tolist() == start.repeat_interleave(50).tolist()
    assert_valid_trace(trace, set(EDGES))
    # Nodes 3 and 4 have no out-edge: those walks end at once.
    assert (trace[150:, 1:] == -1).all()
    # Without restarts, only reaching 3 or 4 ends a walk early.
    last = trace.gather(1, walk_lengths(trace).unsqueeze(1)).view(-1)[:150]
    short = walk_lengths(trace)[:150] < 6
    assert set(last[short].tolist()) <= {3, 4}


def test_restart_probability_checked_after_each_traversal():
    rowptr, col = csr_of([(0, 1), (1, 0)], 2)  # never a dead end
    trace = random_walk(rowptr, col, torch.tensor([0]), num_steps=3,
                        restart_prob=0.5, num_walks=4000, generator=gen(1))
    lengths = walk_lengths(trace)
    assert lengths.min() == 1  # the first traversal is always taken
    frac = torch.stack([(lengths == k).float().mean() for k in (1, 2, 3)])
    assert torch.allclose(frac, torch.tensor([0.5, 0.25, 0.25]), atol=0.03)


def test_uniform_neighbour_choice():
    rowptr, col = csr_of([(0, 1), (0, 2), (0, 3), (0, 4)], 5)
    trace = random_walk(rowptr, col, torch.tensor([0]), 1, num_walks=8000,
                        generator=gen(2))
    freq = torch.bincount(trace[:, 1], minlength=5)[1:] / 8000
    assert torch.allclose(freq, torch.full((4, ), 0.25), atol=0.02)


def test_bipartite_walk_traces():
    item_csr, user_csr = bipartite_csr(INTERACTIONS, 3, 5)
    items, users = bipartite_random_walk(item_csr, user_csr,
                                         torch.arange(5), num_traversals=3,
                                         num_walks=20, generator=gen(),
                                         return_users=True)
    assert items.shape == (100, 4) and users.shape == (100, 3)
    pairs = set(map(tuple, INTERACTIONS.t().tolist()))
    # Interleave into item, user, item, ... and check every hop.
    full = torch.stack([items[:, :-1], users], dim=2).view(100, -1)
    full = torch.cat([full, items[:, -1:]], dim=1)
    for walk in full.tolist():
        for h, (a, b) in enumerate(zip(walk, walk[1:])):
            if b < 0:
                assert all(v < 0 for v in walk[h + 1:])
                break
            assert ((b, a) if h % 2 == 0 else (a, b)) in pairs
    assert (items[80:, 1:] == -1).all()  # item 4: isolated
    assert (items[:80, 1] >= 0).all()


def test_determinism():
    rowptr, col = csr_of(EDGES, 5)
    start = torch.tensor([0, 1, 2])
    a = random_walk(rowptr, col, start, 5, 0.3, 20, generator=gen(7))
    b = random_walk(rowptr, col, start, 5, 0.3, 20, generator=gen(7))
    c = random_walk(rowptr, col, start, 5, 0.3, 20, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_metapath_walk_edgeless_graph():
    rowptr = torch.zeros(4, dtype=torch.long)
    col = torch.zeros(0, dtype=torch.long)
    trace = metapath_random_walk([(rowptr, col)], torch.tensor([0, 2]), 3)
    assert trace.tolist() == [[0, -1, -1, -1], [2, -1, -1, -1]]


def test_sample_item_pairs_share_a_user():
    item_csr, user_csr = bipartite_csr(INTERACTIONS, 3, 5)
    pairs = sample_item_pairs(item_csr, user_csr, 200, generator=gen())
    assert pairs.size(0) == 2 and 0 < pairs.size(1) <= 200
    users_of = [set(INTERACTIONS[0, INTERACTIONS[1] == i].tolist())
                for i in range(5)]
    for q, i in pairs.t().tolist():
        assert q != i and users_of[q] & users_of[i]


def test_bad_input():
    rowptr, col = csr_of(EDGES, 5)
    with pytest.raises(ValueError, match='outside the valid range'):
        random_walk(rowptr, col, torch.tensor([5]), 2)
    with pytest.raises(ValueError, match='outside the valid range'):
        random_walk(rowptr, col, torch.tensor([-1]), 2)
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match='restart_prob'):
            random_walk(rowptr, col, torch.tensor([0]), 2, restart_prob=p)
    with pytest.raises(ValueError, match='num_traversals'):
        random_walk(rowptr, col, torch.tensor([0]), -1)
    with pytest.raises(ValueError, match='num_walks'):
        random_walk(rowptr, col, torch.tensor([0]), 2, num_walks=0)
    with pytest.raises(ValueError, match='integer node ids'):
        random_walk(rowptr, col, torch.tensor([0.5]), 2)
    with pytest.raises(ValueError, match='empty'):
        random_walk(torch.zeros(1, dtype=torch.long), col[:0],
                    torch.tensor([], dtype=torch.long), 2)
    with pytest.raises(ValueError, match='rowptr'):
        random_walk(rowptr, col[:-1], torch.tensor([0]), 2)
    with pytest.raises(TypeError, match='generator'):
        random_walk(rowptr, col, torch.tensor([0]), 2, generator=0)
    with pytest.raises(ValueError, match='item ids'):
        bipartite_csr(torch.tensor([[0], [9]]), 3, 5)


def test_walks_across_blocks_and_thread_counts(monkeypatch):
    module = sys.modules['pyg_lightgode.sampler.random_walk']
    monkeypatch.setattr(module, 'BLOCK_SIZE', 64)  # many blocks
    rowptr, col = csr_of(EDGES, 5)
    start = torch.tensor([0, 1, 2, 3, 4])
    trace = random_walk(rowptr, col, start, 5, 0.2, 50, generator=gen(3))
    assert trace.shape == (250, 6) and trace.dtype == torch.long
    assert trace[:, 0].tolist() == start.repeat_interleave(50).tolist()
    assert_valid_trace(trace, set(EDGES))
    assert (trace[150:, 1:] == -1).all()
    # The random stream does not depend on the number of threads.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        again = random_walk(rowptr, col, start, 5, 0.2, 50, generator=gen(3))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(trace, again)


def test_prepared_tables():
    from pyg_lightgode.sampler.random_walk import prepare_hops

    rowptr, col = csr_of(EDGES, 5)
    hop, = prepare_hops([(rowptr, col)])
    # Shifted ids: row 0 is the ended walk; nodes 3 and 4 (no out-edge)
    # point at the sentinel entry col[6] = 0.
    assert hop.deg.tolist() == [0, 1, 3, 2, 0, 0]
    assert hop.begin.tolist() == [6, 0, 1, 4, 6, 6]
    assert hop.col.tolist() == [2, 1, 3, 5, 2, 4, 0]
    assert hop.col.dtype == torch.int32
    a = random_walk(rowptr, col, torch.tensor([0, 1]), 4, generator=gen(5))
    b = metapath_random_walk([hop], torch.tensor([0, 1]), 4,
                             generator=gen(5))
    assert torch.equal(a, b)
