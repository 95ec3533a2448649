r"""The PinSage model (Algorithm 2 of Ying et al., KDD 2018): stacked
:class:`~pyg_lightgode.nn.conv.pinsage_conv.PinSAGEConv` layers on
importance neighbourhoods and the output head, on PyG's hop-ordered
minibatches (:func:`~torch_geometric.utils.trim_to_layer`) and layer-wise
over a whole graph."""
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.nn import Embedding, ModuleList
from torch_geometric.index import index2ptr
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, OptTensor
from torch_geometric.utils._trim_to_layer import TrimToLayer

from pyg_lightgode.data.bipartite import quiet_sparse_csr
from pyg_lightgode.data.validation import (
    check_finite,
    check_floating,
    check_index_dtype,
    check_index_range,
    check_neighborhood_index,
    check_positive_int,
)
from pyg_lightgode.nn.conv.pinsage_conv import (
    POOLINGS,
    PinSAGEConv,
    check_edge_weight,
    l2_normalize,
)
from pyg_lightgode.nn.conv.utils import sparse_values


def _check_node_ids(ids: Tensor, num_nodes: int, name: str) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dim() != 1:
        raise ValueError(f"'{name}' must be a 1-D tensor of integer node "
                         f"ids (got {getattr(ids, 'shape', type(ids))})")
    check_index_dtype(ids, name)
    return check_index_range(ids.long(), num_nodes, name, 'node ids',
                             'num_nodes')


def _check_neighborhood(edge_index: Tensor, edge_weight: OptTensor,
                        num_nodes: int) -> Tuple[Tensor, OptTensor]:
    edge_index = check_neighborhood_index(edge_index, num_nodes)
    if edge_weight is not None:
        edge_weight = check_edge_weight(edge_weight, edge_index.size(1))
    return edge_index, edge_weight


def _check_forward_data(x: OptTensor, edge_index: Adj,
                        edge_weight: OptTensor, num_rows: int) -> None:
    r"""The data checks of :meth:`PinSage.forward` with one host
    synchronisation: finite features, ids of a :obj:`[2, E]`
    :obj:`edge_index` in :obj:`[0, num_rows - 1]`, finite non-negative
    weights (or values of a sparse adjacency). Only if one fails, the
    checks of :mod:`pyg_lightgode.data.validation` run again to name it."""
    if isinstance(edge_index, Tensor) and edge_index.layout == torch.strided:
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"'edge_index' must have shape [2, E] "
                             f"(neighbour -> target), got "
                             f"{list(edge_index.shape)}")
        check_index_dtype(edge_index, 'edge_index')
        index = edge_index
    else:
        index = None
        edge_weight = sparse_values(edge_index) if edge_weight is None \
            else edge_weight
    if edge_weight is not None:  # Shape and kind first (no values read).
        num_edges = edge_weight.numel() if index is None else index.size(1)
        edge_weight = check_edge_weight(edge_weight, num_edges,
                                        check_values=False)
    flags = []
    if x is not None and x.numel() > 0:
        flags.append(torch.isfinite(x.detach()).logical_not().any())
    if index is not None and index.numel() > 0:
        flags.append((index < 0).any() | (index >= num_rows).any())
    if edge_weight is not None and edge_weight.numel() > 0:
        w = edge_weight.detach()
        flags.append(torch.isfinite(w).logical_not().any() | (w < 0).any())
    if not flags or not bool(torch.stack(
            [f.to(flags[0].device) for f in flags]).any()):
        return
    if x is not None:
        check_finite(x, 'x')
    if index is not None:
        for row in (0, 1):
            check_index_range(index[row], num_rows, f'edge_index[{row}]',
                              'node ids', 'number of input nodes')
    if edge_weight is not None:
        check_edge_weight(edge_weight, edge_weight.numel())


def _check_hops(num_sampled_nodes_per_hop: Optional[List[int]],
                num_sampled_edges_per_hop: Optional[List[int]],
                num_layers: int, num_nodes: int,
                num_edges: Optional[int]) -> None:
    if (num_sampled_nodes_per_hop is None) != (num_sampled_edges_per_hop is
                                               None):
        raise ValueError("give both 'num_sampled_nodes_per_hop' and "
                         "'num_sampled_edges_per_hop', or neither")
    if num_sampled_nodes_per_hop is None:
        return
    nodes = list(num_sampled_nodes_per_hop)
    edges = list(num_sampled_edges_per_hop)
    if len(nodes) != len(edges) + 1 or len(edges) < num_layers:
        raise ValueError(f"'num_sampled_nodes_per_hop' needs one entry more "
                         f"than 'num_sampled_edges_per_hop', which needs at "
                         f"least one per layer ({num_layers}); got "
                         f"{len(nodes)} and {len(edges)} entries")
    if sum(nodes) != num_nodes or (num_edges is not None
                                   and sum(edges) != num_edges):
        raise ValueError(f"the hops count {sum(nodes)} nodes and "
                         f"{sum(edges)} edges, but the minibatch has "
                         f"{num_nodes} nodes and {num_edges} edges")


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

    **Minibatches** are PyG's hop-ordered subgraphs, as
    :class:`~torch_geometric.loader.NeighborLoader` and
    :class:`~pyg_lightgode.sampler.PinSageSampler` build them: nodes ordered
    by hop (seeds first), edges *neighbour -> target* grouped by hop, and
    the counts :obj:`num_sampled_nodes_per_hop` (:math:`K + 1` entries) and
    :obj:`num_sampled_edges_per_hop` (:math:`K`). As in
    :class:`~torch_geometric.nn.models.BasicGNN`, layer :math:`l` runs on
    what :func:`~torch_geometric.utils.trim_to_layer` keeps (the last
    :math:`l` hops dropped), and :meth:`forward` returns the seeds'
    embeddings. Without the counts, :meth:`forward` embeds every node of
    the given graph; :meth:`inference` does that over a whole
    neighbourhood graph with the same :meth:`PinSAGEConv.forward`.

    Args:
        num_nodes (int, optional): Number of nodes, for ID embeddings.
        in_channels (int, optional): Size of the node features.
        hidden_channels (int, optional): Size of :math:`\mathbf{h}^{(k)}`.
            (default: :obj:`64`)
        out_channels (int, optional): Size of the output embedding.
            (default: :obj:`64`)
        num_layers (int, optional): Number of convolutions :math:`K`.
            (default: :obj:`2`)
        pooling (str, optional): Neighbour pooling of every layer,
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
        - **forward inputs:** node features :math:`(N, F)` and/or global
          ids :math:`(N)`, edge indices :math:`(2, E)`, edge weights
          :math:`(E)` *(optional)*
        - **forward output:** seed embeddings
          :math:`(\texttt{num\_sampled\_nodes\_per\_hop[0]}, F_{out})`,
          or :math:`(N, F_{out})` without per-hop counts
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
        pooling: str = 'importance',
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
        if pooling not in POOLINGS:
            raise ValueError(f"'pooling' must be one of {POOLINGS} (got "
                             f"{pooling!r})")
        self.num_nodes = num_nodes
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.pooling = pooling
        self.normalize_output = bool(normalize_output)

        self.embedding = None if num_nodes is None else Embedding(
            num_nodes, hidden_channels)
        self.lin_in = None if in_channels is None else Linear(
            in_channels, hidden_channels)
        self.convs = ModuleList([
            PinSAGEConv(hidden_channels, hidden_channels, pooling=pooling,
                        dropout=dropout, normalize=normalize, **kwargs)
            for _ in range(num_layers)
        ])
        self.head_hidden = Linear(hidden_channels, hidden_channels)  # G1, g
        self.head_out = Linear(hidden_channels, out_channels,
                               bias=False)  # G2
        # As BasicGNN: trim_to_layer as a module.
        self._trim = TrimToLayer()
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
            out = l2_normalize(out)
        return out

    def forward(
        self,
        x: OptTensor,
        edge_index: Adj,
        edge_weight: OptTensor = None,
        n_id: OptTensor = None,
        num_sampled_nodes_per_hop: Optional[List[int]] = None,
        num_sampled_edges_per_hop: Optional[List[int]] = None,
    ) -> Tensor:
        r"""Forward pass, as :class:`~torch_geometric.nn.models.BasicGNN`.

        Args:
            x (torch.Tensor, optional): Features of the nodes :obj:`[N, F]`
                (:obj:`None` for a model of ID embeddings only).
            edge_index (torch.Tensor or SparseTensor): The neighbourhoods,
                edges neighbour -> target (or a transposed sparse
                adjacency).
            edge_weight (torch.Tensor, optional): Importance weights
                :obj:`[E]`.
            n_id (torch.Tensor, optional): Global ids of the nodes
                :obj:`[N]` (needed with ID embeddings).
            num_sampled_nodes_per_hop (List[int], optional): Nodes per hop
                of a hop-ordered minibatch (seeds first).
            num_sampled_edges_per_hop (List[int], optional): Edges per hop.

        Returns:
            With the per-hop counts, the embeddings of the
            :obj:`num_sampled_nodes_per_hop[0]` seeds: layer :math:`l` reads
            the nodes and edges :func:`~torch_geometric.utils.trim_to_layer`
            keeps and writes the nodes layer :math:`l + 1` reads. Otherwise
            those of all :obj:`N` nodes.
        """
        h = self.embed_input(x, n_id)
        # The entry point checks the data (one host synchronisation); the
        # layers then read no values (but under torch_geometric.debug()).
        _check_forward_data(x, edge_index, edge_weight, h.size(0))
        if num_sampled_nodes_per_hop is None and \
                num_sampled_edges_per_hop is None:
            for conv in self.convs:
                h = conv(h, edge_index, edge_weight)
            return self.head(h)

        if not isinstance(edge_index, Tensor) or edge_index.is_sparse or \
                edge_index.layout != torch.strided:
            raise ValueError("a hop-ordered minibatch (per-hop counts) "
                             "needs 'edge_index' as a [2, E] tensor")
        nodes, edges = num_sampled_nodes_per_hop, num_sampled_edges_per_hop
        _check_hops(nodes, edges, self.num_layers, h.size(0),
                    edge_index.size(1) if edge_index.dim() == 2 else None)
        # `rows` has the node count trim_to_layer keeps for layer i (zero
        # width: a view, no data). Layer i reads those nodes and the kept
        # edges, and writes only the nodes layer i + 1 reads (its targets:
        # the last kept hop has no edges into it), so no row is computed
        # that a later layer drops.
        rows = h.new_empty(h.size(0), 0)
        for i, conv in enumerate(self.convs):
            rows, edge_index, edge_weight = self._trim(
                i, nodes, edges, rows, edge_index, edge_weight)
            num_targets = rows.size(0) - nodes[-(i + 1)]
            h = conv((h, h[:num_targets]), edge_index, edge_weight)
        return self.head(h[:nodes[0]])

    @torch.no_grad()
    def inference(self, edge_index: Tensor, edge_weight: OptTensor = None,
                  x: OptTensor = None,
                  chunk_size: Optional[int] = None) -> Tensor:
        r"""Embeds every node, layer by layer (the paper's MapReduce
        inference): the neighbourhood graph becomes ONE sparse CSR adjacency
        and every layer is :meth:`PinSAGEConv.forward` on all nodes, so each
        node's layer-:math:`k` vector and message are computed once and no
        per-edge tensor is formed. With :obj:`chunk_size`, each layer runs
        on chunks of that many targets with their neighbours (as PyG's
        :meth:`BasicGNN.inference`), bounding the memory by the chunk at
        the cost of recomputing the messages of neighbours shared by
        chunks. Call :meth:`eval` first to disable dropout.

        Args:
            edge_index (torch.Tensor): The neighbourhood of every node
                :obj:`[2, E]` (row 0 the neighbour, row 1 the target).
            edge_weight (torch.Tensor, optional): Importance weights
                :obj:`[E]`.
            x (torch.Tensor, optional): Features of all nodes :obj:`[N, F]`.
            chunk_size (int, optional): Targets per chunk.
                (default: :obj:`None`, all nodes at once)

        Returns:
            :obj:`[N, out_channels]` embeddings of all nodes.
        """
        if chunk_size is not None and (not isinstance(chunk_size, int)
                                       or chunk_size <= 0):
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
        n_id = torch.arange(num_nodes, device=edge_index.device)
        adj_t = neighborhood_adj_t(edge_index, edge_weight, num_nodes)
        h = self.embed_input(x, n_id)
        for conv in self.convs:
            if chunk_size is None or chunk_size >= num_nodes:
                h = conv(h, adj_t.to(h.dtype))
                continue
            h = torch.cat([
                conv(*_chunk(h, adj_t, start, start + chunk_size))
                for start in range(0, num_nodes, chunk_size)
            ])
        return self.head(h)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_nodes={self.num_nodes}, '
                f'in_channels={self.in_channels}, hidden_channels='
                f'{self.hidden_channels}, out_channels={self.out_channels}, '
                f'num_layers={self.num_layers}, '
                f'pooling={self.pooling!r})')


def neighborhood_adj_t(edge_index: Tensor, edge_weight: OptTensor,
                       num_nodes: int) -> Tensor:
    r"""The neighbourhood graph :obj:`edge_index` :obj:`[2, E]` (row 0 the
    neighbour, row 1 the target) as ONE transposed sparse CSR adjacency
    :obj:`[num_nodes, num_nodes]` whose values are the weights (ones
    without :obj:`edge_weight`), the input of :meth:`PinSage.inference`
    and of :meth:`PinSage.forward` on a whole graph. Edges are sorted by
    target but NOT coalesced: repeated edges stay apart, as in the forward
    pass on an :obj:`edge_index`. The ids are not checked."""
    device = edge_index.device
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), device=device)
    perm = torch.argsort(edge_index[1], stable=True)
    with quiet_sparse_csr():  # Built from checked ids: no beta notices.
        return torch.sparse_csr_tensor(
            index2ptr(edge_index[1, perm], num_nodes), edge_index[0, perm],
            edge_weight[perm], size=(num_nodes, num_nodes))


def _chunk(h: Tensor, adj_t: Tensor, start: int,
           end: int) -> Tuple[Tuple[Tensor, Tensor], Tensor]:
    r"""The bipartite input of targets :obj:`start..end - 1` of the CSR
    adjacency :obj:`adj_t`: :obj:`((h[sources], h[targets]), adj_t of the
    chunk)`, the sources being the targets' distinct neighbours."""
    crow = adj_t.crow_indices()
    end = min(end, crow.numel() - 1)
    lo, hi = int(crow[start]), int(crow[end])
    col = adj_t.col_indices()[lo:hi]
    src, col = torch.unique(col, return_inverse=True)
    with quiet_sparse_csr():
        chunk = torch.sparse_csr_tensor(crow[start:end + 1] - lo, col,
                                        adj_t.values()[lo:hi].to(h.dtype),
                                        size=(end - start, src.numel()))
    return (h.index_select(0, src), h[start:end]), chunk
