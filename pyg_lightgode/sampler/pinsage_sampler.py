r"""A PyG :class:`~torch_geometric.sampler.BaseSampler` that builds PinSage
minibatches on the ITEM graph (nodes = items) from importance
neighbourhoods, so that PyG's :class:`~torch_geometric.loader.NodeLoader`
and :class:`~torch_geometric.loader.LinkLoader` (with CPU workers) drive
PinSage training and inference (producer--consumer minibatches).

What a minibatch holds (:class:`PinSageNodeLoader`, :class:`PinSageLinkLoader`,
for :math:`K` = :obj:`len(num_neighbors)` layers):

* :obj:`n_id` :obj:`[N]`: global item ids of the subgraph's nodes, ordered by
  hop: the :obj:`num_sampled_nodes[0]` seeds first (in input order for node
  batches; the sorted unique endpoints of the batch's pairs for link
  batches), then the :obj:`num_sampled_nodes[h]` items first reached at hop
  :math:`h`. :obj:`x`, if the loader's data has it, is :obj:`x[n_id]`.
* :obj:`edge_index` :obj:`[2, E]`: local ids, edges *neighbour -> target*,
  grouped by hop: the first :obj:`num_sampled_edges[0]` edges are the
  importance neighbourhoods of the seeds (hop 1), the next
  :obj:`num_sampled_edges[1]` those of the hop-1 items, and so on. Every
  node of hops :math:`0..K-1` has its whole neighbourhood in the edges of
  the next hop.
* :obj:`edge_weight` :obj:`[E]`: the importance weights (raw visit counts,
  or L1-normalised per target with :obj:`normalize=True`).
* :obj:`num_sampled_nodes` (length :math:`K+1`), :obj:`num_sampled_edges`
  (length :math:`K`): as PyG's :class:`~torch_geometric.loader.NeighborLoader`,
  so :func:`torch_geometric.utils.trim_to_layer` applies. Bottom-up, layer
  :math:`l = 0..K-1` computes the vectors of the first
  :obj:`sum(num_sampled_nodes[:K-l])` nodes from the edges
  :obj:`edge_index[:, :sum(num_sampled_edges[:K-l])]`; the output of the
  last layer is valid for the seeds :obj:`[:num_sampled_nodes[0]]`.

This is the one minibatch format of the package:
:meth:`~pyg_lightgode.nn.models.PinSage.forward` takes a batch as is
(:obj:`model(batch.x, batch.edge_index, batch.edge_weight, n_id=batch.n_id,
num_sampled_nodes_per_hop=batch.num_sampled_nodes,
num_sampled_edges_per_hop=batch.num_sampled_edges)`), and
:func:`hop_subgraph` builds the same layout from one fixed neighbourhood
graph. Within a hop, new items come in the order of the sampling blocks
(:class:`~pyg_lightgode.sampler.ImportanceNeighborhood.blocks`), sorted by
id within a block.

Node batches also carry :obj:`input_id`, :obj:`batch_size` (= number of
seeds); link batches :obj:`edge_label_index` / :obj:`edge_label` (binary) or
:obj:`src_index`, :obj:`dst_pos_index`, :obj:`dst_neg_index` (triplet), in
local ids, exactly as PyG's
:class:`~torch_geometric.loader.LinkNeighborLoader`.
With :obj:`num_hard_negatives > 0` and triplet negative sampling,
:obj:`dst_neg_index` is :obj:`[B, amount + num_hard_negatives]`, the last
columns hard negatives.

Plain :class:`NodeLoader` / :class:`LinkLoader` also run this sampler but only
copy the fields of :class:`~torch_geometric.sampler.SamplerOutput` they know
(they drop the per-edge weights and write :obj:`edge_index` only if the data
has one); the two thin subclasses below add :obj:`edge_index` and
:obj:`edge_weight` (carried as the last entry of
:obj:`SamplerOutput.metadata`).
"""
import math
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import LinkLoader, NodeLoader
from torch_geometric.sampler import (
    BaseSampler,
    EdgeSamplerInput,
    NegativeSampling,
    NodeSamplerInput,
    SamplerOutput,
)

from pyg_lightgode.data.validation import (
    check_index_dtype,
    check_index_range,
    check_neighborhood_index,
    check_positive_int,
)
from pyg_lightgode.sampler.hard_negatives import HardNegativeSampler
from pyg_lightgode.sampler.importance import (
    ImportanceNeighborhood,
    check_top_k,
    l1_normalize,
)
from pyg_lightgode.sampler.random_walk import (
    BLOCK_SIZE,
    cat_blocks,
    full_blocks,
    to_csr,
)

#: One block of neighbourhoods: :obj:`(offset, row, neighbour, weight)`,
#: edges *neighbour -> target* for the targets :obj:`offset + row`.
Block = Tuple[int, Tensor, Tensor, Tensor]


def expand_hops(seeds: Tensor, hops: Sequence[Any],
                neighbors: Callable[[Tensor, Any], Iterable[Block]],
                num_nodes: int) -> SamplerOutput:
    r"""Builds a hop-ordered computation graph top-down from :obj:`seeds`:
    for every entry of :obj:`hops`, :obj:`neighbors(targets, hop)` gives
    the neighbourhoods of the nodes first reached at the previous hop (the
    seeds at first), and the neighbours not seen before become the next
    targets, appended with consecutive local ids. Repeated seeds keep their
    positions (and own neighbourhoods); neighbours map to the first
    occurrence. Returns the :class:`SamplerOutput` described in the module
    docstring, the weights as :obj:`metadata[-1]`. Every operation but the
    final concatenations works on one block of :obj:`neighbors`."""
    local = full_blocks(num_nodes, -1)
    unique, inverse = seeds.unique(return_inverse=True)
    first = torch.full_like(unique, seeds.numel()).scatter_reduce(
        0, inverse, torch.arange(seeds.numel()), reduce='amin')
    local.index_copy_(0, unique, first)

    nodes, rows, cols, weights = [seeds], [], [], []
    num_sampled_nodes, num_sampled_edges = [seeds.numel()], []
    targets, offset = seeds, 0  # frontier: local ids offset + arange
    num_seen = seeds.numel()
    for hop in hops:
        fresh_parts, num_edges = [], 0
        for first, row, nbr, weight in neighbors(targets, hop):
            fresh = nbr.masked_select(local.index_select(0, nbr) < 0).unique()
            local.index_copy_(0, fresh, torch.arange(
                num_seen, num_seen + fresh.numel()))
            num_seen += fresh.numel()
            rows.append(local.index_select(0, nbr))
            cols.append(row + (offset + first))
            weights.append(weight)
            fresh_parts.append(fresh)
            num_edges += nbr.numel()
        offset += targets.numel()
        targets = cat_blocks(fresh_parts)
        nodes.append(targets)
        num_sampled_nodes.append(targets.numel())
        num_sampled_edges.append(num_edges)

    return SamplerOutput(node=cat_blocks(nodes), row=cat_blocks(rows),
                         col=cat_blocks(cols), edge=None,
                         num_sampled_nodes=num_sampled_nodes,
                         num_sampled_edges=num_sampled_edges,
                         metadata=(cat_blocks(weights, dtype=torch.float), ))


def hop_subgraph(edge_index: Tensor, edge_weight: Optional[Tensor],
                 seeds: Tensor, num_hops: int,
                 num_nodes: Optional[int] = None) -> SamplerOutput:
    r"""The :obj:`num_hops`-hop computation graph of :obj:`seeds` in ONE
    fixed neighbourhood graph over all nodes (e.g. the whole-catalogue
    neighbourhood of inference), in the minibatch format of
    :class:`PinSageSampler` (the module docstring): every node up to hop
    :obj:`num_hops - 1` brings its whole neighbourhood.

    Args:
        edge_index (torch.Tensor): The neighbourhoods :obj:`[2, E]`, row 0 the
            neighbour, row 1 the target (global ids).
        edge_weight (torch.Tensor, optional): Importance weights :obj:`[E]`
            (:obj:`None`: ones).
        seeds (torch.Tensor): Global ids of the minibatch nodes.
        num_hops (int): Number of hops (= layers) :math:`K`.
        num_nodes (int, optional): Number of nodes of the graph.
            (default: largest id + 1)
    """
    num_hops = check_positive_int(num_hops, 'num_hops')
    if num_nodes is None:
        num_nodes = max(int(edge_index.max()) + 1 if edge_index.numel() > 0
                        else 0, int(seeds.max()) + 1 if seeds.numel() > 0
                        else 0)
    num_nodes = check_positive_int(num_nodes, 'num_nodes')
    edge_index = check_neighborhood_index(edge_index, num_nodes)
    seeds = check_index_range(check_index_dtype(seeds, 'seeds').long().view(
        -1), num_nodes, 'seeds', 'node ids', 'num_nodes')
    if seeds.numel() == 0:
        raise ValueError("'seeds' is empty")
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1))
    elif edge_weight.dim() != 1 or edge_weight.numel() != edge_index.size(1):
        raise ValueError(f"'edge_weight' must have shape "
                         f"[{edge_index.size(1)}] (got "
                         f"{list(edge_weight.shape)})")
    ptr, col = to_csr(edge_index[1], torch.arange(edge_index.size(1)),
                      num_nodes)
    src, weight = edge_index[0].index_select(0, col), edge_weight.index_select(
        0, col)

    def neighbors(targets: Tensor, hop: Any) -> Iterator[Block]:
        for offset in range(0, targets.numel(), BLOCK_SIZE):
            block = targets[offset:offset + BLOCK_SIZE]
            begin = ptr.index_select(0, block)
            count = ptr.index_select(0, block + 1) - begin
            row = torch.arange(block.numel()).repeat_interleave(count)
            eid = begin.index_select(0, row) + torch.arange(row.numel()) - (
                count.cumsum(0) - count).index_select(0, row)
            yield (offset, row, src.index_select(0, eid),
                   weight.index_select(0, eid))

    return expand_hops(seeds, range(num_hops), neighbors, num_nodes)


class PinSageSampler(BaseSampler):
    r"""Samples PinSage computation graphs top-down from a minibatch of
    items: the importance neighbourhoods (:class:`ImportanceNeighborhood`,
    walks :obj:`item -> user -> item`) of the seeds, then of the items first
    reached at hop 1, and so on for :obj:`len(num_neighbors)` hops, re-indexed
    into one compact subgraph (see the module docstring for the exact
    format).

    For link batches (query item, positive item), the edges between the two
    items of every positive pair are removed from all neighbourhoods
    (:obj:`remove_label_edges`), so the label does not leak into the
    computation graph (as DGL's PinSAGE example does).

    Args:
        index (torch.Tensor): User--item interactions :obj:`[2, E]`.
        num_users (int): Number of users.
        num_items (int): Number of items (the nodes of the loaders' data).
        num_neighbors (List[int]): Neighbours per node :math:`T` for every
            hop, top-down (hop 1 first); its length is the number of layers.
            (default: :obj:`[3, 3]`, DGL's example)
        num_walks (int): Walks per node. (default: :obj:`10`)
        num_traversals (int): Maximum item -> user -> item traversals per
            walk. (default: :obj:`2`)
        restart_prob (float): Termination probability after each traversal.
            (default: :obj:`0.5`)
        exclude_seed (bool): Do not count walks returning to their start.
            (default: :obj:`False`)
        normalize (bool): L1-normalise weights per target (after label-edge
            removal). (default: :obj:`False`, raw counts)
        remove_label_edges (bool): Remove query--positive edges in link
            batches. (default: :obj:`True`)
        hard_negatives (HardNegativeSampler, optional): Source of hard
            negatives for triplet link batches. (default: :obj:`None`)
        num_hard_negatives (int): Hard negatives per query; may be changed
            between epochs (curriculum: epoch :math:`n` uses :math:`n-1`),
            which reaches non-persistent workers. (default: :obj:`0`)
        seed (int, optional): If set, each batch is sampled with a
            generator seeded from :obj:`seed` and the batch's ids, so batches
            are reproducible and identical for any :obj:`num_workers`;
            otherwise the global torch RNG is used (seeded per worker by the
            :class:`~torch.utils.data.DataLoader`). (default: :obj:`None`)
    """
    def __init__(self, index: Tensor, num_users: int, num_items: int,
                 num_neighbors: List[int] = (3, 3), num_walks: int = 10,
                 num_traversals: int = 2, restart_prob: float = 0.5,
                 exclude_seed: bool = False, normalize: bool = False,
                 remove_label_edges: bool = True,
                 hard_negatives: Optional[HardNegativeSampler] = None,
                 num_hard_negatives: int = 0, seed: Optional[int] = None):
        num_neighbors = list(num_neighbors)
        if len(num_neighbors) == 0:
            raise ValueError("'num_neighbors' must hold the number of "
                             "neighbours of at least one layer")
        for top_k in num_neighbors:
            check_top_k(top_k)
        self.neighborhood = ImportanceNeighborhood(
            index, num_users, num_items, num_walks=num_walks,
            num_traversals=num_traversals, restart_prob=restart_prob,
            top_k=max(num_neighbors), exclude_seed=exclude_seed)
        if hard_negatives is not None and hard_negatives.num_items != int(
                num_items):
            raise ValueError(f"'hard_negatives' ranks "
                             f"{hard_negatives.num_items} items, but the "
                             f"sampler has {num_items}")
        self.num_items = int(num_items)
        self.num_neighbors = num_neighbors
        self.normalize = bool(normalize)
        self.remove_label_edges = bool(remove_label_edges)
        self.hard_negatives = hard_negatives
        self.num_hard_negatives = num_hard_negatives
        self.seed = seed

    @property
    def num_hard_negatives(self) -> int:
        return self._num_hard_negatives

    @num_hard_negatives.setter
    def num_hard_negatives(self, value: int):
        if int(value) != value or value < 0:
            raise ValueError(f"'num_hard_negatives' must be a non-negative "
                             f"integer (got {value})")
        if value > 0 and self.hard_negatives is None:
            raise ValueError("'num_hard_negatives' > 0 needs a "
                             "'hard_negatives' sampler")
        self._num_hard_negatives = int(value)

    # Helpers #################################################################

    def _check_ids(self, ids: Tensor, name: str) -> Tensor:
        ids = ids.long().view(-1)
        if ids.numel() > 0 and (int(ids.min()) < 0
                                or int(ids.max()) >= self.num_items):
            raise ValueError(f"'{name}' holds item ids in [{int(ids.min())}, "
                             f"{int(ids.max())}], outside [0, "
                             f"{self.num_items - 1}] (num_items="
                             f"{self.num_items})")
        return ids

    def _generator(self, *ids: Tensor) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        # Hashes of int tuples are stable across processes.
        key = hash((int(self.seed), ) + tuple(
            tuple(t.tolist()) for t in ids))
        return torch.Generator().manual_seed(key % (2**63))

    def sample(self, seeds: Tensor,
               generator: Optional[torch.Generator] = None,
               label_pairs: Optional[Tensor] = None) -> SamplerOutput:
        r"""Samples the :math:`K`-hop computation graph of :obj:`seeds`
        (item ids, kept in order as the first nodes). Edges between the two
        items of any pair in :obj:`label_pairs` :obj:`[2, P]` are removed.
        The edge weights are the last entry of :obj:`out.metadata`."""
        seeds = self._check_ids(seeds, 'seeds')
        num_items = self.num_items
        banned = None
        if label_pairs is not None and label_pairs.numel() > 0:
            q, i = label_pairs[0].long(), label_pairs[1].long()
            banned = torch.cat([q * num_items + i, i * num_items + q])

        def neighbors(targets: Tensor, top_k: int) -> Iterator[Block]:
            for offset, size, row, nbr, weight in self.neighborhood._blocks(
                    targets, top_k, generator, normalize=False):
                if banned is not None:
                    key = nbr * num_items + targets[offset:].index_select(
                        0, row)
                    keep = ~torch.isin(key, banned)
                    row, nbr, weight = (t.masked_select(keep)
                                        for t in (row, nbr, weight))
                if self.normalize:
                    weight = l1_normalize(weight, row, size)
                yield offset, row, nbr, weight

        return expand_hops(seeds, self.num_neighbors, neighbors, num_items)

    def _negatives(self, neg_sampling: NegativeSampling, num: int,
                   endpoint: str, generator: Optional[torch.Generator]
                   ) -> Tensor:
        weight = (neg_sampling.src_weight
                  if endpoint == 'src' else neg_sampling.dst_weight)
        if weight is None:
            return torch.randint(self.num_items, (num, ), generator=generator)
        if weight.numel() != self.num_items:
            raise ValueError(f"the negative sampling '{endpoint}_weight' must "
                             f"have one entry per item ({self.num_items}), "
                             f"got {weight.numel()}")
        return torch.multinomial(weight.float(), num, replacement=True,
                                 generator=generator)

    # BaseSampler #############################################################

    def _check_input(self, inputs: Any):
        if inputs.input_type is not None:
            raise ValueError(f"'{self.__class__.__name__}' samples the "
                             f"homogeneous item graph (got input type "
                             f"{inputs.input_type!r}); pass a 'Data' object")
        if inputs.time is not None:
            raise ValueError(f"'{self.__class__.__name__}' does not support "
                             f"temporal sampling (got seed times)")

    def sample_from_nodes(self, inputs: NodeSamplerInput,
                          **kwargs) -> SamplerOutput:
        self._check_input(inputs)
        seeds = self._check_ids(inputs.node, 'input_nodes')
        out = self.sample(seeds, self._generator(seeds))
        out.metadata = (inputs.input_id, inputs.time) + out.metadata
        return out

    def sample_from_edges(self, inputs: EdgeSamplerInput,
                          neg_sampling: Optional[NegativeSampling] = None
                          ) -> SamplerOutput:
        self._check_input(inputs)
        src = self._check_ids(inputs.row, 'edge_label_index[0]')
        dst = self._check_ids(inputs.col, 'edge_label_index[1]')
        generator = self._generator(src, dst)
        num_pos = src.numel()
        label_pairs = (torch.stack([src, dst])
                       if self.remove_label_edges else None)
        edge_label = inputs.label
        triplet = neg_sampling is not None and neg_sampling.is_triplet()
        if neg_sampling is not None:
            num_neg = math.ceil(num_pos * neg_sampling.amount)
            dst_neg = self._negatives(neg_sampling, num_neg, 'dst', generator)
            if triplet:
                dst_neg = dst_neg.view(num_pos, -1)
                if self.num_hard_negatives > 0:
                    hard = self.hard_negatives(src, self.num_hard_negatives,
                                               generator)
                    dst_neg = torch.cat([dst_neg, hard], dim=1)
                dst = torch.cat([dst, dst_neg.reshape(-1)])
            else:
                src_neg = self._negatives(neg_sampling, num_neg, 'src',
                                          generator)
                src, dst = torch.cat([src, src_neg]), torch.cat([dst, dst_neg])
                if edge_label is None:
                    edge_label = torch.ones(num_pos)
                edge_label = torch.cat([
                    edge_label,
                    edge_label.new_zeros((num_neg, ) + edge_label.shape[1:])
                ])

        seeds, inverse = torch.cat([src, dst]).unique(return_inverse=True)
        out = self.sample(seeds, generator, label_pairs)
        if triplet:
            dst_neg_index = inverse[2 * num_pos:].view(num_pos, -1)
            out.metadata = (inputs.input_id, inverse[:num_pos],
                            inverse[num_pos:2 * num_pos],
                            dst_neg_index.squeeze(-1), None) + out.metadata
        else:
            out.metadata = (inputs.input_id, inverse.view(2, -1), edge_label,
                            None) + out.metadata
        return out


class _PinSageFilterMixin:
    r"""Adds :obj:`edge_index` and :obj:`edge_weight` of the sampled
    subgraph to what PyG's loader copies into the minibatch."""
    def _init_filter(self, data: Any, sampler: BaseSampler,
                     transform: Optional[Callable]):
        if not isinstance(sampler, PinSageSampler):
            raise TypeError(f"expected a 'PinSageSampler' (got "
                            f"{type(sampler).__name__})")
        if not isinstance(data, Data) or data.num_nodes != sampler.num_items:
            raise ValueError(f"'data' must be a torch_geometric Data object "
                             f"whose nodes are the {sampler.num_items} items "
                             f"(got {data!r})")
        self._pinsage_transform = transform

    def filter_fn(self, out: SamplerOutput) -> Data:
        data = super().filter_fn(out)
        data.edge_index = torch.stack([out.row, out.col])
        data.edge_weight = out.metadata[-1]
        transform = self._pinsage_transform
        return data if transform is None else transform(data)


class PinSageNodeLoader(_PinSageFilterMixin, NodeLoader):
    r"""PyG's :class:`~torch_geometric.loader.NodeLoader` driven by a
    :class:`PinSageSampler` on the item graph. :obj:`data` is a
    :class:`~torch_geometric.data.Data` with :obj:`num_nodes = num_items`
    and optional item features :obj:`x`; :obj:`input_nodes` defaults to all
    items. Other arguments as :class:`NodeLoader` (:obj:`batch_size`,
    :obj:`shuffle`, :obj:`num_workers`, ...)."""
    def __init__(self, data: Data, sampler: PinSageSampler,
                 input_nodes: Optional[Tensor] = None,
                 transform: Optional[Callable] = None, **kwargs):
        self._init_filter(data, sampler, transform)
        super().__init__(data, sampler, input_nodes=input_nodes, **kwargs)


class PinSageLinkLoader(_PinSageFilterMixin, LinkLoader):
    r"""PyG's :class:`~torch_geometric.loader.LinkLoader` driven by a
    :class:`PinSageSampler`: :obj:`edge_label_index` :obj:`[2, P]` holds
    (query item, positive item) pairs (e.g. from
    :func:`~pyg_lightgode.sampler.sample_item_pairs`); use
    :obj:`neg_sampling='triplet'` for the max-margin loss."""
    def __init__(self, data: Data, sampler: PinSageSampler,
                 edge_label_index: Tensor, edge_label: Optional[Tensor] = None,
                 neg_sampling: Optional[NegativeSampling] = None,
                 transform: Optional[Callable] = None, **kwargs):
        self._init_filter(data, sampler, transform)
        super().__init__(data, sampler, edge_label_index=edge_label_index,
                         edge_label=edge_label, neg_sampling=neg_sampling,
                         **kwargs)


def item_data(num_items: int, x: Optional[Tensor] = None) -> Data:
    r"""The item-graph :class:`~torch_geometric.data.Data` the loaders take
    (nodes = items, optional features :obj:`x`)."""
    if x is not None and (x.dim() < 1 or x.size(0) != num_items):
        raise ValueError(f"'x' must have {num_items} rows (got "
                         f"{list(x.shape)})")
    data = Data(num_nodes=num_items)
    if x is not None:
        data.x = x
    return data

