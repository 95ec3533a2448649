r"""LightGODE on MovieLens-100K (ratings >= 4, per-user random 8:1:1 split):
the same pipeline as ``lightgode_gowalla.py``.

    python examples/lightgode_movielens.py --raw-dir ../shared/data/ml-100k
"""
import sys

from lightgode_gowalla import main

from pyg_lightgode.training import LIGHTGODE_SETTINGS

# gamma 0.4, lazy SparseAdam, lr 1e-2: best validation NDCG@20 of a gamma x
# lr grid (LIGHTGODE_SETTINGS, BENCHMARKS.md section 8).
MOVIELENS = dict(dataset='movielens100k', root='data', epochs=300,
                 val_ratio=None, **LIGHTGODE_SETTINGS['movielens100k'])


if __name__ == '__main__':
    main(MOVIELENS, sys.argv[1:])
