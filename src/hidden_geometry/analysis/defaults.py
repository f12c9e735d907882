"""Defaults of the config's `geometry:` and `probe:` sections (workflow/schemas/config.schema.yaml; a test checks
that both agree), shared by the analysis calls and the `hidden-geometry layers` options. Imports nothing: the
command builds its parser from them before it knows which subcommand runs."""

GRAPH_K, K, METRIC, TWONN_FRACTION, DECIMATION_REPEATS = 64, 10, "euclidean", 0.9, 10
FOLDS, MAX_ITEMS, SEED = 5, None, 0
