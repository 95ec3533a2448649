r"""Beyond-accuracy metrics of top-:math:`K` recommendation lists, from how
often every item is recommended (:math:`c_i`, over all evaluated users):

.. math::
    \mathrm{Coverage@K} &= \frac{|\{i : c_i > 0\}|}{|I|}, \qquad
    \mathrm{Gini@K} = \frac{\sum_{j=1}^{|I|} (2j - |I| - 1)\, c_{(j)}}
    {|I| \sum_i c_i},

    \mathrm{PopRank@K} &= \frac{\sum_i c_i\, \rho_i}{\sum_i c_i},

with :math:`c_{(1)} \le \dots \le c_{(|I|)}` (Gini 0: every item
recommended equally often; towards 1: a few items take every slot, as
RecBole's :obj:`GiniIndex`), and :math:`\rho_i = 1 + |\{j : d_j > d_i\}|`
the popularity rank of item :math:`i` by its number of training
interactions :math:`d_i` (1 = most popular; tied items share the best
rank), so PopRank@K is the mean popularity rank of the recommended items
(higher: less popular items recommended). Coverage@K is
:class:`torch_geometric.metrics.LinkPredCoverage`'s.
"""
import torch
from torch import Tensor


def recommendation_counts(index: Tensor, num_items: int) -> Tensor:
    r"""How often every item appears in the top-:math:`K` lists
    :obj:`index` :obj:`[B, K]` (entries outside :obj:`[0, num_items)`, the
    padding, are ignored): :obj:`[num_items]`."""
    index = index.flatten()
    index = index[(index >= 0) & (index < num_items)]
    return torch.bincount(index, minlength=num_items)


def item_coverage(counts: Tensor) -> float:
    r"""The share of items recommended at least once."""
    return float((counts > 0).double().mean())


def gini_index(counts: Tensor) -> float:
    r"""The Gini index of the recommendation counts (0 if nothing was
    recommended)."""
    counts = counts.double().sort().values
    total = float(counts.sum())
    if total == 0:
        return 0.0
    n = counts.numel()
    weight = 2 * torch.arange(1, n + 1, dtype=torch.float64) - n - 1
    return float((weight * counts).sum()) / (n * total)


def popularity_ranks(degree: Tensor) -> Tensor:
    r""":math:`\rho_i = 1 + |\{j : d_j > d_i\}|` for every item."""
    sorted_degree = degree.sort(descending=True).values
    # Items strictly more popular = position of the first equal degree.
    higher = torch.searchsorted(-sorted_degree.double(), -degree.double(),
                                right=False)
    return higher + 1


def mean_popularity_rank(counts: Tensor, degree: Tensor) -> float:
    r"""The mean popularity rank of the recommended items, every
    recommendation counted (NaN if nothing was recommended)."""
    total = float(counts.sum())
    if total == 0:
        return float('nan')
    ranks = popularity_ranks(degree.to(counts.device)).double()
    return float((counts.double() * ranks).sum()) / total
