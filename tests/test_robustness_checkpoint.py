r"""Checkpoints are read with ``weights_only=True``: resuming never runs code
stored in the file, and every damaged or mismatching file raises ONE error
type, :class:`CheckpointError`, whose message names the file and what
differs."""
import os
import pickle
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from pyg_lightgode.apps.training.trainer import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    Trainer,
    plain_state,
    read_checkpoint,
    seed_everything,
)
from pyg_lightgode.data.io import atomic_save
from pyg_lightgode.nn.models import LightGODE


class _CreatesFile:
    r"""A pickle payload: unpickling it (without ``weights_only``) creates
    :obj:`marker`, i.e. runs code."""
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").close()', ))


def _lightgode(num_users=10, num_items=6, dim=8):
    torch.manual_seed(0)
    return LightGODE(num_users, num_items, embedding_dim=dim)


def _fit(model, path, epochs, optimizers=None, schedulers=None, gen=None):
    r"""A few full-batch epochs of :meth:`LightGODE.loss`."""
    users = torch.arange(model.num_users) % model.num_users
    items = torch.arange(model.num_users) % model.num_items
    if optimizers is None:
        optimizers = [torch.optim.Adam(model.parameters(), lr=0.01)]

    def step(_):
        for opt in optimizers:
            opt.zero_grad()
        loss = model.loss(users, items)
        loss.backward()
        for opt in optimizers:
            opt.step()
        return loss.detach()

    trainer = Trainer(model, optimizers, max_epochs=epochs, patience=None,
                      checkpoint=str(path), generator=gen,
                      schedulers=schedulers, progress=False)
    return trainer.fit(lambda epoch: [None], step)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / 'ck.pt'
    _fit(_lightgode(), path, epochs=2)
    return path


def _resume(path, model=None, **kwargs):
    return _fit(_lightgode() if model is None else model, path, epochs=3,
                **kwargs)


def _rewrite(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    atomic_save(state, str(path))


def test_checkpoint_is_versioned_and_records_the_model(checkpoint):
    state = read_checkpoint(str(checkpoint))
    assert state['format'] == CHECKPOINT_FORMAT and state['version'] == 1
    assert state['config']['class'] == 'LightGODE'
    assert state['config']['parameters']['user_embedding.weight'] == [10, 8]
    assert state['epoch'] == 2
    # The RNG states are stored as tensors and plain values.
    assert isinstance(state['rng']['python'], tuple)
    assert isinstance(state['rng']['numpy'][1], torch.Tensor)


def test_round_trip_resumes_and_restores_every_rng(tmp_path):
    seed_everything(5)
    path = tmp_path / 'ck.pt'
    gen = torch.Generator().manual_seed(3)
    _fit(_lightgode(), path, epochs=2, gen=gen)
    expected = (random.random(), float(np.random.rand()),
                float(torch.rand(())), float(torch.rand((), generator=gen)))
    seed_everything(99)  # A "fresh process" with other RNG states.
    gen = torch.Generator().manual_seed(7)
    model = _lightgode()
    trainer = Trainer(model, [torch.optim.Adam(model.parameters())],
                      max_epochs=2, checkpoint=str(path), generator=gen,
                      progress=False)
    result = trainer.fit(lambda epoch: [None], lambda _: torch.tensor(0.0))
    assert result.epochs_run == 2  # Nothing left to run.
    assert (random.random(), float(np.random.rand()), float(torch.rand(())),
            float(torch.rand((), generator=gen))) == expected
    resumed = _resume(path)
    assert resumed.epochs_run == 3 and len(resumed.history) == 3


@pytest.mark.parametrize('container', ['torch.save', 'raw pickle',
                                       'inside a valid checkpoint'])
def test_malicious_checkpoint_is_refused_unrun(tmp_path, checkpoint,
                                               container):
    marker = tmp_path / 'pwned'
    payload = _CreatesFile(marker)
    path = tmp_path / 'evil.pt'
    if container == 'torch.save':
        torch.save({'model': payload}, path)
    elif container == 'raw pickle':
        path.write_bytes(pickle.dumps(payload))
    else:
        state = torch.load(checkpoint, weights_only=True)
        state['history'].append({'epoch': payload})
        torch.save(state, path)
    assert not marker.exists()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch warns on pickle protocol 4
        with pytest.raises(CheckpointError, match=str(path)) as info:
            _resume(path)
    assert 'weights-only' in str(info.value)
    assert not marker.exists()


def test_malicious_payload_really_runs_when_loaded_unsafely(tmp_path):
    # Guards the test above: the payload does create the marker when the
    # file is loaded the old way (in a subprocess, to keep this one clean).
    marker, path = tmp_path / 'pwned', tmp_path / 'evil.pt'
    torch.save({'model': _CreatesFile(marker)}, path)
    code = ('import torch, sys; '
            'torch.load(sys.argv[1], weights_only=False)')
    subprocess.run([sys.executable, '-c', code, str(path)], check=True,
                   timeout=120, capture_output=True)
    assert marker.exists()


@pytest.mark.parametrize('damage, match', [
    (lambda b: b[:len(b) // 2], 'truncated or corrupted'),
    (lambda b: b[:10], 'truncated or corrupted'),
    (lambda b: b'', 'is empty'),
    (lambda b: os.urandom(len(b)), 'truncated or corrupted'),
    (lambda b: b'\x80\x02}q\x00(X\x01', 'truncated or corrupted'),
])
def test_damaged_files(checkpoint, damage, match):
    checkpoint.write_bytes(damage(checkpoint.read_bytes()))
    with pytest.raises(CheckpointError, match=match) as info:
        _resume(checkpoint)
    assert str(checkpoint) in str(info.value)


def test_not_a_dict_and_no_format(tmp_path):
    path = tmp_path / 'x.pt'
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match='not a checkpoint dict'):
        _resume(path)
    # A checkpoint of the pre-versioned layout.
    torch.save({'epoch': 1, 'model': {}}, path)
    with pytest.raises(CheckpointError, match="no 'format'/'version'"):
        _resume(path)


def test_other_model_size(checkpoint):
    with pytest.raises(CheckpointError) as info:
        _resume(checkpoint, model=_lightgode(num_users=12))
    message = str(info.value)
    assert str(checkpoint) in message
    assert ('parameter user_embedding.weight has shape [10, 8] in the '
            'checkpoint, the model has [12, 8]') in message
    with pytest.raises(CheckpointError, match=r'\[6, 8\].*\[6, 4\]'):
        _resume(checkpoint, model=_lightgode(dim=4))


def test_other_model_class(checkpoint):
    model = torch.nn.Linear(8, 8)
    trainer = Trainer(model, [torch.optim.SGD(model.parameters(), lr=0.1)],
                      max_epochs=3, checkpoint=str(checkpoint),
                      progress=False)
    with pytest.raises(CheckpointError,
                       match='written for a LightGODE model, the model is '
                       'a Linear'):
        trainer.fit(lambda epoch: [None], lambda _: torch.tensor(0.0))


def test_weights_that_disagree_with_the_recorded_config(checkpoint):
    _rewrite(checkpoint, lambda s: s['model'].update(
        {'user_embedding.weight': torch.zeros(3, 8)}))
    with pytest.raises(CheckpointError,
                       match=r"user_embedding.weight has shape \[3, 8\] in "
                       r"the checkpoint's weights"):
        _resume(checkpoint)


def test_missing_and_extra_parameters(checkpoint):
    _rewrite(checkpoint, lambda s: s['config']['parameters'].pop(
        'item_embedding.weight'))
    with pytest.raises(CheckpointError,
                       match='item_embedding.weight of the model is missing'):
        _resume(checkpoint)
    _rewrite(checkpoint, lambda s: s['config']['parameters'].update(
        {'item_embedding.weight': [6, 8], 'extra.bias': [3]}))
    with pytest.raises(CheckpointError, match='extra.bias, which the model'):
        _resume(checkpoint)


@pytest.mark.parametrize('version', [0, 2, '1', None])
def test_wrong_version(checkpoint, version):
    _rewrite(checkpoint, lambda s: s.update(version=version))
    with pytest.raises(CheckpointError,
                       match=f"'{checkpoint}' has format version") as info:
        _resume(checkpoint)
    assert 'reads version 1' in str(info.value)


def test_wrong_format(checkpoint):
    _rewrite(checkpoint, lambda s: s.update(format='something.else'))
    with pytest.raises(CheckpointError, match="format 'something.else'"):
        _resume(checkpoint)


@pytest.mark.parametrize('key', ['model', 'optimizers', 'rng', 'config',
                                 'epoch', 'history'])
def test_missing_keys(checkpoint, key):
    _rewrite(checkpoint, lambda s: s.pop(key))
    with pytest.raises(CheckpointError, match=f"lacks the entries "
                       rf"\['{key}'\]") as info:
        _resume(checkpoint)
    assert str(checkpoint) in str(info.value)


@pytest.mark.parametrize('key, value, match', [
    ('epoch', -1, "'epoch' must be an int >= 0"),
    ('epoch', '3', "'epoch' must be an int >= 0"),
    ('model', [1, 2], "'model' must be a dict of tensors"),
    ('history', {}, "'history' must be a list of dicts"),
    ('rng', {'torch': None}, "'rng' must be a dict"),
])
def test_entries_of_the_wrong_type(checkpoint, key, value, match):
    _rewrite(checkpoint, lambda s: s.update({key: value}))
    with pytest.raises(CheckpointError, match=match):
        _resume(checkpoint)


def test_other_number_of_optimizers_or_schedulers(checkpoint):
    model = _lightgode()
    opts = [torch.optim.Adam([model.user_embedding.weight]),
            torch.optim.Adam([model.item_embedding.weight])]
    with pytest.raises(CheckpointError, match='holds 1 optimizers, the '
                       'training has 2'):
        _fit(model, checkpoint, epochs=3, optimizers=opts)
    opt = torch.optim.Adam(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    with pytest.raises(CheckpointError, match='holds 0 schedulers'):
        _fit(model, checkpoint, epochs=3, optimizers=[opt],
             schedulers=[sched])
    groups = [torch.optim.Adam([{'params': [model.user_embedding.weight]},
                                {'params': [model.item_embedding.weight]}])]
    with pytest.raises(CheckpointError, match=r'groups of sizes \[2\], the '
                       r'optimizer has \[1, 1\]'):
        _fit(model, checkpoint, epochs=3, optimizers=groups)


def test_a_failed_resume_leaves_the_model_untouched(checkpoint):
    model = _lightgode(num_users=12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        _resume(checkpoint, model=model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_missing_file_with_resume_starts_afresh(tmp_path):
    path = tmp_path / 'new.pt'
    assert _fit(_lightgode(), path, epochs=1).epochs_run == 1
    assert path.exists()
    with pytest.raises(CheckpointError, match='does not exist'):
        read_checkpoint(str(tmp_path / 'absent.pt'))


def test_resume_false_ignores_a_damaged_file(checkpoint):
    checkpoint.write_bytes(b'garbage')
    model = _lightgode()
    trainer = Trainer(model, [], max_epochs=1, checkpoint=str(checkpoint),
                      resume=False, progress=False)
    trainer.fit(lambda epoch: [None], lambda _: torch.tensor(0.0))
    assert read_checkpoint(str(checkpoint))['epoch'] == 1  # Overwritten.


def test_plain_state_refuses_objects_it_cannot_save():
    out = plain_state({'a': np.float32(1.5), 'b': np.arange(3),
                       'c': (1, [None, 'x'])})
    assert out['a'] == 1.5 and type(out['a']) is float
    assert out['c'] == (1, [None, 'x'])
    assert torch.equal(out['b'], torch.arange(3))
    with pytest.raises(TypeError, match=r"'state\['fn'\]' is a"):
        plain_state({'fn': lambda: None})
    with pytest.raises(TypeError, match='key of type'):
        plain_state({(1, 2): 3})


def test_unsaveable_scheduler_state_fails_at_save_time(tmp_path):
    class Odd:
        def step(self):
            pass

        def state_dict(self):
            return {'callback': print}

        def load_state_dict(self, state):
            pass

    model = torch.nn.Linear(2, 2)
    trainer = Trainer(model, [], max_epochs=1, schedulers=[Odd()],
                      checkpoint=str(tmp_path / 'ck.pt'), progress=False)
    with pytest.raises(TypeError, match=r"'state\['schedulers'\]\[0\]"):
        trainer.fit(lambda epoch: [None], lambda _: torch.tensor(0.0))
    assert not (tmp_path / 'ck.pt').exists()
