from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Embedding
from torch_geometric.nn.conv import LGConv
from torch_geometric.typing import Adj, OptTensor
from torch_geometric.utils import is_sparse, to_edge_index

from pyg_lightgode.data.bipartite import bipartite_to_adj_t, check_interactions
from pyg_lightgode.data.validation import (
    check_all_finite,
    check_finite,
    check_finite_float,
    check_index_range,
    check_positive_int,
)
from pyg_lightgode.nn.conv.lightgode_conv import LightGODEConv
from pyg_lightgode.nn.conv.utils import check_graph, is_sparse_adjacency
from pyg_lightgode.nn.ode import Times

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
    r"""How far propagation moves embeddings from the space they were
    trained in:

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

    Trains user and item embeddings :math:`\mathbf{X}` as plain matrix
    factorisation with the alignment and uniformity loss and no graph
    (:meth:`recommendation_loss`), and propagates them afterwards over the
    graph of :obj:`num_users + num_items` nodes (users first, then items)
    with :class:`~pyg_lightgode.nn.conv.LightGODEConv`:

    .. math::
        \frac{d\mathbf{E}(t)}{dt} = \hat{\mathbf{A}} \mathbf{E}(t) +
        \mathbf{X}, \qquad \mathbf{E}(0) = \mathbf{X}.

    As in :class:`~torch_geometric.nn.models.LightGCN`, graph methods take
    the homogeneous :obj:`edge_index` (or a transposed sparse adjacency)
    and return tensors; nothing is cached, so a caller that reuses the
    propagated embeddings holds the tensor :meth:`get_embedding` returned.
    :meth:`user_item_embeddings` takes a bipartite :obj:`[2, E]`
    interaction index instead.

    Args:
        num_users (int): The number of users.
        num_items (int): The number of items.
        embedding_dim (int, optional): The dimensionality of the embeddings.
            (default: :obj:`64`)
        t (float, optional): The ODE end time. (default: :obj:`3.0`)
        gamma (float, optional): The weight of the uniformity loss.
            (default: :obj:`10.0`)
        method (str, optional): The ODE solver of
            :class:`~pyg_lightgode.nn.conv.LightGODEConv`; :obj:`"euler"`
            without :obj:`step_size` is the official single step.
            (default: :obj:`"euler"`)
        step_size (float, optional): The step of fixed-step solvers.
            (default: :obj:`None`)
        sparse (bool, optional): If set to :obj:`True`, the embeddings get
            sparse gradients (for :class:`torch.optim.SparseAdam`).
            (default: :obj:`False`)
        **kwargs (optional): Additional arguments of
            :class:`~pyg_lightgode.nn.conv.LightGODEConv`.
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
        self.num_nodes = num_users + num_items
        self.embedding_dim = embedding_dim
        self.gamma = check_finite_float(gamma, 'gamma', minimum=0.0)
        self.user_embedding = Embedding(num_users, embedding_dim,
                                        sparse=sparse)
        self.item_embedding = Embedding(num_items, embedding_dim,
                                        sparse=sparse)
        self.conv = LightGODEConv(t=t, method=method, step_size=step_size,
                                  **kwargs)
        self.reset_parameters()

    def reset_parameters(self):
        r"""Resets all learnable parameters of the module."""
        torch.nn.init.xavier_normal_(self.user_embedding.weight)
        torch.nn.init.xavier_normal_(self.item_embedding.weight)
        self.conv.reset_parameters()

    @property
    def t(self) -> Times:
        return self.conv.t

    def embedding(self) -> Tensor:
        r"""The trained embeddings of all nodes before propagation, users
        then items :obj:`[num_users + num_items, F]`."""
        return torch.cat([self.user_embedding.weight,
                          self.item_embedding.weight])

    def _check_graph(self, edge_index: Adj, edge_weight: OptTensor):
        check_graph(edge_index, edge_weight, self.num_nodes,
                    self.conv.normalize)
        check_all_finite([('user_embedding', self.user_embedding.weight),
                          ('item_embedding', self.item_embedding.weight)],
                         _DIVERGED)

    def get_embedding(self, edge_index: Adj, edge_weight: OptTensor = None,
                      t: Optional[Times] = None) -> Tensor:
        r"""Returns the propagated embeddings of all nodes,
        :obj:`[num_users + num_items, F]`, or :obj:`[T, num_users +
        num_items, F]` for :math:`T` times :obj:`t` (one solve).

        Args:
            edge_index (torch.Tensor or SparseTensor): The graph over users
                and items (items offset by :obj:`num_users`), *e.g.*,
                :meth:`~pyg_lightgode.data.BipartiteSplit.edge_index` or
                :meth:`~pyg_lightgode.data.BipartiteSplit.adj_t`.
            edge_weight (torch.Tensor, optional): The edge weights.
                (default: :obj:`None`)
            t (float or Sequence[float] or torch.Tensor, optional): The end
                time(s) instead of the model's :obj:`t`.
                (default: :obj:`None`)
        """
        if not is_sparse_adjacency(edge_index, edge_weight):
            # Node ids out of range would fail deep inside the scatter.
            check_graph(edge_index, edge_weight, self.num_nodes,
                        self.conv.normalize)
        out = self.conv(self.embedding(), edge_index, edge_weight, t=t)
        # One read of the result (a table or graph value that is not
        # finite makes it so): its sum is finite unless an entry is not or
        # the sum overflows; only then is every entry read, and the cause
        # looked for.
        total = out.detach().sum()
        if not bool(torch.isfinite(total)) and \
                not bool(torch.isfinite(out.detach()).all()):
            self._check_graph(edge_index, edge_weight)
            check_finite(out, 'get_embedding()', f' after propagation to '
                         f't={self.conv.t if t is None else t} with method='
                         f'{self.conv.method!r}: the ODE solution '
                         f"overflowed; use a smaller 't' or another method")
        return out

    def forward(self, edge_index: Adj, edge_label_index: OptTensor = None,
                edge_weight: OptTensor = None) -> Tensor:
        r"""Computes the scores :math:`\mathbf{x}_u^{\top} \mathbf{x}_i` of
        the node pairs :obj:`edge_label_index` (default: the edges of
        :obj:`edge_index`) from the embeddings propagated over
        :obj:`edge_index`.

        Args:
            edge_index (torch.Tensor or SparseTensor): The graph.
            edge_label_index (torch.Tensor, optional): The node pairs
                :obj:`[2, B]` to score. (default: :obj:`None`)
            edge_weight (torch.Tensor, optional): The edge weights.
                (default: :obj:`None`)
        """
        if edge_label_index is None:
            if is_sparse(edge_index):
                edge_label_index, _ = to_edge_index(edge_index)
            else:
                edge_label_index = edge_index
        check_index_range(edge_label_index, self.num_nodes,
                          'edge_label_index', 'node ids',
                          'num_users + num_items')
        out = self.get_embedding(edge_index, edge_weight)
        return (out[edge_label_index[0]] * out[edge_label_index[1]]).sum(-1)

    def predict_link(self, edge_index: Adj,
                     edge_label_index: OptTensor = None,
                     edge_weight: OptTensor = None,
                     prob: bool = False) -> Tensor:
        r"""Predicts links between the node pairs :obj:`edge_label_index`:
        probabilities :math:`\sigma(\mathbf{x}_u^{\top} \mathbf{x}_i)` if
        :obj:`prob`, else their rounding. Arguments as :meth:`forward`."""
        pred = self(edge_index, edge_label_index, edge_weight).sigmoid()
        return pred if prob else pred.round()

    def recommend(self, edge_index: Adj, edge_weight: OptTensor = None,
                  src_index: OptTensor = None, dst_index: OptTensor = None,
                  k: int = 1, sorted: bool = True,
                  exclude_links: OptTensor = None) -> Tensor:
        r"""Returns the top-:math:`k` nodes of :obj:`dst_index` for every
        node of :obj:`src_index` by inner product, :obj:`[B, k]`, best
        first (*e.g.*, users as :obj:`src_index`, items offset by
        :obj:`num_users` as :obj:`dst_index`). Entries are :obj:`-1` where
        fewer than :math:`k` candidates remain.

        Args:
            edge_index (torch.Tensor or SparseTensor): The graph.
            edge_weight (torch.Tensor, optional): The edge weights.
                (default: :obj:`None`)
            src_index (torch.Tensor, optional): The nodes to recommend for.
                (default: :obj:`None`, all nodes)
            dst_index (torch.Tensor, optional): The candidate nodes.
                (default: :obj:`None`, all nodes)
            k (int, optional): The number of recommendations.
                (default: :obj:`1`)
            sorted (bool, optional): Kept for
                :class:`~torch_geometric.nn.models.LightGCN`'s signature; the
                result is always sorted by score. (default: :obj:`True`)
            exclude_links (torch.Tensor, optional): Node pairs :obj:`[2, L]`
                (source, candidate) never to recommend, *e.g.*, the training
                edges. (default: :obj:`None`)
        """
        from pyg_lightgode.metrics.retrieval import exact_topk
        num_nodes = self.num_nodes
        for name, index in (('src_index', src_index),
                            ('dst_index', dst_index),
                            ('exclude_links', exclude_links)):
            if index is not None:
                check_index_range(index, num_nodes, name, 'node ids',
                                  'num_users + num_items')
        k = check_positive_int(k, 'k')
        out = self.get_embedding(edge_index, edge_weight)
        out_src = out if src_index is None else out[src_index]
        out_dst = out if dst_index is None else out[dst_index]
        excluded = None
        if exclude_links is not None:
            excluded = _local_pairs(exclude_links, src_index, dst_index)
        top_index, _ = exact_topk(out_src.detach(), out_dst.detach(), k,
                                  excluded)
        if dst_index is not None:  # Map local top-indices to node ids.
            top_index = torch.where(top_index >= 0,
                                    dst_index[top_index.clamp(min=0)],
                                    top_index)
        return top_index

    def recommendation_loss(
        self,
        user_index: Tensor,
        item_index: Tensor,
        gather: Optional[Callable[[Tensor], Tensor]] = None,
    ) -> Tensor:
        r"""The training objective on a batch of observed (user, item)
        pairs (no graph): alignment plus :math:`\gamma` uniformity,

        .. math::
            \frac{1}{|B|} \sum_{(u, i) \in B} \| \tilde{\mathbf{x}}_u -
            \tilde{\mathbf{x}}_i \|^2 + \frac{\gamma}{2} \left(
            \ell_{\mathrm{unif}}(\mathbf{X}_{U_B}) +
            \ell_{\mathrm{unif}}(\mathbf{X}_{I_B}) \right),

        on L2-normalised rows. Also available as :meth:`loss`.

        Args:
            user_index (torch.Tensor): User ids :obj:`[B]`.
            item_index (torch.Tensor): Item ids :obj:`[B]` (not offset).
            gather (callable, optional): Maps this process's rows to the
                rows of the whole distributed batch before the uniformity
                terms, which do not decompose over shards.
                (default: :obj:`None`)
        """
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

    loss = recommendation_loss

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

    def user_item_embeddings(self, interactions: Tensor,
                             edge_weight: OptTensor = None,
                             t: Optional[Times] = None
                             ) -> Tuple[Tensor, Tensor]:
        r"""The propagated user and item embeddings (:obj:`[U, F]` and
        :obj:`[I, F]`, or :obj:`[T, U, F]` and :obj:`[T, I, F]` for
        :math:`T` times) over the bipartite :obj:`interactions`
        :obj:`[2, E]` (user ids, item ids) with optional weights per
        interaction: :meth:`get_embedding` of the symmetric graph."""
        index = check_interactions(interactions, self.num_users,
                                   self.num_items, 'interactions')
        adj_t = bipartite_to_adj_t(index, self.num_users, self.num_items,
                                   edge_weight)
        out = self.get_embedding(adj_t.to(self.user_embedding.weight.device),
                                 t=t)
        return out[..., :self.num_users, :], out[..., self.num_users:, :]

    def get_layer_embedding(self, edge_index: Adj, num_layers: int,
                            edge_weight: OptTensor = None,
                            combine: str = 'mean') -> Tensor:
        r"""Discrete LightGCN-style propagation of the trained embeddings
        for comparison: :obj:`[L + 1, num_users + num_items, F]`, whose
        entry :math:`l` is the mean of layers :math:`0..l` of
        :class:`~torch_geometric.nn.conv.LGConv` (:obj:`combine='mean'`,
        LightGCN's readout) or layer :math:`l` alone (:obj:`'last'`)."""
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) \
                or num_layers < 0:
            raise ValueError(f"'num_layers' must be an integer >= 0 (got "
                             f"{num_layers!r})")
        if combine not in ('mean', 'last'):
            raise ValueError(f"'combine' must be 'mean' or 'last' (got "
                             f"{combine!r})")
        self._check_graph(edge_index, edge_weight)
        conv = LGConv(normalize=self.conv.normalize)
        x = self.embedding()
        layers, total = [x], x
        for layer in range(1, num_layers + 1):
            x = conv(x, edge_index, edge_weight)
            total = total + x
            layers.append(total / (layer + 1) if combine == 'mean' else x)
        return torch.stack(layers)

    def embedding_discrepancy(self, edge_index: Adj,
                              edge_weight: OptTensor = None,
                              t: Optional[Times] = None,
                              num_layers: Optional[int] = None) -> Tensor:
        r""":func:`embedding_discrepancy` between the trained embeddings and
        their propagation over :obj:`edge_index`: by the ODE up to
        :obj:`t` (default), or by :obj:`num_layers` discrete layers (one
        value per layer count :math:`0..L`)."""
        if num_layers is not None:
            out = self.get_layer_embedding(edge_index, num_layers,
                                           edge_weight)
        else:
            out = self.get_embedding(edge_index, edge_weight, t=t)
        return embedding_discrepancy(self.embedding(), out)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_users}, '
                f'{self.num_items}, embedding_dim={self.embedding_dim}, '
                f't={self.conv.t}, gamma={self.gamma}, '
                f'method={self.conv.method!r})')


def _local_pairs(links: Tensor, src_index: OptTensor,
                 dst_index: OptTensor) -> Tuple[Tensor, Tensor]:
    r"""The node pairs :obj:`links` as (position in :obj:`src_index`,
    position in :obj:`dst_index`) pairs, every position of a repeated node
    included and pairs outside them dropped."""
    if links.dim() != 2 or links.size(0) != 2:
        raise ValueError(f"'exclude_links' must have shape [2, L] (got "
                         f"{list(links.shape)})")
    link = torch.arange(links.size(1), device=links.device)
    rows = links[0]
    if src_index is not None:
        link, rows = _match(rows, src_index)
    cols = links[1, link]
    if dst_index is not None:
        match, cols = _match(cols, dst_index)
        rows = rows[match]
    return rows, cols


def _match(ids: Tensor, index: Tensor) -> Tuple[Tensor, Tensor]:
    r"""Every :obj:`(j, p)` with :obj:`index[p] == ids[j]`."""
    order = index.argsort(stable=True)
    sorted_index = index[order]
    lo = torch.searchsorted(sorted_index, ids)
    count = torch.searchsorted(sorted_index, ids, right=True) - lo
    j = torch.repeat_interleave(
        torch.arange(ids.numel(), device=ids.device), count)
    start = torch.repeat_interleave(lo - (count.cumsum(0) - count), count)
    return j, order[start + torch.arange(j.numel(), device=ids.device)]
