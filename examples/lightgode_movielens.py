r"""LightGODE on MovieLens-100K (ratings >= 4, per-user random 8:1:1 split):
the same pipeline as ``lightgode_gowalla.py``.

    python examples/lightgode_movielens.py --raw-dir ../shared/data/ml-100k
"""
import sys

from lightgode_gowalla import main

MOVIELENS = dict(dataset='movielens100k', root='data', t=1.0,
                 gamma=2.0, batch_size=256, lr=1e-3, epochs=300,
                 val_ratio=None)

if __name__ == '__main__':
    main(MOVIELENS, sys.argv[1:])
