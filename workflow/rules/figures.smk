# Figures (matplotlib, Agg; PNG and PDF) and their report entries; captions in workflow/report/*.rst.


rule figures_dataset:
    """The paper's Fig. 1 (ID vs relative depth), Fig. 2 (consecutive overlap), Fig. 4 (label overlap), and
    anisotropy against relative depth, encoders against decoders."""
    input:
        tables=dataset_tables,
    output:
        **{
            f"{fig}_{ext}": report(
                f"{RESULTS}/figures/{{dataset}}/{fig}.{ext}",
                caption=f"../report/{fig}.rst",
                category="Figures",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "figure": fig, "format": ext},
            )
            for fig in ["fig1_id_depth", "fig2_overlap_next", "fig4_label_overlap", "anisotropy_depth"]
            for ext in FIGURE_FORMATS
        },
    log:
        f"{LOGS}/figures_dataset/{{dataset}}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        models=lambda wildcards: dataset_models(wildcards.dataset),
        labels=lambda wildcards: model_labels(dataset_models(wildcards.dataset)),
        dataset=lambda wildcards: wildcards.dataset,
        k=lambda wildcards: neighbour_k(wildcards.dataset),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/figures_dataset.py"


rule figures_model:
    """Gride ID against scale for every layer, probe accuracy against ID with the chosen layer marked, and the
    overlap matrix chi(l, m) of every pair of layers."""
    input:
        table=f"{RESULTS}/{{dataset}}/{{model}}/layers.tsv",
        choice=f"{RESULTS}/{{dataset}}/{{model}}/layer_choice.json",
        measures=layer_files("{results}/{dataset}/{model}/measures/layer_{layer}.json"),
        overlap_matrix=f"{RESULTS}/{{dataset}}/{{model}}/overlap_matrix.tsv",
    output:
        **{
            f"{fig}_{ext}": report(
                f"{RESULTS}/figures/{{dataset}}/{{model}}/{fig}.{ext}",
                caption=f"../report/{fig}.rst",
                category="Figures",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "model": "{model}", "figure": fig, "format": ext},
            )
            for fig in ["gride_scale", "probe_vs_id", "overlap_matrix"]
            for ext in FIGURE_FORMATS
        },
    log:
        f"{LOGS}/figures_model/{{dataset}}/{{model}}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        label=lambda wildcards: hg_config.model_label(config, wildcards.model),
        k=lambda wildcards: neighbour_k(wildcards.dataset),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/figures_model.py"


rule figures_checkpoints:
    """The paper's Fig. 3: ID against relative depth across a model's training checkpoints."""
    input:
        final=f"{RESULTS}/{{dataset}}/{{model}}/layers.tsv",
        checkpoints=lambda wildcards: expand(
            "{results}/{dataset}/{run}/layers.tsv",
            results=RESULTS,
            dataset=wildcards.dataset,
            run=checkpoint_runs(wildcards.dataset, wildcards.model),
        ),
    output:
        **{
            f"fig3_{ext}": report(
                f"{RESULTS}/figures/{{dataset}}/{{model}}/fig3_id_checkpoints.{ext}",
                caption="../report/fig3_id_checkpoints.rst",
                category="Figures",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "model": "{model}", "figure": "fig3_id_checkpoints", "format": ext},
            )
            for ext in FIGURE_FORMATS
        },
    log:
        f"{LOGS}/figures_checkpoints/{{dataset}}/{{model}}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        labels=lambda wildcards: model_labels([wildcards.model] + checkpoint_runs(wildcards.dataset, wildcards.model)),
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/figures_checkpoints.py"
