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


def run_ranks(worker, out_dir, world_size=2):
    r"""Runs :obj:`worker(rank, init_file, out_dir)` in :obj:`world_size`
    processes (a gloo group over the file :obj:`out_dir/pg_init`) and
    returns what every rank saved to :obj:`out_dir/rank{r}.pt`."""
    import torch.multiprocessing as mp

    # 'fork' starts in ~1 s; 'spawn' re-imports torch_geometric per process.
    method = 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
    mp.start_processes(worker, args=(str(out_dir / 'pg_init'), str(out_dir)),
                       nprocs=world_size, join=True, start_method=method)
    return [torch.load(out_dir / f'rank{r}.pt', weights_only=False)
            for r in range(world_size)]
