import torch

from pyg_lightgode.data import BipartiteSplit


def clustered_split(num_clusters=4, users_per=12, items_per=10, seed=0):
    r"""Users interact only with items of their own cluster (5 training and
    2 test items each; 48 users, 40 items, 240 training pairs by default):
    test items are predictable, so a working model must beat random."""
    gen = torch.Generator().manual_seed(seed)
    U, I = num_clusters * users_per, num_clusters * items_per
    train, test = [], []
    for u in range(U):
        c = u // users_per
        items = c * items_per + torch.randperm(items_per, generator=gen)[:7]
        train += [(u, int(i)) for i in items[:5]]
        test += [(u, int(i)) for i in items[5:]]
    return BipartiteSplit(U, I, torch.tensor(train).t(),
                          torch.tensor(test).t())
