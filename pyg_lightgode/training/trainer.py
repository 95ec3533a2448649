r"""A small, model-agnostic training loop: epochs of minibatch steps,
validation after every epoch, early stopping with restore of the best weights,
tqdm progress, seeds and checkpoint/resume."""
import copy
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from pyg_lightgode.utils.io import atomic_save
from pyg_lightgode.training.distributed import (
    all_reduce_sum,
    barrier,
    broadcast_float,
    is_main_process,
)


def seed_everything(seed: int) -> None:
    r"""Seeds Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    best weights, history, RNG states and the :obj:`generator` that shuffles
    batches) is written atomically after every epoch; :meth:`fit` resumes
    from it when it exists and :obj:`resume` is :obj:`True`.

    Under :mod:`torch.distributed` (an initialised process group, e.g. from
    :func:`~pyg_lightgode.training.distributed.init_distributed`) every rank
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
        log (callable, optional): Called with each epoch's record.
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
        self.max_epochs = max_epochs
        self.patience = patience
        self.checkpoint = checkpoint
        self.resume = resume
        self.generator = generator
        self.progress = progress
        self.log = log

    def _state(self, epoch, best_epoch, best_score, best_state, history):
        return {
            'epoch': epoch,
            'best_epoch': best_epoch,
            'best_score': best_score,
            'best_state': best_state,
            'history': history,
            'model': self.model.state_dict(),
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'torch_rng': torch.get_rng_state(),
            'generator': (self.generator.get_state()
                          if self.generator is not None else None),
        }

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
        if (self.checkpoint and self.resume
                and os.path.exists(self.checkpoint)):
            state = torch.load(self.checkpoint, weights_only=False,
                               map_location='cpu')
            self.model.load_state_dict(state['model'])
            for o, s in zip(self.optimizers, state['optimizers']):
                o.load_state_dict(s)
            for sch, s in zip(self.schedulers, state['schedulers']):
                sch.load_state_dict(s)
            torch.set_rng_state(state['torch_rng'])
            if self.generator is not None and state['generator'] is not None:
                self.generator.set_state(state['generator'])
            start = state['epoch'] + 1
            best_epoch, best_score = state['best_epoch'], state['best_score']
            best_state, history = state['best_state'], state['history']

        main = is_main_process()
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

    def _stopped(self, last_epoch: int, best_epoch: int) -> bool:
        return (self.patience is not None and last_epoch > 0
                and last_epoch - best_epoch >= self.patience)


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
        self.index = index
        self.batch_size = batch_size
        self.generator = generator
        self.drop_last = drop_last

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
