r"""The PinSage model (Algorithm 2 of Ying et al., KDD 2018): stacked
:class:`~pyg_lightgode.nn.conv.pinsage_conv.PinSAGEConv` layers on sampled
importance neighbourhoods, the output head, layer-wise inference over the
whole catalogue, the max-margin loss, the warm-up learning-rate schedule and
user embeddings for user-to-item ranking."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch_geometric
from torch import Tensor
from torch.nn import Embedding, ModuleList
from torch.optim.lr_scheduler import LambdaLR
from torch_geometric.index import index2ptr
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, OptTensor
from torch_geometric.utils import scatter

from pyg_lightgode.data.bipartite import check_interactions
from pyg_lightgode.nn.conv.pinsage_conv import (
    NORM_EPS,
    PinSAGEConv,
    check_edge_weight,
    importance_weights,
)
from pyg_lightgode.validation import (
    check_finite,
    check_finite_float,
    check_floating,
    check_index_dtype,
    check_index_range,
    check_positive_int,
)

#: One layer of a sampled computation graph: :obj:`(edge_index, edge_weight,
#: num_targets)`, see :class:`PinSage`.
Block = Tuple[Adj, OptTensor, int]


def _check_embedding(emb: Tensor, name: str, dim: int) -> Tensor:
    if not isinstance(emb, Tensor) or emb.dim() != dim:
        shape = '[B, D]' if dim == 2 else '[B, H, D]'
        raise ValueError(f"'{name}' must be a {dim}-D tensor {shape} (got "
                         f"{getattr(emb, 'shape', type(emb).__name__)})")
    check_floating(emb, name)
    return check_finite(emb, name)


def _check_node_ids(ids: Tensor, num_nodes: int, name: str) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dim() != 1:
        raise ValueError(f"'{name}' must be a 1-D tensor of integer node "
                         f"ids (got {getattr(ids, 'shape', type(ids))})")
    check_index_dtype(ids, name)
    return check_index_range(ids.long(), num_nodes, name, 'node ids',
                             'num_nodes')


def _check_neighborhood(edge_index: Tensor, edge_weight: OptTensor,
                        num_nodes: int) -> Tuple[Tensor, OptTensor]:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or \
            edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must be a [2, E] tensor (neighbour "
                         f"-> target), got "
                         f"{getattr(edge_index, 'shape', type(edge_index))}")
    edge_index = torch.stack([
        _check_node_ids(edge_index[0], num_nodes, 'edge_index[0]'),
        _check_node_ids(edge_index[1], num_nodes, 'edge_index[1]')
    ])
    if edge_weight is not None:
        edge_weight = check_edge_weight(edge_weight, edge_index.size(1))
    return edge_index, edge_weight


def _edges_of_targets(ptr: Tensor, targets: Tensor) -> Tensor:
    r"""Positions (in target-sorted order) of all edges of :obj:`targets`,
    given the CSR row pointer :obj:`ptr` of the target-sorted edges."""
    start, count = ptr[targets], ptr[targets + 1] - ptr[targets]
    offset = torch.cumsum(count, 0) - count
    pos = torch.arange(int(count.sum()), device=ptr.device)
    return start.repeat_interleave(count) + pos - offset.repeat_interleave(
        count)


def neighborhood_blocks(
    edge_index: Tensor,
    edge_weight: OptTensor,
    seeds: Tensor,
    num_layers: int,
    num_nodes: Optional[int] = None,
) -> Tuple[Tensor, List[Block]]:
    r"""Builds the :obj:`num_layers`-hop computation graph of :obj:`seeds`
    from one fixed neighbourhood graph over all nodes, in the block format of
    :meth:`PinSage.forward`.

    Top-down (Algorithm 2): :math:`\mathcal{S}^{(K)}` are the seeds and
    :math:`\mathcal{S}^{(k-1)} = \mathcal{S}^{(k)} \cup
    \mathcal{N}(\mathcal{S}^{(k)})`, new nodes appended, so each level is a
    prefix of the next one.

    Args:
        edge_index (torch.Tensor): The neighbourhoods :obj:`[2, E]`, row 0 the
            neighbour, row 1 the target (global ids).
        edge_weight (torch.Tensor, optional): Importance weights :obj:`[E]`.
        seeds (torch.Tensor): Distinct global ids of the minibatch nodes.
        num_layers (int): Number of layers :math:`K`.
        num_nodes (int, optional): Number of nodes of the graph.

    Returns:
        :obj:`(n_id, blocks)`: the global ids of the compact node set
        (seeds first) and the :math:`K` blocks, :obj:`blocks[0]` feeding the
        first layer.
    """
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() > 0 \
            else int(seeds.max()) + 1
    edge_index, edge_weight = _check_neighborhood(edge_index, edge_weight,
                                                  num_nodes)
    seeds = _check_node_ids(seeds, num_nodes, 'seeds')
    if seeds.numel() == 0:
        raise ValueError("'seeds' is empty")
    if torch.unique(seeds).numel() != seeds.numel():
        raise ValueError("'seeds' must be distinct node ids")
    if num_layers < 1:
        raise ValueError(f"'num_layers' must be >= 1 (got {num_layers})")

    perm = torch.argsort(edge_index[1], stable=True)
    ptr = index2ptr(edge_index[1, perm], num_nodes)
    local = torch.full((num_nodes, ), -1, dtype=torch.long,
                       device=seeds.device)
    local[seeds] = torch.arange(seeds.numel(), device=seeds.device)
    n_id, blocks = seeds, []
    for _ in range(num_layers):
        eid = perm[_edges_of_targets(ptr, n_id)]
        src, dst = edge_index[0, eid], edge_index[1, eid]
        new = torch.unique(src[local[src] < 0])
        local[new] = torch.arange(n_id.numel(), n_id.numel() + new.numel(),
                                  device=seeds.device)
        block_index = torch.stack([local[src], local[dst]])
        weight = None if edge_weight is None else edge_weight[eid]
        blocks.append((block_index, weight, n_id.numel()))
        n_id = torch.cat([n_id, new])
    return n_id, blocks[::-1]


def sampled_blocks(edge_index: Tensor, edge_weight: OptTensor,
                   num_sampled_nodes: Sequence[int],
                   num_sampled_edges: Sequence[int]) -> List[Block]:
    r"""Converts a hop-ordered sampled subgraph (the minibatch format of
    :class:`~pyg_lightgode.sampler.PinSageSampler` and of PyG's
    :class:`~torch_geometric.loader.NeighborLoader`, as read by
    :func:`~torch_geometric.utils.trim_to_layer`) into the block format of
    :meth:`PinSage.forward`.

    With :math:`K` = :obj:`len(num_sampled_edges)` hops, layer
    :math:`l = 1..K` updates the first
    :obj:`sum(num_sampled_nodes[:K - l + 1])` nodes from the edges
    :obj:`edge_index[:, :sum(num_sampled_edges[:K - l + 1])]` (the
    neighbourhoods of exactly those nodes), so no tensor is copied but
    prefix slices.

    Args:
        edge_index (torch.Tensor): Local edges :obj:`[2, E]`, neighbour ->
            target, grouped by hop.
        edge_weight (torch.Tensor, optional): Importance weights :obj:`[E]`.
        num_sampled_nodes (list of int): Nodes per hop (:math:`K + 1`
            entries, the seeds first).
        num_sampled_edges (list of int): Edges per hop (:math:`K` entries).

    Returns:
        The :math:`K` blocks :obj:`(edge_index, edge_weight, num_targets)`,
        :obj:`blocks[0]` feeding the first layer.
    """
    nodes, edges = list(num_sampled_nodes), list(num_sampled_edges)
    num_hops = len(edges)
    if num_hops < 1 or len(nodes) != num_hops + 1:
        raise ValueError(f"'num_sampled_nodes' must have one entry more than "
                         f"'num_sampled_edges' (K + 1 and K >= 1 entries), "
                         f"got {len(nodes)} and {num_hops}")
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or \
            edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must be a [2, E] tensor (got "
                         f"{getattr(edge_index, 'shape', type(edge_index))})")
    if sum(edges) != edge_index.size(1):
        raise ValueError(f"'num_sampled_edges' sums to {sum(edges)}, but "
                         f"'edge_index' has {edge_index.size(1)} edges")
    if edge_weight is not None:
        edge_weight = check_edge_weight(edge_weight, edge_index.size(1))
    blocks = []
    for layer in range(1, num_hops + 1):
        num_targets = sum(nodes[:num_hops - layer + 1])
        num_edges = sum(edges[:num_hops - layer + 1])
        blocks.append((edge_index[:, :num_edges],
                       None if edge_weight is None else
                       edge_weight[:num_edges], num_targets))
    return blocks


def max_margin_loss(
    query_emb: Tensor,
    pos_emb: Tensor,
    neg_emb: OptTensor = None,
    hard_neg_emb: OptTensor = None,
    margin: float = 1.0,
) -> Tensor:
    r"""The max-margin ranking loss of PinSage,

    .. math::
        \frac{1}{|\mathcal{P}|} \sum_{(q, n) \in \mathcal{P}}
        \max(0, \mathbf{z}_q^{\top}\mathbf{z}_n -
        \mathbf{z}_q^{\top}\mathbf{z}_i + \Delta),

    averaged over all (query, negative) pairs :math:`\mathcal{P}`: every
    query against every shared negative, plus every query against each of
    its own hard negatives.

    Args:
        query_emb (torch.Tensor): Query embeddings :obj:`[B, D]`.
        pos_emb (torch.Tensor): The positive of each query :obj:`[B, D]`.
        neg_emb (torch.Tensor, optional): Negatives shared by the minibatch
            :obj:`[N_neg, D]`, or per-query negatives :obj:`[B, H, D]`.
        hard_neg_emb (torch.Tensor, optional): Per-query hard negatives
            :obj:`[B, H, D]`, combined with :obj:`neg_emb`.
        margin (float, optional): The margin :math:`\Delta`.
            (default: :obj:`1.0`)
    """
    margin = check_finite_float(margin, 'margin')
    query_emb = _check_embedding(query_emb, 'query_emb', 2)
    pos_emb = _check_embedding(pos_emb, 'pos_emb', 2)
    if pos_emb.shape != query_emb.shape:
        raise ValueError(f"'pos_emb' must have the shape of 'query_emb' "
                         f"{list(query_emb.shape)} (got "
                         f"{list(pos_emb.shape)})")
    if neg_emb is None and hard_neg_emb is None:
        raise ValueError("give 'neg_emb' and/or 'hard_neg_emb'")
    B, D = query_emb.shape
    neg_scores = []
    for name, emb in (('neg_emb', neg_emb), ('hard_neg_emb', hard_neg_emb)):
        if emb is None:
            continue
        shared = name == 'neg_emb' and isinstance(emb, Tensor) and \
            emb.dim() == 2
        emb = _check_embedding(emb, name, 2 if shared else 3)
        if emb.size(-1) != D or (not shared and emb.size(0) != B):
            expected = f'[N_neg, {D}]' if shared else f'[{B}, H, {D}]'
            raise ValueError(f"'{name}' must have shape {expected} (got "
                             f"{list(emb.shape)})")
        neg_scores.append(query_emb @ emb.t() if shared else torch.einsum(
            'bd,bhd->bh', query_emb, emb))
    pos_score = (query_emb * pos_emb).sum(dim=-1, keepdim=True)
    neg_score = torch.cat(neg_scores, dim=-1)
    if neg_score.numel() == 0:
        raise ValueError("no negatives were given (zero negatives per query)")
    return (neg_score - pos_score + margin).clamp(min=0).mean()


def warmup_exponential_lr(optimizer: torch.optim.Optimizer,
                          warmup_steps: int, gamma: float) -> LambdaLR:
    r"""A :class:`~torch.optim.lr_scheduler.LambdaLR` that warms the
    learning rate up linearly over the first :obj:`warmup_steps` calls of
    :meth:`step`, then decays it exponentially by :obj:`gamma` per call:

    .. math::
        \eta_s = \eta \cdot \begin{cases}
        (s + 1) / W & s < W \\ \gamma^{s - W} & s \geq W \end{cases}

    so the base rate :math:`\eta` is reached at the last warm-up step
    :math:`s = W - 1` and :math:`W = 0` gives
    :class:`~torch.optim.lr_scheduler.ExponentialLR`."""
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"'warmup_steps' must be a non-negative int (got "
                         f"{warmup_steps!r})")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"'gamma' must be in (0, 1] (got {gamma})")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return gamma**(step - warmup_steps)

    return LambdaLR(optimizer, factor)


def user_embedding(item_emb: Tensor, user_item_index: Tensor,
                   edge_weight: OptTensor = None,
                   num_users: Optional[int] = None) -> Tensor:
    r"""User embeddings as PinSage computes board embeddings: the
    (importance-weighted) mean of the final embeddings of the user's items,

    .. math::
        \mathbf{z}_u = \sum_{i \in \mathcal{I}(u)} \frac{\alpha_{u,i}}
        {\sum_{i' \in \mathcal{I}(u)} \alpha_{u,i'}} \mathbf{z}_i,

    with uniform weights when :obj:`edge_weight` is :obj:`None`. Users
    without items (or with all-zero weights) get the zero vector.

    Args:
        item_emb (torch.Tensor): Item embeddings :obj:`[I, D]`.
        user_item_index (torch.Tensor): :obj:`[2, E]` (user, item) pairs.
        edge_weight (torch.Tensor, optional): Non-negative weights
            :obj:`[E]`.
        num_users (int, optional): Number of users :math:`U`.
            (default: largest user id + 1)

    Returns:
        :obj:`[U, D]` user embeddings.
    """
    item_emb = _check_embedding(item_emb, 'item_emb', 2)
    if num_users is None:
        num_users = int(user_item_index[0].max()) + 1 \
            if isinstance(user_item_index, Tensor) and \
            user_item_index.dim() == 2 and user_item_index.numel() > 0 else 0
    index = check_interactions(user_item_index, num_users, item_emb.size(0),
                               'user_item_index')
    user, item = index[0], index[1]
    if edge_weight is None:
        edge_weight = item_emb.new_ones(user.numel())
    edge_weight = check_edge_weight(edge_weight, user.numel())
    weight = importance_weights(edge_weight.to(item_emb.dtype), user,
                                num_users)
    return scatter(weight.view(-1, 1) * item_emb[item], user, dim=0,
                   dim_size=num_users, reduce='sum')


class PinSage(torch.nn.Module):
    r"""The PinSage model from the `"Graph Convolutional Neural Networks for
    Web-Scale Recommender Systems" <https://arxiv.org/abs/1806.01973>`_
    paper: :math:`K` stacked
    :class:`~pyg_lightgode.nn.conv.pinsage_conv.PinSAGEConv` layers (own
    parameters per layer) on importance neighbourhoods, followed by the
    output head

    .. math::
        \mathbf{z}_u = \mathbf{G}_2 \, \mathrm{ReLU}(\mathbf{G}_1
        \mathbf{h}_u^{(K)} + \mathbf{g}).

    The input :math:`\mathbf{h}^{(0)}` is a linear projection of node
    features (:obj:`in_channels`), a learnable ID embedding
    (:obj:`num_nodes`, for ID-only data), or the sum of both.

    **Block format** of the minibatch path (:meth:`forward`): the sampled
    computation graph lives on one compact node set of size :math:`N_0`
    (global ids :obj:`n_id`, seeds first). :obj:`blocks` is a list of
    :math:`K` tuples :obj:`(edge_index, edge_weight, num_targets)`;
    :obj:`blocks[k - 1]` feeds layer :math:`k`. With :math:`N_k =`
    :obj:`blocks[k - 1][2]`, the targets of layer :math:`k` are the
    compact nodes :obj:`0..N_k - 1`, a prefix of layer :math:`k - 1`'s
    nodes :obj:`0..N_{k-1} - 1` (so :math:`N_0 \geq N_1 \geq \dots \geq
    N_K`, and :math:`N_K` is the number of seeds). :obj:`edge_index` is a
    :obj:`[2, E_k]` long tensor of compact ids, row 0 the neighbour
    (:math:`< N_{k-1}`), row 1 the target (:math:`< N_k`), with importance
    weights :obj:`edge_weight` :obj:`[E_k]` (raw visit counts or
    normalised; :obj:`None` for uniform); it may also be a transposed
    sparse adjacency :obj:`[N_k, N_{k-1}]` whose values are the weights
    (then :obj:`edge_weight` is :obj:`None`). This is the layout of PyG's
    :obj:`num_sampled_nodes` / :meth:`trim_to_layer`;
    :func:`neighborhood_blocks` builds it from one fixed neighbourhood
    graph, :func:`sampled_blocks` from a
    :class:`~pyg_lightgode.sampler.PinSageSampler` minibatch.

    Args:
        num_nodes (int, optional): Number of nodes, for ID embeddings.
        in_channels (int, optional): Size of the node features.
        hidden_channels (int, optional): Size of :math:`\mathbf{h}^{(k)}`.
            (default: :obj:`64`)
        out_channels (int, optional): Size of the output embedding.
            (default: :obj:`64`)
        num_layers (int, optional): Number of convolutions :math:`K`.
            (default: :obj:`2`)
        aggr (str, optional): Neighbour pooling of every layer,
            :obj:`"importance"`, :obj:`"mean"` or :obj:`"max"`.
            (default: :obj:`"importance"`)
        dropout (float, optional): Dropout of every layer's input.
            (default: :obj:`0.0`)
        normalize (bool, optional): :math:`\ell_2`-normalise every layer's
            output (Algorithm 1, line 3). (default: :obj:`True`)
        normalize_output (bool, optional): :math:`\ell_2`-normalise the
            output embedding :math:`\mathbf{z}_u`, so that scores are cosine
            similarities (use a margin :math:`\Delta < 1` then). Without it
            the max-margin loss on sparse co-engagement data (e.g.
            MovieLens) tends to collapse all items onto one popularity
            direction. (default: :obj:`False`, as the paper)
        **kwargs (optional): Additional arguments of
            :class:`~pyg_lightgode.nn.conv.pinsage_conv.PinSAGEConv`.

    Shapes:
        - **forward inputs:** :obj:`blocks` as above, node features
          :math:`(N_0, F)` and/or compact global ids :math:`(N_0)`
        - **forward output:** seed embeddings :math:`(N_K, F_{out})`
        - **inference output:** all embeddings
          :math:`(|\mathcal{V}|, F_{out})`
    """
    def __init__(
        self,
        num_nodes: Optional[int] = None,
        in_channels: Optional[int] = None,
        hidden_channels: int = 64,
        out_channels: int = 64,
        num_layers: int = 2,
        aggr: str = 'importance',
        dropout: float = 0.0,
        normalize: bool = True,
        normalize_output: bool = False,
        **kwargs,
    ):
        super().__init__()
        if num_nodes is None and in_channels is None:
            raise ValueError("give 'num_nodes' (ID embeddings) and/or "
                             "'in_channels' (node features)")
        if num_nodes is not None:
            num_nodes = check_positive_int(num_nodes, 'num_nodes')
        if in_channels is not None:
            in_channels = check_positive_int(in_channels, 'in_channels')
        hidden_channels = check_positive_int(hidden_channels,
                                             'hidden_channels')
        out_channels = check_positive_int(out_channels, 'out_channels')
        num_layers = check_positive_int(num_layers, 'num_layers')
        self.num_nodes = num_nodes
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.aggr = aggr
        self.normalize_output = bool(normalize_output)

        self.embedding = None if num_nodes is None else Embedding(
            num_nodes, hidden_channels)
        self.lin_in = None if in_channels is None else Linear(
            in_channels, hidden_channels)
        self.convs = ModuleList([
            PinSAGEConv(hidden_channels, hidden_channels, aggr=aggr,
                        dropout=dropout, normalize=normalize, **kwargs)
            for _ in range(num_layers)
        ])
        self.head_hidden = Linear(hidden_channels, hidden_channels)  # G1, g
        self.head_out = Linear(hidden_channels, out_channels,
                               bias=False)  # G2
        self.reset_parameters()

    def reset_parameters(self):
        if self.embedding is not None:
            torch.nn.init.xavier_uniform_(self.embedding.weight)
        if self.lin_in is not None:
            self.lin_in.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.head_hidden.reset_parameters()
        self.head_out.reset_parameters()

    def embed_input(self, x: OptTensor = None,
                    n_id: OptTensor = None) -> Tensor:
        r"""The input :math:`\mathbf{h}^{(0)}` of the nodes whose features
        are :obj:`x` :obj:`[N, F]` and whose global ids are :obj:`n_id`
        :obj:`[N]` (each required iff the model has the matching input)."""
        h = None
        if self.lin_in is not None:
            if x is None:
                raise ValueError("this model was built with 'in_channels'; "
                                 "pass the node features 'x'")
            if not isinstance(x, Tensor) or x.dim() != 2 or \
                    x.size(-1) != self.in_channels:
                raise ValueError(f"'x' must have shape [N, "
                                 f"{self.in_channels}] (got "
                                 f"{getattr(x, 'shape', type(x).__name__)})")
            check_floating(x, 'x', self.lin_in.weight.dtype,
                           "the weights of 'PinSage'")
            h = self.lin_in(x)
        if self.embedding is not None:
            if n_id is None:
                raise ValueError("this model was built with 'num_nodes' (ID "
                                 "embeddings); pass the global ids 'n_id'")
            n_id = _check_node_ids(n_id, self.num_nodes, 'n_id')
            if h is not None and n_id.numel() != h.size(0):
                raise ValueError(f"'x' has {h.size(0)} rows but 'n_id' has "
                                 f"{n_id.numel()} ids")
            emb = self.embedding(n_id)
            h = emb if h is None else h + emb
        return h

    def head(self, h: Tensor) -> Tensor:
        r"""The output head :math:`\mathbf{G}_2\,\mathrm{ReLU}(\mathbf{G}_1
        \mathbf{h} + \mathbf{g})`."""
        out = self.head_out(self.head_hidden(h).relu())
        if self.normalize_output:
            out = F.normalize(out, p=2.0, dim=-1, eps=NORM_EPS)
        return out

    def forward(self, blocks: Sequence[Block], x: OptTensor = None,
                n_id: OptTensor = None) -> Tensor:
        r"""Embeds the seeds of a sampled computation graph.

        Args:
            blocks (list): :math:`K` blocks :obj:`(edge_index, edge_weight,
                num_targets)`, see the class docstring.
            x (torch.Tensor, optional): Features of the compact nodes
                :obj:`[N_0, F]` (already gathered, row :obj:`j` belongs to
                :obj:`n_id[j]`).
            n_id (torch.Tensor, optional): Global ids of the compact nodes
                :obj:`[N_0]`, seeds first.

        Returns:
            :obj:`[N_K, out_channels]` embeddings of the seeds.
        """
        if len(blocks) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} blocks (one per "
                             f"layer), got {len(blocks)}")
        if x is not None and torch_geometric.is_debug_enabled():
            check_finite(x, 'x')  # The training path reads data in debug only.
        h = self.embed_input(x, n_id)
        for k, (conv, block) in enumerate(zip(self.convs, blocks)):
            if len(block) != 3:
                raise ValueError(f"blocks[{k}] must be a tuple (edge_index, "
                                 f"edge_weight, num_targets)")
            edge_index, edge_weight, num_targets = block
            num_targets = int(num_targets)
            if not 0 < num_targets <= h.size(0):
                raise ValueError(f"blocks[{k}] has num_targets={num_targets}"
                                 f", expected 1..{h.size(0)} (a prefix of "
                                 f"the previous layer's {h.size(0)} nodes)")
            h = conv((h, h[:num_targets]), edge_index, edge_weight)
        return self.head(h)

    @torch.no_grad()
    def inference(self, edge_index: Tensor, edge_weight: OptTensor = None,
                  x: OptTensor = None, chunk_size: int = 4096) -> Tensor:
        r"""Embeds every node, layer by layer (the paper's MapReduce
        inference): each node's layer-:math:`k` vector is computed once,
        the messages :math:`\mathrm{ReLU}(\mathbf{Q}\mathbf{h}_v +
        \mathbf{q})` once per node and layer, and targets are processed in
        chunks of :obj:`chunk_size` so that the intermediate memory stays
        bounded by the chunk's edges. Call :meth:`eval` first to disable
        dropout.

        Args:
            edge_index (torch.Tensor): The neighbourhood of every node
                :obj:`[2, E]` (row 0 the neighbour, row 1 the target).
            edge_weight (torch.Tensor, optional): Importance weights
                :obj:`[E]`.
            x (torch.Tensor, optional): Features of all nodes :obj:`[N, F]`.
            chunk_size (int, optional): Targets per chunk.
                (default: :obj:`4096`)

        Returns:
            :obj:`[N, out_channels]` embeddings of all nodes.
        """
        if not isinstance(chunk_size, int) or chunk_size <= 0:
            raise ValueError(f"'chunk_size' must be a positive int (got "
                             f"{chunk_size!r})")
        if x is None and self.lin_in is not None:
            raise ValueError("this model was built with 'in_channels'; pass "
                             "the node features 'x'")
        if x is not None:
            check_floating(x, 'x')
        num_nodes = x.size(0) if self.num_nodes is None else self.num_nodes
        if x is not None and x.size(0) != num_nodes:
            raise ValueError(f"'x' must have {num_nodes} rows (num_nodes), "
                             f"got {x.size(0)}")
        if x is not None:
            check_finite(x, 'x')
        edge_index, edge_weight = _check_neighborhood(edge_index, edge_weight,
                                                      num_nodes)
        perm = torch.argsort(edge_index[1], stable=True)
        edge_index = edge_index[:, perm]
        edge_weight = None if edge_weight is None else edge_weight[perm]
        ptr = index2ptr(edge_index[1], num_nodes).tolist()
        device = edge_index.device
        chunks = [(s, min(s + chunk_size, num_nodes))
                  for s in range(0, num_nodes, chunk_size)]

        h = torch.cat([
            self.embed_input(None if x is None else x[s:e],
                             torch.arange(s, e, device=device))
            for s, e in chunks
        ])
        for conv in self.convs:
            messages = torch.cat(
                [conv.transform_neighbors(h[s:e]) for s, e in chunks])
            out = []
            for s, e in chunks:
                chunk_index = edge_index[:, ptr[s]:ptr[e]] - torch.tensor(
                    [[0], [s]], device=device)
                chunk_weight = None if edge_weight is None else \
                    edge_weight[ptr[s]:ptr[e]]
                pooled = conv.pool(messages, chunk_index, chunk_weight,
                                   num_targets=e - s)
                out.append(conv.combine(h[s:e], pooled))
            h = torch.cat(out)
        return torch.cat([self.head(h[s:e]) for s, e in chunks])

    max_margin_loss = staticmethod(max_margin_loss)
    user_embedding = staticmethod(user_embedding)
    warmup_exponential_lr = staticmethod(warmup_exponential_lr)
    neighborhood_blocks = staticmethod(neighborhood_blocks)
    sampled_blocks = staticmethod(sampled_blocks)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_nodes={self.num_nodes}, '
                f'in_channels={self.in_channels}, hidden_channels='
                f'{self.hidden_channels}, out_channels={self.out_channels}, '
                f'num_layers={self.num_layers}, aggr={self.aggr!r})')
