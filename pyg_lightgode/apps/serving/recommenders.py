r"""Serving: top-:math:`k` recommendations for an anonymous history (a list of
item ids, no user id), from an artefact that a separate process loads.

Three kinds of recommender answer a history, each through
:meth:`Recommender.recommend`:

* :class:`LightGODERecommender` (trained LightGODE tables + the training
  graph): the history is folded in as a new user
  (:meth:`~.fold_in.LightGODEFoldIn.history_rows`: its
  :math:`\mathbf{E}_0` row by the fold-in rule, then its one-step
  propagated row) and scored against the propagated items. Folding a user
  in changes only its own row and the rows of its history's items, which
  are excluded, so the ranking is exactly the one after a full fold-in.
* :class:`FilterRecommender` (a training-free graph filter: GF-CF, BSPM or
  Turbo-CF, refitted from the stored graph when loaded): the history is an
  interaction row, scored by the filter (filters are inductive for users).
* :class:`ItemEmbeddingRecommender` (*e.g.* PinSage's item embeddings): the
  query is the **mean of the history's item embeddings** (PinSage's board
  embedding with uniform weights), scored by inner product.

The history's items are never recommended, nor the items of
:obj:`exclude`. Repeated ids in a history count once.

**Bad input.** Every recommender raises :class:`ValueError` (or
:class:`TypeError` for ids that are not integers) naming the problem for an
empty history, ids out of :obj:`0..num_items-1`, or raw ids the catalogue
does not know (:meth:`Recommender.lookup`, unless
:obj:`unknown='ignore'`). When the history and :obj:`exclude` leave fewer
than :math:`k` items, fewer are returned, and none when they cover the
catalogue (an empty result, not an error).

**Artefacts** (:meth:`Recommender.save`, :func:`load_recommender`): one
file written by :func:`torch.save` holding only tensors and plain values
(:obj:`format`, :obj:`version`, :obj:`kind`, a JSON :obj:`config` string
and a dict of :obj:`tensors`), read back with
:obj:`torch.load(..., weights_only=True)`, so loading never runs code stored
in the file. A damaged or foreign file raises :class:`ArtefactError`
naming the file.
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor

from pyg_lightgode.apps.serving.fold_in import (
    DEFAULT_E0_RULE,
    E0_RULES,
    LightGODEFoldIn,
)
from pyg_lightgode.data.io import atomic_save, load_weights_only

#: The :obj:`'format'` entry of every artefact.
ARTEFACT_FORMAT = 'pyg_lightgode.serving'
#: The artefact layout this version writes and reads.
ARTEFACT_VERSION = 1


_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1


class ArtefactError(ValueError):
    r"""A serving artefact cannot be loaded: missing, empty, damaged, not a
    weights-only file (refused unread), of another format or version, or
    with missing or malformed entries. The message names the file."""


class NonFiniteScoresError(ValueError):
    r"""A recommender computed NaN or infinite scores (tables so large, or
    an ODE time so long, that the arithmetic overflows), so it has no
    ranking to return. The message says which values were involved."""


def check_finite_scores(scores: Tensor, what: str) -> Tensor:
    r"""Returns :obj:`scores`, or raises :class:`NonFiniteScoresError`
    naming :obj:`what` when any is NaN or infinite (a ranking of NaN scores
    would be arbitrary)."""
    finite = torch.isfinite(scores)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteScoresError(
            f"{what}: {bad} of {scores.numel()} scores are NaN or infinite "
            f"(the tables or the ODE time are so large that the arithmetic "
            f"overflows); no ranking can be returned")
    return scores


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def _as_ids(values, name: str, allow_empty: bool) -> Tensor:
    if isinstance(values, Tensor):
        ids = values
    else:
        if isinstance(values, (str, bytes)) or not hasattr(values,
                                                           '__len__'):
            raise TypeError(f"'{name}' must be a sequence or 1-D tensor of "
                            f"integer item ids (got "
                            f"{type(values).__name__})")
        values = list(values)
        bad = [v for v in values if isinstance(v, bool) or not (
            isinstance(v, int) or (hasattr(v, '__index__')
                                   and not isinstance(v, float)))]
        if bad:
            raise TypeError(f"'{name}' must hold integer item ids (got "
                            f"{bad[0]!r}); map raw ids with lookup() first")
        values = [int(v) for v in values]
        huge = [v for v in values if not _INT64_MIN <= v <= _INT64_MAX]
        if huge:  # torch.tensor would fail with an overflow naming nothing
            raise ValueError(f"'{name}' holds the item id {huge[0]}, far "
                             f"outside any catalogue (ids are 0..num_items"
                             f"-1)")
        ids = torch.tensor(values, dtype=torch.long)
    if ids.dim() != 1:
        raise ValueError(f"'{name}' must be 1-D (got shape "
                         f"{list(ids.shape)})")
    if ids.is_floating_point() or ids.is_complex() or \
            ids.dtype == torch.bool:
        raise TypeError(f"'{name}' must hold integer item ids (got "
                        f"{ids.dtype})")
    if ids.numel() == 0 and not allow_empty:
        raise ValueError(f"'{name}' is empty: a history needs at least one "
                         f"item id")
    return ids.long()


def check_history(history, num_items: int, name: str = 'history',
                  allow_empty: bool = False) -> Tensor:
    r"""Validates item ids (a sequence of ints or a 1-D integer tensor) and
    returns them sorted and without repeats. Raises :class:`ValueError` for
    an empty history (unless :obj:`allow_empty`) and ids out of
    :obj:`0..num_items-1` (listing them), :class:`TypeError` for ids that
    are not integers."""
    ids = _as_ids(history, name, allow_empty)
    bad = ids[(ids < 0) | (ids >= num_items)]
    if bad.numel():
        shown = bad.unique()[:10].tolist()
        raise ValueError(f"'{name}' holds {bad.numel()} item id(s) outside "
                         f"the catalogue [0, {num_items - 1}]: {shown}"
                         f"{' ...' if bad.unique().numel() > 10 else ''}")
    return torch.unique(ids)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"'k' must be a positive integer (got {k!r})")
    return k


def _check_item_ids(item_ids, num_items: int) -> Optional[List[str]]:
    if item_ids is None:
        return None
    out = [str(v) for v in item_ids]
    if len(out) != num_items:
        raise ValueError(f"'item_ids' must hold one raw id per item "
                         f"({num_items}), got {len(out)}")
    if len(set(out)) != len(out):
        raise ValueError("'item_ids' holds repeated raw ids")
    return out


# --------------------------------------------------------------------------
# Recommenders
# --------------------------------------------------------------------------
class Recommender:
    r"""Base class: top-:math:`k` items for an anonymous history.
    Subclasses implement :meth:`score_history` and the artefact payload.

    Args:
        num_items (int): Catalogue size :math:`I`.
        item_ids (sequence, optional): The raw id of every item (stored as
            strings), for :meth:`lookup` and :meth:`raw`.
    """
    kind: str = ''

    def __init__(self, num_items: int, item_ids: Optional[Sequence] = None):
        self.num_items = int(num_items)
        self.item_ids = _check_item_ids(item_ids, self.num_items)
        self._index = None if self.item_ids is None else {
            raw: i for i, raw in enumerate(self.item_ids)}

    # -- scoring -----------------------------------------------------------
    def score_history(self, items: Tensor) -> Tensor:  # pragma: no cover
        r"""Scores :math:`[I]` of every item for the validated, sorted,
        repeat-free history :obj:`items`."""
        raise NotImplementedError

    @torch.no_grad()
    def recommend(self, history, k: int = 20,
                  exclude=None) -> Tuple[Tensor, Tensor]:
        r"""The top-:obj:`k` item ids and scores for :obj:`history`, best
        first, never an item of the history or of :obj:`exclude`.

        Args:
            history (sequence of int or torch.Tensor): Item ids (repeats
                count once).
            k (int, optional): Items to return. (default: :obj:`20`)
            exclude (sequence of int or torch.Tensor, optional): Further
                item ids never to return (*e.g.* unavailable ones).

        Returns:
            :obj:`(ids [k'], scores [k'])` with :math:`k' = \min(k, I -
            |\text{history} \cup \text{exclude}|)`: fewer than :obj:`k`
            (possibly none) when the exclusions leave fewer items.

        Raises :class:`NonFiniteScoresError` when a score is NaN or
        infinite.
        """
        k = _check_k(k)
        items = check_history(history, self.num_items)
        scores = check_finite_scores(self.score_history(items),
                                     f'{self.kind} scores of the history')
        scores = scores.clone()
        scores[items] = float('-inf')
        masked = items
        if exclude is not None:
            extra = check_history(exclude, self.num_items, 'exclude',
                                  allow_empty=True)
            scores[extra] = float('-inf')
            masked = torch.unique(torch.cat([items, extra]))
        k = min(k, self.num_items - masked.numel())
        if k <= 0:
            return torch.empty(0, dtype=torch.long), scores.new_empty(0)
        score, index = torch.topk(scores, k)
        return index, score

    # -- raw ids -----------------------------------------------------------
    def lookup(self, raw_ids: Sequence, unknown: str = 'error') -> Tensor:
        r"""Item indices of raw ids (compared as strings). With
        :obj:`unknown='error'` an id the catalogue does not know raises
        :class:`ValueError` listing them; with :obj:`'ignore'` it is
        dropped (the result may then be empty)."""
        if unknown not in ('error', 'ignore'):
            raise ValueError(f"'unknown' must be 'error' or 'ignore' (got "
                             f"{unknown!r})")
        if self._index is None:
            raise ValueError("this recommender has no raw item ids "
                             "('item_ids' was not given): pass item "
                             "indices")
        raw = [str(v) for v in raw_ids]
        missing = [r for r in raw if r not in self._index]
        if missing and unknown == 'error':
            raise ValueError(f"{len(missing)} unknown item id(s): "
                             f"{missing[:10]}"
                             f"{' ...' if len(missing) > 10 else ''}")
        return torch.tensor([self._index[r] for r in raw
                             if r in self._index], dtype=torch.long)

    def raw(self, index: Tensor) -> List:
        r"""Raw ids of item indices (the indices if there are none)."""
        if self.item_ids is None:
            return index.tolist()
        return [self.item_ids[i] for i in index.tolist()]

    # -- artefacts ---------------------------------------------------------
    def _payload(self) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
        raise NotImplementedError  # pragma: no cover

    @classmethod
    def _from_payload(cls, config: Dict[str, Any],
                      tensors: Dict[str, Tensor],
                      where: str) -> 'Recommender':
        raise NotImplementedError  # pragma: no cover

    def save(self, path: str) -> None:
        r"""Writes the artefact to :obj:`path` (atomically)."""
        config, tensors = self._payload()
        config = dict(config, num_items=self.num_items,
                      item_ids=self.item_ids)
        atomic_save({
            'format': ARTEFACT_FORMAT,
            'version': ARTEFACT_VERSION,
            'kind': self.kind,
            'config': json.dumps(config),
            'tensors': {name: t.detach().cpu().contiguous()
                        for name, t in tensors.items()},
        }, path)


def _compact_index(index: Tensor) -> Tensor:
    if index.numel() == 0 or int(index.max()) < 2**31 - 1:
        return index.to(torch.int32)
    return index


class LightGODERecommender(Recommender):
    r"""LightGODE tables served for anonymous histories by fold-in.

    Args:
        user_emb (torch.Tensor): Trained user table :math:`\mathbf{E}_0`
            rows :math:`[U, F]` (*e.g.* :obj:`model.user_embedding.weight`).
        item_emb (torch.Tensor): Trained item table :math:`[I, F]`.
        edge_index (torch.Tensor): The training interactions :obj:`[2, E]`.
        t (float, optional): ODE end time (one Euler step).
            (default: :obj:`3.0`)
        rule (str, optional): :math:`\mathbf{E}_0` rule of a folded-in
            history, see :data:`~pyg_lightgode.apps.serving.fold_in.E0_RULES`.
        item_ids (sequence, optional): Raw item ids.

    The fold-in state is :attr:`fold`
    (:class:`~.fold_in.LightGODEFoldIn`): new users, items
    and interactions added through :meth:`fold.add` are served at once and
    saved with the artefact.
    """
    kind = 'lightgode'

    def __init__(self, user_emb: Tensor, item_emb: Tensor,
                 edge_index: Tensor, t: float = 3.0,
                 rule: str = DEFAULT_E0_RULE,
                 item_ids: Optional[Sequence] = None):
        self.fold = LightGODEFoldIn(user_emb, item_emb, edge_index, t=t,
                                    rule=rule)
        super().__init__(self.fold.num_items, item_ids)

    @classmethod
    def from_model(cls, model, edge_index: Tensor, t: Optional[float] = None,
                   **kwargs) -> 'LightGODERecommender':
        r"""From a trained :class:`~pyg_lightgode.nn.models.LightGODE`
        (its :obj:`user_embedding` / :obj:`item_embedding` tables; :obj:`t`
        defaults to the model's :obj:`t` where it has one)."""
        if t is None:
            t = getattr(model, 't', None)
            if not isinstance(t, (int, float)) or isinstance(t, bool):
                raise ValueError("pass 't': the model has no scalar 't'")
        return cls(model.user_embedding.weight, model.item_embedding.weight,
                   edge_index, t=t, **kwargs)

    def score_history(self, items: Tensor) -> Tensor:
        row = self.fold.history_rows([items])[0]
        return self.fold.item_embedding @ row

    def _payload(self):
        fold = self.fold
        return ({'t': fold.t, 'rule': fold.rule},
                {'user_e0': fold.user_e0, 'item_e0': fold.item_e0,
                 'edge_index': _compact_index(fold.edge_index)})

    @classmethod
    def _from_payload(cls, config, tensors, where):
        _expect(config, 't', (int, float), where)
        _expect(config, 'rule', str, where)
        if config['rule'] not in E0_RULES:
            raise ArtefactError(f"{where}: unknown E0 rule "
                                f"{config['rule']!r}")
        user, item = (_tensor(tensors, name, where) for name in
                      ('user_e0', 'item_e0'))
        index = _index_tensor(tensors, 'edge_index', where)
        for name, table in (('user_e0', user), ('item_e0', item)):
            if table.dim() != 2 or not table.is_floating_point():
                raise ArtefactError(f"{where}: the tensor '{name}' must be "
                                    f"a 2-D floating-point table (got "
                                    f"{table.dtype} {list(table.shape)})")
        _check_item_count(config, item.size(0), where)
        try:
            out = cls(user, item, index, t=config['t'],
                      rule=config['rule'], item_ids=config.get('item_ids'))
        except (TypeError, ValueError) as e:
            raise ArtefactError(f"{where}: {e}") from e
        for name, table in (('user', out.fold.user_embedding),
                            ('item', out.fold.item_embedding)):
            if not bool(torch.isfinite(table).all()):
                raise ArtefactError(
                    f"{where}: the propagated {name} table holds NaN or "
                    f"infinite values (t = {config['t']!r}, largest stored "
                    f"|value| {float(torch.cat([user, item]).abs().max()):g})"
                    f": the tables or the ODE time are too large to score")
        return out


def _filter_classes() -> Dict[str, Type]:
    from pyg_lightgode.nn.models.graph_filters import (
        BSPM,
        GFCF,
        ChebyCF,
        ItemKNN,
        TurboCF,
        UserKNN,
    )
    from pyg_lightgode.nn.models.linear import EASE, RP3beta
    return {'gfcf': GFCF, 'bspm': BSPM, 'chebycf': ChebyCF,
            'turbocf': TurboCF, 'userknn': UserKNN, 'itemknn': ItemKNN,
            'ease': EASE, 'rp3beta': RP3beta}


#: Graph filters a :class:`FilterRecommender` builds by name.
FILTER_NAMES = ('gfcf', 'bspm', 'chebycf', 'turbocf', 'userknn',
                'itemknn', 'ease', 'rp3beta')


class FilterRecommender(Recommender):
    r"""A training-free graph filter served for anonymous histories: the
    history becomes a binary interaction row that the filter scores.

    The artefact stores the filter's name, its constructor arguments
    (plain values) and the interaction graph; :func:`load_recommender`
    refits the filter (a normalisation and, for GF-CF, BSPM and ChebyCF, a
    seeded SVD; Turbo-CF and RP3beta build their item--item matrix, EASE
    inverts its Gram matrix: minutes on Gowalla), which is what loading
    costs.

    Args:
        name (str): :obj:`'gfcf'`, :obj:`'bspm'`, :obj:`'chebycf'`,
            :obj:`'turbocf'`,
            :obj:`'userknn'`, :obj:`'itemknn'`, :obj:`'ease'` or
            :obj:`'rp3beta'`.
        num_users (int): Users of the fitted graph.
        num_items (int): Catalogue size.
        edge_index (torch.Tensor): The interactions to fit :obj:`[2, E]`.
        item_ids (sequence, optional): Raw item ids.
        **kwargs: Constructor arguments of the filter (JSON values only).
    """
    kind = 'filter'

    def __init__(self, name: str, num_users: int, num_items: int,
                 edge_index: Tensor, item_ids: Optional[Sequence] = None,
                 **kwargs):
        classes = _filter_classes()
        if name not in classes:
            raise ValueError(f"unknown filter {name!r}; valid names are: "
                             f"{', '.join(FILTER_NAMES)}")
        try:
            json.dumps(kwargs)
        except TypeError as e:
            raise TypeError(f"the filter's arguments must be plain JSON "
                            f"values to be saved ({e})") from None
        self.name, self.kwargs = name, dict(kwargs)
        self.num_users = int(num_users)
        self.model = classes[name](num_users, num_items, **kwargs)
        self.edge_index = edge_index.long()
        self.model.fit(self.edge_index)
        super().__init__(num_items, item_ids)

    def score_history(self, items: Tensor) -> Tensor:
        rows = torch.zeros(1, self.num_items)
        rows[0, items] = 1.0
        return self.model(rows)[0]

    def _payload(self):
        return ({'name': self.name, 'num_users': self.num_users,
                 'kwargs': self.kwargs},
                {'edge_index': _compact_index(self.edge_index)})

    @classmethod
    def _from_payload(cls, config, tensors, where):
        _expect(config, 'name', str, where)
        _expect(config, 'num_users', int, where)
        _expect(config, 'kwargs', dict, where)
        index = _index_tensor(tensors, 'edge_index', where)
        _check_item_count(config, None, where)
        for row, key in ((0, 'num_users'), (1, 'num_items')):
            _check_plausible_count(config[key], key, index[row], where)
        try:
            return cls(config['name'], config['num_users'],
                       config['num_items'], index,
                       item_ids=config.get('item_ids'), **config['kwargs'])
        except (TypeError, ValueError) as e:
            raise ArtefactError(f"{where}: {e}") from e


class ItemEmbeddingRecommender(Recommender):
    r"""Item embeddings (*e.g.* PinSage's) served for anonymous histories:
    the query is the mean of the history's item embeddings (PinSage's
    board embedding with uniform weights), scored by inner product.

    Args:
        item_emb (torch.Tensor): :math:`[I, D]`.
        item_ids (sequence, optional): Raw item ids.
    """
    kind = 'item-embedding'

    def __init__(self, item_emb: Tensor,
                 item_ids: Optional[Sequence] = None):
        if not isinstance(item_emb, Tensor) or item_emb.dim() != 2 or \
                not item_emb.is_floating_point() or item_emb.size(0) == 0:
            raise ValueError("'item_emb' must be a non-empty 2-D floating "
                             "point tensor [I, D]")
        if not bool(torch.isfinite(item_emb).all()):
            raise ValueError("'item_emb' contains NaN or infinite values")
        self.item_emb = item_emb.detach()
        super().__init__(item_emb.size(0), item_ids)

    @classmethod
    def from_pinsage(cls, model, split, item_ids: Optional[Sequence] = None,
                     **kwargs) -> 'ItemEmbeddingRecommender':
        r"""The item embeddings of a trained PinSage by
        :func:`~pyg_lightgode.apps.training.pinsage.pinsage_embeddings`
        (further keyword arguments go to it)."""
        from pyg_lightgode.apps.training.pinsage import pinsage_embeddings
        with torch.no_grad():
            _, item_emb = pinsage_embeddings(model, split, **kwargs)
        return cls(item_emb.cpu(), item_ids=item_ids)

    def score_history(self, items: Tensor) -> Tensor:
        return self.item_emb @ self.item_emb[items].mean(dim=0)

    def _payload(self):
        return {}, {'item_emb': self.item_emb}

    @classmethod
    def _from_payload(cls, config, tensors, where):
        item_emb = _tensor(tensors, 'item_emb', where)
        _check_item_count(config, item_emb.size(0) if item_emb.dim() else 0,
                          where)
        try:
            return cls(item_emb, item_ids=config.get('item_ids'))
        except (TypeError, ValueError) as e:
            raise ArtefactError(f"{where}: {e}") from e


RECOMMENDERS: Dict[str, Type[Recommender]] = {
    cls.kind: cls for cls in (LightGODERecommender, FilterRecommender,
                              ItemEmbeddingRecommender)}


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------
def _expect(config: Dict, key: str, types, where: str) -> None:
    value = config.get(key)
    if not isinstance(value, types) or isinstance(value, bool):
        raise ArtefactError(f"{where}: config entry '{key}' is missing or "
                            f"malformed (got {value!r:.80})")


def _tensor(tensors: Dict, name: str, where: str) -> Tensor:
    value = tensors.get(name)
    if not isinstance(value, Tensor):
        raise ArtefactError(f"{where} lacks the tensor '{name}'")
    return value


def _index_tensor(tensors: Dict, name: str, where: str) -> Tensor:
    r"""The interaction tensor :obj:`name` as :obj:`int64`; a float, bool
    or complex tensor (whose cast would silently truncate ids) or one not
    shaped :obj:`[2, E]` raises :class:`ArtefactError` naming it."""
    value = _tensor(tensors, name, where)
    if value.is_floating_point() or value.is_complex() or \
            value.dtype == torch.bool:
        raise ArtefactError(f"{where}: the tensor '{name}' must hold "
                            f"integer node ids (got {value.dtype}); it is "
                            f"not cast, which would truncate ids silently")
    if value.dim() != 2 or value.size(0) != 2:
        raise ArtefactError(f"{where}: the tensor '{name}' must have shape "
                            f"[2, E] (got {list(value.shape)})")
    return value.long()


#: Nodes a filter artefact may claim beyond those its stored interactions
#: name, besides one per stored interaction (see
#: :func:`_check_plausible_count`).
SPARE_NODES = 1024


def _check_plausible_count(claimed: int, key: str, ids: Tensor,
                           where: str) -> None:
    r"""A count from an artefact's config must be at least the largest
    stored id + 1 and at most that plus the number of stored interactions
    plus :data:`SPARE_NODES`: so the memory a load allocates stays in
    proportion to what the file holds, and a small file that claims
    :math:`10^9` users raises instead of allocating gigabytes."""
    used = int(ids.max()) + 1 if ids.numel() else 0
    limit = used + ids.numel() + SPARE_NODES
    if claimed < max(used, 1) or claimed > limit:
        raise ArtefactError(
            f"{where}: config entry '{key}' = {claimed} is implausible for "
            f"the {ids.numel()} stored interactions, whose ids need "
            f"{used}; at most {limit} are accepted (the file is damaged or "
            f"was not written by Recommender.save)")


def _check_item_count(config: Dict, num_items: Optional[int],
                      where: str) -> None:
    r""":obj:`num_items` of the config against the item table actually
    stored (:obj:`num_items`, if any) and the stored raw ids, before
    anything is built."""
    claimed = config['num_items']
    if num_items is not None and claimed != num_items:
        raise ArtefactError(f"{where}: config says {claimed} items, the "
                            f"stored table holds {num_items}")
    item_ids = config.get('item_ids')
    if item_ids is not None and (not isinstance(item_ids, list)
                                 or len(item_ids) != claimed):
        count = len(item_ids) if isinstance(item_ids, list) else \
            type(item_ids).__name__
        raise ArtefactError(f"{where}: config says {claimed} items but "
                            f"lists {count} raw item ids")


def load_recommender(path: str) -> Recommender:
    r"""Loads an artefact written by :meth:`Recommender.save` with
    :obj:`torch.load(path, weights_only=True)` and rebuilds its recommender
    (LightGODE: one propagation; filters: a refit). Raises
    :class:`ArtefactError` naming :obj:`path` for a missing, empty,
    damaged, foreign or malformed file."""
    where = f"artefact '{path}'"
    state = load_weights_only(path, 'artefact', ArtefactError)
    if not isinstance(state, dict) or state.get('format') != ARTEFACT_FORMAT:
        raise ArtefactError(f"{where} is not a {ARTEFACT_FORMAT} artefact")
    if state.get('version') != ARTEFACT_VERSION:
        raise ArtefactError(f"{where} has format version "
                            f"{state.get('version')!r}; this pyg_lightgode "
                            f"reads version {ARTEFACT_VERSION} only")
    kind = state.get('kind')
    if kind not in RECOMMENDERS:
        raise ArtefactError(f"{where} has unknown kind {kind!r}; known "
                            f"kinds are {sorted(RECOMMENDERS)}")
    try:
        config = json.loads(state.get('config'))
    except (TypeError, ValueError) as e:
        raise ArtefactError(f"{where}: the config is not valid JSON "
                            f"({e})") from e
    tensors = state.get('tensors')
    if not isinstance(config, dict) or not isinstance(tensors, dict):
        raise ArtefactError(f"{where}: 'config' must be a JSON object and "
                            f"'tensors' a dict")
    _expect(config, 'num_items', int, where)
    out = RECOMMENDERS[kind]._from_payload(config, tensors, where)
    if out.num_items != config['num_items']:
        raise ArtefactError(f"{where}: config says {config['num_items']} "
                            f"items, the tensors hold {out.num_items}")
    return out


def recommend_history(recommender, history, k: int = 20,
                      exclude=None) -> Tuple[Tensor, Tensor]:
    r"""Top-:obj:`k` item ids and scores for an anonymous :obj:`history`
    from a :class:`Recommender` or the path of its artefact (loaded on
    every call: load once with :func:`load_recommender` to serve many).
    See :meth:`Recommender.recommend`."""
    if isinstance(recommender, (str, os.PathLike)):
        recommender = load_recommender(os.fspath(recommender))
    if not isinstance(recommender, Recommender):
        raise TypeError(f"'recommender' must be a Recommender or the path "
                        f"of an artefact (got {type(recommender).__name__})")
    return recommender.recommend(history, k=k, exclude=exclude)
