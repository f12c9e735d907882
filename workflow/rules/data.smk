# Data stage: downloads (local rules: login nodes have the network), prepared items, built or fetched models.


localrules:
    download_dataset,
    fetch_model,
    build_random_model,


rule download_dataset:
    """Fetch a dataset's `url` into the cache once (a local `path` in the config replaces this rule)."""
    output:
        f"{CACHE}/downloads/{{dataset}}/{{filename}}",
    log:
        f"{LOGS}/download_dataset/{{dataset}}/{{filename}}.log",
    retries: 3
    conda:
        "../../envs/data.yaml"
    params:
        url=lambda wildcards: dataset_spec(wildcards.dataset)["url"],
        sha256=lambda wildcards: dataset_spec(wildcards.dataset).get("sha256"),
    script:
        "../../scripts/download_dataset.py"


checkpoint prepare_dataset:
    """Read, clean and label a sequence or text dataset: items.tsv and its summary (counts, drops, crops)."""
    input:
        source=dataset_source,
        side=dataset_side_files,
    output:
        table=f"{RESULTS}/{{other_dataset}}/items.tsv",
        summary=f"{RESULTS}/{{other_dataset}}/dataset.json",
    log:
        f"{LOGS}/prepare_dataset/{{other_dataset}}.log",
    conda:
        "../../envs/data.yaml"
    params:
        spec=lambda wildcards, input: local_spec(wildcards.other_dataset, input.source),
        cache_dir=CACHE,
        listing=dataset_listing,
    script:
        "../../scripts/prepare_dataset.py"


checkpoint prepare_image_dataset:
    """Read and resize an image dataset: items.tsv, images.npy (uint8 [N, H, W, 3]) and the summary."""
    input:
        source=dataset_source,
        side=dataset_side_files,
    output:
        table=f"{RESULTS}/{{image_dataset}}/items.tsv",
        summary=f"{RESULTS}/{{image_dataset}}/dataset.json",
        images=f"{RESULTS}/{{image_dataset}}/images.npy",
    log:
        f"{LOGS}/prepare_dataset/{{image_dataset}}.log",
    conda:
        "../../envs/data.yaml"
    params:
        spec=lambda wildcards, input: local_spec(wildcards.image_dataset, input.source),
        cache_dir=CACHE,
        listing=dataset_listing,
    script:
        "../../scripts/prepare_dataset.py"


rule build_random_model:
    """A model from its published architecture with random weights, saved in its real checkpoint format."""
    output:
        directory(f"{CACHE}/random_models/{{model}}"),
    log:
        f"{LOGS}/build_random_model/{{model}}.log",
    conda:
        "../../envs/extract.yaml"
    params:
        spec=lambda wildcards: MODEL_SPECS[wildcards.model],
    script:
        "../../scripts/build_random_model.py"


rule fetch_model:
    """Download a model named by `source` into the cache once, so extraction jobs never need the network."""
    output:
        directory(f"{CACHE}/models/{{model}}"),
    log:
        f"{LOGS}/fetch_model/{{model}}.log",
    retries: 3
    conda:
        "../../envs/extract.yaml"
    params:
        spec=lambda wildcards: MODEL_SPECS[wildcards.model],
    script:
        "../../scripts/fetch_model.py"


rule input_keep_mask:
    """One item per identical input (sequence, text or image): the same keep-mask for every model and layer."""
    input:
        unpack(dataset_inputs),
    output:
        keep=f"{RESULTS}/{{dataset}}/keep.npy",
        summary=f"{RESULTS}/{{dataset}}/keep.json",
    log:
        f"{LOGS}/input_keep_mask/{{dataset}}.log",
    conda:
        "../../envs/geometry.yaml"
    params:
        deduplicate=config["geometry"]["deduplicate_inputs"],
    script:
        "../../scripts/input_keep_mask.py"
