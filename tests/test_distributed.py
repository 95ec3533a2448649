import os
import shutil
from datetime import timedelta

import pytest
import torch
from torch_geometric.nn.models import LightGCN

from pyg_lightgode.nn.models import LightGODE
from pyg_lightgode.apps.training.trainer import seed_everything
from pyg_lightgode.apps.training.distributed import (
    LossModule,
    all_gather_rows,
    default_backend,
    get_rank,
    get_world_size,
    init_distributed,
    shard,
    wrap_ddp,
)
from pyg_lightgode.apps.training.recipes import (
    train_bpr,
    train_lightgode,
    train_on_pairs,
)

from helpers import clustered_split, run_ranks

WORLD_SIZE = 2
EPOCHS = 2  # Of the 2-process runs; the resumed run goes on to 4.
BATCH = 64  # Global batch; 240 pairs -> batches of 64, 64, 64, 48.


def run_bpr(checkpoint=None, epochs=EPOCHS, log=None):
    split = clustered_split()
    seed_everything(0)
    model = LightGCN(split.num_nodes, 16, num_layers=0)  # MF-BPR.
    result = train_bpr(model, split, epochs=epochs, batch_size=BATCH,
                       lr=0.05, patience=None, progress=False,
                       checkpoint=checkpoint, log=log)
    return model, result


def make_lightgode(sparse=False):
    split = clustered_split()
    seed_everything(0)
    return split, LightGODE(split.num_users, split.num_items, 16, t=1.0,
                            gamma=1.0, sparse=sparse)


def run_lightgode(sparse=False):
    split, model = make_lightgode(sparse)
    result = train_lightgode(model, split, epochs=EPOCHS, batch_size=BATCH,
                             lr=0.05, patience=None, progress=False)
    return model, result


def run_generator_misuse():
    r"""A loss that draws from the shared generator: must raise under DDP."""
    split = clustered_split()
    model = LightGODE(split.num_users, split.num_items, 4)

    def loss_fn(users, items, generator):
        torch.randint(2, (1, ), generator=generator)
        return model.loss(users, items)

    try:
        train_on_pairs(model, split, loss_fn,
                       lambda: model.user_item_embeddings(split.train_index),
                       1, BATCH, 0.01, patience=None, progress=False)
    except RuntimeError as error:
        return str(error)
    return ''


def gather_rows_grad(rank):
    r"""Rows 0..2 on rank 0, rows 3..4 on rank 1 of a [5, 2] tensor; every
    rank computes f = sum(w * gathered^2) and scales by its share, as the
    recipes do; returns the gathered rows and this rank's gradient."""
    full = torch.arange(10.).view(5, 2)
    x = shard([full], rank, WORLD_SIZE)[0].clone().requires_grad_()
    gathered = all_gather_rows(x)
    weight = torch.arange(5.).view(5, 1) + 1
    (gathered.pow(2) * weight).sum().mul(x.size(0) * WORLD_SIZE / 5).backward()
    return gathered.detach(), x.grad


def snapshot(model, result):
    return {'params': [p.detach().clone() for p in model.parameters()],
            'history': result.history, 'best_epoch': result.best_epoch}


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    init_distributed(device='cpu', init_method=f'file://{init_file}',
                     rank=rank, world_size=WORLD_SIZE,
                     timeout=timedelta(seconds=60))  # Fail, never hang.
    try:
        out = {'world_size': get_world_size(), 'rank': get_rank()}
        out['bpr'] = snapshot(*run_bpr(os.path.join(out_dir, 'bpr.pt')))
        out['lightgode'] = snapshot(*run_lightgode())
        out['lightgode_sparse'] = snapshot(*run_lightgode(sparse=True))
        out['misuse'] = run_generator_misuse()
        out['gather'] = gather_rows_grad(rank)
        torch.save(out, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope='module')
def two_process_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('ddp')
    ranks = run_ranks(_worker, out_dir, WORLD_SIZE)
    return out_dir, ranks


def max_abs_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a, b))


def test_spawned_ranks_see_the_group(two_process_run):
    _, ranks = two_process_run
    assert [(r['rank'], r['world_size']) for r in ranks] == [(0, 2), (1, 2)]


@pytest.mark.parametrize('job', ['bpr', 'lightgode', 'lightgode_sparse'])
def test_parameters_identical_across_ranks_and_loss_falls(two_process_run,
                                                          job):
    _, (rank0, rank1) = two_process_run
    for p, q in zip(rank0[job]['params'], rank1[job]['params']):
        assert torch.equal(p, q)
    # The epoch loss is all-reduced and the validation score broadcast:
    # every rank records the same history.
    assert [(h['epoch'], h['loss'], h['val']) for h in rank0[job]['history']
            ] == [(h['epoch'], h['loss'], h['val'])
                  for h in rank1[job]['history']]
    losses = [h['loss'] for h in rank0[job]['history']]
    assert len(losses) == EPOCHS and losses[-1] < losses[0]


def test_bpr_matches_a_single_process_run(two_process_run):
    # All terms of BPR are means over pairs and the negatives are drawn for
    # the global batch, so 2 processes take the single-process steps; only
    # float summation order differs.
    _, (rank0, _) = two_process_run
    single = snapshot(*run_bpr())
    assert max_abs_diff(single['params'], rank0['bpr']['params']) < 1e-5
    for h1, h2 in zip(single['history'], rank0['bpr']['history']):
        assert h1['loss'] == pytest.approx(h2['loss'], rel=1e-5)
        assert h1['val'] == pytest.approx(h2['val'], abs=1e-6)


def test_lightgode_matches_a_single_process_run(two_process_run):
    # Alignment is a mean over pairs (each rank takes its share); uniformity
    # is over all pairs of the global batch, gathered across ranks. Both are
    # exact, so only float summation order differs (Adam's normalisation can
    # amplify that on near-zero gradients, hence 1e-4 rather than 1e-6).
    _, (rank0, _) = two_process_run
    for sparse, job in ((False, 'lightgode'), (True, 'lightgode_sparse')):
        single = snapshot(*run_lightgode(sparse))
        moved = max_abs_diff(single['params'],
                             make_lightgode()[1].parameters())
        assert moved > 0.1
        assert max_abs_diff(single['params'], rank0[job]['params']) < 1e-4
        for h1, h2 in zip(single['history'], rank0[job]['history']):
            assert h1['loss'] == pytest.approx(h2['loss'], rel=1e-5)


def test_resume_with_a_different_number_of_processes(two_process_run,
                                                     tmp_path):
    out_dir, (rank0, _) = two_process_run
    checkpoint = str(tmp_path / 'bpr.pt')
    shutil.copy(out_dir / 'bpr.pt', checkpoint)  # Written by rank 0 only.
    logged = []
    model, result = run_bpr(checkpoint, epochs=4, log=logged.append)
    assert [r['epoch'] for r in logged] == [3, 4]  # Continues at epoch 3.
    assert result.epochs_run == 4
    assert result.history[:2] == rank0['bpr']['history']
    # Same permutations and negatives as an uninterrupted 1-process run.
    reference, full = run_bpr(epochs=4)
    assert max_abs_diff(list(model.parameters()),
                        list(reference.parameters())) < 1e-5
    assert [h['loss'] for h in result.history] == pytest.approx(
        [h['loss'] for h in full.history], rel=1e-5)


def test_loss_fn_drawing_from_the_shared_generator_is_refused(
        two_process_run):
    _, ranks = two_process_run
    assert all('sample_fn' in r['misuse'] for r in ranks)
    assert run_generator_misuse() == ''  # Fine in a single process.


def test_all_gather_rows_is_exact(two_process_run):
    _, ranks = two_process_run
    full = torch.arange(10.).view(5, 2)
    expected = 2 * full * (torch.arange(5.).view(5, 1) + 1)  # df/dx.
    grads = []
    for r in ranks:
        gathered, grad = r['gather']
        assert torch.equal(gathered, full)
        grads.append(grad)
    # Each rank's rows get the sum of all ranks' scaled gradients, W df/dx,
    # which DDP's average over the W ranks turns into df/dx.
    assert torch.allclose(torch.cat(grads) / WORLD_SIZE, expected)
    x = full.clone()
    assert all_gather_rows(x) is x  # Identity without a process group.


def test_shard_splits_global_batches():
    batch = torch.arange(7), torch.arange(7) * 10
    parts = [shard(batch, r, 3) for r in range(3)]
    assert [len(p[0]) for p in parts] == [3, 2, 2]
    assert torch.equal(torch.cat([p[0] for p in parts]), batch[0])
    assert all(torch.equal(p[1], p[0] * 10) for p in parts)
    assert shard(batch, 0, 1) == batch
    with pytest.raises(ValueError, match='rank'):
        shard(batch, 3, 3)
    with pytest.raises(ValueError, match='leading dimension'):
        shard((torch.arange(3), torch.arange(4)), 0, 2)


def test_single_process_helpers():
    assert get_rank() == 0 and get_world_size() == 1
    assert default_backend('cpu') == 'gloo'
    assert default_backend('cuda') == 'nccl'
    model = LightGODE(5, 6, 4)
    users, items = torch.tensor([0, 4]), torch.tensor([5, 1])
    module = wrap_ddp(model, model.loss)  # No group: the plain wrapper.
    assert isinstance(module, LossModule)
    assert torch.equal(module(users, items), model.loss(users, items))
    assert {id(p) for p in module.parameters()} == {
        id(p) for p in model.parameters()}
    assert init_distributed(device='cpu', world_size=1).type == 'cpu'
    assert get_world_size() == 1  # Nothing initialised for 1 process.


@pytest.mark.parametrize('kwargs, match', [
    (dict(device='cpu', backend='mpi', world_size=1), 'backend'),
    (dict(device='cpu', backend='nccl', world_size=1), 'CUDA'),
    (dict(device='meta', world_size=1), 'device'),
    (dict(device='cpu', rank=2, world_size=2), 'rank'),
])
def test_init_distributed_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        init_distributed(**kwargs)


def test_bad_world_size_from_environment(monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', 'two')
    with pytest.raises(ValueError, match='WORLD_SIZE'):
        init_distributed(device='cpu')
