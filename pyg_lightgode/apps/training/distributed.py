r"""Data-parallel training over :mod:`torch.distributed`: process-group
set-up for :obj:`torchrun`, the sharding of global batches across ranks, a
:class:`~torch.nn.parallel.DistributedDataParallel` wrapper for models whose
training objective is not their :meth:`forward`, and the few collectives
:class:`~.trainer.Trainer` needs so that every rank takes the
same decisions.

Semantics (used by :func:`~.recipes.train_on_pairs`):

* :obj:`batch_size` is the GLOBAL batch. Every rank draws the same shuffled
  permutation of the training pairs (the shuffling generator is seeded
  identically everywhere) and takes its contiguous slice of each global batch,
  :math:`\lceil B / W \rceil` or :math:`\lfloor B / W \rfloor` pairs.
* Every rank's mean loss is scaled by :math:`W n_r / B` before
  :meth:`backward`, so that DDP's average of the gradients is the gradient of
  the mean over the global batch: for losses that decompose over pairs the
  step equals the single-process step up to float summation order.
* Parameters are replicated. DDP broadcasts rank 0's weights when it wraps the
  model and all-reduces every gradient, so the replicas stay identical.
"""
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from torch import Tensor


def default_backend(device: Optional[Union[str, torch.device]] = None) -> str:
    r"""NCCL for a CUDA :obj:`device`, gloo otherwise; without a
    :obj:`device`, NCCL when CUDA is available."""
    if device is None:
        return 'nccl' if torch.cuda.is_available() else 'gloo'
    return 'nccl' if torch.device(device).type == 'cuda' else 'gloo'


def get_world_size() -> int:
    r"""Number of processes of the initialised group (1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def get_rank() -> int:
    r"""Rank of this process (0 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def is_main_process() -> bool:
    r""":obj:`True` on rank 0 (and without a process group)."""
    return get_rank() == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == '':
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer "
                         f"(got {value!r})") from None


def init_distributed(backend: Optional[str] = None,
                     device: Optional[Union[str, torch.device]] = None,
                     init_method: Optional[str] = None,
                     rank: Optional[int] = None,
                     world_size: Optional[int] = None,
                     timeout: Optional[timedelta] = None) -> torch.device:
    r"""Initialises the default process group when more than one process
    takes part, and returns the device this rank should train on.

    Without arguments it reads what :obj:`torchrun` exports
    (:obj:`RANK`, :obj:`WORLD_SIZE`, :obj:`LOCAL_RANK`,
    :obj:`MASTER_ADDR`, :obj:`MASTER_PORT`); with :obj:`WORLD_SIZE` unset
    or 1 nothing is initialised, so one script runs with 1 or N processes.

    Args:
        backend (str, optional): :obj:`'gloo'` or :obj:`'nccl'`; by default
            chosen from :obj:`device` by :func:`default_backend`.
        device (str or torch.device, optional): :obj:`'cpu'` or
            :obj:`'cuda'`; CUDA ranks get :obj:`cuda:LOCAL_RANK`. By default
            CUDA when available.
        init_method (str, optional): e.g. :obj:`'file:///tmp/pg'` or
            :obj:`'tcp://127.0.0.1:29500'`. (default: :obj:`'env://'`)
        rank (int, optional): This process' rank (default: :obj:`RANK`).
        world_size (int, optional): Number of processes
            (default: :obj:`WORLD_SIZE`, else 1).
        timeout (datetime.timedelta, optional): Collective timeout.
    """
    world_size = _env_int('WORLD_SIZE', 1) if world_size is None else \
        int(world_size)
    rank = _env_int('RANK', 0) if rank is None else int(rank)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"'rank' must be in [0, world_size) and "
                         f"'world_size' >= 1 (got rank={rank}, "
                         f"world_size={world_size})")
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    if device.type not in ('cpu', 'cuda'):
        raise ValueError(f"'device' must be 'cpu' or 'cuda' (got {device})")
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError("'device' is 'cuda' but CUDA is not available")
        if device.index is None:
            device = torch.device('cuda', _env_int('LOCAL_RANK', rank) %
                                  torch.cuda.device_count())
        torch.cuda.set_device(device)
    backend = default_backend(device) if backend is None else backend
    if backend not in ('gloo', 'nccl'):
        raise ValueError(f"'backend' must be 'gloo' or 'nccl' (got "
                         f"{backend!r})")
    if backend == 'nccl' and device.type != 'cuda':
        raise ValueError("the 'nccl' backend needs a CUDA 'device'; use "
                         "'gloo' on CPU")
    if world_size > 1 and not dist.is_initialized():
        kwargs = {} if timeout is None else {'timeout': timeout}
        dist.init_process_group(backend, init_method=init_method or 'env://',
                                rank=rank, world_size=world_size, **kwargs)
    return device


def destroy_distributed() -> None:
    r"""Destroys the default process group if there is one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    r"""Waits for every rank (no-op without a process group)."""
    if get_world_size() > 1:
        dist.barrier()


@contextmanager
def main_process_first():
    r"""Runs the block on rank 0 first and on the other ranks afterwards,
    e.g. so that only rank 0 downloads and processes a dataset and the other
    ranks read its cached files."""
    if not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_main_process():
            barrier()


def _collective_device() -> torch.device:
    if dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def broadcast_float(value: float, src: int = 0) -> float:
    r"""Rank :obj:`src`'s :obj:`value` on every rank (identity without a
    process group), so that decisions taken from it agree everywhere."""
    if get_world_size() == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64,
                     device=_collective_device())
    dist.broadcast(t, src=src)
    return float(t.item())


def all_reduce_sum(values: Sequence[float]) -> Tuple[float, ...]:
    r"""Element-wise sum of :obj:`values` over all ranks (identity without a
    process group)."""
    if get_world_size() == 1:
        return tuple(float(v) for v in values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64,
                     device=_collective_device())
    dist.all_reduce(t)
    return tuple(t.tolist())


class _GatherRows(torch.autograd.Function):
    # all_gather forwards; the gradient of every rank's copy of the result is
    # summed (all_reduce) and each rank keeps the rows it contributed.
    @staticmethod
    def forward(ctx, x: Tensor, sizes: Tuple[int, ...]) -> Tensor:
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        pad = max(sizes) - x.size(0)
        x = torch.cat([x, x.new_zeros((pad, ) + x.shape[1:])]) if pad else x
        parts = [torch.empty_like(x) for _ in sizes]
        dist.all_gather(parts, x.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)  # In place: on a copy, never autograd's buffer.
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None


def all_gather_rows(x: Tensor) -> Tensor:
    r"""Concatenates the rows of :obj:`x` of all ranks in rank order
    (shards may differ in length), differentiably: when every rank computes
    the same function :math:`f` of the result and DDP averages the
    gradients, each rank's rows receive exactly :math:`\partial f /
    \partial x`. This makes terms over all pairs of a global batch (the
    uniformity loss) exact under DDP. Identity without a process group.

    Shapes:
        - **input:** :math:`(n_r, *)`
        - **output:** :math:`(\sum_r n_r, *)`
    """
    world_size = get_world_size()
    if world_size == 1:
        return x
    n = torch.tensor([x.size(0)], device=x.device)
    sizes = [torch.empty_like(n) for _ in range(world_size)]
    dist.all_gather(sizes, n)
    return _GatherRows.apply(x, tuple(int(t) for t in sizes))


def shard(tensors: Sequence[Tensor], rank: int,
          world_size: int) -> Tuple[Tensor, ...]:
    r"""Rank :obj:`rank`'s contiguous slice of a global batch: the leading
    dimension of every tensor of :obj:`tensors` is split into
    :obj:`world_size` parts whose sizes differ by at most one.

    Shapes:
        - **input:** tensors :math:`(B, *)`
        - **output:** tensors :math:`(n_r, *)`,
          :math:`n_r \in \{\lfloor B/W \rfloor, \lceil B/W \rceil\}`
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"'rank' must be in [0, world_size) and "
                         f"'world_size' >= 1 (got rank={rank}, "
                         f"world_size={world_size})")
    sizes = {t.size(0) for t in tensors}
    if len(sizes) != 1:
        raise ValueError(f"'tensors' must share their leading dimension (got "
                         f"sizes {sorted(sizes)})")
    if world_size == 1:
        return tuple(tensors)
    return tuple(torch.tensor_split(t, world_size)[rank] for t in tensors)


class LossModule(torch.nn.Module):
    r"""Makes a training objective the :meth:`forward` of a module, the form
    :class:`~torch.nn.parallel.DistributedDataParallel` needs to hook the
    gradient all-reduce into :meth:`backward`: :obj:`forward(*args)` returns
    :obj:`loss_fn(*args)`. The parameters are those of :obj:`model`
    (e.g. :obj:`LossModule(model, model.loss)` for
    :class:`~pyg_lightgode.nn.models.LightGODE`).

    Args:
        model (torch.nn.Module): The module whose parameters are trained.
        loss_fn (callable): Computes the loss from :obj:`model`'s parameters.
    """
    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., Tensor]):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *args, **kwargs) -> Tensor:
        return self.loss_fn(*args, **kwargs)


def wrap_ddp(model: torch.nn.Module, loss_fn: Callable[..., Tensor],
             **kwargs) -> torch.nn.Module:
    r"""Wraps :obj:`LossModule(model, loss_fn)` in
    :class:`~torch.nn.parallel.DistributedDataParallel` (which broadcasts
    rank 0's parameters to every rank right away); calling the result
    computes the loss and makes :meth:`backward` average the gradients over
    the ranks. Without a process group the plain :class:`LossModule` is
    returned. Further keyword arguments go to DDP.

    Sparse embedding gradients (:obj:`sparse=True`) are all-reduced by
    gloo (tested); NCCL's sparse all-reduce is not tested here, so on GPUs
    prefer dense embeddings.
    """
    module = LossModule(model, loss_fn)
    if get_world_size() == 1:
        return module
    params = list(model.parameters())
    if not params:
        raise ValueError("'model' has no parameters to train")
    device = params[0].device
    if dist.get_backend() == 'nccl' and device.type != 'cuda':
        raise ValueError(f"the 'nccl' backend needs the model on a CUDA "
                         f"device (it is on {device}); use 'gloo' on CPU")
    if device.type == 'cuda':
        kwargs.setdefault('device_ids', [device.index])
    return torch.nn.parallel.DistributedDataParallel(module, **kwargs)
