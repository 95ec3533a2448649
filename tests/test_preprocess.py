import numpy as np
import pytest
import torch

from pyg_lightgode.data import BipartiteSplit, build_split, k_core_filter
from pyg_lightgode.data.preprocess import (
    filter_by_rating,
    random_split,
    remap_ids,
    remove_duplicates,
    temporal_split,
)


def keys(index, num_items=10_000):
    return sorted((index[0] * num_items + index[1]).tolist())


def random_graph(num_users=40, num_items=30, seed=0):
    r"""Distinct pairs; every user has 1 to min(25, num_items) items."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for u in range(num_users):
        n = min(int(torch.randint(1, 26, (1, ), generator=gen)), num_items)
        items = torch.randperm(num_items, generator=gen)[:n]
        rows.append(torch.stack([torch.full((n, ), u), items]))
    index = torch.cat(rows, dim=1)
    return index[:, torch.randperm(index.size(1), generator=gen)]


# remap_ids ###################################################################


@pytest.mark.parametrize('users,items', [
    ([10, -3, 10, 7_000_000_000], [5, 5, 2, 99]),
    (['bob', 'alice', 'bob', 'zoe'], ['x1', 'a', 'x1', 'b']),
])
def test_remap_ids_round_trip(users, items):
    index, user_ids, item_ids = remap_ids(users, items)
    assert index.dtype == torch.long and index.shape == (2, 4)
    assert list(user_ids[index[0].numpy()]) == users
    assert list(item_ids[index[1].numpy()]) == items
    assert len(user_ids) == len(set(users))
    assert len(item_ids) == len(set(items))
    assert sorted(index[0].unique().tolist()) == list(range(len(user_ids)))


def test_remap_ids_does_not_depend_on_row_order():
    users, items = np.array([3, 1, 2, 1]), np.array([7, 8, 7, 9])
    index, user_ids, _ = remap_ids(users, items)
    perm = np.array([2, 0, 3, 1])
    index2, user_ids2, _ = remap_ids(users[perm], items[perm])
    assert (user_ids == user_ids2).all()
    assert torch.equal(index2, index[:, perm])
    # Tensors are accepted too.
    index3, _, _ = remap_ids(torch.from_numpy(users), torch.tensor(items))
    assert torch.equal(index3, index)


def test_remap_ids_errors():
    with pytest.raises(ValueError, match='same length'):
        remap_ids([1, 2], [1])
    with pytest.raises(ValueError, match='1-dimensional'):
        remap_ids(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match='NaN'):
        remap_ids([1.0, float('nan')], [1, 2])
    with pytest.raises(TypeError, match='one kind'):
        remap_ids(np.array([1, 'a'], dtype=object), [1, 2])


# filter_by_rating / remove_duplicates ########################################


def test_filter_by_rating_carries_edge_attributes():
    index = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 2]])
    rating = torch.tensor([5, 3, 4, 1])
    time = torch.tensor([10, 20, 30, 40])
    out, out_rating, out_time = filter_by_rating(index, rating, 4, time)
    assert out.tolist() == [[0, 1], [0, 1]]
    assert out_rating.tolist() == [5, 4]
    assert out_time.tolist() == [10, 30]
    out, _, none = filter_by_rating(index, rating.float(), 3.5, None)
    assert out.size(1) == 2 and none is None


def test_filter_by_rating_errors():
    index = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="'rating' must have one entry"):
        filter_by_rating(index, torch.tensor([5]), 4)
    with pytest.raises(ValueError, match='NaN'):
        filter_by_rating(index, torch.tensor([5.0, float('nan')]), 4)
    with pytest.raises(ValueError, match='edge_attrs'):
        filter_by_rating(index, torch.tensor([5, 4]), 4, torch.zeros(3))


def test_remove_duplicates_keeps_first():
    index = torch.tensor([[0, 1, 0, 0, 1], [2, 2, 2, 3, 2]])
    time = torch.tensor([1, 2, 3, 4, 5])
    out, out_time = remove_duplicates(index, time)
    assert out.tolist() == [[0, 1, 0], [2, 2, 3]]
    assert out_time.tolist() == [1, 2, 4]


# k_core_filter ###############################################################


def naive_k_core(pairs, user_k, item_k):
    pairs = set(pairs)
    while True:
        du, di = {}, {}
        for u, i in pairs:
            du[u] = du.get(u, 0) + 1
            di[i] = di.get(i, 0) + 1
        keep = {(u, i) for u, i in pairs if du[u] >= user_k
                and di[i] >= item_k}
        if keep == pairs:
            return pairs
        pairs = keep


def test_k_core_cascade_on_hand_graph():
    # u3 has one interaction -> removed; then i2 keeps only u2 -> removed;
    # then u2 keeps only i1 -> removed. A single pass would keep u2 and i2.
    index = torch.tensor([[0, 0, 1, 1, 2, 2, 3], [0, 1, 0, 1, 1, 2, 2]])
    out = k_core_filter(index, user_k=2, item_k=2)
    assert out.kept_users.tolist() == [0, 1]
    assert out.kept_items.tolist() == [0, 1]
    assert out.edge_mask.tolist() == [True] * 4 + [False] * 3
    assert out.index.tolist() == [[0, 0, 1, 1], [0, 1, 0, 1]]

    user_deg = torch.bincount(index[0])
    item_deg = torch.bincount(index[1])
    one_pass = (user_deg[index[0]] >= 2) & (item_deg[index[1]] >= 2)
    assert int(one_pass.sum()) == 6  # so the iteration matters


def test_k_core_recompacts_ids_and_compose():
    index = torch.tensor([[0, 0, 2, 2, 5, 5, 5], [1, 4, 1, 4, 1, 4, 3]])
    raw_users = np.array(['a', 'b', 'c', 'd', 'e', 'f'])
    raw_items = np.array([10, 11, 12, 13, 14])
    first = k_core_filter(index, 2, 2, num_users=6, num_items=5)
    assert first.kept_users.tolist() == [0, 2, 5]
    assert first.kept_items.tolist() == [1, 4]
    assert first.index.max(dim=1).values.tolist() == [2, 1]
    # Each new id maps back to the raw id of the same interaction.
    old = index[:, first.edge_mask]
    new_raw = raw_users[first.kept_users.numpy()][first.index[0].numpy()]
    assert (new_raw == raw_users[old[0].numpy()]).all()
    # Composition: a second, stricter filter on the output.
    second = k_core_filter(first.index, 2, 3)
    composed = first.kept_users[second.kept_users]
    assert raw_users[composed.numpy()].tolist() == ['a', 'c', 'f']
    assert raw_items[first.kept_items[second.kept_items].numpy()].tolist() \
        == [11, 14]


def test_k_core_matches_naive_fixpoint():
    index = random_graph(60, 25, seed=3)
    out = k_core_filter(index, user_k=5, item_k=8)
    expected = naive_k_core(map(tuple, index.t().tolist()), 5, 8)
    got = set(map(tuple, index[:, out.edge_mask].t().tolist()))
    assert got == expected and len(got) > 0
    assert torch.bincount(out.index[0]).min() >= 5
    assert torch.bincount(out.index[1]).min() >= 8


def test_k_core_zero_keeps_isolated_nodes():
    index = torch.tensor([[0, 2], [1, 1]])
    out = k_core_filter(index, 0, 0, num_users=4, num_items=3)
    assert out.kept_users.tolist() == [0, 1, 2, 3]
    assert out.kept_items.tolist() == [0, 1, 2]
    assert torch.equal(out.index, index)
    out = k_core_filter(index, 1, 1, num_users=4, num_items=3)
    assert out.kept_users.tolist() == [0, 2]
    assert out.index.tolist() == [[0, 1], [0, 0]]


def test_k_core_errors():
    index = torch.tensor([[0], [0]])
    with pytest.raises(ValueError, match='user_k'):
        k_core_filter(index, -1, 0)
    with pytest.raises(TypeError, match='item_k'):
        k_core_filter(index, 1, 1.5)
    with pytest.raises(ValueError, match='outside the valid range'):
        k_core_filter(torch.tensor([[3], [0]]), 1, 1, num_users=2)


# random_split ################################################################


def recbole_counts(n, ratios):
    r"""RecBole's Dataset._calcu_split_ids, written out plainly."""
    total = sum(ratios)
    ratios = [r / total for r in ratios]
    cnt = [int(r * n) for r in ratios]
    cnt[0] = n - sum(cnt[1:])
    for i in range(1, len(ratios)):
        if cnt[0] <= 1:
            break
        if 0 < ratios[-i] * n < 1:
            cnt[-i] += 1
            cnt[0] -= 1
    return cnt


@pytest.mark.parametrize('ratios', [(0.8, 0.1, 0.1), (7, 2, 1), (0.9, 0.1)])
def test_random_split_disjoint_covering_per_user_ratios(ratios):
    index = random_graph()
    parts = random_split(index, 40, ratios, seed=1)
    assert len(parts) == len(ratios)
    assert keys(torch.cat(parts, dim=1)) == keys(index)  # covering, disjoint
    n = torch.bincount(index[0], minlength=40).tolist()
    counts = [torch.bincount(p[0], minlength=40).tolist() for p in parts]
    for u in range(40):
        assert [c[u] for c in counts] == recbole_counts(n[u], ratios)
    # Edges keep their input order within a part.
    pos = {k: j for j, k in enumerate((index[0] * 10_000 + index[1]).tolist())}
    for p in parts:
        order = [pos[k] for k in (p[0] * 10_000 + p[1]).tolist()]
        assert order == sorted(order)


def test_random_split_rounding_of_small_users():
    index = torch.tensor([[0, 1, 1, 2, 2, 2], [0, 0, 1, 0, 1, 2]])
    train, val, test = random_split(index, 3, seed=0)
    assert torch.bincount(train[0], minlength=3).tolist() == [1, 1, 1]
    assert torch.bincount(val[0], minlength=3).tolist() == [0, 0, 1]
    assert torch.bincount(test[0], minlength=3).tolist() == [0, 1, 1]


def test_random_split_seed():
    index = random_graph()
    a = random_split(index, 40, seed=7)
    b = random_split(index, 40, seed=7)
    c = random_split(index, 40, seed=8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert keys(a[2]) != keys(c[2])


def test_random_split_errors():
    index = torch.tensor([[0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match='repeated'):
        random_split(index, 2)
    with pytest.raises(ValueError, match='ratios'):
        random_split(index[:, 1:], 2, ratios=(0.5, ))
    with pytest.raises(ValueError, match='ratios'):
        random_split(index[:, 1:], 2, ratios=(0.5, -0.1, 0.6))
    with pytest.raises(ValueError, match='user ids'):
        random_split(index[:, 1:], 1)


# temporal_split ##############################################################


def test_temporal_split_picks_latest_and_breaks_ties_by_row():
    index = torch.tensor([
        [0, 0, 0, 0, 1, 1, 1, 2, 3, 3],
        [0, 1, 2, 3, 0, 1, 2, 0, 1, 2],
    ])
    time = torch.tensor([5, 1, 9, 3, 2, 2, 2, 4, 8, 6])
    train, val, test = temporal_split(index, time, 4)
    as_set = lambda t: set(map(tuple, t.t().tolist()))  # noqa: E731
    # User 0: latest is item 2 (t=9), then item 0 (t=5); user 1: equal
    # times, the later row counts as later; user 2 has one interaction
    # (train only); user 3 has two (no validation).
    assert as_set(test) == {(0, 2), (1, 2), (3, 1)}
    assert as_set(val) == {(0, 0), (1, 1)}
    assert as_set(train) == {(0, 1), (0, 3), (1, 0), (2, 0), (3, 2)}
    # Reversing the rows changes only the tie order of user 1.
    rev = torch.arange(9, -1, -1)
    _, val2, test2 = temporal_split(index[:, rev], time[rev], 4)
    assert (1, 0) in as_set(test2) and (1, 1) in as_set(val2)


def test_temporal_split_options_and_errors():
    index = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3]])
    time = torch.tensor([4.0, 3.0, 2.0, 1.0])
    train, val, test = temporal_split(index, time, 1, num_val=0, num_test=2)
    assert val is None
    assert sorted(test[1].tolist()) == [0, 1]
    with pytest.raises(ValueError, match='time'):
        temporal_split(index, time[:3], 1)
    with pytest.raises(ValueError, match='num_test'):
        temporal_split(index, time, 1, num_test=-1)


# build_split #################################################################


def test_build_split_keeps_features_and_ids_aligned():
    index = random_graph(30, 20, seed=5)
    E = index.size(1)
    rating = torch.randint(1, 6, (E, ), generator=torch.Generator().
                           manual_seed(0))
    user_x = torch.arange(30, dtype=torch.float).view(-1, 1) * 10
    item_x = torch.arange(20, dtype=torch.float).view(-1, 1) + 0.5
    user_ids = [f'u{u}' for u in range(30)]
    item_ids = np.arange(20) * 100
    out = build_split(index, 30, 20, rating=rating, min_rating=3, user_k=3,
                      item_k=4, ratios=(0.6, 0.2, 0.2), seed=1,
                      user_x=user_x, item_x=item_x, user_ids=user_ids,
                      item_ids=item_ids, name='toy')
    assert isinstance(out, BipartiteSplit) and out.name == 'toy'
    # Features follow the raw ids.
    for u in range(out.num_users):
        assert out.user_ids[u] == f'u{int(out.user_x[u, 0]) // 10}'
    assert (out.item_ids == (out.item_x[:, 0] - 0.5).numpy() * 100).all()
    # The parts are exactly the filtered interactions, in raw ids.
    pos = index[:, rating >= 3]
    expected = naive_k_core(map(tuple, pos.t().tolist()), 3, 4)
    got = set()
    for part in (out.train_index, out.val_index, out.test_index):
        for u, i in part.t().tolist():
            got.add((int(out.user_ids[u][1:]), int(out.item_ids[i]) // 100))
    assert got == expected
    assert out.stats()['num_train'] + out.stats()['num_val'] + \
        out.stats()['num_test'] == len(expected)


def test_build_split_deduplicates_and_temporal():
    index = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 1, 0, 2, 0, 1]])
    time = torch.tensor([1, 2, 9, 3, 1, 2])
    out = build_split(index, 2, 3, time=time, split='temporal')
    # The repeated (0, 0) keeps its first time (1), so item 2 is latest.
    assert out.test_index.tolist() == [[0, 1], [2, 1]]
    assert out.val_index.tolist() == [[0], [1]]
    out = build_split(index, 2, 3, ratios=(0.5, 0.5))
    assert out.val_index is None
    assert out.train_index.size(1) + out.test_index.size(1) == 5


def test_build_split_errors():
    index = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="'split'"):
        build_split(index, 2, 2, split='leave-one-out')
    with pytest.raises(ValueError, match='time'):
        build_split(index, 2, 2, split='temporal')
    with pytest.raises(ValueError, match='rating'):
        build_split(index, 2, 2, min_rating=4)
    with pytest.raises(ValueError, match='no interactions are left'):
        build_split(index, 2, 2, rating=torch.tensor([1, 2]), min_rating=4)
    with pytest.raises(ValueError, match="'user_x'"):
        build_split(index, 2, 2, user_x=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="'item_ids'"):
        build_split(index, 2, 2, item_ids=[1])
    with pytest.raises(ValueError, match='outside the valid range'):
        build_split(index, 1, 2)
