r"""Times all-item ranking evaluation at Gowalla size (29,858 users, 40,981
items, 64-dim random embeddings, ~810k excluded and ~217k test pairs):
:class:`pyg_lightgode.metrics.RankingEvaluator` against the evaluation loop
of PyG's ``examples/lightgcn.py`` (per batch: scan all training pairs for the
batch's users, dense boolean ground-truth matrix, top-k), once with the
example's batch of 8192 users and once with all users in one dense matrix.

Every method runs in its own process so that the peak resident memory
(``ru_maxrss``) can be attributed; "extra peak" is the growth over the
resident memory right before the evaluation.

Usage: ``python benchmarks/bench_evaluation.py [--threads 2] [--k 20]``
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

NUM_USERS, NUM_ITEMS, DIM = 29_858, 40_981, 64
NUM_TRAIN, NUM_TEST = 810_128, 217_242


def rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    user_emb = torch.randn(NUM_USERS, DIM, generator=gen) / DIM**0.5
    item_emb = torch.randn(NUM_ITEMS, DIM, generator=gen) / DIM**0.5
    pairs = torch.stack([
        torch.randint(NUM_USERS, (NUM_TRAIN + NUM_TEST, ), generator=gen),
        torch.randint(NUM_ITEMS, (NUM_TRAIN + NUM_TEST, ), generator=gen),
    ])
    return user_emb, item_emb, pairs[:, :NUM_TRAIN], pairs[:, NUM_TRAIN:]


def pyg_example(user_emb, item_emb, train_index, test_index, k, batch_size):
    r"""The ``test()`` loop of PyG's ``examples/lightgcn.py`` (item offsets
    removed, as the indices here are bipartite)."""
    from torch_geometric.utils import degree
    num_users = user_emb.size(0)
    precision = recall = total_examples = 0
    for start in range(0, num_users, batch_size):
        end = start + batch_size
        logits = user_emb[start:end] @ item_emb.t()
        mask = (train_index[0] >= start) & (train_index[0] < end)
        logits[train_index[0, mask] - start,
               train_index[1, mask]] = float('-inf')
        ground_truth = torch.zeros_like(logits, dtype=torch.bool)
        mask = (test_index[0] >= start) & (test_index[0] < end)
        ground_truth[test_index[0, mask] - start, test_index[1, mask]] = True
        node_count = degree(test_index[0, mask] - start,
                            num_nodes=logits.size(0))
        topk_index = logits.topk(k, dim=-1).indices
        isin_mat = ground_truth.gather(1, topk_index)
        precision += float((isin_mat.sum(dim=-1) / k).sum())
        recall += float((isin_mat.sum(dim=-1) / node_count.clamp(1e-6)).sum())
        total_examples += int((node_count > 0).sum())
    return {f'recall@{k}': recall / total_examples,
            f'precision@{k}': precision / total_examples}


def run_one(method: str, k: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    from pyg_lightgode.metrics import RankingEvaluator
    user_emb, item_emb, train_index, test_index = synthetic()
    before = rss_mib()
    out = {'method': method}
    t0 = time.perf_counter()
    if method.startswith('pyg_lightgode'):
        chunk = 8192 if method.endswith('chunked') else None
        evaluator = RankingEvaluator(test_index, exclude=train_index,
                                     num_users=NUM_USERS,
                                     num_items=NUM_ITEMS, ks=(k, ),
                                     item_chunk_size=chunk)
        out['setup_s'] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = evaluator(user_emb, item_emb)
        out['eval_s'] = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluator(user_emb, item_emb)  # Reused, as every epoch.
        out['second_eval_s'] = time.perf_counter() - t0
    else:
        batch_size = NUM_USERS if method == 'pyg_example_dense' else 8192
        result = pyg_example(user_emb, item_emb, train_index, test_index, k,
                             batch_size)
        out['eval_s'] = time.perf_counter() - t0
    out['extra_peak_mib'] = max_rss_mib() - before
    out['recall'] = result[f'recall@{k}']
    out['precision'] = result[f'precision@{k}']
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--k', type=int, default=20)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--method', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--skip-dense', action='store_true',
                        help='skip the all-users dense matrix (~6 GB)')
    args = parser.parse_args()
    if args.method is not None:
        print(json.dumps(run_one(args.method, args.k, args.threads)))
        return

    methods = ['pyg_lightgode', 'pyg_lightgode_chunked', 'pyg_example_8192']
    if not args.skip_dense:
        methods.append('pyg_example_dense')
    print(f'load average {os.getloadavg()[0]:.1f}; '
          f'{NUM_USERS} users x {NUM_ITEMS} items, d={DIM}, '
          f'{NUM_TRAIN} excluded + {NUM_TEST} test pairs (random), '
          f'k={args.k}, {args.threads} threads')
    header = (f'{"method":<24}{"setup s":>9}{"eval s":>9}{"again s":>9}'
              f'{"extra peak MiB":>16}{"recall":>9}{"precision":>11}')
    print(header)
    print('-' * len(header))
    for method in methods:
        proc = subprocess.run([
            sys.executable, __file__, '--method', method, '--k',
            str(args.k), '--threads', str(args.threads)
        ], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f'{method:<24} failed: {proc.stderr.strip()[-200:]}')
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f'{method:<24}{r.get("setup_s", 0):>9.2f}{r["eval_s"]:>9.2f}'
              f'{r.get("second_eval_s", float("nan")):>9.2f}'
              f'{r["extra_peak_mib"]:>16.0f}{r["recall"]:>9.5f}'
              f'{r["precision"]:>11.5f}')


if __name__ == '__main__':
    main()
