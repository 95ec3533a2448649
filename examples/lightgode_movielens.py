r"""LightGODE on MovieLens-100K (ratings >= 4, per-user random 8:1:1
split): the pipeline of lightgode_gowalla.py with the settings tuned for
MovieLens-100K (LIGHTGODE_SETTINGS, BENCHMARKS.md, MovieLens-100K).

    python examples/lightgode_movielens.py --raw-dir ../shared/data/ml-100k

--raw-dir points at the already-downloaded ml-100k files (u.data, u.item,
u.user, ...); without it, files missing from <root>/movielens100k/raw are
downloaded. --val-ratio 0.2 gives a 7:2:1 split instead.
"""
import sys

from lightgode_gowalla import main

if __name__ == '__main__':
    main(__doc__, 'movielens100k', sys.argv[1:])
