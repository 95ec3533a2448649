r"""Results users can trust, for the results table and its JSON: trained
models over several seeds as mean ± std (:func:`seed_summary`,
:func:`run_seeds`), and paired significance tests of every model against
the best one, Holm-corrected (:func:`significance_table`).

.. code-block:: python

    evaluator = RankingEvaluator(split.test_index, exclude_links=known, ks=20)
    per_user = {}
    for name, model in models.items():
        evaluator.evaluate_scorer(model.score, U, I)
        per_user[name] = evaluator.per_user['ndcg@20'].clone()
    table = significance_table(per_user)
    # {'reference': 'ease', 'metric': 'ndcg@20',
    #  'rows': {'gfcf': {'p_value': 3e-5, 'p_holm': 6e-5}, ...}}
"""
import math
from typing import Callable, Dict, Iterable, Mapping, Optional, Union

from torch import Tensor

from pyg_lightgode.metrics.significance import holm, wilcoxon_signed_rank

PerUser = Mapping[str, Union[Tensor, Mapping[str, Tensor]]]


def _vector(values, metric: str, model: str) -> Tensor:
    if isinstance(values, Mapping):
        if metric not in values:
            raise KeyError(f"model {model!r} has no per-user {metric!r} "
                           f"(has {sorted(values)})")
        values = values[metric]
    if not isinstance(values, Tensor) or values.dim() != 1:
        raise ValueError(f"the per-user {metric} of {model!r} must be a 1-D "
                         f"tensor (got {type(values).__name__})")
    return values


def significance_table(per_user: PerUser, reference: Optional[str] = None,
                       metric: str = 'ndcg@20') -> Dict:
    r"""Paired two-sided Wilcoxon signed-rank tests of every model against
    :obj:`reference` on the per-user values of :obj:`metric`, with Holm's
    correction across the comparisons.

    Args:
        per_user (dict): Model name to its per-user values of
            :obj:`metric` (a 1-D tensor), or to a dictionary of per-user
            vectors (*e.g.* :attr:`RankingEvaluator.per_user
            <pyg_lightgode.metrics.RankingEvaluator>`); all over the same
            users in the same order.
        reference (str, optional): The model compared with every other
            (default: the one with the highest mean :obj:`metric`).
        metric (str, optional): The metric compared.

    Returns:
        :obj:`{'reference': name, 'metric': metric, 'rows': {model:
        {'p_value': p, 'p_holm': q}}}`, one row per other model.
    """
    vectors = {name: _vector(values, metric, name)
               for name, values in per_user.items()}
    if len(vectors) < 2:
        raise ValueError(f"a significance table needs at least two models "
                         f"(got {list(vectors)})")
    sizes = {name: v.numel() for name, v in vectors.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"the per-user vectors must cover the same users "
                         f"(sizes {sizes})")
    if reference is None:
        reference = max(vectors, key=lambda n: float(vectors[n].double()
                                                     .mean()))
    elif reference not in vectors:
        raise KeyError(f"reference {reference!r} is not among the models "
                       f"{sorted(vectors)}")
    others = [name for name in vectors if name != reference]
    pvalues = [wilcoxon_signed_rank(vectors[name], vectors[reference])
               for name in others]
    adjusted = holm(pvalues)
    return {'reference': reference, 'metric': metric,
            'rows': {name: {'p_value': p, 'p_holm': q}
                     for name, p, q in zip(others, pvalues, adjusted)}}


def seed_summary(runs: Iterable[Mapping[str, float]]) -> Dict:
    r"""Mean and sample standard deviation (:math:`n - 1`; 0 for a single
    run) of every metric over the runs of several seeds:
    :obj:`{'seeds': n, 'test_mean': {metric: m}, 'test_std': {metric:
    s}}`. Every run must report the same metrics."""
    runs = [dict(run) for run in runs]
    if not runs:
        raise ValueError("'runs' is empty: nothing to summarise")
    keys = set(runs[0])
    for i, run in enumerate(runs):
        if set(run) != keys:
            raise ValueError(f"run {i} reports {sorted(run)}, run 0 "
                             f"{sorted(keys)}")
    n = len(runs)
    mean, std = {}, {}
    for key in runs[0]:
        values = [float(run[key]) for run in runs]
        mean[key] = sum(values) / n
        std[key] = 0.0 if n == 1 else math.sqrt(
            sum((v - mean[key])**2 for v in values) / (n - 1))
    return {'seeds': n, 'test_mean': mean, 'test_std': std}


def run_seeds(train_and_test: Callable[[int], Mapping[str, float]],
              seeds: Iterable[int]) -> Dict:
    r"""Calls :obj:`train_and_test(seed)` (returning a run's test metrics)
    for every seed and summarises them with :func:`seed_summary`, keeping
    the runs under :obj:`'runs'` (:obj:`{seed: metrics}`)."""
    runs = {int(seed): dict(train_and_test(int(seed))) for seed in seeds}
    return {**seed_summary(runs.values()), 'runs': runs}


def format_mean_std(summary: Mapping, metric: str, digits: int = 4) -> str:
    r"""One cell of a results table: :obj:`'0.1830 ± 0.0012'`."""
    return (f"{summary['test_mean'][metric]:.{digits}f} ± "
            f"{summary['test_std'][metric]:.{digits}f}")
