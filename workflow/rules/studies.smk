# Studies across models (config `studies`), small models trained here (model key `train`), and geometry during
# training (models whose checkpoints carry a step).


rule train_model:
    """Train a small LM on a text dataset (models.training): checkpoints by step, their held-out loss (scores TSV)."""
    input:
        table=lambda wildcards: f"{RESULTS}/{config['models'][wildcards.model]['train']['dataset']}/items.tsv",
    output:
        folder=directory(f"{CACHE}/trained_models/{{model}}"),
        heldout=f"{RESULTS}/training/{{model}}/heldout_loss.tsv",
    log:
        f"{LOGS}/train_model/{{model}}.log",
    benchmark:
        f"{BENCHMARKS}/train_model/{{model}}.tsv"
    # First in line: every checkpoint's extraction waits for the training.
    priority: 10
    conda:
        "../../envs/extract.yaml"
    # One thread: the demo's models are small (2 x 64); a second thread barely speeds them up and would hold the
    # second core that other jobs use meanwhile.
    threads: 1
    params:
        train=lambda wildcards: config["models"][wildcards.model]["train"],
    script:
        "../../scripts/train_model.py"


rule study:
    """Every measure of layers.tsv (chosen layer, last layer, mean over layers) against the study's external scores."""
    input:
        tables=study_tables,
        choices=lambda wildcards: [t.replace("layers.tsv", "layer_choice.json") for t in study_tables(wildcards)],
        scores=lambda wildcards: study_spec(wildcards.study)["scores"],
    output:
        **{
            f"fig_{measure}_{ext}": report(
                f"{RESULTS}/figures/studies/{{study}}/{measure}.{ext}",
                caption="../report/study_measure.rst",
                category="Studies",
                subcategory="{study}",
                labels={"study": "{study}", "measure": measure, "format": ext},
            )
            for measure in STUDY_MEASURES
            for ext in FIGURE_FORMATS
        },
        table=report(
            f"{RESULTS}/studies/{{study}}/measures_vs_score.tsv",
            caption="../report/measures_vs_score.rst",
            category="Studies",
            subcategory="{study}",
            labels={"study": "{study}", "table": "measures_vs_score.tsv"},
        ),
    log:
        f"{LOGS}/study/{{study}}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        study=lambda wildcards: wildcards.study,
        models=lambda wildcards: study_spec(wildcards.study)["models"],
        score_name=lambda wildcards: study_spec(wildcards.study)["score_name"],
        n_boot=lambda wildcards: study_spec(wildcards.study)["bootstrap"],
        seed=config["seed"],
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/study.py"


rule training_dynamics:
    """training.tsv over (step, layer) and its figure, for a model whose checkpoints carry a step."""
    input:
        tables=lambda wildcards: [
            f"{RESULTS}/{wildcards.dataset}/{run}/layers.tsv"
            for step, run in sorted(training_runs(wildcards.dataset, wildcards.model).items())
        ],
    output:
        **{
            f"fig_{ext}": report(
                f"{RESULTS}/figures/{{dataset}}/{{model}}/training_dynamics.{ext}",
                caption="../report/training_dynamics.rst",
                category="Figures",
                subcategory="{dataset}",
                labels={"dataset": "{dataset}", "model": "{model}", "figure": "training_dynamics", "format": ext},
            )
            for ext in FIGURE_FORMATS
        },
        table=report(
            f"{RESULTS}/{{dataset}}/{{model}}/training.tsv",
            caption="../report/training.rst",
            category="Tables",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "model": "{model}", "table": "training.tsv"},
        ),
    log:
        f"{LOGS}/training_dynamics/{{dataset}}/{{model}}.log",
    conda:
        "../../envs/plots.yaml"
    params:
        steps=lambda wildcards: sorted(training_runs(wildcards.dataset, wildcards.model)),
        label=lambda wildcards: hg_config.model_label(config, wildcards.model),
        dataset=lambda wildcards: wildcards.dataset,
        dpi=config["figures"]["dpi"],
    script:
        "../../scripts/training_dynamics.py"
