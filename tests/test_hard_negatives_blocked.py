r"""PPR hard negatives and user--item importance computed in blocks (see
:data:`pyg_lightgode.sampler.random_walk.BLOCK_SIZE`): the same results,
bit for bit, with tiny blocks, with the default ones and as the unblocked
computation."""
import importlib

import pytest
import torch
from torch_geometric.utils import to_torch_csr_tensor

from helpers import gen
from pyg_lightgode.apps.training.pinsage import user_item_importance
from pyg_lightgode.sampler import HardNegativeSampler
from pyg_lightgode.sampler.random_walk import (
    bipartite_csr,
    metapath_random_walk,
)

# Modules, not the functions of the same name that pyg_lightgode.sampler
# exports.
MODULES = [
    importlib.import_module(f'pyg_lightgode.{name}')
    for name in ('sampler.random_walk', 'sampler.hard_negatives',
                 'apps.training.pinsage')
]
hard_negatives_module = MODULES[1]



def graph(repeats=True, seed=0):
    r"""40 users (the last 2 without interactions), 60 items (the last 3
    without users), some interactions repeated."""
    g = gen(seed)
    index = torch.stack([torch.randint(38, (400, ), generator=g),
                         torch.randint(57, (400, ), generator=g)])
    index = torch.cat([index, index[:, :25]], dim=1) if repeats else \
        index.unique(dim=1)
    return index[:, torch.randperm(index.size(1), generator=g)], 40, 60


def tiny_blocks(monkeypatch, modules=MODULES, size=7):
    for module in modules:
        monkeypatch.setattr(module, 'BLOCK_SIZE', size)


def reference_pagerank(sampler, queries):
    r"""The power iteration as one tensor operation per step."""
    restart = torch.zeros(sampler.num_items, queries.numel())
    restart[queries, torch.arange(queries.numel())] = sampler.alpha
    x = restart
    for k in range(sampler.num_iterations):
        y = x
        for hop in sampler.hops:
            y = hop @ y
        x = restart + (1 - sampler.alpha) * y
        if k == 0:
            near = x > 0
    return x.t(), near.t()


def reference_band(sampler, queries):
    scores, near = reference_pagerank(sampler, queries)
    if sampler.exclude_neighbors:
        scores = scores.masked_fill(near, float('-inf'))
    scores[torch.arange(queries.numel()), queries] = float('-inf')
    lo, hi = sampler.band
    num_valid = torch.isfinite(scores).sum(dim=1)
    top = scores.topk(min(hi, sampler.num_items), dim=1).indices
    hi_q = num_valid.clamp(max=hi)
    lo_q = torch.minimum(torch.full_like(hi_q, lo), hi_q - 1).clamp(min=0)
    pos = lo_q.unsqueeze(1) + torch.arange(hi - lo)
    band = top.gather(1, pos.clamp(max=top.size(1) - 1))
    width = (hi_q - lo_q).clamp(min=0)
    return band, width.masked_fill(num_valid == 0, 0)


def reference_importance(index, num_users, num_items, num_walks,
                         num_traversals, restart_prob, generator):
    r"""One global :func:`torch.unique` of the visits."""
    item_csr, user_csr = bipartite_csr(index, num_users, num_items)
    users = torch.arange(num_users).masked_select(
        user_csr[0][1:] > user_csr[0][:-1])
    trace = metapath_random_walk([user_csr, item_csr], users, num_traversals,
                                 restart_prob, num_walks, generator)
    visited = trace[:, 1::2]
    walker = users.repeat_interleave(num_walks).view(-1, 1).expand_as(visited)
    valid = visited >= 0
    key = walker.masked_select(valid) * num_items + visited.masked_select(
        valid)
    key, count = torch.unique(key, return_counts=True)
    query = index[0] * num_items + index[1]
    if key.numel() == 0:
        return torch.ones(query.numel())
    pos = torch.searchsorted(key, query).clamp(max=key.numel() - 1)
    found = key.index_select(0, pos) == query
    return 1.0 + torch.where(found, count.index_select(0, pos),
                             0).to(torch.float)


SETTINGS = [
    dict(rank_range=(3, 12), chunk_size=9),
    dict(rank_range=(0.1, 0.4), exclude_neighbors=False, alpha=0.3,
         num_iterations=2),
    dict(rank_range=(50, 59), chunk_size=4),  # Bands past the candidates.
]


def sample_all(index, U, I, kwargs, queries):
    sampler = HardNegativeSampler(index, U, I, **kwargs)
    lazy = sampler(queries, 6, gen(1))
    pagerank = sampler.pagerank(queries)
    band = sampler._band_chunk(queries[:sampler.chunk_size])
    sampler.precompute()
    return (sampler.hops, pagerank, band, lazy, sampler._bands,
            sampler(queries, 6, gen(1)))


@pytest.mark.parametrize('repeats', [True, False])
@pytest.mark.parametrize('kwargs', SETTINGS)
def test_hard_negatives_in_tiny_blocks_are_the_same(monkeypatch, repeats,
                                                    kwargs):
    index, U, I = graph(repeats)
    queries = torch.tensor([0, 5, 5, 17, 58, 59, 31, 2, 44, 12, 7])
    default = sample_all(index, U, I, kwargs, queries)
    tiny_blocks(monkeypatch)
    blocked = sample_all(index, U, I, kwargs, queries)
    for a, b in zip(default[0], blocked[0]):  # The hops.
        for get in ('crow_indices', 'col_indices', 'values'):
            assert torch.equal(getattr(a, get)(), getattr(b, get)())
    for a, b in zip(default[1:], blocked[1:]):
        a, b = (t if isinstance(t, tuple) else (t, ) for t in (a, b))
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    sampler = HardNegativeSampler(index, U, I, **kwargs)
    chunk = queries[:sampler.chunk_size]
    assert torch.equal(blocked[1][:chunk.numel()],
                       reference_pagerank(sampler, chunk)[0])
    for got, expected in zip(blocked[2], reference_band(sampler, chunk)):
        assert torch.equal(got, expected)


@pytest.mark.parametrize('repeats', [True, False])
def test_transitions_are_the_coalesced_csr(repeats):
    index, U, I = graph(repeats)
    item_csr, user_csr = bipartite_csr(index, U, I)
    sampler = HardNegativeSampler(index, U, I)
    for (rowptr, col), num_cols, hop in zip((item_csr, user_csr), (U, I),
                                            sampler.hops):
        row = torch.arange(rowptr.numel() - 1).repeat_interleave(
            rowptr.diff())
        deg = rowptr.diff().float()
        expected = to_torch_csr_tensor(torch.stack([col, row]),
                                       1.0 / deg[row],
                                       size=(num_cols, rowptr.numel() - 1))
        assert hop.crow_indices().dtype == torch.int32
        assert torch.equal(hop.crow_indices().long(),
                           expected.crow_indices())
        assert torch.equal(hop.col_indices().long(), expected.col_indices())
        assert torch.equal(hop.values(), expected.values())


def test_sparse_products_ignore_stale_buffers(monkeypatch):
    # beta=0 products into reused buffers: NaN left there must not leak.
    index, U, I = graph()
    sampler = HardNegativeSampler(index, U, I, chunk_size=5)
    expected = sampler.pagerank(torch.arange(I))
    for name in ('empty', 'empty_like'):
        make = getattr(torch, name)

        def stale(*args, make=make, **kwargs):
            out = make(*args, **kwargs)
            return out.fill_(float('nan')) if out.is_floating_point() \
                else out

        monkeypatch.setattr(torch, name, stale)
    assert torch.equal(sampler.pagerank(torch.arange(I)), expected)


@pytest.mark.parametrize('walks', [(10, 2, 0.5), (3, 4, 0.2), (2, 1, 0.0),
                                   (1, 0, 0.0)])
def test_user_item_importance_in_tiny_blocks_is_the_same(monkeypatch, walks):
    index, U, I = graph()
    default = user_item_importance(index, U, I, *walks, generator=gen(3))
    expected = reference_importance(index, U, I, *walks, generator=gen(3))
    assert default.dtype == expected.dtype
    assert torch.equal(default, expected)
    # Not the walk's blocks: they change the order of the random draws.
    tiny_blocks(monkeypatch, MODULES[1:])
    assert torch.equal(
        user_item_importance(index, U, I, *walks, generator=gen(3)),
        expected)


def test_blocked_results_at_one_and_two_threads():
    index, U, I = graph()
    threads = torch.get_num_threads()
    out = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            sampler = HardNegativeSampler(index, U, I, rank_range=(3, 12))
            out.append((sampler.pagerank(torch.arange(I)),
                        sampler(torch.arange(I), 4, gen(2)),
                        user_item_importance(index, U, I, generator=gen(2))))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*out))
