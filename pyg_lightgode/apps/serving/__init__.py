r"""Serving: fold-in of new users, items and interactions into trained
LightGODE tables, recommenders that answer anonymous histories from a saved
artefact, and embeddings on disk in chunks."""
from .fold_in import LightGODEFoldIn
from .recommenders import (
    ARTEFACT_FORMAT,
    ARTEFACT_VERSION,
    FILTER_NAMES,
    ArtefactError,
    FilterRecommender,
    ItemEmbeddingRecommender,
    LightGODERecommender,
    NonFiniteScoresError,
    Recommender,
    check_finite_scores,
    check_history,
    load_recommender,
    recommend_history,
)
from .store import (
    EmbeddingStore,
    EmbeddingWriter,
    chunked_recommend,
    save_embeddings,
)

__all__ = [
    'LightGODEFoldIn',
    'Recommender',
    'LightGODERecommender',
    'FilterRecommender',
    'ItemEmbeddingRecommender',
    'load_recommender',
    'recommend_history',
    'check_history',
    'ArtefactError',
    'NonFiniteScoresError',
    'check_finite_scores',
    'ARTEFACT_FORMAT',
    'ARTEFACT_VERSION',
    'FILTER_NAMES',
    'EmbeddingStore',
    'EmbeddingWriter',
    'save_embeddings',
    'chunked_recommend',
]
