r"""Solving the package's linear graph ODEs: one place for the solver
choices shared by :class:`~pyg_lightgode.nn.conv.LightGODEConv` and the
training-free filters (:mod:`pyg_lightgode.nn.filters`).

Every solve is bounded: a fixed-step method refuses a grid of more than
:obj:`max_steps` steps before it starts, and an adaptive method stops with
:class:`ODESolverError` after :obj:`max_steps` function evaluations (also
under ``python -O``, where torchdiffeq's own asserts are stripped).
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from pyg_lightgode.data.validation import (
    check_finite_float,
    check_positive_int,
)

#: :obj:`torchdiffeq` methods integrating on a fixed grid (take
#: :obj:`step_size`).
FIXED_STEP_METHODS = ('euler', 'midpoint', 'heun2', 'heun3', 'rk4',
                      'explicit_adams', 'implicit_adams', 'fixed_adams')
#: :obj:`torchdiffeq` methods choosing their steps from :obj:`rtol` and
#: :obj:`atol`.
ADAPTIVE_METHODS = ('dopri5', 'dopri8', 'bosh3', 'fehlberg2', 'adaptive_heun')
#: Every valid ODE :obj:`method`: :obj:`'exact'` (a closed form or series)
#: and every torchdiffeq method.
METHODS = ('exact', ) + FIXED_STEP_METHODS + ADAPTIVE_METHODS
#: Default bound on the steps (fixed grid) or function evaluations
#: (adaptive methods) of one solve.
DEFAULT_MAX_STEPS = 10_000

Times = Union[float, Sequence[float], Tensor]


class ODESolverError(RuntimeError):
    r"""An ODE solve could not finish within its bounds (too many steps or
    function evaluations, or a step size that underflowed)."""


def check_method(method: str, step_size: Optional[float] = None,
                 rtol: float = 1e-5, atol: float = 1e-7,
                 max_steps: int = DEFAULT_MAX_STEPS,
                 prefix: str = '') -> None:
    r"""Validates solver options, raising :class:`ValueError` that names the
    argument (with :obj:`prefix` prepended, *e.g.* :obj:`'sharpen_'`)."""
    if method not in METHODS:
        raise ValueError(f"Unknown '{prefix}method' {method!r}; valid "
                         f"methods are: {', '.join(METHODS)}")
    if step_size is not None:
        if method not in FIXED_STEP_METHODS:
            raise ValueError(f"'{prefix}step_size' applies only to the "
                             f"fixed-step methods "
                             f"{', '.join(FIXED_STEP_METHODS)} (got "
                             f"{prefix}method={method!r})")
        if isinstance(step_size, bool) or not (
                isinstance(step_size, (int, float))
                and math.isfinite(step_size) and step_size > 0):
            raise ValueError(f"'{prefix}step_size' must be a positive number "
                             f"(got {step_size!r})")
    check_finite_float(rtol, 'rtol', 0.0, strict=True)
    check_finite_float(atol, 'atol', 0.0, strict=True)
    check_positive_int(max_steps, 'max_steps')


def parse_times(t: Times, name: str = 't') -> Tuple[List[float], bool]:
    r"""Validates :obj:`t` and returns its times as floats, and whether it
    was a single time (a number or a 0-D tensor)."""
    if isinstance(t, Tensor):
        if t.dim() > 1 or t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"'{name}' must be a number or a 1-D tensor of "
                             f"times (got a {t.dim()}-D {t.dtype} tensor)")
        times, single = t.detach().reshape(-1).tolist(), t.dim() == 0
    elif isinstance(t, (int, float)) and not isinstance(t, bool):
        times, single = [t], True
    elif isinstance(t, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in t):
        times, single = list(t), False
    else:
        raise TypeError(f"'{name}' must be a number, a sequence of numbers "
                        f"or a tensor (got {t!r})")
    times = [float(v) for v in times]
    if len(times) == 0:
        raise ValueError(f"'{name}' must hold at least one time")
    if not all(math.isfinite(v) and v >= 0 for v in times):
        raise ValueError(f"'{name}' must hold finite, non-negative times "
                         f"(got {times})")
    if any(b <= a for a, b in zip(times[:-1], times[1:])):
        raise ValueError(f"The times in '{name}' must be strictly increasing "
                         f"(got {times})")
    return times, single


def step_grid(times: List[float], step_size: float) -> List[float]:
    r"""A grid through every time in :obj:`times` that cuts each interval
    between two of them into equal steps of at most :obj:`step_size`."""
    grid = times[:1]
    for start, end in zip(times[:-1], times[1:]):
        # The small slack keeps float round-off from adding a step.
        num_steps = max(1, math.ceil((end - start) / step_size * (1 - 1e-9)))
        grid += [start + (end - start) * k / num_steps
                 for k in range(1, num_steps)] + [end]
    return grid


def num_grid_steps(times: List[float], step_size: float) -> int:
    r"""The number of steps :func:`step_grid` would take, without building
    the grid."""
    edges = [0.0] + times if times[0] != 0 else times
    return sum(max(1, math.ceil((b - a) / step_size * (1 - 1e-9)))
               for a, b in zip(edges[:-1], edges[1:]))


def integrate(func: Callable[[Tensor, Tensor], Tensor], y0: Tensor,
              times: List[float], method: str,
              step_size: Optional[float] = None, rtol: float = 1e-5,
              atol: float = 1e-7,
              max_steps: int = DEFAULT_MAX_STEPS,
              norm: Optional[Callable[[Tensor], Tensor]] = None) -> Tensor:
    r"""Solves :math:`dy/dt = f(t, y)` from :math:`y(0) = y_0` with the
    torchdiffeq :obj:`method` and returns :math:`y` at every time in
    :obj:`times` (strictly increasing, :math:`\geq 0`) as
    :obj:`[len(times), *y0.shape]`.

    A fixed-step method with :obj:`step_size=None` takes a single step from
    :math:`0` to each requested time (the official few-step forms of
    LightGODE and BSPM); with a :obj:`step_size`, one grid through all
    times. Raises :class:`ODESolverError` when the solve needs more than
    :obj:`max_steps` steps (fixed grid) or function evaluations (adaptive).
    :obj:`norm` replaces the error norm of the adaptive methods (*e.g.* one
    summed over the blocks of a partitioned state, so that every block takes
    the same steps).
    """
    if method == 'exact' or method not in METHODS:
        raise ValueError(f"'method' must be a torchdiffeq method (got "
                         f"{method!r})")
    if method in FIXED_STEP_METHODS and step_size is None and len(times) > 1:
        return torch.cat([
            integrate(func, y0, [time], method, None, rtol, atol, max_steps,
                      norm)
            for time in times
        ])
    from torchdiffeq import odeint

    start = [] if times[0] == 0 else [0.0]
    if len(start) + len(times) == 1:  # Only t = 0 was asked for.
        return y0.unsqueeze(0)
    grid = torch.tensor(start + times, dtype=y0.dtype, device=y0.device)
    options = {}
    if norm is not None and method in ADAPTIVE_METHODS:
        options['norm'] = norm
    if method in FIXED_STEP_METHODS:
        if step_size is not None:
            if num_grid_steps(times, step_size) > max_steps:
                raise ODESolverError(
                    f"step_size={step_size} needs "
                    f"{num_grid_steps(times, step_size)} steps up to "
                    f"t={times[-1]}, more than max_steps={max_steps}; raise "
                    f"'step_size' or 'max_steps'")
            steps = torch.tensor(step_grid(start + times, step_size),
                                 dtype=y0.dtype, device=y0.device)
            options['grid_constructor'] = lambda f, y, t: steps
    evals = [0]

    def bounded(time: Tensor, state: Tensor) -> Tensor:
        evals[0] += 1
        if evals[0] > max_steps and method in ADAPTIVE_METHODS:
            raise ODESolverError(
                f"method={method!r} did not reach t={times[-1]} within "
                f"max_steps={max_steps} function evaluations; raise "
                f"'rtol'/'atol' or 'max_steps', or use a fixed-step method")
        return func(time, state)

    try:
        out = odeint(bounded, y0, grid, rtol=rtol, atol=atol, method=method,
                     options=options)
    except AssertionError as e:  # torchdiffeq signals failure by assert.
        raise ODESolverError(f"method={method!r} failed before t="
                             f"{times[-1]}: {e}") from None
    return out[len(start):]
