r"""Every stage past one process (apps.distributed) with 2 gloo processes
against the single-process result on a small random graph."""
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from helpers import run_ranks
from pyg_lightgode.apps.distributed import (
    DistributedBSPM,
    DistributedChebyCF,
    DistributedGFCF,
    NodeSplit,
    ShardedEmbedding,
    bipartite_split,
    edge_balanced_bounds,
    local_interactions,
    partition_bipartite,
    partition_neighborhood,
    pinsage_inference,
    score_users,
    sharded_recommendation_loss,
    sharded_topk,
    user_bounds,
)
from pyg_lightgode.apps.training.distributed import (
    init_distributed,
    shard,
)
from pyg_lightgode.data.bipartite import bipartite_to_adj_t
from pyg_lightgode.metrics.retrieval import exact_topk
from pyg_lightgode.nn.conv import LightGODEConv
from pyg_lightgode.nn.models import BSPM, GFCF, ChebyCF, LightGODE, PinSage

WORLD_SIZE = 2
U, I, F = 60, 45, 8
SOLVERS = {
    'euler': dict(method='euler'),  # The official single step.
    'euler_steps': dict(method='euler', step_size=0.25),
    'rk4': dict(method='rk4', step_size=0.5),
    'exact': dict(method='exact'),
    'dopri5': dict(method='dopri5'),
    'times': dict(method='euler', step_size=0.5, t=[0.5, 1.0, 2.0]),
    'chunked': dict(method='rk4', step_size=0.5, chunk_size=16),
}
FILTERS = {'gfcf': (GFCF, DistributedGFCF, dict(k=8)),
           'bspm': (BSPM, DistributedBSPM, dict(k=8)),
           'chebycf': (ChebyCF, DistributedChebyCF, dict(k=8, order=4))}


def graph():
    g = torch.Generator().manual_seed(0)
    index = torch.stack([torch.randint(U, (500, ), generator=g),
                         torch.randint(I, (500, ), generator=g)])
    index = torch.unique(index, dim=1)
    x = torch.randn(U + I, F, generator=g)
    # A neighbourhood graph with repeated edges and importance weights.
    nbr = torch.randint(U + I, (2, 400), generator=g)
    nbr = torch.cat([nbr, nbr[:, :20]], dim=1)
    weight = torch.rand(nbr.size(1), generator=g)
    return index, x, nbr, weight


def pinsage_model():
    torch.manual_seed(0)
    return PinSage(num_nodes=U + I, hidden_channels=16, out_channels=8,
                   num_layers=2).eval()


def training_batch():
    index, _, _, _ = graph()
    return index[:, torch.randperm(index.size(1),
                                   generator=torch.Generator().manual_seed(1)
                                   )[:64]]


def lightgode_model():
    torch.manual_seed(0)
    return LightGODE(U, I, F, gamma=1.0)


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    init_distributed(device='cpu', init_method=f'file://{init_file}',
                     rank=rank, world_size=WORLD_SIZE,
                     timeout=timedelta(seconds=60))
    try:
        index, x, nbr, weight = graph()
        out = {}
        part = partition_bipartite(index, U, I)
        out['nodes'] = part.nodes
        x_local = part.split.take(x, rank)
        for name, cfg in SOLVERS.items():
            cfg = dict(cfg)
            t = cfg.pop('t', 2.0)
            conv = LightGODEConv(t=t, normalize=False, **cfg)
            out[name] = conv(x_local, part.adj, partition=part)
        out['halo'] = dict(part.stats)

        bounds = user_bounds(index, U, WORLD_SIZE)
        out['user_bounds'] = bounds
        local = local_interactions(index, bounds, rank)
        for name, (_, cls, kwargs) in FILTERS.items():
            model = cls(bounds[rank + 1] - bounds[rank], I, **kwargs)
            model.fit(local)
            out[name] = torch.cat([s for _, s in score_users(model, 7)])
            out[name + '_basis'] = model.basis

        # Sharded top-k over the propagated embeddings.
        emb = out['euler']
        n_users = int((part.nodes < U).sum())
        user_ids, item_ids = part.nodes[:n_users], part.nodes[n_users:] - U
        out['topk'] = sharded_topk(emb[:n_users], user_ids, emb[n_users:],
                                   item_ids, 10, U, exclude_links=index,
                                   batch_size=16)
        out['user_ids'] = user_ids

        split = NodeSplit.contiguous(edge_balanced_bounds(
            torch.bincount(nbr[1], minlength=U + I), WORLD_SIZE))
        nbr_part = partition_neighborhood(nbr, weight, split)
        out['pinsage'] = pinsage_inference(pinsage_model(), nbr_part)
        out['pinsage_nodes'] = nbr_part.nodes

        model = lightgode_model()
        user_split = NodeSplit.contiguous(bounds)
        item_split = NodeSplit.contiguous(edge_balanced_bounds(
            torch.bincount(index[1], minlength=I), WORLD_SIZE))
        users = ShardedEmbedding(user_split, user_split.take(
            model.user_embedding.weight, rank))
        items = ShardedEmbedding(item_split, item_split.take(
            model.item_embedding.weight, rank))
        optimizer = torch.optim.Adam([users.weight, items.weight], lr=0.05)
        batch = training_batch()
        for _ in range(3):
            u, i = shard([batch[0], batch[1]], rank, WORLD_SIZE)
            optimizer.zero_grad()
            sharded_recommendation_loss(users, items, u, i, batch.size(1),
                                        1.0).backward()
            optimizer.step()
        out['tables'] = (users.weight.detach(), user_split.nodes(rank),
                         items.weight.detach(), item_split.nodes(rank))
        torch.save(out, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    return run_ranks(_worker, tmp_path_factory.mktemp('dist'), WORLD_SIZE)


def gathered(ranks, key, nodes='nodes', dim=0):
    order = torch.cat([r[nodes] for r in ranks])
    value = torch.cat([r[key] for r in ranks], dim=dim)
    out = torch.empty_like(value)
    out.index_copy_(dim, order, value)
    return out


@pytest.mark.slow
def test_split_covers_every_node_once(ranks):
    nodes = torch.cat([r['nodes'] for r in ranks])
    assert torch.equal(nodes.sort().values, torch.arange(U + I))
    # Balanced by edges: both ranks hold users and items.
    for r in ranks:
        assert (r['nodes'] < U).any() and (r['nodes'] >= U).any()
    assert ranks[0]['halo']['exchanges'] > 0


@pytest.mark.slow
@pytest.mark.parametrize('name', list(SOLVERS))
def test_propagation_equals_single_process(ranks, name):
    index, x, _, _ = graph()
    cfg = dict(SOLVERS[name])
    t = cfg.pop('t', 2.0)
    expected = LightGODEConv(t=t, **cfg)(x, bipartite_to_adj_t(index, U, I))
    dim = 1 if expected.dim() == 3 else 0
    out = gathered(ranks, name, dim=dim)
    # dopri5 picks its steps from an error norm that is summed over the
    # ranks in a different order: equal to its tolerance (rtol 1e-5).
    tol = 1e-5 * float(expected.abs().max()) if name == 'dopri5' else 1e-5
    assert float((out - expected).abs().max()) < tol
    moved = float((expected - x).abs().max())
    assert moved > 0.1  # The graph mattered.


@pytest.mark.slow
@pytest.mark.parametrize('name', list(FILTERS))
def test_filters_equal_single_process(ranks, name):
    index, _, _, _ = graph()
    cls, _, kwargs = FILTERS[name]
    model = cls(U, I, **kwargs).fit(index)
    scores = torch.cat([r[name] for r in ranks])
    assert float((scores - model.score(torch.arange(U))).abs().max()) < 1e-5
    # The projector V V^T is basis-invariant (V has sign/rotation freedom).
    for r in ranks:
        basis = r[name + '_basis']
        projector = basis @ basis.t()
        assert float((projector - model.basis @ model.basis.t()).abs().max(
        )) < 1e-5


@pytest.mark.slow
def test_sharded_topk_equals_single_process(ranks):
    index, _, _, _ = graph()
    emb = gathered(ranks, 'euler')
    expected, _ = exact_topk(emb[:U], emb[U:], 10,
                             (index[0], index[1]))
    got = torch.empty_like(expected)
    for r in ranks:
        got[r['user_ids']] = r['topk'][0]
    same = [set(a.tolist()) == set(b.tolist())
            for a, b in zip(got, expected)]
    assert sum(same) / U >= 0.999
    train = set(zip(index[0].tolist(), index[1].tolist()))
    assert not any((u, i) in train for u in range(U)
                   for i in got[u].tolist())


@pytest.mark.slow
def test_pinsage_inference_equals_single_process(ranks):
    _, _, nbr, weight = graph()
    expected = pinsage_model().inference(nbr, weight)
    out = gathered(ranks, 'pinsage', nodes='pinsage_nodes')
    assert float((out - expected).abs().max()) < 1e-5


@pytest.mark.slow
def test_sharded_tables_train_like_replicated_tables(ranks):
    model = lightgode_model()
    initial = model.user_embedding.weight.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    batch = training_batch()
    for _ in range(3):
        optimizer.zero_grad()
        model.loss(batch[0], batch[1]).backward()
        optimizer.step()
    users = torch.empty(U, F)
    items = torch.empty(I, F)
    for r in ranks:
        user_w, user_ids, item_w, item_ids = r['tables']
        users[user_ids], items[item_ids] = user_w, item_w
    assert float((users - model.user_embedding.weight.detach()).abs().max(
    )) < 1e-5
    assert float((items - model.item_embedding.weight.detach()).abs().max(
    )) < 1e-5
    assert float((users - initial).abs().max()) > 0.01


# Single-process checks (fast, not slow): the core's row-block arguments
# and the split.
def test_edge_balanced_bounds_balance_cost():
    degree = torch.tensor([10, 0, 0, 0, 10, 0, 0, 0])
    assert edge_balanced_bounds(degree, 2) == [0, 4, 8]
    assert edge_balanced_bounds(degree, 1) == [0, 8]
    bounds = edge_balanced_bounds(torch.ones(10, dtype=torch.long), 3)
    assert bounds[0] == 0 and bounds[-1] == 10 and bounds == sorted(bounds)


def test_node_split_maps_ids_to_owner_and_row():
    index, _, _, _ = graph()
    split = bipartite_split(index, U, I, 2)
    nodes = [split.nodes(r) for r in range(2)]
    assert torch.equal(torch.cat(nodes).sort().values, torch.arange(U + I))
    for r in range(2):
        assert torch.equal(split.owner(nodes[r]),
                           torch.full_like(nodes[r], r))
        assert torch.equal(split.local(nodes[r]),
                           torch.arange(nodes[r].numel()))


class _OneBlock:
    r"""A partition of one block: nothing to fetch."""
    def gather(self, x):
        return x

    def all_reduce(self, value):
        return value


@pytest.mark.parametrize('method', ['euler', 'rk4', 'exact', 'dopri5'])
def test_conv_with_a_one_block_partition_equals_plain(method):
    index, x, _, _ = graph()
    adj = bipartite_to_adj_t(index, U, I)
    expected = LightGODEConv(t=1.0, method=method)(x, adj)
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    norm, _ = gcn_norm(adj, None, U + I, add_self_loops=False)
    out = LightGODEConv(t=1.0, method=method, normalize=False)(
        x, norm, partition=_OneBlock())
    assert torch.allclose(out, expected, atol=1e-5)


def test_conv_rejects_bad_row_blocks():
    x = torch.randn(3, 2)
    block = torch.eye(3, 5).to_sparse_csr()
    with pytest.raises(ValueError, match='normalize=False'):
        LightGODEConv()(x, block, partition=_OneBlock())
    with pytest.raises(TypeError, match='sparse'):
        LightGODEConv(normalize=False)(x, torch.zeros(2, 4, dtype=torch.long),
                                       partition=_OneBlock())
    with pytest.raises(ValueError, match='shape'):
        LightGODEConv(normalize=False)(x, torch.eye(4, 5).to_sparse_csr(),
                                       partition=_OneBlock())


def test_distributed_bspm_refuses_per_rank_solvers():
    index, _, _, _ = graph()
    model = DistributedBSPM(U, I, k=8, sharpen_method='exact')
    with pytest.raises(ValueError, match='sharpen_method'):
        model.fit(index)


BENCH = Path(__file__).resolve().parents[1] / 'benchmarks' / \
    'bench_distributed.py'


def test_bench_distributed_help_is_fast():
    proc = subprocess.run([sys.executable, str(BENCH), '--help'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and '--world-size' in proc.stdout
    assert 'synthetic:SCALE' in proc.stdout


@pytest.mark.slow
def test_bench_distributed_end_to_end(tmp_path):
    out = tmp_path / 'out.json'
    proc = subprocess.run([
        sys.executable, str(BENCH), '--world-size', '2', '--dataset',
        'synthetic:0.005', '--filter-k', '8', '--filter-users', '16',
        '--train-batch', '64', '--train-steps', '2', '--topk-batch', '32',
        '--workdir', str(tmp_path / 'work'), '--out', str(out)
    ], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report['world_size'] == 2
    stages = report['stages']
    assert set(stages) == {'propagation', 'filter', 'pinsage_inference',
                           'topk', 'training'}
    for name, entry in stages.items():
        assert len(entry['peak_mib_per_rank']) == 2
        assert entry['single_process_peak_mib'] > 0 and entry['seconds'] > 0
        if name == 'topk':
            assert entry['same_topk_fraction'] >= 0.999
        else:
            assert entry['max_abs_diff'] < 1e-5, name
    assert stages['propagation']['comm_bytes_per_rank'][0] > 0
    assert stages['training']['max_abs_change'] > 0


def test_node_split_with_an_empty_range():
    # Rank 1 owns no users, so its (empty) user range starts where rank
    # 0's items start: the items must stay rank 0's.
    split = NodeSplit.from_segments([(0, 5, 0), (5, 7, 0), (5, 5, 1),
                                     (7, 9, 1)], 9, 2)
    ids = torch.arange(9)
    assert split.owner(ids).tolist() == [0] * 7 + [1] * 2
    assert split.local(ids).tolist() == list(range(7)) + [0, 1]
    assert split.nodes(1).tolist() == [7, 8]
    assert split.num_local(0) == 7
