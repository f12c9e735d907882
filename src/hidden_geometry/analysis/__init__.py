"""The analysis: every decision between a model's representations and the workflow's tables, as library calls.

- `inputs`: which items are measured (identical inputs once), their labels and exclusion groups;
- `layer`: one layer's rows, graph (or why it has none), measures and linear probe (`measure_layer`,
  `probe_layer`);
- `defaults`: the defaults of the config's `geometry:` and `probe:` sections (torch-free);
- `model`: a model's layers into the `layers.tsv` rows and the layer choice (`summarize_layers`), or everything
  in one call from the representations (`analyse_layers`).

The workflow's scripts and the `hidden-geometry layers` command are adapters of these calls (docs/architecture.md).
"""

from .._lazy import lazy_getattr

# Imported on first use (PEP 562): the `hidden-geometry` command reads its defaults (`defaults`) while building its
# parser, and `hidden-geometry knn` then imports torch on a thread beside reading its input, not here.
_EXPORTS = {
    **dict.fromkeys(
        ["first_occurrence_mask", "identical_input_mask", "identical_rows_mask", "input_keys", "item_groups",
         "item_labels"],
        "inputs",
    ),
    **dict.fromkeys(
        ["LayerMeasures", "distinct_k", "finite_keep_mask", "layer_graph", "measure_layer", "probe_layer",
         "probe_rows"],
        "layer",
    ),
    **dict.fromkeys(
        ["LAYER_COLUMNS", "ModelAnalysis", "analyse_layers", "best_probe_layer", "choose_model_layer", "common_rank",
         "consecutive_overlaps", "layer_row", "overlap_matrix_of", "summarize_layers", "table_rows"],
        "model",
    ),
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)

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
