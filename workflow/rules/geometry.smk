# Geometry: one job per layer. The layer's exact neighbour graph is computed once (graphs/layer_XXX.npz), every
# measure of that layer comes from it in the same job, and the summary joins the layers into layers.tsv (reading
# consecutive graphs for their overlap) and chooses a layer.


rule layer_geometry:
    """One layer: its exact neighbour graph (saved, reused by the summary), then TwoNN (+ decimation error), the Gride
    curve and scale, label overlap, anisotropy and the kNN probe from that graph."""
    input:
        unpack(dataset_inputs),
        embeddings=f"{RESULTS}/{{dataset}}/{{model}}/embeddings",
        keep=f"{RESULTS}/{{dataset}}/keep.npy",
    output:
        graph=f"{RESULTS}/{{dataset}}/{{model}}/graphs/layer_{{layer}}.npz",
        measures=f"{RESULTS}/{{dataset}}/{{model}}/measures/layer_{{layer}}.json",
    log:
        f"{LOGS}/layer_geometry/{{dataset}}/{{model}}/layer_{{layer}}.log",
    benchmark:
        f"{BENCHMARKS}/layer_geometry/{{dataset}}/{{model}}/layer_{{layer}}.tsv"
    conda:
        "../../envs/geometry.yaml"
    threads: geometry_threads
    params:
        graph_k=config["geometry"]["graph_k"],
        k=lambda wildcards: neighbour_k(wildcards.dataset),
        metric=config["geometry"]["metric"],
        twonn_fraction=config["geometry"]["twonn_fraction"],
        decimation_repeats=config["geometry"]["decimation_repeats"],
        exclude_groups=config["geometry"]["exclude_groups"],
        label_column=label_column,
        seed=config["seed"],
    script:
        "../../scripts/layer_geometry.py"


rule summarize_model:
    """layers.tsv (one row per layer), the overlap between every pair of layers' graphs (overlap_matrix.tsv), and
    layer_choice.json."""
    input:
        embeddings=f"{RESULTS}/{{dataset}}/{{model}}/embeddings",
        measures=layer_files("{results}/{dataset}/{model}/measures/layer_{layer}.json"),
        probes=layer_files("{results}/{dataset}/{model}/probe/layer_{layer}.json"),
        graphs=layer_files("{results}/{dataset}/{model}/graphs/layer_{layer}.npz"),
    output:
        layers=report(
            f"{RESULTS}/{{dataset}}/{{model}}/layers.tsv",
            caption="../report/layers.rst",
            category="Tables",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "model": "{model}", "table": "layers.tsv"},
        ),
        choice=f"{RESULTS}/{{dataset}}/{{model}}/layer_choice.json",
        overlap_matrix=f"{RESULTS}/{{dataset}}/{{model}}/overlap_matrix.tsv",
    log:
        f"{LOGS}/summarize_model/{{dataset}}/{{model}}.log",
    conda:
        "../../envs/geometry.yaml"
    params:
        k=lambda wildcards: neighbour_k(wildcards.dataset),
        untrained=lambda wildcards: hg_config.is_untrained(config, wildcards.model),
        model_label=lambda wildcards: hg_config.model_label(config, wildcards.model),
    script:
        "../../scripts/summarize_model.py"


rule summary_table:
    """One row per analysed (dataset, model): untrained or not, layers, chosen layer, probe's best layer."""
    input:
        choices=[f"{RESULTS}/{a.dataset}/{a.model}/layer_choice.json" for a in ANALYSES],
    output:
        report(
            f"{RESULTS}/summary.tsv",
            caption="../report/summary.rst",
            category="Tables",
            labels={"table": "summary.tsv"},
        ),
    log:
        f"{LOGS}/summary_table.log",
    conda:
        "../../envs/plots.yaml"
    script:
        "../../scripts/summary_table.py"
