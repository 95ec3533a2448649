r"""PinSage on Gowalla (the LightGCN split, 10% of every user's training
check-ins held out for validation): ID embeddings only (Gowalla has no item
features), otherwise the pipeline of pinsage_movielens.py.

    python examples/pinsage_gowalla.py --raw-dir ../shared/data/gowalla

--raw-dir points at the already-downloaded train.txt and test.txt; without
it, files missing from <root>/gowalla/raw are downloaded. An epoch draws
--pairs-per-epoch item pairs (about a quarter of the training check-ins by
default); --num-workers 1 samples the next minibatches in a separate
process.
"""
import sys

from pinsage_movielens import main

GOWALLA = dict(dataset='gowalla', input='ids', epochs=30, batch_size=512,
               lr=1e-2, lr_decay=0.95, margin=0.05, neighbors=10, walks=10,
               pairs_per_epoch=200_000, val_ratio=0.1)

if __name__ == '__main__':
    main(GOWALLA, sys.argv[1:], __doc__)
