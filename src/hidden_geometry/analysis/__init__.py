"""The analysis: every decision between a model's representations and the workflow's tables, as library calls.

- `inputs`: which items are measured (identical inputs once), their labels and exclusion groups;
- `layer`: one layer's rows, graph (or why it has none), measures and linear probe (`measure_layer`,
  `probe_layer`);
- `model`: a model's layers into the `layers.tsv` rows and the layer choice (`summarize_layers`), or everything
  in one call from the representations (`analyse_layers`).

The workflow's scripts and the `hidden-geometry layers` command are adapters of these calls (docs/architecture.md).
"""

from .inputs import (
    first_occurrence_mask,
    identical_input_mask,
    identical_rows_mask,
    input_keys,
    item_groups,
    item_labels,
)
from .layer import (
    LayerMeasures,
    distinct_k,
    finite_keep_mask,
    layer_graph,
    measure_layer,
    probe_layer,
    probe_rows,
)
from .model import (
    LAYER_COLUMNS,
    ModelAnalysis,
    analyse_layers,
    best_probe_layer,
    choose_model_layer,
    common_rank,
    consecutive_overlaps,
    layer_row,
    overlap_matrix_of,
    summarize_layers,
    table_rows,
)

__all__ = [
    "LAYER_COLUMNS",
    "LayerMeasures",
    "ModelAnalysis",
    "analyse_layers",
    "best_probe_layer",
    "choose_model_layer",
    "common_rank",
    "consecutive_overlaps",
    "distinct_k",
    "finite_keep_mask",
    "first_occurrence_mask",
    "identical_input_mask",
    "identical_rows_mask",
    "input_keys",
    "item_groups",
    "item_labels",
    "layer_graph",
    "layer_row",
    "measure_layer",
    "overlap_matrix_of",
    "probe_layer",
    "probe_rows",
    "summarize_layers",
    "table_rows",
]
