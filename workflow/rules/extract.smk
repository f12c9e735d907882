# Extraction: one job (one GPU) per shard of `extraction.shard_size` items, then a gather checkpoint whose
# manifest gives the number of layers, so that the per-layer geometry jobs are scattered after it.


rule extract_shard:
    """Pooled representations of every layer for items [shard * shard_size, ...) in one forward pass each."""
    input:
        unpack(dataset_inputs),
        summary=f"{RESULTS}/{{dataset}}/dataset.json",
        model=model_files,
    output:
        shard=directory(f"{RESULTS}/{{dataset}}/{{model}}/shards/{{shard}}"),
    log:
        f"{LOGS}/extract_shard/{{dataset}}/{{model}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/extract_shard/{{dataset}}/{{model}}/{{shard}}.tsv"
    conda:
        "../../envs/extract.yaml"
    threads: 4
    resources:
        gpu=1,
    params:
        spec=model_load_spec,
        shard_size=config["extraction"]["shard_size"],
        token_budget=token_budget,
        device=config["extraction"]["device"],
        progress=config["extraction"]["progress"],
        token_sample=config["extraction"]["token_sample"],
        role=lambda wildcards: MODEL_SPECS[wildcards.model].get("role"),
        seed=config["seed"],
        lock_dir=f"{CACHE}/gpu_locks",
        cache_identity=lambda wildcards: (
            hg_config.cache_identity(MODEL_SPECS[wildcards.model])
            if hg_config.model_origin(config, wildcards.model) in ("random", "download")
            else None
        ),
        model_listing=model_listing,
    script:
        "../../scripts/extract_shard.py"


checkpoint gather_embeddings:
    """Concatenate the shards' per-layer arrays in input order: embeddings/layer_XXX.npy, ids.txt, manifest.json."""
    input:
        shards=shard_dirs,
    output:
        embeddings=directory(f"{RESULTS}/{{dataset}}/{{model}}/embeddings"),
    log:
        f"{LOGS}/gather_embeddings/{{dataset}}/{{model}}.log",
    conda:
        "../../envs/extract.yaml"
    script:
        "../../scripts/gather_embeddings.py"
