r"""Answers anonymous histories from a serving artefact.

Loads an artefact written by ``Recommender.save`` (pyg_lightgode.apps.serving:
LightGODE tables, a graph filter or item embeddings), then reads one query
per line from standard input, item ids separated by spaces or commas, and
writes one JSON line per query to standard output:

    {"items": [12, 7, ...], "scores": [3.1, 2.9, ...]}

or, for a query it cannot answer (an empty line, ids out of range, unknown
raw ids, a token that is not an id):

    {"error": "..."}

Scores that are not finite (tables or an ODE time so large that the
arithmetic overflows) are answered with an error object holding
"non_finite": true, and the exit status is then 3; an artefact or --exclude
that cannot be used exits with status 2 before the first query.

Items of the history (and of --exclude) are never returned; fewer than --k
items come back when fewer remain. Example:

    printf '1 5 9\n3,4\n' | python examples/serve.py model.pt --k 5
"""
import json
import sys
import time

from pyg_lightgode.apps import cli

#: Exit status when the artefact or --exclude cannot be used (nothing was
#: answered), and when some query's scores were not finite (each such query
#: was answered with an error object).
EXIT_BAD_INPUT, EXIT_NON_FINITE = 2, 3


def parse_args(argv=None):
    parser = cli.make_parser(__doc__)
    parser.add_argument('artefact', help='artefact file (Recommender.save)')
    parser.add_argument('--k', type=int, default=20,
                        help='items per answer')
    parser.add_argument('--raw-ids', action='store_true',
                        help="read and write the catalogue's raw item ids "
                        "(stored in the artefact) instead of indices")
    parser.add_argument('--unknown', choices=('error', 'ignore'),
                        default='error',
                        help='with --raw-ids: answer an error for unknown '
                        'ids, or drop them')
    parser.add_argument('--exclude', default='',
                        help='item ids never to return, comma-separated '
                        '(checked against the catalogue before the first '
                        'query)')
    cli.add_threads_argument(parser)
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
            value = int(word)
        except ValueError:
            raise ValueError(f"{word!r} is not an integer item id") from None
        if not 0 <= value < recommender.num_items:  # 40 digits included
            raise ValueError(f"item id {word} is outside the catalogue "
                             f"[0, {recommender.num_items - 1}]")
        out.append(value)
    return out


def answer(recommender, line: str, args, exclude) -> dict:
    from pyg_lightgode.apps.serving import NonFiniteScoresError
    try:
        history = to_ids(recommender, tokens(line), args.raw_ids,
                         args.unknown)
        ids, scores = recommender.recommend(history, k=args.k,
                                            exclude=exclude)
    except NonFiniteScoresError as e:
        return {'error': str(e), 'non_finite': True}
    except (TypeError, ValueError) as e:
        return {'error': str(e)}
    items = recommender.raw(ids) if args.raw_ids else ids.tolist()
    return {'items': items, 'scores': [round(s, 6) for s in scores.tolist()]}


def dumps(reply: dict) -> str:
    r"""One JSON line; a non-finite number (which is not JSON) turns the
    reply into an error object instead."""
    try:
        return json.dumps(reply, allow_nan=False)
    except ValueError:
        return json.dumps({'error': 'the scores are not finite numbers',
                           'non_finite': True})


def main(argv=None) -> int:
    args = parse_args(argv)  # --help answers before torch loads.
    cli.set_threads(args.threads)
    from pyg_lightgode.apps.serving import (
        ArtefactError,
        check_history,
        load_recommender,
    )
    start = time.perf_counter()
    try:
        recommender = load_recommender(args.artefact)
    except (ArtefactError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        exclude = check_history(
            to_ids(recommender, tokens(args.exclude), args.raw_ids,
                   'error'), recommender.num_items, 'exclude',
            allow_empty=True)
    except (TypeError, ValueError) as e:
        print(f'error: --exclude: {e}', file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f'loaded {recommender.kind} artefact ({recommender.num_items} '
          f'items) in {time.perf_counter() - start:.2f} s',
          file=sys.stderr)
    status = 0
    for number, line in enumerate(sys.stdin):
        if number == 0:
            line = line.lstrip('\ufeff')  # A byte-order mark from an editor.
        reply = answer(recommender, line, args, exclude)
        text = dumps(reply)
        if reply.get('non_finite') or '"non_finite"' in text:
            status = EXIT_NON_FINITE
        print(text, flush=True)
    if status:
        print('error: some scores were not finite (see the error objects)',
              file=sys.stderr)
    return status


if __name__ == '__main__':
    sys.exit(main())
