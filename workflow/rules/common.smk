# Config validation and the helper functions the rules use for their wildcards and inputs.
import hashlib
import json
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hidden_geometry import config as hg_config
from hidden_geometry.errors import InputError
from hidden_geometry.models.training import read_step
from hidden_geometry.studies import STUDY_MEASURES

SCHEMA = "../schemas/config.schema.yaml"

if not config:
    raise WorkflowError(
        "no config given: run with --configfile config/demo.yaml (offline demo) or --configfile config/config.yaml"
    )
# The workflow's own folders (results_dir/<name>, results_dir/<dataset>/<model>/<name>) and the files it writes
# beside a dataset's or model's folder: no dataset or model may take these names (the config check refuses them).
RESULT_FOLDERS = (
    "figures",
    "logs",
    "benchmarks",
    "studies",
    "training",
    "embeddings",
    "shards",
    "graphs",
    "measures",
    "probe",
)
RESULT_FILES = (
    "summary.tsv",
    "items.tsv",
    "dataset.json",
    "images.npy",
    "keep.npy",
    "keep.json",
    "layers.tsv",
    "layer_choice.json",
    "manifest.json",
    "ids.txt",
)

try:
    # One line naming the key, before any job: unknown keys, wrong types, missing paths, unknown names.
    hg_config.prepare_config(
        config,
        workflow.source_path(SCHEMA),
        base_dir=".",
        reserved_names=RESULT_FOLDERS,
        result_files=RESULT_FILES,
    )
    hg_config.check_studies(
        config,
        produced=[
            f"{config['results_dir']}/training/{name}/heldout_loss.tsv"
            for name, spec in config["models"].items()
            if "train" in spec
        ],
    )
except InputError as error:
    raise WorkflowError(f"Invalid config: {error}") from None
# Snakemake's own validation as well (it records the schema in the run's metadata); already known to pass.
validate(config, SCHEMA)

RESULTS = config["results_dir"].rstrip("/")
CACHE = config["cache_dir"].rstrip("/")
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
MODEL_SPECS = hg_config.expand_model_specs(config)
ANALYSES = hg_config.analyses(config)
IMAGE_DATASETS = sorted(n for n, s in config["datasets"].items() if s["kind"] in hg_config.IMAGE_KINDS)
OTHER_DATASETS = sorted(n for n, s in config["datasets"].items() if s["kind"] not in hg_config.IMAGE_KINDS)
FIGURE_FORMATS = config["figures"]["formats"]


def _alternatives(names):
    """A regex matching exactly these names (or nothing when the list is empty)."""
    return "|".join(re.escape(n) for n in sorted(names)) if names else "(?!x)x"


wildcard_constraints:
    dataset=_alternatives(config["datasets"]),
    model=_alternatives(MODEL_SPECS),
    image_dataset=_alternatives(IMAGE_DATASETS),
    other_dataset=_alternatives(OTHER_DATASETS),
    shard=r"\d{4}",
    layer=r"\d{3}",
    ext=_alternatives(["png", "pdf"]),


# ---- datasets ------------------------------------------------------------------------------------------------


def dataset_spec(dataset):
    return config["datasets"][dataset]


def is_image_dataset(dataset):
    return dataset in IMAGE_DATASETS


def dataset_source(wildcards):
    """The raw input of a dataset: its local `path`, or the file the local download rule fetches."""
    spec = dataset_spec(wildcards.get("other_dataset") or wildcards.get("image_dataset"))
    if "path" in spec:
        return [spec["path"]]
    if "url" in spec:
        name = wildcards.get("other_dataset") or wildcards.get("image_dataset")
        return [download_path(name)]
    return []


def dataset_side_files(wildcards):
    """The other files a dataset reads besides its source (a labels table): inputs too, so an edit reruns it."""
    spec = dataset_spec(wildcards.get("other_dataset") or wildcards.get("image_dataset"))
    return [spec[key] for key in hg_config.DATASET_PATH_KEYS if key != "path" and isinstance(spec.get(key), str)]


def dataset_listing(wildcards):
    """For a source that is a folder (image classes): a digest of every entry below it (path, size, time), so that
    an image added, removed or edited anywhere in it reruns the data stage (a folder's own time does not)."""
    spec = dataset_spec(wildcards.get("other_dataset") or wildcards.get("image_dataset"))
    return hg_config.folder_listing_digest(spec["path"]) if "path" in spec else None


def local_spec(dataset, source):
    """The dataset's config entry with `path` set to its local file (given, or the download rule's output)."""
    spec = dict(dataset_spec(dataset))
    if len(source):
        spec["path"] = str(source[0])
    return spec


def download_path(dataset):
    """Where a dataset's `url` is downloaded: under a digest of the url, so that a shared cache_dir never hands one
    project's download to another that names a dataset alike but downloads something else."""
    url = dataset_spec(dataset)["url"]
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return f"{CACHE}/downloads/{dataset}/{key}/{Path(url.split('?')[0]).name or 'download'}"


def dataset_outputs(dataset):
    """The prepared dataset's files, after the checkpoint that makes them has run."""
    step = checkpoints.prepare_image_dataset if is_image_dataset(dataset) else checkpoints.prepare_dataset
    key = "image_dataset" if is_image_dataset(dataset) else "other_dataset"
    return step.get(**{key: dataset}).output


def dataset_inputs(wildcards):
    """items.tsv (+ images.npy) of the wildcard's dataset, for the rules that read the inputs themselves."""
    files = {"table": f"{RESULTS}/{wildcards.dataset}/items.tsv"}
    if is_image_dataset(wildcards.dataset):
        files["images"] = f"{RESULTS}/{wildcards.dataset}/images.npy"
    return files


def n_items(dataset):
    """Number of items kept in a prepared dataset (read from dataset.json after the checkpoint)."""
    summary = json.loads(Path(dataset_outputs(dataset).summary).read_text(encoding="utf-8"))
    return int(summary["n_items"])


# ---- models and extraction -----------------------------------------------------------------------------------


def model_weights_dir(model):
    """The cache folder that rule train_model, build_random_model or fetch_model fills for `model` (None for other
    origins)."""
    origin = hg_config.model_origin(config, model)
    if origin == "trained":  # rule train_model writes every checkpoint (step_XXXXXX/) of the trained model here
        return f"{CACHE}/trained_models/{MODEL_SPECS[model].get('checkpoint_of', model)}"
    if origin == "random":
        return f"{CACHE}/random_models/{model}"
    if origin == "download":
        return f"{CACHE}/models/{model}"
    return None


def model_files(wildcards):
    """What extraction needs on disk for the model: built, downloaded or given checkpoint."""
    folder = model_weights_dir(wildcards.model)
    if folder is not None:
        return [folder]
    if hg_config.model_origin(config, wildcards.model) == "path":
        return [MODEL_SPECS[wildcards.model]["path"]]
    return []


def model_listing(wildcards):
    """For a model given as a local folder (`path`): a digest of every file in it, so that replacing the weights
    inside the folder reruns the extraction (the folder's own time does not change)."""
    if hg_config.model_origin(config, wildcards.model) != "path":
        return None
    return hg_config.folder_listing_digest(MODEL_SPECS[wildcards.model]["path"])


def model_load_spec(wildcards):
    """The spec the extraction job hands to hidden_geometry.models.load_model."""
    return hg_config.model_load_spec(config, wildcards.model, model_weights_dir(wildcards.model))


def token_budget(wildcards):
    return MODEL_SPECS[wildcards.model].get("token_budget", config["extraction"]["token_budget"])


def shard_dirs(wildcards):
    """Every shard folder of (dataset, model); the shard count follows the prepared dataset's size."""
    count = hg_config.n_shards(n_items(wildcards.dataset), config["extraction"]["shard_size"])
    return expand(
        "{results}/{dataset}/{model}/shards/{shard:04d}",
        results=RESULTS,
        dataset=wildcards.dataset,
        model=wildcards.model,
        shard=range(count),
    )


def n_layers(dataset, model):
    """Number of layers (embeddings + blocks), from the gathered manifest once the checkpoint ran."""
    folder = checkpoints.gather_embeddings.get(dataset=dataset, model=model).output.embeddings
    manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    return int(manifest["n_layers"])


def layer_files(pattern):
    """An input function giving `pattern` for every layer of the wildcard's (dataset, model)."""

    def files(wildcards):
        count = n_layers(wildcards.dataset, wildcards.model)
        return expand(
            pattern,
            results=RESULTS,
            dataset=wildcards.dataset,
            model=wildcards.model,
            layer=[f"{layer:03d}" for layer in range(count)],
        )

    return files


def geometry_threads(wildcards):
    """Threads of a per-layer geometry job: one for small datasets (start-up dominates, so run several jobs at
    once), up to 4 for large ones, where the blocked neighbour search uses them."""
    return max(1, min(4, n_items(wildcards.dataset) // 5000))


def neighbour_k(dataset):
    """k of the overlaps and the kNN probe for `dataset`: geometry.k_by_dataset where it names it, else geometry.k."""
    return int(config["geometry"].get("k_by_dataset", {}).get(dataset, config["geometry"]["k"]))


def label_column(wildcards):
    return hg_config.find_analysis(config, wildcards.dataset, wildcards.model).label_column


# ---- figures and targets -------------------------------------------------------------------------------------


def dataset_models(dataset, with_checkpoints=False):
    """Models analysed on `dataset`, in config order (training checkpoints only when asked)."""
    return [
        a.model
        for a in ANALYSES
        if a.dataset == dataset and (with_checkpoints or "checkpoint_of" not in MODEL_SPECS[a.model])
    ]


def checkpoint_models(dataset):
    """Base models analysed on `dataset` that list training checkpoints (for the paper's Fig. 3)."""
    names = dataset_models(dataset)
    return [
        m
        for m in names
        if hg_config.checkpoint_labels(config["models"].get(m, {}))
        and any(a.model.startswith(m + hg_config.CHECKPOINT_SEPARATOR) for a in ANALYSES if a.dataset == dataset)
    ]


def checkpoint_runs(dataset, model):
    return [a.model for a in ANALYSES if a.dataset == dataset and MODEL_SPECS[a.model].get("checkpoint_of") == model]


def dataset_tables(wildcards):
    """layers.tsv of every model analysed on the wildcard's dataset (config order, no checkpoints)."""
    return expand(
        "{results}/{dataset}/{model}/layers.tsv",
        results=RESULTS,
        dataset=wildcards.dataset,
        model=dataset_models(wildcards.dataset),
    )


def model_labels(models):
    """Legend labels, '(untrained)' included where the weights are random."""
    return {model: hg_config.model_label(config, model) for model in models}


def all_outputs():
    targets = [f"{RESULTS}/summary.tsv"]
    for analysis in ANALYSES:
        base = f"{RESULTS}/{analysis.dataset}/{analysis.model}"
        targets += [f"{base}/layers.tsv", f"{base}/layer_choice.json"]
    for dataset in sorted({a.dataset for a in ANALYSES}):
        targets += expand(
            "{results}/figures/{dataset}/{fig}.{ext}",
            results=RESULTS,
            dataset=dataset,
            fig=["fig1_id_depth", "fig2_overlap_next", "fig4_label_overlap", "anisotropy_depth"],
            ext=FIGURE_FORMATS,
        )
        for model in dataset_models(dataset, with_checkpoints=True):
            targets += expand(
                "{results}/figures/{dataset}/{model}/{fig}.{ext}",
                results=RESULTS,
                dataset=dataset,
                model=model,
                fig=["gride_scale", "probe_vs_id", "overlap_matrix"],
                ext=FIGURE_FORMATS,
            )
        for model in checkpoint_models(dataset):
            targets += expand(
                "{results}/figures/{dataset}/{model}/fig3_id_checkpoints.{ext}",
                results=RESULTS,
                dataset=dataset,
                model=model,
                ext=FIGURE_FORMATS,
            )
            if training_runs(dataset, model):
                targets += [f"{RESULTS}/{dataset}/{model}/training.tsv"]
                targets += expand(
                    "{results}/figures/{dataset}/{model}/training_dynamics.{ext}",
                    results=RESULTS,
                    dataset=dataset,
                    model=model,
                    ext=FIGURE_FORMATS,
                )
    for study in config.get("studies") or {}:
        targets += [f"{RESULTS}/studies/{study}/measures_vs_score.tsv"]
        targets += expand(
            "{results}/figures/studies/{study}/{measure}.{ext}",
            results=RESULTS,
            study=study,
            measure=STUDY_MEASURES,
            ext=FIGURE_FORMATS,
        )
    return targets


# ---- studies and training (workflow/rules/studies.smk) ----------------------------------------------------------


def study_spec(study):
    return config["studies"][study]


def study_tables(wildcards):
    spec = study_spec(wildcards.study)
    return [f"{RESULTS}/{spec['dataset']}/{model}/layers.tsv" for model in spec["models"]]


def run_step(run):
    """The training step of a model run: its spec's `step`, else the training.json of its checkpoint folder."""
    spec = MODEL_SPECS[run]
    if spec.get("step") is not None:
        return int(spec["step"])
    path = spec.get("path")
    return read_step(path) if path else None


def training_runs(dataset, model):
    """{step: run} over the model and its checkpoint runs on `dataset`, or {} unless every run has a step."""
    runs = [model] + checkpoint_runs(dataset, model)
    steps = {run: run_step(run) for run in runs}
    if len(runs) < 2 or any(step is None for step in steps.values()):
        return {}
    return {steps[run]: run for run in runs}
