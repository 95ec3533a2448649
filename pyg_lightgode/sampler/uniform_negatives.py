from typing import Optional

import torch
from torch import Tensor

from pyg_lightgode.data.bipartite import check_interactions


class UniformNegativeSampler:
    r"""Uniform negative items for (user, item) pairs, as BPR training uses
    them: for every user id drawn, an item the user has NOT interacted with in
    :obj:`index`, drawn uniformly. Vectorised rejection sampling: candidates
    that hit a positive are redrawn together until none is left.

    Args:
        index (torch.Tensor): Observed interactions :obj:`[2, E]`.
        num_users (int): Number of users.
        num_items (int): Number of items.
        max_rounds (int, optional): Redraw rounds before giving up on users
            that interacted with (almost) every item. (default: :obj:`100`)
    """
    def __init__(self, index: Tensor, num_users: int, num_items: int,
                 max_rounds: int = 100):
        index = check_interactions(index, num_users, num_items, 'index')
        self.num_items = num_items
        self.max_rounds = max_rounds
        # Sorted keys user * I + item for membership tests by searchsorted.
        self.keys = torch.unique(index[0] * num_items + index[1])

    def _is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        query = users * self.num_items + items
        pos = torch.searchsorted(self.keys, query).clamp(
            max=self.keys.numel() - 1)
        return self.keys[pos] == query

    def __call__(self, users: Tensor,
                 generator: Optional[Tensor] = None) -> Tensor:
        items = torch.randint(self.num_items, users.shape,
                              generator=generator)
        todo = self._is_positive(users, items).nonzero().view(-1)
        for _ in range(self.max_rounds):
            if todo.numel() == 0:
                return items
            items[todo] = torch.randint(self.num_items, todo.shape,
                                        generator=generator)
            todo = todo[self._is_positive(users[todo], items[todo])]
        raise ValueError(f"could not draw negatives for users "
                         f"{users[todo].unique()[:5].tolist()} in "
                         f"{self.max_rounds} rounds: they interacted with "
                         f"(almost) every item")
