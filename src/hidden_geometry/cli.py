"""The `hidden-geometry` command: intrinsic dimension, neighbour graph and overlaps of an embedding file.

    hidden-geometry id FILE [--key NAME] [--estimator twonn|gride] [--fraction 0.9] [--max-rank 64]
    hidden-geometry knn FILE -k K -o OUT.npz
    hidden-geometry overlap FILE_A FILE_B -k K
    hidden-geometry overlap FILE --labels LABELS.txt -k K [--exclude GROUPS.txt] [--class-balanced]

Results are one JSON object on stdout. Bad input (unreadable or empty file, not 2-D, NaN or inf rows, fewer
points than k + 1, a label count that is not N) prints one line `hidden-geometry: error: ...` on stderr and exits
with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zipfile
from typing import Any, Sequence

import numpy as np

from . import __version__
from .embeddings import load_embeddings, load_row_values
from .errors import InputError

EXIT_INPUT = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hidden-geometry", description="Geometry of hidden representations (embedding files: .npy or .npz)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--key", help="array name inside an .npz file")
        p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")

    p_id = sub.add_parser("id", help="intrinsic dimension (TwoNN or Gride)")
    p_id.add_argument("file")
    common(p_id)
    p_id.add_argument("--estimator", choices=("twonn", "gride"), default="twonn")
    p_id.add_argument("--fraction", type=_fraction, default=0.9, help="TwoNN: fraction of mu kept (default 0.9)")
    p_id.add_argument("--max-rank", type=_positive_int, default=64, help="Gride: largest neighbour rank (default 64)")

    p_knn = sub.add_parser("knn", help="exact k-nearest-neighbour graph to an .npz file")
    p_knn.add_argument("file")
    common(p_knn)
    p_knn.add_argument("-k", type=_positive_int, required=True)
    p_knn.add_argument("-o", "--output", required=True, help="output .npz (indices, distances, rows)")

    p_ov = sub.add_parser("overlap", help="neighbourhood overlap of two files, or label overlap of one")
    p_ov.add_argument("files", nargs="+", metavar="FILE")
    common(p_ov)
    p_ov.add_argument("-k", type=_positive_int, required=True)
    p_ov.add_argument("--labels", help="text file, one label per row")
    p_ov.add_argument("--exclude", help="text file, one group per row: neighbours of the same group are skipped")
    p_ov.add_argument("--class-balanced", action="store_true", help="average the per-class overlaps")
    return parser


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def run_id(args: argparse.Namespace) -> dict[str, Any]:
    from .geometry import gride, knn_graph, twonn

    X = load_embeddings(args.file, args.key)
    if args.estimator == "twonn":
        graph = knn_graph(X, 2, metric=args.metric)
        result = twonn(graph, args.fraction).to_dict()
    else:
        from .geometry import find_duplicates

        # Duplicates are removed before the graph, so at most (distinct points - 1) neighbours exist.
        k = min(args.max_rank, int(find_duplicates(X).sum()) - 1)
        if k < 2:
            raise InputError(f"{args.file}: Gride needs at least 3 distinct points")
        graph = knn_graph(X, k, metric=args.metric)
        result = gride(graph, args.max_rank).to_dict()
    result.update(estimator=args.estimator, file=str(args.file), metric=args.metric)
    return result


def run_knn(args: argparse.Namespace) -> dict[str, Any]:
    from .atomic import atomic_path
    from .geometry import knn_graph

    X = load_embeddings(args.file, args.key)
    graph = knn_graph(X, args.k, metric=args.metric)
    with atomic_path(args.output, suffix=".npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                indices=graph.indices,
                distances=graph.distances,
                rows=graph.rows,
                n_duplicates=np.int64(graph.n_duplicates),
                k=np.int64(graph.k),
                metric=np.str_(graph.metric),
                n_input=np.int64(graph.n_input),
            )
    return {"output": str(args.output), **graph.to_dict()}


def run_overlap(args: argparse.Namespace) -> dict[str, Any]:
    from .geometry import knn_graph, label_overlap_details, neighbourhood_overlap

    if args.labels is None:
        if len(args.files) != 2:
            raise InputError("overlap needs two files (FILE_A FILE_B), or one file with --labels")
        if args.exclude or args.class_balanced:
            raise InputError("--exclude and --class-balanced apply to label overlap (--labels) only")
        A = load_embeddings(args.files[0], args.key)
        B = load_embeddings(args.files[1], args.key)
        if A.shape[0] != B.shape[0]:
            raise InputError(f"{args.files[1]}: {B.shape[0]} rows, but {args.files[0]} has {A.shape[0]}: same inputs needed")
        # The same points in both: a row duplicated in either representation is dropped from both.
        from .geometry import shared_keep_mask

        keep = shared_keep_mask([A, B])
        graph_a = knn_graph(A, args.k, metric=args.metric, keep=keep)
        graph_b = knn_graph(B, args.k, metric=args.metric, keep=keep)
        return {
            "overlap": neighbourhood_overlap(graph_a, graph_b, args.k),
            "k": args.k,
            "n": graph_a.n_points,
            "duplicates": int(keep.size - keep.sum()),
            "files": [str(f) for f in args.files],
        }
    if len(args.files) != 1:
        raise InputError("label overlap takes one embedding file with --labels")
    X = load_embeddings(args.files[0], args.key)
    labels = load_row_values(args.labels, X.shape[0], "labels")
    groups = None if args.exclude is None else load_row_values(args.exclude, X.shape[0], "groups", allow_empty=True)
    # Excluded neighbours are skipped, so look further than k: up to the largest group's size more.
    named = [] if groups is None else [g for g in groups if g != ""]  # "" excludes nothing
    extra = max(np.unique(np.asarray(named), return_counts=True)[1]) if named else 0
    from .geometry import find_duplicates

    n_distinct = int(find_duplicates(X).sum())
    graph_k = min(args.k + int(extra), n_distinct - 1) if n_distinct - 1 >= args.k else args.k
    graph = knn_graph(X, graph_k, metric=args.metric)
    details = label_overlap_details(graph, labels, args.k, groups, args.class_balanced)
    out = details.to_dict()
    out.update(n=graph.n_points, duplicates=graph.n_duplicates, file=str(args.files[0]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"id": run_id, "knn": run_knn, "overlap": run_overlap}
    try:
        result = handlers[args.command](args)
    except InputError as exc:
        print(f"hidden-geometry: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, MemoryError) as exc:
        # Loading problems that reached past the checks still get one line, never a traceback.
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"hidden-geometry: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return EXIT_INPUT
    json.dump(_json_ready(result), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
