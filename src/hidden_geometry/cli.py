"""The `hidden-geometry` command: intrinsic dimension, neighbour graph and overlaps of an embedding file, and the
workflow's per-layer table of an extraction folder.

    hidden-geometry id FILE [--key NAME] [--estimator twonn|gride] [--fraction 0.9] [--max-rank 64]
    hidden-geometry knn FILE -k K -o OUT.npz
    hidden-geometry overlap FILE_A FILE_B -k K
    hidden-geometry overlap FILE --labels LABELS.txt -k K [--exclude GROUPS.txt] [--class-balanced]
    hidden-geometry layers EMBEDDINGS_DIR [--items ITEMS_TSV] [--label-column C] [--graph-k 64] [-k 10] ...
                           -o layers.tsv [--choice layer_choice.json]

Results are one JSON object on stdout (`layers` writes its table and prints a summary). Bad input (unreadable or
empty file, not 2-D, NaN or inf rows, fewer points than k + 1, a label count that is not N, items that are not
the folder's) prints one line `hidden-geometry: error: ...` on stderr and exits with status 2, without a
traceback. `hidden-geometry COMMAND -h` shows every option with an example.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import zipfile
from typing import Any, Sequence

import numpy as np

from . import __version__
from .embeddings import load_embeddings, load_row_values
from .errors import InputError
from .io import json_ready

EXIT_INPUT = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null", "all") else _positive_int(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _subparser(sub: Any, name: str, summary: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=summary, epilog=f"examples:\n{examples}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hidden-geometry", description="Geometry of hidden representations (embedding files: .npy or .npz).",
        epilog="examples:\n  hidden-geometry id emb.npy\n  hidden-geometry layers results/demo_text/minilm/embeddings "
               "--items results/demo_text/items.tsv -o layers.tsv\n"
               "hidden-geometry COMMAND -h lists every option of a command with an example.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit (example: hidden-geometry --version)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_id_parser(sub)
    add_knn_parser(sub)
    add_overlap_parser(sub)
    add_layers_parser(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", help="array name inside an .npz file (example: --key hidden)")
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean",
                   help="distance between rows (default euclidean; example: --metric cosine)")


def add_id_parser(sub: Any) -> None:
    p = _subparser(sub, "id", "intrinsic dimension (TwoNN or Gride)",
                   "  hidden-geometry id emb.npy\n  hidden-geometry id emb.npz --key hidden --estimator gride "
                   "--max-rank 32")
    p.add_argument("file", help="embedding file, rows = points (example: emb.npy)")
    _common(p)
    p.add_argument("--estimator", choices=("twonn", "gride"), default="twonn",
                   help="TwoNN (two nearest neighbours) or Gride (ID over neighbour ranks 2^j); default twonn "
                        "(example: --estimator gride)")
    p.add_argument("--fraction", type=_fraction, default=0.9,
                   help="TwoNN: fraction of the sorted ratios mu kept (default 0.9; example: --fraction 0.8)")
    p.add_argument("--max-rank", type=_positive_int, default=64,
                   help="Gride: largest neighbour rank (default 64; example: --max-rank 32)")


def add_knn_parser(sub: Any) -> None:
    p = _subparser(sub, "knn", "exact k-nearest-neighbour graph to an .npz file",
                   "  hidden-geometry knn emb.npy -k 10 -o graph.npz")
    p.add_argument("file", help="embedding file, rows = points (example: emb.npy)")
    _common(p)
    p.add_argument("-k", type=_positive_int, required=True, help="neighbours per point (example: -k 10)")
    p.add_argument("-o", "--output", required=True,
                   help="output .npz (indices, distances, rows; example: -o graph.npz)")


def add_overlap_parser(sub: Any) -> None:
    p = _subparser(sub, "overlap", "neighbourhood overlap of two files, or label overlap of one",
                   "  hidden-geometry overlap layer_003.npy layer_004.npy -k 10\n"
                   "  hidden-geometry overlap emb.npy --labels labels.txt --exclude families.txt -k 10")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="two embedding files with the same rows, or one with --labels (example: a.npy b.npy)")
    _common(p)
    p.add_argument("-k", type=_positive_int, required=True, help="neighbours compared per point (example: -k 10)")
    p.add_argument("--labels", help="text file, one label per row (example: --labels labels.txt)")
    p.add_argument("--exclude", help="text file, one group per row: neighbours of the same group are skipped "
                                     "(example: --exclude families.txt)")
    p.add_argument("--class-balanced", action="store_true",
                   help="average the per-class overlaps (example: --class-balanced)")


def add_layers_parser(sub: Any) -> None:
    """`layers`: the workflow's layers.tsv from an extraction folder; options named as the config's keys."""
    from .analysis import defaults

    p = _subparser(
        sub, "layers", "every layer's geometry and linear probe, and the layer choice: the workflow's layers.tsv",
        "  hidden-geometry layers results/demo_text/minilm/embeddings --items results/demo_text/items.tsv "
        "-o layers.tsv\n  hidden-geometry layers emb_dir --items items.tsv --label-column superfamily --graph-k 32 "
        "-k 10 --decimation-repeats 5 --folds 5 -o layers.tsv --choice layer_choice.json\n"
        "The options are the config's geometry: and probe: keys (and seed) under the same names, with the same "
        "defaults (config/README.md).")
    p.add_argument("embeddings", metavar="EMBEDDINGS_DIR",
                   help="a complete extraction folder: layer_000.npy ..., ids.txt, manifest.json "
                        "(example: results/demo_text/minilm/embeddings)")
    p.add_argument("--items", metavar="ITEMS_TSV",
                   help="the items table of the folder's rows: labels, groups, and the inputs that tell identical "
                        "items (example: --items results/demo_text/items.tsv). Without it: no label measures, and "
                        "identical items are rows identical in every layer")
    p.add_argument("--images", metavar="IMAGES_NPY",
                   help="image datasets: the pixels that tell identical inputs (example: --images "
                        "results/demo_digits/images.npy)")
    p.add_argument("--label-column", default="label", metavar="C",
                   help="items column used as the label (default label; example: --label-column superfamily)")
    p.add_argument("--graph-k", type=_positive_int, default=defaults.GRAPH_K,
                   help=f"neighbours per point in each layer's graph; Gride ranks go up to it (default "
                        f"{defaults.GRAPH_K}; example: --graph-k 32)")
    p.add_argument("-k", type=_positive_int, default=defaults.K,
                   help=f"k of the neighbourhood overlaps and the kNN probe (default {defaults.K}; example: -k 10)")
    p.add_argument("--metric", choices=("euclidean", "cosine"), default=defaults.METRIC,
                   help=f"distance between rows (default {defaults.METRIC}; example: --metric cosine)")
    p.add_argument("--twonn-fraction", type=_fraction, default=defaults.TWONN_FRACTION,
                   help=f"fraction of the sorted ratios in the TwoNN fit (default {defaults.TWONN_FRACTION}; "
                        "example: --twonn-fraction 0.8)")
    p.add_argument("--decimation-repeats", type=_positive_int, default=defaults.DECIMATION_REPEATS,
                   help=f"random half-subsets for the TwoNN error bar (default {defaults.DECIMATION_REPEATS}; "
                        "example: --decimation-repeats 5)")
    p.add_argument("--deduplicate-inputs", action=argparse.BooleanOptionalAction, default=True,
                   help="keep one item per identical input, the same in every layer (default on; example: "
                        "--no-deduplicate-inputs)")
    p.add_argument("--exclude-groups", action=argparse.BooleanOptionalAction, default=True,
                   help="label overlap skips neighbours of the same `group` column (default on; example: "
                        "--no-exclude-groups)")
    p.add_argument("--folds", type=_positive_int, default=defaults.FOLDS,
                   help=f"stratified folds of the linear probe (default {defaults.FOLDS}; example: --folds 5)")
    p.add_argument("--max-items", type=_optional_int, default=defaults.MAX_ITEMS,
                   help="seeded subsample for the linear probe (default none: all kept items; example: "
                        "--max-items 5000)")
    p.add_argument("--seed", type=int, default=defaults.SEED,
                   help=f"seed of every random choice (default {defaults.SEED}; example: --seed 1)")
    p.add_argument("-o", "--output", required=True, metavar="LAYERS_TSV",
                   help="the table, one row per layer (example: -o layers.tsv)")
    p.add_argument("--choice", metavar="CHOICE_JSON",
                   help="also write the layer choice with its evidence (example: --choice layer_choice.json)")


def run_id(args: argparse.Namespace) -> dict[str, Any]:
    from .analysis import distinct_k
    from .geometry import gride, knn_graph, twonn

    X = load_embeddings(args.file, args.key)
    if args.estimator == "twonn":
        graph = knn_graph(X, 2, metric=args.metric)
        result = twonn(graph, args.fraction).to_dict()
    else:
        if args.max_rank < 2:
            raise InputError(f"--max-rank {args.max_rank}: Gride needs ranks up to at least 2 (it compares the "
                             f"distances to neighbours n and 2n)")
        k, _ = distinct_k(X, args.max_rank)
        if k < 2:
            raise InputError(f"{args.file}: Gride needs at least 3 distinct points")
        graph = knn_graph(X, k, metric=args.metric)
        result = gride(graph, args.max_rank).to_dict()
    result.update(estimator=args.estimator, file=str(args.file), metric=args.metric)
    return result


def _refuse_overwriting_input(output: str, inputs: Sequence[str]) -> None:
    """InputError when the output path is one of the inputs (same file, through any path or link)."""
    import os

    for source in inputs:
        same = os.path.abspath(output) == os.path.abspath(source) or (
            os.path.exists(output) and os.path.exists(source) and os.path.samefile(output, source))
        if same:
            raise InputError(f"{output}: the output is the input file {source}: choose another -o")


def run_knn(args: argparse.Namespace) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    _refuse_overwriting_input(args.output, [args.file])
    # The rows are read while torch and the graph's modules are imported (about 1.2 s, mostly holding the GIL; the
    # file read releases it): the same array, and the same errors (`result` raises the reader's own exception).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-input") as reader:
        rows = reader.submit(load_embeddings, args.file, args.key)
        from .geometry import knn_graph
        from .io import write_graph_file

        X = rows.result()
    graph = knn_graph(X, args.k, metric=args.metric)
    write_graph_file(args.output, graph)
    return {"output": str(args.output), **graph.to_dict()}


def run_overlap(args: argparse.Namespace) -> dict[str, Any]:
    from .analysis import distinct_k
    from .geometry import knn_graph, label_overlap_details, neighbourhood_overlap, shared_keep_mask

    if args.labels is None:
        if len(args.files) != 2:
            raise InputError("overlap needs two files (FILE_A FILE_B), or one file with --labels")
        if args.exclude or args.class_balanced:
            raise InputError("--exclude and --class-balanced apply to label overlap (--labels) only")
        A = load_embeddings(args.files[0], args.key)
        B = load_embeddings(args.files[1], args.key)
        if A.shape[0] != B.shape[0]:
            raise InputError(f"{args.files[1]}: {B.shape[0]} rows, but {args.files[0]} has {A.shape[0]}: "
                             "same inputs needed")
        # The same points in both: a row duplicated in either representation is dropped from both.
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
    reachable, n_distinct = distinct_k(X, args.k + int(extra))
    graph_k = reachable if n_distinct - 1 >= args.k else args.k  # too few points: knn_graph says so in one line
    graph = knn_graph(X, graph_k, metric=args.metric)
    details = label_overlap_details(graph, labels, args.k, groups, args.class_balanced)
    out = details.to_dict()
    out.update(n=graph.n_points, duplicates=graph.n_duplicates, file=str(args.files[0]))
    return out


def layers_inputs(args: argparse.Namespace, layers: Sequence[np.ndarray], ids: list[str]) -> dict[str, Any]:
    """keep, labels, groups and the label reason of `layers`, from the items table when given."""
    from . import analysis
    from .data.items import read_items

    if args.items is None:
        if args.images is not None:
            raise InputError("--images needs --items (the table of the images' rows)")
        keep = analysis.identical_rows_mask(layers) if args.deduplicate_inputs else None
        return {"keep": keep, "labels": None, "groups": None, "label_reason": "no items table given (--items)"}
    items = read_items(args.items)
    if items.ids != ids:
        first = next((i for i, (a, b) in enumerate(zip(items.ids, ids)) if a != b), min(len(ids), len(items.ids)))
        raise InputError(f"{args.items}: not the items of {args.embeddings} ({len(items.ids)} items for {len(ids)} "
                         f"rows; first difference at row {first + 1})")
    images = None if args.images is None else np.load(args.images, mmap_mode="r")
    keep = analysis.identical_input_mask(items, images, deduplicate=args.deduplicate_inputs)
    labels, reason = analysis.item_labels(items, args.label_column)
    return {"keep": keep, "labels": labels, "groups": analysis.item_groups(items, args.exclude_groups),
            "label_reason": reason}


def run_layers(args: argparse.Namespace) -> dict[str, Any]:
    from . import analysis
    from .embeddings import load_token_sample
    from .io import write_json, write_table
    from .models import load_layer, read_ids, read_manifest

    manifest = read_manifest(args.embeddings)
    if manifest is None:
        raise InputError(f"{args.embeddings}: not a complete extraction folder (no manifest.json)")
    layers = [load_layer(args.embeddings, layer) for layer in range(int(manifest["n_layers"]))]
    ids = read_ids(args.embeddings)
    inputs = layers_inputs(args, layers, ids)
    result = analysis.analyse_layers(
        layers, inputs["keep"], inputs["labels"], inputs["groups"], graph_k=args.graph_k, k=args.k,
        metric=args.metric, twonn_fraction=args.twonn_fraction, decimation_repeats=args.decimation_repeats,
        folds=args.folds, max_items=args.max_items, seed=args.seed, ids=ids, label_column=args.label_column,
        label_reason=inputs["label_reason"],
        tokens=[load_token_sample(args.embeddings, layer) for layer in range(len(layers))])
    write_table(args.output, result.rows, analysis.LAYER_COLUMNS)
    if args.choice is not None:
        write_json(args.choice, result.choice)
    summary = {key: result.choice[key] for key in ("n_layers", "id_measure", "chosen_layer", "probe_best_layer")}
    n_kept = len(ids) if inputs["keep"] is None else int(np.sum(inputs["keep"]))
    return {"output": str(args.output), "n_items": len(ids), "n_kept": n_kept,
            "label_reason": inputs["label_reason"], **summary}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"id": run_id, "knn": run_knn, "overlap": run_overlap, "layers": run_layers}
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
    json.dump(json_ready(result), sys.stdout)
    sys.stdout.write("\n")
    return 0


def console_main() -> None:
    """The `hidden-geometry` command: `main`, then a quick exit with its status.

    Once `main` has returned, every output file is in place (written atomically) and no work of ours is pending (the
    thread pools are closed), so the process ends with `os._exit` after flushing the streams and logging: the
    interpreter's own teardown with torch loaded took 0.36 to 0.48 s here, against 0.01 s, in every process that the
    workflow or a user's loop starts. An exception escaping `main` (a bug) still ends the normal way, with its
    traceback. Call `main` from Python: it returns the status and never exits.
    """
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    console_main()
