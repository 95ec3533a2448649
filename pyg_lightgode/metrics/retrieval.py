r"""Top-:math:`k` item retrieval for batches of users, in one place.

* :func:`exact_topk` scores a batch of query rows against all items (inner
  product or a custom :obj:`score_fn`), sets the scores of excluded
  (row, item) pairs to :obj:`-inf` and keeps the top :math:`k`. Inner
  products are computed block by block into one reused buffer of about
  :obj:`block_numel` scores (query rows :math:`\times` items), each block
  reduced at once by :func:`dense_topk`; item chunks (an
  :obj:`item_chunk_size`, or item tables read from disk) are combined by
  :func:`merge_topk`, the one implementation of merging partial top-:math:`k`
  lists.
* :func:`dense_topk` is an exact top-:math:`k` of a dense score block that
  reads the block once: the :math:`I` columns are split into
  :math:`\lfloor I / G \rfloor` groups of :math:`G` columns; the top-:math:`k`
  items all lie in the :math:`k` groups with the largest maxima (an item
  outside them is beaten by the maxima of :math:`k` other groups), so only
  those :math:`k G` candidates are ranked.
* :class:`ItemIndex` retrieves with :obj:`kind="exact"` (the above),
  :obj:`"mips"` (:class:`torch_geometric.nn.pool.MIPSKNNIndex`, exact
  maximum inner product search of :obj:`faiss`) or :obj:`"approx-mips"`
  (:class:`torch_geometric.nn.pool.ApproxMIPSKNNIndex`, an inverted file
  with product quantisation, for large catalogues), with the excluded pairs
  handed to faiss as :obj:`exclude_links`. :obj:`faiss` is optional and
  only imported for those kinds.

Every function returns :obj:`(index, score)` of shape :obj:`[B, k]`, best
first, padded with index :obj:`-1` and score :obj:`-inf` where fewer than
:math:`k` items remain; items scored :obj:`-inf` are never returned.
"""
import math
from typing import (
    Callable,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.pool.knn import KNNOutput

ScoreFn = Callable[[Tensor, Tensor], Tensor]
#: :obj:`(row, item)` of the excluded pairs of a batch of query rows, where
#: :obj:`row` is the position in the batch.
Excluded = Tuple[Tensor, Tensor]
TopK = Tuple[Tensor, Tensor]

#: Inner-product scores held at once (8 MiB in float32, so that a block is
#: still cached when it is masked and reduced; larger blocks measured
#: slower): the query rows of a block are :obj:`block_numel // num_items`.
DEFAULT_BLOCK_NUMEL = 1 << 21
#: Columns per group of :func:`dense_topk`.
GROUP_SIZE = 16
#: :class:`ItemIndex` kinds.
INDEX_KINDS = ('exact', 'mips', 'approx-mips')
#: faiss returns at most this many neighbours per query.
FAISS_MAX_K = 2048
#: Query rows per faiss search (rows sorted by their number of exclusions).
FAISS_BATCH_SIZE = 256


def merge_topk(best: Optional[TopK], index: Tensor, score: Tensor,
               k: int) -> TopK:
    r"""Merges the partial top-:obj:`k` list :obj:`(index, score)` (*e.g.*
    of another item chunk) into :obj:`best`, both :obj:`(index, score)` of
    shape :obj:`[B, *]`, and returns the top :obj:`k` of the two."""
    if best is None:
        return index, score
    score = torch.cat([best[1], score], dim=-1)
    index = torch.cat([best[0], index], dim=-1)
    score, perm = score.topk(min(k, score.size(-1)), dim=-1)
    return index.gather(-1, perm), score


def dense_topk(scores: Tensor, k: int,
               group_size: int = GROUP_SIZE) -> TopK:
    r"""Exact :obj:`(index, score)` of the :obj:`min(k, I)` largest entries
    of every row of :obj:`scores` :obj:`[B, I]`, best first.

    Column :math:`j < G \lfloor I / G \rfloor` belongs to group
    :math:`j \bmod \lfloor I / G \rfloor`; only the columns of the :math:`k`
    groups with the largest maxima (and the last :math:`I \bmod G` columns)
    are ranked, which equals the top-:math:`k` of the whole row up to the
    order of tied scores. Small rows are ranked directly.
    """
    num_rows, num_cols = scores.shape
    num_groups = num_cols // group_size
    if num_groups < 4 * k:
        score, index = scores.topk(min(k, num_cols), dim=-1)
        return index, score
    main = num_groups * group_size
    # Group j holds the columns j, j + num_groups, j + 2 * num_groups, ...:
    group_max = scores[:, :main].view(num_rows, group_size,
                                      num_groups).amax(dim=1)
    group = group_max.topk(k, dim=-1).indices
    offset = torch.arange(0, main, num_groups, device=scores.device)
    cand = (group.unsqueeze(-1) + offset).view(num_rows, k * group_size)
    if main < num_cols:  # The remainder columns are always candidates.
        tail = torch.arange(main, num_cols, device=scores.device)
        cand = torch.cat([cand, tail.expand(num_rows, -1)], dim=-1)
    score, perm = scores.gather(1, cand).topk(k, dim=-1)
    return cand.gather(1, perm), score


def finish_topk(index: Tensor, score: Tensor, k: int,
                name: str = "'score_fn' and the embeddings") -> TopK:
    r"""Pads a top-:obj:`k` list to :obj:`k` entries (index :obj:`-1`, score
    :obj:`-inf`), marks items scored :obj:`-inf` as :obj:`-1` and rejects
    NaN scores (:obj:`name` says what to check)."""
    if bool(score.isnan().any()):
        raise ValueError(f"scores contain NaN (check {name})")
    if score.size(-1) < k:  # Fewer items than k:
        pad = (0, k - score.size(-1))
        score = F.pad(score, pad, value=float('-inf'))
        index = F.pad(index, pad, value=-1)
    # Excluded items (score -inf) are never recommended:
    index[score == float('-inf')] = -1
    return index, score


def mask_excluded(scores: Tensor, excluded: Optional[Excluded],
                  inplace: bool = True) -> Tensor:
    r"""Sets :obj:`scores[row, item]` to :obj:`-inf` for the excluded
    :obj:`(row, item)` pairs (in place or on a copy)."""
    if excluded is None or excluded[0].numel() == 0:
        return scores
    neg_inf = scores.new_tensor(float('-inf'))
    if inplace:
        return scores.index_put_(tuple(excluded), neg_inf)
    return scores.index_put(tuple(excluded), neg_inf)


def _check_scores(scores, expected: Tuple[int, int], name: str) -> Tensor:
    if not isinstance(scores, Tensor) or tuple(scores.shape) != expected:
        raise ValueError(f"'{name}' must return scores of shape "
                         f"{list(expected)} (got "
                         f"{getattr(scores, 'shape', type(scores))})")
    if not scores.is_floating_point():
        raise ValueError(f"'{name}' must return floating point scores (got "
                         f"{scores.dtype})")
    return scores


def _split_rows(excluded: Optional[Excluded], num_rows: int,
                rows_per_block: int) -> List[Optional[Excluded]]:
    r"""Splits the excluded pairs by blocks of :obj:`rows_per_block` query
    rows, with rows made block-local."""
    num_blocks = -(-num_rows // rows_per_block)
    if excluded is None:
        return [None] * num_blocks
    row, col = excluded
    if num_blocks == 1:
        return [(row, col)]
    if row.numel() > 1 and not bool((row[1:] >= row[:-1]).all()):
        row, perm = row.sort(stable=True)
        col = col[perm]
    starts = torch.arange(0, num_blocks + 1, device=row.device).mul_(
        rows_per_block)
    bounds = torch.searchsorted(row, starts).tolist()
    return [(row[lo:hi] - i * rows_per_block, col[lo:hi])
            for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]


def _in_chunk(excluded: Optional[Excluded], start: int, end: int,
              whole: bool) -> Optional[Excluded]:
    if excluded is None or whole:
        return excluded
    row, col = excluded
    mask = (col >= start) & (col < end)
    return row[mask], col[mask] - start


@torch.no_grad()
def exact_topk(
    query: Tensor,
    items: Union[Tensor, Iterable[Tuple[int, Tensor]]],
    k: int,
    exclude_links: Optional[Excluded] = None,
    item_chunk_size: Optional[int] = None,
    score_fn: Optional[ScoreFn] = None,
    block_numel: int = DEFAULT_BLOCK_NUMEL,
) -> TopK:
    r"""Exact top-:obj:`k` items of every query row by the inner product
    :math:`\mathbf{q}^{\top} \mathbf{e}_i` (or :obj:`score_fn`), leaving
    out the :obj:`exclude_links` pairs.

    Args:
        query (torch.Tensor): Query (user) embeddings :obj:`[B, F]`.
        items (torch.Tensor or iterable): Item embeddings :obj:`[I, F]`, or
            an iterable of :obj:`(start, item_chunk)` in order covering all
            items (*e.g.* read from disk); each chunk is read once.
        k (int): Number of items per row.
        exclude_links (tuple of torch.Tensor, optional): :obj:`(row, item)`
            of the pairs never to return; :obj:`row` indexes :obj:`query`.
        item_chunk_size (int, optional): Splits a tensor :obj:`items` into
            chunks of this many items (default: one chunk).
        score_fn (callable, optional): :obj:`score_fn(query, item_chunk)`
            returning scores :obj:`[b, c]` of a block of query rows and an
            item chunk; replaces the inner product (it may return a view of
            its inputs: it is not modified).
        block_numel (int, optional): Scores held at once: query rows are
            scored :obj:`block_numel // c` at a time against item chunks
            of :obj:`c` items.

    Shapes:
        - **output:** item indices :math:`(B, k)` (long), scores
          :math:`(B, k)`, best first
    """
    num_rows = query.size(0)
    if num_rows == 0:
        return (torch.empty(0, k, dtype=torch.long, device=query.device),
                query.new_empty(0, k))
    if isinstance(items, Tensor):
        num_items = items.size(0)
        chunk_size = item_chunk_size or num_items
        chunks: Iterable[Tuple[int, Tensor]] = (
            (start, items[start:start + chunk_size])
            for start in range(0, num_items, chunk_size))
        whole = chunk_size >= num_items
    else:
        chunks, whole = items, False

    best: List[Optional[TopK]] = []
    buf: Optional[Tensor] = None
    rows = 0  # Query rows per block, fixed by the first chunk.
    for start, chunk in chunks:
        end = start + chunk.size(0)
        if rows == 0:
            rows = max(1, min(num_rows, block_numel // max(1, end - start)))
            block_lists = _split_rows(exclude_links, num_rows, rows)
        if score_fn is None and (buf is None or buf.size(1) != end - start):
            buf = query.new_empty(rows, end - start)
        blocks = []
        for i, block_excluded in enumerate(block_lists):
            block = query[i * rows:(i + 1) * rows]
            block_excluded = _in_chunk(block_excluded, start, end, whole)
            if score_fn is None:  # Product, mask and top-k in place:
                scores = torch.mm(block, chunk.t(), out=buf[:block.size(0)])
                blocks.append(dense_topk(mask_excluded(scores,
                                                       block_excluded), k))
            else:  # score_fn may return a view of its inputs: no in-place.
                scores = _check_scores(score_fn(block, chunk),
                                       (block.size(0), end - start),
                                       'score_fn')
                scores = mask_excluded(scores, block_excluded, inplace=False)
                blocks.append(dense_topk(scores, k))
        if start > 0:
            for index, _ in blocks:
                index += start
        best = [
            merge_topk(best[i] if best else None, index, score, k)
            for i, (index, score) in enumerate(blocks)
        ]
    if not best:
        raise ValueError("'items' holds no item")
    index = torch.cat([index for index, _ in best])
    score = torch.cat([score for _, score in best])
    return finish_topk(index, score, k)


def _import_faiss():
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "Item retrieval with kind='mips' or 'approx-mips' needs the "
            "optional package 'faiss' (pip install faiss-cpu, or "
            "faiss-gpu); kind='exact' works without it") from e
    return faiss


def _by_exclusions(num_rows: int, links: Optional[Tensor],
                   batch_size: int = FAISS_BATCH_SIZE
                   ) -> Iterator[Tuple[Tensor, Optional[Tensor]]]:
    r"""Yields :obj:`(rows, links)` of sub-batches of the query rows in the
    order of their number of excluded items, with the :obj:`[2, E]` excluded
    links of each sub-batch (rows made local): faiss is then asked for
    :math:`k` plus the largest count *of the sub-batch* of neighbours
    instead of :math:`k` plus the largest count of all rows."""
    if links is None or links.size(1) == 0:
        yield torch.arange(num_rows), None
        return
    device = links.device
    order = torch.bincount(links[0], minlength=num_rows).argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(num_rows, device=device)
    key, perm = rank[links[0]].sort()
    item = links[1][perm]
    starts = torch.arange(0, num_rows + batch_size, batch_size,
                          device=device).clamp_(max=num_rows)
    bounds = torch.searchsorted(key, starts).tolist()
    for i, start in enumerate(range(0, num_rows, batch_size)):
        lo, hi = bounds[i], bounds[i + 1]
        yield order[start:start + batch_size], torch.stack(
            [key[lo:hi] - start, item[lo:hi]])


class ItemIndex:
    r"""Top-:math:`k` retrieval over a fixed item table, leaving out
    excluded (query, item) pairs.

    * :obj:`kind="exact"`: blocked inner products with a fused top-:math:`k`
      (:func:`exact_topk`).
    * :obj:`kind="mips"`: :class:`torch_geometric.nn.pool.MIPSKNNIndex`
      (:obj:`faiss.IndexFlatIP`), also exact.
    * :obj:`kind="approx-mips"`:
      :class:`torch_geometric.nn.pool.ApproxMIPSKNNIndex`
      (:obj:`faiss.IndexIVFPQ`), approximate: the items are clustered into
      :obj:`num_cells` cells, a query visits the :obj:`num_cells_to_visit`
      cells closest to it, and the scores come from product-quantised
      codes of :obj:`bits_per_vector` sub-vectors of 8 bits.

    The faiss kinds search :math:`k` plus the largest number of excluded
    items of a query row, then drop the excluded ones (PyG's
    :obj:`exclude_links`); the rows are searched in sub-batches of
    :obj:`FAISS_BATCH_SIZE` in the order of their number of exclusions, so
    that a few heavy rows do not enlarge every search, and rows with more
    than :math:`2048 - k` excluded items (faiss' limit) are ranked exactly
    instead.

    .. code-block:: python

        index = ItemIndex(item_emb, kind='approx-mips', num_cells=512,
                          num_cells_to_visit=32)
        score, item = index.search(user_emb[users], k=20,
                                   exclude_links=(batch_row, train_item))

    Args:
        item_emb (torch.Tensor): Item embeddings :obj:`[I, F]`.
        kind (str, optional): :obj:`"exact"`, :obj:`"mips"` or
            :obj:`"approx-mips"`. (default: :obj:`"exact"`)
        num_cells (int, optional): Cells of :obj:`"approx-mips"`
            (default: :math:`\min(4 \sqrt{I}, I / 39)`).
        num_cells_to_visit (int, optional): Cells visited per query by
            :obj:`"approx-mips"` (default: :obj:`num_cells // 8`).
        bits_per_vector (int, optional): Sub-vectors of the product
            quantiser of :obj:`"approx-mips"`; must divide :math:`F`
            (default: :math:`F / 2` for even :math:`F`, else :math:`F`).
        item_chunk_size (int, optional): Items scored at once by
            :obj:`"exact"`.
        refine (int, optional): The faiss kinds fetch :obj:`refine * k`
            candidates, rescore them exactly (inner products with
            :obj:`item_emb`) and keep the best :obj:`k`, which raises the
            recall of :obj:`"approx-mips"` at little cost; :obj:`1` returns
            faiss' own top-:obj:`k` and scores. (default: :obj:`4` for
            :obj:`"approx-mips"`, else :obj:`1`)
    """
    def __init__(
        self,
        item_emb: Tensor,
        kind: str = 'exact',
        num_cells: Optional[int] = None,
        num_cells_to_visit: Optional[int] = None,
        bits_per_vector: Optional[int] = None,
        item_chunk_size: Optional[int] = None,
        refine: Optional[int] = None,
    ):
        if kind not in INDEX_KINDS:
            raise ValueError(f"'kind' must be one of {list(INDEX_KINDS)} "
                             f"(got {kind!r})")
        if not isinstance(item_emb, Tensor) or item_emb.dim() != 2 or \
                item_emb.size(0) == 0 or not item_emb.is_floating_point():
            raise ValueError(f"'item_emb' must be a floating point tensor of "
                             f"shape [I, F] with I > 0 (got "
                             f"{getattr(item_emb, 'shape', item_emb)!r:.80})")
        if refine is None:
            refine = 4 if kind == 'approx-mips' else 1
        if isinstance(refine, bool) or not isinstance(refine, int) or \
                refine <= 0:
            raise ValueError(f"'refine' must be a positive integer (got "
                             f"{refine!r})")
        self.kind, self.item_emb = kind, item_emb
        self.item_chunk_size, self.refine = item_chunk_size, refine
        self.knn_index = None
        if kind == 'exact':
            return
        _import_faiss()
        from torch_geometric.nn.pool import ApproxMIPSKNNIndex, MIPSKNNIndex
        emb = item_emb.detach().float().contiguous()
        if kind == 'mips':
            self.knn_index = MIPSKNNIndex(emb)
            return
        num_items, channels = emb.shape
        if num_cells is None:
            num_cells = max(1, min(round(4 * math.sqrt(num_items)),
                                   num_items // 39))
        if num_cells_to_visit is None:
            num_cells_to_visit = max(1, num_cells // 8)
        if bits_per_vector is None:
            bits_per_vector = channels // 2 if channels % 2 == 0 else channels
        for name, value in (('num_cells', num_cells),
                            ('num_cells_to_visit', num_cells_to_visit),
                            ('bits_per_vector', bits_per_vector)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value <= 0:
                raise ValueError(f"'{name}' must be a positive integer (got "
                                 f"{value!r})")
        if num_cells > num_items:
            raise ValueError(f"'num_cells' ({num_cells}) must not exceed "
                             f"the number of items ({num_items})")
        if channels % bits_per_vector != 0:
            raise ValueError(f"'bits_per_vector' ({bits_per_vector}) must "
                             f"divide the embedding size {channels}")
        self.num_cells = num_cells
        self.num_cells_to_visit = min(num_cells_to_visit, num_cells)
        self.bits_per_vector = bits_per_vector
        self.knn_index = ApproxMIPSKNNIndex(num_cells,
                                            self.num_cells_to_visit,
                                            bits_per_vector, emb)

    @property
    def num_items(self) -> int:
        return self.item_emb.size(0)

    @torch.no_grad()
    def search(self, query: Tensor, k: int,
               exclude_links: Optional[Excluded] = None) -> KNNOutput:
        r"""Top-:obj:`k` items of the query rows :obj:`[B, F]` as
        :obj:`KNNOutput(score, index)` :obj:`[B, k]` (as
        :meth:`torch_geometric.nn.pool.MIPSKNNIndex.search` answers),
        leaving out the :obj:`(row, item)` pairs of :obj:`exclude_links`
        (:obj:`row` indexes :obj:`query`)."""
        excluded = exclude_links
        if self.kind == 'exact':
            index, score = exact_topk(query, self.item_emb, k, excluded,
                                      self.item_chunk_size)
        elif k > FAISS_MAX_K:
            raise ValueError(f"'k' must be at most {FAISS_MAX_K} for "
                             f"kind={self.kind!r} (faiss' limit; got {k})")
        elif self.refine > 1:
            index, score = self._search_refined(query, k, excluded)
        else:
            index, score = self._search(query, k, excluded)
        return KNNOutput(score, index)

    def _search_refined(self, query: Tensor, k: int,
                        excluded: Optional[Excluded]) -> TopK:
        index, _ = self._search(query, min(self.refine * k, FAISS_MAX_K,
                                           self.num_items), excluded)
        valid = index >= 0
        item_emb = self.item_emb.to(query.device, query.dtype)
        score = torch.einsum('bf,bcf->bc', query,
                             item_emb[index.clamp(min=0)])
        score = score.masked_fill_(~valid, float('-inf'))
        score, perm = score.topk(min(k, score.size(-1)), dim=-1)
        return finish_topk(index.gather(-1, perm), score, k,
                           name='the embeddings')

    def _search(self, query: Tensor, k: int,
                excluded: Optional[Excluded]) -> TopK:
        num_rows = query.size(0)
        index = torch.full((num_rows, k), -1, dtype=torch.long,
                           device=query.device)
        score = query.new_full((num_rows, k), float('-inf'))
        heavy = None
        if excluded is not None and excluded[0].numel() > 0:
            degree = torch.bincount(excluded[0], minlength=num_rows)
            heavy = degree > FAISS_MAX_K - k
            if not bool(heavy.any()):
                heavy = None
        light = torch.arange(num_rows, device=query.device)
        links = None if excluded is None else torch.stack(excluded)
        if heavy is not None:  # More exclusions than faiss can skip:
            rows = heavy.nonzero().view(-1)
            keep = heavy[excluded[0]]
            remap = torch.full((num_rows, ), -1, dtype=torch.long,
                               device=query.device)
            remap[rows] = torch.arange(rows.numel(), device=query.device)
            out = exact_topk(query[rows], self.item_emb, k,
                             (remap[excluded[0][keep]], excluded[1][keep]))
            index[rows], score[rows] = out[0], out[1].to(score.dtype)
            light = (~heavy).nonzero().view(-1)
            remap[light] = torch.arange(light.numel(), device=query.device)
            links = links[:, ~keep]
            links[0] = remap[links[0]]
        if light.numel() > 0:
            light_query = query[light].detach().float().contiguous()
            for rows, sub_links in _by_exclusions(light.numel(), links):
                found_score, found = self.knn_index.search(
                    light_query[rows], k, sub_links)
                found = found.to(index.device).long()
                found_score = found_score.to(score.device, score.dtype)
                found_score[found < 0] = float('-inf')  # faiss: no result.
                width = min(k, found.size(1))
                index[light[rows], :width] = found[:, :width]
                score[light[rows], :width] = found_score[:, :width]
        return finish_topk(index, score, k, name='the embeddings')

    def __repr__(self) -> str:
        extra = '' if self.kind != 'approx-mips' else (
            f', num_cells={self.num_cells}, num_cells_to_visit='
            f'{self.num_cells_to_visit}, bits_per_vector='
            f'{self.bits_per_vector}')
        if self.refine > 1:
            extra += f', refine={self.refine}'
        return (f'{self.__class__.__name__}(num_items={self.num_items}, '
                f'kind={self.kind!r}{extra})')
