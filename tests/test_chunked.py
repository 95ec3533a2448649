import json
import os

import numpy as np
import pytest
import torch

from pyg_lightgode.data.bipartite import (
    bipartite_to_adj_t,
    bipartite_to_homogeneous,
)
from pyg_lightgode.metrics.ranking import recommend
from pyg_lightgode.nn.conv import LightGODEConv
from pyg_lightgode.apps.serving.store import (
    EmbeddingStore,
    chunked_recommend,
    save_embeddings,
)



def random_interactions(num_users=7, num_items=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(num_users, num_items, generator=gen) < 0.35
    mask[torch.arange(num_users), torch.arange(num_users) % num_items] = True
    return mask.nonzero().t()


# ---------------------------------------------------------------------------
# Chunked LightGODE propagation
# ---------------------------------------------------------------------------


def test_chunked_euler_step_by_hand():
    # Path 0 - 1 - 2: A_hat[0, 1] = A_hat[1, 0] = A_hat[1, 2] = ... = 1/sqrt2.
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 1.0]], dtype=torch.double)
    r = 2**-0.5
    adj = torch.tensor([[0, r, 0], [r, 0, r], [0, r, 0]], dtype=torch.double)
    out = LightGODEConv(t=2.0, chunk_size=1)(x, edge_index)
    assert torch.allclose(out, 3 * x + 2 * adj @ x)


@pytest.mark.parametrize('method,kwargs,t', [
    ('euler', {}, 1.5),
    ('euler', {}, [0.5, 1.0, 3.0]),
    ('exact', {}, 1.5),
    ('exact', {}, [0.0, 0.5, 1.5, 3.0]),
    ('rk4', dict(step_size=0.25), [0.5, 1.0]),
])
@pytest.mark.parametrize('chunk_size', [1, 4, 5, 100])
def test_chunked_propagation_equals_unchunked(method, kwargs, t, chunk_size):
    index = random_interactions()
    num_nodes = 7 + 9
    x = torch.randn(num_nodes, 3, dtype=torch.double,
                    generator=torch.Generator().manual_seed(1))
    expected = LightGODEConv(t=t, method=method, **kwargs)(
        x, bipartite_to_homogeneous(index, 7, 9))
    for graph in (bipartite_to_homogeneous(index, 7, 9),
                  bipartite_to_adj_t(index, 7, 9)):
        chunked = LightGODEConv(t=t, method=method, chunk_size=chunk_size,
                                **kwargs)
        out = chunked(x, graph)
        assert out.shape == expected.shape
        assert torch.allclose(out, expected, rtol=0, atol=1e-12)
    # The forward argument overrides the constructor's.
    out = LightGODEConv(t=t, method=method, **kwargs)(
        x, graph, chunk_size=chunk_size)
    assert torch.allclose(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize('method', ['euler', 'exact'])
def test_chunked_propagation_gradient(method):
    index = random_interactions()
    edge_index = bipartite_to_homogeneous(index, 7, 9)
    x = torch.randn(16, 3, dtype=torch.double, requires_grad=True)
    weight = torch.randn(2, 16, 3, dtype=torch.double)
    grads = []
    for chunk_size in (None, 3):
        conv = LightGODEConv(t=[0.5, 1.5], method=method,
                             chunk_size=chunk_size)
        (conv(x, edge_index) * weight).sum().backward()
        grads.append(x.grad.clone())
        x.grad = None
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize('chunk_size', [0, -2, 1.5, True])
def test_bad_chunk_size(chunk_size):
    x = torch.randn(3, 2)
    edge_index = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="'chunk_size' must be a positive"):
        LightGODEConv(chunk_size=chunk_size)
    with pytest.raises(ValueError, match="'chunk_size' must be a positive"):
        LightGODEConv()(x, edge_index, chunk_size=chunk_size)
    with pytest.raises(ValueError, match="'chunk_size' must be a positive"):
        save_embeddings('unused.npy', x, chunk_size=chunk_size)
    with pytest.raises(ValueError, match="'item_chunk_size' must be a posi"):
        chunked_recommend(x, x, item_chunk_size=chunk_size)


# ---------------------------------------------------------------------------
# EmbeddingStore
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_store_round_trip(tmp_path, dtype):
    emb = torch.randn(23, 5, dtype=dtype)
    path = str(tmp_path / 'sub' / 'emb.npy')
    store = save_embeddings(path, emb, chunk_size=4, meta={'num_users': 10})
    assert store.shape == (23, 5) and len(store) == 23
    assert store.size() == torch.Size([23, 5]) and store.size(1) == 5
    assert store.dtype == dtype and store.meta == {'num_users': 10}
    reopened = EmbeddingStore(path, shape=(23, 5), dtype=dtype)
    assert torch.equal(reopened.to_tensor(), emb)
    # A standard .npy file:
    assert np.array_equal(np.load(path, mmap_mode='r'), emb.numpy())
    starts, rows = zip(*reopened.chunks(6))
    assert starts == (0, 6, 12, 18)
    assert [r.size(0) for r in rows] == [6, 6, 6, 5]
    assert torch.equal(torch.cat(rows), emb)
    assert torch.equal(reopened[3:9], emb[3:9])
    assert torch.equal(reopened[-1], emb[-1])
    assert torch.equal(reopened[torch.tensor([7, 2, 7])], emb[[7, 2, 7]])
    ids = torch.tensor([22, 0, 5, 4, 22, 13, 12])
    for chunk_size in (1, 2, 5, 100):
        assert torch.equal(reopened.take(ids, chunk_size), emb[ids])
    assert reopened.take(torch.tensor([], dtype=torch.long)).shape == (0, 5)
    assert np.array_equal(reopened.memmap(), emb.numpy())
    items = reopened.narrow(10, 13)
    assert items.shape == (13, 5)
    assert torch.equal(items.read(), emb[10:])
    assert torch.equal(items[2:4], emb[12:14])
    assert torch.equal(items.take(torch.tensor([12, 0])), emb[[22, 10]])
    assert np.array_equal(items.memmap(), emb[10:].numpy())
    assert torch.equal(items.narrow(1, 2).read(), emb[11:13])
    assert not any(name.startswith('emb.npy.tmp')
                   for name in os.listdir(tmp_path / 'sub'))


def test_store_writer_casts_and_overwrites(tmp_path):
    path = str(tmp_path / 'emb.npy')
    save_embeddings(path, torch.zeros(4, 2))
    emb = torch.randn(6, 3, dtype=torch.float64)
    with EmbeddingStore.create(path, 6, 3, dtype=torch.float32) as writer:
        writer.append(emb[:4])
        writer.append(emb[4:].numpy())
    store = EmbeddingStore(path)
    assert store.shape == (6, 3) and store.dtype == torch.float32
    assert torch.equal(store.read(), emb.float())


def test_store_writer_errors_leave_no_store(tmp_path):
    path = str(tmp_path / 'emb.npy')
    writer = EmbeddingStore.create(path, 5, 2)
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        writer.append(torch.zeros(2, 3))
    with pytest.raises(ValueError, match='NaN'):
        writer.append(torch.tensor([[0.0, float('nan')]]))
    writer.append(torch.zeros(3, 2))
    with pytest.raises(ValueError, match='exceeds the store'):
        writer.append(torch.zeros(3, 2))
    with pytest.raises(ValueError, match='Only 3 of the 5 rows'):
        writer.close()
    with pytest.raises(RuntimeError, match='boom'):
        with EmbeddingStore.create(path, 5, 2) as writer:
            writer.append(torch.zeros(2, 2))
            raise RuntimeError('boom')
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match='No embedding store'):
        EmbeddingStore(path)
    with pytest.raises(ValueError, match="'meta' must be a JSON"):
        EmbeddingStore.create(path, 5, 2, meta={'bad': object()})
    with pytest.raises(ValueError, match="'dtype' must be one of"):
        EmbeddingStore.create(path, 5, 2, dtype=torch.int64)
    with pytest.raises(ValueError, match="'emb' must be a non-empty"):
        save_embeddings(path, torch.zeros(3))


def test_store_shape_and_dtype_mismatch(tmp_path):
    path = str(tmp_path / 'emb.npy')
    store = save_embeddings(path, torch.randn(8, 4))
    with pytest.raises(ValueError, match=r'has shape \[8, 4\], expected '
                       r'\[9, 4\]'):
        EmbeddingStore(path, shape=(9, 4))
    with pytest.raises(ValueError, match='expected'):
        EmbeddingStore(path, shape=(-1, 5))
    assert EmbeddingStore(path, shape=(-1, 4)).num_rows == 8
    with pytest.raises(ValueError, match='expected torch.float64'):
        EmbeddingStore(path, dtype=torch.float64)
    with pytest.raises(ValueError, match='outside'):
        store.read(5, 9)
    with pytest.raises(ValueError, match=r'outside the valid range \[0, 7\]'):
        store.take(torch.tensor([0, 8]))
    with pytest.raises(ValueError, match='non-empty range'):
        store.narrow(6, 3)


def test_store_truncated_or_corrupt_files(tmp_path):
    path = str(tmp_path / 'emb.npy')
    store = save_embeddings(path, torch.randn(8, 4))
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size - 4)
    # Opened before the truncation: the read notices.
    with pytest.raises(ValueError, match='truncated'):
        store.read(6, 8)
    with pytest.raises(ValueError, match=r'truncated or corrupt: \d+ bytes'):
        EmbeddingStore(path)

    save_embeddings(path, torch.randn(8, 4))
    header_path = path + '.json'
    header = json.loads(open(header_path).read())
    header['shape'] = [9, 4]
    open(header_path, 'w').write(json.dumps(header))
    with pytest.raises(ValueError, match='but its header says'):
        EmbeddingStore(path)
    open(header_path, 'w').write('{"format": ')
    with pytest.raises(ValueError, match='not valid JSON'):
        EmbeddingStore(path)
    os.remove(header_path)
    with pytest.raises(ValueError, match='has no header'):
        EmbeddingStore(path)


# ---------------------------------------------------------------------------
# Chunked retrieval
# ---------------------------------------------------------------------------


def test_chunked_recommend_by_hand():
    user_emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    item_emb = torch.tensor([[3.0, 0.0], [2.0, 5.0], [1.0, 1.0], [0.0, 4.0]])
    exclude = torch.tensor([[0, 1], [1, 3]])  # (user, item) pairs
    score, index = chunked_recommend(user_emb, item_emb, k=3,
                                     exclude_links=exclude, user_chunk_size=1,
                                     item_chunk_size=3)
    assert index.tolist() == [[0, 2, 3], [1, 2, 0]]
    assert score.tolist() == [[3.0, 1.0, 0.0], [5.0, 1.0, 0.0]]


def test_chunked_recommend_from_disk_equals_recommend(tmp_path):
    num_users, num_items = 11, 17
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(num_users, 4, generator=gen)
    item_emb = torch.randn(num_items, 4, generator=gen)
    train = random_interactions(num_users, num_items, seed=1)
    val = random_interactions(num_users, num_items, seed=2)
    users = torch.tensor([9, 0, 4, 4, 10, 3])
    item_store = save_embeddings(str(tmp_path / 'item.npy'), item_emb,
                                 chunk_size=5)
    user_store = save_embeddings(str(tmp_path / 'user.npy'), user_emb)
    item_memmap = np.load(str(tmp_path / 'item.npy'), mmap_mode='r')
    for k in (3, 20):  # 20 > 17 items: padded with -1.
        for selected in (None, users):
            expected = recommend(user_emb, item_emb, selected, k=k,
                                 exclude_links=[train, val])
            for user_table, item_table in ((user_emb, item_emb),
                                           (user_store, item_store),
                                           (user_emb.numpy(), item_memmap)):
                score, index = chunked_recommend(
                    user_table, item_table, selected, k=k,
                    exclude_links=[train,
                                   val], batch_size=2, user_chunk_size=4,
                    item_chunk_size=4)
                assert torch.equal(index, expected.index)
                assert torch.allclose(score, expected.score)
    assert (expected.index == -1).any()


def test_propagate_store_and_retrieve(tmp_path):
    num_users, num_items = 7, 9
    index = random_interactions(num_users, num_items)
    x = torch.randn(num_users + num_items, 4,
                    generator=torch.Generator().manual_seed(0))
    out = LightGODEConv(t=1.5, method='exact', chunk_size=5)(
        x, bipartite_to_adj_t(index, num_users, num_items))
    store = save_embeddings(str(tmp_path / 'nodes.npy'), out, chunk_size=3,
                            meta={'num_users': num_users})
    num_stored_users = store.meta['num_users']
    users = store.narrow(0, num_stored_users)
    items = store.narrow(num_stored_users, store.num_rows - num_stored_users)
    score, index_ = chunked_recommend(users, items, k=4, exclude_links=index,
                                      item_chunk_size=2)
    expected = recommend(out[:num_users], out[num_users:], k=4,
                         exclude_links=index)
    assert torch.equal(index_, expected.index)
    # float32 products blocked differently differ in the last bits (~1e-6).
    assert torch.allclose(score, expected.score, atol=1e-5)


def test_chunked_recommend_bad_input():
    emb = torch.randn(4, 3)
    with pytest.raises(ValueError, match='same feature size'):
        chunked_recommend(emb, torch.randn(5, 2))
    with pytest.raises(TypeError, match="'item_emb' must be a torch.Tensor"):
        chunked_recommend(emb, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"'user_emb' must have shape"):
        chunked_recommend(torch.randn(0, 3), emb)
    with pytest.raises(ValueError, match=r"'users' holds ids in \[0, 4\]"):
        chunked_recommend(emb, emb, users=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="'exclude_links' holds item ids"):
        chunked_recommend(emb, emb, exclude_links=torch.tensor([[0], [7]]))
    with pytest.raises(ValueError, match="'k' must be a positive"):
        chunked_recommend(emb, emb, k=0)
    item_emb = emb.clone()
    item_emb[2, 1] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        chunked_recommend(emb, item_emb, item_chunk_size=2)
