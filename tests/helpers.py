import os

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


def tiny_gowalla(raw):
    r"""A Gowalla-format fixture in the folder :obj:`raw`: 24 users in 3
    communities of 8 items (4 training and 2 test items each)."""
    raw.mkdir(parents=True)
    train, test = [], []
    for u in range(24):
        items = [(u // 8) * 8 + (u + j) % 8 for j in range(6)]
        train.append(' '.join(map(str, [u] + items[:4])))
        test.append(' '.join(map(str, [u] + items[4:])))
    (raw / 'train.txt').write_text('\n'.join(train) + '\n')
    (raw / 'test.txt').write_text('\n'.join(test) + '\n')


#: Runs a script's --help in a fresh interpreter (``python -c HELP_PROBE
#: script``, from the repository root) and prints JSON: the exit code, the
#: help text, the seconds the script took and whether torch was imported.
HELP_PROBE = '''
import io, json, runpy, sys, time
from contextlib import redirect_stdout
script = sys.argv[1]
sys.argv = [script, '--help']
sys.path.insert(0, 'examples')
sys.path.insert(0, 'benchmarks')
out, start = io.StringIO(), time.perf_counter()
with redirect_stdout(out):
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as exit:
        code = exit.code
print(json.dumps({'code': code, 'help': out.getvalue(),
                  'seconds': time.perf_counter() - start,
                  'torch': 'torch' in sys.modules}))
'''


def write_files(folder, files):
    r"""Writes :obj:`files` (name -> text or bytes) into :obj:`folder`."""
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        mode = 'wb' if isinstance(text, bytes) else 'w'
        with open(os.path.join(folder, name), mode) as f:
            f.write(text)


def pairs(index):
    r"""The (user, item) pairs of an index, sorted."""
    return sorted(map(tuple, index.t().tolist()))


def gen(seed=0):
    r"""A seeded CPU generator."""
    return torch.Generator().manual_seed(seed)
