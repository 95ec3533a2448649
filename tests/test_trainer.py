import os

import pytest
import torch

from pyg_lightgode.apps.training.trainer import (
    InteractionBatches,
    Trainer,
    seed_everything,
)
from pyg_lightgode.data.io import atomic_save


def _toy_problem(seed=0):
    seed_everything(seed)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(seed)

    def batches(epoch):
        perm = torch.randperm(64, generator=gen)
        return perm.split(16)

    def step(idx):
        opt.zero_grad()
        loss = (model(x[idx]) - y[idx]).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.detach()

    def validate():
        with torch.no_grad():
            return -float((model(x) - y).pow(2).mean())

    return model, opt, gen, batches, step, validate


def test_trainer_learns_and_keeps_best():
    model, opt, gen, batches, step, validate = _toy_problem()
    result = Trainer(model, [opt], max_epochs=20, patience=None,
                     generator=gen, progress=False).fit(batches, step,
                                                        validate)
    assert result.epochs_run == 20 and len(result.history) == 20
    assert result.history[-1]['loss'] < result.history[0]['loss'] / 10
    assert validate() == pytest.approx(result.best_score)


def test_early_stopping_restores_best_weights():
    model = torch.nn.Linear(1, 1)
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.0, 0.0])
    states = {}

    def step(_):
        with torch.no_grad():
            model.weight.add_(1.0)
        return torch.tensor(0.0)

    def validate():
        states[len(states) + 1] = model.weight.item()
        return next(scores)

    result = Trainer(model, [], max_epochs=10, patience=3,
                     progress=False).fit(lambda e: [None], step, validate)
    # Best at epoch 2; epochs 3, 4, 5 bring no improvement -> stop after 5.
    assert result.best_epoch == 2 and result.epochs_run == 5
    assert model.weight.item() == states[2]


def test_checkpoint_resume_repeats_an_uninterrupted_run(tmp_path):
    model, opt, gen, batches, step, validate = _toy_problem()
    full = Trainer(model, [opt], max_epochs=6, patience=None, generator=gen,
                   progress=False).fit(batches, step, validate)
    reference = [p.detach().clone() for p in model.parameters()]

    path = str(tmp_path / 'ckpt.pt')
    model, opt, gen, batches, step, validate = _toy_problem()
    Trainer(model, [opt], max_epochs=3, patience=None, generator=gen,
            checkpoint=path, progress=False).fit(batches, step, validate)
    assert os.path.exists(path)
    # A fresh process: new objects, different RNG state, resumed from disk.
    model, opt, gen, batches, step, validate = _toy_problem(seed=123)
    resumed = Trainer(model, [opt], max_epochs=6, patience=None,
                      generator=gen, checkpoint=path,
                      progress=False).fit(batches, step, validate)
    assert resumed.epochs_run == 6 and len(resumed.history) == 6
    for p, q in zip(model.parameters(), reference):
        assert torch.allclose(p, q, atol=1e-6)
    assert resumed.best_score == pytest.approx(full.best_score, rel=1e-5)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / 'out.pt'
    atomic_save({'a': 1}, str(path))
    assert torch.load(path)['a'] == 1

    def boom(obj, f):
        with open(f, 'wb') as fh:
            fh.write(b'partial')
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({'a': 2}, str(path))
    assert torch.load(path)['a'] == 1  # The old file is intact.
    assert os.listdir(tmp_path) == ['out.pt']


def test_interaction_batches_cover_every_pair_once():
    index = torch.stack([torch.arange(10), torch.arange(10) % 3])
    batches = InteractionBatches(index, 4, torch.Generator().manual_seed(0))
    assert len(batches) == 3
    seen = torch.cat([u for u, _ in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for u, i in batches:
        assert torch.equal(i, u % 3)  # Pairs stay together.
    first = [u.tolist() for u, _ in batches]
    assert first != [u.tolist() for u, _ in batches]  # Reshuffled.


@pytest.mark.parametrize('kwargs, match', [
    (dict(max_epochs=-1), 'max_epochs'),
    (dict(max_epochs=1, patience=0), 'patience'),
])
def test_trainer_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(torch.nn.Linear(1, 1), [], **kwargs)


def test_interaction_batches_bad_arguments():
    with pytest.raises(ValueError, match='batch_size'):
        InteractionBatches(torch.zeros(2, 3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match='index'):
        InteractionBatches(torch.zeros(3, 3, dtype=torch.long), 2)
