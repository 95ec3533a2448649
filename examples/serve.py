r"""Answers anonymous histories from a serving artefact.

Loads an artefact written by ``Recommender.save`` (pyg_lightgode.apps.serving:
LightGODE tables, a graph filter or item embeddings), then reads one query
per line from standard input, item ids separated by spaces or commas, and
writes one JSON line per query to standard output:

    {"items": [12, 7, ...], "scores": [3.1, 2.9, ...]}

or, for a query it cannot answer (an empty line, ids out of range, unknown
raw ids, a token that is not an id):

    {"error": "..."}

Items of the history (and of --exclude) are never returned; fewer than --k
items come back when fewer remain. Example:

    printf '1 5 9\n3,4\n' | python examples/serve.py model.pt --k 5
"""
import argparse
import json
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('artefact', help='artefact file (Recommender.save)')
    parser.add_argument('--k', type=int, default=20,
                        help='items per answer (default: 20)')
    parser.add_argument('--raw-ids', action='store_true',
                        help="read and write the catalogue's raw item ids "
                        "(stored in the artefact) instead of indices")
    parser.add_argument('--unknown', choices=('error', 'ignore'),
                        default='error',
                        help='with --raw-ids: answer an error for unknown '
                        'ids, or drop them (default: error)')
    parser.add_argument('--exclude', default='',
                        help='item ids never to return, comma-separated')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default: 1)')
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error('--k must be a positive integer')
    return args


def tokens(line: str):
    return line.replace(',', ' ').split()


def to_ids(recommender, words, raw: bool, unknown: str):
    if raw:
        return recommender.lookup(words, unknown=unknown).tolist()
    out = []
    for word in words:
        try:
            out.append(int(word))
        except ValueError:
            raise ValueError(f"{word!r} is not an integer item id") from None
    return out


def answer(recommender, line: str, args, exclude) -> dict:
    try:
        history = to_ids(recommender, tokens(line), args.raw_ids,
                         args.unknown)
        ids, scores = recommender.recommend(history, k=args.k,
                                            exclude=exclude)
    except (TypeError, ValueError) as e:
        return {'error': str(e)}
    items = recommender.raw(ids) if args.raw_ids else ids.tolist()
    return {'items': items, 'scores': [round(s, 6) for s in scores.tolist()]}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from pyg_lightgode.apps.serving.recommenders import (
        ArtefactError,
        load_recommender,
    )
    torch.set_num_threads(max(args.threads, 1))
    start = time.perf_counter()
    try:
        recommender = load_recommender(args.artefact)
        exclude = to_ids(recommender, tokens(args.exclude), args.raw_ids,
                         'error')
    except (ArtefactError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'loaded {recommender.kind} artefact ({recommender.num_items} '
          f'items) in {time.perf_counter() - start:.2f} s',
          file=sys.stderr)
    for line in sys.stdin:
        print(json.dumps(answer(recommender, line, args, exclude)),
              flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
