import sys

import pytest
import torch
from torch_geometric.nn.pool.knn import KNNOutput

from pyg_lightgode.apps.serving.store import chunked_recommend
from pyg_lightgode.metrics import ItemIndex, RankingEvaluator, recommend
from pyg_lightgode.metrics.retrieval import dense_topk, exact_topk, merge_topk

NEG = float('-inf')


def brute_force(query, items, k, exclude_links=None):
    r"""Top-k of the fully materialised, masked score matrix."""
    scores = query @ items.t()
    if exclude_links is not None:
        scores[exclude_links[0], exclude_links[1]] = NEG
    score, index = scores.topk(min(k, items.size(0)), dim=-1)
    index[score == NEG] = -1
    pad = k - score.size(1)
    if pad > 0:
        score = torch.cat([score, score.new_full((score.size(0), pad), NEG)],
                          1)
        index = torch.cat([index, index.new_full((index.size(0), pad), -1)],
                          1)
    return index, score


def random_excluded(num_rows, num_items, num, seed):
    gen = torch.Generator().manual_seed(seed)
    row = torch.randint(num_rows, (num, ), generator=gen)
    col = torch.randint(num_items, (num, ), generator=gen)
    # Row 0 keeps only 3 items: its list is padded.
    row = torch.cat([row, torch.zeros(num_items - 3, dtype=torch.long)])
    col = torch.cat([col, torch.arange(num_items - 3)])
    return row, col


def as_pair(out):
    # (index, score) of a KNNOutput (score, index) or an internal pair.
    return (out.index, out.score) if isinstance(out, KNNOutput) else out


def assert_same_topk(out, expected, atol=1e-5):
    out, expected = as_pair(out), as_pair(expected)
    assert torch.equal(out[0], expected[0])
    assert torch.allclose(out[1], expected[1], rtol=0, atol=atol)


@pytest.mark.parametrize('num_cols', [64, 321, 2000, 2053])
@pytest.mark.parametrize('k', [1, 7, 20])
def test_dense_topk_equals_topk(num_cols, k):
    gen = torch.Generator().manual_seed(num_cols + k)
    scores = torch.randn(13, num_cols, generator=gen)
    scores[3] = NEG  # All items excluded.
    scores[4, :num_cols - 2] = NEG  # Two items left.
    scores[5, ::7] = 1e4  # Many maxima in the same few groups.
    index, score = dense_topk(scores, k)
    ref_score, ref_index = scores.topk(min(k, num_cols), dim=-1)
    assert torch.equal(score, ref_score)
    finite = ref_score > NEG
    # Ties (row 5, the -inf rows) may come in another order:
    assert torch.equal(scores.gather(1, index), ref_score)
    untied = finite.clone()
    untied[5] = False
    assert torch.equal(index[untied], ref_index[untied])
    assert index.unique(dim=1).size(1) == index.size(1) or num_cols < k


def test_dense_topk_propagates_nan():
    scores = torch.randn(3, 4096)
    scores[1, 1234] = float('nan')
    _, score = dense_topk(scores, 5)
    assert bool(score[1].isnan().any()) and not bool(score[0].isnan().any())


def test_merge_topk():
    scores = torch.randn(6, 50)
    best = None
    for start in range(0, 50, 12):
        score, index = scores[:, start:start + 12].topk(
            min(5, 50 - start), dim=-1)
        best = merge_topk(best, index + start, score, 5)
    ref_score, ref_index = scores.topk(5, dim=-1)
    assert torch.equal(best[0], ref_index) and torch.equal(best[1], ref_score)
    # Padding (-1, -inf) stays behind every real item:
    index, score = merge_topk((torch.tensor([[-1, -1]]), torch.tensor(
        [[NEG, NEG]])), torch.tensor([[4]]), torch.tensor([[0.5]]), 2)
    assert index.tolist() == [[4, -1]] and score[0, 0] == 0.5


@pytest.mark.parametrize('block_numel', [1, 500, 4096, 1 << 30])
@pytest.mark.parametrize('item_chunk_size', [None, 1, 97, 1000])
def test_exact_topk_blocks_and_chunks(block_numel, item_chunk_size):
    gen = torch.Generator().manual_seed(0)
    query, items = torch.randn(37, 8, generator=gen), torch.randn(
        1000, 8, generator=gen)
    excluded = random_excluded(37, 1000, 3000, seed=1)
    for k in (5, 20):
        out = exact_topk(query, items, k, excluded, item_chunk_size,
                         block_numel=block_numel)
        assert_same_topk(out, brute_force(query, items, k, excluded))
    assert (out[0][0] == -1).sum() >= 20 - 3


def test_exact_topk_item_iterable_unsorted_rows_and_score_fn():
    gen = torch.Generator().manual_seed(2)
    query, items = torch.randn(25, 6, generator=gen), torch.randn(
        700, 6, generator=gen)
    row, col = random_excluded(25, 700, 900, seed=3)
    perm = torch.randperm(row.numel(), generator=gen)
    excluded = (row[perm], col[perm])
    expected = brute_force(query, items, 10, (row, col))
    chunks = ((start, items[start:start + 128])
              for start in range(0, 700, 128))
    assert_same_topk(exact_topk(query, chunks, 10, excluded, block_numel=999),
                     expected)
    calls = []

    def score_fn(q, i):
        calls.append(q.size(0))
        return q @ i.t()

    out = exact_topk(query, items, 10, excluded, score_fn=score_fn,
                     block_numel=7 * 700)
    assert_same_topk(out, expected)
    assert max(calls) == 7
    # k larger than the catalogue, and an empty query:
    out = exact_topk(query, items[:4], 6)
    assert out[0].shape == (25, 6) and (out[0][:, 4:] == -1).all()
    assert exact_topk(query[:0], items, 3)[0].shape == (0, 3)


def test_recommend_and_evaluator_at_gowalla_like_shapes():
    # Wide enough for the grouped top-k, with blocks of a few users:
    gen = torch.Generator().manual_seed(4)
    user_emb = torch.randn(300, 16, generator=gen)
    item_emb = torch.randn(5003, 16, generator=gen)
    train = torch.stack(random_excluded(300, 5003, 20000, seed=5))
    test = torch.stack([torch.randint(300, (900, ), generator=gen),
                        torch.randint(5003, (900, ), generator=gen)])
    # Plant test items high in some users' rankings:
    top = brute_force(user_emb, item_emb, 30, train)[0]
    test = torch.cat([test, torch.stack([torch.arange(300), top[:, 1]])], 1)
    expected = brute_force(user_emb, item_emb, 20, train)
    assert_same_topk(recommend(user_emb, item_emb, k=20, exclude_links=train),
                     expected)
    evaluator = RankingEvaluator(test, exclude_links=train, ks=(5, 20))
    out = evaluator(user_emb, item_emb)
    scorer_out = evaluator.evaluate_scorer(
        lambda u: user_emb[u] @ item_emb.t(), 300, 5003)
    assert out['recall@20'] > 0.1
    for key, value in out.items():
        assert scorer_out[key] == pytest.approx(value, abs=1e-6), key


def test_chunked_recommend_shares_the_exact_path(tmp_path):
    gen = torch.Generator().manual_seed(6)
    user_emb = torch.randn(40, 8, generator=gen)
    item_emb = torch.randn(3000, 8, generator=gen)
    exclude = torch.stack(random_excluded(40, 3000, 4000, seed=7))
    expected = brute_force(user_emb, item_emb, 15, exclude)
    out = chunked_recommend(user_emb, item_emb.numpy(), k=15,
                            exclude_links=exclude, batch_size=3,
                            user_chunk_size=16, item_chunk_size=700)
    assert_same_topk(out, expected)


# ---------------------------------------------------------------------------
# faiss-backed retrieval
# ---------------------------------------------------------------------------


def clustered(num_clusters=16, per_cluster=125, dim=8, num_users=300,
              seed=0):
    gen = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(num_clusters, dim, generator=gen)
    items = centers.repeat_interleave(per_cluster, 0) + 0.3 * torch.randn(
        num_clusters * per_cluster, dim, generator=gen)
    users = centers[torch.randint(num_clusters, (num_users, ),
                                  generator=gen)]
    users = users + 0.3 * torch.randn(num_users, dim, generator=gen)
    exclude = torch.stack([
        torch.randint(num_users, (3000, ), generator=gen),
        torch.randint(items.size(0), (3000, ), generator=gen)
    ])
    return users, items, exclude


def test_mips_equals_exact():
    pytest.importorskip('faiss')
    gen = torch.Generator().manual_seed(8)
    user_emb = torch.randn(50, 8, generator=gen)
    item_emb = torch.randn(400, 8, generator=gen)
    exclude = torch.stack(random_excluded(50, 400, 2000, seed=9))
    users = torch.tensor([7, 0, 49, 7])
    for k in (1, 10, 500):  # 500 > 400 items: padded.
        for selected in (None, users):
            expected = recommend(user_emb, item_emb, selected, k=k,
                                 exclude_links=exclude, batch_size=16)
            out = recommend(user_emb, item_emb, selected, k=k,
                            exclude_links=exclude, batch_size=16, index='mips')
            assert_same_topk(out, expected)
    # More rows than one faiss search takes (sorted by their exclusions):
    user_emb = torch.randn(600, 8, generator=gen)
    exclude = torch.stack(random_excluded(600, 400, 20000, seed=11))
    assert_same_topk(recommend(user_emb, item_emb, k=10, exclude_links=exclude,
                               batch_size=1000, index='mips'),
                     recommend(user_emb, item_emb, k=10,
                               exclude_links=exclude))
    # No exclusion, float64 embeddings, a prebuilt index:
    user64, item64 = user_emb.double(), item_emb.double()
    index = ItemIndex(item64, kind='mips')
    assert_same_topk(recommend(user64, item64, k=5, index=index),
                     recommend(user64, item64, k=5))


def test_sub_batches_by_exclusions():
    from pyg_lightgode.metrics.retrieval import _by_exclusions
    links = torch.tensor([[4, 4, 4, 0, 2, 2, 6], [1, 2, 3, 9, 8, 7, 5]])
    seen = {}
    for rows, sub in _by_exclusions(7, links, batch_size=3):
        assert rows.numel() <= 3
        for r, i in sub.t().tolist():
            seen.setdefault(int(rows[r]), set()).add(i)
    assert seen == {4: {1, 2, 3}, 0: {9}, 2: {7, 8}, 6: {5}}
    # Rows come in the order of their number of exclusions:
    order = torch.cat([rows for rows, _ in _by_exclusions(7, links, 3)])
    assert sorted(order.tolist()) == list(range(7))
    assert order[-2:].tolist() == [2, 4]
    rows, sub = next(_by_exclusions(5, None))
    assert rows.tolist() == list(range(5)) and sub is None


def test_mips_ranks_rows_beyond_faiss_limit_exactly():
    pytest.importorskip('faiss')
    gen = torch.Generator().manual_seed(10)
    user_emb = torch.randn(6, 4, generator=gen)
    item_emb = torch.randn(2100, 4, generator=gen)
    # Users 1 and 4 exclude 30 items each: more than 2048 - k for k = 2030.
    exclude = torch.cat([
        torch.stack([torch.full((30, ), 1), torch.arange(30)]),
        torch.stack([torch.full((30, ), 4), torch.arange(100, 130)]),
        torch.tensor([[0, 2], [5, 6]]),
    ], 1)
    index = ItemIndex(item_emb, kind='mips')
    expected = recommend(user_emb, item_emb, k=2030, exclude_links=exclude)
    out = recommend(user_emb, item_emb, k=2030, exclude_links=exclude,
                    index=index)
    assert torch.equal(out.index, expected.index)
    with pytest.raises(ValueError, match="'k' must be at most 2048"):
        index.search(user_emb, 2049)


def test_approx_mips_recall_on_clustered_items():
    pytest.importorskip('faiss')
    users, items, exclude = clustered()
    _, expected = recommend(users, items, k=10, exclude_links=exclude)

    def recall(found):
        return sum(
            len(set(a) & set(b))
            for a, b in zip(found.tolist(), expected.tolist())) / \
            expected.numel()

    index = ItemIndex(items, kind='approx-mips', num_cells=16,
                      num_cells_to_visit=4, bits_per_vector=4)
    assert index.refine == 4
    score, found = recommend(users, items, k=10, exclude_links=exclude,
                             index=index)
    assert recall(found) >= 0.9
    # Refined scores are exact inner products, best first:
    assert torch.allclose(score, (users.unsqueeze(1) *
                                  items[found]).sum(-1), atol=1e-4)
    assert bool((score[:, :-1] >= score[:, 1:]).all())
    excluded = set(map(tuple, exclude.t().tolist()))
    assert not any((u, i) in excluded
                   for u, row in enumerate(found.tolist()) for i in row)
    # faiss' own top-k (PyG's ApproxMIPSKNNIndex as is) is coarser:
    raw = ItemIndex(items, kind='approx-mips', num_cells=16,
                    num_cells_to_visit=4, bits_per_vector=4, refine=1)
    assert recall(recommend(users, items, k=10, exclude_links=exclude,
                            index=raw).index) >= 0.5
    assert 'approx-mips' in repr(raw)


def test_faiss_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, 'faiss', None)  # import faiss fails.
    with pytest.raises(ImportError, match=r"needs the optional package "
                       r"'faiss' \(pip install faiss-cpu"):
        ItemIndex(torch.randn(5, 2), kind='mips')
    # The exact path does not need it:
    index = ItemIndex(torch.eye(3), kind='exact')
    assert index.search(torch.eye(3), 1).index.view(-1).tolist() == [0, 1,
                                                                     2]


def test_retrieval_bad_input():
    user_emb, item_emb = torch.randn(4, 8), torch.randn(10, 8)
    with pytest.raises(ValueError, match="'kind' must be one of"):
        ItemIndex(item_emb, kind='hnsw')
    with pytest.raises(ValueError, match="'index' must be one of"):
        recommend(user_emb, item_emb, index='hnsw')
    with pytest.raises(ValueError, match="'item_emb' must be a floating"):
        ItemIndex(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="'refine' must be a positive"):
        ItemIndex(item_emb, refine=0)
    with pytest.raises(ValueError, match="'index' was built for 3 items"):
        recommend(user_emb, item_emb, index=ItemIndex(item_emb[:3]))
    with pytest.raises(ValueError, match="'score_fn' can only be used"):
        recommend(user_emb, item_emb, index='mips',
                  score_fn=lambda u, i: u @ i.t())
    with pytest.raises(ValueError, match="'item_chunk_size' only applies"):
        recommend(user_emb, item_emb, index='mips', item_chunk_size=3)
    pytest.importorskip('faiss')
    with pytest.raises(ValueError, match="'bits_per_vector' \\(3\\) must "
                       "divide"):
        ItemIndex(item_emb, kind='approx-mips', num_cells=2,
                  bits_per_vector=3)
    with pytest.raises(ValueError, match="'num_cells' \\(11\\) must not"):
        ItemIndex(item_emb, kind='approx-mips', num_cells=11)
