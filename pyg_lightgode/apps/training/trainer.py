r"""A small, model-agnostic training loop: epochs of minibatch steps,
validation after every epoch, early stopping with restore of the best weights,
tqdm progress, seeds and checkpoint/resume.

Checkpoints hold tensors and plain Python values only and are read with
:obj:`torch.load(..., weights_only=True)`, so resuming from a file never runs
code stored in it. Every checkpoint records its format version and the
model's configuration (class, parameter names and shapes); a file that is not
such a checkpoint, or was written for another model, raises
:class:`CheckpointError` naming the file and what differs."""
import copy
import os
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from pyg_lightgode.data.io import (
    atomic_save,
    load_weights_only,
    remove_stale_tmp_files,
)
from pyg_lightgode.apps.training.distributed import (
    all_reduce_sum,
    barrier,
    broadcast_float,
    is_main_process,
)


#: The :obj:`'format'` entry of every checkpoint :class:`Trainer` writes.
CHECKPOINT_FORMAT = 'pyg_lightgode.checkpoint'
#: The checkpoint layout this version writes and reads.
CHECKPOINT_VERSION = 1
CHECKPOINT_KEYS = ('format', 'version', 'config', 'epoch', 'best_epoch',
                   'best_score', 'best_state', 'history', 'model',
                   'optimizers', 'schedulers', 'rng')


class CheckpointError(ValueError):
    r"""A checkpoint cannot be resumed from: the file is missing, empty,
    truncated or corrupted, holds objects other than tensors and plain
    values (refused unread, so nothing stored in it runs), is not a
    checkpoint of format version :obj:`CHECKPOINT_VERSION`, lacks entries,
    or was written for a model of another configuration. The message names
    the file and what differs."""


def seed_everything(seed: int) -> None:
    r"""Seeds Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plain_state(obj: Any, name: str = 'state') -> Any:
    r"""Returns :obj:`obj` in the types that
    :obj:`torch.load(..., weights_only=True)` reads back: tensors,
    :obj:`None`, :obj:`bool`, :obj:`int`, :obj:`float`, :obj:`str`, torch
    dtypes and devices, and dicts, lists and tuples of them. NumPy arrays
    become tensors and NumPy scalars Python numbers; anything else raises
    :class:`TypeError` naming the entry (:obj:`name` is the path to it)."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor,
                                       torch.dtype, torch.device)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for key, value in obj.items():
            if not (key is None or isinstance(key, (bool, int, float, str))):
                raise TypeError(f"the checkpoint entry '{name}' has a key of "
                                f"type {type(key).__name__}; only str, int, "
                                f"float, bool and None keys can be saved")
            out[plain_state(key, name)] = plain_state(value,
                                                      f'{name}[{key!r}]')
        metadata = getattr(obj, '_metadata', None)
        if isinstance(out, OrderedDict) and metadata is not None:
            out._metadata = plain_state(metadata, f'{name}._metadata')
        return out
    if isinstance(obj, (list, tuple)):
        out = [plain_state(v, f'{name}[{i}]') for i, v in enumerate(obj)]
        return out if isinstance(obj, list) else tuple(out)
    raise TypeError(f"the checkpoint entry '{name}' is a "
                    f"{type(obj).__module__}.{type(obj).__qualname__}; a "
                    f"checkpoint holds only tensors and plain values (None, "
                    f"bool, int, float, str and dicts, lists and tuples of "
                    f"them), so that resuming never runs code stored in it")


def model_config(model: torch.nn.Module) -> Dict[str, Any]:
    r"""The configuration a checkpoint records of :obj:`model`: its class,
    the names and shapes of its state (parameters and buffers), and its
    :func:`repr` (for reading only)."""
    return {
        'class': type(model).__qualname__,
        'module': type(model).__module__,
        'parameters': {
            name: list(value.shape)
            for name, value in model.state_dict().items()
            if isinstance(value, torch.Tensor)
        },
        'repr': repr(model),
    }


def read_checkpoint(path: str) -> Dict[str, Any]:
    r"""Reads a checkpoint written by :class:`Trainer` with
    :obj:`torch.load(path, weights_only=True, map_location='cpu')`, so that
    nothing stored in the file runs, and checks its format, version and
    entries. Raises :class:`CheckpointError` naming :obj:`path` otherwise.
    Whether it fits a model is checked by :meth:`Trainer.fit` (see
    :func:`check_checkpoint`)."""
    where = f"checkpoint '{path}'"
    state = load_weights_only(path, 'checkpoint', CheckpointError)
    if not isinstance(state, dict):
        raise CheckpointError(f"{where} holds a {type(state).__name__}, not "
                              f"a checkpoint dict")
    if 'format' not in state or 'version' not in state:
        raise CheckpointError(
            f"{where} has no 'format'/'version' entries: it is not a "
            f"{CHECKPOINT_FORMAT} file, or was written by an older "
            f"pyg_lightgode; delete it or pass resume=False to start afresh")
    if state['format'] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{where} has format {state['format']!r}, "
                              f"expected {CHECKPOINT_FORMAT!r}")
    if state['version'] != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{where} has format version {state['version']!r}; this "
            f"pyg_lightgode reads version {CHECKPOINT_VERSION} only")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{where} lacks the entries {missing}")

    def expect(ok: bool, key: str, what: str):
        if not ok:
            value = state[key]
            raise CheckpointError(f"{where}: entry '{key}' must be {what} "
                                  f"(got {type(value).__name__})")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_state_dict(v):
        return isinstance(v, dict) and all(
            isinstance(k, str) and isinstance(t, torch.Tensor)
            for k, t in v.items())

    config = state['config']
    expect(isinstance(config, dict) and isinstance(config.get('class'), str)
           and isinstance(config.get('parameters'), dict), 'config',
           "a dict with 'class' and 'parameters'")
    expect(is_int(state['epoch']) and state['epoch'] >= 0, 'epoch',
           'an int >= 0')
    expect(is_int(state['best_epoch']), 'best_epoch', 'an int')
    expect(isinstance(state['best_score'], (int, float))
           and not isinstance(state['best_score'], bool), 'best_score',
           'a number')
    expect(state['best_state'] is None or is_state_dict(state['best_state']),
           'best_state', 'None or a dict of tensors')
    expect(isinstance(state['history'], list)
           and all(isinstance(h, dict) for h in state['history']), 'history',
           'a list of dicts')
    expect(is_state_dict(state['model']), 'model', 'a dict of tensors')
    expect(isinstance(state['optimizers'], list)
           and all(isinstance(o, dict) for o in state['optimizers']),
           'optimizers', 'a list of dicts')
    expect(isinstance(state['schedulers'], list)
           and all(isinstance(o, dict) for o in state['schedulers']),
           'schedulers', 'a list of dicts')
    rng = state['rng']
    expect(isinstance(rng, dict) and {'torch', 'python', 'numpy',
                                      'generator'} <= set(rng), 'rng',
           "a dict with 'torch', 'python', 'numpy' and 'generator'")
    for key in ('torch', 'generator'):
        value = rng[key]
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.uint8
                or key == 'generator' and value is None):
            raise CheckpointError(f"{where}: entry rng['{key}'] must be a "
                                  f"uint8 tensor")
    py = rng['python']
    if py is not None and not (isinstance(py, tuple) and len(py) == 3
                               and is_int(py[0]) and isinstance(py[1], tuple)
                               and all(is_int(v) for v in py[1])):
        raise CheckpointError(f"{where}: entry rng['python'] must be the "
                              f"tuple of random.getstate()")
    np_state = rng['numpy']
    if np_state is not None and not (
            isinstance(np_state, list) and len(np_state) == 5
            and isinstance(np_state[0], str)
            and isinstance(np_state[1], torch.Tensor)):
        raise CheckpointError(f"{where}: entry rng['numpy'] must be the "
                              f"list form of numpy.random.get_state()")
    return state


def _shape_differences(saved: Dict[str, Any], model: Dict[str, List[int]],
                       what: str) -> List[str]:
    out = []
    for name, shape in model.items():
        if name not in saved:
            out.append(f"parameter {name} of the model is missing from "
                       f"{what}")
        else:
            have = saved[name]
            have = list(have.shape) if isinstance(have, torch.Tensor) else \
                list(have) if isinstance(have, (list, tuple)) else have
            if have != shape:
                out.append(f"parameter {name} has shape {have} in {what}, "
                           f"the model has {shape}")
    out += [f"{what} has parameter {name}, which the model lacks"
            for name in saved if name not in model]
    return out


def check_checkpoint(state: Dict[str, Any], path: str,
                     model: torch.nn.Module, optimizers: List[Any] = (),
                     schedulers: List[Any] = ()) -> None:
    r"""Raises :class:`CheckpointError` naming :obj:`path` and every
    difference when the checkpoint :obj:`state` (from
    :func:`read_checkpoint`) was not written for :obj:`model` (same class,
    same state names and shapes), the same number of :obj:`optimizers`
    (with the same parameter groups) and :obj:`schedulers`."""
    where = f"checkpoint '{path}'"
    config, expected = state['config'], model_config(model)
    if config['class'] != expected['class']:
        raise CheckpointError(f"{where} was written for a {config['class']} "
                              f"model, the model is a {expected['class']}")
    problems = _shape_differences(config['parameters'],
                                  expected['parameters'], 'the checkpoint')
    if not problems:
        problems = _shape_differences(state['model'], expected['parameters'],
                                      "the checkpoint's weights")
    if not problems and state['best_state'] is not None:
        problems = _shape_differences(state['best_state'],
                                      expected['parameters'],
                                      "the checkpoint's best weights")
    if problems:
        shown = '; '.join(problems[:5])
        more = f' (and {len(problems) - 5} more)' if len(problems) > 5 else ''
        raise CheckpointError(f"{where} does not fit the model: {shown}"
                              f"{more}")
    for what, saved, objs in (('optimizers', state['optimizers'], optimizers),
                              ('schedulers', state['schedulers'], schedulers)):
        if len(saved) != len(objs):
            raise CheckpointError(f"{where} holds {len(saved)} {what}, the "
                                  f"training has {len(objs)}")
    for k, (saved, opt) in enumerate(zip(state['optimizers'], optimizers)):
        groups = saved.get('param_groups')
        sizes = [len(g['params']) for g in opt.state_dict()['param_groups']]
        if not isinstance(groups, list) or not all(
                isinstance(g, dict) and isinstance(g.get('params'), list)
                for g in groups):
            raise CheckpointError(f"{where}: optimizers[{k}] has no valid "
                                  f"'param_groups'")
        if [len(g['params']) for g in groups] != sizes:
            raise CheckpointError(
                f"{where}: optimizers[{k}] has parameter groups of sizes "
                f"{[len(g['params']) for g in groups]}, the optimizer has "
                f"{sizes}")


def _numpy_rng_state() -> List[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [str(name), torch.from_numpy(keys.astype(np.int64)), int(pos),
            int(has_gauss), float(cached)]


def _set_numpy_rng_state(state: List[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos),
                         int(has_gauss), float(cached)))


@dataclass
class TrainResult:
    r"""What :meth:`Trainer.fit` returns."""
    best_epoch: int
    best_score: float
    epochs_run: int
    history: List[Dict[str, float]] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        times = [h['train_seconds'] for h in self.history]
        return sum(times) / max(len(times), 1)


class Trainer:
    r"""Runs :obj:`step` over the batches of every epoch, calls
    :obj:`validate` after each epoch (higher is better), stops after
    :obj:`patience` epochs without improvement and restores the best weights.

    With :obj:`checkpoint` set, the full state (model, optimizer, scheduler,
    best weights, history, the torch, Python and NumPy RNG states and the
    :obj:`generator` that shuffles batches) is written atomically after every
    epoch; :meth:`fit` resumes from it when it exists and :obj:`resume` is
    :obj:`True`. The file holds tensors and plain values only, with its
    format version and the model's configuration, and is read with
    :obj:`weights_only=True` (:func:`read_checkpoint`): resuming never runs
    code stored in the file, and a file that is damaged, of another format
    version or written for another model (class, parameter names or shapes)
    or another number of optimizers or schedulers raises
    :class:`CheckpointError` naming the file and what differs, before
    anything is changed.

    Under :mod:`torch.distributed` (an initialised process group, e.g. from
    :func:`~.distributed.init_distributed`) every rank
    runs :meth:`fit` on its replica: the epoch loss is averaged over all
    ranks, rank 0's validation score is broadcast so that early stopping
    decides identically everywhere, and only rank 0 writes the checkpoint,
    shows progress and calls :obj:`log`. Every rank resumes from the same
    file, so a run may resume with a different number of processes.

    Args:
        model (torch.nn.Module): The model whose weights are trained.
        optimizers (list): Optimizers (one or more) stepped by :obj:`step`.
        max_epochs (int): Maximum number of epochs.
        patience (int, optional): Epochs without improvement before stopping;
            :obj:`None` disables early stopping. (default: :obj:`10`)
        checkpoint (str, optional): Checkpoint path. (default: :obj:`None`)
        resume (bool, optional): Resume from :obj:`checkpoint` if it exists.
            (default: :obj:`True`)
        generator (torch.Generator, optional): The generator that shuffles
            batches; its state is checkpointed so resumed runs repeat exactly.
        schedulers (list, optional): LR schedulers stepped once per epoch.
        progress (bool, optional): Show tqdm progress bars.
        log (callable, optional): Called with each epoch's record:
            :obj:`epoch`, :obj:`loss`, :obj:`train_seconds`, with
            validation :obj:`val`, :obj:`val_seconds`, :obj:`best_epoch`,
            :obj:`best` and (with :obj:`patience`) :obj:`patience_left`,
            and :obj:`epochs_left_at_most` / :obj:`eta_seconds` (the
            epochs that may still run and their estimated time).
            :func:`print_epochs` prints them as :func:`format_epoch` lines.

    A checkpoint's :obj:`<file>.tmp-<pid>` files that a killed run left
    behind are removed when :meth:`fit` starts (see
    :func:`~pyg_lightgode.data.io.remove_stale_tmp_files`).
    """
    def __init__(self, model: torch.nn.Module, optimizers: List[Any],
                 max_epochs: int, patience: Optional[int] = 10,
                 checkpoint: Optional[str] = None, resume: bool = True,
                 generator: Optional[torch.Generator] = None,
                 schedulers: Optional[List[Any]] = None,
                 progress: bool = True,
                 log: Optional[Callable[[Dict[str, float]], None]] = None):
        if max_epochs < 0:
            raise ValueError(f"'max_epochs' must be >= 0 (got {max_epochs})")
        if patience is not None and patience < 1:
            raise ValueError(f"'patience' must be >= 1 or None (got "
                             f"{patience})")
        self.model = model
        self.optimizers = list(optimizers)
        self.schedulers = list(schedulers or [])
        self.max_epochs, self.patience = max_epochs, patience
        self.checkpoint, self.resume = checkpoint, resume
        self.generator, self.progress, self.log = generator, progress, log

    def _state(self, epoch, best_epoch, best_score, best_state, history):
        return plain_state({
            'format': CHECKPOINT_FORMAT,
            'version': CHECKPOINT_VERSION,
            'config': model_config(self.model),
            'epoch': epoch,
            'best_epoch': best_epoch,
            'best_score': float(best_score),
            'best_state': best_state,
            'history': history,
            'model': self.model.state_dict(),
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'rng': {
                'torch': torch.get_rng_state(),
                'python': random.getstate(),
                'numpy': _numpy_rng_state(),
                'generator': (self.generator.get_state()
                              if self.generator is not None else None),
            },
        })

    def _resume(self, path: str) -> Dict[str, Any]:
        state = read_checkpoint(path)
        check_checkpoint(state, path, self.model, self.optimizers,
                         self.schedulers)
        try:
            self.model.load_state_dict(state['model'])
            for o, s in zip(self.optimizers, state['optimizers']):
                o.load_state_dict(s)
            for sch, s in zip(self.schedulers, state['schedulers']):
                sch.load_state_dict(s)
            rng = state['rng']
            torch.set_rng_state(rng['torch'])
            if rng['python'] is not None:
                random.setstate(rng['python'])
            if rng['numpy'] is not None:
                _set_numpy_rng_state(rng['numpy'])
            if self.generator is not None and rng['generator'] is not None:
                self.generator.set_state(rng['generator'])
        except (KeyError, IndexError, TypeError, ValueError,
                RuntimeError) as e:
            raise CheckpointError(f"checkpoint '{path}' could not be "
                                  f"restored: {type(e).__name__}: {e}") from e
        return state

    def fit(self, batches: Callable[[int], Iterable],
            step: Callable[[Any], torch.Tensor],
            validate: Optional[Callable[[], float]] = None) -> TrainResult:
        r"""Trains the model.

        Args:
            batches (callable): :obj:`batches(epoch)` returns the iterable of
                the epoch's minibatches (epochs count from 1).
            step (callable): :obj:`step(batch)` does one optimisation step and
                returns the loss.
            validate (callable, optional): Returns the validation score
                (higher is better). Without it, the last epoch is kept.
        """
        start, best_epoch, best_score = 1, 0, -float('inf')
        best_state, history = None, []
        main = is_main_process()
        if self.checkpoint and main:  # What a killed run left behind.
            folder, name = os.path.split(os.path.abspath(self.checkpoint))
            remove_stale_tmp_files(folder, [name])
        if (self.checkpoint and self.resume
                and os.path.exists(self.checkpoint)):
            state = self._resume(self.checkpoint)
            start = state['epoch'] + 1
            best_epoch, best_score = state['best_epoch'], state['best_score']
            best_state, history = state['best_state'], state['history']

        epoch = start - 1
        for epoch in range(start, self.max_epochs + 1):
            if self._stopped(epoch - 1, best_epoch):
                epoch -= 1
                break
            self.model.train()
            t0, total, count = time.perf_counter(), 0.0, 0
            bar = tqdm(batches(epoch), desc=f'epoch {epoch}',
                       disable=not (self.progress and main), leave=False)
            for batch in bar:
                loss = step(batch)
                total += float(loss)
                count += 1
                if count % 50 == 0:
                    bar.set_postfix(loss=f'{total / count:.4f}')
            for sch in self.schedulers:
                sch.step()
            total, count = all_reduce_sum((total, count))
            record = {'epoch': epoch, 'loss': total / max(count, 1),
                      'train_seconds': time.perf_counter() - t0}
            if validate is not None:
                self.model.eval()
                t1 = time.perf_counter()
                with torch.no_grad():
                    score = broadcast_float(validate())
                record.update(val=score,
                              val_seconds=time.perf_counter() - t1)
            else:
                score = float(epoch)  # Keep the latest weights.
            if score > best_score:
                best_epoch, best_score = epoch, score
                best_state = copy.deepcopy(self.model.state_dict())
            self._progress_entries(record, history, best_epoch, best_score,
                                   validate is not None)
            history.append(record)
            if self.log is not None and main:
                self.log(record)
            if self.checkpoint and main:
                atomic_save(self._state(epoch, best_epoch, best_score,
                                        best_state, history), self.checkpoint)

        if self.checkpoint:
            barrier()  # The file is complete when fit returns on any rank.
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return TrainResult(best_epoch=best_epoch, best_score=best_score,
                           epochs_run=epoch, history=history)

    def _progress_entries(self, record, history, best_epoch, best_score,
                          validated: bool) -> None:
        epoch = record['epoch']
        left = self.max_epochs - epoch
        if validated:
            record.update(best_epoch=best_epoch, best=best_score)
            if self.patience is not None:
                patience = self.patience - (epoch - best_epoch)
                record['patience_left'] = patience
                left = min(left, patience)
        # Mean seconds of the epochs of this run (a resumed run's earlier
        # epochs may have run on other cores) times the epochs that may
        # still run.
        recent = history[-4:] + [record]
        per_epoch = sum(h['train_seconds'] + h.get('val_seconds', 0.0)
                        for h in recent) / len(recent)
        record['epochs_left_at_most'] = left
        record['eta_seconds'] = per_epoch * left

    def _stopped(self, last_epoch: int, best_epoch: int) -> bool:
        return (self.patience is not None and last_epoch > 0
                and last_epoch - best_epoch >= self.patience)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f'{seconds} s'
    if seconds < 3600:
        return f'{seconds // 60} min {seconds % 60:02d} s'
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'


def format_epoch(record: Dict[str, Any], metric: str = 'val') -> str:
    r"""The one-line report of an epoch record of :class:`Trainer`, e.g.
    :obj:`epoch 7: loss 0.0123, val ndcg@20 0.0651 (best 0.0660 at epoch 5,
    patience 8 left), 21.3 s/epoch, at most 3 min 12 s left (9 epochs)`.
    :obj:`metric` names the validation score (:obj:`record['val']`). The
    time left is the mean time of the last epochs times the epochs that may
    still run (up to the epoch budget, or until the patience runs out)."""
    parts = [f"epoch {record['epoch']}: loss {record['loss']:.4f}"]
    if 'val' in record:
        text = f"{metric} {record['val']:.4f}"
        if 'best_epoch' in record:
            best = f"best {record['best']:.4f} at epoch {record['best_epoch']}"
            if 'patience_left' in record:
                best += f", patience {record['patience_left']} left"
            text += f' ({best})'
        parts.append(text)
    seconds = record['train_seconds'] + record.get('val_seconds', 0.0)
    parts.append(f'{seconds:.1f} s/epoch')
    if 'eta_seconds' in record:
        left = record['epochs_left_at_most']
        parts.append(f"at most {_duration(record['eta_seconds'])} left "
                     f"({left} epoch{'s' if left != 1 else ''})")
    return ', '.join(parts)


def print_epochs(metric: str = 'val') -> Callable[[Dict[str, Any]], None]:
    r"""A :obj:`log` callable for :class:`Trainer` that prints
    :func:`format_epoch` of every record (flushed, for logs of long
    runs)."""
    def log(record: Dict[str, Any]) -> None:
        print(format_epoch(record, metric), flush=True)
    return log


class InteractionBatches:
    r"""Shuffled minibatches of observed (user, item) pairs: one pass over
    :obj:`index` per epoch, reshuffled by :obj:`generator` every epoch.

    Args:
        index (torch.Tensor): Interactions :obj:`[2, E]`.
        batch_size (int): Pairs per batch.
        generator (torch.Generator, optional): Source of the shuffling.
        drop_last (bool, optional): Drop a last incomplete batch.
    """
    def __init__(self, index: torch.Tensor, batch_size: int,
                 generator: Optional[torch.Generator] = None,
                 drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"'batch_size' must be >= 1 (got {batch_size})")
        if index.dim() != 2 or index.size(0) != 2 or index.size(1) == 0:
            raise ValueError(f"'index' must be a non-empty [2, E] tensor (got "
                             f"shape {list(index.shape)})")
        self.index, self.batch_size = index, batch_size
        self.generator, self.drop_last = generator, drop_last

    def __len__(self) -> int:
        n = self.index.size(1)
        return (n // self.batch_size if self.drop_last else
                -(-n // self.batch_size))

    def __iter__(self):
        perm = torch.randperm(self.index.size(1), generator=self.generator)
        shuffled = self.index[:, perm]
        for b in range(len(self)):
            chunk = shuffled[:, b * self.batch_size:(b + 1) * self.batch_size]
            yield chunk[0], chunk[1]
