r"""Score-level fusion of recommenders: per-user standardised scores summed
with weights chosen on validation (the hybrid of LightGODE's tables and the
training-free filters)."""
from typing import Sequence

import torch
from torch import Tensor

from pyg_lightgode.nn.models.graph_filters import (
    Scorer,
    _check_real,
    check_user_ids,
)


class EmbeddingScorer(Scorer):
    r"""Inner-product scores :math:`\mathbf{e}_u^\top \mathbf{e}_i` of fixed
    user and item embeddings (*e.g.* LightGODE's propagated tables) behind
    the :class:`Scorer` interface.

    Args:
        user_emb (torch.Tensor): :obj:`[U, F]`.
        item_emb (torch.Tensor): :obj:`[I, F]`.
    """
    def __init__(self, user_emb: Tensor, item_emb: Tensor):
        super().__init__()
        if user_emb.dim() != 2 or item_emb.dim() != 2 or \
                user_emb.size(1) != item_emb.size(1):
            raise ValueError(f"'user_emb' and 'item_emb' must be [U, F] and "
                             f"[I, F] with the same F (got "
                             f"{list(user_emb.shape)} and "
                             f"{list(item_emb.shape)})")
        self.register_buffer('user_emb', user_emb.detach())
        self.register_buffer('item_emb', item_emb.detach())
        self.num_users, self.num_items = user_emb.size(0), item_emb.size(0)

    def score(self, users: Tensor) -> Tensor:
        users = check_user_ids(users, self.num_users)
        return self.user_emb[users] @ self.item_emb.t()


def standardize(scores: Tensor) -> Tensor:
    r"""Per-row z-score: subtract each row's mean over items and divide by
    its standard deviation (rows with no spread become zeros)."""
    std, mean = torch.std_mean(scores, dim=1, keepdim=True, correction=0)
    return (scores - mean) / std.clamp_min(1e-12)


class ScoreFusion(Scorer):
    r"""Score-level fusion of several recommenders:
    :math:`s_u = \sum_m w_m \, z(s^{(m)}_u)`, where :math:`z` standardises
    each user's scores over all items (:func:`standardize`), so that
    embeddings and filters of different scales combine with weights that
    mean the same on every dataset. Choose the weights on validation data
    (:func:`pyg_lightgode.apps.hybrid.selection.select_fusion`).

    Args:
        scorers (list of Scorer): The parts, all over the same users and
            items.
        weights (list of float): One finite weight per part (a negative
            weight subtracts its part, *e.g.* :class:`Popularity` to
            debias).
    """
    def __init__(self, scorers: Sequence[Scorer], weights: Sequence[float]):
        super().__init__()
        if len(scorers) == 0 or len(scorers) != len(weights):
            raise ValueError(f"'scorers' and 'weights' must be non-empty and "
                             f"of equal length (got {len(scorers)} and "
                             f"{len(weights)})")
        sizes = {(s.num_users, s.num_items) for s in scorers}
        if len(sizes) != 1:
            raise ValueError(f"every scorer must cover the same users and "
                             f"items (got sizes {sorted(sizes)})")
        self.scorers = torch.nn.ModuleList(scorers)
        self.weights = [_check_real(w, 'weights') for w in weights]
        (self.num_users, self.num_items), = sizes

    def score(self, users: Tensor) -> Tensor:
        out = None
        for scorer, weight in zip(self.scorers, self.weights):
            if weight == 0:
                continue
            part = standardize(scorer.score(users)) * weight
            out = part if out is None else out.add_(part)
        if out is None:
            return torch.zeros(users.numel(), self.num_items)
        return out
