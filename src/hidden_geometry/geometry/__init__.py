"""Geometry of one representation: exact neighbour graph, intrinsic dimension, overlaps, anisotropy, layer choice.

Every measure of a layer is computed from one exact neighbour graph (`knn_graph`); see docs/architecture.md §3.
"""

from .._lazy import collection_paused, lazy_getattr

# Imported on first use (PEP 562): `hidden-geometry knn` and the graph jobs need only the neighbour graph, not
# scipy's signal and optimize modules (about half a second of start-up per process on a quiet machine).
_EXPORTS = {
    "Anisotropy": "anisotropy",
    **dict.fromkeys(
        ["CommonGrideRank", "GrideResult", "GrideScale", "IDEstimate", "IDScaling", "ScalingPoint",
         "common_gride_rank", "gride", "gride_at_rank", "gride_mle", "twonn", "twonn_decimation", "twonn_mle",
         "twonn_scaling"],
        "intrinsic_dimension",
    ),
    **dict.fromkeys(["LayerChoice", "choose_layer"], "layer_choice"),
    **dict.fromkeys(
        ["NeighbourGraph", "find_duplicates", "knn_graph", "load_graph", "save_graph", "shared_keep_mask",
         "validate_representation"],
        "neighbours",
    ),
    **dict.fromkeys(
        ["LabelOverlap", "label_overlap", "label_overlap_details", "neighbourhood_overlap", "overlap_matrix"],
        "overlap",
    ),
    **dict.fromkeys(
        ["LAYER_MEASURES", "cell_density", "covariance_eigenvalues", "isoscore", "layer_measures", "mean_cosine",
         "participation_ratio", "token_anisotropy"],
        "measures",
    ),
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)
# `anisotropy` is both a submodule and a function: imported now, so that the name is the function (it imports torch:
# with the collector paused, as the lazy imports).
with collection_paused():
    from .anisotropy import anisotropy  # noqa: E402 - after __getattr__, see the comment above

__all__ = [
    "LAYER_MEASURES",
    "cell_density",
    "covariance_eigenvalues",
    "isoscore",
    "layer_measures",
    "mean_cosine",
    "participation_ratio",
    "token_anisotropy",
    "CommonGrideRank",
    "Anisotropy",
    "GrideResult",
    "GrideScale",
    "IDEstimate",
    "IDScaling",
    "LabelOverlap",
    "LayerChoice",
    "NeighbourGraph",
    "ScalingPoint",
    "anisotropy",
    "choose_layer",
    "common_gride_rank",
    "find_duplicates",
    "gride",
    "gride_at_rank",
    "gride_mle",
    "knn_graph",
    "label_overlap",
    "label_overlap_details",
    "load_graph",
    "neighbourhood_overlap",
    "overlap_matrix",
    "save_graph",
    "shared_keep_mask",
    "twonn",
    "twonn_decimation",
    "twonn_mle",
    "twonn_scaling",
    "validate_representation",
]
