# Linear probe per layer: logistic regression on standardised features, stratified k-fold accuracy.


rule linear_probe:
    """Linear-probe accuracy (mean and std over folds) of one layer on the dataset's deduplicated items."""
    input:
        unpack(dataset_inputs),
        embeddings=f"{RESULTS}/{{dataset}}/{{model}}/embeddings",
        keep=f"{RESULTS}/{{dataset}}/keep.npy",
    output:
        probe=f"{RESULTS}/{{dataset}}/{{model}}/probe/layer_{{layer}}.json",
    log:
        f"{LOGS}/linear_probe/{{dataset}}/{{model}}/layer_{{layer}}.log",
    benchmark:
        f"{BENCHMARKS}/linear_probe/{{dataset}}/{{model}}/layer_{{layer}}.tsv"
    conda:
        "../../envs/geometry.yaml"
    threads: 1
    params:
        folds=config["probe"]["folds"],
        max_items=config["probe"]["max_items"],
        label_column=label_column,
        seed=config["seed"],
    script:
        "../../scripts/linear_probe.py"
