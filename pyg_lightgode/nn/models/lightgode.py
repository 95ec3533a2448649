from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Embedding

from pyg_lightgode.data.bipartite import bipartite_to_adj_t, check_interactions
from pyg_lightgode.nn.conv.lightgode_conv import LightGODEConv
from pyg_lightgode.validation import (
    check_all_finite,
    check_finite,
    check_finite_float,
    check_positive_int,
)
from torch_geometric.nn.conv import LGConv

_DIVERGED = ('; did training diverge? (lower the learning rate or '
             "'gamma')")


def alignment_loss(user_emb: Tensor, item_emb: Tensor) -> Tensor:
    r"""DirectAU alignment: mean over pairs of
    :math:`\|\tilde{u} - \tilde{i}\|^2` on L2-normalised rows."""
    u, i = F.normalize(user_emb, dim=-1), F.normalize(item_emb, dim=-1)
    return (u - i).pow(2).sum(dim=-1).mean()


def uniformity_loss(emb: Tensor) -> Tensor:
    r"""DirectAU uniformity:
    :math:`\log \operatorname{mean}_{j<k} \exp(-2\|x_j - x_k\|^2)` over all
    distinct pairs of L2-normalised rows.

    For unit rows :math:`\|x_j - x_k\|^2 = 2 - 2 x_j^\top x_k`, so the
    kernel is :math:`\exp(4 x_j^\top x_k - 4)`: one matrix product instead of
    :func:`torch.pdist`, whose backward pass is slower on CPU. The
    diagonal is subtracted, so the mean runs over distinct pairs exactly.

    The kernel is a symmetric function of :math:`X X^\top`, so the gradient
    through both factors is twice the one through the left factor alone:
    the backward pass takes one product instead of two."""
    n = emb.size(0)
    if n < 2:
        return emb.new_zeros(())
    x = F.normalize(emb, dim=-1)
    gram = x @ x.detach().t()
    gram = gram + (gram - gram.detach())  # same value, doubled gradient
    kernel = gram.sub_(1).mul_(4).exp_()
    return ((kernel.sum() - kernel.diagonal().sum()) / (n * (n - 1))).log()


def embedding_discrepancy(initial: Tensor, propagated: Tensor) -> Tensor:
    r"""The package's measure of how far propagation moves embeddings from the
    space they were trained in (SPEC 1.3):

    .. math::
        \frac{1}{N} \sum_v \left(1 - \cos(\mathbf{e}^{(0)}_v,
        \mathbf{e}_v)\right) = \frac{1}{2N} \sum_v
        \|\tilde{\mathbf{e}}^{(0)}_v - \tilde{\mathbf{e}}_v\|^2,

    i.e. half the squared distance of the L2-normalised rows, the quantity
    the alignment loss works in. 0 means no change of direction; 2 is the
    maximum (opposite directions). :obj:`propagated` may carry a leading
    time/layer dimension :obj:`[T, N, F]`, giving one value per entry.
    """
    if initial.shape != propagated.shape[-initial.dim():]:
        raise ValueError(f"'propagated' must end with the shape of 'initial' "
                         f"{list(initial.shape)} (got "
                         f"{list(propagated.shape)})")
    cos = F.cosine_similarity(initial.expand_as(propagated), propagated,
                              dim=-1)
    return (1 - cos).mean(dim=-1)


class LightGODE(torch.nn.Module):
    r"""The LightGODE model from the `"Do We Really Need Graph Convolution
    During Training? Light Post-Training Graph-ODE for Efficient
    Recommendation" <https://arxiv.org/abs/2407.18910>`_ paper.

    Training is plain matrix factorisation with the DirectAU objective and no
    graph at all (:meth:`loss`):

    .. math::
        \mathcal{L} = \frac{1}{|B|}\sum_{(u,i) \in B}
        \|\tilde{\mathbf{u}} - \tilde{\mathbf{i}}\|^2 + \frac{\gamma}{2}
        \left(\ell_{\mathrm{unif}}(U_B) + \ell_{\mathrm{unif}}(I_B)\right).

    After training, the stacked tables :math:`\mathbf{E}_0` are propagated
    once over the training interactions by the non-parametric graph ODE of
    :class:`~pyg_lightgode.nn.conv.LightGODEConv`,
    :math:`\frac{d\mathbf{E}}{dt} = \hat{\mathbf{A}}\mathbf{E}(t) +
    \mathbf{E}_0`, and users are scored against items by inner product.

    The propagated embeddings are cached; a cached result is returned only
    while the graph, the ODE settings and the trained tables are exactly the
    ones it was computed from (the tables are compared element-wise, which
    costs one copy of them, because fused optimizers and :obj:`.data` writes
    change parameters without bumping their version counters). So a stale
    result is never returned (the official implementation forgets to
    recompute after loading a checkpoint).

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        embedding_dim (int, optional): Embedding size. (default: :obj:`64`)
        t (float, optional): ODE end time. (default: :obj:`3.0`, the
            official Gowalla setting)
        gamma (float, optional): Uniformity weight. (default: :obj:`10.0`)
        method (str, optional): ODE solver of
            :class:`~pyg_lightgode.nn.conv.LightGODEConv`; the default
            :obj:`'euler'` without step size is the official single step.
        step_size (float, optional): Step of fixed-step solvers.
        sparse (bool, optional): Use sparse embedding gradients (pair with
            :class:`torch.optim.SparseAdam`) so a step touches only the rows
            in the batch. (default: :obj:`False`)
        **kwargs (optional): Further arguments of
            :class:`~pyg_lightgode.nn.conv.LightGODEConv` (:obj:`rtol`, ...).
    """
    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64,
                 t: float = 3.0, gamma: float = 10.0, method: str = 'euler',
                 step_size: Optional[float] = None, sparse: bool = False,
                 **kwargs):
        super().__init__()
        num_users = check_positive_int(num_users, 'num_users')
        num_items = check_positive_int(num_items, 'num_items')
        embedding_dim = check_positive_int(embedding_dim, 'embedding_dim')
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim = embedding_dim
        self.gamma = check_finite_float(gamma, 'gamma', minimum=0.0)
        self.user_embedding = Embedding(num_users, embedding_dim,
                                        sparse=sparse)
        self.item_embedding = Embedding(num_items, embedding_dim,
                                        sparse=sparse)
        self.conv = LightGODEConv(t=t, method=method, step_size=step_size,
                                  **kwargs)
        self._cache_key = self._cache_e0 = self._cache_value = None
        self._graph_key = None
        self._graph = None
        self.reset_parameters()

    def reset_parameters(self):
        r"""Resets all learnable parameters of the module."""
        torch.nn.init.xavier_normal_(self.user_embedding.weight)
        torch.nn.init.xavier_normal_(self.item_embedding.weight)
        self.conv.reset_parameters()
        self._cache_key = None

    @property
    def t(self):
        return self.conv.t

    def _check_batch(self, user_index: Tensor, item_index: Tensor):
        for name, index in (('user_index', user_index), ('item_index',
                                                         item_index)):
            if not isinstance(index, Tensor):
                raise TypeError(f"'{name}' must be a 1-D tensor of ids (got "
                                f"{type(index).__name__})")
        if user_index.shape != item_index.shape or user_index.dim() != 1:
            raise ValueError(f"'user_index' and 'item_index' must be 1-D and "
                             f"of equal length (got {list(user_index.shape)} "
                             f"and {list(item_index.shape)})")
        if user_index.numel() == 0:
            raise ValueError("'user_index' and 'item_index' are empty; the "
                             "loss needs at least one (user, item) pair")
        check_interactions(torch.stack([user_index, item_index]),
                           self.num_users, self.num_items,
                           'user_index/item_index')

    def loss(self, user_index: Tensor, item_index: Tensor,
             gather: Optional[Callable[[Tensor], Tensor]] = None) -> Tensor:
        r"""Alignment + :math:`\gamma` uniformity on a batch of observed
        (user, item) pairs. Needs no graph.

        :obj:`gather`, if given, maps this process's rows to the rows of the
        whole (distributed) batch before the uniformity terms, which are over
        all pairs of the batch and so do not decompose over shards."""
        self._check_batch(user_index, item_index)
        u = self.user_embedding(user_index)
        i = self.item_embedding(item_index)
        check_all_finite([('user_embedding', u), ('item_embedding', i)],
                         ' in the rows of this batch' + _DIVERGED)
        align = alignment_loss(u, i)
        if gather is not None:
            u, i = gather(u), gather(i)
        return align + self.gamma * (uniformity_loss(u) +
                                     uniformity_loss(i)) / 2

    def _check_tables(self):
        check_all_finite([('user_embedding', self.user_embedding.weight),
                          ('item_embedding', self.item_embedding.weight)],
                         _DIVERGED)

    def embedding(self) -> Tensor:
        r"""The trained tables stacked, users then items: :math:`E_0`."""
        return torch.cat([self.user_embedding.weight,
                          self.item_embedding.weight])

    def _adj_t(self, interactions: Tensor) -> Tensor:
        key = (id(interactions), interactions._version,
               interactions.data_ptr(), interactions.shape)
        if key != self._graph_key:
            index = check_interactions(interactions, self.num_users,
                                       self.num_items, 'interactions')
            self._graph = bipartite_to_adj_t(index, self.num_users,
                                             self.num_items)
            self._graph_key = key
        return self._graph

    def get_embedding(self, interactions: Tensor,
                      t: Optional[Union[float, Tensor]] = None
                      ) -> Tuple[Tensor, Tensor]:
        r"""Propagated user and item embeddings after training.

        Args:
            interactions (torch.Tensor): The bipartite TRAINING interactions
                :obj:`[2, E]` (user ids, item ids).
            t (float or torch.Tensor, optional): End time(s); a 1-D tensor of
                increasing times returns :obj:`[len(t), U, F]` and
                :obj:`[len(t), I, F]` from one solve.

        Without gradient tracking (evaluation) the result is cached until the
        parameters, the graph or :obj:`t` change.
        """
        adj_t = self._adj_t(interactions)
        e0 = self.embedding()
        t_key = tuple(t.tolist()) if isinstance(t, Tensor) else t
        key = (self._graph_key, t_key, self.conv.t, self.conv.method,
               self.conv.step_size)
        if (not torch.is_grad_enabled() and key == self._cache_key
                and torch.equal(e0, self._cache_e0)):
            return self._cache_value
        self._check_tables()
        out = self.conv(e0, adj_t, t=t)
        check_finite(out, 'get_embedding()', f' after propagation to t='
                     f'{self.conv.t if t is None else t_key} with method='
                     f'{self.conv.method!r}: the ODE solution overflowed; '
                     f"use a smaller 't' or another method")
        out = (out[..., :self.num_users, :], out[..., self.num_users:, :])
        if not torch.is_grad_enabled():
            self._cache_key, self._cache_e0, self._cache_value = key, e0, out
        return out

    def get_layer_embedding(self, interactions: Tensor, num_layers: int,
                            combine: str = 'mean') -> Tuple[Tensor, Tensor]:
        r"""Discrete LightGCN-style post-training propagation for comparison:
        :obj:`num_layers` :class:`~torch_geometric.nn.conv.LGConv` steps of
        the trained tables, combined as the mean of layers
        :math:`0..L` (:obj:`combine='mean'`, LightGCN's readout) or the last
        layer only (:obj:`'last'`). Returns :obj:`[L+1, U, F]` and
        :obj:`[L+1, I, F]`: entry :math:`l` is the readout after :math:`l`
        layers."""
        if num_layers < 0:
            raise ValueError(f"'num_layers' must be >= 0 (got {num_layers})")
        if combine not in ('mean', 'last'):
            raise ValueError(f"'combine' must be 'mean' or 'last' (got "
                             f"{combine!r})")
        adj_t = self._adj_t(interactions)
        self._check_tables()
        conv = LGConv(normalize=self.conv.normalize)
        x = self.embedding()
        layers, total = [x], x
        for layer in range(1, num_layers + 1):
            x = conv(x, adj_t)
            total = total + x
            layers.append(total / (layer + 1) if combine == 'mean' else x)
        out = torch.stack(layers)
        return out[:, :self.num_users], out[:, self.num_users:]

    def embedding_discrepancy(self, interactions: Tensor,
                              t: Optional[Union[float, Tensor]] = None,
                              num_layers: Optional[int] = None) -> Tensor:
        r""":func:`embedding_discrepancy` between the trained tables and their
        propagation: by the ODE up to :obj:`t` (default), or by
        :obj:`num_layers` discrete layers (one value per layer count
        :math:`0..L`)."""
        if num_layers is not None:
            users, items = self.get_layer_embedding(interactions, num_layers)
        else:
            users, items = self.get_embedding(interactions, t=t)
        return embedding_discrepancy(self.embedding(),
                                     torch.cat([users, items], dim=-2))

    def recommend(self, interactions: Tensor, users: Optional[Tensor] = None,
                  k: int = 20, exclude: Union[Tensor, list, None] = 'train',
                  **kwargs) -> Tuple[Tensor, Tensor]:
        r"""Top-:obj:`k` items (ids and scores) for :obj:`users` from the
        propagated embeddings. By default the training :obj:`interactions`
        are excluded; pass :obj:`exclude=None` to keep them or further
        interaction indices to exclude more."""
        from pyg_lightgode.metrics import recommend
        user_emb, item_emb = self.get_embedding(interactions)
        if isinstance(exclude, str) and exclude == 'train':
            exclude = interactions
        return recommend(user_emb, item_emb, users=users, k=k,
                         exclude=exclude, **kwargs)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, embedding_dim={self.embedding_dim}, '
                f't={self.conv.t}, gamma={self.gamma}, '
                f'method={self.conv.method!r})')
