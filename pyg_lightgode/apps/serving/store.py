r"""Whole-graph embeddings with bounded memory.

* :class:`EmbeddingStore` is an :obj:`[N, F]` embedding table on disk, a
  standard :obj:`.npy` file (readable by :obj:`numpy.load(path,
  mmap_mode="r")`) plus a small JSON header, written row chunk by row chunk
  with :meth:`EmbeddingStore.create` / :func:`save_embeddings` and read back
  lazily, a chunk or a set of rows at a time.
* :func:`chunked_recommend` retrieves the top-:math:`k` items of users
  chunk by chunk over users *and* items (merging partial top-:math:`k`
  lists), reading the tables from stores, numpy arrays (memory maps
  included) or tensors, so that neither table has to be in memory in one
  piece; it returns what :func:`~pyg_lightgode.metrics.ranking.recommend`
  returns on in-memory tensors.

Together with :obj:`LightGODEConv(chunk_size=...)` and
:meth:`PinSage.inference(chunk_size=...)
<pyg_lightgode.nn.models.PinSage.inference>`, which bound their own
temporaries, this is post-training inference for graphs whose embedding
tables are large compared with memory.
"""
import json
import os
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.nn.pool.knn import KNNOutput

from pyg_lightgode.data.io import atomic_write
from pyg_lightgode.data.validation import check_index_range
from pyg_lightgode.metrics.ranking import DEFAULT_BATCH_SIZE, UserItemCSR
from pyg_lightgode.metrics.retrieval import DEFAULT_BLOCK_NUMEL, exact_topk

#: Format tag and version written to every store header.
STORE_FORMAT = 'pyg_lightgode.EmbeddingStore'
STORE_VERSION = 1
#: Rows per chunk read or written at once unless told otherwise.
DEFAULT_CHUNK_SIZE = 65536
#: Data types a store can hold (numpy has no bfloat16).
STORE_DTYPES = (torch.float16, torch.float32, torch.float64)

Table = Union[Tensor, np.ndarray, 'EmbeddingStore']


def _check_chunk_size(value: Any, name: str = 'chunk_size') -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"'{name}' must be a positive integer (got "
                         f"{value!r})")
    return value


def _header_path(path: str) -> str:
    return f'{path}.json'


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    if dtype not in STORE_DTYPES:
        raise ValueError(f"'dtype' must be one of {list(STORE_DTYPES)} "
                         f"(got {dtype})")
    return torch.empty(0, dtype=dtype).numpy().dtype


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace('torch.', '')


def _check_row_ids(ids: Any, num_rows: int, name: str) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dim() != 1 or \
            ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"'{name}' must be a 1-D integer tensor of row ids "
                         f"(got {getattr(ids, 'shape', type(ids).__name__)})")
    return check_index_range(ids.long().cpu(), num_rows, name)


class EmbeddingStore:
    r"""An :obj:`[N, F]` embedding table on disk, read lazily.

    The rows live in :obj:`path`, a standard :obj:`.npy` file (C order), and
    the shape, data type and free-form metadata in the JSON header
    :obj:`path + ".json"`. Opening validates the two against each other and
    against the file size, so truncated or mismatched files raise a
    :class:`ValueError` instead of returning garbage. Reads are plain file
    reads of row ranges (:meth:`read`, :meth:`chunks`, :meth:`take`), so
    only the rows asked for occupy memory; a memory map
    (:meth:`memmap`) would keep every page it touched, and the pages the
    kernel reads ahead, resident while it lives.

    Create a store with :meth:`create` (row chunk by row chunk) or
    :func:`save_embeddings`; a store only appears at :obj:`path` once all of
    its rows were written.

    Args:
        path (str): The :obj:`.npy` file of an existing store.
        shape (Sequence[int], optional): The expected :obj:`[N, F]`; a store
            of another shape raises an error. Use :obj:`-1` (or :obj:`None`)
            for a size not to check.
        dtype (torch.dtype, optional): The expected data type.

    Shapes:
        - **read output:** :math:`(\textrm{rows}, F)`
    """
    def __init__(self, path: str, shape: Optional[Sequence[int]] = None,
                 dtype: Optional[torch.dtype] = None):
        self.path = os.fspath(path)
        header = self._read_header()
        self.meta: Dict[str, Any] = header.get('meta', {})
        self.dtype: torch.dtype = getattr(torch, header['dtype'])
        self._np_dtype = _numpy_dtype(self.dtype)
        num_rows, self.num_channels = header['shape']
        self._data_offset = self._check_data_file(num_rows)
        self._row_offset = 0  # First row of this view (see narrow()).
        self.num_rows = num_rows
        if shape is not None:
            shape = list(shape)
            if len(shape) != 2 or any(
                    s not in (None, -1) and s != have
                    for s, have in zip(shape, self.shape)):
                raise ValueError(f"The store '{self.path}' has shape "
                                 f"{list(self.shape)}, expected {shape}")
        if dtype is not None and dtype != self.dtype:
            raise ValueError(f"The store '{self.path}' holds {self.dtype}, "
                             f"expected {dtype}")

    def _read_header(self) -> Dict[str, Any]:
        header_path = _header_path(self.path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"No embedding store at '{self.path}'")
        if not os.path.exists(header_path):
            raise ValueError(f"The embedding store '{self.path}' has no "
                             f"header '{header_path}' (an unfinished or "
                             f"interrupted write?)")
        try:
            with open(header_path) as f:
                header = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"The header '{header_path}' is not valid JSON "
                             f"({e})") from e
        if not isinstance(header, dict) or header.get(
                'format') != STORE_FORMAT:
            raise ValueError(f"'{header_path}' is not an embedding store "
                             f"header (format {STORE_FORMAT!r} expected)")
        if header.get('version') != STORE_VERSION:
            raise ValueError(f"'{header_path}' has version "
                             f"{header.get('version')!r}; this code reads "
                             f"version {STORE_VERSION}")
        shape, dtype = header.get('shape'), header.get('dtype')
        if not (isinstance(shape, list) and len(shape) == 2 and all(
                isinstance(s, int) and s > 0 for s in shape)):
            raise ValueError(f"'{header_path}' has an invalid shape {shape!r}"
                             f" (expected [N, F] with N, F > 0)")
        if dtype not in [_dtype_name(d) for d in STORE_DTYPES]:
            raise ValueError(f"'{header_path}' has an unsupported dtype "
                             f"{dtype!r}")
        return header

    def _check_data_file(self, num_rows: int) -> int:
        r"""Checks the :obj:`.npy` header and size against the JSON header;
        returns the byte offset of the first row."""
        try:
            with open(self.path, 'rb') as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (
                    1, 0) else np.lib.format.read_array_header_2_0)
                shape, fortran_order, dtype = read(f)
                offset = f.tell()
        except ValueError as e:
            raise ValueError(f"'{self.path}' is not a valid .npy file "
                             f"({e})") from e
        expected = [num_rows, self.num_channels]
        if list(shape) != expected or fortran_order or \
                dtype != self._np_dtype:
            raise ValueError(f"The data file '{self.path}' holds a "
                             f"{list(shape)} {dtype} array "
                             f"(fortran_order={fortran_order}), but its "
                             f"header says {expected} {self._np_dtype}")
        row_bytes = self.num_channels * self._np_dtype.itemsize
        size, full = os.path.getsize(self.path), offset + num_rows * row_bytes
        if size != full:
            raise ValueError(f"The data file '{self.path}' is truncated or "
                             f"corrupt: {size} bytes, expected {full} "
                             f"({num_rows} rows of {row_bytes} bytes after a "
                             f"{offset}-byte header)")
        return offset

    @classmethod
    def create(cls, path: str, num_rows: int, num_channels: int,
               dtype: torch.dtype = torch.float32,
               meta: Optional[Dict[str, Any]] = None) -> 'EmbeddingWriter':
        r"""Returns an :class:`EmbeddingWriter` that builds a store of
        :obj:`[num_rows, num_channels]` at :obj:`path` from row chunks
        appended in order; use it as a context manager."""
        return EmbeddingWriter(path, num_rows, num_channels, dtype, meta)

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.num_rows, self.num_channels)

    def size(self, dim: Optional[int] = None) -> Union[int, torch.Size]:
        size = torch.Size(self.shape)
        return size if dim is None else size[dim]

    def __len__(self) -> int:
        return self.num_rows

    def narrow(self, start: int, length: int) -> 'EmbeddingStore':
        r"""A store of the rows :obj:`start .. start + length - 1` of this
        one (*e.g.* the items of an all-nodes table), sharing the file."""
        if not (0 <= start and 0 < length and start + length <= self.num_rows):
            raise ValueError(f"Rows [{start}, {start + length}) are not a "
                             f"non-empty range of the {self.num_rows} rows "
                             f"of '{self.path}'")
        view = object.__new__(EmbeddingStore)
        view.__dict__.update(self.__dict__)
        view._row_offset = self._row_offset + start
        view.num_rows = length
        return view

    def read(self, start: int = 0, end: Optional[int] = None) -> Tensor:
        r"""The rows :obj:`start .. end - 1` as a new tensor."""
        end = self.num_rows if end is None else end
        if not 0 <= start <= end <= self.num_rows:
            raise ValueError(f"Rows [{start}, {end}) are outside the "
                             f"{self.num_rows} rows of '{self.path}'")
        out = np.empty((end - start, self.num_channels), self._np_dtype)
        row_bytes = out.itemsize * self.num_channels
        with open(self.path, 'rb') as f:
            f.seek(self._data_offset + (self._row_offset + start) * row_bytes)
            num_read = f.readinto(memoryview(out).cast('B')) if \
                out.size else 0
        if num_read != out.nbytes:
            raise ValueError(f"The data file '{self.path}' is truncated: "
                             f"could read only {num_read} of {out.nbytes} "
                             f"bytes of rows [{start}, {end})")
        return torch.from_numpy(out)

    def take(self, ids: Tensor,
             chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor:
        r"""The rows :obj:`ids` (any order, repeats allowed) as a new
        tensor, read chunk by chunk: of every chunk of :obj:`chunk_size`
        rows holding some of :obj:`ids`, the span from the first to the last
        of them."""
        ids = _check_row_ids(ids, self.num_rows, 'ids')
        chunk_size = _check_chunk_size(chunk_size)
        out = torch.empty(ids.numel(), self.num_channels, dtype=self.dtype)
        sorted_ids, order = ids.sort()
        _, counts = torch.unique_consecutive(sorted_ids // chunk_size,
                                             return_counts=True)
        pos = 0
        for count in counts.tolist():
            part = sorted_ids[pos:pos + count]
            start = int(part[0])
            out[order[pos:pos + count]] = self.read(
                start, int(part[-1]) + 1)[part - start]
            pos += count
        return out

    def memmap(self) -> np.memmap:
        r"""A read-only :class:`numpy.memmap` of the rows (its resident
        pages count towards the process's memory while it lives)."""
        row_bytes = self.num_channels * self._np_dtype.itemsize
        return np.memmap(self.path, self._np_dtype, mode='r',
                         offset=self._data_offset +
                         self._row_offset * row_bytes, shape=self.shape)

    def __getitem__(self, index: Union[int, slice, Tensor]) -> Tensor:
        if isinstance(index, slice):
            start, end, step = index.indices(self.num_rows)
            if step != 1:
                raise ValueError("Only slices with step 1 can be read")
            return self.read(start, max(start, end))
        if isinstance(index, int) and not isinstance(index, bool):
            row = index + self.num_rows if index < 0 else index
            if not 0 <= row < self.num_rows:
                raise IndexError(f"Row {index} is out of range for "
                                 f"{self.num_rows} rows")
            return self.read(row, row + 1)[0]
        return self.take(index)

    def chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE
               ) -> Iterator[Tuple[int, Tensor]]:
        r"""Yields :obj:`(start, rows)` for consecutive chunks of at most
        :obj:`chunk_size` rows."""
        chunk_size = _check_chunk_size(chunk_size)
        for start in range(0, self.num_rows, chunk_size):
            yield start, self.read(start, min(start + chunk_size,
                                              self.num_rows))

    def to_tensor(self) -> Tensor:
        r"""All rows in memory."""
        return self.read()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.path!r}, '
                f'shape={list(self.shape)}, dtype={self.dtype})')


class EmbeddingWriter:
    r"""Writes an :class:`EmbeddingStore` from row chunks appended in order
    (see :meth:`EmbeddingStore.create`). The rows go to a temporary file,
    which becomes :obj:`path` in :meth:`close` once all :obj:`num_rows` rows
    are there; an error inside the :obj:`with` block removes it, leaving no
    partial store.

    Args:
        path (str): Where the store's :obj:`.npy` file goes.
        num_rows (int): Rows :math:`N` of the table.
        num_channels (int): Columns :math:`F` of the table.
        dtype (torch.dtype, optional): Stored data type; appended rows are
            cast to it. (default: :obj:`torch.float32`)
        meta (dict, optional): JSON-serialisable metadata kept in the header
            (*e.g.* :obj:`{"num_users": U}`).
    """
    def __init__(self, path: str, num_rows: int, num_channels: int,
                 dtype: torch.dtype = torch.float32,
                 meta: Optional[Dict[str, Any]] = None):
        self.path = os.fspath(path)
        self.num_rows = _check_chunk_size(num_rows, 'num_rows')
        self.num_channels = _check_chunk_size(num_channels, 'num_channels')
        self.dtype = dtype
        self._np_dtype = _numpy_dtype(dtype)
        try:
            meta_json = json.dumps(dict(meta or {}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"'meta' must be a JSON-serialisable dict "
                             f"({e})") from e
        self.header = json.dumps({
            'format': STORE_FORMAT,
            'version': STORE_VERSION,
            'shape': [self.num_rows, self.num_channels],
            'dtype': _dtype_name(dtype),
            'meta': json.loads(meta_json),
        })
        self.rows_written = 0
        os.makedirs(os.path.dirname(os.path.abspath(self.path)),
                    exist_ok=True)
        self._tmp_path = f'{self.path}.tmp-{os.getpid()}'
        self._file = open(self._tmp_path, 'wb')
        np.lib.format.write_array_header_1_0(
            self._file, {
                'descr': np.lib.format.dtype_to_descr(self._np_dtype),
                'fortran_order': False,
                'shape': (self.num_rows, self.num_channels),
            })

    def append(self, rows: Union[Tensor, np.ndarray]) -> None:
        r"""Writes the next :obj:`rows` :obj:`[n, F]` of the table."""
        if self._file is None:
            raise ValueError(f"The writer of '{self.path}' is closed")
        if isinstance(rows, np.ndarray):
            rows = torch.from_numpy(rows)
        if not isinstance(rows, Tensor) or rows.dim() != 2 or \
                rows.size(1) != self.num_channels:
            raise ValueError(f"'rows' must have shape [n, "
                             f"{self.num_channels}] (got "
                             f"{getattr(rows, 'shape', type(rows).__name__)})")
        if not rows.is_floating_point():
            raise ValueError(f"'rows' must be floating point (got "
                             f"{rows.dtype})")
        if self.rows_written + rows.size(0) > self.num_rows:
            raise ValueError(f"Appending {rows.size(0)} rows after "
                             f"{self.rows_written} exceeds the store's "
                             f"{self.num_rows} rows")
        rows = rows.detach().to('cpu', self.dtype).contiguous()
        if not bool(torch.isfinite(rows).all()):
            raise ValueError("'rows' holds NaN or infinite values")
        self._file.write(memoryview(rows.numpy()).cast('B'))
        self.rows_written += rows.size(0)

    def close(self) -> EmbeddingStore:
        r"""Finishes the store and returns it opened for reading."""
        if self._file is not None:
            self._file.close()
            self._file = None
            if self.rows_written != self.num_rows:
                self._discard()
                raise ValueError(f"Only {self.rows_written} of the "
                                 f"{self.num_rows} rows of '{self.path}' "
                                 f"were written; the store was discarded")
            header_path = _header_path(self.path)
            # A stale header must not describe the new data if we stop here.
            if os.path.exists(header_path):
                os.remove(header_path)
            os.replace(self._tmp_path, self.path)
            atomic_write(lambda tmp: _write_text(tmp, self.header),
                         header_path)
        return EmbeddingStore(self.path)

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self._tmp_path):
            os.remove(self._tmp_path)

    def __enter__(self) -> 'EmbeddingWriter':
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard()


def _write_text(path: str, text: str) -> None:
    with open(path, 'w') as f:
        f.write(text)


def save_embeddings(path: str, emb: Union[Tensor, np.ndarray],
                    chunk_size: int = DEFAULT_CHUNK_SIZE,
                    dtype: Optional[torch.dtype] = None,
                    meta: Optional[Dict[str, Any]] = None) -> EmbeddingStore:
    r"""Writes the embedding table :obj:`emb` :obj:`[N, F]` to an
    :class:`EmbeddingStore` at :obj:`path`, :obj:`chunk_size` rows at a time
    (a cast to :obj:`dtype`, default :obj:`emb`'s, never copies the whole
    table), and returns the store.

    For a table of all nodes of a user--item graph, pass
    :obj:`meta={"num_users": U}` and read the items back with
    :obj:`store.narrow(U, store.num_rows - U)`.
    """
    if isinstance(emb, np.ndarray):
        emb = torch.from_numpy(emb)
    if not isinstance(emb, Tensor) or emb.dim() != 2 or emb.numel() == 0:
        raise ValueError(f"'emb' must be a non-empty [N, F] tensor or array "
                         f"(got {getattr(emb, 'shape', type(emb).__name__)})")
    chunk_size = _check_chunk_size(chunk_size)
    with EmbeddingStore.create(path, emb.size(0), emb.size(1),
                               dtype or emb.dtype, meta) as writer:
        for rows in emb.split(chunk_size):
            writer.append(rows)
    return EmbeddingStore(path)


class _ArrayRows:
    r"""Chunked row access to an in-memory tensor or a numpy array (memory
    maps included) with the interface of :class:`EmbeddingStore`."""
    def __init__(self, array: Union[Tensor, np.ndarray]):
        self.array = array
        self.num_rows, self.num_channels = array.shape
        self.dtype = array.dtype if isinstance(array, Tensor) else \
            torch.from_numpy(np.empty(0, array.dtype)).dtype

    @staticmethod
    def _tensor(rows: Union[Tensor, np.ndarray]) -> Tensor:
        return rows if isinstance(rows, Tensor) else torch.from_numpy(
            np.array(rows))

    def read(self, start: int, end: int) -> Tensor:
        return self._tensor(self.array[start:end])

    def take(self, ids: Tensor) -> Tensor:
        ids = ids if isinstance(self.array, Tensor) else ids.numpy()
        return self._tensor(self.array[ids])


def _as_rows(table: Table, name: str) -> Union[EmbeddingStore, _ArrayRows]:
    if isinstance(table, EmbeddingStore):
        return table
    if not isinstance(table, (Tensor, np.ndarray)):
        raise TypeError(f"'{name}' must be a torch.Tensor, a numpy array or "
                        f"an EmbeddingStore (got {type(table).__name__})")
    if table.ndim != 2 or table.shape[0] == 0:
        raise ValueError(f"'{name}' must have shape [N, F] with N > 0 (got "
                         f"{list(table.shape)})")
    rows = _ArrayRows(table)
    if not rows.dtype.is_floating_point:
        raise ValueError(f"'{name}' must be floating point (got "
                         f"{rows.dtype})")
    return rows


@torch.no_grad()
def chunked_recommend(
    user_emb: Table,
    item_emb: Table,
    users: Optional[Tensor] = None,
    k: int = 20,
    exclude_links: Optional[Union[Tensor, Sequence[Tensor]]] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    user_chunk_size: int = DEFAULT_CHUNK_SIZE,
    item_chunk_size: int = DEFAULT_CHUNK_SIZE,
    score_fn=None,
) -> Tuple[Tensor, Tensor]:
    r"""Top-:math:`k` items of every user in :obj:`users`, like
    :func:`~pyg_lightgode.metrics.ranking.recommend`, but with the user and
    item tables read :obj:`user_chunk_size` and :obj:`item_chunk_size` rows
    at a time, so that they may live on disk.

    For each chunk of users, every chunk of items is ranked by
    :func:`~pyg_lightgode.metrics.retrieval.exact_topk` (the same exact
    path as :func:`~pyg_lightgode.metrics.ranking.recommend`, scoring at
    most :obj:`batch_size` users at a time) and merged into the users'
    running top-:math:`k` lists. The item table is read once per user
    chunk; memory holds one user chunk, one item chunk, at most
    :obj:`batch_size` :math:`\times` :obj:`item_chunk_size` scores and the
    running :math:`2k` candidates of the user chunk.

    Pass stores for bounded resident memory: a :class:`numpy.memmap` works
    too, but keeps the pages it has read resident while it lives.

    Args:
        user_emb (torch.Tensor or numpy.ndarray or EmbeddingStore): User
            embeddings :obj:`[U, F]`.
        item_emb (torch.Tensor or numpy.ndarray or EmbeddingStore): Item
            embeddings :obj:`[I, F]`.
        users (torch.Tensor, optional): User ids to recommend for
            (default: all users, in order).
        k (int, optional): Number of items per user. (default: :obj:`20`)
        exclude_links (torch.Tensor or list of torch.Tensor, optional):
            The :obj:`[2, E]` (user, item) pairs never to recommend.
        batch_size (int, optional): Users scored at once.
        user_chunk_size (int, optional): User rows read at once.
        item_chunk_size (int, optional): Item rows read at once.
        score_fn (callable, optional): As in
            :func:`~pyg_lightgode.metrics.ranking.recommend`.

    Shapes:
        - **output:** item indices :math:`(B, k)` (long, :obj:`-1` where
          fewer than :math:`k` items remain), scores :math:`(B, k)`
    """
    user_rows = _as_rows(user_emb, 'user_emb')
    item_rows = _as_rows(item_emb, 'item_emb')
    if score_fn is None and user_rows.num_channels != item_rows.num_channels:
        raise ValueError(f"'user_emb' [{user_rows.num_rows}, "
                         f"{user_rows.num_channels}] and 'item_emb' "
                         f"[{item_rows.num_rows}, {item_rows.num_channels}] "
                         f"must have the same feature size F for "
                         f"inner-product scores")
    k = _check_chunk_size(k, 'k')
    batch_size = _check_chunk_size(batch_size, 'batch_size')
    user_chunk_size = _check_chunk_size(user_chunk_size, 'user_chunk_size')
    item_chunk_size = _check_chunk_size(item_chunk_size, 'item_chunk_size')
    num_users, num_items = user_rows.num_rows, item_rows.num_rows
    if users is not None:
        users = _check_row_ids(users, num_users, 'users')
    csr = None if exclude_links is None else UserItemCSR(
        exclude_links, num_users, num_items, 'exclude_links')

    dtype = torch.promote_types(user_rows.dtype, item_rows.dtype)
    block_numel = min(DEFAULT_BLOCK_NUMEL, batch_size * item_chunk_size)

    def item_chunks() -> Iterator[Tuple[int, Tensor]]:
        for start in range(0, num_items, item_chunk_size):
            yield start, item_rows.read(
                start, min(start + item_chunk_size, num_items)).to(dtype)

    outs = []
    num_selected = num_users if users is None else users.numel()
    for pos in range(0, num_selected, user_chunk_size):
        end = min(pos + user_chunk_size, num_selected)
        if users is None:
            chunk_users = torch.arange(pos, end)
            user_chunk = user_rows.read(pos, end)
        else:
            chunk_users = users[pos:end]
            user_chunk = user_rows.take(chunk_users)
        excluded = None if csr is None else csr.rows(chunk_users)
        # The item table is read once per user chunk, and each item chunk
        # is merged into the running top-k of all users of the chunk.
        outs.append(exact_topk(user_chunk.to(dtype), item_chunks(), k,
                               excluded, score_fn=score_fn,
                               block_numel=block_numel))
    if not outs:
        return KNNOutput(torch.empty(0, k), torch.empty(0, k,
                                                        dtype=torch.long))
    return KNNOutput(torch.cat([score for _, score in outs]),
                     torch.cat([index for index, _ in outs]))
