import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pyg_lightgode.apps.serving.fold_in import (
    DEFAULT_E0_RULE,
    E0_RULES,
    LightGODEFoldIn,
    one_step,
)
from pyg_lightgode.data import bipartite_to_adj_t
from pyg_lightgode.nn.conv import LightGODEConv

T = 3.0
ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / 'shared' / 'data' / 'ml-100k'


def graph(num_users=30, num_items=20, num_edges=150, dim=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    index = torch.stack([
        torch.randint(0, num_users, (num_edges, ), generator=gen),
        torch.randint(0, num_items, (num_edges, ), generator=gen)
    ]).unique(dim=1)
    return (torch.randn(num_users, dim, generator=gen),
            torch.randn(num_items, dim, generator=gen), index)


def conv(user_e0, item_e0, index, t=T, method='euler'):
    U = user_e0.size(0)
    out = LightGODEConv(t=t, method=method)(
        torch.cat([user_e0, item_e0]),
        bipartite_to_adj_t(index, U, item_e0.size(0)))
    return out[:U], out[U:]


def assert_equal_to_full(fold):
    users, items = fold.recompute()
    assert torch.equal(users, fold.user_embedding)
    assert torch.equal(items, fold.item_embedding)
    ref_u, ref_i = one_step(fold.user_e0, fold.item_e0, fold.edge_index,
                            fold.t)
    assert torch.equal(ref_u, fold.user_embedding)
    assert torch.equal(ref_i, fold.item_embedding)
    # The same operator as LightGODEConv (equal up to float rounding).
    ref_u, ref_i = conv(fold.user_e0, fold.item_e0, fold.edge_index,
                        fold.t)
    torch.testing.assert_close(ref_u, fold.user_embedding)
    torch.testing.assert_close(ref_i, fold.item_embedding)


def neighbour_mean(rows, scale):
    return F.normalize(F.normalize(rows, dim=-1).mean(0), dim=0) * scale


def test_no_new_data_returns_the_trained_embeddings():
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T)
    ref_u, ref_i = conv(user, item, index)
    torch.testing.assert_close(fold.user_embedding, ref_u)
    torch.testing.assert_close(fold.item_embedding, ref_i)
    ref_u, ref_i = one_step(user, item, index, T)
    assert torch.equal(fold.user_embedding, ref_u)
    assert torch.equal(fold.item_embedding, ref_i)
    before = fold.user_embedding.clone(), fold.item_embedding.clone()
    update = fold.add()
    assert update.users.numel() == 0 and update.items.numel() == 0
    assert update.num_edges == 0 and not update.full
    assert torch.equal(fold.user_embedding, before[0])
    assert torch.equal(fold.item_embedding, before[1])
    assert torch.equal(fold.user_e0, user) and torch.equal(fold.item_e0,
                                                           item)
    # Repeating known interactions adds nothing either.
    update = fold.add(index[:, :5])
    assert update.num_edges == 0 and update.num_dropped == 5
    assert torch.equal(fold.user_embedding, before[0])


def test_isolated_trained_nodes_keep_their_row():
    user, item, index = graph()
    index = index[:, index[0] != 3]  # user 3 has no interaction
    fold = LightGODEFoldIn(user, item, index, t=T)
    assert torch.equal(fold.user_embedding[3], user[3] + T * user[3])


@pytest.mark.parametrize('seed', range(4))
def test_incremental_equals_full_recompute(seed):
    user, item, index = graph(seed=seed)
    fold = LightGODEFoldIn(user, item, index, t=T, compact_every=0.2)
    gen = torch.Generator().manual_seed(100 + seed)
    for step in range(8):
        U, I = fold.num_users, fold.num_items
        nu, ni = step % 3, (step + 1) % 2
        num = int(torch.randint(1, 12, (1, ), generator=gen))
        new = torch.stack([torch.randint(0, U + nu, (num, ), generator=gen),
                           torch.randint(0, I + ni, (num, ), generator=gen)])
        if step == 3:  # also a repeat of a known pair and within the batch
            new = torch.cat([new, index[:, :1], new[:, :1]], 1)
        before_u = fold.user_embedding.clone()
        before_i = fold.item_embedding.clone()
        update = fold.add(new, num_new_users=nu, num_new_items=ni)
        assert_equal_to_full(fold)
        # Rows outside the recomputed sets kept their old values.
        keep_u = torch.ones(U, dtype=torch.bool)
        keep_u[update.users[update.users < U]] = False
        assert torch.equal(fold.user_embedding[:U][keep_u], before_u[keep_u])
        keep_i = torch.ones(I, dtype=torch.bool)
        keep_i[update.items[update.items < I]] = False
        assert torch.equal(fold.item_embedding[:I][keep_i], before_i[keep_i])
        assert torch.equal(update.new_users, torch.arange(U, U + nu))
    assert fold.num_edges == fold.edge_index.size(1)
    assert fold.edge_index.unique(dim=1).size(1) == fold.num_edges


def test_recomputed_rows_are_the_one_hop_neighbourhood():
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T)
    u, i = 2, 7
    assert not bool(((index[0] == u) & (index[1] == i)).any())
    update = fold.add(torch.tensor([[u], [i]]))
    users = torch.unique(torch.cat([torch.tensor([u]),
                                    fold.edge_index[0][fold.edge_index[1]
                                                       == i]]))
    items = torch.unique(torch.cat([torch.tensor([i]),
                                    fold.edge_index[1][fold.edge_index[0]
                                                       == u]]))
    assert torch.equal(update.users, users)
    assert torch.equal(update.items, items)


def test_compaction_does_not_change_results():
    user, item, index = graph()
    a = LightGODEFoldIn(user, item, index, t=T, compact_every=0.0)
    b = LightGODEFoldIn(user, item, index, t=T, compact_every=1e9)
    new = torch.tensor([[0, 1, 30, 30], [19, 20, 20, 3]])
    for fold in (a, b):
        fold.add(new, num_new_users=1, num_new_items=1)
        fold.add(torch.tensor([[4, 30], [5, 6]]))
    assert torch.equal(a.user_embedding, b.user_embedding)
    assert torch.equal(a.item_embedding, b.item_embedding)
    assert torch.equal(a.edge_index, b.edge_index)


@pytest.mark.parametrize('rule', E0_RULES)
def test_fold_in_user_equals_full_propagation_with_its_edges(rule):
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T, rule=rule)
    U = user.size(0)
    history = torch.tensor([3, 11, 4])
    fold.add(torch.stack([torch.full((3, ), U), history]),
             num_new_users=1)
    rows = item[history]
    if rule == 'zero':
        e0 = torch.zeros(user.size(1))
    elif rule == 'mean':
        e0 = rows.mean(0)
    else:  # the mean norm of the trained users with an interaction
        seen = torch.bincount(index[0], minlength=U) > 0
        scale = user[seen].norm(dim=-1).mean()
        e0 = neighbour_mean(rows, scale)
    torch.testing.assert_close(fold.user_e0[U], e0)
    full_index = torch.cat([index, torch.stack([torch.full((3, ), U),
                                                history])], 1)
    ref_u, ref_i = conv(torch.cat([user, fold.user_e0[U:]]), item,
                        full_index)
    torch.testing.assert_close(fold.user_embedding, ref_u)
    torch.testing.assert_close(fold.item_embedding, ref_i)
    ref_u, ref_i = one_step(fold.user_e0, item, full_index, T)
    assert torch.equal(fold.user_embedding, ref_u)
    assert torch.equal(fold.item_embedding, ref_i)


def test_zero_rule_row_is_propagation_alone():
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T, rule='zero')
    U = user.size(0)
    history = torch.tensor([1, 2])
    fold.add(torch.stack([torch.full((2, ), U), history]), num_new_users=1)
    degree = torch.bincount(index[1], minlength=item.size(0)) + 0.0
    expected = T * sum(item[i] / (2 * (degree[i] + 1)).sqrt()
                       for i in history.tolist())
    torch.testing.assert_close(fold.user_embedding[U], expected)


def test_fold_in_item_equals_full_propagation():
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T)
    I = item.size(0)
    users = torch.tensor([0, 5, 9, 5])
    update = fold.add(torch.stack([users, torch.full((4, ), I)]),
                      num_new_items=1)
    assert update.num_edges == 3 and update.num_dropped == 1
    seen = torch.bincount(index[1], minlength=I) > 0
    e0 = neighbour_mean(user[users.unique()],
                        item[seen].norm(dim=-1).mean())
    torch.testing.assert_close(fold.item_e0[I], e0)
    assert_equal_to_full(fold)


def test_new_node_without_trained_neighbours_gets_zero_e0():
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T)
    U, I = user.size(0), item.size(0)
    fold.add(torch.tensor([[U], [I]]), num_new_users=1, num_new_items=1)
    assert torch.equal(fold.user_e0[U], torch.zeros(user.size(1)))
    assert torch.equal(fold.item_e0[I], torch.zeros(user.size(1)))
    assert torch.equal(fold.user_embedding[U], torch.zeros(user.size(1)))
    assert_equal_to_full(fold)


def test_given_e0_rows_are_used():
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T)
    U = user.size(0)
    row = torch.randn(2, user.size(1))
    fold.add(torch.tensor([[U, U + 1], [0, 1]]), num_new_users=2,
             user_e0=row)
    assert torch.equal(fold.user_e0[U:], row)
    assert_equal_to_full(fold)


@pytest.mark.parametrize('rule', E0_RULES)
def test_history_rows_equal_add(rule):
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=T, rule=rule)
    histories = [torch.tensor([4, 1, 4, 9]), torch.tensor([0])]
    rows = fold.history_rows(histories)
    U = user.size(0)
    for j, h in enumerate(histories):
        fresh = LightGODEFoldIn(user, item, index, t=T, rule=rule)
        h = h.unique()
        fresh.add(torch.stack([torch.full_like(h, U), h]), num_new_users=1)
        assert torch.equal(rows[j], fresh.user_embedding[U])


def test_accurate_solver_recomputes_everything():
    user, item, index = graph()
    fold = LightGODEFoldIn(user, item, index, t=1.0, method='exact')
    U = user.size(0)
    update = fold.add(torch.tensor([[U, 2], [3, 4]]), num_new_users=1)
    assert update.full
    ref_u, ref_i = conv(fold.user_e0, fold.item_e0, fold.edge_index, 1.0,
                        'exact')
    torch.testing.assert_close(fold.user_embedding, ref_u)
    torch.testing.assert_close(fold.item_embedding, ref_i)
    with pytest.raises(NotImplementedError, match="'euler'"):
        fold.history_rows([torch.tensor([1])])


def test_default_rule_is_a_rule():
    assert DEFAULT_E0_RULE in E0_RULES


def test_bad_inputs():
    user, item, index = graph()
    with pytest.raises(ValueError, match="'t'"):
        LightGODEFoldIn(user, item, index, t=-1.0)
    with pytest.raises(ValueError, match='unknown E0 rule'):
        LightGODEFoldIn(user, item, index, rule='median')
    with pytest.raises(ValueError, match='same width'):
        LightGODEFoldIn(user, item[:, :3], index)
    with pytest.raises(ValueError, match='NaN'):
        LightGODEFoldIn(user.clone().fill_(float('nan')), item, index)
    with pytest.raises(ValueError, match='item ids in'):
        LightGODEFoldIn(user, item, index + torch.tensor([[0], [100]]))
    with pytest.raises(ValueError, match='integer ids'):
        LightGODEFoldIn(user, item, index.float())
    with pytest.raises(ValueError, match=r'shape \[2, E\]'):
        LightGODEFoldIn(user, item, index[0])
    with pytest.raises(ValueError, match='method'):
        LightGODEFoldIn(user, item, index, method='nope')
    fold = LightGODEFoldIn(user, item, index)
    U, I = user.size(0), item.size(0)
    with pytest.raises(ValueError, match='user ids in'):
        fold.add(torch.tensor([[U], [0]]))  # user U does not exist yet
    with pytest.raises(ValueError, match='item ids in'):
        fold.add(torch.tensor([[0], [-1]]))
    with pytest.raises(ValueError, match='num_new_users'):
        fold.add(num_new_users=-1)
    with pytest.raises(ValueError, match=r"'user_e0' must have shape"):
        fold.add(num_new_users=2, user_e0=torch.zeros(1, user.size(1)))
    with pytest.raises(ValueError, match='unknown E0 rule'):
        fold.add(torch.tensor([[U], [0]]), num_new_users=1, rule='x')
    with pytest.raises(TypeError, match='torch.Tensor'):
        fold.add([[0], [1]])
    # A failed call changed nothing.
    assert fold.num_users == U and fold.num_items == I
    assert_equal_to_full(fold)
    with pytest.raises(ValueError, match="'user_e0'"):
        one_step(user[0], item, index)


@pytest.mark.slow
@pytest.mark.skipif(not (ML100K / 'u.data').exists(),
                    reason='../shared/data/ml-100k is not present')
def test_benchmark_writes_the_issue_keys(tmp_path):
    out, details = tmp_path / 'out.json', tmp_path / 'details.json'
    run = subprocess.run(
        [sys.executable, str(ROOT / 'benchmarks' / 'fold_in.py'),
         '--dataset', 'movielens100k', '--root', str(tmp_path / 'data'),
         '--raw-dir', str(ML100K), '--epochs', '1', '--queries', '20',
         '--repeats', '2', '--json', str(out), '--details', str(details)],
        capture_output=True, text=True, timeout=900,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert run.returncode == 0, run.stderr[-3000:]
    # A short summary on stdout, JSON only in the files; progress on stderr.
    assert len(run.stdout.splitlines()) <= 6 and '{' not in run.stdout
    assert 'stage 5/5' in run.stderr
    assert '[retrain] epoch 1: loss' in run.stderr
    result = json.loads(out.read_text())
    part = {'fold_in': {'recall@20', 'ndcg@20'},
            'retrain': {'recall@20', 'ndcg@20'},
            'seconds': {'fold_in', 'retrain'}}
    assert set(result) == {'new_users', 'new_items', 'latency_ms'}
    for key in ('new_users', 'new_items'):
        assert {k: set(v) for k, v in result[key].items()} == part
    assert set(result['latency_ms']) == {'p50', 'p99'}
    info = json.loads(details.read_text())
    assert info['incremental']['equal_to_full_recompute'] is True
    assert info['selected_rule'] in E0_RULES
