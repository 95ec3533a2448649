r"""PinSage's layer-wise inference with the nodes split across ranks (the
paper's MapReduce pass): every node's layer-:math:`k` vector is computed
once, on the rank that owns it, from its neighbours' layer-:math:`(k-1)`
vectors fetched from their owners by the halo exchange of a
:class:`~pyg_lightgode.apps.distributed.partition.GraphPartition`."""
from typing import Optional

import torch
from torch import Tensor

from pyg_lightgode.apps.distributed.partition import (
    GraphPartition,
    NodeSplit,
    partition_rows,
)
from pyg_lightgode.nn.models import PinSage


def partition_neighborhood(edge_index: Tensor, edge_weight: Optional[Tensor],
                           split: NodeSplit, group=None) -> GraphPartition:
    r"""This rank's targets of a neighbourhood graph :obj:`[2, E]` (row 0
    the neighbour, row 1 the target, as
    :meth:`~pyg_lightgode.nn.models.PinSage.inference` takes it), repeated
    edges kept apart (collective)."""
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1))
    return partition_rows(edge_index[1], edge_index[0], edge_weight, split,
                          group)


@torch.no_grad()
def pinsage_inference(model: PinSage, part: GraphPartition,
                      x: Optional[Tensor] = None) -> Tensor:
    r"""The embeddings :obj:`[n, out_channels]` of this rank's nodes, equal
    to their rows of :meth:`PinSage.inference` (collective). :obj:`x` holds
    this rank's rows of the node features, if the model has any. Call
    :meth:`eval` first."""
    device = next(model.parameters()).device
    n_id = part.nodes.to(device) if model.embedding is not None else None
    h = model.embed_input(x, n_id)
    adj = part.adj.to(device, h.dtype)
    for conv in model.convs:
        h = conv((part.gather(h), h), adj)
    return model.head(h)
