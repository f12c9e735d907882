"""Geometry of one representation: exact neighbour graph, intrinsic dimension, overlaps, anisotropy, layer choice.

Every measure of a layer is computed from one exact neighbour graph (`knn_graph`); see docs/architecture.md §3.
"""

from .anisotropy import Anisotropy, anisotropy
from .intrinsic_dimension import (
    CommonGrideRank,
    GrideResult,
    GrideScale,
    IDEstimate,
    IDScaling,
    ScalingPoint,
    common_gride_rank,
    gride,
    gride_at_rank,
    gride_mle,
    twonn,
    twonn_decimation,
    twonn_mle,
    twonn_scaling,
)
from .layer_choice import LayerChoice, choose_layer
from .neighbours import (
    NeighbourGraph,
    find_duplicates,
    knn_graph,
    load_graph,
    save_graph,
    shared_keep_mask,
    validate_representation,
)
from .overlap import LabelOverlap, label_overlap, label_overlap_details, neighbourhood_overlap, overlap_matrix

__all__ = [
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
