r"""Paired significance tests over per-user metric vectors: the two-sided
Wilcoxon signed-rank test and Holm's step-down correction for several
comparisons (torch only).

.. code-block:: python

    p = wilcoxon_signed_rank(ndcg_a, ndcg_b)  # same users, same order
    adjusted = holm([p_ab, p_ac, p_ad])
"""
import math
from typing import List, Sequence, Union

import torch
from torch import Tensor

#: Largest number of non-zero differences for which the p-value is exact
#: without ties (the null distribution of :math:`W^+` by dynamic
#: programming), as SciPy's :obj:`method='auto'`.
EXACT_MAX = 50
#: Largest number of non-zero differences for which the p-value is exact
#: with ties or zero differences (all :math:`2^n` sign flips enumerated,
#: as SciPy's permutation test does for :math:`n \le 13`).
PERMUTATION_MAX = 13


def _as_vector(x, name: str) -> Tensor:
    x = torch.as_tensor(x)
    if x.dim() != 1 or not (x.is_floating_point() or x.dtype in (
            torch.int32, torch.int64)):
        raise ValueError(f"'{name}' must be a 1-D real tensor (got shape "
                         f"{list(x.shape)}, {x.dtype})")
    x = x.detach().double().cpu()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"'{name}' holds NaN or infinite values")
    return x


def _average_ranks(x: Tensor) -> Tensor:
    r"""Ranks 1..n of :obj:`x`, ties sharing their average rank."""
    values, order = torch.sort(x)
    _, inverse, counts = torch.unique_consecutive(
        values, return_inverse=True, return_counts=True)
    end = torch.cumsum(counts, 0).double()
    average = end - (counts.double() - 1) / 2  # Mean of start..end.
    ranks = torch.empty_like(x)
    ranks[order] = average[inverse]
    return ranks


def _exact_distribution(n: int) -> Tensor:
    r"""The null distribution of :math:`W^+` for :math:`n` untied non-zero
    differences: :obj:`[n(n + 1)/2 + 1]` probabilities."""
    counts = torch.zeros(n * (n + 1) // 2 + 1, dtype=torch.float64)
    counts[0] = 1.0
    for i in range(1, n + 1):
        shifted = torch.zeros_like(counts)
        shifted[i:] = counts[:-i]
        counts = counts + shifted
    return counts / 2.0**n


def wilcoxon_signed_rank(a, b, method: str = 'auto') -> float:
    r"""The two-sided p-value of the Wilcoxon signed-rank test that the
    paired differences :math:`d = a - b` (*e.g.* two models' per-user
    NDCG@20 over the same users) are symmetric about zero.

    Zero differences are dropped (Wilcoxon's convention); the :math:`n`
    others are ranked by :math:`|d|` (ties get their average rank) and
    :math:`W^+` sums the ranks of the positive ones. With
    :obj:`method='approx'`,

    .. math::
        z = \frac{W^+ - n(n+1)/4}{\sqrt{\big(n(n+1)(2n+1) -
        \tfrac12\sum_t (t^3 - t)\big) / 24}}, \qquad p = 2\,\Phi(-|z|),

    with :math:`t` the sizes of the groups of tied :math:`|d|` (no
    continuity correction); :obj:`'exact'` uses the exact null
    distribution of :math:`W^+`: by dynamic programming when nothing is
    tied or zero (:math:`n \le` :data:`EXACT_MAX`), by enumerating all
    :math:`2^n` sign flips otherwise (:math:`n \le`
    :data:`PERMUTATION_MAX`), :math:`p = \min(1, 2\min(P(W^+ \le w),
    P(W^+ \ge w)))`. :obj:`'auto'` (default) chooses as
    :func:`scipy.stats.wilcoxon` does (exact for :math:`n \le 50` without
    ties or zeros, enumeration for :math:`n \le 13` with them, else the
    normal approximation), so the p-values agree with SciPy's defaults.
    Where every difference is zero the p-value is :obj:`1.0` (SciPy
    returns NaN).

    Args:
        a (torch.Tensor): Values of the first model :obj:`[n]`.
        b (torch.Tensor): Values of the second model, same users and order.
        method (str, optional): :obj:`'auto'`, :obj:`'exact'` or
            :obj:`'approx'`.
    """
    a, b = _as_vector(a, 'a'), _as_vector(b, 'b')
    if a.numel() != b.numel():
        raise ValueError(f"'a' and 'b' must be paired (got {a.numel()} and "
                         f"{b.numel()} values)")
    if method not in ('auto', 'exact', 'approx'):
        raise ValueError(f"'method' must be 'auto', 'exact' or 'approx' "
                         f"(got {method!r})")
    d = a - b
    has_zeros = bool((d == 0).any())
    d = d[d != 0]
    n = d.numel()
    if n == 0:
        return 1.0
    ranks = _average_ranks(d.abs())
    w_plus = float(ranks[d > 0].sum())
    _, counts = torch.unique(d.abs(), return_counts=True)
    ties = bool((counts > 1).any())
    if method == 'auto':
        if a.numel() > EXACT_MAX:
            method = 'approx'
        elif not (ties or has_zeros) or a.numel() <= PERMUTATION_MAX:
            method = 'exact'
        else:
            method = 'approx'
    if method == 'exact':
        if not ties:
            if n > EXACT_MAX:
                raise ValueError(f"method='exact' supports at most "
                                 f"{EXACT_MAX} untied differences (got {n})")
            dist = _exact_distribution(n)
            # A statistic made fractional by zeros is rounded outwards.
            low = float(dist[:math.ceil(w_plus) + 1].sum())
            high = float(dist[math.floor(w_plus):].sum())
        else:
            if n > PERMUTATION_MAX:
                raise ValueError(f"method='exact' with tied differences "
                                 f"supports at most {PERMUTATION_MAX} "
                                 f"(got {n})")
            signs = (torch.arange(2**n).unsqueeze(1) >> torch.arange(n)) & 1
            null = signs.double() @ ranks
            gamma = 1e-14 * max(abs(w_plus), 1.0)  # As SciPy's tolerance.
            low = float((null <= w_plus + gamma).double().mean())
            high = float((null >= w_plus - gamma).double().mean())
        return min(1.0, 2.0 * min(low, high))
    mean = n * (n + 1) / 4.0
    tie_term = float((counts.double()**3 - counts.double()).sum())
    variance = (n * (n + 1) * (2 * n + 1) - tie_term / 2) / 24.0
    if variance <= 0:
        return 1.0
    z = (w_plus - mean) / math.sqrt(variance)
    return min(1.0, math.erfc(abs(z) / math.sqrt(2.0)))


def holm(pvalues: Union[Sequence[float], Tensor]) -> List[float]:
    r"""Holm's step-down adjustment of :math:`m` p-values for a family of
    comparisons: with :math:`p_{(1)} \le \dots \le p_{(m)}`,

    .. math::
        \tilde{p}_{(i)} = \min\Big(1, \max_{j \le i}\,(m - j + 1)\,
        p_{(j)}\Big),

    returned in the input order (reject at level :math:`\alpha` where
    :math:`\tilde{p} \le \alpha`; controls the family-wise error rate).
    """
    p = torch.as_tensor(pvalues, dtype=torch.float64).flatten()
    if p.numel() == 0:
        return []
    if not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError(f"'pvalues' must lie in [0, 1] (got "
                         f"{p.tolist()})")
    m = p.numel()
    sorted_p, order = torch.sort(p, stable=True)
    factor = torch.arange(m, 0, -1, dtype=torch.float64)
    adjusted = torch.cummax(sorted_p * factor, 0).values.clamp(max=1.0)
    out = torch.empty_like(p)
    out[order] = adjusted
    return out.tolist()
